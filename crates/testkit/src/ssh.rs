//! Git over SSH for tests: Debian's OpenSSH server on 127.0.0.1, running as
//! the current user with a throwaway host key, serving repositories by
//! absolute path through `git-upload-pack` / `git-receive-pack`.

use crate::{TempDir, free_port};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// The login name the server accepts (the user running the tests).
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A key pair made by `ssh-keygen`, in OpenSSH formats.
pub struct SshKeyPair {
    /// The private key file's text (`-----BEGIN OPENSSH PRIVATE KEY-----` or PEM).
    pub private: String,
    /// The `authorized_keys` / `.pub` line.
    pub public: String,
    /// Where the private key is on disk (for `ssh-keygen -Y` and git).
    pub private_path: PathBuf,
    _dir: TempDir,
}

/// Generates a key with `ssh-keygen -t KIND` (`ed25519`, `rsa`, `ecdsa`),
/// encrypted with `passphrase` when it is not empty. `pem` asks for the
/// legacy PEM encoding instead of the OpenSSH one (RSA and ECDSA only).
pub fn ssh_keygen(kind: &str, passphrase: &str, pem: bool) -> SshKeyPair {
    let dir = TempDir::new("sshkey");
    let path = dir.path().join("id");
    let mut cmd = Command::new("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase,
        "-C",
        "tagwarden-test",
        "-f",
    ])
    .arg(&path);
    if pem {
        cmd.args(["-m", "PEM"]);
    }
    let out = cmd
        .output()
        .expect("run ssh-keygen (apt-get install openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen -t {kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |p: &Path| std::fs::read_to_string(p).expect("read generated key");
    SshKeyPair {
        private: read(&path),
        public: read(&path.with_extension("pub")).trim().to_string(),
        private_path: path,
        _dir: dir,
    }
}

/// `sshd -D -e` on 127.0.0.1, stopped on drop.
pub struct SshServer {
    child: Child,
    pub port: u16,
    /// The server's host key as an OpenSSH public key line (`ssh-ed25519 AAAA...`).
    pub host_key_pub: String,
    root: PathBuf,
    dir: TempDir,
}

impl SshServer {
    /// Serves the repositories under `repos_root` to a client holding the
    /// private half of `authorized_public_key`.
    pub fn start(repos_root: &Path, authorized_public_key: &str) -> SshServer {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} not found: apt-get install openssh-server"
        );
        let dir = TempDir::new("sshd");
        let host_key = dir.path().join("host_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .output()
            .expect("run ssh-keygen (apt-get install openssh-client)");
        assert!(out.status.success(), "ssh-keygen host key");
        let host_key_pub = std::fs::read_to_string(host_key.with_extension("pub"))
            .expect("read host key")
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{authorized_public_key}\n"))
            .expect("write authorized_keys");
        // sshd started by root insists on its privilege separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = dir.path().join("sshd_config");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {}\n\
                 AuthorizedKeysFile {}\n\
                 PidFile {d}/sshd.pid\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\n\
                 AllowUsers {}\n\
                 LogLevel VERBOSE\n",
                host_key.display(),
                authorized.display(),
                current_user(),
            ),
        )
        .expect("write sshd_config");
        let log = std::fs::File::create(dir.path().join("sshd.log")).expect("create sshd log");
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {SSHD}: {e} (apt-get install openssh-server)"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default();
                panic!("sshd exited ({status}): {log} (apt-get install openssh-server)");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        SshServer {
            child,
            port,
            host_key_pub,
            root: repos_root.to_path_buf(),
            dir,
        }
    }

    /// The `known_hosts` line for this server (`[127.0.0.1]:PORT ssh-ed25519 AAAA...`).
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_key_pub)
    }

    /// `ssh://USER@127.0.0.1:PORT/<repos_root>/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            current_user(),
            self.port,
            self.root.join(name).display()
        )
    }

    /// What sshd logged so far, for assertions on failures.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

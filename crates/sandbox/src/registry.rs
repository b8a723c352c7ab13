//! Debian's `docker-registry` (Distribution 2.8) on a free 127.0.0.1 port,
//! its config and storage in a temporary directory.

use crate::{Error, TempDir, ephemeral_port, http};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry, stopped and its storage removed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    dir: TempDir,
    tls: bool,
}

impl Registry {
    /// Starts a plain-HTTP registry without auth, or says what to install.
    pub fn start() -> Result<Registry, Error> {
        Registry::start_with("", false)
    }

    /// Starts with `settings` appended to config.yml after `http:`'s own
    /// lines: lines indented two spaces extend `http:` (`tls:`), unindented
    /// ones add sections (`auth:`). `tls` says the listener speaks TLS.
    pub fn start_with(settings: &str, tls: bool) -> Result<Registry, Error> {
        let dir = TempDir::create("registry")?;
        let port = ephemeral_port().map_err(|reason| Error::Http {
            what: "binding an ephemeral port".into(),
            reason,
        })?;
        let child = spawn(&dir, port, settings)?;
        let r = Registry {
            child,
            port,
            dir,
            tls,
        };
        r.wait_ready()?;
        Ok(r)
    }

    /// Stops and starts again on the same port and storage with other
    /// settings (as for [`Registry::start_with`]).
    pub fn restart_with(&mut self, settings: &str, tls: bool) -> Result<(), Error> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.tls = tls;
        self.child = spawn(&self.dir, self.port, settings)?;
        self.wait_ready()
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Directory the registry stores blobs and manifests in.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn wait_ready(&self) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match http(self.port, "GET", "/v2/", &[], b"") {
                Ok((200 | 401, _, _)) => return Ok(()),
                // A TLS listener answers plain HTTP with 400: it is up.
                Ok((400, _, _)) if self.tls => return Ok(()),
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::NotReady { port: self.port })
    }

    /// Publishes `tags` of `repo`, each a real manifest PUT over the API (one
    /// config blob and one layer blob shared by all); `authorization` is the
    /// header's value when the registry wants one.
    pub fn publish(
        &self,
        repo: &str,
        tags: &[&str],
        authorization: Option<&str>,
    ) -> Result<(), Error> {
        let auth: Vec<(&str, &str)> = authorization
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = b"tagwarden test layer";
        let cfg_digest = self.upload_blob(repo, config, &auth)?;
        let layer_digest = self.upload_blob(repo, layer, &auth)?;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{cfg_digest}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{layer_digest}"}}]}}"#,
            config.len(),
            layer.len()
        );
        let mut headers = auth.clone();
        headers.push((
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        ));
        for tag in tags {
            let what = format!("PUT manifest {repo}:{tag}");
            self.expect(
                &what,
                201,
                "PUT",
                &format!("/v2/{repo}/manifests/{tag}"),
                &headers,
                manifest.as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Uploads one blob (monolithic POST + PUT); returns its digest.
    pub fn upload_blob(
        &self,
        repo: &str,
        data: &[u8],
        auth: &[(&str, &str)],
    ) -> Result<String, Error> {
        let digest = format!("sha256:{:x}", Sha256::digest(data));
        let what = format!("start blob upload to {repo}");
        let resp_headers = self.expect(
            &what,
            202,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            auth,
            b"",
        )?;
        let location = resp_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.clone())
            .ok_or(Error::NoLocation { what })?;
        let path = location
            .split_once("://")
            .map_or(location.as_str(), |(_, rest)| {
                rest.find('/').map_or(rest, |i| &rest[i..])
            });
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut h = auth.to_vec();
        h.push(("Content-Type", "application/octet-stream"));
        self.expect(
            &format!("finish blob upload to {repo}"),
            201,
            "PUT",
            &format!("{path}{sep}digest={digest}"),
            &h,
            data,
        )?;
        Ok(digest)
    }

    /// One request that must answer `expected`; returns the answer's headers.
    fn expect(
        &self,
        what: &str,
        expected: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, Error> {
        let (status, headers, body) =
            http(self.port, method, path, headers, body).map_err(|reason| Error::Http {
                what: what.to_string(),
                reason,
            })?;
        if status != expected {
            return Err(Error::Status {
                what: what.to_string(),
                status,
                expected,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(headers)
    }
}

fn spawn(dir: &TempDir, port: u16, settings: &str) -> Result<Child, Error> {
    let bin = std::env::var("TAGWARDEN_DOCKER_REGISTRY")
        .unwrap_or_else(|_| "docker-registry".to_string());
    let config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: tagwarden-test\n{settings}",
        dir.path().join("data").display()
    );
    let config_path = dir.path().join("config.yml");
    std::fs::write(&config_path, config).map_err(|reason| Error::Write {
        path: config_path.clone(),
        reason,
    })?;
    Command::new(&bin)
        .arg("serve")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|reason| Error::NotInstalled {
            program: bin,
            package: "docker-registry",
            reason,
        })
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

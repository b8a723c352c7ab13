//! Dev-only harness: real servers on 127.0.0.1 for end-to-end tests and
//! benchmarks. Each server gets a free port and a temporary directory and is
//! stopped (and its directory removed) on drop.

mod git;
mod pki;
mod proxy;
pub mod seed;
mod ssh;

pub use git::{BareRepo, GitHttpServer, git};
pub use pki::{Pki, TokenServer};
pub use proxy::{Action, FaultProxy, Request, hostile_tags, serve_tags, tag_page};
pub use ssh::{SshKeyPair, SshServer, current_user, ssh_keygen};

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("tagwarden-{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Debian's `docker-registry` (Distribution 2.8), started for one test.
pub struct Registry {
    child: Child,
    pub port: u16,
    dir: TempDir,
    tls: bool,
}

/// How the registry authenticates clients.
pub enum RegistryAuth {
    None,
    /// htpasswd with one user (bcrypt), as `auth: htpasswd:` configures it.
    Basic {
        user: String,
        password: String,
    },
    /// `auth: token:` trusting the JWTs of a [`TokenServer`].
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert_file: PathBuf,
    },
}

impl RegistryAuth {
    pub fn token(server: &TokenServer) -> RegistryAuth {
        RegistryAuth::Token {
            realm: server.realm(),
            service: server.service.clone(),
            issuer: server.issuer.clone(),
            cert_file: server.cert_file.clone(),
        }
    }
}

/// Serve HTTPS with these PEM files; with `client_ca`, demand a client
/// certificate signed by it.
pub struct RegistryTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl RegistryTls {
    /// The server certificate of `pki`; with `mutual`, client certificates
    /// signed by its CA are required too.
    pub fn from_pki(pki: &Pki, mutual: bool) -> RegistryTls {
        RegistryTls {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            client_ca: mutual.then(|| pki.ca_file.clone()),
        }
    }
}

impl Registry {
    /// Starts a plain-HTTP registry, or panics with the install hint when it is missing.
    pub fn start(auth: RegistryAuth) -> Registry {
        Registry::try_start(auth).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a plain-HTTP registry, or says why it could not (for `tagwarden demo`).
    pub fn try_start(auth: RegistryAuth) -> Result<Registry, String> {
        let dir = TempDir::new("registry");
        let port = free_port();
        let child = spawn_registry(&dir, port, &auth, None)?;
        let r = Registry {
            child,
            port,
            dir,
            tls: false,
        };
        r.wait_ready()?;
        Ok(r)
    }

    /// Stops and starts again on the same port and storage with other
    /// settings. The harness publishes over plain HTTP without auth, so tests
    /// of TLS and token auth publish first and lock the door after.
    pub fn restart(&mut self, auth: RegistryAuth, tls: Option<RegistryTls>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.tls = tls.is_some();
        self.child = spawn_registry(&self.dir, self.port, &auth, tls.as_ref())
            .unwrap_or_else(|e| panic!("{e}"));
        self.wait_ready().unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Directory the registry stores blobs and manifests in.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn wait_ready(&self) -> Result<(), String> {
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
        Err(format!(
            "docker-registry on port {} did not come up",
            self.port
        ))
    }

    /// Publishes `tags` of `repo`, each a real manifest PUT over the API (one
    /// config blob and one layer blob shared by all).
    pub fn publish(&self, repo: &str, tags: &[&str], basic: Option<(&str, &str)>) {
        let auth = basic.map(|(u, p)| format!("Basic {}", base64(&format!("{u}:{p}"))));
        let headers = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
            let mut h: Vec<(String, String)> = extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if let Some(a) = &auth {
                h.push(("Authorization".into(), a.clone()));
            }
            h
        };
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = b"tagwarden test layer";
        let cfg_digest = self.upload_blob(repo, config, &headers(&[]));
        let layer_digest = self.upload_blob(repo, layer, &headers(&[]));
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{cfg_digest}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{layer_digest}"}}]}}"#,
            config.len(),
            layer.len()
        );
        for tag in tags {
            let (status, _, body) = http_h(
                self.port,
                "PUT",
                &format!("/v2/{repo}/manifests/{tag}"),
                &headers(&[(
                    "Content-Type",
                    "application/vnd.docker.distribution.manifest.v2+json",
                )]),
                manifest.as_bytes(),
            )
            .expect("PUT manifest");
            assert_eq!(
                status,
                201,
                "PUT manifest {repo}:{tag}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    /// Publishes `repo:tag` as one OCI image for `os`/`arch`(/`variant`):
    /// a real config blob naming the platform, a layer and the manifest.
    /// Returns the manifest digest.
    pub fn publish_image(
        &self,
        repo: &str,
        tag: &str,
        os: &str,
        arch: &str,
        variant: Option<&str>,
    ) -> String {
        let (manifest, _) = self.oci_image(repo, os, arch, variant);
        self.put_manifest(repo, tag, OCI_MANIFEST, &manifest)
    }

    /// Publishes `repo:tag` as an OCI image index with one real image per
    /// `(os, arch, variant)`, each pushed by digest first as a registry
    /// demands. An `("unknown", "unknown", None)` entry is marked as an
    /// attestation, as BuildKit marks its SBOM and provenance manifests.
    /// Returns the index digest.
    pub fn publish_index(
        &self,
        repo: &str,
        tag: &str,
        platforms: &[(&str, &str, Option<&str>)],
    ) -> String {
        let mut entries = Vec::new();
        for (os, arch, variant) in platforms {
            let (manifest, mut platform) = self.oci_image(repo, os, arch, *variant);
            let digest = format!("sha256:{:x}", Sha256::digest(&manifest));
            self.put_manifest(repo, &digest, OCI_MANIFEST, &manifest);
            let mut entry = serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "size": manifest.len(),
                "digest": digest,
            });
            if *os == "unknown" && *arch == "unknown" {
                entry["annotations"] = serde_json::json!({
                    "vnd.docker.reference.type": "attestation-manifest",
                });
                platform = serde_json::json!({"os": "unknown", "architecture": "unknown"});
            }
            entry["platform"] = platform;
            entries.push(entry);
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
        });
        self.put_manifest(repo, tag, OCI_INDEX, index.to_string().as_bytes())
    }

    /// Uploads the blobs of one OCI image and returns its manifest (not yet
    /// pushed) and its platform object.
    fn oci_image(
        &self,
        repo: &str,
        os: &str,
        arch: &str,
        variant: Option<&str>,
    ) -> (Vec<u8>, serde_json::Value) {
        let mut platform = serde_json::json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        let mut config = platform.clone();
        config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": []});
        let config = config.to_string().into_bytes();
        let layer = format!("tagwarden test layer for {platform}").into_bytes();
        let config_digest = self.upload_blob(repo, &config, &[]);
        let layer_digest = self.upload_blob(repo, &layer, &[]);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": config.len(),
                "digest": config_digest,
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "size": layer.len(),
                "digest": layer_digest,
            }],
        });
        (manifest.to_string().into_bytes(), platform)
    }

    /// PUTs a manifest under `reference` (a tag or its digest); returns the
    /// digest the registry computed.
    fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> String {
        let (status, headers, resp) = http_h(
            self.port,
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type".into(), media_type.into())],
            body,
        )
        .expect("PUT manifest");
        assert_eq!(
            status,
            201,
            "PUT manifest {repo}:{reference}: {}",
            String::from_utf8_lossy(&resp)
        );
        headers
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("docker-content-digest"))
            .map(|(_, v)| v)
            .expect("Docker-Content-Digest of the pushed manifest")
    }

    /// Adds many tags fast by writing the registry's own storage layout:
    /// every tag points at the manifest of an already published tag.
    pub fn bulk_tag(&self, repo: &str, existing: &str, tags: impl IntoIterator<Item = String>) {
        let base = self
            .data_dir()
            .join("docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags");
        let link =
            std::fs::read(base.join(existing).join("current/link")).expect("existing tag link");
        for tag in tags {
            let d = base.join(&tag).join("current");
            std::fs::create_dir_all(&d).expect("mkdir tag");
            std::fs::write(d.join("link"), &link).expect("write tag link");
        }
    }

    fn upload_blob(&self, repo: &str, data: &[u8], headers: &[(String, String)]) -> String {
        let digest = format!("sha256:{:x}", Sha256::digest(data));
        let (status, resp_headers, _) = http_h(
            self.port,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            headers,
            b"",
        )
        .expect("start upload");
        assert_eq!(status, 202, "start blob upload");
        let location = resp_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.clone())
            .expect("upload location");
        let path = location
            .split_once("://")
            .map_or(location.as_str(), |(_, rest)| {
                rest.find('/').map_or(rest, |i| &rest[i..])
            });
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut h = headers.to_vec();
        h.push(("Content-Type".into(), "application/octet-stream".into()));
        let (status, _, body) = http_h(
            self.port,
            "PUT",
            &format!("{path}{sep}digest={digest}"),
            &h,
            data,
        )
        .expect("finish upload");
        assert_eq!(
            status,
            201,
            "finish blob upload: {}",
            String::from_utf8_lossy(&body)
        );
        digest
    }
}

fn spawn_registry(
    dir: &TempDir,
    port: u16,
    auth: &RegistryAuth,
    tls: Option<&RegistryTls>,
) -> Result<Child, String> {
    let bin = std::env::var("TAGWARDEN_DOCKER_REGISTRY")
        .unwrap_or_else(|_| "docker-registry".to_string());
    let auth_section = match auth {
        RegistryAuth::None => String::new(),
        RegistryAuth::Basic { user, password } => {
            let hash = bcrypt::hash(password, 4).expect("bcrypt");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{user}:{hash}\n")).expect("write htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                file.display()
            )
        }
        RegistryAuth::Token {
            realm,
            service,
            issuer,
            cert_file,
        } => format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
            cert_file.display()
        ),
    };
    let tls_section = tls.map_or(String::new(), |t| {
        let mut s = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            t.cert.display(),
            t.key.display()
        );
        if let Some(ca) = &t.client_ca {
            s.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
        }
        s
    });
    let config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: tagwarden-test\n{tls_section}{auth_section}",
        dir.path().join("data").display()
    );
    let config_path = dir.path().join("config.yml");
    std::fs::write(&config_path, config).expect("write registry config");
    Command::new(&bin)
        .arg("serve")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {bin}: {e}; install it with: sudo apt-get install docker-registry"
            )
        })
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// A one-shot HTTP/1.1 request to 127.0.0.1:port.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let owned: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    http_h(port, method, path, &owned, body)
}

fn http_h(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    Ok((status, headers, raw[split + 4..].to_vec()))
}

/// Standard base64, for Basic auth headers and docker configs in tests.
pub fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

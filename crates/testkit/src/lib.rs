//! Dev-only harness: real servers on 127.0.0.1 for end-to-end tests and
//! benchmarks. Each server gets a free port and a temporary directory and is
//! stopped (and its directory removed) on drop.

mod apiserver;
mod azure;
mod forge;
mod gcp;
mod git;
mod gitea;
mod github;
mod gitlab;
mod moto;
mod pki;
mod proxy;
mod rsa_keys;
mod ssh;
mod standin;

pub use apiserver::{ApiServer, IssuedToken, Recorded, Resource};
pub use azure::{ACR_USER, AcrFront, AzureEntra, AzureImds, EntraConfig, IMDS_DEFAULT_CLIENT_ID};
pub use forge::ForgePull;
pub use gcp::{GcpMetadata, GcpSts, GcpStsConfig};
pub use git::GitHttpServer;
pub use gitea::GiteaStandIn;
pub use github::{GitHubStandIn, github_app_jwt};
pub use gitlab::{GITLAB_PROJECT_ID, GitLabStandIn};
pub use moto::{AwsKeys, Moto};
pub use pki::{Pki, TokenServer};
pub use proxy::{Action, FaultProxy, Request, hostile_tags, serve_tags, tag_page};
pub use rsa_keys::{GITHUB_APP_KEY, OTHER_RSA_KEY, RsaTestKey};
pub use ssh::{SshKeyPair, SshServer, current_user, ssh_keygen};
pub use standin::{CloudRequest, Federated, jwt_shaped};

pub use tagwarden_sandbox::{BareRepo, TempDir, free_port, git, http, seed};

use sha2::Digest as _;
use std::path::{Path, PathBuf};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Debian's `docker-registry` (Distribution 2.8), started for one test, with
/// the auth and TLS settings the demo's [`tagwarden_sandbox::Registry`] lacks.
pub struct Registry {
    inner: tagwarden_sandbox::Registry,
    pub port: u16,
    /// htpasswd files, kept apart from the registry's storage.
    files: TempDir,
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
        let files = TempDir::new("registry-auth");
        let inner =
            tagwarden_sandbox::Registry::start_with(&settings(&auth, None, files.path()), false)
                .unwrap_or_else(|e| panic!("{e}"));
        Registry {
            port: inner.port,
            inner,
            files,
        }
    }

    /// Stops and starts again on the same port and storage with other
    /// settings. The harness publishes over plain HTTP without auth, so tests
    /// of TLS and token auth publish first and lock the door after.
    pub fn restart(&mut self, auth: RegistryAuth, tls: Option<RegistryTls>) {
        let settings = settings(&auth, tls.as_ref(), self.files.path());
        self.inner
            .restart_with(&settings, tls.is_some())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn host(&self) -> String {
        self.inner.host()
    }

    /// Directory the registry stores blobs and manifests in.
    pub fn data_dir(&self) -> PathBuf {
        self.inner.data_dir()
    }

    /// Publishes `tags` of `repo` (see [`tagwarden_sandbox::Registry::publish`]),
    /// with `basic` credentials when the registry wants them.
    pub fn publish(&self, repo: &str, tags: &[&str], basic: Option<(&str, &str)>) {
        let auth = basic.map(|(u, p)| format!("Basic {}", base64(&format!("{u}:{p}"))));
        self.inner
            .publish(repo, tags, auth.as_deref())
            .unwrap_or_else(|e| panic!("{e}"));
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
        let (manifest, _) = self.oci_image(repo, os, arch, variant, None);
        self.put_manifest(repo, tag, OCI_MANIFEST, &manifest)
    }

    /// Publishes `repo:tag` as a linux/amd64 OCI image whose config says it
    /// was `created` then (RFC 3339).
    pub fn publish_image_created(&self, repo: &str, tag: &str, created: &str) -> String {
        let (manifest, _) = self.oci_image(repo, "linux", "amd64", None, Some(created));
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
            let (manifest, mut platform) = self.oci_image(repo, os, arch, *variant, None);
            let digest = format!("sha256:{:x}", sha2::Sha256::digest(&manifest));
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
        created: Option<&str>,
    ) -> (Vec<u8>, serde_json::Value) {
        let mut platform = serde_json::json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        let mut config = platform.clone();
        if let Some(c) = created {
            config["created"] = c.into();
        }
        config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": []});
        let config = config.to_string().into_bytes();
        let layer = format!("tagwarden test layer for {platform}").into_bytes();
        let config_digest = self
            .inner
            .upload_blob(repo, &config, &[])
            .expect("upload config");
        let layer_digest = self
            .inner
            .upload_blob(repo, &layer, &[])
            .expect("upload layer");
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
        let (status, headers, resp) = http(
            self.port,
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
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
}

/// The config.yml lines for `auth` and `tls`; an htpasswd goes into `files`.
fn settings(auth: &RegistryAuth, tls: Option<&RegistryTls>, files: &Path) -> String {
    let auth_section = match auth {
        RegistryAuth::None => String::new(),
        RegistryAuth::Basic { user, password } => {
            let hash = bcrypt::hash(password, 4).expect("bcrypt");
            let file = files.join("htpasswd");
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
    format!("{tls_section}{auth_section}")
}

/// Standard base64, for Basic auth headers and docker configs in tests.
pub fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

//! From an ImageRepository and the Secrets it names to what a scan needs:
//! the image, client options, credentials and the exclusion list.

use crate::{
    ClientOptions, CloudLogin, Credentials, Identity, Provider, RegistryError,
    credentials_from_docker_config,
};
use regex::Regex;
use tagwarden_api::image::ImageRef;
use tagwarden_api::{ImageRepository, Secret};

/// Everything one scan of an ImageRepository uses.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    pub image: ImageRef,
    pub options: ClientOptions,
    pub credentials: Option<Credentials>,
    /// For `spec.provider` aws, gcp or azure: the cloud login that yields
    /// the credentials (`credentials` stays empty then, as Flux ignores
    /// `secretRef` for a cloud provider).
    pub login: Option<CloudLogin>,
    pub exclusions: Vec<Regex>,
}

impl ScanSettings {
    /// Who sees which list: the canonical image, the exclusion patterns and
    /// the credentials (or cloud identity), hashed together. Repositories
    /// with the same identity scan the same list, so a store keeps one copy.
    /// The hash carries no secret that could be read back out of it.
    pub fn list_identity(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        field(b"tagwarden tag list v1");
        field(self.image.canonical().as_bytes());
        for r in &self.exclusions {
            field(r.as_str().as_bytes());
        }
        match (&self.credentials, &self.login) {
            (Some(c), _) => {
                field(b"basic");
                field(c.username.as_bytes());
                field(c.password.as_bytes());
            }
            (None, Some(l)) => {
                field(l.provider.as_str().as_bytes());
                if let crate::Identity::ServiceAccount {
                    namespace,
                    name,
                    annotations,
                } = &l.identity
                {
                    field(namespace.as_bytes());
                    field(name.as_bytes());
                    for (k, v) in annotations {
                        field(k.as_bytes());
                        field(v.as_bytes());
                    }
                }
            }
            (None, None) => field(b"anonymous"),
        }
        format!("{:x}", h.finalize())
    }
}

/// Reads the repository's spec and its `secretRef`, `certSecretRef` and
/// `proxySecretRef`; `secret` finds a Secret by name in the repository's
/// namespace.
pub fn scan_settings<'a>(
    repo: &ImageRepository,
    secret: impl Fn(&str) -> Option<&'a Secret>,
) -> Result<ScanSettings, RegistryError> {
    let image = ImageRef::parse(&repo.image).map_err(|e| RegistryError::ImageUrl(e.to_string()))?;
    // A provider logs in to its own registries only: say so before anything
    // else, as Flux does.
    let host = image.registry.split(':').next().unwrap_or_default();
    if !crate::provider::host_matches(&repo.provider, host) {
        return Err(RegistryError::Config(format!(
            "spec.provider: '{}' logs in to {} only; spec.image is on '{}'",
            repo.provider,
            crate::provider::expected_hosts(&repo.provider),
            image.registry
        )));
    }
    let provider = Provider::parse(&repo.provider);
    let find = |field: &str, name: &str| {
        secret(name).ok_or_else(|| RegistryError::Secret {
            field: field.to_string(),
            message: format!("secret '{}/{name}' not found", repo.meta.namespace),
        })
    };
    let mut options = ClientOptions {
        insecure: repo.insecure,
        // Flux: the timeout defaults to the interval.
        timeout: repo.timeout.unwrap_or(repo.interval),
        ..ClientOptions::default()
    };
    let mut credentials = None;
    if let Some(name) = repo.secret_ref.as_ref().filter(|_| provider.is_none()) {
        let s = find("spec.secretRef", name)?;
        let json = s
            .data
            .get(".dockerconfigjson")
            .or_else(|| s.data.get(".dockercfg"))
            .ok_or_else(|| RegistryError::Secret {
                field: "spec.secretRef".into(),
                message: format!("secret '{name}' has no '.dockerconfigjson' key"),
            })?;
        credentials = credentials_from_docker_config(json, &image.registry).map_err(|m| {
            RegistryError::Secret {
                field: "spec.secretRef".into(),
                message: format!("secret '{name}': {m}"),
            }
        })?;
    }
    if let Some(name) = &repo.cert_secret_ref {
        let s = find("spec.certSecretRef", name)?;
        // Kubernetes TLS keys first; Flux still reads the deprecated ones.
        let key = |new: &str, old: &str| s.data.get(new).or_else(|| s.data.get(old)).cloned();
        options.ca_pem = key("ca.crt", "caFile");
        match (key("tls.crt", "certFile"), key("tls.key", "keyFile")) {
            (Some(mut cert), Some(k)) => {
                cert.push(b'\n');
                cert.extend_from_slice(&k);
                options.identity_pem = Some(cert);
            }
            (None, None) => {}
            _ => {
                return Err(RegistryError::Secret {
                    field: "spec.certSecretRef".into(),
                    message: format!(
                        "secret '{name}': 'tls.crt' and 'tls.key' go together; one is missing"
                    ),
                });
            }
        }
        if options.ca_pem.is_none() && options.identity_pem.is_none() {
            return Err(RegistryError::Secret {
                field: "spec.certSecretRef".into(),
                message: format!("secret '{name}' has none of 'ca.crt', 'tls.crt', 'tls.key'"),
            });
        }
    }
    if let Some(name) = &repo.proxy_secret_ref {
        let s = find("spec.proxySecretRef", name)?;
        let text = |k: &str| {
            s.data
                .get(k)
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let address = text("address").ok_or_else(|| RegistryError::Secret {
            field: "spec.proxySecretRef".into(),
            message: format!("secret '{name}' has no 'address' key"),
        })?;
        let mut url = url::Url::parse(&address).map_err(|e| RegistryError::Secret {
            field: "spec.proxySecretRef".into(),
            message: format!("secret '{name}': invalid proxy address '{address}': {e}"),
        })?;
        if let Some(user) = text("username") {
            let ok = url.set_username(&user).is_ok()
                && url.set_password(text("password").as_deref()).is_ok();
            if !ok {
                return Err(RegistryError::Secret {
                    field: "spec.proxySecretRef".into(),
                    message: format!(
                        "secret '{name}': proxy address '{address}' takes no credentials"
                    ),
                });
            }
        }
        options.proxy = Some(url.to_string());
    }
    // The model has already put Flux's default in place of a missing list;
    // an explicit empty list excludes nothing.
    let exclusions = repo
        .exclusion_list
        .iter()
        .enumerate()
        .map(|(i, p)| {
            tagwarden_policy::go_regex(p).map_err(|e| RegistryError::Exclusion {
                index: i,
                message: e.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    let login = provider.map(|provider| CloudLogin {
        provider,
        registry: host.to_ascii_lowercase(),
        identity: Identity::Controller,
        proxy: options.proxy.clone(),
        timeout: options.timeout,
    });
    Ok(ScanSettings {
        image,
        options,
        credentials,
        login,
        exclusions,
    })
}

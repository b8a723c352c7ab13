//! Native cloud registry login for `spec.provider: aws | gcp | azure`.
//!
//! [`CloudAuth`] implements the registry crate's [`Login`] seam: it finds
//! the process's cloud identity the way the cloud SDKs do (environment
//! keys, federated token files, pod identity agents, instance metadata), or
//! a ServiceAccount's through a Kubernetes TokenRequest (object-level
//! workload identity), exchanges it for registry credentials, and caches
//! those until shortly before they expire.
//!
//! Nothing here prints a token: error messages carry the step, the status
//! and the service's own error code and message, with every secret we hold
//! for the request scrubbed from them.

mod aws;
mod azure;
mod cache;
mod gcp;
mod http;

pub use cache::{CACHE_CAPACITY, TokenCache};
pub use tagwarden_registry::{CloudLogin, Identity, Issued, Login, Provider};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use tagwarden_registry::{BoxFuture, Credentials, Network, RegistryError};

/// What went wrong in a login; converted to the registry's `Login` error
/// at the seam.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// Nothing in the environment (or the ServiceAccount) says who we are.
    #[error("{0}")]
    NoIdentity(String),
    /// Settings we were given are wrong (a file, an annotation, a URL).
    #[error("{0}")]
    Config(String),
    /// An endpoint could not be reached, or answered 5xx/429.
    #[error("{step}: {message}")]
    Unreachable { step: &'static str, message: String },
    /// An endpoint refused (4xx) with the service's reason.
    #[error("{step}: HTTP {status}: {message}")]
    Refused {
        step: &'static str,
        status: u16,
        message: String,
    },
    /// An endpoint answered, but not in its documented shape.
    #[error("{step}: malformed response: {message}")]
    Malformed { step: &'static str, message: String },
    /// The whole login took longer than the repository's timeout.
    #[error("login timed out after {0}")]
    Timeout(String),
}

impl CloudError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CloudError::Unreachable { .. } | CloudError::Timeout(_)
        )
    }
}

/// A Kubernetes TokenRequest for a ServiceAccount (controller mode).
pub trait ServiceAccountTokens: Send + Sync {
    /// A token for `namespace/name` valid for `audience`.
    fn token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        audience: &'a str,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// The environment variables a login reads, captured once (tests pass their
/// own instead of changing the process's).
#[derive(Debug, Clone, Default)]
pub struct Env(BTreeMap<String, String>);

/// The variables [`Env::from_process`] keeps.
const VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_ENDPOINT_URL_ECR_PUBLIC",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCE_METADATA_HOST",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    tagwarden_registry::network::CONNECT_TO_VAR,
    "SSL_CERT_FILE",
];

impl Env {
    pub fn from_process() -> Env {
        Env(VARS
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect())
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        Env(pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// A variable's value; empty counts as unset, as the SDKs treat it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Cloud login with a token cache; one per process.
pub struct CloudAuth {
    env: Env,
    network: Network,
    tokens: Option<Arc<dyn ServiceAccountTokens>>,
    cache: TokenCache,
    /// Logins being fetched: scans that miss the cache together share one
    /// fetch (a first pass over a thousand ECR repositories asks STS once).
    inflight: std::sync::Mutex<std::collections::HashMap<CloudLogin, Arc<Flight>>>,
}

/// One fetch and everyone waiting for it.
type Flight = tokio::sync::OnceCell<Result<Credentials, (String, bool)>>;

impl CloudAuth {
    /// Login from `env` (see [`Env`]); `TAGWARDEN_CONNECT_TO` and
    /// `SSL_CERT_FILE` in it apply to the identity endpoints.
    pub fn new(env: Env) -> Result<CloudAuth, RegistryError> {
        let network = Network::from_vars(|k| env.get(k).map(str::to_string))
            .map_err(RegistryError::Config)?;
        Ok(CloudAuth {
            env,
            network,
            tokens: None,
            cache: TokenCache::new(CACHE_CAPACITY),
            inflight: std::sync::Mutex::default(),
        })
    }

    /// Login from the process's environment.
    pub fn from_process() -> Result<CloudAuth, RegistryError> {
        CloudAuth::new(Env::from_process())
    }

    /// Issues ServiceAccount tokens for object-level workload identity.
    pub fn with_service_account_tokens(mut self, t: Arc<dyn ServiceAccountTokens>) -> CloudAuth {
        self.tokens = Some(t);
        self
    }

    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// A token for `identity`'s ServiceAccount with `audience`.
    async fn service_account_token(
        &self,
        identity: &Identity,
        audience: &str,
    ) -> Result<String, CloudError> {
        let Identity::ServiceAccount {
            namespace, name, ..
        } = identity
        else {
            return Err(CloudError::Config(
                "no service account to request a token for".into(),
            ));
        };
        let Some(tokens) = &self.tokens else {
            return Err(CloudError::NoIdentity(format!(
                "service account '{namespace}/{name}': tokens can only be requested in controller mode"
            )));
        };
        tokens
            .token(namespace, name, audience)
            .await
            .map_err(|message| CloudError::Refused {
                step: "kubernetes TokenRequest",
                status: 0,
                message: format!("service account '{namespace}/{name}': {message}"),
            })
    }

    /// Fetches within the login's deadline and caches what may be cached.
    async fn fetch_and_keep(&self, login: &CloudLogin) -> Result<Credentials, (String, bool)> {
        let fresh = match tokio::time::timeout(login.timeout, self.fetch(login)).await {
            Ok(r) => r,
            Err(_) => Err(CloudError::Timeout(tagwarden_api::duration::format(
                login.timeout,
            ))),
        };
        let fresh = fresh.map_err(|e| {
            tracing::warn!(provider = %login.provider, registry = %login.registry, identity = %login.identity, error = %e, "cloud login failed");
            (e.to_string(), e.is_transient())
        })?;
        if !self.cache.put(login, &fresh, SystemTime::now()) {
            // The issuer's expiry is already behind our clock (a skewed
            // clock, or moto's fixed 2015 date): good for the request at
            // hand, which the registry itself judges, never for later.
            tracing::debug!(provider = %login.provider, registry = %login.registry, "issued credentials expire too soon to cache; used once");
        }
        Ok(fresh.credentials)
    }

    /// Fetches fresh registry credentials, bypassing the cache.
    async fn fetch(&self, login: &CloudLogin) -> Result<Fresh, CloudError> {
        let http = http::Http::new(&self.network, login.proxy.as_deref())?;
        match login.provider {
            Provider::Aws => aws::login(self, &http, login).await,
            Provider::Gcp => gcp::login(self, &http, login).await,
            Provider::Azure => azure::login(self, &http, login).await,
        }
    }
}

/// Registry credentials just issued, with their expiry when known.
pub(crate) struct Fresh {
    pub credentials: Credentials,
    pub expires: Option<SystemTime>,
}

impl Login for CloudAuth {
    fn credentials<'a>(
        &'a self,
        login: &'a CloudLogin,
    ) -> BoxFuture<'a, Result<Issued, RegistryError>> {
        Box::pin(async move {
            if let Some(credentials) = self.cache.get(login, SystemTime::now()) {
                return Ok(Issued {
                    credentials,
                    cached: true,
                });
            }
            let flight = {
                let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
                map.entry(login.clone()).or_default().clone()
            };
            let shared = flight
                .get_or_init(|| async {
                    let r = self.fetch_and_keep(login).await;
                    // Later misses start their own fetch.
                    self.inflight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(login);
                    r
                })
                .await
                .clone();
            shared
                .map(|credentials| Issued {
                    credentials,
                    cached: false,
                })
                .map_err(|(message, transient)| RegistryError::Login {
                    provider: login.provider,
                    transient,
                    message,
                })
        })
    }

    fn forget(&self, login: &CloudLogin) {
        self.cache.remove(login);
    }
}

/// The registry client pool of a process: cloud login from the process's
/// environment, and `tokens` for ServiceAccounts when in a cluster. A bad
/// `TAGWARDEN_CONNECT_TO` or `SSL_CERT_FILE` is every client's error too, so
/// the pool is still made (each scan then names the variable).
pub fn pool(tokens: Option<Arc<dyn ServiceAccountTokens>>) -> tagwarden_registry::Pool {
    pool_with(None, tokens)
}

/// [`pool`] with `env` in place of the process's environment, for the
/// cloud login and the registry clients' network settings alike.
pub fn pool_with(
    env: Option<Env>,
    tokens: Option<Arc<dyn ServiceAccountTokens>>,
) -> tagwarden_registry::Pool {
    let mut pool = tagwarden_registry::Pool::new();
    let auth = match env {
        Some(env) => {
            match Network::from_vars(|k| env.get(k).map(str::to_string)) {
                Ok(n) => pool = pool.with_network(n),
                Err(e) => tracing::error!(error = %e, "network settings ignored"),
            }
            CloudAuth::new(env)
        }
        None => CloudAuth::from_process(),
    };
    match auth {
        Ok(auth) => {
            let auth = match tokens {
                Some(t) => auth.with_service_account_tokens(t),
                None => auth,
            };
            pool.with_login(Arc::new(auth))
        }
        Err(e) => {
            tracing::error!(error = %e, "cloud login is off");
            pool
        }
    }
}

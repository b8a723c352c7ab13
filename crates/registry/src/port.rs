//! What the engine asks of a registry, as a trait: the daemon, `run --once`
//! and the controller wire one long-lived implementation (the HTTP client
//! pool), tests may wire another.

use crate::{RegistryError, ScanSettings, TagList};
use std::future::Future;
use std::pin::Pin;

/// A boxed future, so the trait stays usable as `dyn Registry`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One platform of an image index (`linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The registry operations a reconcile uses. `settings` carries the image,
/// the connection options and the credentials of one ImageRepository.
pub trait Registry: Send + Sync {
    /// The tag list as a scan keeps it (what `Client::scan_tags` returns).
    fn scan<'a>(
        &'a self,
        settings: &'a ScanSettings,
    ) -> BoxFuture<'a, Result<TagList, RegistryError>>;

    /// The digest of `tag`'s manifest (index or image).
    fn digest<'a>(
        &'a self,
        settings: &'a ScanSettings,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<String, RegistryError>>;

    /// The platforms `tag` is published for: every entry of an index, or the
    /// one platform of a single image.
    fn platforms<'a>(
        &'a self,
        settings: &'a ScanSettings,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Platform>, RegistryError>>;

    /// The `created` time the image config of `tag` states (for an index,
    /// its first platform image's).
    fn created<'a>(
        &'a self,
        settings: &'a ScanSettings,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Option<std::time::SystemTime>, RegistryError>>;
}

#[cfg(feature = "http")]
/// One registry client per distinct connection setup, shared by every
/// reconcile of the process: bearer tokens and the scheme probe are paid
/// once per scope and host, not once per reconcile.
pub struct Pool {
    clients: std::sync::Mutex<Clients>,
    capacity: usize,
    /// One token map for every client: a token is keyed by registry, scope
    /// and a hash of the credentials, not by the connection setup.
    tokens: std::sync::Arc<std::sync::Mutex<crate::client::TokenMap>>,
    /// Cloud login for `spec.provider` aws, gcp and azure.
    login: Option<std::sync::Arc<dyn crate::Login>>,
    /// Connection overrides and extra roots; the process's when `None`.
    network: Option<crate::Network>,
}

#[cfg(feature = "http")]
/// The pooled clients with the tick of their last use.
#[derive(Default)]
struct Clients {
    by_key: std::collections::HashMap<String, (crate::Client, u64)>,
    tick: u64,
}

#[cfg(feature = "http")]
impl Default for Pool {
    fn default() -> Self {
        Pool::with_capacity(Pool::DEFAULT_CAPACITY)
    }
}

#[cfg(feature = "http")]
impl Pool {
    /// Distinct connection setups kept by [`Pool::new`]; each holds its own
    /// connections and tokens, so a process with more setups than this
    /// rebuilds the least recently used one when it comes back.
    pub const DEFAULT_CAPACITY: usize = 256;

    pub fn new() -> Pool {
        Pool::default()
    }

    /// A pool keeping at most `capacity` clients (at least one).
    pub fn with_capacity(capacity: usize) -> Pool {
        Pool {
            clients: std::sync::Mutex::default(),
            capacity: capacity.max(1),
            tokens: std::sync::Arc::default(),
            login: None,
            network: None,
        }
    }

    /// Uses `network` instead of the process's environment (tests, or a
    /// caller that read the settings elsewhere).
    pub fn with_network(mut self, network: crate::Network) -> Pool {
        self.network = Some(network);
        self
    }

    /// Logs in to cloud registries with `login`.
    pub fn with_login(mut self, login: std::sync::Arc<dyn crate::Login>) -> Pool {
        self.login = Some(login);
        self
    }

    /// Runs `op` with the settings' credentials: a Secret's, or a cloud
    /// login's. Cached cloud credentials the registry refuses are dropped
    /// and fetched once more; fresh ones refused are the login's error.
    async fn authenticated<T, F, Fut>(&self, s: &ScanSettings, op: F) -> Result<T, RegistryError>
    where
        F: Fn(crate::Client, Option<crate::Credentials>) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        use crate::login::{LoginResult, count_login};
        let client = self.client(&s.options)?;
        let Some(login) = &s.login else {
            return op(client, s.credentials.clone()).await;
        };
        let Some(source) = &self.login else {
            return Err(RegistryError::Login {
                provider: login.provider,
                message: "cloud login is not available in this process".into(),
                transient: false,
            });
        };
        let mut retried = false;
        loop {
            let issued = match source.credentials(login).await {
                Ok(i) => i,
                Err(e) => {
                    count_login(login.provider, LoginResult::Failure);
                    return Err(e);
                }
            };
            let result = if issued.cached {
                LoginResult::Hit
            } else {
                LoginResult::Miss
            };
            count_login(login.provider, result);
            match op(client.clone(), Some(issued.credentials)).await {
                Err(RegistryError::Authentication { status, .. }) => {
                    source.forget(login);
                    if issued.cached && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(RegistryError::LoginRefused {
                        provider: login.provider,
                        registry: s.image.registry.clone(),
                        repository: s.image.repository.clone(),
                        identity: login.identity.to_string(),
                        status,
                    });
                }
                r => return r,
            }
        }
    }

    /// Clients held now.
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client for `options`, made on first use; at capacity the least
    /// recently used client makes room.
    pub fn client(&self, options: &crate::ClientOptions) -> Result<crate::Client, RegistryError> {
        let key = options.pool_key();
        let mut clients = self.lock();
        clients.tick += 1;
        let tick = clients.tick;
        if let Some((c, used)) = clients.by_key.get_mut(&key) {
            *used = tick;
            return Ok(c.clone());
        }
        let network = match &self.network {
            Some(n) => n,
            None => crate::Network::process()?,
        };
        let c = crate::Client::with_tokens(options.clone(), self.tokens.clone(), network)?;
        if clients.by_key.len() >= self.capacity {
            let oldest = clients
                .by_key
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                clients.by_key.remove(&k);
            }
        }
        clients.by_key.insert(key, (c.clone(), tick));
        Ok(c)
    }
}

#[cfg(feature = "http")]
impl Registry for Pool {
    fn scan<'a>(&'a self, s: &'a ScanSettings) -> BoxFuture<'a, Result<TagList, RegistryError>> {
        Box::pin(self.authenticated(s, move |c, creds| async move {
            c.scan_tags(&s.image, creds.as_ref()).await
        }))
    }

    fn digest<'a>(
        &'a self,
        s: &'a ScanSettings,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<String, RegistryError>> {
        Box::pin(self.authenticated(s, move |c, creds| async move {
            c.digest(&s.image, tag, creds.as_ref()).await
        }))
    }

    fn platforms<'a>(
        &'a self,
        s: &'a ScanSettings,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Platform>, RegistryError>> {
        Box::pin(self.authenticated(s, move |c, creds| async move {
            c.platforms(&s.image, tag, creds.as_ref()).await
        }))
    }

    fn created<'a>(
        &'a self,
        s: &'a ScanSettings,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Option<std::time::SystemTime>, RegistryError>> {
        Box::pin(self.authenticated(s, move |c, creds| async move {
            c.created(&s.image, tag, creds.as_ref()).await
        }))
    }
}

#[cfg(all(test, feature = "http"))]
mod tests {
    use super::Pool;
    use crate::ClientOptions;

    fn opts(page_size: usize) -> ClientOptions {
        ClientOptions {
            page_size,
            ..ClientOptions::default()
        }
    }

    #[test]
    fn the_pool_shares_one_client_per_setup_and_evicts_the_least_recently_used() {
        let pool = Pool::with_capacity(2);
        let a = pool.client(&opts(1)).expect("a");
        let b = pool.client(&opts(2)).expect("b");
        assert!(a.same_as(&pool.client(&opts(1)).expect("a again")));
        assert_eq!(pool.len(), 2);
        // `a` was used last, so `b` makes room for `c`.
        pool.client(&opts(3)).expect("c");
        assert_eq!(pool.len(), 2);
        assert!(a.same_as(&pool.client(&opts(1)).expect("a kept")));
        assert!(!b.same_as(&pool.client(&opts(2)).expect("b rebuilt")));
        assert_eq!(pool.len(), 2);
    }
}

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
    /// The tag list as a scan keeps it (see [`crate::Client::scan_tags`]).
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
}

/// One registry client per distinct connection setup, shared by every
/// reconcile of the process: bearer tokens and the scheme probe are paid
/// once per scope and host, not once per reconcile.
#[derive(Default)]
pub struct Pool {
    clients: std::sync::Mutex<std::collections::HashMap<String, crate::Client>>,
}

impl Pool {
    pub fn new() -> Pool {
        Pool::default()
    }

    /// The client for `options`, made on first use.
    pub fn client(&self, options: &crate::ClientOptions) -> Result<crate::Client, RegistryError> {
        let key = options.pool_key();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let c = crate::Client::new(options.clone())?;
        clients.insert(key, c.clone());
        Ok(c)
    }
}

impl Registry for Pool {
    fn scan<'a>(&'a self, s: &'a ScanSettings) -> BoxFuture<'a, Result<TagList, RegistryError>> {
        Box::pin(async move {
            self.client(&s.options)?
                .scan_tags(&s.image, s.credentials.as_ref())
                .await
        })
    }

    fn digest<'a>(
        &'a self,
        s: &'a ScanSettings,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<String, RegistryError>> {
        Box::pin(async move {
            self.client(&s.options)?
                .digest(&s.image, tag, s.credentials.as_ref())
                .await
        })
    }

    fn platforms<'a>(
        &'a self,
        s: &'a ScanSettings,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Platform>, RegistryError>> {
        Box::pin(async move {
            self.client(&s.options)?
                .platforms(&s.image, tag, s.credentials.as_ref())
                .await
        })
    }
}

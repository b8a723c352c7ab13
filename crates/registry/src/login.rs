//! Cloud registry login as a seam: an ImageRepository with `spec.provider`
//! aws, gcp or azure asks a [`Login`] for registry credentials instead of
//! reading a Secret. The implementation (tagwarden-cloud) talks to the
//! cloud's identity endpoints and caches what they issue.

use crate::port::BoxFuture;
use crate::provider::Provider;
use crate::{Credentials, RegistryError};
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Whose identity logs in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// The process's own: environment, pod identity, instance metadata.
    Controller,
    /// A Kubernetes ServiceAccount's (object-level workload identity): a
    /// token issued for it, exchanged with the role or client its
    /// annotations name.
    ServiceAccount {
        namespace: String,
        name: String,
        /// The account's annotations, as read when the reconcile started.
        annotations: BTreeMap<String, String>,
    },
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Controller => f.write_str("the controller's identity"),
            Identity::ServiceAccount {
                namespace, name, ..
            } => write!(f, "service account '{namespace}/{name}'"),
        }
    }
}

/// One login: which provider, for which registry host, as whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CloudLogin {
    pub provider: Provider,
    /// The registry host (no scheme, no path), e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
    pub registry: String,
    pub identity: Identity,
    /// The repository's proxy (`proxySecretRef`), used for the cloud's
    /// endpoints too, as Flux does.
    pub proxy: Option<String>,
    /// Deadline for the whole login (every token request of it).
    pub timeout: Duration,
}

/// Credentials a login produced, and whether they came from the cache.
#[derive(Debug, Clone)]
pub struct Issued {
    pub credentials: Credentials,
    pub cached: bool,
}

/// Registry credentials from a cloud identity.
pub trait Login: Send + Sync {
    /// Credentials for `login`, from the cache while they are fresh.
    fn credentials<'a>(
        &'a self,
        login: &'a CloudLogin,
    ) -> BoxFuture<'a, Result<Issued, RegistryError>>;

    /// Drops what is cached for `login` (the registry refused it).
    fn forget(&self, login: &CloudLogin);
}

/// How a login ended, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LoginResult {
    /// Served from the cache.
    Hit,
    /// Fetched from the cloud.
    Miss,
    /// The cloud refused or could not be reached.
    Failure,
}

impl LoginResult {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginResult::Hit => "hit",
            LoginResult::Miss => "miss",
            LoginResult::Failure => "failure",
        }
    }
}

fn counts() -> &'static Mutex<BTreeMap<(Provider, LoginResult), u64>> {
    static COUNTS: OnceLock<Mutex<BTreeMap<(Provider, LoginResult), u64>>> = OnceLock::new();
    COUNTS.get_or_init(Default::default)
}

#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn count_login(provider: Provider, result: LoginResult) {
    *counts()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry((provider, result))
        .or_insert(0) += 1;
}

/// Cloud logins of this process by provider and result, for metrics.
pub fn login_counts() -> Vec<(Provider, LoginResult, u64)> {
    counts()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|((p, r), n)| (*p, *r, *n))
        .collect()
}

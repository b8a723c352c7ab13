//! A Distribution API client for what an ImageRepository scan needs: the tag
//! list (paginated, authenticated, retried politely), manifest digests and
//! platforms.
//!
//! The HTTP client (`Client`, `Pool`, `request_counts`) is behind the
//! default `http` feature; without it the crate is the seam alone (the
//! [`Registry`] trait and its types, settings, credentials and scan results),
//! for crates that must not link an HTTP stack.

mod auth;
#[cfg(feature = "http")]
mod client;
// The manifest and tag-page readers serve the HTTP client; without it only
// their public checks are used.
mod login;
#[cfg_attr(not(feature = "http"), allow(dead_code))]
mod manifest;
pub mod network;
mod port;
pub mod provider;
mod scan;
mod settings;
#[cfg_attr(not(feature = "http"), allow(dead_code))]
mod tags;

pub use auth::{Credentials, credentials_from_docker_config};
#[cfg(feature = "http")]
pub use client::{Client, request_counts};
pub use login::{CloudLogin, Identity, Issued, Login, LoginResult, login_counts};
pub use manifest::is_valid_digest;
pub use network::{ConnectTo, Network};
#[cfg(feature = "http")]
pub use port::Pool;
pub use port::{BoxFuture, Platform, Registry};
pub use provider::Provider;
pub use scan::{ScanResult, scan_result};
pub use settings::{ScanSettings, scan_settings};
pub use tags::{TagList, is_valid_tag, printable};

use std::time::Duration;

/// Manifest media types accepted for digest lookups.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// What went wrong talking to a registry; messages say what to check.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "{registry}: authentication failed (HTTP {status}): check the credentials in secretRef and their scope for '{repository}'"
    )]
    Authentication {
        registry: String,
        repository: String,
        status: u16,
    },
    #[error("{registry}: repository '{repository}' not found (HTTP 404): check spec.image")]
    NotFound {
        registry: String,
        repository: String,
    },
    #[error(
        "{registry}: no manifest '{reference}' in repository '{repository}' (HTTP 404): check the tag"
    )]
    ManifestNotFound {
        registry: String,
        repository: String,
        reference: String,
    },
    #[error("{registry}: HTTP {status} for {url}: {body}")]
    Status {
        registry: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{registry}: cannot connect: {message}")]
    Connect { registry: String, message: String },
    #[error("{registry}: malformed response for {url}: {message}")]
    Malformed {
        registry: String,
        url: String,
        message: String,
    },
    #[error("{registry}: response for {url} exceeds {limit} bytes")]
    TooLarge {
        registry: String,
        url: String,
        limit: usize,
    },
    #[error("{registry}: tag list exceeds {limit} pages")]
    TooManyPages { registry: String, limit: usize },
    #[error(
        "{registry}: repository '{repository}' lists more than {limit} tags; a scan keeps at most {limit}"
    )]
    TooManyTags {
        registry: String,
        repository: String,
        limit: usize,
    },
    #[error(
        "{registry}: the tag list of '{repository}' exceeds {limit} bytes in total; a scan reads at most {limit}"
    )]
    TagListTooLarge {
        registry: String,
        repository: String,
        limit: usize,
    },
    #[error(
        "{registry}: {operation} timed out after {after} (the timeout bounds the whole {operation}: every page, retry and token request)"
    )]
    Timeout {
        registry: String,
        operation: &'static str,
        after: String,
    },
    #[error(
        "{registry}: HTTP 429 for {url}: registry asked to retry after {retry_after_secs}s; giving up for now"
    )]
    RateLimited {
        registry: String,
        url: String,
        retry_after_secs: u64,
    },
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// A cloud login failed: the step and the cloud's words, never a token.
    #[error("spec.provider '{provider}': {message}")]
    Login {
        provider: Provider,
        message: String,
        transient: bool,
    },
    /// The registry refused what the cloud issued.
    #[error(
        "{registry}: the registry refused the {provider} credentials of {identity} (HTTP {status}): check that it may pull '{repository}'"
    )]
    LoginRefused {
        provider: Provider,
        registry: String,
        repository: String,
        identity: String,
        status: u16,
    },
    /// A feature this object needs is switched off in this process.
    #[error("{0}")]
    FeatureGate(String),
    #[error("spec.image: {0}")]
    ImageUrl(String),
    #[error("{field}: {message}")]
    Secret { field: String, message: String },
    #[error("spec.exclusionList[{index}]: {message}")]
    Exclusion { index: usize, message: String },
}

impl RegistryError {
    /// Worth retrying later without a change by the user.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Connect { .. }
            | RegistryError::TooLarge { .. }
            | RegistryError::Timeout { .. }
            | RegistryError::RateLimited { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            RegistryError::Login { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Nothing changes until the user edits the object: retrying is pointless.
    pub fn is_stalled(&self) -> bool {
        matches!(
            self,
            RegistryError::ImageUrl(_)
                | RegistryError::Exclusion { .. }
                | RegistryError::Config(_)
                | RegistryError::FeatureGate(_)
        )
    }

    /// Flux's condition reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::Authentication { .. }
            | RegistryError::Secret { .. }
            | RegistryError::Login { .. }
            | RegistryError::LoginRefused { .. } => "AuthenticationFailed",
            RegistryError::FeatureGate(_) => "FeatureGateDisabled",
            RegistryError::ImageUrl(_) => "ImageURLInvalid",
            RegistryError::Config(_) | RegistryError::Exclusion { .. } => "InvalidConfiguration",
            _ => "ReadOperationFailed",
        }
    }
}

/// Client settings, from an ImageRepository and its secrets.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Plain HTTP (`spec.insecure`).
    pub insecure: bool,
    /// Deadline for one whole operation (`spec.timeout`): a scan with all
    /// its pages, retries, waits and token requests, or a digest lookup.
    pub timeout: Duration,
    /// An attempt that connects or receives nothing for this long fails and
    /// is retried (within `timeout`).
    pub stall_timeout: Duration,
    /// Extra CA certificates, PEM (`certSecretRef` `ca.crt`).
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key, PEM (`tls.crt` + `tls.key`).
    pub identity_pem: Option<Vec<u8>>,
    /// Proxy URL with optional user and password (`proxySecretRef`).
    pub proxy: Option<String>,
    pub page_size: usize,
    pub max_pages: usize,
    /// Per response.
    pub max_body: usize,
    /// Tags per scan, valid or not, over all pages (default 1,000,000).
    pub max_tags: usize,
    /// Bytes of tag-list bodies per scan, over all pages (default 64 MiB).
    pub max_tag_bytes: usize,
    /// Attempts for a request that fails transiently.
    pub attempts: u32,
    /// First backoff; doubled per attempt, with jitter.
    pub backoff: Duration,
    /// Requests in flight per registry host, across all clients.
    pub per_registry: usize,
}

impl ClientOptions {
    /// What makes two clients different: options with one key share one
    /// client (and its tokens).
    #[cfg(feature = "http")]
    pub(crate) fn pool_key(&self) -> String {
        use sha2::Digest as _;
        let pem = |p: &Option<Vec<u8>>| {
            p.as_ref()
                .map(|b| format!("{:x}", sha2::Sha256::digest(b)))
                .unwrap_or_default()
        };
        format!(
            "{}|{:?}|{:?}|{}|{}|{}|{}|{}|{}|{}|{}|{:?}|{}",
            self.insecure,
            self.timeout,
            self.stall_timeout,
            pem(&self.ca_pem),
            pem(&self.identity_pem),
            self.proxy
                .as_deref()
                .map(|p| format!("{:x}", sha2::Sha256::digest(p)))
                .unwrap_or_default(),
            self.page_size,
            self.max_pages,
            self.max_body,
            self.max_tags,
            self.max_tag_bytes,
            self.backoff,
            self.attempts,
        )
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(30),
            ca_pem: None,
            identity_pem: None,
            proxy: None,
            page_size: 1000,
            max_pages: 1000,
            max_body: 32 << 20,
            max_tags: 1_000_000,
            max_tag_bytes: 64 << 20,
            attempts: 4,
            backoff: Duration::from_millis(200),
            per_registry: 4,
        }
    }
}

//! Webhook `Receiver`s (`notification.toolkit.fluxcd.io`) without the server.
//!
//! The daemon's HTTP handler finds the Receiver by [`hook_path`], reads at
//! most [`MAX_BODY`] bytes, asks [`validate`] whether the request is genuine
//! for the Receiver's type, and then reconciles [`targets`] at once.
//! Everything here is pure and synchronous: no I/O, no clock, no outbound
//! calls (see [`validate`] for what that means for `gcr` and `dockerhub`).

mod dispatch;
mod targets;
mod validate;

pub use dispatch::{Decision, dispatch};
pub use targets::{resource_errors, targets};
pub use validate::{Request, validate};

use sha2::{Digest, Sha256};

/// Largest request body accepted. notification-controller caps receiver
/// bodies at 3 MiB (`maxRequestSizeBytes`); a bigger one is refused with 413.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Where a Receiver listens, as notification-controller computes it:
/// `/hook/` + lowercase hex SHA-256 of `token + name + namespace`.
pub fn hook_path(token: &str, name: &str, namespace: &str) -> String {
    let mut h = Sha256::new();
    h.update(token.as_bytes());
    h.update(name.as_bytes());
    h.update(namespace.as_bytes());
    format!("/hook/{}", hex::encode(h.finalize()))
}

/// Why a webhook request was refused. Messages name the header or field at
/// fault and never contain the token or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("request body is {size} bytes, over the {MAX_BODY}-byte limit")]
    TooLarge { size: usize },
    #[error("method {0} not allowed: receivers only accept POST")]
    Method(String),
    #[error("unknown receiver type '{0}'")]
    UnknownType(String),
    #[error("receiver type '{0}' is not supported by tagwarden")]
    UnsupportedType(String),
    #[error("the receiver's token is empty, so its hook path is guessable; refusing requests")]
    EmptyToken,
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("malformed header {header}: {problem}")]
    MalformedHeader {
        header: &'static str,
        problem: String,
    },
    #[error("signature mismatch: {0} does not match the body signed with the receiver token")]
    SignatureMismatch(&'static str),
    #[error("header {0} does not match the receiver token")]
    TokenMismatch(&'static str),
    #[error("event '{event}' (header {header}) not in spec.events")]
    EventNotAllowed { event: String, header: &'static str },
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("unexpected payload: {0}")]
    Payload(String),
}

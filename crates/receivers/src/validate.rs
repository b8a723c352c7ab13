//! Per-type request checks, following notification-controller's receiver
//! handler, with the stricter payload checks noted on [`validate`].

use crate::{MAX_BODY, RejectReason};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use subtle::ConstantTimeEq;

/// The parts of an HTTP request a receiver looks at.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Header names are matched case-insensitively; the first match wins.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The first header called `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Decides whether `req`, sent to the hook path of a Receiver of
/// `receiver_type` with `spec.events` and secret `token`, is genuine.
///
/// Every type needs `POST`, a body of at most [`MAX_BODY`] bytes and a
/// non-empty token (an empty one would make the hook path guessable). Then:
///
/// - `generic`: nothing more; the secret path is the only check.
/// - `generic-hmac`: `X-Signature: <sha1|sha256|sha512>=<hex>`, HMAC of the
///   body keyed by the token.
/// - `github`: `X-Hub-Signature-256`, else `X-Hub-Signature`, in the same
///   `<alg>=<hex>` form; `X-GitHub-Event` must be in `events` when that is
///   non-empty (so `ping` passes only when listed or `events` is empty, as
///   in Flux). Event names compare case-insensitively, as Flux does.
/// - `gitlab`: `X-Gitlab-Token` equals the token; `X-Gitlab-Event` vs `events`.
/// - `bitbucket` (Server): signature as `github`; `X-Event-Key` vs `events`.
/// - `harbor`: `Authorization` equals the token.
/// - `dockerhub`: a JSON object with `repository.repo_url` and `push_data`.
///   Flux only checks that the body decodes. DockerHub's `callback_url` is
///   never called: tagwarden makes no outbound calls from a webhook.
/// - `quay`: a JSON object with `docker_url` and `updated_tags` (strings).
/// - `gcr`: `Authorization: Bearer <JWT>` and a Pub/Sub push body whose
///   `message.data` is base64 JSON with `action: INSERT`. Flux sends the JWT
///   to Google's tokeninfo endpoint; we cannot reach Google, so we check only
///   that it is a well-formed JWT issued by `accounts.google.com` and do NOT
///   verify its signature or expiry. Anyone who knows the hook path can pass.
/// - `nexus`: `X-Nexus-Webhook-Signature` is the hex HMAC-SHA1 of the body
///   keyed by the token, and the body is a JSON object.
/// - `acr`: a JSON object with `action: push` and `target.repository`.
///   Flux accepts any JSON; we skip ACR's `ping` and `delete` events.
/// - `cdevents`: a valid Flux type that tagwarden does not handle.
///
/// Secrets and signatures are compared in constant time.
pub fn validate(
    receiver_type: &str,
    events: &[String],
    token: &str,
    req: &Request,
) -> Result<(), RejectReason> {
    if req.body.len() > MAX_BODY {
        return Err(RejectReason::TooLarge {
            size: req.body.len(),
        });
    }
    if req.method != "POST" {
        return Err(RejectReason::Method(clip(req.method)));
    }
    let known = matches!(
        receiver_type,
        "generic"
            | "generic-hmac"
            | "github"
            | "gitlab"
            | "bitbucket"
            | "harbor"
            | "dockerhub"
            | "quay"
            | "gcr"
            | "nexus"
            | "acr"
    );
    if !known {
        return Err(if receiver_type == "cdevents" {
            RejectReason::UnsupportedType(receiver_type.to_string())
        } else {
            RejectReason::UnknownType(clip(receiver_type))
        });
    }
    if token.is_empty() {
        return Err(RejectReason::EmptyToken);
    }
    let key = token.as_bytes();
    match receiver_type {
        "generic" => Ok(()),
        "generic-hmac" => {
            let sig = required(req, "X-Signature")?;
            check_prefixed_hmac("X-Signature", sig, req.body, key)
        }
        "github" => {
            check_hub_signature(req, key)?;
            check_event(events, req, "X-GitHub-Event")
        }
        "gitlab" => {
            check_token(req, "X-Gitlab-Token", key)?;
            check_event(events, req, "X-Gitlab-Event")
        }
        "bitbucket" => {
            check_hub_signature(req, key)?;
            check_event(events, req, "X-Event-Key")
        }
        "harbor" => check_token(req, "Authorization", key),
        "dockerhub" => {
            let v = json(req.body)?;
            string_at(&v, &["repository", "repo_url"])?;
            match v.get("push_data") {
                Some(Value::Object(_)) => Ok(()),
                _ => Err(missing("push_data", "an object")),
            }
        }
        "quay" => {
            let v = json(req.body)?;
            string_at(&v, &["docker_url"])?;
            match v.get("updated_tags") {
                Some(Value::Array(tags)) if tags.iter().all(Value::is_string) => Ok(()),
                _ => Err(missing("updated_tags", "a list of strings")),
            }
        }
        "gcr" => check_gcr(req),
        "nexus" => {
            const HEADER: &str = "X-Nexus-Webhook-Signature";
            let sig = required(req, HEADER)?;
            let sig = decode_hex(HEADER, sig)?;
            if !hmac_matches::<Hmac<sha1::Sha1>>(key, req.body, &sig) {
                return Err(RejectReason::SignatureMismatch(HEADER));
            }
            json(req.body).map(|_| ())
        }
        "acr" => {
            let v = json(req.body)?;
            let action = string_at(&v, &["action"])?;
            if action != "push" {
                return Err(RejectReason::Payload(format!(
                    "ACR action '{}' is not a push",
                    clip(action)
                )));
            }
            string_at(&v, &["target", "repository"]).map(|_| ())
        }
        _ => Err(RejectReason::UnknownType(clip(receiver_type))),
    }
}

/// Header values and types come from the sender; keep echoes of them short.
fn clip(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn required<'r>(req: &'r Request, name: &'static str) -> Result<&'r str, RejectReason> {
    req.header(name).ok_or(RejectReason::MissingHeader(name))
}

fn check_token(req: &Request, name: &'static str, key: &[u8]) -> Result<(), RejectReason> {
    let given = required(req, name)?;
    // `ct_eq` on slices of different lengths is false; only the length leaks.
    if bool::from(given.as_bytes().ct_eq(key)) {
        Ok(())
    } else {
        Err(RejectReason::TokenMismatch(name))
    }
}

fn check_event(events: &[String], req: &Request, name: &'static str) -> Result<(), RejectReason> {
    if events.is_empty() {
        return Ok(());
    }
    let event = required(req, name)?;
    if events.iter().any(|e| e.eq_ignore_ascii_case(event)) {
        Ok(())
    } else {
        Err(RejectReason::EventNotAllowed {
            event: clip(event),
            header: name,
        })
    }
}

/// GitHub and Bitbucket Server: the SHA-256 header wins over the legacy one.
fn check_hub_signature(req: &Request, key: &[u8]) -> Result<(), RejectReason> {
    for name in ["X-Hub-Signature-256", "X-Hub-Signature"] {
        if let Some(sig) = req.header(name) {
            return check_prefixed_hmac(name, sig, req.body, key);
        }
    }
    Err(RejectReason::MissingHeader("X-Hub-Signature-256"))
}

/// `<alg>=<hex>` with alg one of sha1, sha256, sha512.
fn check_prefixed_hmac(
    name: &'static str,
    value: &str,
    body: &[u8],
    key: &[u8],
) -> Result<(), RejectReason> {
    let malformed = |problem: String| RejectReason::MalformedHeader {
        header: name,
        problem,
    };
    let (alg, hex_sig) = value
        .split_once('=')
        .ok_or_else(|| malformed("expected <algorithm>=<hex digest>".to_string()))?;
    let sig = decode_hex(name, hex_sig)?;
    let ok = match alg {
        "sha1" => hmac_matches::<Hmac<sha1::Sha1>>(key, body, &sig),
        "sha256" => hmac_matches::<Hmac<sha2::Sha256>>(key, body, &sig),
        "sha512" => hmac_matches::<Hmac<sha2::Sha512>>(key, body, &sig),
        other => {
            return Err(malformed(format!(
                "unsupported algorithm '{}' (sha1, sha256 or sha512)",
                clip(other)
            )));
        }
    };
    if ok {
        Ok(())
    } else {
        Err(RejectReason::SignatureMismatch(name))
    }
}

fn decode_hex(name: &'static str, s: &str) -> Result<Vec<u8>, RejectReason> {
    hex::decode(s).map_err(|_| RejectReason::MalformedHeader {
        header: name,
        problem: "signature is not a hex digest".to_string(),
    })
}

/// HMAC of `body` keyed by `key`, checked with the MAC's constant-time compare.
fn hmac_matches<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8], sig: &[u8]) -> bool {
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(sig).is_ok()
}

fn json(bytes: &[u8]) -> Result<Value, RejectReason> {
    // serde_json's messages give a position, never the input itself.
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| RejectReason::InvalidJson(e.to_string()))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(RejectReason::InvalidJson(
            "expected a JSON object".to_string(),
        ))
    }
}

fn missing(path: &str, what: &str) -> RejectReason {
    RejectReason::Payload(format!("`{path}` must be {what}"))
}

/// The string at `path` inside `v`.
fn string_at<'v>(v: &'v Value, path: &[&str]) -> Result<&'v str, RejectReason> {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(key)
            .ok_or_else(|| missing(&path.join("."), "a string"))?;
    }
    cur.as_str()
        .ok_or_else(|| missing(&path.join("."), "a string"))
}

const GOOGLE_ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];

fn check_gcr(req: &Request) -> Result<(), RejectReason> {
    const AUTH: &str = "Authorization";
    let auth = required(req, AUTH)?;
    let malformed = |problem: &str| RejectReason::MalformedHeader {
        header: AUTH,
        problem: problem.to_string(),
    };
    let jwt = auth
        .strip_prefix("Bearer ")
        .ok_or_else(|| malformed("expected `Bearer <JWT>`"))?;
    let mut parts = jwt.split('.');
    let (Some(head), Some(claims), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("the bearer token is not a JWT (three parts)"));
    };
    let segment = |s: &str| -> Option<Value> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice::<Value>(&raw)
            .ok()
            .filter(Value::is_object)
    };
    let head = segment(head).ok_or_else(|| malformed("the JWT header is not base64url JSON"))?;
    if !head.get("alg").is_some_and(Value::is_string) || sig.is_empty() {
        return Err(malformed("the JWT is not signed"));
    }
    let claims =
        segment(claims).ok_or_else(|| malformed("the JWT claims are not base64url JSON"))?;
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if !GOOGLE_ISSUERS.contains(&iss) {
        return Err(malformed("the JWT was not issued by accounts.google.com"));
    }

    let body = json(req.body)?;
    let data = string_at(&body, &["message", "data"])?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| missing("message.data", "base64"))?;
    let event: Value = serde_json::from_slice(&raw)
        .map_err(|e| RejectReason::InvalidJson(format!("in message.data: {e}")))?;
    match event.get("action").and_then(Value::as_str) {
        Some("INSERT") => Ok(()),
        Some(other) => Err(RejectReason::Payload(format!(
            "GCR action '{}' is not INSERT",
            clip(other)
        ))),
        None => Err(missing("message.data.action", "a string")),
    }
}

// Without libgit2 only the error type is used; the checks run in its callbacks.
#![cfg_attr(not(feature = "git2"), allow(dead_code))]

//! Host key verification against the `known_hosts` of a GitRepository
//! secret, in OpenSSH's file format: plain and wildcard host patterns,
//! negations, `[host]:port` for non-default ports, hashed `|1|salt|hash`
//! entries and `@revoked` markers. There is no prompt and no trust on first
//! use: a host we have no key for is refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Why a host key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyError {
    /// The secret has no `known_hosts`.
    NoKnownHosts,
    /// No entry names this host.
    Unknown { host: String, key_type: String },
    /// Entries name this host, none with the key it presented.
    Mismatch {
        host: String,
        key_type: String,
        /// The key types known_hosts has for this host.
        known_types: Vec<String>,
    },
    /// The key is listed under `@revoked`.
    Revoked { host: String },
}

impl std::fmt::Display for HostKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostKeyError::NoKnownHosts => write!(
                f,
                "unknown host key: the secret has no 'known_hosts', required for ssh:// URLs"
            ),
            HostKeyError::Unknown { host, key_type } => write!(
                f,
                "unknown host key: no {key_type} key for '{host}' in the secret's 'known_hosts'"
            ),
            HostKeyError::Mismatch {
                host,
                key_type,
                known_types,
            } if !known_types.contains(key_type) => write!(
                f,
                "host key mismatch: '{host}' presented a {key_type} key, the secret's 'known_hosts' has only {} for it (add its {key_type} key)",
                known_types.join(", ")
            ),
            HostKeyError::Mismatch { host, key_type, .. } => write!(
                f,
                "host key mismatch: the {key_type} key presented by '{host}' is not in the secret's 'known_hosts'"
            ),
            HostKeyError::Revoked { host } => {
                write!(f, "host key revoked: '{host}' presented a revoked key")
            }
        }
    }
}

/// How OpenSSH names a host in known_hosts: bare on port 22, else `[host]:port`.
pub fn host_entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Checks that `host` (as [`host_entry_name`] gives it) presented `key`, the
/// SSH wire encoding of its public key (which starts with its type).
pub fn verify(known_hosts: Option<&str>, host: &str, key: &[u8]) -> Result<(), HostKeyError> {
    let key_type = wire_key_type(key).unwrap_or("unknown").to_string();
    let Some(known_hosts) = known_hosts.filter(|k| !k.trim().is_empty()) else {
        return Err(HostKeyError::NoKnownHosts);
    };
    let mut known_types: Vec<String> = Vec::new();
    let mut matched = false;
    for line in known_hosts.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let mut revoked = false;
        if let Some(marker) = first.strip_prefix('@') {
            // CA-signed host certificates are not supported: skip, never trust.
            if marker != "revoked" {
                continue;
            }
            revoked = true;
            first = fields.next().unwrap_or_default();
        }
        let (Some(entry_type), Some(blob)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !hosts_match(first, host) {
            continue;
        }
        let same_key = STANDARD.decode(blob).is_ok_and(|b| b == key);
        if revoked {
            if same_key {
                return Err(HostKeyError::Revoked {
                    host: host.to_string(),
                });
            }
            continue;
        }
        if !known_types.iter().any(|t| t == entry_type) {
            known_types.push(entry_type.to_string());
        }
        matched |= same_key;
    }
    match (matched, known_types.is_empty()) {
        (true, _) => Ok(()),
        (false, false) => Err(HostKeyError::Mismatch {
            host: host.to_string(),
            key_type,
            known_types,
        }),
        (false, true) => Err(HostKeyError::Unknown {
            host: host.to_string(),
            key_type,
        }),
    }
}

/// The key type name at the start of an SSH wire-encoded public key.
fn wire_key_type(key: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(key.get(4..4 + len)?).ok()
}

/// A comma-separated pattern list: any positive match, no negated match.
fn hosts_match(patterns: &str, host: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_match(hashed, host);
    }
    let mut hit = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard(negated, host) {
                return false;
            }
        } else if wildcard(pattern, host) {
            hit = true;
        }
    }
    hit
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, host))`, as `ssh-keygen -H` writes.
fn hashed_match(salt_and_hash: &str, host: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(host.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH's `*` and `?` wildcards, host names compared case-insensitively.
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(kind: &str, body: &[u8]) -> Vec<u8> {
        let mut v = (kind.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind.as_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn plain_wildcard_negated_and_port_entries() {
        let key = wire("ssh-ed25519", b"k1");
        let line = |hosts: &str| format!("{hosts} ssh-ed25519 {}\n", STANDARD.encode(&key));
        assert_eq!(
            verify(Some(&line("github.com")), "github.com", &key),
            Ok(())
        );
        assert_eq!(
            verify(Some(&line("*.example.com")), "git.example.com", &key),
            Ok(())
        );
        assert!(
            verify(
                Some(&line("*.example.com,!bad.example.com")),
                "bad.example.com",
                &key
            )
            .is_err()
        );
        assert_eq!(
            verify(Some(&line("[127.0.0.1]:2222")), "[127.0.0.1]:2222", &key),
            Ok(())
        );
        // A key for port 22 does not vouch for another port.
        assert!(matches!(
            verify(Some(&line("127.0.0.1")), "[127.0.0.1]:2222", &key),
            Err(HostKeyError::Unknown { .. })
        ));
    }

    #[test]
    fn hashed_entries_match_by_hmac_sha1() {
        let key = wire("ssh-ed25519", b"k1");
        let salt = b"0123456789abcdefghij";
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).expect("any key length");
        mac.update(b"[127.0.0.1]:2222");
        let hash = mac.finalize().into_bytes();
        let kh = format!(
            "|1|{}|{} ssh-ed25519 {}\n",
            STANDARD.encode(salt),
            STANDARD.encode(hash),
            STANDARD.encode(&key)
        );
        assert_eq!(verify(Some(&kh), "[127.0.0.1]:2222", &key), Ok(()));
        assert!(matches!(
            verify(Some(&kh), "[127.0.0.1]:2223", &key),
            Err(HostKeyError::Unknown { .. })
        ));
    }

    #[test]
    fn mismatch_revoked_and_missing() {
        let key = wire("ssh-ed25519", b"k1");
        let other = wire("ssh-ed25519", b"k2");
        let kh = format!("host ssh-ed25519 {}\n", STANDARD.encode(&other));
        let err = verify(Some(&kh), "host", &key).expect_err("other key");
        assert!(err.to_string().contains("host key mismatch"), "{err}");
        // libssh2 cannot be told which host key type to ask for: say so.
        let rsa_only = format!("host ssh-rsa {}\n", STANDARD.encode(wire("ssh-rsa", b"r")));
        let err = verify(Some(&rsa_only), "host", &key).expect_err("other type");
        assert!(
            err.to_string().contains(
                "presented a ssh-ed25519 key, the secret's 'known_hosts' has only ssh-rsa"
            ),
            "{err}"
        );
        let revoked = format!(
            "@revoked host ssh-ed25519 {k}\nhost ssh-ed25519 {k}\n",
            k = STANDARD.encode(&key)
        );
        assert!(matches!(
            verify(Some(&revoked), "host", &key),
            Err(HostKeyError::Revoked { .. })
        ));
        let err = verify(None, "host", &key).expect_err("no known_hosts");
        assert!(err.to_string().contains("unknown host key"), "{err}");
    }
}

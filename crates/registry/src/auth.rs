//! Registry credentials: dockerconfigjson secrets, `WWW-Authenticate`
//! challenges and token responses.

use base64::Engine;

/// A username and password (or token used as password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

// Never print a password, not even in debug output.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Hosts that all mean Docker Hub in a docker config.
const DOCKER_HUB_ALIASES: &[&str] = &[
    "index.docker.io",
    "docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

fn normalize(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k);
    if DOCKER_HUB_ALIASES.contains(&host) {
        "index.docker.io".to_string()
    } else {
        host.to_string()
    }
}

/// Credentials for `registry` from a `.dockerconfigjson` (`auths` entries with
/// `auth` or `username`/`password`; Docker Hub under any of its names).
pub fn credentials_from_docker_config(
    json: &[u8],
    registry: &str,
) -> Result<Option<Credentials>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("invalid docker config JSON: {e}"))?;
    let auths = v
        .get("auths")
        .and_then(|a| a.as_object())
        .ok_or("docker config has no 'auths' object")?;
    let want = normalize(registry);
    for (key, entry) in auths {
        if normalize(key) != want {
            continue;
        }
        let field = |k: &str| {
            entry
                .get(k)
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .to_string()
        };
        let (user, pass) = (field("username"), field("password"));
        if !user.is_empty() || !pass.is_empty() {
            return Ok(Some(Credentials {
                username: user,
                password: pass,
            }));
        }
        let auth = field("auth");
        if !auth.is_empty() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| format!("auths.{key}.auth: expected base64 of user:password: {e}"))?;
            let raw = String::from_utf8(raw).map_err(|_| format!("auths.{key}.auth: not UTF-8"))?;
            let (u, p) = raw
                .split_once(':')
                .ok_or_else(|| format!("auths.{key}.auth: expected user:password"))?;
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
    }
    Ok(None)
}

#[cfg(feature = "http")]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[cfg(feature = "http")]
/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub(crate) fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, params) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut rest = params;
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim();
        let (value, next) = match after.strip_prefix('"') {
            Some(q) => q.split_once('"').map_or((q, ""), |(v, n)| (v, n)),
            None => after.split_once(',').map_or((after, ""), |(v, n)| (v, n)),
        };
        match key {
            "realm" => realm = Some(value.to_string()),
            "service" => service = Some(value.to_string()),
            _ => {}
        }
        rest = next;
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
    })
}

#[cfg(feature = "http")]
/// `{"token": …}` or `{"access_token": …}` with optional `expires_in`
/// (seconds; 60 when absent, as the token spec says).
pub(crate) fn parse_token(body: &[u8]) -> Option<(String, std::time::Duration)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let token = v
        .get("token")
        .or_else(|| v.get("access_token"))?
        .as_str()?
        .to_string();
    let ttl = v
        .get("expires_in")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(60)
        .max(60);
    Some((token, std::time::Duration::from_secs(ttl)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_entries() {
        let cfg = br#"{"auths":{"ghcr.io":{"auth":"dXNlcjpwYTpzcw=="},"https://index.docker.io/v1/":{"username":"hub","password":"pw"},"localhost:5000":{"username":"u","password":"p"}}}"#;
        let c = credentials_from_docker_config(cfg, "ghcr.io")
            .expect("valid")
            .expect("found");
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("user", "pa:ss")
        );
        let c = credentials_from_docker_config(cfg, "index.docker.io")
            .expect("valid")
            .expect("hub alias");
        assert_eq!(c.username, "hub");
        assert!(
            credentials_from_docker_config(cfg, "quay.io")
                .expect("valid")
                .is_none()
        );
        assert!(credentials_from_docker_config(b"{}", "x").is_err());
        assert!(format!("{c:?}").contains("<redacted>") && !format!("{c:?}").contains("pw"));
    }

    #[cfg(feature = "http")]
    #[test]
    fn challenges() {
        match parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        ) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://auth.docker.io/token");
                assert_eq!(service.as_deref(), Some("registry.docker.io"));
            }
            _ => panic!("bearer"),
        }
        assert!(matches!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        ));
        assert!(parse_challenge("Negotiate").is_none());
        assert_eq!(
            parse_token(br#"{"access_token":"t","expires_in":300}"#),
            Some(("t".into(), std::time::Duration::from_secs(300)))
        );
    }
}

//! Registry credentials by provider, identity and registry, each kept until
//! shortly before it expires and never past it, in a bounded map.

use crate::Fresh;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tagwarden_registry::{CloudLogin, Credentials, Identity, Provider};

/// Logins kept at most; the one expiring first makes room.
pub const CACHE_CAPACITY: usize = 1024;

/// Credentials without a stated expiry are kept this long.
const UNKNOWN_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// At most this much before expiry a token is renewed.
const MAX_MARGIN: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    provider: Provider,
    identity: Identity,
    registry: String,
}

impl Key {
    fn of(login: &CloudLogin) -> Key {
        Key {
            provider: login.provider,
            identity: login.identity.clone(),
            registry: login.registry.clone(),
        }
    }
}

struct Entry {
    credentials: Credentials,
    /// Renew from here on.
    renew_at: SystemTime,
}

pub struct TokenCache {
    map: Mutex<HashMap<Key, Entry>>,
    capacity: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            map: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The credentials for `login` while they are fresh at `now`.
    pub(crate) fn get(&self, login: &CloudLogin, now: SystemTime) -> Option<Credentials> {
        let mut map = self.lock();
        let key = Key::of(login);
        match map.get(&key) {
            Some(e) if now < e.renew_at => Some(e.credentials.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keeps `fresh` for `login`; false when it expires too soon to keep.
    /// Renewal comes a fifth of the lifetime (at most five minutes) before
    /// the expiry.
    pub(crate) fn put(&self, login: &CloudLogin, fresh: &Fresh, now: SystemTime) -> bool {
        let expires = fresh.expires.unwrap_or(now + UNKNOWN_LIFETIME);
        let Ok(life) = expires.duration_since(now) else {
            return false;
        };
        let renew_at = expires - (life / 5).min(MAX_MARGIN);
        if renew_at <= now {
            return false;
        }
        let mut map = self.lock();
        if map.len() >= self.capacity && !map.contains_key(&Key::of(login)) {
            map.retain(|_, e| e.renew_at > now);
            if map.len() >= self.capacity {
                let first = map
                    .iter()
                    .min_by_key(|(_, e)| e.renew_at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = first {
                    map.remove(&k);
                }
            }
        }
        map.insert(
            Key::of(login),
            Entry {
                credentials: fresh.credentials.clone(),
                renew_at,
            },
        );
        true
    }

    pub(crate) fn remove(&self, login: &CloudLogin) {
        self.lock().remove(&Key::of(login));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(registry: &str, identity: Identity) -> CloudLogin {
        CloudLogin {
            provider: Provider::Aws,
            registry: registry.into(),
            identity,
            proxy: None,
            timeout: Duration::from_secs(30),
        }
    }

    fn fresh(password: &str, expires: Option<SystemTime>) -> Fresh {
        Fresh {
            credentials: Credentials {
                username: "AWS".into(),
                password: password.into(),
            },
            expires,
        }
    }

    #[test]
    fn tokens_are_renewed_before_expiry_and_never_used_past_it() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cache = TokenCache::new(2);
        let a = login("a", Identity::Controller);
        // 12 hours (ECR): renewed 5 minutes early.
        assert!(cache.put(
            &a,
            &fresh("p", Some(t0 + Duration::from_secs(12 * 3600))),
            t0
        ));
        let edge = t0 + Duration::from_secs(12 * 3600 - 300);
        assert_eq!(
            cache
                .get(&a, edge - Duration::from_secs(1))
                .map(|c| c.password),
            Some("p".into())
        );
        assert!(cache.get(&a, edge).is_none());
        assert!(cache.is_empty(), "a stale entry goes when it is found");
        // 100 s: renewed at 80 s.
        assert!(cache.put(&a, &fresh("q", Some(t0 + Duration::from_secs(100))), t0));
        assert!(cache.get(&a, t0 + Duration::from_secs(79)).is_some());
        assert!(cache.get(&a, t0 + Duration::from_secs(80)).is_none());
        // Already expired (moto's fixed date): not kept at all.
        assert!(!cache.put(&a, &fresh("r", Some(t0 - Duration::from_secs(1))), t0));
        assert!(cache.get(&a, t0).is_none());
        // No stated expiry: ten minutes, less the margin.
        assert!(cache.put(&a, &fresh("s", None), t0));
        assert!(cache.get(&a, t0 + Duration::from_secs(479)).is_some());
        assert!(cache.get(&a, t0 + Duration::from_secs(480)).is_none());
    }

    #[test]
    fn one_entry_per_provider_identity_and_registry_within_the_bound() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cache = TokenCache::new(2);
        let sa = |name: &str| Identity::ServiceAccount {
            namespace: "apps".into(),
            name: name.into(),
            annotations: Default::default(),
        };
        let hour = |h: u64| Some(t0 + Duration::from_secs(h * 3600));
        cache.put(&login("r", sa("a")), &fresh("a", hour(1)), t0);
        cache.put(&login("r", sa("b")), &fresh("b", hour(3)), t0);
        assert_eq!(
            cache.get(&login("r", sa("a")), t0).map(|c| c.password),
            Some("a".into())
        );
        assert!(cache.get(&login("r", Identity::Controller), t0).is_none());
        assert!(cache.get(&login("other", sa("a")), t0).is_none());
        // Full: the entry expiring first makes room.
        cache.put(&login("r", Identity::Controller), &fresh("c", hour(2)), t0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&login("r", sa("a")), t0).is_none());
        assert!(cache.get(&login("r", sa("b")), t0).is_some());
        cache.remove(&login("r", sa("b")));
        assert!(cache.get(&login("r", sa("b")), t0).is_none());
    }
}

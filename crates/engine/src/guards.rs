//! Opt-in guards on what an ImagePolicy may select, configured through
//! annotations so the manifest stays valid under Flux's CRD schema:
//!
//! - `tagwarden.io/minimum-age: 24h`: a tag is eligible only that long
//!   after tagwarden first saw it in a scan. Tags already listed at the
//!   repository's first scan count as old (their age is unknown, and a fresh
//!   install must not freeze every policy). Until a newer tag is eligible
//!   the best eligible one stands, and the status says when the newer one
//!   becomes eligible.
//! - `tagwarden.io/platforms: linux/amd64,linux/arm64`: the selected tag
//!   must be an index (or image) holding every listed platform; otherwise
//!   the next best tag that does is chosen, and the skipped ones are named.
//!   Platforms are cached by manifest digest.

use crate::{Context, EngineError, Failure};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use tagwarden_api::ImagePolicy;
use tagwarden_store::Store;

pub(crate) const MINIMUM_AGE: &str = "tagwarden.io/minimum-age";
pub(crate) const MINIMUM_AGE_FROM: &str = "tagwarden.io/minimum-age-from";
pub(crate) const PLATFORMS: &str = "tagwarden.io/platforms";
pub(crate) const FLAP_WINDOW: &str = "tagwarden.io/flap-window";
pub(crate) const NO_DOWNGRADE: &str = "tagwarden.io/no-downgrade";
pub(crate) const BATCH_WINDOW: &str = "tagwarden.io/batch-window";

/// An automation's `tagwarden.io/batch-window`.
pub(crate) fn batch_window(
    auto: &tagwarden_api::ImageUpdateAutomation,
) -> Result<Option<Duration>, Failure> {
    duration_annotation(&auto.meta.annotations, BATCH_WINDOW)
}

fn writes_key(namespace: &str, name: &str) -> String {
    format!("writes/{namespace}/{name}")
}

/// What an automation wrote lately: setter → (value, Unix seconds).
type Writes = BTreeMap<String, (String, u64)>;

fn load_writes(db: &dyn Store, namespace: &str, name: &str) -> Writes {
    db.get(&writes_key(namespace, name))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The values this automation set less than `window` ago, by setter.
pub(crate) fn recent_writes(
    db: &dyn Store,
    namespace: &str,
    name: &str,
    window: Duration,
    now: SystemTime,
) -> std::collections::HashMap<String, String> {
    let since = secs(now).saturating_sub(window.as_secs());
    load_writes(db, namespace, name)
        .into_iter()
        .filter(|(_, (_, at))| *at >= since)
        .map(|(s, (v, _))| (s, v))
        .collect()
}

/// Records the values a push set; entries older than `window` go.
pub(crate) fn record_writes(
    db: &dyn Store,
    namespace: &str,
    name: &str,
    written: impl IntoIterator<Item = (String, String)>,
    window: Duration,
    now: SystemTime,
) -> Result<(), EngineError> {
    let since = secs(now).saturating_sub(window.as_secs());
    let mut all = load_writes(db, namespace, name);
    all.retain(|_, (_, at)| *at >= since);
    for (setter, value) in written {
        all.insert(setter, (value, secs(now)));
    }
    let bytes = serde_json::to_vec(&all).map_err(|e| EngineError::State {
        key: writes_key(namespace, name),
        message: e.to_string(),
    })?;
    Ok(db.put(&writes_key(namespace, name), &bytes)?)
}

/// An automation's `tagwarden.io/flap-window`.
pub(crate) fn automation_flap_window(
    auto: &tagwarden_api::ImageUpdateAutomation,
) -> Result<Option<Duration>, Failure> {
    duration_annotation(&auto.meta.annotations, FLAP_WINDOW)
}

fn batch_key(namespace: &str, name: &str) -> String {
    format!("batch/{namespace}/{name}")
}

/// When the pending batch started; starts it at `now` when none is.
pub(crate) fn batch_start(
    db: &dyn Store,
    namespace: &str,
    name: &str,
    now: SystemTime,
) -> Result<SystemTime, EngineError> {
    let key = batch_key(namespace, name);
    if let Some(b) = db.get(&key)?
        && let Some(s) = std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    {
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
    }
    db.put(&key, secs(now).to_string().as_bytes())?;
    Ok(now)
}

pub(crate) fn clear_batch(db: &dyn Store, namespace: &str, name: &str) -> Result<(), EngineError> {
    Ok(db.delete(&batch_key(namespace, name))?)
}

/// Candidates checked for platforms before giving up (each costs a HEAD,
/// and a GET on a cache miss).
const PLATFORM_TRIES: usize = 10;

/// The guards one policy asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Guards {
    pub minimum_age: Option<Duration>,
    /// `os/arch[/variant]`, as written.
    pub platforms: Vec<String>,
    /// A → B → A within this long: B stays until the window has passed.
    pub flap_window: Option<Duration>,
    /// `tagwarden.io/minimum-age-from: created`: age from the image
    /// config's `created` time instead of first seen.
    pub age_from_created: bool,
}

impl Guards {
    pub fn of(policy: &ImagePolicy) -> Result<Guards, Failure> {
        let a = &policy.meta.annotations;
        let invalid = |m: String| Failure::new("InvalidConfiguration", m, true);
        let duration = |key: &str| duration_annotation(a, key);
        let minimum_age = duration(MINIMUM_AGE)?;
        let age_from_created = match a.get(MINIMUM_AGE_FROM).map(|v| v.trim()) {
            None | Some("first-seen") => false,
            Some("created") => true,
            Some(v) => {
                return Err(invalid(format!(
                    "annotation {MINIMUM_AGE_FROM}: '{}' is not first-seen or created",
                    tagwarden_api::text::escape(v, false)
                )));
            }
        };
        let flap_window = duration(FLAP_WINDOW)?;
        let mut platforms = Vec::new();
        if let Some(v) = a.get(PLATFORMS) {
            for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let parts: Vec<&str> = p.split('/').collect();
                let ok = (2..=3).contains(&parts.len())
                    && parts.iter().all(|s| {
                        !s.is_empty()
                            && s.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    });
                if !ok {
                    return Err(invalid(format!(
                        "annotation {PLATFORMS}: '{}' is not os/arch[/variant]",
                        tagwarden_api::text::escape(p, false)
                    )));
                }
                platforms.push(p.to_string());
            }
        }
        Ok(Guards {
            minimum_age,
            platforms,
            flap_window,
            age_from_created,
        })
    }
}

/// A duration annotation; a value that is not one is a stalled error
/// naming it.
fn duration_annotation(
    a: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<Duration>, Failure> {
    match a.get(key) {
        None => Ok(None),
        Some(v) => tagwarden_api::duration::parse(v.trim())
            .map(Some)
            .ok_or_else(|| {
                Failure::new(
                    "InvalidConfiguration",
                    format!(
                        "annotation {key}: '{}' is not a duration (e.g. 24h, 90m)",
                        tagwarden_api::text::escape(v, false)
                    ),
                    true,
                )
            }),
    }
}

/// Before 0.9, by repository; now by shared list, since when a tag was
/// first seen is a fact of the image all its repositories share.
fn first_seen_key(namespace: &str, name: &str) -> String {
    format!("firstseen/{namespace}/{name}")
}

fn first_seen_list_key(list: &str) -> String {
    format!("firstseen/{list}")
}

fn platforms_key(digest: &str) -> String {
    format!("platforms/{digest}")
}

/// When tags were first seen. Tags of the first scan are not in `seen`
/// (they count as old); later ones are, until they leave the list.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct FirstSeen {
    /// Unix seconds by tag.
    pub seen: BTreeMap<String, u64>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn load_first_seen(
    db: &dyn Store,
    list: Option<&str>,
    namespace: &str,
    name: &str,
) -> Result<Option<FirstSeen>, EngineError> {
    let keys = list
        .map(first_seen_list_key)
        .into_iter()
        .chain([first_seen_key(namespace, name)]);
    for key in keys {
        if let Some(b) = db.get(&key)? {
            return serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| EngineError::State {
                    key,
                    message: e.to_string(),
                });
        }
    }
    Ok(None)
}

/// After a scan that changed list `list`: new tags get `now`, gone ones are
/// dropped. The first scan of a list records none. `known` is what
/// [`load_first_seen`] found.
pub(crate) fn record_first_seen(
    db: &dyn Store,
    list: &str,
    known: Option<FirstSeen>,
    previous: Option<&[String]>,
    tags: &[String],
    now: SystemTime,
) -> Result<(), EngineError> {
    let key = first_seen_list_key(list);
    let (Some(previous), Some(mut fs)) = (previous, known) else {
        return Ok(db.put(&key, b"{\"seen\":{}}")?);
    };
    let before: std::collections::HashSet<&str> = previous.iter().map(String::as_str).collect();
    let listed: std::collections::HashSet<&str> = tags.iter().map(String::as_str).collect();
    let kept = fs.seen.len();
    fs.seen.retain(|t, _| listed.contains(t.as_str()));
    let mut added = false;
    for t in tags {
        if !before.contains(t.as_str()) {
            added |= fs.seen.insert(t.clone(), secs(now)).is_none();
        }
    }
    // Another repository of the same list may have recorded this already.
    if !added && fs.seen.len() == kept && db.get(&key)?.is_some() {
        return Ok(());
    }
    let bytes = serde_json::to_vec(&fs).map_err(|e| EngineError::State {
        key: key.clone(),
        message: e.to_string(),
    })?;
    Ok(db.put(&key, &bytes)?)
}

/// Drops what is kept for a repository that is gone (its shared list and
/// first-seen times too, once no other repository names them).
pub fn forget_repository(db: &dyn Store, namespace: &str, name: &str) -> Result<(), EngineError> {
    crate::state::forget_tags(db, namespace, name, |list| {
        Ok(db.delete(&first_seen_list_key(list))?)
    })?;
    db.delete(&first_seen_key(namespace, name))?;
    Ok(())
}

/// What the guards did to a selection, for the status.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// Said after the Ready message.
    pub notes: Vec<String>,
    /// Run again then (a held-back tag becomes eligible).
    pub recheck: Option<Duration>,
}

/// The tags old enough under `min`: returns them, and the note and
/// re-check time for the best one held back (`best` is the policy's pick
/// over all tags).
pub(crate) fn old_enough(
    tags: &[String],
    fs: Option<&FirstSeen>,
    min: Duration,
    best: Option<&str>,
    now: SystemTime,
    held: &mut Held,
) -> Vec<String> {
    let Some(fs) = fs else {
        return tags.to_vec();
    };
    let eligible_at = |t: &str| {
        fs.seen
            .get(t)
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(*s) + min)
    };
    if let Some(b) = best
        && let Some(at) = eligible_at(b)
        && at > now
    {
        let wait = at.duration_since(now).unwrap_or_default();
        held.notes.push(format!(
            "{b} held back by {MINIMUM_AGE} {}: eligible at {}",
            tagwarden_api::duration::format(min),
            tagwarden_api::time::Time::from_system(at)
        ));
        held.recheck = Some(held.recheck.map_or(wait, |r| r.min(wait)));
    }
    tags.iter()
        .filter(|t| eligible_at(t).is_none_or(|at| at <= now))
        .cloned()
        .collect()
}

/// Whether `tag` is published for every platform required; cached by
/// digest in the store.
pub(crate) async fn has_platforms(
    ctx: &Context,
    settings: &tagwarden_registry::ScanSettings,
    tag: &str,
    required: &[String],
) -> Result<Result<(), Vec<String>>, tagwarden_registry::RegistryError> {
    let digest = ctx.registry.digest(settings, tag).await?;
    let key = platforms_key(&digest);
    let cached: Option<Vec<String>> = ctx
        .db
        .get(&key)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let have = match cached {
        Some(p) => p,
        None => {
            let p: Vec<String> = ctx
                .registry
                .platforms(settings, &digest)
                .await?
                .iter()
                .map(ToString::to_string)
                .collect();
            if let Ok(b) = serde_json::to_vec(&p) {
                let _ = ctx.db.put(&key, &b);
            }
            p
        }
    };
    // `linux/arm64` is met by `linux/arm64/v8`; a variant asked for must match.
    let missing: Vec<String> = required
        .iter()
        .filter(|r| {
            !have
                .iter()
                .any(|h| h == *r || h.starts_with(&format!("{r}/")))
        })
        .cloned()
        .collect();
    Ok(if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    })
}

fn selected_at_key(namespace: &str, name: &str) -> String {
    format!("selectedat/{namespace}/{name}")
}

/// When the policy's current selection was made (Unix seconds).
pub(crate) fn selected_at(db: &dyn Store, namespace: &str, name: &str) -> Option<SystemTime> {
    let b = db.get(&selected_at_key(namespace, name)).ok().flatten()?;
    let s: u64 = std::str::from_utf8(&b).ok()?.trim().parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

pub(crate) fn set_selected_at(
    db: &dyn Store,
    namespace: &str,
    name: &str,
    at: SystemTime,
) -> Result<(), EngineError> {
    Ok(db.put(
        &selected_at_key(namespace, name),
        secs(at).to_string().as_bytes(),
    )?)
}

/// The flap guard: going back to `previous` (the selection before the
/// current one) less than `window` after the current one was made is held.
/// The note, and when it goes through, or `None` to let it through.
pub(crate) fn flap(
    window: Duration,
    current: &str,
    previous: Option<&str>,
    candidate: &str,
    current_since: Option<SystemTime>,
    now: SystemTime,
) -> Option<(String, Duration)> {
    if previous != Some(candidate) || candidate == current {
        return None;
    }
    let since = current_since?;
    let until = since + window;
    let wait = until.duration_since(now).ok().filter(|w| !w.is_zero())?;
    Some((
        format!(
            "{candidate} held back by {FLAP_WINDOW} {}: it was replaced by {current} at {}, going back is allowed from {}",
            tagwarden_api::duration::format(window),
            tagwarden_api::time::Time::from_system(since),
            tagwarden_api::time::Time::from_system(until)
        ),
        wait,
    ))
}

/// The image config's `created` time of `tag`, cached by digest (a
/// config without one counts as old: its age cannot be known).
pub(crate) async fn created(
    ctx: &Context,
    settings: &tagwarden_registry::ScanSettings,
    tag: &str,
) -> Result<Option<SystemTime>, tagwarden_registry::RegistryError> {
    let digest = ctx.registry.digest(settings, tag).await?;
    let key = format!("created/{digest}");
    if let Some(b) = ctx.db.get(&key).ok().flatten()
        && let Some(s) = std::str::from_utf8(&b).ok()
    {
        return Ok(s
            .trim()
            .parse::<u64>()
            .ok()
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)));
    }
    let created = ctx.registry.created(settings, &digest).await?;
    let _ = ctx.db.put(
        &key,
        created
            .map(secs)
            .map(|s| s.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    Ok(created)
}

/// The number of candidates the platform walk tries.
pub(crate) fn platform_tries() -> usize {
    PLATFORM_TRIES
}

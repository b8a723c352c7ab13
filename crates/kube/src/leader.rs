//! Leader election on a `coordination.k8s.io/v1` Lease, as controller-runtime
//! does it: take the Lease when it is free or its holder stopped renewing
//! for `lease_duration`, renew it every `retry_period`, and give up (the
//! process stops reconciling) when a renewal has not succeeded for
//! `renew_deadline`. Updates carry the resourceVersion read, so two
//! candidates can never both win.

use crate::KubeError;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use std::time::Duration;

/// Flux's flags, with their defaults.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    pub namespace: String,
    pub name: String,
    /// This process, as written to `holderIdentity`.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderElection {
    pub fn new(namespace: &str, identity: &str) -> LeaderElection {
        LeaderElection {
            namespace: namespace.to_string(),
            name: "tagwarden-leader-election".to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(35),
            renew_deadline: Duration::from_secs(30),
            retry_period: Duration::from_secs(5),
        }
    }
}

fn micro(t: Timestamp) -> MicroTime {
    MicroTime(t)
}

/// Whether this lease may be taken by `me` at `now`.
fn takeable(spec: &LeaseSpec, me: &str, now: Timestamp) -> bool {
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == me {
        return true;
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let ttl = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renewed.0.as_second() + ttl < now.as_second()
}

/// One attempt to take or renew the lease; true when we hold it after.
async fn try_hold(api: &Api<Lease>, le: &LeaderElection) -> Result<bool, KubeError> {
    let now = Timestamp::now();
    let seconds = i32::try_from(le.lease_duration.as_secs()).unwrap_or(i32::MAX);
    match api.get_opt(&le.name).await.map_err(KubeError::api)? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(le.name.clone()),
                    namespace: Some(le.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(le.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(micro(now)),
                    renew_time: Some(micro(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                // Someone else created it first.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(KubeError::api(e)),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            if !takeable(&spec, &le.identity, now) {
                return Ok(false);
            }
            let ours = spec.holder_identity.as_deref() == Some(le.identity.as_str());
            let mut next = spec.clone();
            next.holder_identity = Some(le.identity.clone());
            next.lease_duration_seconds = Some(seconds);
            next.renew_time = Some(micro(now));
            if !ours {
                next.acquire_time = Some(micro(now));
                next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            lease.spec = Some(next);
            // The resourceVersion read goes with the update: a lost race is a 409.
            match api.replace(&le.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(KubeError::api(e)),
            }
        }
    }
}

/// The lease held: `leading` turns `false` when it is lost; dropping the
/// renewal stops renewing.
pub struct Held {
    pub leading: tokio::sync::watch::Receiver<bool>,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// Waits until this process holds the lease, then renews it in the
/// background.
pub async fn acquire(client: kube::Client, le: LeaderElection) -> Result<Held, KubeError> {
    let api: Api<Lease> = Api::namespaced(client, &le.namespace);
    loop {
        match try_hold(&api, &le).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(lease = %le.name, error = %e, "leader election: lease not read")
            }
        }
        tokio::time::sleep(le.retry_period).await;
    }
    tracing::info!(lease = %le.name, identity = %le.identity, "leader election: lease acquired");
    let (tx, rx) = tokio::sync::watch::channel(true);
    let renewal = tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(le.retry_period).await;
            match try_hold(&api, &le).await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %le.name, "leader election: lease taken by another holder");
                    let _ = tx.send(false);
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %le.name, error = %e, "leader election: renewal failed")
                }
            }
            if last.elapsed() > le.renew_deadline {
                tracing::error!(lease = %le.name, "leader election: not renewed within the deadline");
                let _ = tx.send(false);
                return;
            }
        }
    });
    Ok(Held {
        leading: rx,
        renewal,
    })
}

/// On a clean stop: clears `holderIdentity` so the next candidate takes
/// over at once instead of waiting out the lease.
pub async fn release(client: kube::Client, le: &LeaderElection) {
    let api: Api<Lease> = Api::namespaced(client, &le.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&le.name).await else {
        return;
    };
    let mut spec = lease.spec.clone().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(le.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    lease.spec = Some(spec);
    match api.replace(&le.name, &PostParams::default(), &lease).await {
        Ok(_) => tracing::info!(lease = %le.name, "leader election: lease released"),
        Err(e) => {
            tracing::warn!(lease = %le.name, error = %e, "leader election: lease not released")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_takeable_when_free_ours_or_expired() {
        let now = Timestamp::from_second(1_000).expect("ts");
        let spec = |holder: Option<&str>, renewed: i64| LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(35),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).expect("ts"))),
            ..LeaseSpec::default()
        };
        assert!(takeable(&spec(None, 990), "a", now));
        assert!(takeable(&spec(Some("a"), 990), "a", now));
        assert!(
            !takeable(&spec(Some("b"), 990), "a", now),
            "b renewed 10 s ago"
        );
        assert!(
            !takeable(&spec(Some("b"), 965), "a", now),
            "exactly at the edge"
        );
        assert!(
            takeable(&spec(Some("b"), 964), "a", now),
            "b stopped renewing"
        );
    }
}

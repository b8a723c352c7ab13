//! Which objects a validated webhook asks to reconcile.

use tagwarden_api::{IMAGE_GROUP, Kind, Object, ObjectId, Receiver};

/// What Flux refuses in a Receiver's `spec.resources`, one message per
/// resource, naming it: a `name: '*'` without `matchLabels` would select
/// nothing, silently. The daemon logs these when it loads the Receiver and
/// answers a webhook with them (HTTP 400), as notification-controller does.
pub fn resource_errors(receiver: &Receiver) -> Vec<String> {
    receiver
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.name == "*" && r.match_labels.is_empty())
        .map(|(i, r)| {
            format!(
                "spec.resources[{i}] ({}): matchLabels field not set when using wildcard '*' as name",
                r.kind
            )
        })
        .collect()
}

/// The identity of every object in `objects` that one of the
/// Receiver's `spec.resources` names, in resource order, without repeats.
///
/// A resource's namespace defaults to the Receiver's. `name: '*'` selects
/// all objects of the kind in that namespace whose labels include every
/// `matchLabels` pair; Flux refuses a wildcard without `matchLabels`, so it
/// selects nothing here and [`resource_errors`] reports it. A named object that is not loaded is skipped, as is
/// a resource whose `apiVersion` is outside `image.toolkit.fluxcd.io`.
pub fn targets(receiver: &Receiver, objects: &[Object]) -> Vec<ObjectId> {
    let mut out: Vec<ObjectId> = Vec::new();
    for r in &receiver.resources {
        // A Receiver's other resources (GitRepository, Kustomization, …)
        // belong to other controllers.
        let Some(kind) = Kind::parse(&r.kind).filter(|k| k.is_reconciled()) else {
            continue;
        };
        let group_ok = r
            .api_version
            .as_deref()
            .is_none_or(|v| v.split_once('/').is_some_and(|(g, _)| g == IMAGE_GROUP));
        if !group_ok {
            continue;
        }
        let namespace = r.namespace.as_deref().unwrap_or(&receiver.meta.namespace);
        let wildcard = r.name == "*";
        if wildcard && r.match_labels.is_empty() {
            continue;
        }
        for o in objects {
            let m = o.meta();
            let selected = o.kind() == kind
                && m.namespace == namespace
                && if wildcard {
                    r.match_labels
                        .iter()
                        .all(|(k, v)| m.labels.get(k) == Some(v))
                } else {
                    m.name == r.name
                };
            let t = o.id();
            if selected && !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

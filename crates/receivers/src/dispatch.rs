//! One webhook request, decided: which Receiver it is for, whether it is
//! genuine, and what to reconcile. Shared by the daemon's listener and the
//! controller's `--receivers-addr`, so both answer alike.

use crate::{RejectReason, Request, hook_path, resource_errors, targets, validate};
use tagwarden_api::{Object, ObjectId, Receiver};

/// What to answer and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The HTTP status to answer with.
    pub status: u16,
    pub message: String,
    /// The Receiver the path named (`namespace`, `name`), when one did.
    pub receiver: Option<(String, String)>,
    /// What to reconcile now.
    pub targets: Vec<ObjectId>,
    /// Resources refused as Flux refuses them (already in `message`).
    pub refused: Vec<String>,
    /// Why the request itself was refused.
    pub rejected: Option<RejectReason>,
}

fn find<'a>(objects: &'a [Object], path: &str) -> Option<(&'a Receiver, String)> {
    objects.iter().find_map(|o| {
        let Object::Receiver(r) = o else { return None };
        let secret = objects.iter().find_map(|s| match s {
            Object::Secret(s)
                if s.meta.namespace == r.meta.namespace && s.meta.name == r.secret_ref =>
            {
                Some(s)
            }
            _ => None,
        })?;
        let token = String::from_utf8_lossy(secret.data.get("token")?).into_owned();
        (hook_path(&token, &r.meta.name, &r.meta.namespace) == path).then_some((r, token))
    })
}

/// Decides a request to `path` (`/hook/<digest>`) over the loaded
/// `objects` (Receivers, their Secrets and the image objects).
pub fn dispatch(objects: &[Object], path: &str, request: &Request<'_>) -> Decision {
    let mut d = Decision {
        status: 404,
        message: "no receiver at this path".into(),
        receiver: None,
        targets: Vec::new(),
        refused: Vec::new(),
        rejected: None,
    };
    let Some((receiver, token)) = find(objects, path) else {
        return d;
    };
    d.receiver = Some((receiver.meta.namespace.clone(), receiver.meta.name.clone()));
    if receiver.suspend {
        d.status = 503;
        d.message = "receiver is suspended".into();
        return d;
    }
    if let Err(e) = validate(&receiver.receiver_type, &receiver.events, &token, request) {
        d.status = match e {
            RejectReason::TooLarge { .. } => 413,
            RejectReason::Method(_) => 405,
            RejectReason::InvalidJson(_) | RejectReason::Payload(_) => 400,
            _ => 401,
        };
        d.message = e.to_string();
        d.rejected = Some(e);
        return d;
    }
    d.refused = resource_errors(receiver);
    d.targets = targets(receiver, objects);
    // Flux refuses these resources; the others are still reconciled.
    if d.refused.is_empty() {
        d.status = 200;
        d.message = format!("reconciling {} objects", d.targets.len());
    } else {
        d.status = 400;
        d.message = format!(
            "reconciling {} objects; {}",
            d.targets.len(),
            d.refused.join("; ")
        );
    }
    d
}

//! Who depends on whom: repository → policies → automations, with
//! `policySelector` and cross-namespace `imageRepositoryRef`, plus the
//! GitRepositories and Secrets objects read. The one answer every driver
//! uses to order and trigger reconciles.

use crate::Objects;
use tagwarden_api::{ImagePolicy, ImageUpdateAutomation, Kind, Object, ObjectId};

/// The repository a policy selects from.
fn repository_of(p: &ImagePolicy) -> ObjectId {
    ObjectId::new(
        Kind::ImageRepository,
        p.image_repository_ref
            .namespace
            .clone()
            .unwrap_or_else(|| p.meta.namespace.clone()),
        p.image_repository_ref.name.clone(),
    )
}

/// The GitRepository an automation updates.
fn source_of(a: &ImageUpdateAutomation) -> ObjectId {
    ObjectId::new(
        Kind::GitRepository,
        a.source_ref
            .namespace
            .clone()
            .unwrap_or_else(|| a.meta.namespace.clone()),
        a.source_ref.name.clone(),
    )
}

/// Whether an automation applies a policy: same namespace, and its
/// `policySelector` (none: every policy) matches the policy's labels.
fn applies(a: &ImageUpdateAutomation, p: &ImagePolicy) -> bool {
    p.meta.namespace == a.meta.namespace
        && a.policy_selector
            .as_ref()
            .is_none_or(|s| s.matches(&p.meta.labels))
}

/// The policies an automation applies, in the order the source lists them.
pub fn selected_policies(a: &ImageUpdateAutomation, objects: &dyn Objects) -> Vec<ImagePolicy> {
    let mut out = Vec::new();
    objects.each(Kind::ImagePolicy, Some(&a.meta.namespace), &mut |o| {
        if let Object::ImagePolicy(p) = o
            && applies(a, p)
        {
            out.push(p.clone());
        }
    });
    out
}

/// The objects that must run again when `id` changed (new tags, a new
/// latest image, an edited source or secret).
pub fn dependents(id: &ObjectId, objects: &dyn Objects) -> Vec<ObjectId> {
    let mut out = Vec::new();
    match id.kind {
        Kind::ImageRepository => objects.each(Kind::ImagePolicy, None, &mut |o| {
            if let Object::ImagePolicy(p) = o
                && repository_of(p) == *id
            {
                out.push(o.id());
            }
        }),
        Kind::ImagePolicy => {
            let Some(Object::ImagePolicy(p)) = objects.get(id) else {
                return out;
            };
            objects.each(Kind::ImageUpdateAutomation, Some(&id.namespace), &mut |o| {
                if let Object::ImageUpdateAutomation(a) = o
                    && applies(a, &p)
                {
                    out.push(o.id());
                }
            });
        }
        Kind::GitRepository => objects.each(Kind::ImageUpdateAutomation, None, &mut |o| {
            if let Object::ImageUpdateAutomation(a) = o
                && source_of(a) == *id
            {
                out.push(o.id());
            }
        }),
        Kind::ServiceAccount => {
            objects.each(Kind::ImageRepository, Some(&id.namespace), &mut |o| {
                if let Object::ImageRepository(r) = o
                    && r.service_account_name.as_deref() == Some(id.name.as_str())
                {
                    out.push(o.id());
                }
            })
        }
        Kind::Secret => {
            let uses = |name: &Option<String>| name.as_deref() == Some(id.name.as_str());
            // Service accounts that lend this secret as an imagePullSecret.
            let mut lenders = Vec::new();
            objects.each(Kind::ServiceAccount, Some(&id.namespace), &mut |o| {
                if let Object::ServiceAccount(sa) = o
                    && sa.image_pull_secrets.contains(&id.name)
                {
                    lenders.push(sa.meta.name.clone());
                }
            });
            objects.each(Kind::ImageRepository, Some(&id.namespace), &mut |o| {
                if let Object::ImageRepository(r) = o
                    && (uses(&r.secret_ref)
                        || uses(&r.cert_secret_ref)
                        || uses(&r.proxy_secret_ref)
                        || r.service_account_name
                            .as_ref()
                            .is_some_and(|sa| lenders.contains(sa)))
                {
                    out.push(o.id());
                }
            });
            let mut sources = Vec::new();
            objects.each(Kind::GitRepository, Some(&id.namespace), &mut |o| {
                if let Object::GitRepository(g) = o
                    && (uses(&g.secret_ref) || uses(&g.proxy_secret_ref))
                {
                    sources.push(o.id());
                }
            });
            objects.each(Kind::ImageUpdateAutomation, None, &mut |o| {
                if let Object::ImageUpdateAutomation(a) = o
                    && (sources.contains(&source_of(a))
                        || (a.meta.namespace == id.namespace && uses(&a.signing_key_secret)))
                {
                    out.push(o.id());
                }
            });
        }
        Kind::ImageUpdateAutomation | Kind::Receiver => {}
    }
    out
}

/// The reconciled objects `id` reads the status of: a policy its
/// repository, an automation the policies it applies.
pub fn dependencies(id: &ObjectId, objects: &dyn Objects) -> Vec<ObjectId> {
    match objects.get(id) {
        Some(Object::ImagePolicy(p)) => vec![repository_of(&p)],
        Some(Object::ImageUpdateAutomation(a)) => selected_policies(&a, objects)
            .iter()
            .map(|p| {
                ObjectId::new(
                    Kind::ImagePolicy,
                    p.meta.namespace.clone(),
                    p.meta.name.clone(),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;
    use tagwarden_api::{LoadOptions, Manifests};

    fn catalog() -> Catalog {
        let text = r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: podinfo, namespace: flux-system}
spec: {image: ghcr.io/stefanprodan/podinfo, interval: 1m, secretRef: {name: regcred},
       accessFrom: {namespaceSelectors: [{matchLabels: {}}]}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: podinfo, namespace: flux-system, labels: {team: web}}
spec: {imageRepositoryRef: {name: podinfo}, policy: {semver: {range: 5.0.x}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: podinfo-apps, namespace: apps, labels: {team: web}}
spec: {imageRepositoryRef: {name: podinfo, namespace: flux-system}, policy: {semver: {range: '>=5'}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: other, namespace: flux-system, labels: {team: data}}
spec: {imageRepositoryRef: {name: other}, policy: {alphabetical: {}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: web, namespace: flux-system}
spec:
  interval: 1m
  sourceRef: {kind: GitRepository, name: fleet}
  git: {commit: {author: {email: bot@example.com}}}
  policySelector: {matchLabels: {team: web}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: all, namespace: flux-system}
spec:
  interval: 1m
  sourceRef: {kind: GitRepository, name: fleet}
  git: {commit: {author: {email: bot@example.com}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: apps, namespace: apps}
spec:
  interval: 1m
  sourceRef: {kind: GitRepository, name: fleet, namespace: flux-system}
  git: {commit: {author: {email: bot@example.com}, signingKey: {secretRef: {name: regcred}}}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: flux-system}
spec: {url: 'https://example.com/fleet.git', interval: 1m, secretRef: {name: git-auth}}
"#;
        let m = Manifests::load_str(
            text,
            std::path::Path::new("t.yaml"),
            &LoadOptions::default(),
        );
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        Catalog::new(m)
    }

    fn id(kind: Kind, ns: &str, name: &str) -> ObjectId {
        ObjectId::new(kind, ns, name)
    }

    #[test]
    fn dependents_follow_refs_selectors_and_namespaces() {
        let c = catalog();
        assert_eq!(
            dependents(&id(Kind::ImageRepository, "flux-system", "podinfo"), &c),
            [
                id(Kind::ImagePolicy, "flux-system", "podinfo"),
                id(Kind::ImagePolicy, "apps", "podinfo-apps")
            ],
            "the cross-namespace policy too"
        );
        assert_eq!(
            dependents(&id(Kind::ImagePolicy, "flux-system", "podinfo"), &c),
            [
                id(Kind::ImageUpdateAutomation, "flux-system", "web"),
                id(Kind::ImageUpdateAutomation, "flux-system", "all")
            ]
        );
        assert_eq!(
            dependents(&id(Kind::ImagePolicy, "flux-system", "other"), &c),
            [id(Kind::ImageUpdateAutomation, "flux-system", "all")],
            "the selector of 'web' leaves out team=data"
        );
        assert_eq!(
            dependents(&id(Kind::ImagePolicy, "apps", "podinfo-apps"), &c),
            [id(Kind::ImageUpdateAutomation, "apps", "apps")],
            "automations apply policies of their own namespace only"
        );
        assert_eq!(
            dependents(&id(Kind::GitRepository, "flux-system", "fleet"), &c).len(),
            3
        );
        assert_eq!(
            dependents(&id(Kind::Secret, "flux-system", "regcred"), &c),
            [id(Kind::ImageRepository, "flux-system", "podinfo")],
            "a signing key secret counts in its automation's namespace only"
        );
        assert_eq!(
            dependents(&id(Kind::Secret, "flux-system", "git-auth"), &c).len(),
            3,
            "every automation of the source"
        );
        assert_eq!(
            dependents(&id(Kind::Secret, "apps", "regcred"), &c),
            [id(Kind::ImageUpdateAutomation, "apps", "apps")]
        );
    }

    #[test]
    fn dependencies_are_the_inverse() {
        let c = catalog();
        assert_eq!(
            dependencies(&id(Kind::ImageUpdateAutomation, "flux-system", "web"), &c),
            [id(Kind::ImagePolicy, "flux-system", "podinfo")]
        );
        assert_eq!(
            dependencies(&id(Kind::ImageUpdateAutomation, "flux-system", "all"), &c),
            [
                id(Kind::ImagePolicy, "flux-system", "podinfo"),
                id(Kind::ImagePolicy, "flux-system", "other")
            ]
        );
        assert_eq!(
            dependencies(&id(Kind::ImagePolicy, "apps", "podinfo-apps"), &c),
            [id(Kind::ImageRepository, "flux-system", "podinfo")]
        );
        for o in &c.manifests().objects {
            for d in dependencies(&o.id(), &c) {
                if c.find(&d).is_some() {
                    assert!(dependents(&d, &c).contains(&o.id()), "{d} → {}", o.id());
                }
            }
        }
    }
}

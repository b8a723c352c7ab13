//! Template data shared by the tests: what an automation sees after setters
//! changed a Deployment's image and a HelmRelease's tag.

#![allow(dead_code)]

use tagwarden_template::{FileChange, NamespacedName, ObjectId, TemplateData, UpdatedImage};

pub fn object(api_version: &str, kind: &str, namespace: &str, name: &str) -> ObjectId {
    ObjectId {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

pub fn change(file: &str, object: ObjectId, old: &str, new: &str, setter: &str) -> FileChange {
    FileChange {
        file: file.into(),
        object,
        old_value: old.into(),
        new_value: new.into(),
        setter: setter.into(),
    }
}

pub fn image(image: &str, tag: &str, policy: &str) -> UpdatedImage {
    UpdatedImage {
        image: image.into(),
        tag: tag.into(),
        digest: None,
        policy: NamespacedName::new("flux-system", policy),
    }
}

/// One Deployment in one file, as in Flux's image update guide.
pub fn podinfo() -> TemplateData {
    TemplateData {
        automation: NamespacedName::new("flux-system", "flux-system"),
        changes: vec![change(
            "clusters/my-cluster/podinfo-deployment.yaml",
            object("apps/v1", "Deployment", "default", "podinfo"),
            "ghcr.io/stefanprodan/podinfo:5.0.0",
            "ghcr.io/stefanprodan/podinfo:5.0.3",
            "flux-system:podinfo",
        )],
        values: Default::default(),
        images: vec![image("ghcr.io/stefanprodan/podinfo", "5.0.3", "podinfo")],
    }
}

/// podinfo plus a HelmRelease in a file that sorts first.
pub fn two_files() -> TemplateData {
    let mut data = podinfo();
    data.changes.push(change(
        "apps/redis/release.yaml",
        object(
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            "default",
            "redis",
        ),
        "7.0.0",
        "7.2.4",
        "flux-system:redis:tag",
    ));
    data.images
        .push(image("docker.io/bitnami/redis", "7.2.4", "redis"));
    data
}

//! Every commit message template in the seed documents, rendered with the
//! output written out by hand from Go's text/template rules (`-}}` eats the
//! whitespace after it, `{{-` the whitespace before; a YAML `|` block keeps
//! its final newline).

mod common;

use common::{change, image, object, podinfo, two_files};
use tagwarden_template::{NamespacedName, TemplateData, render};

/// `flux create image update --commit-template=…` in the image update guide
/// (seeds 000 and 001) and in the Flux workshop notes (seed 002).
const PRINTLN_IMAGES: &str = "{{range .Updated.Images}}{{println .}}{{end}}";

/// "Configure the commit message" in the image update guide (seeds 000, 001).
const GUIDE_TEMPLATE: &str = "Automated image update

Automation name: {{ .AutomationObject }}

Files:
{{ range $filename, $_ := .Updated.Files -}}
- {{ $filename }}
{{ end -}}

Objects:
{{ range $resource, $_ := .Updated.Objects -}}
- {{ $resource.Kind }} {{ $resource.Name }}
{{ end -}}

Images:
{{ range .Updated.Images -}}
- {{.}}
{{ end -}}
";

/// The ImageUpdateAutomation in the image automation reference (seed 003).
const REFERENCE_CHANGES: &str = "chore: automated image update

Automation: {{ .AutomationObject }}

{{ range .Changed.Changes -}}
- {{ .OldValue }} -> {{ .NewValue }}
{{ end -}}
";

/// The dev environment's automation in the same reference (seed 003).
const REFERENCE_SHORT: &str = "chore: automated image update

Automation: {{ .AutomationObject }}
";

#[test]
fn seed_000_println_images_prints_each_image_on_its_own_line() {
    let out = render(Some(PRINTLN_IMAGES), &podinfo()).expect("renders");
    assert_eq!(out, "ghcr.io/stefanprodan/podinfo:5.0.3\n");
}

#[test]
fn seed_000_guide_template_lists_files_objects_and_images() {
    let out = render(Some(GUIDE_TEMPLATE), &podinfo()).expect("renders");
    assert_eq!(
        out,
        "Automated image update

Automation name: flux-system/flux-system

Files:
- clusters/my-cluster/podinfo-deployment.yaml
Objects:
- Deployment podinfo
Images:
- ghcr.io/stefanprodan/podinfo:5.0.3
"
    );
}

#[test]
fn seed_001_guide_template_with_two_files_sorts_files_and_objects() {
    // Files sort bytewise, objects by apiVersion first; the image list follows
    // file order (Flux's is Go's random map order).
    let out = render(Some(GUIDE_TEMPLATE), &two_files()).expect("renders");
    assert_eq!(
        out,
        "Automated image update

Automation name: flux-system/flux-system

Files:
- apps/redis/release.yaml
- clusters/my-cluster/podinfo-deployment.yaml
Objects:
- Deployment podinfo
- HelmRelease redis
Images:
- docker.io/bitnami/redis:7.2.4
- ghcr.io/stefanprodan/podinfo:5.0.3
"
    );
}

#[test]
fn seed_001_println_images_keeps_the_reference_as_written() {
    // A Docker Hub short name prints as given, not as the canonical
    // index.docker.io/library/... form.
    let mut data = podinfo();
    data.images = vec![image("nginx", "1.27.1", "podinfo")];
    let out = render(Some(PRINTLN_IMAGES), &data).expect("renders");
    assert_eq!(out, "nginx:1.27.1\n");
}

#[test]
fn seed_002_println_images_with_a_tag_only_setter() {
    // `newTag: v8 # {"$imagepolicy": "flux-system:vote:tag"}` still names
    // the policy whose image was applied.
    let data = TemplateData {
        automation: NamespacedName::new("flux-system", "instavote-all"),
        changes: vec![change(
            "deploy/vote/staging/kustomization.yaml",
            object("kustomize.config.k8s.io/v1beta1", "Kustomization", "", ""),
            "v7",
            "v8",
            "flux-system:vote:tag",
        )],
        values: Default::default(),
        images: vec![image("sofd/vote", "v8", "vote")],
    };
    let out = render(Some(PRINTLN_IMAGES), &data).expect("renders");
    assert_eq!(out, "sofd/vote:v8\n");
}

fn app_name_dev() -> TemplateData {
    TemplateData {
        automation: NamespacedName::new("flux-system", "app-name-auto-dev"),
        changes: vec![change(
            "apps/dev/patches.yaml",
            object("helm.toolkit.fluxcd.io/v2", "HelmRelease", "", "app-name"),
            "dev-abc1234-12345678",
            "dev-def5678-12345690",
            "flux-system:app-name-dev:tag",
        )],
        values: Default::default(),
        images: vec![],
    }
}

#[test]
fn seed_003_changes_template_lists_old_and_new_values() {
    let out = render(Some(REFERENCE_CHANGES), &app_name_dev()).expect("renders");
    assert_eq!(
        out,
        "chore: automated image update

Automation: flux-system/app-name-auto-dev

- dev-abc1234-12345678 -> dev-def5678-12345690
"
    );
}

#[test]
fn seed_003_changes_template_with_nothing_changed_keeps_the_blank_line() {
    let mut data = app_name_dev();
    data.changes.clear();
    let out = render(Some(REFERENCE_CHANGES), &data).expect("renders");
    assert_eq!(
        out,
        "chore: automated image update\n\nAutomation: flux-system/app-name-auto-dev\n\n"
    );
}

#[test]
fn seed_003_short_template_names_the_automation() {
    let out = render(Some(REFERENCE_SHORT), &app_name_dev()).expect("renders");
    assert_eq!(
        out,
        "chore: automated image update\n\nAutomation: flux-system/app-name-auto-dev\n"
    );
}

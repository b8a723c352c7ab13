//! The templates in Flux's ImageUpdateAutomation v1 reference, with expected
//! output worked out by hand from Go's rules.

mod common;

use common::{podinfo, two_files};
use tagwarden_template::{DEFAULT_MESSAGE, render};

#[test]
fn unset_or_empty_template_gives_flux_default_message() {
    assert_eq!(render(None, &podinfo()).expect("renders"), DEFAULT_MESSAGE);
    assert_eq!(
        render(Some(""), &podinfo()).expect("renders"),
        DEFAULT_MESSAGE
    );
    assert_eq!(DEFAULT_MESSAGE, "Update from image update automation");
}

#[test]
fn objects_with_their_changes() {
    let template = "Automated image update

Automation name: {{ .AutomationObject }}

Files:
{{ range $filename, $_ := .Changed.FileChanges -}}
- {{ $filename }}
{{ end -}}

Objects:
{{ range $resource, $changes := .Changed.Objects -}}
- {{ $resource.Kind }} {{ $resource.Name }}
  Changes:
{{- range $_, $change := $changes }}
    - {{ $change.OldValue }} -> {{ $change.NewValue }}
{{ end -}}
{{ end -}}
";
    let out = render(Some(template), &two_files()).expect("renders");
    assert_eq!(
        out,
        "Automated image update

Automation name: flux-system/flux-system

Files:
- apps/redis/release.yaml
- clusters/my-cluster/podinfo-deployment.yaml
Objects:
- Deployment podinfo
  Changes:
    - ghcr.io/stefanprodan/podinfo:5.0.0 -> ghcr.io/stefanprodan/podinfo:5.0.3
- HelmRelease redis
  Changes:
    - 7.0.0 -> 7.2.4
"
    );
}

#[test]
fn functions_transform_and_filter_changes() {
    let template = "Objects:
{{ range $resource, $changes := .Changed.Objects -}}
- {{ $resource.Kind | lower }} {{ $resource.Name | lower }}
  Changes:
{{- range $_, $change := $changes }}
  {{ if contains \"5.0.3\" $change.NewValue -}}
    - {{ $change.OldValue }} -> {{ $change.NewValue }}
  {{ else -}}
    [skip ci] wrong image
  {{ end -}}
{{ end -}}
{{ end -}}
";
    let out = render(Some(template), &two_files()).expect("renders");
    assert_eq!(
        out,
        "Objects:
- deployment podinfo
  Changes:
  - ghcr.io/stefanprodan/podinfo:5.0.0 -> ghcr.io/stefanprodan/podinfo:5.0.3
  - helmrelease redis
  Changes:
  [skip ci] wrong image
  "
    );
}

#[test]
fn message_template_values() {
    let template = "Automated image update by Flux for cluster {{ .Values.cluster }}.";
    let mut data = podinfo();
    data.values.insert("cluster".into(), "prod".into());
    assert_eq!(
        render(Some(template), &data).expect("renders"),
        "Automated image update by Flux for cluster prod."
    );
    // A key nobody set prints as Go prints a missing map entry.
    data.values.clear();
    assert_eq!(
        render(Some(template), &data).expect("renders"),
        "Automated image update by Flux for cluster <no value>."
    );
}

#[test]
fn gerrit_change_id_hashes_the_printed_data() {
    let template = "Perform automatic image update

Automation name: {{ .AutomationObject }}

{{- $ChangeId := .AutomationObject -}}
{{- $ChangeId = printf \"%s%s\" $ChangeId ( .Changed.FileChanges | toString ) -}}
{{- $ChangeId = printf \"%s%s\" $ChangeId ( .Changed.Objects | toString ) -}}
{{- $ChangeId = printf \"%s%s\" $ChangeId ( .Changed.Changes | toString ) }}
Change-Id: {{ printf \"I%s\" ( sha256sum $ChangeId | trunc 40 ) }}
";
    // The hash is sha256 of the automation name followed by Go's %v of the
    // file map, the object map and the change list:
    //   flux-system/flux-system
    //   map[clusters/my-cluster/podinfo-deployment.yaml:map[{{{apps/v1 Deployment} {podinfo default}}}:[{ghcr.io/stefanprodan/podinfo:5.0.0 ghcr.io/stefanprodan/podinfo:5.0.3 flux-system:podinfo}]]]
    //   map[{{{apps/v1 Deployment} {podinfo default}}}:[{ghcr.io/stefanprodan/podinfo:5.0.0 ghcr.io/stefanprodan/podinfo:5.0.3 flux-system:podinfo}]]
    //   [{ghcr.io/stefanprodan/podinfo:5.0.0 ghcr.io/stefanprodan/podinfo:5.0.3 flux-system:podinfo}]
    let out = render(Some(template), &podinfo()).expect("renders");
    assert_eq!(
        out,
        "Perform automatic image update

Automation name: flux-system/flux-system
Change-Id: Iaa80b9ef805fee7fbbe828e5b446b7bc59a1ad12
"
    );
}

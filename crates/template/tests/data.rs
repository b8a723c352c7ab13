//! The template data: what each field holds, how Go would print it, and the
//! order Go's range gives map keys.

mod common;

use common::{change, image, object, podinfo, two_files};
use tagwarden_template::{NamespacedName, TemplateData, UpdatedImage, render};

fn run(template: &str, data: &TemplateData) -> String {
    render(Some(template), data).unwrap_or_else(|e| format!("ERROR: {e}"))
}

#[test]
fn whole_data_prints_like_go_percent_v_of_flux_template_data() {
    let mut data = podinfo();
    data.values.insert("cluster".into(), "prod".into());
    assert_eq!(
        run("{{ . }}", &data),
        "{flux-system/flux-system {map[clusters/my-cluster/podinfo-deployment.yaml:map[{{{apps/v1 Deployment} {podinfo default}}}:[{ghcr.io/stefanprodan/podinfo:5.0.0 ghcr.io/stefanprodan/podinfo:5.0.3 flux-system:podinfo}]]]} map[cluster:prod]}"
    );
}

#[test]
fn empty_data_prints_empty_containers() {
    let data = TemplateData::default();
    assert_eq!(
        run(
            "{{ .Values }}|{{ .Changed }}|{{ .Changed.Changes }}|{{ .Changed.Objects }}|{{ .Updated.Images }}|{{ .AutomationObject }}",
            &data
        ),
        "map[]|{map[]}|[]|map[]|[]|/"
    );
    assert_eq!(
        run(
            "{{ range .Changed.Changes }}x{{ else }}none{{ end }}",
            &data
        ),
        "none"
    );
}

#[test]
fn automation_object_has_name_and_namespace() {
    assert_eq!(
        run(
            "{{ .AutomationObject.Namespace }} {{ .AutomationObject.Name }} {{ printf \"%+v\" .AutomationObject }}",
            &podinfo()
        ),
        "flux-system flux-system flux-system/flux-system"
    );
}

#[test]
fn object_identifiers_expose_kyaml_fields_and_print_as_nested_structs() {
    let t = "{{ range $o, $c := .Changed.Objects }}{{ $o.APIVersion }}|{{ $o.Kind }}|{{ $o.Namespace }}|{{ $o.Name }}|{{ $o }}|{{ $o.TypeMeta }}|{{ $o.NameMeta.Name }}{{ end }}";
    assert_eq!(
        run(t, &podinfo()),
        "apps/v1|Deployment|default|podinfo|{{{apps/v1 Deployment} {podinfo default}}}|{apps/v1 Deployment}|podinfo"
    );
    // A kustomization.yaml has no name; a plain YAML file has no identity.
    let mut data = podinfo();
    data.changes[0].object = object("kustomize.config.k8s.io/v1beta1", "Kustomization", "", "");
    assert_eq!(
        run(
            "{{ range $o, $_ := .Changed.Objects }}{{ $o }}{{ end }}",
            &data
        ),
        "{{{kustomize.config.k8s.io/v1beta1 Kustomization} { }}}"
    );
    data.changes[0].object = Default::default();
    assert_eq!(
        run(
            "{{ range $o, $_ := .Changed.Objects }}[{{ $o }}]{{ end }}",
            &data
        ),
        "[{{{ } { }}}]"
    );
}

#[test]
fn map_keys_range_in_go_order() {
    let mut data = podinfo();
    data.changes.clear();
    // Files sort bytewise: upper case before lower case.
    for file in ["b.yaml", "a.yaml", "B.yaml"] {
        data.changes.push(change(
            file,
            object("v1", "ConfigMap", "x", "y"),
            "1",
            "2",
            "ns:p",
        ));
    }
    assert_eq!(
        run(
            "{{ range $f, $_ := .Changed.FileChanges }}{{ $f }} {{ end }}",
            &data
        ),
        "B.yaml a.yaml b.yaml "
    );
    // Objects sort field by field: apiVersion, kind, name, namespace.
    data.changes.clear();
    for (api, kind, ns, name) in [
        ("apps/v1", "Deployment", "b", "web"),
        ("apps/v1", "Deployment", "a", "web"),
        ("apps/v1", "DaemonSet", "z", "zz"),
        ("apps/v1", "Deployment", "a", "api"),
        ("batch/v1", "CronJob", "a", "a"),
    ] {
        data.changes.push(change(
            "f.yaml",
            object(api, kind, ns, name),
            "1",
            "2",
            "ns:p",
        ));
    }
    assert_eq!(
        run(
            "{{ range $o, $_ := .Changed.Objects }}{{ $o.Kind }}/{{ $o.Namespace }}/{{ $o.Name }} {{ end }}",
            &data
        ),
        "DaemonSet/z/zz Deployment/a/api Deployment/a/web Deployment/b/web CronJob/a/a "
    );
}

#[test]
fn file_changes_nest_file_object_and_changes() {
    let t = "{{ range $file, $objects := .Changed.FileChanges }}{{ $file }}:{{ range $o, $changes := $objects }} {{ $o.Kind }}={{ len $changes }}{{ range $changes }} {{ .Setter }}{{ end }}{{ end }};{{ end }}";
    assert_eq!(
        run(t, &two_files()),
        "apps/redis/release.yaml: HelmRelease=1 flux-system:redis:tag;clusters/my-cluster/podinfo-deployment.yaml: Deployment=1 flux-system:podinfo;"
    );
}

#[test]
fn changes_are_distinct_and_objects_gather_every_file() {
    let mut data = podinfo();
    // The same Deployment patched identically in a base and an overlay.
    let mut again = data.changes[0].clone();
    again.file = "overlays/prod/deployment.yaml".into();
    data.changes.push(again);
    assert_eq!(
        run(
            "{{ len .Changed.Changes }} {{ len .Changed.FileChanges }}",
            &data
        ),
        "1 2"
    );
    assert_eq!(
        run(
            "{{ range $o, $c := .Changed.Objects }}{{ $o.Name }}={{ len $c }}{{ end }}",
            &data
        ),
        "podinfo=2"
    );
}

#[test]
fn changes_list_follows_file_then_object_order() {
    assert_eq!(
        run(
            "{{ range $i, $c := .Changed.Changes }}{{ $i }}:{{ $c.NewValue }} {{ end }}",
            &two_files()
        ),
        "0:7.2.4 1:ghcr.io/stefanprodan/podinfo:5.0.3 "
    );
}

#[test]
fn legacy_images_have_reference_parts_and_policy() {
    let t = "{{ range .Updated.Images }}{{ . }}|{{ .Repository }}|{{ .Registry }}|{{ .Name }}|{{ .Identifier }}|{{ .Tag }}|{{ .Policy }}|{{ .Policy.Name }}|{{ .String }}{{ end }}";
    assert_eq!(
        run(t, &podinfo()),
        "ghcr.io/stefanprodan/podinfo:5.0.3|stefanprodan/podinfo|ghcr.io|ghcr.io/stefanprodan/podinfo:5.0.3|5.0.3|5.0.3|flux-system/podinfo|podinfo|ghcr.io/stefanprodan/podinfo:5.0.3"
    );
}

#[test]
fn legacy_images_read_docker_hub_references_as_go_containerregistry_does() {
    let t = "{{ range .Updated.Images }}{{ . }} {{ .Registry }} {{ .Repository }} {{ .Name }}\n{{ end }}";
    for (img, want) in [
        (
            "podinfo",
            "podinfo:1.0 index.docker.io library/podinfo index.docker.io/library/podinfo:1.0\n",
        ),
        (
            "docker.io/bitnami/redis",
            "docker.io/bitnami/redis:1.0 index.docker.io bitnami/redis index.docker.io/bitnami/redis:1.0\n",
        ),
        (
            "docker.io/nginx",
            "docker.io/nginx:1.0 index.docker.io library/nginx index.docker.io/library/nginx:1.0\n",
        ),
        (
            "localhost:5000/app",
            "localhost:5000/app:1.0 localhost:5000 app localhost:5000/app:1.0\n",
        ),
        (
            "org/app",
            "org/app:1.0 index.docker.io org/app index.docker.io/org/app:1.0\n",
        ),
    ] {
        let mut data = podinfo();
        data.images = vec![image(img, "1.0", "podinfo")];
        assert_eq!(run(t, &data), want, "{img}");
    }
}

#[test]
fn legacy_image_with_digest_is_a_digest_reference() {
    let mut data = podinfo();
    data.images = vec![UpdatedImage {
        image: "ghcr.io/org/app".into(),
        tag: "1.0".into(),
        digest: Some("sha256:abc".into()),
        policy: NamespacedName::new("flux-system", "podinfo"),
    }];
    assert_eq!(
        run(
            "{{ range .Updated.Images }}{{ . }} {{ .Identifier }} {{ .Name }}{{ end }}",
            &data
        ),
        "ghcr.io/org/app:1.0@sha256:abc sha256:abc ghcr.io/org/app@sha256:abc"
    );
}

#[test]
fn legacy_result_groups_images_by_file_and_object() {
    let mut data = two_files();
    // A name setter and a tag setter of the same policy in one object give
    // the image once.
    data.changes.push(change(
        "apps/redis/release.yaml",
        object(
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            "default",
            "redis",
        ),
        "docker.io/bitnami/redis",
        "docker.io/bitnami/redis",
        "flux-system:redis:name",
    ));
    assert_eq!(
        run("{{ .Updated }}", &data),
        "{map[apps/redis/release.yaml:{map[{{{helm.toolkit.fluxcd.io/v2 HelmRelease} {redis default}}}:[docker.io/bitnami/redis:7.2.4]]} clusters/my-cluster/podinfo-deployment.yaml:{map[{{{apps/v1 Deployment} {podinfo default}}}:[ghcr.io/stefanprodan/podinfo:5.0.3]]}]}"
    );
    assert_eq!(
        run(
            "{{ range $o, $imgs := .Updated.Objects }}{{ $o.Kind }}={{ $imgs }} {{ end }}",
            &data
        ),
        "Deployment=[ghcr.io/stefanprodan/podinfo:5.0.3] HelmRelease=[docker.io/bitnami/redis:7.2.4] "
    );
    assert_eq!(
        run("{{ .Updated.Images }}", &data),
        "[docker.io/bitnami/redis:7.2.4 ghcr.io/stefanprodan/podinfo:5.0.3]"
    );
}

#[test]
fn legacy_result_skips_setters_without_a_known_policy_image() {
    let mut data = podinfo();
    data.images.clear();
    assert_eq!(
        run("{{ .Updated.Files }} {{ .Updated.Images }}", &data),
        "map[] []"
    );
}

#[test]
fn control_flow_follows_go() {
    let data = two_files();
    let cases = [
        ("{{ range 3 }}{{ . }}{{ end }}", "012"),
        (
            "{{ range $i, $c := .Changed.Changes }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ $c.Setter }}{{ end }}",
            "flux-system:redis:tag",
        ),
        (
            "{{ range $i, $c := .Changed.Changes }}{{ if eq $i 0 }}{{ continue }}{{ end }}{{ $c.Setter }}{{ end }}",
            "flux-system:podinfo",
        ),
        (
            "{{ $n := 0 }}{{ range .Changed.Changes }}{{ $n = add $n 1 }}{{ end }}{{ $n }}",
            "2",
        ),
        (
            "{{ with .Values.x }}set{{ else with .AutomationObject }}{{ .Name }}{{ end }}",
            "flux-system",
        ),
        (
            "{{ if .Values.x }}a{{ else if .Changed.Changes }}b{{ else }}c{{ end }}",
            "b",
        ),
        (
            "{{ define \"obj\" }}{{ .Kind }}:{{ .Name }}{{ end }}{{ range $o, $_ := .Changed.Objects }}{{ template \"obj\" $o }} {{ end }}",
            "Deployment:podinfo HelmRelease:redis ",
        ),
        (
            "{{ block \"summary\" .AutomationObject }}{{ .Name }}{{ end }}",
            "flux-system",
        ),
        (
            "{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}",
            "21",
        ),
        ("{{/* comment */}}a {{- \"b\" -}} c", "abc"),
        ("{{ (index .Changed.Changes 0).NewValue | upper }}", "7.2.4"),
        ("{{ .Values.nope.deeper }}", "<no value>"),
    ];
    for (t, want) in cases {
        assert_eq!(run(t, &data), want, "{t}");
    }
}

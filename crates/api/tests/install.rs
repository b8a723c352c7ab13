//! `install`'s manifests read back with a real YAML parser: every document
//! names itself, the CRDs keep every status field tagwarden writes (the API
//! server prunes what the schema lacks), RBAC is exactly the verbs used, the
//! Deployment is locked down.

use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};
use tagwarden_api::export::{ExportMeta, PolicyExport, RepositoryExport, UpdateExport};
use tagwarden_api::install::{Install, InstallError, default_image};
use tagwarden_api::status::{
    Condition, ConditionStatus, ImagePolicyStatus, ImageRepositoryStatus,
    ImageUpdateAutomationStatus, ScanResult, Status,
};
use tagwarden_api::time::Time;
use tagwarden_api::{LatestRef, PolicyChoice};
use yaml_rust2::{Yaml, YamlLoader};

fn docs(namespace: &str, crds: bool) -> Vec<Yaml> {
    let install = Install::new(namespace, "example.com/tagwarden:1.2.3", crds).expect("install");
    let text = install.to_yaml();
    assert!(text.starts_with("---\n"), "{text}");
    YamlLoader::load_from_str(&text).expect("the stream parses")
}

fn str_of<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {y:?}"))
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .unwrap_or_else(|| panic!("not a list: {y:?}"))
        .iter()
        .map(|i| str_of(i, "item").to_string())
        .collect()
}

fn keys(y: &Yaml) -> BTreeSet<String> {
    y.as_hash()
        .unwrap_or_else(|| panic!("not a map: {y:?}"))
        .keys()
        .map(|k| str_of(k, "key").to_string())
        .collect()
}

fn find<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn every_document_names_itself_in_apply_order() {
    let all = docs("flux-system", true);
    let names: Vec<(String, String)> = all
        .iter()
        .map(|d| {
            assert!(!str_of(&d["apiVersion"], "apiVersion").is_empty());
            (
                str_of(&d["kind"], "kind").to_string(),
                str_of(&d["metadata"]["name"], "metadata.name").to_string(),
            )
        })
        .collect();
    let want = [
        (
            "CustomResourceDefinition",
            "imagerepositories.image.toolkit.fluxcd.io",
        ),
        (
            "CustomResourceDefinition",
            "imagepolicies.image.toolkit.fluxcd.io",
        ),
        (
            "CustomResourceDefinition",
            "imageupdateautomations.image.toolkit.fluxcd.io",
        ),
        ("ServiceAccount", "tagwarden"),
        ("ClusterRole", "tagwarden-flux-system"),
        ("ClusterRoleBinding", "tagwarden-flux-system"),
        ("Role", "tagwarden-leader-election"),
        ("RoleBinding", "tagwarden-leader-election"),
        ("Deployment", "tagwarden"),
        ("Service", "tagwarden"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect();
    // flux-system belongs to Flux: no Namespace object for it.
    assert_eq!(names, want);
    for d in &all {
        let kind = str_of(&d["kind"], "kind");
        let cluster_scoped = matches!(
            kind,
            "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding" | "Namespace"
        );
        let ns = d["metadata"]["namespace"].as_str();
        assert_eq!(ns, (!cluster_scoped).then_some("flux-system"), "{kind}");
    }

    // Another namespace: created first, and everything namespaced lands there.
    let other = docs("tagwarden-system", false);
    assert_eq!(str_of(&other[0]["kind"], "kind"), "Namespace");
    assert_eq!(
        str_of(&other[0]["metadata"]["name"], "name"),
        "tagwarden-system"
    );
    assert_eq!(other.len(), 8, "no CRDs without --crds");
    assert!(
        other
            .iter()
            .all(|d| d["kind"].as_str() != Some("CustomResourceDefinition"))
    );
    let binding = find(&other, "ClusterRoleBinding", "tagwarden-tagwarden-system");
    assert_eq!(
        binding["subjects"][0]["namespace"].as_str(),
        Some("tagwarden-system")
    );
}

#[test]
fn output_is_deterministic_and_defaults_to_the_crate_version() {
    let a = Install::new("flux-system", &default_image(), true).expect("install");
    assert_eq!(a.to_yaml(), a.to_yaml());
    assert_eq!(
        default_image(),
        format!("ghcr.io/tagwarden/tagwarden:v{}", env!("CARGO_PKG_VERSION"))
    );
    assert!(a.to_yaml().contains(&format!(
        "image: ghcr.io/tagwarden/tagwarden:v{}\n",
        env!("CARGO_PKG_VERSION")
    )));
}

#[test]
fn bad_namespace_or_image_is_refused_by_name() {
    let e = Install::new("Flux_System", "x:1", false).expect_err("bad namespace");
    assert_eq!(e, InstallError::Namespace("Flux_System".into()));
    assert_eq!(
        e.to_string(),
        "--namespace 'Flux_System' is not a valid namespace: want at most 63 lower case letters, digits or '-', starting and ending with a letter or digit"
    );
    let e = Install::new("apps", "ghcr.io/x y:1", false).expect_err("bad image");
    assert_eq!(
        e.to_string(),
        "--image \"ghcr.io/x y:1\" is not an image reference: want e.g. ghcr.io/tagwarden/tagwarden:v1"
    );
    assert!(Install::new("apps", "", false).is_err());
}

fn rules(y: &Yaml) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
    y.as_vec()
        .expect("rules")
        .iter()
        .map(|r| {
            assert_eq!(
                keys(r),
                ["apiGroups", "resources", "verbs"].map(String::from).into(),
                "{r:?}"
            );
            (
                strings(&r["apiGroups"]),
                strings(&r["resources"]),
                strings(&r["verbs"]),
            )
        })
        .collect()
}

fn rule(
    groups: &[&str],
    resources: &[&str],
    verbs: &[&str],
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
    (v(groups), v(resources), v(verbs))
}

#[test]
fn rbac_grants_exactly_the_verbs_the_controller_uses() {
    let all = docs("apps", false);
    let role = find(&all, "ClusterRole", "tagwarden-apps");
    let image = "image.toolkit.fluxcd.io";
    assert_eq!(
        rules(&role["rules"]),
        vec![
            rule(
                &[image],
                &[
                    "imagerepositories",
                    "imagepolicies",
                    "imageupdateautomations"
                ],
                &["get", "list", "watch", "patch", "update"]
            ),
            rule(
                &[image],
                &[
                    "imagerepositories/status",
                    "imagepolicies/status",
                    "imageupdateautomations/status"
                ],
                &["get", "patch", "update"]
            ),
            rule(
                &[image],
                &[
                    "imagerepositories/finalizers",
                    "imagepolicies/finalizers",
                    "imageupdateautomations/finalizers"
                ],
                &["update"]
            ),
            rule(
                &["source.toolkit.fluxcd.io"],
                &["gitrepositories"],
                &["get", "list", "watch"]
            ),
            rule(
                &[""],
                &["secrets", "serviceaccounts"],
                &["get", "list", "watch"]
            ),
            rule(&[""], &["serviceaccounts/token"], &["create"]),
            rule(&[""], &["namespaces"], &["get", "list", "watch"]),
            rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
        ]
    );
    let lease = find(&all, "Role", "tagwarden-leader-election");
    assert_eq!(lease["metadata"]["namespace"].as_str(), Some("apps"));
    assert_eq!(
        rules(&lease["rules"]),
        vec![rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "create", "update"]
        )]
    );
    for (kind, name, role_kind) in [
        ("ClusterRoleBinding", "tagwarden-apps", "ClusterRole"),
        ("RoleBinding", "tagwarden-leader-election", "Role"),
    ] {
        let b = find(&all, kind, name);
        assert_eq!(b["roleRef"]["kind"].as_str(), Some(role_kind));
        assert_eq!(b["roleRef"]["name"].as_str(), Some(name));
        assert_eq!(
            b["roleRef"]["apiGroup"].as_str(),
            Some("rbac.authorization.k8s.io")
        );
        let subjects = b["subjects"].as_vec().expect("subjects");
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0]["kind"].as_str(), Some("ServiceAccount"));
        assert_eq!(subjects[0]["name"].as_str(), Some("tagwarden"));
        assert_eq!(subjects[0]["namespace"].as_str(), Some("apps"));
    }
}

#[test]
fn deployment_is_non_root_read_only_with_probes_and_limits() {
    let all = docs("apps", false);
    let d = find(&all, "Deployment", "tagwarden");
    assert_eq!(d["apiVersion"].as_str(), Some("apps/v1"));
    assert_eq!(d["spec"]["replicas"].as_i64(), Some(1));
    let labels = &d["spec"]["selector"]["matchLabels"];
    assert_eq!(&d["spec"]["template"]["metadata"]["labels"], labels);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"].as_str(), Some("tagwarden"));
    let containers = pod["containers"].as_vec().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["image"].as_str(), Some("example.com/tagwarden:1.2.3"));
    assert_eq!(
        strings(&c["args"]),
        [
            "controller",
            "--enable-leader-election",
            "--watch-all-namespaces",
            "--storage-path=/data",
            "--metrics-addr=:8080",
            "--health-addr=:9440",
            "--log-encoding=json"
        ]
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(sc["runAsUser"].as_i64(), Some(65532));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let ports: Vec<(String, i64)> = c["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .map(|p| {
            assert_eq!(p["protocol"].as_str(), Some("TCP"));
            (
                str_of(&p["name"], "name").to_string(),
                p["containerPort"].as_i64().expect("port"),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("http-prom".to_string(), 8080),
            ("healthz".to_string(), 9440)
        ]
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"].as_str(), Some(path), "{probe}");
        assert_eq!(
            c[probe]["httpGet"]["port"].as_str(),
            Some("healthz"),
            "{probe}"
        );
    }
    let r = &c["resources"];
    assert_eq!(r["requests"]["cpu"].as_str(), Some("50m"));
    assert_eq!(r["requests"]["memory"].as_str(), Some("64Mi"));
    // `1` must stay the string Kubernetes expects for a quantity.
    assert_eq!(r["limits"]["cpu"].as_str(), Some("1"));
    assert_eq!(r["limits"]["memory"].as_str(), Some("256Mi"));
    let env = c["env"].as_vec().expect("env");
    assert_eq!(env[0]["name"].as_str(), Some("RUNTIME_NAMESPACE"));
    assert_eq!(
        env[0]["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.namespace")
    );
    // Both writable paths are emptyDirs; nothing else is writable.
    let mounts: BTreeMap<String, String> = c["volumeMounts"]
        .as_vec()
        .expect("mounts")
        .iter()
        .map(|m| {
            (
                str_of(&m["mountPath"], "mountPath").to_string(),
                str_of(&m["name"], "name").to_string(),
            )
        })
        .collect();
    assert_eq!(mounts.keys().collect::<Vec<_>>(), ["/data", "/tmp"]);
    let volumes = pod["volumes"].as_vec().expect("volumes");
    assert_eq!(volumes.len(), 2);
    for v in volumes {
        assert!(mounts.values().any(|n| v["name"].as_str() == Some(n)));
        assert_eq!(keys(&v["emptyDir"]), BTreeSet::new(), "{v:?}");
    }

    let svc = find(&all, "Service", "tagwarden");
    assert_eq!(&svc["spec"]["selector"], labels);
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["port"].as_i64(), Some(8080));
    assert_eq!(port["targetPort"].as_str(), Some("http-prom"));
}

fn crd<'a>(all: &'a [Yaml], plural: &str) -> &'a Yaml {
    find(
        all,
        "CustomResourceDefinition",
        &format!("{plural}.image.toolkit.fluxcd.io"),
    )
}

fn versions(crd: &Yaml) -> &Vec<Yaml> {
    crd["spec"]["versions"].as_vec().expect("versions")
}

fn at(secs: u64) -> Time {
    Time::from_system(UNIX_EPOCH + Duration::from_secs(secs))
}

fn condition() -> Condition {
    Condition {
        kind: "Ready".into(),
        status: ConditionStatus::True,
        observed_generation: 3,
        last_transition_time: at(1_796_172_075),
        reason: "Succeeded".into(),
        message: "successful scan: found 3 tags".into(),
    }
}

fn latest(tag: &str) -> LatestRef {
    LatestRef {
        name: "ghcr.io/stefanprodan/podinfo".into(),
        tag: tag.into(),
        digest: Some("sha256:0123".into()),
    }
}

/// Every field of every status struct set, so each serialises.
fn full_statuses() -> [(&'static str, Json); 3] {
    let repo = Status::ImageRepository(ImageRepositoryStatus {
        observed_generation: 3,
        conditions: vec![condition()],
        canonical_image_name: Some("ghcr.io/stefanprodan/podinfo".into()),
        last_scan_result: Some(ScanResult {
            revision: "sha256:ab".into(),
            tag_count: 3,
            scan_time: at(1_796_172_075),
            latest_tags: vec!["6.0.0".into()],
        }),
        observed_exclusion_list: vec![r"^.*\.sig$".into()],
        last_handled_reconcile_at: Some("2026-12-02T00:41:00Z".into()),
    });
    let policy = Status::ImagePolicy(ImagePolicyStatus {
        observed_generation: 3,
        conditions: vec![condition()],
        latest_ref: Some(latest("6.0.0")),
        observed_previous_ref: Some(latest("5.0.3")),
        last_handled_reconcile_at: Some("2026-12-02T00:41:00Z".into()),
    });
    let auto = Status::ImageUpdateAutomation(ImageUpdateAutomationStatus {
        observed_generation: 3,
        conditions: vec![condition()],
        last_automation_run_time: Some(at(1_796_172_075)),
        last_push_commit: Some("0123abc".into()),
        last_push_time: Some(at(1_796_172_075)),
        observed_policies: [("podinfo".to_string(), latest("6.0.0"))].into(),
        observed_source_revision: Some("main@sha1:0123abc".into()),
        last_handled_reconcile_at: Some("2026-12-02T00:41:00Z".into()),
    });
    [
        ("imagerepositories", repo.to_json()),
        ("imagepolicies", policy.to_json()),
        ("imageupdateautomations", auto.to_json()),
    ]
}

/// Checks `json` against `schema` as the API server's pruning and
/// validation would, recording each path the JSON reaches.
fn check(json: &Json, schema: &Yaml, path: &str, seen: &mut BTreeSet<String>) {
    seen.insert(path.to_string());
    let ty = str_of(&schema["type"], &format!("{path} type"));
    match json {
        Json::Object(fields) => {
            assert_eq!(ty, "object", "{path}");
            for r in schema["required"].as_vec().into_iter().flatten() {
                let r = str_of(r, "required");
                assert!(fields.contains_key(r), "{path}.{r} is required: {json}");
            }
            for (k, v) in fields {
                let child = format!("{path}.{k}");
                let sub = &schema["properties"][k.as_str()];
                if !sub.is_badvalue() {
                    check(v, sub, &child, seen);
                } else {
                    let free = &schema["additionalProperties"];
                    assert!(!free.is_badvalue(), "{child} would be pruned");
                    check(v, free, &format!("{path}.*"), seen);
                }
            }
        }
        Json::Array(items) => {
            assert_eq!(ty, "array", "{path}");
            for i in items {
                check(i, &schema["items"], &format!("{path}[]"), seen);
            }
        }
        Json::String(s) => {
            assert_eq!(ty, "string", "{path}");
            if schema["format"].as_str() == Some("date-time") {
                assert!(
                    s.len() == 20 && s.as_bytes()[10] == b'T' && s.ends_with('Z'),
                    "{path}: {s}"
                );
            }
            if let Some(pattern) = schema["pattern"].as_str() {
                let re = regex::Regex::new(pattern).expect("pattern");
                assert!(re.is_match(s), "{path}: {s:?} does not match {pattern}");
            }
            if let Some(allowed) = schema["enum"].as_vec() {
                assert!(allowed.iter().any(|a| a.as_str() == Some(s)), "{path}: {s}");
            }
        }
        Json::Number(n) => {
            assert_eq!(ty, "integer", "{path}");
            assert!(n.is_i64(), "{path}: {n}");
        }
        Json::Bool(_) => assert_eq!(ty, "boolean", "{path}"),
        Json::Null => panic!("{path}: null would be dropped"),
    }
}

/// Every path the schema declares (`.*` for a map's values, `[]` for items).
fn schema_paths(schema: &Yaml, path: &str, out: &mut BTreeSet<String>) {
    out.insert(path.to_string());
    if let Some(props) = schema["properties"].as_hash() {
        for (k, v) in props {
            schema_paths(v, &format!("{path}.{}", str_of(k, "key")), out);
        }
    }
    if !schema["additionalProperties"].is_badvalue() {
        schema_paths(&schema["additionalProperties"], &format!("{path}.*"), out);
    }
    if !schema["items"].is_badvalue() {
        schema_paths(&schema["items"], &format!("{path}[]"), out);
    }
}

#[test]
fn crd_status_schemas_hold_exactly_what_tagwarden_writes() {
    let all = docs("flux-system", true);
    for (plural, json) in full_statuses() {
        let crd = crd(&all, plural);
        for v in versions(crd) {
            let version = str_of(&v["name"], "name");
            let schema = &v["schema"]["openAPIV3Schema"]["properties"]["status"];
            let mut seen = BTreeSet::new();
            check(&json, schema, "status", &mut seen);
            let mut declared = BTreeSet::new();
            schema_paths(schema, "status", &mut declared);
            if plural == "imagepolicies" {
                // v1beta2's `name:tag`, kept for the guides' jsonpath (whether
                // or not the status struct carries it).
                assert!(declared.remove("status.latestImage"), "{plural} {version}");
                seen.remove("status.latestImage");
            }
            assert_eq!(
                declared, seen,
                "{plural} {version}: schema vs status structs"
            );
            assert_eq!(
                v["subresources"]["status"].as_hash().map(|h| h.len()),
                Some(0),
                "{plural} {version}"
            );
        }
    }
    // A fresh object reads as never observed, as with Flux's CRDs.
    let policy = crd(&all, "imagepolicies");
    let status = &versions(policy)[0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(status["default"]["observedGeneration"].as_i64(), Some(-1));
    assert_eq!(
        status["properties"]["latestImage"]["type"].as_str(),
        Some("string")
    );
}

#[test]
fn crds_are_structural_and_never_keep_unknown_fields() {
    let text = Install::new("flux-system", "x:1", true)
        .expect("install")
        .to_yaml();
    assert!(!text.contains("x-kubernetes-preserve-unknown-fields"));
    fn structural(s: &Yaml, path: &str) {
        let ty = str_of(&s["type"], &format!("{path} type"));
        match ty {
            "object" if path != "metadata" => assert!(
                s["properties"].as_hash().is_some() || !s["additionalProperties"].is_badvalue(),
                "{path} has no fields"
            ),
            "array" => structural(&s["items"], &format!("{path}[]")),
            _ => {}
        }
        for (k, v) in s["properties"].as_hash().into_iter().flatten() {
            let k = str_of(k, "key");
            structural(
                v,
                if path.is_empty() {
                    k.to_string()
                } else {
                    format!("{path}.{k}")
                }
                .as_str(),
            );
        }
        if !s["additionalProperties"].is_badvalue() {
            structural(&s["additionalProperties"], &format!("{path}.*"));
        }
    }
    let all = YamlLoader::load_from_str(&text).expect("yaml");
    for plural in [
        "imagerepositories",
        "imagepolicies",
        "imageupdateautomations",
    ] {
        let crd = crd(&all, plural);
        let vs = versions(crd);
        let served: Vec<(String, bool, bool)> = vs
            .iter()
            .map(|v| {
                (
                    str_of(&v["name"], "name").to_string(),
                    v["served"].as_bool().expect("served"),
                    v["storage"].as_bool().expect("storage"),
                )
            })
            .collect();
        assert_eq!(
            served,
            [
                ("v1".to_string(), true, true),
                ("v1beta2".to_string(), true, false)
            ],
            "{plural}"
        );
        assert_eq!(
            vs[0]["schema"], vs[1]["schema"],
            "{plural}: one schema for both versions"
        );
        structural(&vs[0]["schema"]["openAPIV3Schema"], "");
        assert_eq!(crd["spec"]["scope"].as_str(), Some("Namespaced"));
        assert_eq!(
            strings(&crd["spec"]["names"]["categories"]),
            ["all", "fluxcd", "fluxcd-images"]
        );
    }
}

#[test]
fn crd_spec_types_enums_and_defaults_follow_flux() {
    let all = docs("flux-system", true);
    let spec = |plural: &str| -> Yaml {
        versions(crd(&all, plural))[0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
    };
    let repo = spec("imagerepositories");
    let p = &repo["properties"];
    assert_eq!(
        strings(&p["provider"]["enum"]),
        ["generic", "aws", "azure", "gcp"]
    );
    assert_eq!(p["provider"]["default"].as_str(), Some("generic"));
    assert_eq!(strings(&p["exclusionList"]["default"]), [r"^.*\.sig$"]);
    assert_eq!(p["exclusionList"]["maxItems"].as_i64(), Some(25));
    assert_eq!(p["insecure"]["type"].as_str(), Some("boolean"));
    assert_eq!(strings(&repo["required"]), ["image", "interval"]);
    assert_eq!(
        p["interval"]["pattern"].as_str(),
        Some(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")
    );
    let policy = spec("imagepolicies");
    let p = &policy["properties"];
    assert_eq!(
        strings(&p["digestReflectionPolicy"]["enum"]),
        ["Always", "IfNotPresent", "Never"]
    );
    assert_eq!(
        p["digestReflectionPolicy"]["default"].as_str(),
        Some("Never")
    );
    for order in ["alphabetical", "numerical"] {
        let o = &p["policy"]["properties"][order]["properties"]["order"];
        assert_eq!(strings(&o["enum"]), ["asc", "desc"], "{order}");
        assert_eq!(o["default"].as_str(), Some("asc"), "{order}");
    }
    assert_eq!(
        strings(&p["policy"]["properties"]["semver"]["required"]),
        ["range"]
    );
    let auto = spec("imageupdateautomations");
    let p = &auto["properties"];
    assert_eq!(
        p["sourceRef"]["properties"]["kind"]["default"].as_str(),
        Some("GitRepository")
    );
    assert_eq!(p["update"]["default"]["strategy"].as_str(), Some("Setters"));
    assert_eq!(
        p["git"]["properties"]["push"]["properties"]["options"]["additionalProperties"]["type"]
            .as_str(),
        Some("string")
    );
    assert_eq!(strings(&auto["required"]), ["interval", "sourceRef"]);
}

#[test]
fn printer_columns_and_names_are_fluxs() {
    let all = docs("flux-system", true);
    let ready = r#".status.conditions[?(@.type=="Ready")]"#;
    type Column = (&'static str, String, Option<i64>);
    let table: [(&str, &[&str], Vec<Column>); 3] = [
        (
            "imagerepositories",
            &["imgrepo", "imagerepo"],
            vec![
                ("Image", ".spec.image".into(), None),
                ("Tags", ".status.lastScanResult.tagCount".into(), None),
                ("Ready", format!("{ready}.status"), None),
                ("Status", format!("{ready}.message"), None),
                (
                    "Last scan",
                    ".status.lastScanResult.scanTime".into(),
                    Some(1),
                ),
                ("Age", ".metadata.creationTimestamp".into(), None),
            ],
        ),
        (
            "imagepolicies",
            &["imgpol", "imagepol"],
            vec![
                ("Image", ".status.latestRef.name".into(), None),
                ("Tag", ".status.latestRef.tag".into(), None),
                ("Ready", format!("{ready}.status"), None),
                ("Status", format!("{ready}.message"), None),
                ("Age", ".metadata.creationTimestamp".into(), None),
            ],
        ),
        (
            "imageupdateautomations",
            &["iua", "imgupd", "imgauto"],
            vec![
                ("Ready", format!("{ready}.status"), None),
                ("Status", format!("{ready}.message"), None),
                ("Last run", ".status.lastAutomationRunTime".into(), Some(1)),
                ("Age", ".metadata.creationTimestamp".into(), None),
            ],
        ),
    ];
    for (plural, short, want) in table {
        let crd = crd(&all, plural);
        assert_eq!(
            strings(&crd["spec"]["names"]["shortNames"]),
            short,
            "{plural}"
        );
        assert_eq!(crd["spec"]["names"]["plural"].as_str(), Some(plural));
        for v in versions(crd) {
            let got: Vec<(String, String, Option<i64>)> = v["additionalPrinterColumns"]
                .as_vec()
                .expect("columns")
                .iter()
                .map(|c| {
                    let ty = str_of(&c["type"], "type");
                    let name = str_of(&c["name"], "name");
                    assert_eq!(ty, if name == "Age" { "date" } else { "string" }, "{name}");
                    (
                        name.to_string(),
                        str_of(&c["jsonPath"], "jsonPath").to_string(),
                        c["priority"].as_i64(),
                    )
                })
                .collect();
            let want: Vec<(String, String, Option<i64>)> = want
                .iter()
                .map(|(n, p, pr)| (n.to_string(), p.clone(), *pr))
                .collect();
            assert_eq!(got, want, "{plural}");
        }
    }
}

fn to_json(y: &Yaml) -> Json {
    match y {
        Yaml::Hash(h) => Json::Object(
            h.iter()
                .map(|(k, v)| (str_of(k, "key").to_string(), to_json(v)))
                .collect(),
        ),
        Yaml::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Integer(n) => Json::from(*n),
        Yaml::Boolean(b) => Json::Bool(*b),
        other => panic!("unexpected YAML value {other:?}"),
    }
}

#[test]
fn what_create_exports_is_accepted_by_the_crds() {
    let meta = |name: &str| ExportMeta {
        name: name.into(),
        namespace: "flux-system".into(),
        labels: [("app".to_string(), "podinfo".to_string())].into(),
    };
    let docs_in = [
        RepositoryExport {
            meta: meta("podinfo"),
            image: "ghcr.io/stefanprodan/podinfo".into(),
            interval: Duration::from_secs(90),
            secret_ref: Some("regcred".into()),
            cert_secret_ref: Some("ca".into()),
            timeout: Some(Duration::from_millis(30_500)),
            provider: Some("generic".into()),
        }
        .to_yaml(),
        PolicyExport {
            meta: meta("podinfo"),
            image_repository_ref: "podinfo".into(),
            policy: PolicyChoice::Numerical {
                order: "desc".into(),
            },
            filter_pattern: Some("^main-[a-f0-9]+-(?P<ts>[0-9]+)".into()),
            filter_extract: Some("$ts".into()),
            digest_reflection_policy: Some("Always".into()),
            interval: Some(Duration::from_secs(3600)),
        }
        .to_yaml(),
        UpdateExport {
            meta: meta("flux-system"),
            git_repo_ref: "flux-system".into(),
            git_repo_namespace: Some("apps".into()),
            git_repo_path: Some("./clusters/my-cluster".into()),
            checkout_branch: "main".into(),
            push_branch: Some("image-updates".into()),
            author_name: "fluxcdbot".into(),
            author_email: "fluxcdbot@users.noreply.github.com".into(),
            commit_template: Some("{{range .Changed.Changes}}{{print .NewValue}}{{end}}".into()),
            interval: Duration::from_secs(1800),
        }
        .to_yaml(),
    ];
    let all = docs("flux-system", true);
    for (text, plural) in docs_in.iter().zip([
        "imagerepositories",
        "imagepolicies",
        "imageupdateautomations",
    ]) {
        let object = &YamlLoader::load_from_str(text).expect("yaml")[0];
        let crd = crd(&all, plural);
        assert_eq!(object["kind"], crd["spec"]["names"]["kind"]);
        let schema = &versions(crd)[0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let mut seen = BTreeSet::new();
        check(&to_json(&object["spec"]), schema, "spec", &mut seen);
    }
}

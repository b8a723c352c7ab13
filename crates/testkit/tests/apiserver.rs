//! The stand-in API server, spoken to in raw HTTP as a client would: every
//! exchange is scripted, so the exact request and answer shapes are pinned.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tagwarden_testkit::ApiServer;

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";
const JSONPATCH: &str = "application/json-patch+json";
const IMAGE: &str = "/apis/image.toolkit.fluxcd.io/v1";

/// One request on a fresh connection; the status and the JSON answer.
fn call(s: &ApiServer, method: &str, path: &str, ct: Option<&str>, body: &str) -> (u16, Value) {
    let mut headers = vec![("User-Agent", "apitest/1.0")];
    if let Some(ct) = ct {
        headers.push(("Content-Type", ct));
    }
    let (code, _, body) =
        tagwarden_testkit::http(s.port, method, path, &headers, body.as_bytes()).expect("http");
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: answer is not JSON ({e}): {body:?}"));
    (code, v)
}

fn get(s: &ApiServer, path: &str) -> (u16, Value) {
    call(s, "GET", path, None, "")
}

fn policy(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "image.toolkit.fluxcd.io/v1",
        "kind": "ImagePolicy",
        "metadata": {"name": name, "namespace": "flux-system", "labels": labels},
        "spec": {"imageRepositoryRef": {"name": "app"}, "policy": {"semver": {"range": "1.x"}}},
    })
}

fn create_policy(s: &ApiServer, name: &str, labels: Value) -> Value {
    let (code, v) = call(
        s,
        "POST",
        &format!("{IMAGE}/namespaces/flux-system/imagepolicies"),
        Some(JSON),
        &policy(name, labels).to_string(),
    );
    assert_eq!(code, 201, "{v}");
    v
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .parse()
        .expect("numeric resourceVersion")
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

fn assert_status(v: &Value, code: u16, reason: &str, message: &str) {
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1", "{v}");
    assert_eq!(v["status"], "Failure", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    assert_eq!(v["message"], message, "{v}");
}

#[test]
fn create_get_list_with_label_selectors() {
    let s = ApiServer::start();
    let a = create_policy(&s, "a", json!({"app": "web", "tier": "front"}));
    create_policy(&s, "b", json!({"app": "web", "tier": "back"}));
    create_policy(&s, "c", json!({"app": "db"}));

    assert_eq!(a["apiVersion"], "image.toolkit.fluxcd.io/v1");
    assert_eq!(a["kind"], "ImagePolicy");
    assert_eq!(a["metadata"]["generation"], 1);
    assert!(a["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    let ts = a["metadata"]["creationTimestamp"]
        .as_str()
        .expect("creationTimestamp");
    assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");

    let (code, got) = get(
        &s,
        &format!("{IMAGE}/namespaces/flux-system/imagepolicies/a"),
    );
    assert_eq!(code, 200);
    assert_eq!(got, a);

    let list_path = format!("{IMAGE}/namespaces/flux-system/imagepolicies");
    let (code, list) = get(&s, &list_path);
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "ImagePolicyList");
    assert_eq!(list["apiVersion"], "image.toolkit.fluxcd.io/v1");
    assert_eq!(
        list["metadata"]["resourceVersion"],
        s.resource_version().to_string()
    );
    assert_eq!(names(&list), ["a", "b", "c"]);
    assert_eq!(list["items"][0]["kind"], "ImagePolicy");

    // Selectors as kube's query encoding sends them (form-encoded, `?&`).
    for (selector, want) in [
        ("app%3Dweb", vec!["a", "b"]),
        ("app%3D%3Dweb%2Ctier%21%3Dback", vec!["a"]),
        ("tier+in+%28front%2Cback%29", vec!["a", "b"]),
        ("tier+notin+%28front%29", vec!["b", "c"]),
        ("tier", vec!["a", "b"]),
        ("%21tier", vec!["c"]),
        ("app%21%3Dweb", vec!["c"]),
    ] {
        let (code, l) = get(&s, &format!("{list_path}?&labelSelector={selector}"));
        assert_eq!(code, 200, "{selector}: {l}");
        assert_eq!(names(&l), want, "{selector}");
    }
    let (_, l) = get(&s, &format!("{list_path}?fieldSelector=metadata.name%3Db"));
    assert_eq!(names(&l), ["b"]);
    let (code, l) = get(&s, &format!("{list_path}?fieldSelector=spec.policy%3Dx"));
    assert_eq!(code, 400, "{l}");
    let (code, l) = get(&s, &format!("{list_path}?labelSelector=a+in+x"));
    assert_eq!(code, 400, "{l}");

    // All namespaces; another namespace is empty.
    create_policy(&s, "d", json!({}));
    let (_, all) = get(&s, &format!("{IMAGE}/imagepolicies"));
    assert_eq!(names(&all), ["a", "b", "c", "d"]);
    let (_, other) = get(&s, &format!("{IMAGE}/namespaces/default/imagepolicies"));
    assert_eq!(names(&other), Vec::<String>::new());

    // Pages: limit and continue at the first page's resourceVersion.
    let (_, p1) = get(&s, &format!("{list_path}?limit=3"));
    assert_eq!(names(&p1), ["a", "b", "c"]);
    assert_eq!(p1["metadata"]["remainingItemCount"], 1);
    let token = p1["metadata"]["continue"].as_str().expect("continue");
    let (_, p2) = get(&s, &format!("{list_path}?limit=3&continue={token}"));
    assert_eq!(names(&p2), ["d"]);
    assert!(p2["metadata"].get("continue").is_none());

    // The test-side helpers see the same store.
    assert_eq!(
        s.get(
            "image.toolkit.fluxcd.io",
            "v1",
            "imagepolicies",
            "flux-system",
            "a"
        ),
        Some(a)
    );
    assert_eq!(
        s.list("image.toolkit.fluxcd.io", "v1", "imagepolicies", "")
            .len(),
        4
    );
}

#[test]
fn create_refuses_duplicates_wrong_types_and_missing_names() {
    let s = ApiServer::start();
    let path = format!("{IMAGE}/namespaces/flux-system/imagepolicies");
    create_policy(&s, "a", json!({}));
    let (code, v) = call(
        &s,
        "POST",
        &path,
        Some(JSON),
        &policy("a", json!({})).to_string(),
    );
    assert_eq!(code, 409);
    assert_status(
        &v,
        409,
        "AlreadyExists",
        "imagepolicies.image.toolkit.fluxcd.io \"a\" already exists",
    );
    assert_eq!(
        v["details"],
        json!({"name": "a", "group": "image.toolkit.fluxcd.io", "kind": "imagepolicies"})
    );

    let mut wrong = policy("b", json!({}));
    wrong["apiVersion"] = "image.toolkit.fluxcd.io/v1beta2".into();
    let (code, v) = call(&s, "POST", &path, Some(JSON), &wrong.to_string());
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "the API version in the data (image.toolkit.fluxcd.io/v1beta2) does not match the expected API version (image.toolkit.fluxcd.io/v1)"
    );
    let mut wrong = policy("b", json!({}));
    wrong["kind"] = "ImageRepository".into();
    let (code, _) = call(&s, "POST", &path, Some(JSON), &wrong.to_string());
    assert_eq!(code, 400);
    let mut other_ns = policy("b", json!({}));
    other_ns["metadata"]["namespace"] = "default".into();
    let (code, v) = call(&s, "POST", &path, Some(JSON), &other_ns.to_string());
    assert_eq!(code, 400);
    assert_eq!(
        v["message"],
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    let mut nameless = policy("b", json!({}));
    nameless["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("name");
    let (code, v) = call(&s, "POST", &path, Some(JSON), &nameless.to_string());
    assert_eq!(code, 422);
    assert_eq!(v["reason"], "Invalid");
    let (code, v) = call(&s, "POST", &path, Some(JSON), "{\"apiVersion\": ");
    assert_eq!(code, 400);
    assert_eq!(v["reason"], "BadRequest");
    let (code, v) = call(&s, "POST", &path, Some("text/plain"), "{}");
    assert_eq!(code, 415, "{v}");
    let yaml = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: from-yaml\nspec:\n  interval: 1m\n";
    let (code, v) = call(&s, "POST", &path, Some("application/yaml"), yaml);
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["spec"]["interval"], "1m");
    let (code, v) = call(
        &s,
        "POST",
        &format!("{IMAGE}/namespaces/nowhere/imagepolicies"),
        Some(JSON),
        &json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": {"name": "x"}}).to_string(),
    );
    assert_eq!(code, 404);
    assert_eq!(v["message"], "namespaces \"nowhere\" not found");
    // generateName makes a name.
    let mut generated = policy("", json!({}));
    generated["metadata"]["generateName"] = "gen-".into();
    let (code, v) = call(&s, "POST", &path, Some(JSON), &generated.to_string());
    assert_eq!(code, 201, "{v}");
    assert!(
        v["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("gen-") && n.len() == 9)
    );
}

#[test]
fn unknown_resources_and_paths_are_404_status() {
    let s = ApiServer::start();
    for path in [
        "/apis/image.toolkit.fluxcd.io/v1/namespaces/flux-system/widgets",
        "/apis/image.toolkit.fluxcd.io/v9/imagepolicies",
        "/api/v1/namespaces/flux-system/pods",
        // Namespaces are cluster-scoped; a named secret needs its namespace.
        "/api/v1/namespaces/flux-system/namespaces/x",
        "/api/v1/secrets/x",
        "/apis/image.toolkit.fluxcd.io/v1/namespaces/flux-system/imagepolicies/a/scale",
    ] {
        let (code, v) = get(&s, path);
        assert_eq!(code, 404, "{path}");
        assert_status(
            &v,
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let (code, v) = get(&s, "/api/v1/namespaces/flux-system/secrets/missing");
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound", "secrets \"missing\" not found");
    assert_eq!(v["details"], json!({"name": "missing", "kind": "secrets"}));
    // Namespaces themselves, by name.
    let (code, v) = get(&s, "/api/v1/namespaces/flux-system");
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "Namespace");
    // A list across namespaces cannot be created into.
    let (code, v) = call(&s, "POST", "/api/v1/secrets", Some(JSON), "{}");
    assert_eq!(code, 405, "{v}");
}

#[test]
fn generation_counts_spec_changes_only() {
    let s = ApiServer::start();
    let a = create_policy(&s, "a", json!({}));
    let path = format!("{IMAGE}/namespaces/flux-system/imagepolicies/a");
    assert_eq!(a["metadata"]["generation"], 1);

    let (_, v) = call(
        &s,
        "PATCH",
        &path,
        Some(MERGE),
        r#"{"metadata":{"labels":{"x":"1"}}}"#,
    );
    assert_eq!(v["metadata"]["generation"], 1);
    assert!(rv(&v) > rv(&a));
    let (_, v) = call(
        &s,
        "PATCH",
        &format!("{path}/status"),
        Some(MERGE),
        r#"{"status":{"observedGeneration":1}}"#,
    );
    assert_eq!(v["metadata"]["generation"], 1);
    let (_, v) = call(
        &s,
        "PATCH",
        &path,
        Some(MERGE),
        r#"{"spec":{"policy":{"semver":{"range":"2.x"}}}}"#,
    );
    assert_eq!(v["metadata"]["generation"], 2);
    // The same spec again changes nothing: no new resourceVersion either.
    let before = rv(&v);
    let (_, v) = call(
        &s,
        "PATCH",
        &path,
        Some(MERGE),
        r#"{"spec":{"policy":{"semver":{"range":"2.x"}}}}"#,
    );
    assert_eq!(v["metadata"]["generation"], 2);
    assert_eq!(rv(&v), before);
    // A client cannot set generation itself.
    let (_, v) = call(
        &s,
        "PATCH",
        &path,
        Some(MERGE),
        r#"{"metadata":{"generation":9}}"#,
    );
    assert_eq!(v["metadata"]["generation"], 2);
    // Built-in kinds carry no generation, as on a real server.
    let cm = s.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "flux-system"}, "data": {"k": "v"}}));
    assert!(cm["metadata"].get("generation").is_none(), "{cm}");
}

#[test]
fn status_subresource_is_isolated() {
    let s = ApiServer::start();
    let mut body = policy("a", json!({}));
    body["status"] = json!({"latestRef": {"tag": "sneaked"}});
    let (code, a) = call(
        &s,
        "POST",
        &format!("{IMAGE}/namespaces/flux-system/imagepolicies"),
        Some(JSON),
        &body.to_string(),
    );
    assert_eq!(code, 201);
    assert!(a.get("status").is_none(), "create drops the status: {a}");
    let path = format!("{IMAGE}/namespaces/flux-system/imagepolicies/a");

    // /status changes the status only; the spec and labels sent along stay.
    let patch = json!({"metadata": {"labels": {"x": "1"}}, "spec": {"policy": {"alphabetical": {}}}, "status": {"latestRef": {"tag": "1.2.3"}}});
    let (code, v) = call(
        &s,
        "PATCH",
        &format!("{path}/status"),
        Some(MERGE),
        &patch.to_string(),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], json!({"latestRef": {"tag": "1.2.3"}}));
    assert_eq!(v["spec"], a["spec"]);
    assert!(
        v["metadata"]
            .get("labels")
            .is_none_or(|l| l.get("x").is_none()),
        "{v}"
    );
    assert_eq!(v["metadata"]["generation"], 1);
    assert!(rv(&v) > rv(&a));

    // The main resource ignores status.
    let mut put = v.clone();
    put["status"] = json!({"latestRef": {"tag": "9.9.9"}});
    put["spec"]["policy"] = json!({"numerical": {"order": "asc"}});
    let (code, v2) = call(&s, "PUT", &path, Some(JSON), &put.to_string());
    assert_eq!(code, 200, "{v2}");
    assert_eq!(v2["status"], json!({"latestRef": {"tag": "1.2.3"}}));
    assert_eq!(v2["spec"]["policy"], json!({"numerical": {"order": "asc"}}));
    assert_eq!(v2["metadata"]["generation"], 2);

    // PUT /status with the whole object.
    let mut st = v2.clone();
    st["status"] = json!({"latestRef": {"tag": "2.0.0"}});
    st["spec"] = json!({});
    let (code, v3) = call(
        &s,
        "PUT",
        &format!("{path}/status"),
        Some(JSON),
        &st.to_string(),
    );
    assert_eq!(code, 200, "{v3}");
    assert_eq!(v3["status"]["latestRef"]["tag"], "2.0.0");
    assert_eq!(v3["spec"], v2["spec"]);
    assert_eq!(v3["metadata"]["generation"], 2);
    // A kind without a status subresource has no /status.
    let (code, _) = get(&s, "/api/v1/namespaces/flux-system/configmaps/x/status");
    assert_eq!(code, 404);
    // The test-side helper writes as another controller would.
    let v4 = s.apply_status(
        "image.toolkit.fluxcd.io",
        "v1",
        "imagepolicies",
        "flux-system",
        "a",
        json!({"observedGeneration": 2}),
    );
    assert_eq!(
        v4["status"],
        json!({"latestRef": {"tag": "2.0.0"}, "observedGeneration": 2})
    );
}

fn apply_path(manager: &str, force: bool) -> String {
    let mut p = format!("{IMAGE}/namespaces/flux-system/imagepolicies/a?&fieldManager={manager}");
    if force {
        p.push_str("&force=true");
    }
    p
}

#[test]
fn server_side_apply_creates_merges_conflicts_and_forces() {
    let s = ApiServer::start();
    let (code, v) = call(
        &s,
        "PATCH",
        &format!("{IMAGE}/namespaces/flux-system/imagepolicies/a"),
        Some(APPLY),
        &policy("a", json!({})).to_string(),
    );
    assert_eq!(code, 422, "{v}");
    assert_status(
        &v,
        422,
        "Invalid",
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
    );

    // Creates when missing.
    let (code, a) = call(
        &s,
        "PATCH",
        &apply_path("alice", false),
        Some(APPLY),
        &policy("a", json!({"team": "x"})).to_string(),
    );
    assert_eq!(code, 201, "{a}");
    assert_eq!(a["metadata"]["generation"], 1);
    let mf = &a["metadata"]["managedFields"];
    assert_eq!(mf[0]["manager"], "alice");
    assert_eq!(mf[0]["operation"], "Apply");
    assert_eq!(mf[0]["fieldsType"], "FieldsV1");
    assert_eq!(
        mf[0]["fieldsV1"]["f:spec"]["f:policy"]["f:semver"]["f:range"],
        json!({})
    );

    // Another manager adds a field: merged in.
    let bob = json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": {"name": "a"}, "spec": {"filterTags": {"pattern": "^v"}}});
    let (code, b) = call(
        &s,
        "PATCH",
        &apply_path("bob", false),
        Some(APPLY),
        &bob.to_string(),
    );
    assert_eq!(code, 200, "{b}");
    assert_eq!(b["spec"]["filterTags"]["pattern"], "^v");
    assert_eq!(b["spec"]["policy"]["semver"]["range"], "1.x");
    assert_eq!(b["metadata"]["labels"]["team"], "x");

    // Bob applying alice's field with another value conflicts.
    let mut grab = bob.clone();
    grab["spec"]["policy"] = json!({"semver": {"range": "2.x"}});
    let (code, c) = call(
        &s,
        "PATCH",
        &apply_path("bob", false),
        Some(APPLY),
        &grab.to_string(),
    );
    assert_eq!(code, 409, "{c}");
    assert_status(
        &c,
        409,
        "Conflict",
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.policy.semver.range",
    );
    assert_eq!(
        c["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".spec.policy.semver.range"}])
    );
    // The same value is shared ownership, no conflict.
    let mut same = bob.clone();
    same["spec"]["policy"] = json!({"semver": {"range": "1.x"}});
    let (code, _) = call(
        &s,
        "PATCH",
        &apply_path("bob", false),
        Some(APPLY),
        &same.to_string(),
    );
    assert_eq!(code, 200);
    // force takes it over.
    let (code, f) = call(
        &s,
        "PATCH",
        &apply_path("bob", true),
        Some(APPLY),
        &grab.to_string(),
    );
    assert_eq!(code, 200, "{f}");
    assert_eq!(f["spec"]["policy"]["semver"]["range"], "2.x");
    assert_eq!(f["metadata"]["generation"], 3, "filterTags, then the range");

    // Fields a manager stops applying are removed when nobody else owns them.
    let mut less = policy("a", json!({}));
    less["spec"].as_object_mut().expect("spec").remove("policy");
    let (code, l) = call(
        &s,
        "PATCH",
        &apply_path("alice", false),
        Some(APPLY),
        &less.to_string(),
    );
    assert_eq!(code, 200, "{l}");
    assert!(l["metadata"]["labels"].get("team").is_none(), "{l}");
    assert_eq!(
        l["spec"]["policy"]["semver"]["range"], "2.x",
        "bob owns it now"
    );

    // An apply that changes nothing is no write at all.
    let before = rv(&l);
    let (_, again) = call(
        &s,
        "PATCH",
        &apply_path("alice", false),
        Some(APPLY),
        &less.to_string(),
    );
    assert_eq!(rv(&again), before);

    // Wrong name, kind or type in an apply body.
    let (code, _) = call(
        &s,
        "PATCH",
        &apply_path("alice", false),
        Some(APPLY),
        &policy("b", json!({})).to_string(),
    );
    assert_eq!(code, 400);
    let (code, _) = call(
        &s,
        "PATCH",
        &apply_path("alice", false),
        Some(APPLY),
        r#"{"metadata":{"name":"a"}}"#,
    );
    assert_eq!(code, 400);
    let (code, _) = call(
        &s,
        "PATCH",
        &apply_path("alice", false),
        Some(APPLY),
        "spec: {}",
    );
    assert_eq!(code, 400);

    // An Update by one manager takes the fields it changed: a later apply
    // of another value by the previous owner conflicts with it.
    let (code, _) = call(
        &s,
        "PATCH",
        &format!("{IMAGE}/namespaces/flux-system/imagepolicies/a?fieldManager=kubectl-edit"),
        Some(MERGE),
        r#"{"spec":{"filterTags":{"pattern":"^w"}}}"#,
    );
    assert_eq!(code, 200);
    let (code, c) = call(
        &s,
        "PATCH",
        &apply_path("bob", false),
        Some(APPLY),
        &grab.to_string(),
    );
    assert_eq!(code, 409);
    assert_eq!(
        c["message"],
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\": .spec.filterTags.pattern"
    );
}

#[test]
fn server_side_apply_of_status() {
    let s = ApiServer::start();
    create_policy(&s, "a", json!({}));
    let body = json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": {"name": "a", "namespace": "flux-system"}, "status": {"latestRef": {"tag": "1.0.0"}}});
    let path = format!(
        "{IMAGE}/namespaces/flux-system/imagepolicies/a/status?fieldManager=tagwarden&force=true"
    );
    let (code, v) = call(&s, "PATCH", &path, Some(APPLY), &body.to_string());
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"]["latestRef"]["tag"], "1.0.0");
    assert_eq!(v["metadata"]["generation"], 1);
    let entry = v["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .find(|m| m["manager"] == "tagwarden")
        .expect("tagwarden entry")
        .clone();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(entry["operation"], "Apply");
    // Without a name in the body the URL's object is meant.
    let nameless = json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "status": {"latestRef": {"tag": "1.0.1"}}});
    let path =
        format!("{IMAGE}/namespaces/flux-system/imagepolicies/a/status?fieldManager=tagwarden");
    let (code, v) = call(&s, "PATCH", &path, Some(APPLY), &nameless.to_string());
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"]["latestRef"]["tag"], "1.0.1");
    // ... but a nameless apply cannot create.
    let (code, v) = call(
        &s,
        "PATCH",
        &format!("{IMAGE}/namespaces/flux-system/imagepolicies/new?fieldManager=x"),
        Some(APPLY),
        &nameless.to_string(),
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "the name of the object () does not match the name on the URL (new)"
    );
    // SSA on the status of a missing object does not create it.
    let path =
        format!("{IMAGE}/namespaces/flux-system/imagepolicies/zz/status?fieldManager=tagwarden");
    let mut missing = body.clone();
    missing["metadata"]["name"] = "zz".into();
    let (code, _) = call(&s, "PATCH", &path, Some(APPLY), &missing.to_string());
    assert_eq!(code, 404);
}

#[test]
fn merge_patch_and_json_patch() {
    let s = ApiServer::start();
    s.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "flux-system", "labels": {"team": "x"}}, "data": {"a": "1", "b": "2"}}));
    let path = "/api/v1/namespaces/flux-system/configmaps/c";
    let (code, v) = call(
        &s,
        "PATCH",
        path,
        Some("application/merge-patch+json; charset=utf-8"),
        r#"{"data":{"a":null,"c":"3"}}"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"], json!({"b": "2", "c": "3"}));
    let (code, v) = call(
        &s,
        "PATCH",
        path,
        Some(JSONPATCH),
        r#"[{"op":"test","path":"/data/b","value":"2"},{"op":"replace","path":"/data/b","value":"20"},{"op":"add","path":"/data/d","value":"4"},{"op":"remove","path":"/data/c"}]"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"], json!({"b": "20", "d": "4"}));
    let (code, v) = call(
        &s,
        "PATCH",
        path,
        Some(JSONPATCH),
        r#"[{"op":"test","path":"/data/b","value":"2"}]"#,
    );
    assert_eq!(code, 422, "{v}");
    let (code, _) = call(&s, "PATCH", path, Some(JSONPATCH), r#"{"op":"add"}"#);
    assert_eq!(code, 400);
    let (code, _) = call(
        &s,
        "PATCH",
        path,
        Some(JSONPATCH),
        r#"[{"op":"remove","path":"/data/nothere"}]"#,
    );
    assert_eq!(code, 422);
    // Strategic merge works on built-ins as a merge, and a stale
    // resourceVersion inside a patch is a conflict.
    let (code, v) = call(
        &s,
        "PATCH",
        path,
        Some("application/strategic-merge-patch+json"),
        r#"{"data":{"e":"5"}}"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["e"], "5");
    let (code, v) = call(
        &s,
        "PATCH",
        path,
        Some(MERGE),
        r#"{"metadata":{"resourceVersion":"1"},"data":{"e":"6"}}"#,
    );
    assert_eq!(code, 409, "{v}");
    let (code, v) = call(&s, "PATCH", path, Some(MERGE), r#"{"kind":"Secret"}"#);
    assert_eq!(code, 400, "{v}");
    let (code, _) = call(
        &s,
        "PATCH",
        "/api/v1/namespaces/flux-system/configmaps/none",
        Some(MERGE),
        "{}",
    );
    assert_eq!(code, 404);
    // managedFields are kept minimally: one Update entry per manager.
    let mf = v_of(&s, path)["metadata"]["managedFields"].clone();
    let managers: Vec<(&str, &str)> = mf
        .as_array()
        .expect("managedFields")
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or(""),
                m["operation"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(managers, [("testkit", "Update"), ("apitest", "Update")]);
}

fn v_of(s: &ApiServer, path: &str) -> Value {
    let (code, v) = get(s, path);
    assert_eq!(code, 200, "{v}");
    v
}

#[test]
fn unsupported_content_types_are_415() {
    let s = ApiServer::start();
    create_policy(&s, "a", json!({}));
    let path = format!("{IMAGE}/namespaces/flux-system/imagepolicies/a");
    for ct in [
        "text/plain",
        "application/xml",
        "application/strategic-merge-patch+json",
    ] {
        let (code, v) = call(&s, "PATCH", &path, Some(ct), "{}");
        assert_eq!(code, 415, "{ct}: {v}");
        assert_eq!(v["reason"], "UnsupportedMediaType");
    }
    let (code, v) = call(&s, "PATCH", &path, Some("text/plain"), "{}");
    assert_eq!(code, 415);
    assert_eq!(
        v["message"],
        "the body of the request was in an unknown format (\"text/plain\") - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
    let (code, _) = call(&s, "PATCH", &path, None, "{}");
    assert_eq!(code, 415);
    let (code, _) = call(&s, "PUT", &path, Some("text/plain"), "{}");
    assert_eq!(code, 415);
    let (code, v) = call(&s, "PATCH", &path, Some(MERGE), "{not json");
    assert_eq!(code, 400);
    assert_eq!(v["reason"], "BadRequest");
}

#[test]
fn stale_put_is_409_and_custom_kinds_need_a_resource_version() {
    let s = ApiServer::start();
    let a = create_policy(&s, "a", json!({}));
    let path = format!("{IMAGE}/namespaces/flux-system/imagepolicies/a");
    let mut b = a.clone();
    b["spec"]["policy"] = json!({"alphabetical": {"order": "asc"}});
    let (code, v) = call(&s, "PUT", &path, Some(JSON), &b.to_string());
    assert_eq!(code, 200, "{v}");
    // The same (now stale) resourceVersion again.
    let (code, v) = call(&s, "PUT", &path, Some(JSON), &b.to_string());
    assert_eq!(code, 409);
    assert_status(
        &v,
        409,
        "Conflict",
        "Operation cannot be fulfilled on imagepolicies.image.toolkit.fluxcd.io \"a\": the object has been modified; please apply your changes to the latest version and try again",
    );
    let mut norv = b.clone();
    norv["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("resourceVersion");
    let (code, v) = call(&s, "PUT", &path, Some(JSON), &norv.to_string());
    assert_eq!(code, 422, "{v}");
    // Built-in kinds take an unconditional PUT.
    let cm = s.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "flux-system"}, "data": {"a": "1"}}));
    let mut cm2 = cm.clone();
    cm2["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("resourceVersion");
    cm2["data"]["a"] = "2".into();
    let (code, v) = call(
        &s,
        "PUT",
        "/api/v1/namespaces/flux-system/configmaps/c",
        Some(JSON),
        &cm2.to_string(),
    );
    assert_eq!(code, 200, "{v}");
    // A name that differs from the URL, a missing object, a foreign uid.
    let (code, _) = call(
        &s,
        "PUT",
        "/api/v1/namespaces/flux-system/configmaps/d",
        Some(JSON),
        &cm2.to_string(),
    );
    assert_eq!(code, 400);
    let mut d = cm2.clone();
    d["metadata"]["name"] = "d".into();
    let (code, _) = call(
        &s,
        "PUT",
        "/api/v1/namespaces/flux-system/configmaps/d",
        Some(JSON),
        &d.to_string(),
    );
    assert_eq!(code, 404);
    let mut u = cm2.clone();
    u["metadata"]["uid"] = "00000000-0000-4000-a000-000000000000".into();
    let (code, _) = call(
        &s,
        "PUT",
        "/api/v1/namespaces/flux-system/configmaps/c",
        Some(JSON),
        &u.to_string(),
    );
    assert_eq!(code, 409);
}

#[test]
fn deletion_waits_for_finalizers() {
    let s = ApiServer::start();
    let mut body = policy("a", json!({}));
    body["metadata"]["finalizers"] = json!(["finalizers.fluxcd.io"]);
    let (_, a) = call(
        &s,
        "POST",
        &format!("{IMAGE}/namespaces/flux-system/imagepolicies"),
        Some(JSON),
        &body.to_string(),
    );
    let path = format!("{IMAGE}/namespaces/flux-system/imagepolicies/a");
    let mut w = Watch::open(
        &s,
        &format!(
            "{IMAGE}/namespaces/flux-system/imagepolicies?watch=true&resourceVersion={}",
            rv(&a)
        ),
    );

    let (code, d) = call(&s, "DELETE", &path, Some(JSON), "{}");
    assert_eq!(code, 202, "{d}");
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(d["metadata"]["generation"], 2);
    let e = w.next().expect("MODIFIED");
    assert_eq!(e["type"], "MODIFIED");
    assert!(e["object"]["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = get(&s, &path);
    assert_eq!(code, 200, "still there");
    // No new finalizer while deleting.
    let (code, v) = call(
        &s,
        "PATCH",
        &path,
        Some(MERGE),
        r#"{"metadata":{"finalizers":["finalizers.fluxcd.io","other"]}}"#,
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(
        v["message"],
        "ImagePolicy.image.toolkit.fluxcd.io \"a\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted"
    );
    // Deleting again changes nothing.
    let (code, again) = call(&s, "DELETE", &path, Some(JSON), "{}");
    assert_eq!(code, 202);
    assert_eq!(rv(&again), rv(&d));

    // The last finalizer removed: gone, with a DELETED event.
    let (code, v) = call(
        &s,
        "PATCH",
        &path,
        Some(MERGE),
        r#"{"metadata":{"finalizers":null}}"#,
    );
    assert_eq!(code, 200, "{v}");
    let e = w.next().expect("DELETED");
    assert_eq!(e["type"], "DELETED");
    assert_eq!(e["object"]["metadata"]["name"], "a");
    let (code, _) = get(&s, &path);
    assert_eq!(code, 404);

    // Without finalizers a delete is at once and answers a Success Status.
    let b = create_policy(&s, "b", json!({}));
    let (code, v) = call(
        &s,
        "DELETE",
        &format!("{IMAGE}/namespaces/flux-system/imagepolicies/b"),
        Some(JSON),
        r#"{"propagationPolicy":"Background"}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(
        v,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": "b", "group": "image.toolkit.fluxcd.io", "kind": "imagepolicies", "uid": b["metadata"]["uid"]}})
    );
    let e = w.next().expect("ADDED b");
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );
    let e = w.next().expect("DELETED b");
    assert_eq!(e["type"], "DELETED");
    assert!(rv(&e["object"]) > rv(&b));
    let (code, v) = call(
        &s,
        "DELETE",
        &format!("{IMAGE}/namespaces/flux-system/imagepolicies/b"),
        Some(JSON),
        "{}",
    );
    assert_eq!(code, 404, "{v}");
    // Preconditions are honoured.
    let c = create_policy(&s, "c", json!({}));
    let (code, _) = call(
        &s,
        "DELETE",
        &format!("{IMAGE}/namespaces/flux-system/imagepolicies/c"),
        Some(JSON),
        r#"{"preconditions":{"resourceVersion":"1"}}"#,
    );
    assert_eq!(code, 409);
    let pre = json!({"preconditions": {"uid": c["metadata"]["uid"]}}).to_string();
    let (code, _) = call(
        &s,
        "DELETE",
        &format!("{IMAGE}/namespaces/flux-system/imagepolicies/c"),
        Some(JSON),
        &pre,
    );
    assert_eq!(code, 200);
}

/// A watch read as a client reads it: the head, then chunked JSON lines.
struct Watch {
    r: BufReader<TcpStream>,
    head: String,
}

#[derive(Debug, PartialEq)]
enum End {
    /// The terminating zero chunk arrived.
    Clean,
    /// The connection closed mid-body.
    Cut,
}

impl Watch {
    fn open(s: &ApiServer, path: &str) -> Watch {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n"
        )
        .expect("send");
        let mut r = BufReader::new(c);
        let mut head = String::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).expect("head");
            if l == "\r\n" || l.is_empty() {
                break;
            }
            head.push_str(&l);
        }
        Watch { r, head }
    }

    /// The next event, or how the stream ended.
    fn event(&mut self) -> Result<Value, End> {
        let mut size = String::new();
        if self.r.read_line(&mut size).unwrap_or(0) == 0 {
            return Err(End::Cut);
        }
        let n = usize::from_str_radix(size.trim(), 16).map_err(|_| End::Cut)?;
        let mut data = vec![0; n + 2];
        self.r.read_exact(&mut data).map_err(|_| End::Cut)?;
        if n == 0 {
            return Err(End::Clean);
        }
        let line = std::str::from_utf8(&data[..n]).expect("utf-8");
        assert!(
            line.ends_with('\n') && !line.trim_end().contains('\n'),
            "one object a line: {line:?}"
        );
        Ok(serde_json::from_str(line).expect("event JSON"))
    }

    fn next(&mut self) -> Option<Value> {
        self.event().ok()
    }

    /// The next event that is not a BOOKMARK.
    fn next_change(&mut self) -> Option<Value> {
        loop {
            let e = self.next()?;
            if e["type"] != "BOOKMARK" {
                return Some(e);
            }
        }
    }
}

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "flux-system", "labels": labels}, "data": {}})
}

const CMS: &str = "/api/v1/namespaces/flux-system/configmaps";

#[test]
fn watch_from_a_resource_version_sees_exactly_the_later_events_in_order() {
    let s = ApiServer::start();
    let a = s.create(cm("a", json!({"app": "x"})));
    let from = rv(&a);
    s.create(cm("b", json!({"app": "x"})));
    s.patch(
        "",
        "v1",
        "configmaps",
        "flux-system",
        "a",
        json!({"data": {"k": "1"}}),
    );
    s.create(cm("other", json!({"app": "y"})));
    let mut w = Watch::open(
        &s,
        &format!(
            "{CMS}?&watch=true&timeoutSeconds=290&labelSelector=app%3Dx&resourceVersion={from}"
        ),
    );
    assert!(w.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", w.head);
    assert!(
        w.head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{}",
        w.head
    );
    let e1 = w.next().expect("b added");
    assert_eq!(
        (
            e1["type"].as_str(),
            e1["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("b"))
    );
    assert_eq!(e1["object"]["kind"], "ConfigMap");
    let e2 = w.next().expect("a modified");
    assert_eq!(
        (
            e2["type"].as_str(),
            e2["object"]["metadata"]["name"].as_str()
        ),
        (Some("MODIFIED"), Some("a"))
    );
    assert!(rv(&e2["object"]) > rv(&e1["object"]));
    // Live events after the replay; a relabel out of the selector is DELETED.
    s.patch(
        "",
        "v1",
        "configmaps",
        "flux-system",
        "b",
        json!({"metadata": {"labels": {"app": "y"}}}),
    );
    let e3 = w.next().expect("b leaves");
    assert_eq!(
        (
            e3["type"].as_str(),
            e3["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("b"))
    );
    s.patch(
        "",
        "v1",
        "configmaps",
        "flux-system",
        "other",
        json!({"metadata": {"labels": {"app": "x"}}}),
    );
    let e4 = w.next().expect("other enters");
    assert_eq!(
        (
            e4["type"].as_str(),
            e4["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("other"))
    );

    // From 0 (or none): the current objects as ADDED first.
    let mut w0 = Watch::open(
        &s,
        &format!("{CMS}?watch=1&resourceVersion=0&labelSelector=app%3Dx"),
    );
    let e = w0.next().expect("synthetic");
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("a"))
    );
    let e = w0.next().expect("synthetic");
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("other"))
    );
    s.delete("", "v1", "configmaps", "flux-system", "a");
    let e = w0.next().expect("deleted");
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("a"))
    );
    assert_eq!(s.open_watches(), 2);
}

#[test]
fn watch_sends_bookmarks_and_initial_events_end() {
    let s = ApiServer::start();
    s.set_bookmark_interval(Duration::from_millis(200));
    let a = s.create(cm("a", json!({})));
    let mut w = Watch::open(
        &s,
        &format!(
            "{CMS}?watch=true&allowWatchBookmarks=true&resourceVersion={}",
            rv(&a)
        ),
    );
    let b = w.next().expect("bookmark");
    assert_eq!(
        b,
        json!({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": s.resource_version().to_string()}}})
    );
    let c = s.create(cm("c", json!({})));
    assert_eq!(
        w.next_change().expect("added")["object"]["metadata"]["name"],
        "c"
    );
    let b = w.next().expect("bookmark");
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(
        b["object"]["metadata"]["resourceVersion"],
        rv(&c).to_string()
    );
    // Without allowWatchBookmarks no bookmark comes.
    let mut quiet = Watch::open(
        &s,
        &format!(
            "{CMS}?watch=true&timeoutSeconds=1&resourceVersion={}",
            rv(&c)
        ),
    );
    assert_eq!(quiet.event(), Err(End::Clean));

    // sendInitialEvents: the objects, then a bookmark marking their end.
    let mut si = Watch::open(
        &s,
        &format!(
            "{CMS}?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0"
        ),
    );
    assert_eq!(si.next().expect("a")["object"]["metadata"]["name"], "a");
    assert_eq!(si.next().expect("c")["object"]["metadata"]["name"], "c");
    let end = si.next().expect("end bookmark");
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let (code, v) = get(
        &s,
        &format!("{CMS}?watch=true&sendInitialEvents=true&resourceVersion=0"),
    );
    assert_eq!(code, 422, "{v}");
    let (code, v) = get(
        &s,
        &format!("{CMS}?watch=true&resourceVersionMatch=NotOlderThan&resourceVersion=0"),
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(
        v["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
    );
}

#[test]
fn watch_timeout_ends_the_stream() {
    let s = ApiServer::start();
    let t = Instant::now();
    let mut w = Watch::open(&s, &format!("{CMS}?watch=true&timeoutSeconds=1"));
    assert_eq!(w.event(), Err(End::Clean));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(s.open_watches(), 0);
}

#[test]
fn drop_and_end_watches_close_the_streams() {
    let s = ApiServer::start();
    let mut w1 = Watch::open(&s, &format!("{CMS}?watch=true"));
    let mut w2 = Watch::open(&s, &format!("{CMS}?watch=true&labelSelector=x"));
    let t = Instant::now();
    while s.open_watches() < 2 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    s.drop_watches();
    assert_eq!(w1.event(), Err(End::Cut));
    assert_eq!(w2.event(), Err(End::Cut));
    let mut w3 = Watch::open(&s, &format!("{CMS}?watch=true"));
    while s.open_watches() < 1 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    s.end_watches();
    assert_eq!(w3.event(), Err(End::Clean));
}

#[test]
fn compacted_history_expires_old_resource_versions() {
    let s = ApiServer::start();
    let a = s.create(cm("a", json!({})));
    s.create(cm("b", json!({})));
    // An Exact list at an older resourceVersion is rebuilt from the history.
    let (code, old) = get(
        &s,
        &format!(
            "{CMS}?resourceVersion={}&resourceVersionMatch=Exact",
            rv(&a)
        ),
    );
    assert_eq!(code, 200, "{old}");
    assert_eq!(names(&old), ["a"]);
    assert_eq!(old["metadata"]["resourceVersion"], rv(&a).to_string());
    let (_, p1) = get(&s, &format!("{CMS}?limit=1"));
    let token = p1["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_string();
    s.patch(
        "",
        "v1",
        "configmaps",
        "flux-system",
        "b",
        json!({"data": {"k": "v"}}),
    );

    let mut live = Watch::open(
        &s,
        &format!("{CMS}?watch=true&resourceVersion={}", s.resource_version()),
    );
    s.compact();
    let mut w = Watch::open(&s, &format!("{CMS}?watch=true&resourceVersion={}", rv(&a)));
    assert!(w.head.starts_with("HTTP/1.1 200 OK"), "{}", w.head);
    let e = w.next().expect("error event");
    assert_eq!(e["type"], "ERROR");
    assert_status(
        &e["object"],
        410,
        "Expired",
        &format!(
            "too old resource version: {} ({})",
            rv(&a),
            s.resource_version()
        ),
    );
    assert_eq!(w.event(), Err(End::Clean));

    let (code, v) = get(
        &s,
        &format!(
            "{CMS}?resourceVersion={}&resourceVersionMatch=Exact",
            rv(&a)
        ),
    );
    assert_eq!(code, 410, "{v}");
    assert_eq!(v["reason"], "Expired");
    let (code, _) = get(&s, &format!("{CMS}?limit=1&continue={token}"));
    assert_eq!(code, 410);
    // NotOlderThan and the latest state are still served.
    let (code, v) = get(
        &s,
        &format!(
            "{CMS}?resourceVersion={}&resourceVersionMatch=NotOlderThan",
            rv(&a)
        ),
    );
    assert_eq!(code, 200);
    assert_eq!(names(&v), ["a", "b"]);
    let (code, v) = get(&s, &format!("{CMS}?resourceVersion=99999"));
    assert_eq!(code, 504, "{v}");
    assert_eq!(
        v["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );

    // A watch open at compaction goes on undisturbed.
    s.create(cm("c", json!({})));
    let e = live.next().expect("live event");
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("c"))
    );

    // A bounded history expires the oldest versions by itself.
    s.set_history_limit(2);
    let from = s.resource_version();
    for n in ["d", "e", "f"] {
        s.create(cm(n, json!({})));
    }
    let mut w = Watch::open(&s, &format!("{CMS}?watch=true&resourceVersion={from}"));
    assert_eq!(w.next().expect("error")["object"]["code"], 410);
}

#[test]
fn keep_alive_requests_and_recorded_shapes() {
    let s = ApiServer::start();
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let body = cm("a", json!({})).to_string();
    write!(
        c,
        "POST {CMS}?fieldManager=ctl HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}GET {CMS}/a HTTP/1.1\r\nHost: x\r\n\r\n",
        body.len()
    )
    .expect("send");
    let mut r = BufReader::new(c);
    for want in ["HTTP/1.1 201 Created", "HTTP/1.1 200 OK"] {
        let mut status = String::new();
        r.read_line(&mut status).expect("status");
        assert_eq!(status.trim_end(), want);
        let mut len = 0;
        loop {
            let mut l = String::new();
            r.read_line(&mut l).expect("header");
            if l == "\r\n" {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
        }
        let mut b = vec![0; len];
        r.read_exact(&mut b).expect("body");
    }
    let reqs = s.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, CMS);
    assert_eq!(reqs[0].query("fieldManager"), Some("ctl"));
    assert_eq!(reqs[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(reqs[0].json()["metadata"]["name"], "a");
    assert_eq!(reqs[1].method, "GET");
    assert_eq!(reqs[1].path, format!("{CMS}/a"));
    assert!(reqs[1].body.is_empty());
}

#[test]
fn kubeconfig_version_discovery_and_tokens() {
    let s = ApiServer::start();
    let dir = tagwarden_testkit::TempDir::new("apiserver-kubeconfig");
    let path = s.kubeconfig(dir.path());
    let text = std::fs::read_to_string(path).expect("kubeconfig");
    assert!(
        text.contains(&format!("    server: http://127.0.0.1:{}\n", s.port)),
        "{text}"
    );
    assert!(text.contains("current-context: apiserver\n"));
    assert!(text.contains("    namespace: flux-system\n"));

    let (code, v) = get(&s, "/version");
    assert_eq!(code, 200);
    assert_eq!(
        (
            v["gitVersion"].as_str(),
            v["major"].as_str(),
            v["minor"].as_str()
        ),
        (Some("v1.31.0"), Some("1"), Some("31"))
    );
    let (_, v) = get(&s, "/api");
    assert_eq!(v["versions"], json!(["v1"]));
    let (_, v) = get(&s, "/apis");
    let groups: Vec<&str> = v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(
        groups,
        [
            "coordination.k8s.io",
            "events.k8s.io",
            "apiextensions.k8s.io",
            "source.toolkit.fluxcd.io",
            "image.toolkit.fluxcd.io"
        ]
    );
    let (_, v) = get(&s, "/apis/image.toolkit.fluxcd.io/v1");
    let res: Vec<&str> = v["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        res,
        [
            "imagerepositories",
            "imagerepositories/status",
            "imagepolicies",
            "imagepolicies/status",
            "imageupdateautomations",
            "imageupdateautomations/status"
        ]
    );

    s.create(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot", "namespace": "flux-system"}}));
    let tr = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": ["sts.amazonaws.com"], "expirationSeconds": 3600}});
    let (code, v) = call(
        &s,
        "POST",
        "/api/v1/namespaces/flux-system/serviceaccounts/bot/token",
        Some(JSON),
        &tr.to_string(),
    );
    assert_eq!(code, 201, "{v}");
    let token = v["status"]["token"].as_str().expect("token");
    assert_eq!(token.split('.').count(), 3);
    assert!(v["status"]["expirationTimestamp"].is_string());
    assert_eq!(v["spec"]["audiences"], json!(["sts.amazonaws.com"]));
    let issued = s.tokens();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        (issued[0].service_account.as_str(), issued[0].token.as_str()),
        ("bot", token)
    );
    let (code, _) = call(
        &s,
        "POST",
        "/api/v1/namespaces/flux-system/serviceaccounts/nobody/token",
        Some(JSON),
        &tr.to_string(),
    );
    assert_eq!(code, 404);
}

#[test]
fn secrets_namespaces_and_events_get_the_real_defaults_and_validation() {
    let s = ApiServer::start();
    let secrets = "/api/v1/namespaces/flux-system/secrets";
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"username": "bot"}, "data": {"password": "czNjcjN0"}});
    let (code, v) = call(&s, "POST", secrets, Some(JSON), &body.to_string());
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        v["data"],
        json!({"username": "Ym90", "password": "czNjcjN0"})
    );
    assert_eq!(v["type"], "Opaque");
    assert!(v.get("stringData").is_none());
    let bad = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"}, "data": {"password": "not base64!"}});
    let (code, v) = call(&s, "POST", secrets, Some(JSON), &bad.to_string());
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "Secret in version \"v1\" cannot be handled as a Secret: data.password: illegal base64 data"
    );

    let ns =
        s.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}));
    assert_eq!(ns["status"], json!({"phase": "Active"}));
    assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
    assert!(ns["metadata"].get("namespace").is_none());

    let events = "/apis/events.k8s.io/v1/namespaces/flux-system/events";
    let event = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "p.1"},
        "eventTime": "2026-12-02T02:00:00.000000Z",
        "type": "Normal", "reason": "Succeeded", "action": "Reconcile", "note": "ok",
        "reportingController": "tagwarden", "reportingInstance": "tagwarden-0",
        "regarding": {"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "name": "p", "namespace": "flux-system"},
    });
    let (code, v) = call(&s, "POST", events, Some(JSON), &event.to_string());
    assert_eq!(code, 201, "{v}");
    for (field, value, message) in [
        (
            "eventTime",
            Value::Null,
            "Event.events.k8s.io \"p.2\" is invalid: eventTime: Required value",
        ),
        (
            "type",
            json!("Info"),
            "Event.events.k8s.io \"p.2\" is invalid: type: Unsupported value: \"Info\": supported values: \"Normal\", \"Warning\"",
        ),
        (
            "reportingController",
            json!(""),
            "Event.events.k8s.io \"p.2\" is invalid: reportingController: Required value",
        ),
        (
            "note",
            json!("x".repeat(1025)),
            "Event.events.k8s.io \"p.2\" is invalid: note: Too long: may not be more than 1024 bytes",
        ),
        (
            "series",
            json!({"count": 1, "lastObservedTime": "2026-12-02T02:00:00.000000Z"}),
            "Event.events.k8s.io \"p.2\" is invalid: series.count: Invalid value: should be at least 2",
        ),
    ] {
        let mut e = event.clone();
        e["metadata"]["name"] = "p.2".into();
        e[field] = value;
        let (code, v) = call(&s, "POST", events, Some(JSON), &e.to_string());
        assert_eq!(code, 422, "{field}: {v}");
        assert_eq!(v["message"], message);
    }
    // A merge patch adding a series, as kube's Recorder sends for a repeat.
    let (code, v) = call(
        &s,
        "PATCH",
        &format!("{events}/p.1"),
        Some(MERGE),
        r#"{"series":{"count":2,"lastObservedTime":"2026-12-02T02:01:00.000000Z"}}"#,
    );
    assert_eq!(code, 200, "{v}");
}

#[test]
fn injected_faults_answer_chosen_requests() {
    let s = ApiServer::start();
    s.set_fault(|r| (r.method == "PATCH" && r.path.ends_with("/status")).then_some(503));
    create_policy(&s, "a", json!({}));
    let path = format!("{IMAGE}/namespaces/flux-system/imagepolicies/a");
    let (code, v) = call(
        &s,
        "PATCH",
        &format!("{path}/status"),
        Some(MERGE),
        r#"{"status":{}}"#,
    );
    assert_eq!(code, 503);
    assert_status(
        &v,
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
    );
    let (code, _) = call(
        &s,
        "PATCH",
        &path,
        Some(MERGE),
        r#"{"metadata":{"labels":{"a":"b"}}}"#,
    );
    assert_eq!(code, 200);
    s.clear_fault();
    let (code, _) = call(
        &s,
        "PATCH",
        &format!("{path}/status"),
        Some(MERGE),
        r#"{"status":{}}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(
        s.requests()
            .iter()
            .filter(|r| r.path.ends_with("/status"))
            .count(),
        2
    );
    let first = s
        .wait_request(Duration::from_secs(1), |r| r.path.ends_with("/status"))
        .expect("recorded");
    assert_eq!(first.json(), json!({"status": {}}));
    // A request still to come is waited for.
    let port = s.port;
    let later = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        tagwarden_testkit::http(port, "GET", "/version", &[], b"").expect("GET");
    });
    let v = s
        .wait_request(Duration::from_secs(5), |r| r.path == "/version")
        .expect("came");
    assert!(v.at > first.at);
    later.join().expect("thread");
    assert!(
        s.wait_request(Duration::from_millis(50), |r| r.path == "/nothing")
            .is_none()
    );
}

fn widget_crd(extra_version: bool) -> Value {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer"},
            "color": {"type": "string", "enum": ["red", "blue"]},
        }},
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    }});
    let mut versions = vec![
        json!({"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}, "subresources": {"status": {}}}),
    ];
    if extra_version {
        versions.push(json!({"name": "v2", "served": true, "storage": false, "schema": {"openAPIV3Schema": schema}}));
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"}, "versions": versions},
    })
}

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const WIDGETS: &str = "/apis/example.com/v1/namespaces/flux-system/widgets";

#[test]
fn a_created_crd_is_served_with_its_schema_and_its_removal_takes_the_objects() {
    let s = ApiServer::start();
    let (code, _) = get(&s, WIDGETS);
    assert_eq!(code, 404);
    let (code, crd) = call(&s, "POST", CRDS, Some(JSON), &widget_crd(true).to_string());
    assert_eq!(code, 201, "{crd}");
    let conditions: Vec<(&str, &str)> = crd["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap_or(""),
                c["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        conditions,
        [("NamesAccepted", "True"), ("Established", "True")]
    );
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));

    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3, "shape": "round"}, "status": {"ready": true}});
    let (code, v) = call(&s, "POST", WIDGETS, Some(JSON), &w.to_string());
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["spec"], json!({"size": 3}), "unknown fields pruned");
    assert!(v.get("status").is_none());
    let (code, v) = call(
        &s,
        "PATCH",
        &format!("{WIDGETS}/w/status"),
        Some(MERGE),
        r#"{"status":{"ready":true,"latestImage":"x"}}"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], json!({"ready": true}));
    let bad = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "b"}, "spec": {"size": "big", "color": "green"}});
    let (code, v) = call(&s, "POST", WIDGETS, Some(JSON), &bad.to_string());
    assert_eq!(code, 422, "{v}");
    assert_eq!(
        v["message"],
        "Widget.example.com \"b\" is invalid: [spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\", spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"]"
    );
    let (code, v) = call(
        &s,
        "POST",
        WIDGETS,
        Some(JSON),
        r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"c"},"spec":{}}"#,
    );
    assert_eq!(code, 422);
    assert_eq!(
        v["message"],
        "Widget.example.com \"c\" is invalid: spec.size: Required value"
    );
    // Both served versions answer; discovery lists the group.
    let (code, _) = get(&s, "/apis/example.com/v2/namespaces/flux-system/widgets");
    assert_eq!(code, 200);
    let (_, groups) = get(&s, "/apis");
    assert!(
        groups["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .any(|g| g["name"] == "example.com")
    );

    // An invalid CRD is refused.
    let mut misnamed = widget_crd(false);
    misnamed["metadata"]["name"] = "widget.example.com".into();
    let (code, v) = call(&s, "POST", CRDS, Some(JSON), &misnamed.to_string());
    assert_eq!(code, 422);
    assert_eq!(
        v["message"],
        "CustomResourceDefinition.apiextensions.k8s.io \"widget.example.com\" is invalid: metadata.name: Invalid value: \"widget.example.com\": must be spec.names.plural+\".\"+spec.group"
    );

    // Dropping a version stops serving it; deleting the CRD removes the rest.
    let mut update = crd.clone();
    update["spec"] = widget_crd(false)["spec"].clone();
    let (code, v) = call(
        &s,
        "PUT",
        &format!("{CRDS}/widgets.example.com"),
        Some(JSON),
        &update.to_string(),
    );
    assert_eq!(code, 200, "{v}");
    let (code, _) = get(&s, "/apis/example.com/v2/namespaces/flux-system/widgets");
    assert_eq!(code, 404);
    let mut watch = Watch::open(
        &s,
        &format!(
            "{WIDGETS}?watch=true&resourceVersion={}",
            s.resource_version()
        ),
    );
    let (code, _) = call(
        &s,
        "DELETE",
        &format!("{CRDS}/widgets.example.com"),
        Some(JSON),
        "{}",
    );
    assert_eq!(code, 200);
    let e = watch.next().expect("deleted with its CRD");
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("w"))
    );
    let (code, _) = get(&s, WIDGETS);
    assert_eq!(code, 404);
}

#[test]
fn apply_that_turns_a_field_into_a_map_keeps_the_map() {
    let s = ApiServer::start();
    let obj = |spec: Value| json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": {"name": "a", "namespace": "flux-system"}, "spec": spec});
    let path = apply_path("me", false);
    let (code, _) = call(
        &s,
        "PATCH",
        &path,
        Some(APPLY),
        &obj(json!({"policy": "latest", "old": "1"})).to_string(),
    );
    assert_eq!(code, 201);
    let (code, v) = call(
        &s,
        "PATCH",
        &path,
        Some(APPLY),
        &obj(json!({"policy": {"semver": {"range": "1.x"}}})).to_string(),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["spec"],
        json!({"policy": {"semver": {"range": "1.x"}}}),
        "old dropped, the new map kept"
    );
    let (code, v) = call(
        &s,
        "PATCH",
        &path,
        Some(APPLY),
        &obj(json!({"policy": "latest"})).to_string(),
    );
    assert_eq!(code, 200);
    assert_eq!(v["spec"], json!({"policy": "latest"}));
}

#[test]
fn apply_yaml_installs_a_crd_then_its_objects() {
    let s = ApiServer::start();
    let yaml = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              ratio: {type: number}
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
  namespace: flux-system
spec:
  size: 3
  ratio: 0.5
  unknown: dropped
"#;
    let out = s.apply_yaml("kubectl", yaml);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1]["spec"], json!({"size": 3, "ratio": 0.5}));
    assert_eq!(out[1]["metadata"]["managedFields"][0]["manager"], "kubectl");
    // An apply body in YAML over HTTP, as its media type says.
    let (code, v) = call(
        &s,
        "PATCH",
        &format!("{WIDGETS}/w?fieldManager=kubectl"),
        Some(APPLY),
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 4\n",
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["spec"], json!({"size": 4}), "ratio no longer applied");
}

#[test]
fn concurrent_writers_give_a_watch_every_event_once_in_resource_version_order() {
    let s = std::sync::Arc::new(ApiServer::start());
    for i in 0..4 {
        s.create(cm(&format!("c{i}"), json!({})));
    }
    let mut w = Watch::open(
        &s,
        &format!(
            "/api/v1/configmaps?watch=true&resourceVersion={}",
            s.resource_version()
        ),
    );
    let writers: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    let body = json!({"data": {"n": n.to_string()}}).to_string();
                    let (code, v) = call(&s, "PATCH", &format!("{CMS}/c{i}"), Some(MERGE), &body);
                    assert_eq!(code, 200, "{v}");
                }
            })
        })
        .collect();
    for t in writers {
        t.join().expect("writer");
    }
    let mut last = 0;
    let mut per_object = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let e = w.next().expect("event");
        assert_eq!(e["type"], "MODIFIED");
        let r = rv(&e["object"]);
        assert!(r > last, "{r} after {last}");
        last = r;
        let name = e["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let n: u32 = e["object"]["data"]["n"]
            .as_str()
            .unwrap_or("")
            .parse()
            .expect("n");
        let seen = per_object.entry(name).or_insert(0);
        assert_eq!(n, *seen, "each object's patches in order");
        *seen += 1;
    }
    assert_eq!(last, s.resource_version());
    assert_eq!(
        per_object.values().copied().collect::<Vec<_>>(),
        [50, 50, 50, 50]
    );
}

#[test]
fn deleting_a_namespace_deletes_its_content_and_waits_for_finalizers() {
    let s = ApiServer::start();
    s.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "apps"}}));
    s.create(json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": {"name": "p", "namespace": "apps", "finalizers": ["finalizers.fluxcd.io"]}, "spec": {}}));
    let (code, ns) = call(&s, "DELETE", "/api/v1/namespaces/apps", Some(JSON), "{}");
    assert_eq!(code, 200, "{ns}");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = get(&s, "/api/v1/namespaces/apps/configmaps/c");
    assert_eq!(code, 404);
    let (code, p) = get(&s, &format!("{IMAGE}/namespaces/apps/imagepolicies/p"));
    assert_eq!(code, 200);
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    let (code, v) = call(
        &s,
        "POST",
        "/api/v1/namespaces/apps/configmaps",
        Some(JSON),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}).to_string(),
    );
    assert_eq!(code, 403, "{v}");
    assert_eq!(
        v["message"],
        "configmaps \"d\" is forbidden: unable to create new content in namespace apps because it is being terminated"
    );
    let (code, _) = call(&s, "DELETE", "/api/v1/namespaces/apps", Some(JSON), "{}");
    assert_eq!(code, 409);
    let (code, _) = get(&s, "/api/v1/namespaces/apps");
    assert_eq!(code, 200, "held while content remains");
    let (code, _) = call(
        &s,
        "PATCH",
        &format!("{IMAGE}/namespaces/apps/imagepolicies/p"),
        Some(MERGE),
        r#"{"metadata":{"finalizers":null}}"#,
    );
    assert_eq!(code, 200);
    let (code, _) = get(&s, "/api/v1/namespaces/apps");
    assert_eq!(code, 404, "gone with its last object");
}

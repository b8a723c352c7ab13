//! `update_text`, `Setters` and `LatestRef` through the public API.

use std::collections::BTreeMap;
use tagwarden_api::{LabelSelector, Requirement};
use tagwarden_setters::{
    Change, IgnoreReason, LatestRef, ObjectId, PolicyImage, Setters, update_text,
};

fn policy(ns: &str, name: &str, latest: &str) -> PolicyImage {
    PolicyImage {
        no_downgrade: None,
        namespace: ns.into(),
        name: name.into(),
        labels: BTreeMap::new(),
        latest: LatestRef::parse(latest).expect("valid ref"),
    }
}

fn podinfo() -> Setters {
    Setters::new(
        "flux-system",
        None,
        &[policy(
            "flux-system",
            "podinfo",
            "ghcr.io/stefanprodan/podinfo:5.0.3",
        )],
    )
}

fn updated(text: &str, setters: &Setters) -> String {
    update_text(text, setters)
        .expect("valid YAML")
        .text
        .expect("a change")
}

#[test]
fn every_field_of_a_policy() {
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let s = Setters::new(
        "ns",
        None,
        &[policy(
            "ns",
            "app",
            &format!("localhost:5000/team/app:v2@{digest}"),
        )],
    );
    let text = "a: x # {\"$imagepolicy\": \"ns:app\"}\n\
                b: x # {\"$imagepolicy\": \"ns:app:tag\"}\n\
                c: x # {\"$imagepolicy\": \"ns:app:name\"}\n\
                d: x # {\"$imagepolicy\": \"ns:app:digest\"}\n";
    let want = format!(
        "a: localhost:5000/team/app:v2@{digest} # {{\"$imagepolicy\": \"ns:app\"}}\n\
         b: v2 # {{\"$imagepolicy\": \"ns:app:tag\"}}\n\
         c: localhost:5000/team/app # {{\"$imagepolicy\": \"ns:app:name\"}}\n\
         d: {digest} # {{\"$imagepolicy\": \"ns:app:digest\"}}\n"
    );
    assert_eq!(updated(text, &s), want);
}

#[test]
fn markers_the_automation_does_not_own_are_left_alone() {
    let mut labelled = policy("flux-system", "labelled", "a/b:2");
    labelled.labels.insert("team".into(), "a".into());
    let unlabelled = policy("flux-system", "unlabelled", "a/c:2");
    let other = policy("default", "podinfo", "a/d:2");
    let selector = LabelSelector {
        match_expressions: vec![Requirement::Exists("team".into())],
        ..LabelSelector::default()
    };
    let s = Setters::new(
        "flux-system",
        Some(&selector),
        [&labelled, &unlabelled, &other],
    );
    let text = "- a/b:1 # {\"$imagepolicy\": \"flux-system:labelled\"}\n\
                - a/c:1 # {\"$imagepolicy\": \"flux-system:unlabelled\"}\n\
                - a/d:1 # {\"$imagepolicy\": \"default:podinfo\"}\n\
                - a/e:1 # {\"$imagepolicy\": \"flux-system:missing\"}\n\
                - sha # {\"$imagepolicy\": \"flux-system:labelled:digest\"}\n\
                - x # {\"$imagepolicy\": \"flux-system:labelled:version\"}\n\
                - | # {\"$imagepolicy\": \"flux-system:labelled\"}\n  a/b:1\n";
    let u = update_text(text, &s).expect("valid");
    assert_eq!(
        u.text.as_deref(),
        Some(text.replacen("a/b:1 #", "a/b:2 #", 1).as_str())
    );
    let reasons: Vec<(usize, IgnoreReason)> =
        u.ignored.iter().map(|m| (m.line, m.reason)).collect();
    assert_eq!(
        reasons,
        [
            (2, IgnoreReason::NotSelected),
            (3, IgnoreReason::OtherNamespace),
            (4, IgnoreReason::UnknownPolicy),
            (5, IgnoreReason::NoDigest),
            (6, IgnoreReason::NotASetter),
            (7, IgnoreReason::Unattached),
        ]
    );
}

#[test]
fn quote_style_is_kept_and_plain_values_that_would_change_type_are_quoted() {
    let s = Setters::new(
        "ns",
        None,
        &[
            policy("ns", "ts", "ghcr.io/a/b:1606364286"),
            policy("ns", "f", "ghcr.io/a/b:1.10"),
            policy("ns", "q", "ghcr.io/a/b:it_s"),
        ],
    );
    let text = "plain: 1 # {\"$imagepolicy\": \"ns:ts:tag\"}\n\
                float: 1.9 # {\"$imagepolicy\": \"ns:f:tag\"}\n\
                single: '1' # {\"$imagepolicy\": \"ns:ts:tag\"}\n\
                double: \"1\" # {\"$imagepolicy\": \"ns:ts:tag\"}\n\
                image: 'x' # {\"$imagepolicy\": \"ns:q\"}\n\
                flow: [ghcr.io/a/b:0, {k: v}] # not a marker\n\
                inflow: {i: ghcr.io/a/b:0 , j: 2}\n";
    let want = "plain: \"1606364286\" # {\"$imagepolicy\": \"ns:ts:tag\"}\n\
                float: \"1.10\" # {\"$imagepolicy\": \"ns:f:tag\"}\n\
                single: '1606364286' # {\"$imagepolicy\": \"ns:ts:tag\"}\n\
                double: \"1606364286\" # {\"$imagepolicy\": \"ns:ts:tag\"}\n\
                image: 'ghcr.io/a/b:it_s' # {\"$imagepolicy\": \"ns:q\"}\n\
                flow: [ghcr.io/a/b:0, {k: v}] # not a marker\n\
                inflow: {i: ghcr.io/a/b:0 , j: 2}\n";
    assert_eq!(updated(text, &s), want);
}

#[test]
fn markers_in_flow_collections_spanning_lines() {
    let text = "images: [\n  ghcr.io/stefanprodan/podinfo:5.0.0, # {\"$imagepolicy\": \"flux-system:podinfo\"}\n  ghcr.io/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n]\n";
    // The first value is followed by ',' before the comment: not its line comment.
    let want = "images: [\n  ghcr.io/stefanprodan/podinfo:5.0.0, # {\"$imagepolicy\": \"flux-system:podinfo\"}\n  ghcr.io/stefanprodan/podinfo:5.0.3 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n]\n";
    assert_eq!(updated(text, &podinfo()), want);
}

#[test]
fn changes_grouped_per_object_across_documents() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n  namespace: default\nspec:\n  image: ghcr.io/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n\
                ---\nimage: ghcr.io/stefanprodan/podinfo:5.0.1 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n\
                ---\ntag: 5.0.2 # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n\
                ---\ntag: 5.0.3 # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n";
    let u = update_text(text, &podinfo()).expect("valid");
    let objects: Vec<(ObjectId, Vec<Change>)> =
        u.objects.into_iter().map(|o| (o.id, o.changes)).collect();
    let change = |old: &str, new: &str, setter: &str| Change {
        old_value: old.into(),
        new_value: new.into(),
        setter: setter.into(),
    };
    assert_eq!(
        objects,
        [
            (
                ObjectId {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    namespace: "default".into(),
                    name: "a".into()
                },
                vec![change(
                    "ghcr.io/stefanprodan/podinfo:5.0.0",
                    "ghcr.io/stefanprodan/podinfo:5.0.3",
                    "flux-system:podinfo"
                )]
            ),
            (
                ObjectId::default(),
                vec![
                    change(
                        "ghcr.io/stefanprodan/podinfo:5.0.1",
                        "ghcr.io/stefanprodan/podinfo:5.0.3",
                        "flux-system:podinfo"
                    ),
                    change("5.0.2", "5.0.3", "flux-system:podinfo:tag"),
                ]
            ),
        ]
    );
}

#[test]
fn nothing_to_do_means_no_text() {
    let up_to_date =
        "image: ghcr.io/stefanprodan/podinfo:5.0.3 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";
    let u = update_text(up_to_date, &podinfo()).expect("valid");
    assert_eq!((u.text, u.objects), (None, vec![]));
    // Without the marker text nothing is parsed, so broken YAML passes.
    let u = update_text("a: [\n", &podinfo()).expect("not parsed");
    assert_eq!(u.text, None);
    let e = update_text("a: [ # \"$imagepolicy\"\n", &podinfo()).expect_err("parsed");
    assert_eq!(e.line(), 2, "{e}");
}

#[test]
fn latest_refs() {
    let r = LatestRef::parse("localhost:5000/app:v1@sha256:abc").expect("valid");
    assert_eq!(
        (r.name.as_str(), r.tag.as_str(), r.digest.as_deref()),
        ("localhost:5000/app", "v1", Some("sha256:abc"))
    );
    assert_eq!(r.to_string(), "localhost:5000/app:v1@sha256:abc");
    let r = LatestRef::parse("alpine:3.20").expect("valid");
    assert_eq!((r.name.as_str(), r.tag.as_str()), ("alpine", "3.20"));
    for (bad, why) in [
        ("localhost:5000/app", "tag is missing"),
        ("ghcr.io/a/b", "tag is missing"),
        ("ghcr.io/a/b:", "invalid tag ''"),
        ("ghcr.io/a/b:-x", "invalid tag '-x'"),
        ("ghcr.io/a/b:1@sha256", "digest must look like"),
        ("ghcr.io/A/b:1", "invalid repository"),
    ] {
        let e = LatestRef::parse(bad).expect_err(bad).to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn a_plain_value_after_a_tab_is_quoted_when_it_would_start_with_a_letter() {
    // Found by fuzzing: yaml-rust2 (like libyaml) accepts `:<TAB>.` but not
    // `:<TAB>x`, so writing a plain image there would break the file.
    let text = "k:\t.x # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n\
                j:\t\"x\" # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";
    assert_eq!(
        updated(text, &podinfo()),
        "k:\t\"5.0.3\" # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n\
         j:\t\"ghcr.io/stefanprodan/podinfo:5.0.3\" # {\"$imagepolicy\": \"flux-system:podinfo\"}\n"
    );
    // After a space the plain style is kept.
    let text = "k: .x # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n";
    assert_eq!(
        updated(text, &podinfo()),
        "k: 5.0.3 # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n"
    );
}

#[test]
fn an_empty_tagged_value_sharing_the_next_scalars_mark_is_not_mistaken_for_it() {
    // Found by fuzzing: yaml-rust2 gives the empty value of `- !` the start
    // mark of the next scalar; the rewrite check must not confuse the two.
    for nl in ["\n", "\r", "\r\n"] {
        let text = format!(
            "- !{nl}- docker.io/stefanprodan/podinfo # {{\"$imagepolicy\": \"flux-system:podinfo:name\"}}{nl}"
        );
        assert_eq!(
            updated(&text, &podinfo()),
            text.replace("docker.io", "ghcr.io"),
            "{nl:?}"
        );
    }
}

#[test]
fn a_lone_carriage_return_breaks_lines_as_yaml_says() {
    let text = "a: 1\rl:\r# {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\r- 5.0.0\r\
                image: x # {\"$imagepolicy\": \"flux-system:podinfo\"}\rb: 2\r";
    let u = update_text(text, &podinfo()).expect("valid");
    assert_eq!(
        u.text.as_deref(),
        Some(
            text.replace("- 5.0.0", "- 5.0.3")
                .replace("image: x", "image: ghcr.io/stefanprodan/podinfo:5.0.3")
                .as_str()
        )
    );
    let lines: Vec<usize> = tagwarden_setters::find_markers(text)
        .expect("valid")
        .markers
        .iter()
        .map(|m| m.line)
        .collect();
    assert_eq!(lines, [4, 5]);
}

/// `tagwarden.io/no-downgrade`: `IMAGE:TAG` and `:tag` markers keep a tag
/// that ranks higher under the policy; a tag the policy no longer admits
/// (a narrowed range) or cannot order is replaced as usual.
#[test]
fn downgrades_are_held_when_asked() {
    use tagwarden_setters::{PolicyImage, Setters, update_text};
    let spec = |range: &str| tagwarden_policy::PolicySpec {
        semver_range: Some(range.into()),
        ..Default::default()
    };
    let setters = |range: &str| {
        Setters::new(
            "flux-system",
            None,
            &[PolicyImage {
                no_downgrade: Some(spec(range)),
                namespace: "flux-system".into(),
                name: "app".into(),
                labels: Default::default(),
                latest: tagwarden_api::LatestRef {
                    name: "ghcr.io/org/app".into(),
                    tag: "1.1.0".into(),
                    digest: None,
                },
            }],
        )
    };
    let text = "a: ghcr.io/org/app:1.2.0 # {\"$imagepolicy\": \"flux-system:app\"}\nb: 1.2.0 # {\"$imagepolicy\": \"flux-system:app:tag\"}\nc: 1.0.0 # {\"$imagepolicy\": \"flux-system:app:tag\"}\nd: latest # {\"$imagepolicy\": \"flux-system:app:tag\"}\n";
    let u = update_text(text, &setters(">=1.0.0")).expect("update");
    assert_eq!(
        u.text.as_deref(),
        Some(
            "a: ghcr.io/org/app:1.2.0 # {\"$imagepolicy\": \"flux-system:app\"}\nb: 1.2.0 # {\"$imagepolicy\": \"flux-system:app:tag\"}\nc: 1.1.0 # {\"$imagepolicy\": \"flux-system:app:tag\"}\nd: 1.1.0 # {\"$imagepolicy\": \"flux-system:app:tag\"}\n"
        )
    );
    let held: Vec<usize> = u.held.iter().map(|h| h.1).collect();
    assert_eq!(held, [1, 2]);
    // A range that no longer admits 1.2.0: a deliberate revert.
    let u = update_text(text, &setters("<1.2.0")).expect("update");
    assert!(u.held.is_empty());
    assert!(
        u.text
            .expect("changed")
            .starts_with("a: ghcr.io/org/app:1.1.0 #")
    );
}

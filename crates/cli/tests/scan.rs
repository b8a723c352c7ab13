//! `tagwarden scan` against a real docker-registry on 127.0.0.1.

use std::process::{Command, Output};
use tagwarden_testkit::{Registry, RegistryAuth, TempDir, base64};

fn scan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .arg("scan")
        .args(args)
        .output()
        .expect("run tagwarden")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn prints_tags_descending_without_signatures() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish(
        "stefanprodan/podinfo",
        &["5.0.0", "5.0.3", "5.0.1", "sha256-1.sig"],
        None,
    );
    let image = format!("{}/stefanprodan/podinfo", reg.host());
    let out = scan(&[&image]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "5.0.3\n5.0.1\n5.0.0\n");
    assert!(
        text(&out.stderr).contains("successful scan: found 3 tags"),
        "{}",
        text(&out.stderr)
    );

    let out = scan(&[&image, "--exclude", "^5\\.0\\.0$", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        v["tagCount"], 3,
        "a user list replaces the default .sig exclusion"
    );
    assert_eq!(v["latestTags"][0], "sha256-1.sig");
    assert_eq!(v["canonicalImageName"], image);
}

#[test]
fn credentials_from_a_docker_config() {
    let reg = Registry::start(RegistryAuth::Basic {
        user: "u".into(),
        password: "p".into(),
    });
    reg.publish("team/app", &["v1"], Some(("u", "p")));
    let image = format!("{}/team/app", reg.host());
    let out = scan(&[&image]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("authentication failed (HTTP 401)"),
        "{}",
        text(&out.stderr)
    );

    let dir = TempDir::new("scan-cli");
    let cfg = dir.path().join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            base64("u:p")
        ),
    )
    .expect("write");
    let out = scan(&[&image, "--docker-config", cfg.to_str().expect("utf8")]);
    assert_eq!(text(&out.stdout), "v1\n", "{}", text(&out.stderr));
}

#[test]
fn bad_references_are_refused_before_any_request() {
    for (image, needle) in [
        (
            "ghcr.io/stefanprodan/podinfo:5.0.0",
            "should not contain a tag; remove ':5.0.0'",
        ),
        ("https://ghcr.io/a/b", "should not start with URL scheme"),
        ("ghcr.io/A/b", "invalid repository"),
    ] {
        let out = scan(&[image]);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains(needle),
            "{image}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn scans_the_image_repository_of_a_flux_manifest() {
    let reg = Registry::start(RegistryAuth::Basic {
        user: "ci".into(),
        password: "pw".into(),
    });
    reg.publish("org/svc", &["v2.0.0", "v1.0.0"], Some(("ci", "pw")));
    let dir = TempDir::new("cli-manifest");
    let file = dir.path().join("registry.yaml");
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageRepository
metadata: {{name: svc, namespace: flux-system}}
spec:
  image: {host}/org/svc
  interval: 1m
  secretRef: {{name: creds}}
---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageRepository
metadata: {{name: broken, namespace: flux-system}}
spec:
  image: {host}/org/svc:latest
  interval: 1m
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: flux-system}}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{{"auths":{{"{host}":{{"username":"ci","password":"pw"}}}}}}'
"#,
            host = reg.host()
        ),
    )
    .expect("write manifest");
    let f = file.to_str().expect("utf-8 path");

    let out = scan(&["-f", f, "--name", "svc"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "v2.0.0\nv1.0.0\n");

    let out = scan(&["-f", f]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("2 ImageRepository objects (svc, broken); choose one with --name"),
        "{}",
        text(&out.stderr)
    );

    let out = scan(&["-f", f, "--name", "broken"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("ImageRepository 'broken'") && err.contains("spec.image"),
        "{err}"
    );
}

/// Neither stream holds a control character other than the line ends, nor a
/// Unicode line separator.
fn assert_printable(s: &str) {
    assert!(
        !s.chars()
            .any(|c| (c.is_control() && c != '\n') || matches!(c, '\u{2028}' | '\u{2029}')),
        "{s:?}"
    );
}

#[test]
fn hostile_tags_and_error_bodies_never_reach_the_terminal_raw() {
    use tagwarden_testkit::{Action, FaultProxy};
    let reg = Registry::start(RegistryAuth::None);
    let proxy = FaultProxy::start(
        reg.port,
        tagwarden_testkit::serve_tags(tagwarden_testkit::hostile_tags()),
    );
    let image = format!("{}/app", proxy.host());
    let out = scan(&[&image]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2.0.0\n1.0.0\n");
    assert_eq!(
        text(&out.stderr),
        format!(
            "warning: skipped 5 tags outside the OCI tag grammar [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}: \
             '1.0\\u{{2028}}evil', '../x', '{}…', '-bad', 'x\\u{{1b}}[31m'\n\
             ✔ successful scan: found 2 tags (5 invalid tags skipped) ({image})\n",
            "a".repeat(40)
        )
    );
    assert_printable(&text(&out.stdout));
    assert_printable(&text(&out.stderr));

    let out = scan(&[&image, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (v["tagCount"].clone(), v["invalidTagCount"].clone()),
        (2.into(), 5.into())
    );

    // A registry's error page with a terminal title escape, a bell and a
    // line separator.
    let proxy = FaultProxy::start(reg.port, |r| {
        if r.path().ends_with("/tags/list") {
            Action::Respond {
                status: 400,
                headers: vec![],
                body: "no\x1b]0;owned\x07\u{2028}way\r\n".into(),
            }
        } else {
            Action::Forward
        }
    });
    let out = scan(&[&format!("{}/app", proxy.host())]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {0}: HTTP 400 for http://{0}/v2/app/tags/list?n=1000: \
             no\\u{{1b}}]0;owned\\u{{7}}\\u{{2028}}way\\u{{d}}\\u{{a}}\n",
            proxy.host()
        )
    );
    assert_printable(&text(&out.stderr));
}

//! Per-type validation with real signatures computed here.

use base64::Engine;
use hmac::{Hmac, Mac};
use tagwarden_receivers::{MAX_BODY, RejectReason, Request, validate};

const TOKEN: &str = "s3cr3t-t0ken-0123456789abcdef";

fn hmac_hex<M: Mac + hmac::digest::KeyInit>(key: &str, body: &[u8]) -> String {
    let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key.as_bytes()).expect("any key");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}
fn sha1(body: &[u8]) -> String {
    hmac_hex::<Hmac<sha1::Sha1>>(TOKEN, body)
}
fn sha256(body: &[u8]) -> String {
    hmac_hex::<Hmac<sha2::Sha256>>(TOKEN, body)
}
fn sha512(body: &[u8]) -> String {
    hmac_hex::<Hmac<sha2::Sha512>>(TOKEN, body)
}

fn b64url(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}
fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}
fn jwt(claims: &str) -> String {
    format!(
        "Bearer {}.{}.c2lnbmF0dXJl",
        b64url(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64url(claims)
    )
}
const GOOGLE: &str =
    r#"{"iss":"https://accounts.google.com","aud":"https://hooks.example/hook/x"}"#;

fn gcr_body(action: &str) -> String {
    let data = b64(&format!(
        r#"{{"action":"{action}","digest":"gcr.io/p/app@sha256:00","tag":"gcr.io/p/app:1.2.3"}}"#
    ));
    format!(r#"{{"message":{{"data":"{data}","messageId":"1"}},"subscription":"s"}}"#)
}

const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;
const DOCKERHUB: &str = r#"{"callback_url":"https://registry.hub.docker.com/u/a/b/hook/x/","push_data":{"tag":"1.2.3"},"repository":{"repo_url":"https://hub.docker.com/r/a/b"}}"#;
const QUAY: &str = r#"{"repository":"a/b","docker_url":"quay.io/a/b","updated_tags":["1.2.3"]}"#;
const NEXUS: &str = r#"{"timestamp":"2026-01-01T00:00:00.000+0000","nodeId":"n","initiator":"admin/1.2.3.4","repositoryName":"docker-hosted","action":"CREATED","component":{"format":"docker","name":"app","version":"1.2.3"}}"#;
const ACR: &str = r#"{"id":"1","timestamp":"2026-01-01T00:00:00Z","action":"push","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","repository":"app","tag":"1.2.3"},"request":{"host":"x.azurecr.io"}}"#;

struct Case {
    name: &'static str,
    ty: &'static str,
    events: &'static [&'static str],
    method: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// `Ok`, or a piece of the rejection message.
    expect: Result<(), &'static str>,
}

fn post(
    name: &'static str,
    ty: &'static str,
    headers: Vec<(&'static str, String)>,
    body: &[u8],
    expect: Result<(), &'static str>,
) -> Case {
    Case {
        name,
        ty,
        events: &[],
        method: "POST",
        headers,
        body: body.to_vec(),
        expect,
    }
}

fn cases() -> Vec<Case> {
    let sig = |alg: &str, s: String| format!("{alg}={s}");
    vec![
        // generic: the path is the secret.
        post("generic ok", "generic", vec![], b"", Ok(())),
        Case {
            method: "GET",
            ..post(
                "generic GET",
                "generic",
                vec![],
                b"",
                Err("method GET not allowed"),
            )
        },
        // generic-hmac, all three algorithms, header name in any case.
        post(
            "hmac sha1",
            "generic-hmac",
            vec![("X-Signature", sig("sha1", sha1(BODY)))],
            BODY,
            Ok(()),
        ),
        post(
            "hmac sha256",
            "generic-hmac",
            vec![("x-signature", sig("sha256", sha256(BODY)))],
            BODY,
            Ok(()),
        ),
        post(
            "hmac sha512",
            "generic-hmac",
            vec![("X-SIGNATURE", sig("sha512", sha512(BODY)))],
            BODY,
            Ok(()),
        ),
        post(
            "hmac uppercase hex",
            "generic-hmac",
            vec![("X-Signature", sig("sha256", sha256(BODY).to_uppercase()))],
            BODY,
            Ok(()),
        ),
        post(
            "hmac missing",
            "generic-hmac",
            vec![],
            BODY,
            Err("missing header X-Signature"),
        ),
        post(
            "hmac other body",
            "generic-hmac",
            vec![("X-Signature", sig("sha256", sha256(b"other")))],
            BODY,
            Err("signature mismatch: X-Signature"),
        ),
        post(
            "hmac wrong alg label",
            "generic-hmac",
            vec![("X-Signature", sig("sha1", sha256(BODY)))],
            BODY,
            Err("signature mismatch"),
        ),
        post(
            "hmac md5",
            "generic-hmac",
            vec![("X-Signature", sig("md5", sha1(BODY)))],
            BODY,
            Err("unsupported algorithm 'md5'"),
        ),
        post(
            "hmac no prefix",
            "generic-hmac",
            vec![("X-Signature", sha256(BODY))],
            BODY,
            Err("expected <algorithm>=<hex digest>"),
        ),
        post(
            "hmac not hex",
            "generic-hmac",
            vec![("X-Signature", "sha256=zz".into())],
            BODY,
            Err("not a hex digest"),
        ),
        // github: SHA-256 header first, legacy SHA-1 header accepted alone.
        post(
            "github sha256",
            "github",
            vec![
                ("X-Hub-Signature-256", sig("sha256", sha256(BODY))),
                ("X-GitHub-Event", "push".into()),
            ],
            BODY,
            Ok(()),
        ),
        post(
            "github sha1 only",
            "github",
            vec![("X-Hub-Signature", sig("sha1", sha1(BODY)))],
            BODY,
            Ok(()),
        ),
        post(
            "github 256 wins over good legacy",
            "github",
            vec![
                ("X-Hub-Signature-256", sig("sha256", sha256(b"x"))),
                ("X-Hub-Signature", sig("sha1", sha1(BODY))),
            ],
            BODY,
            Err("signature mismatch: X-Hub-Signature-256"),
        ),
        post(
            "github unsigned",
            "github",
            vec![("X-GitHub-Event", "push".into())],
            BODY,
            Err("missing header X-Hub-Signature-256"),
        ),
        Case {
            events: &["ping", "push"],
            ..post(
                "github ping listed",
                "github",
                vec![
                    ("X-Hub-Signature-256", sig("sha256", sha256(BODY))),
                    ("X-GitHub-Event", "ping".into()),
                ],
                BODY,
                Ok(()),
            )
        },
        Case {
            events: &["Push"],
            ..post(
                "github event case-insensitive",
                "github",
                vec![
                    ("X-Hub-Signature-256", sig("sha256", sha256(BODY))),
                    ("X-GitHub-Event", "push".into()),
                ],
                BODY,
                Ok(()),
            )
        },
        Case {
            events: &["push"],
            ..post(
                "github event not listed",
                "github",
                vec![
                    ("X-Hub-Signature-256", sig("sha256", sha256(BODY))),
                    ("X-GitHub-Event", "issues".into()),
                ],
                BODY,
                Err("event 'issues' (header X-GitHub-Event) not in spec.events"),
            )
        },
        Case {
            events: &["push"],
            ..post(
                "github event missing",
                "github",
                vec![("X-Hub-Signature-256", sig("sha256", sha256(BODY)))],
                BODY,
                Err("missing header X-GitHub-Event"),
            )
        },
        // gitlab: the token itself travels in a header.
        post(
            "gitlab ok",
            "gitlab",
            vec![
                ("X-Gitlab-Token", TOKEN.into()),
                ("X-Gitlab-Event", "Push Hook".into()),
            ],
            BODY,
            Ok(()),
        ),
        post(
            "gitlab wrong token",
            "gitlab",
            vec![("X-Gitlab-Token", "guess".into())],
            BODY,
            Err("header X-Gitlab-Token does not match the receiver token"),
        ),
        post(
            "gitlab token prefix",
            "gitlab",
            vec![("X-Gitlab-Token", TOKEN[..10].into())],
            BODY,
            Err("does not match"),
        ),
        post(
            "gitlab no token",
            "gitlab",
            vec![],
            BODY,
            Err("missing header X-Gitlab-Token"),
        ),
        Case {
            events: &["Tag Push Hook"],
            ..post(
                "gitlab event not listed",
                "gitlab",
                vec![
                    ("X-Gitlab-Token", TOKEN.into()),
                    ("X-Gitlab-Event", "Push Hook".into()),
                ],
                BODY,
                Err("event 'Push Hook'"),
            )
        },
        // bitbucket server.
        Case {
            events: &["repo:refs_changed"],
            ..post(
                "bitbucket ok",
                "bitbucket",
                vec![
                    ("X-Hub-Signature", sig("sha256", sha256(BODY))),
                    ("X-Event-Key", "repo:refs_changed".into()),
                ],
                BODY,
                Ok(()),
            )
        },
        Case {
            events: &["repo:refs_changed"],
            ..post(
                "bitbucket other event",
                "bitbucket",
                vec![
                    ("X-Hub-Signature", sig("sha256", sha256(BODY))),
                    ("X-Event-Key", "pr:opened".into()),
                ],
                BODY,
                Err("(header X-Event-Key) not in spec.events"),
            )
        },
        post(
            "bitbucket bad sig",
            "bitbucket",
            vec![("X-Hub-Signature", sig("sha256", sha256(b"x")))],
            BODY,
            Err("signature mismatch: X-Hub-Signature "),
        ),
        // harbor.
        post(
            "harbor ok",
            "harbor",
            vec![("Authorization", TOKEN.into())],
            BODY,
            Ok(()),
        ),
        post(
            "harbor bearer prefix is not the token",
            "harbor",
            vec![("Authorization", format!("Bearer {TOKEN}"))],
            BODY,
            Err("header Authorization does not match"),
        ),
        post(
            "harbor missing",
            "harbor",
            vec![],
            BODY,
            Err("missing header Authorization"),
        ),
        // dockerhub.
        post(
            "dockerhub ok",
            "dockerhub",
            vec![],
            DOCKERHUB.as_bytes(),
            Ok(()),
        ),
        post(
            "dockerhub no repo_url",
            "dockerhub",
            vec![],
            br#"{"push_data":{},"repository":{}}"#,
            Err("`repository.repo_url` must be a string"),
        ),
        post(
            "dockerhub no push_data",
            "dockerhub",
            vec![],
            br#"{"repository":{"repo_url":"u"}}"#,
            Err("`push_data` must be an object"),
        ),
        post(
            "dockerhub not json",
            "dockerhub",
            vec![],
            b"tag=1.2.3",
            Err("invalid JSON: "),
        ),
        post(
            "dockerhub array",
            "dockerhub",
            vec![],
            b"[]",
            Err("invalid JSON: expected a JSON object"),
        ),
        // quay.
        post("quay ok", "quay", vec![], QUAY.as_bytes(), Ok(())),
        post(
            "quay tags not strings",
            "quay",
            vec![],
            br#"{"docker_url":"quay.io/a/b","updated_tags":[1]}"#,
            Err("`updated_tags` must be a list of strings"),
        ),
        post(
            "quay no docker_url",
            "quay",
            vec![],
            br#"{"updated_tags":[]}"#,
            Err("`docker_url` must be a string"),
        ),
        // gcr.
        post(
            "gcr ok",
            "gcr",
            vec![("Authorization", jwt(GOOGLE))],
            gcr_body("INSERT").as_bytes(),
            Ok(()),
        ),
        post(
            "gcr issuer without scheme",
            "gcr",
            vec![("Authorization", jwt(r#"{"iss":"accounts.google.com"}"#))],
            gcr_body("INSERT").as_bytes(),
            Ok(()),
        ),
        post(
            "gcr delete",
            "gcr",
            vec![("Authorization", jwt(GOOGLE))],
            gcr_body("DELETE").as_bytes(),
            Err("GCR action 'DELETE' is not INSERT"),
        ),
        post(
            "gcr no auth",
            "gcr",
            vec![],
            gcr_body("INSERT").as_bytes(),
            Err("missing header Authorization"),
        ),
        post(
            "gcr basic auth",
            "gcr",
            vec![("Authorization", "Basic dTpw".into())],
            gcr_body("INSERT").as_bytes(),
            Err("expected `Bearer <JWT>`"),
        ),
        post(
            "gcr opaque bearer",
            "gcr",
            vec![("Authorization", "Bearer abc".into())],
            gcr_body("INSERT").as_bytes(),
            Err("not a JWT"),
        ),
        post(
            "gcr other issuer",
            "gcr",
            vec![("Authorization", jwt(r#"{"iss":"https://evil.example"}"#))],
            gcr_body("INSERT").as_bytes(),
            Err("not issued by accounts.google.com"),
        ),
        post(
            "gcr unsigned jwt",
            "gcr",
            vec![(
                "Authorization",
                format!("Bearer {}.{}.", b64url(r#"{"alg":"none"}"#), b64url(GOOGLE)),
            )],
            gcr_body("INSERT").as_bytes(),
            Err("the JWT is not signed"),
        ),
        post(
            "gcr data not base64",
            "gcr",
            vec![("Authorization", jwt(GOOGLE))],
            br#"{"message":{"data":"%%%"}}"#,
            Err("`message.data` must be base64"),
        ),
        post(
            "gcr data not json",
            "gcr",
            vec![("Authorization", jwt(GOOGLE))],
            format!(r#"{{"message":{{"data":"{}"}}}}"#, b64("nope")).as_bytes(),
            Err("invalid JSON: in message.data"),
        ),
        // nexus: hex HMAC-SHA1 without a prefix.
        post(
            "nexus ok",
            "nexus",
            vec![("X-Nexus-Webhook-Signature", sha1(NEXUS.as_bytes()))],
            NEXUS.as_bytes(),
            Ok(()),
        ),
        post(
            "nexus prefixed",
            "nexus",
            vec![(
                "X-Nexus-Webhook-Signature",
                sig("sha1", sha1(NEXUS.as_bytes())),
            )],
            NEXUS.as_bytes(),
            Err("X-Nexus-Webhook-Signature: signature is not a hex digest"),
        ),
        post(
            "nexus sha256",
            "nexus",
            vec![("X-Nexus-Webhook-Signature", sha256(NEXUS.as_bytes()))],
            NEXUS.as_bytes(),
            Err("signature mismatch: X-Nexus-Webhook-Signature"),
        ),
        post(
            "nexus missing",
            "nexus",
            vec![],
            NEXUS.as_bytes(),
            Err("missing header X-Nexus-Webhook-Signature"),
        ),
        post(
            "nexus signed non-json",
            "nexus",
            vec![("X-Nexus-Webhook-Signature", sha1(b"hi"))],
            b"hi",
            Err("invalid JSON"),
        ),
        // acr.
        post("acr push", "acr", vec![], ACR.as_bytes(), Ok(())),
        post(
            "acr ping",
            "acr",
            vec![],
            br#"{"action":"ping","target":{"repository":"app"}}"#,
            Err("ACR action 'ping' is not a push"),
        ),
        post(
            "acr no repository",
            "acr",
            vec![],
            br#"{"action":"push","target":{}}"#,
            Err("`target.repository` must be a string"),
        ),
        // types.
        post(
            "unknown type",
            "gitea",
            vec![],
            b"",
            Err("unknown receiver type 'gitea'"),
        ),
        post(
            "cdevents",
            "cdevents",
            vec![],
            b"{}",
            Err("receiver type 'cdevents' is not supported"),
        ),
    ]
}

#[test]
fn table() {
    for c in cases() {
        let headers: Vec<(String, String)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let events: Vec<String> = c.events.iter().map(|e| e.to_string()).collect();
        let req = Request {
            method: c.method,
            headers: &headers,
            body: &c.body,
        };
        let got = validate(c.ty, &events, TOKEN, &req);
        match (&got, c.expect) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(want)) => {
                let msg = e.to_string();
                assert!(msg.contains(want), "{}: got {msg:?}, want {want:?}", c.name);
                // The token and any signature we would have accepted stay secret.
                assert!(!msg.contains(TOKEN), "{}: token leaked in {msg:?}", c.name);
                for expected in [sha1(&c.body), sha256(&c.body), sha512(&c.body)] {
                    assert!(!msg.contains(&expected), "{}: signature leaked", c.name);
                }
            }
            _ => panic!("{}: got {got:?}, want {:?}", c.name, c.expect),
        }
    }
}

#[test]
fn body_cap_is_flux_3_mib_and_checked_first() {
    assert_eq!(MAX_BODY, 3 * 1024 * 1024);
    let big = vec![b' '; MAX_BODY + 1];
    let headers = vec![(
        "X-Signature".to_string(),
        format!("sha256={}", sha256(&big)),
    )];
    let req = Request {
        method: "POST",
        headers: &headers,
        body: &big,
    };
    // Even a correctly signed body is refused once over the cap.
    assert_eq!(
        validate("generic-hmac", &[], TOKEN, &req),
        Err(RejectReason::TooLarge { size: MAX_BODY + 1 })
    );
    let at_cap = vec![b' '; MAX_BODY];
    let req = Request {
        body: &at_cap,
        headers: &[],
        ..req
    };
    assert_eq!(validate("generic", &[], TOKEN, &req), Ok(()));
}

#[test]
fn empty_token_refuses_everything() {
    let req = Request {
        method: "POST",
        headers: &[("X-Gitlab-Token".to_string(), String::new())],
        body: b"",
    };
    assert_eq!(
        validate("generic", &[], "", &req),
        Err(RejectReason::EmptyToken)
    );
    assert_eq!(
        validate("gitlab", &[], "", &req),
        Err(RejectReason::EmptyToken)
    );
}

#[test]
fn first_header_of_a_name_wins() {
    let headers = vec![
        ("authorization".to_string(), "wrong".to_string()),
        ("Authorization".to_string(), TOKEN.to_string()),
    ];
    let req = Request {
        method: "POST",
        headers: &headers,
        body: b"",
    };
    assert_eq!(req.header("AUTHORIZATION"), Some("wrong"));
    assert_eq!(
        validate("harbor", &[], TOKEN, &req),
        Err(RejectReason::TokenMismatch("Authorization"))
    );
}

#[test]
fn echoed_sender_values_are_clipped() {
    let long = "e".repeat(500);
    let headers = vec![
        ("X-Gitlab-Token".to_string(), TOKEN.to_string()),
        ("X-Gitlab-Event".to_string(), long),
    ];
    let events = vec!["Push Hook".to_string()];
    let req = Request {
        method: "POST",
        headers: &headers,
        body: b"",
    };
    let msg = validate("gitlab", &events, TOKEN, &req)
        .expect_err("event not listed")
        .to_string();
    assert!(msg.len() < 200, "{msg}");
}

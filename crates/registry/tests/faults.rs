//! The client against a real docker-registry behind our fault-injecting
//! proxy: pagination (Distribution 2.8 ignores `n`/`last`), 429, 500,
//! resets, stalled bodies, malformed JSON and looping `Link` headers; and a
//! hostile registry: invalid tags, endless big pages, hanging and trickling
//! answers, huge Retry-After, redirects to another host.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tagwarden_api::image::ImageRef;
use tagwarden_registry::{Client, ClientOptions, Credentials, RegistryError, scan_result};
use tagwarden_testkit::{
    Action, FaultProxy, Registry, RegistryAuth, Request, serve_tags, tag_page,
};

const TAGS: [&str; 7] = [
    "1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0", "3.0.0", "latest",
];

fn registry() -> Registry {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("app", &TAGS, None);
    reg
}

fn client(page_size: usize) -> Client {
    Client::new(ClientOptions {
        page_size,
        backoff: Duration::from_millis(20),
        attempts: 3,
        timeout: Duration::from_secs(20),
        stall_timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    })
    .expect("client")
}

fn image(p: &FaultProxy) -> ImageRef {
    ImageRef::parse(&format!("{}/app", p.host())).expect("valid image")
}

fn tag_requests(p: &FaultProxy) -> Vec<Request> {
    p.requests()
        .into_iter()
        .filter(|r| r.path().ends_with("/tags/list"))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Fails the first `n` tag-list requests with `fault`, then forwards.
fn first_n(n: usize, fault: Action) -> impl Fn(&Request) -> Action + Send + Sync {
    let count = Arc::new(AtomicUsize::new(0));
    move |r: &Request| {
        if r.path().ends_with("/tags/list") && count.fetch_add(1, Ordering::SeqCst) < n {
            fault.clone()
        } else {
            Action::Forward
        }
    }
}

#[tokio::test]
async fn follows_link_pages_to_the_end() {
    let reg = registry();
    let proxy = FaultProxy::start(reg.port, |_| Action::Paginate { cap: 1000 });
    let tags = client(3)
        .list_tags(&image(&proxy), None)
        .await
        .expect("list");
    assert_eq!(tags, TAGS, "pages arrive in order and nothing repeats");
    let pages = tag_requests(&proxy);
    assert_eq!(pages.len(), 3, "7 tags in pages of 3");
    assert_eq!(pages[0].query("n").as_deref(), Some("3"));
    assert_eq!(pages[1].query("last").as_deref(), Some("1.2.0"));
    assert_eq!(pages[2].query("last").as_deref(), Some("3.0.0"));
}

#[tokio::test]
async fn a_registry_capping_the_page_size_still_yields_every_tag() {
    let reg = registry();
    // We ask for 100, the registry gives 2 per page with a Link: the short
    // first page must not be taken for the end.
    let proxy = FaultProxy::start(reg.port, |_| Action::Paginate { cap: 2 });
    let tags = client(100)
        .list_tags(&image(&proxy), None)
        .await
        .expect("list");
    assert_eq!(tags, TAGS);
    assert_eq!(tag_requests(&proxy).len(), 4);
}

#[tokio::test]
async fn looping_link_headers_end_the_listing() {
    let reg = registry();
    let page = r#"{"name":"app","tags":["a","b"]}"#;
    // Always the same page, always pointing at itself.
    let proxy = FaultProxy::start(reg.port, move |r| {
        if r.path().ends_with("/tags/list") {
            Action::Respond {
                status: 200,
                headers: vec![(
                    "Link".into(),
                    r#"</v2/app/tags/list?n=2&last=b>; rel="next""#.into(),
                )],
                body: page.as_bytes().to_vec(),
            }
        } else {
            Action::Forward
        }
    });
    let tags = client(2)
        .list_tags(&image(&proxy), None)
        .await
        .expect("list");
    assert_eq!(tags, ["a", "b"], "the repeated page is not added again");
    assert_eq!(tag_requests(&proxy).len(), 2);

    // Endless fresh pages: the page cap ends it with an error, not a hang.
    let n = Arc::new(AtomicUsize::new(0));
    let proxy = FaultProxy::start(reg.port, move |r| {
        if !r.path().ends_with("/tags/list") {
            return Action::Forward;
        }
        let i = n.fetch_add(1, Ordering::SeqCst);
        Action::Respond {
            status: 200,
            headers: vec![(
                "Link".into(),
                format!("</v2/app/tags/list?n=1&last=t{i}>; rel=\"next\""),
            )],
            body: format!(r#"{{"tags":["t{i}"]}}"#).into_bytes(),
        }
    });
    let capped = Client::new(ClientOptions {
        page_size: 1,
        max_pages: 5,
        ..ClientOptions::default()
    })
    .expect("client");
    let err = capped
        .list_tags(&image(&proxy), None)
        .await
        .expect_err("cap");
    assert!(
        matches!(err, RegistryError::TooManyPages { limit: 5, .. }),
        "{err}"
    );
    assert_eq!(tag_requests(&proxy).len(), 5);
}

#[tokio::test]
async fn too_many_requests_waits_as_retry_after_says() {
    let reg = registry();
    let proxy = FaultProxy::start(
        reg.port,
        first_n(
            1,
            Action::Respond {
                status: 429,
                headers: vec![("Retry-After".into(), "1".into())],
                body: b"slow down".to_vec(),
            },
        ),
    );
    let started = Instant::now();
    let tags = client(1000)
        .list_tags(&image(&proxy), None)
        .await
        .expect("list");
    let waited = started.elapsed();
    assert_eq!(sorted(tags), TAGS);
    assert!(
        waited >= Duration::from_secs(1),
        "honours Retry-After: {waited:?}"
    );
    assert_eq!(tag_requests(&proxy).len(), 2);

    // A Retry-After beyond what one scan should wait: give up at once,
    // transiently, so the scheduler retries later.
    let proxy = FaultProxy::start(
        reg.port,
        first_n(
            1,
            Action::Respond {
                status: 429,
                headers: vec![("Retry-After".into(), "3600".into())],
                body: vec![],
            },
        ),
    );
    let started = Instant::now();
    let err = client(1000)
        .list_tags(&image(&proxy), None)
        .await
        .expect_err("gives up");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        err.to_string(),
        format!(
            "{0}: HTTP 429 for http://{0}/v2/app/tags/list?n=1000: registry asked to retry after 3600s; giving up for now",
            proxy.host()
        )
    );
    assert!(err.is_transient());
    assert_eq!(tag_requests(&proxy).len(), 1, "no second try");
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_gives_up_at_once() {
    let reg = registry();
    let proxy = FaultProxy::start(
        reg.port,
        first_n(
            1,
            Action::Respond {
                status: 429,
                headers: vec![("Retry-After".into(), "30".into())],
                body: vec![],
            },
        ),
    );
    let c = Client::new(ClientOptions {
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    })
    .expect("client");
    let started = Instant::now();
    let err = c
        .list_tags(&image(&proxy), None)
        .await
        .expect_err("gives up");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        err.to_string()
            .ends_with("registry asked to retry after 30s; giving up for now"),
        "{err}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_reported() {
    let reg = registry();
    let fault = Action::Respond {
        status: 500,
        headers: vec![],
        body: b"boom".to_vec(),
    };
    let proxy = FaultProxy::start(reg.port, first_n(2, fault.clone()));
    let tags = client(1000)
        .list_tags(&image(&proxy), None)
        .await
        .expect("third try");
    assert_eq!(sorted(tags), TAGS);
    assert_eq!(tag_requests(&proxy).len(), 3);

    let proxy = FaultProxy::start(reg.port, first_n(usize::MAX, fault));
    let err = client(1000)
        .list_tags(&image(&proxy), None)
        .await
        .expect_err("always 500");
    assert!(
        matches!(err, RegistryError::Status { status: 500, ref body, .. } if body == "boom"),
        "{err}"
    );
    assert!(err.is_transient());
    assert_eq!(tag_requests(&proxy).len(), 3, "attempts are bounded");
}

#[tokio::test]
async fn connection_resets_are_retried() {
    let reg = registry();
    let proxy = FaultProxy::start(reg.port, first_n(2, Action::Reset));
    let tags = client(1000)
        .list_tags(&image(&proxy), None)
        .await
        .expect("list");
    assert_eq!(sorted(tags), TAGS);
    assert_eq!(tag_requests(&proxy).len(), 3);

    let proxy = FaultProxy::start(reg.port, first_n(usize::MAX, Action::Reset));
    let err = client(1000)
        .list_tags(&image(&proxy), None)
        .await
        .expect_err("always reset");
    assert!(matches!(err, RegistryError::Connect { .. }), "{err}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_stalled_body_times_out_and_is_retried() {
    let reg = registry();
    let stall = Action::Stall {
        sent: 10,
        hold: Duration::from_secs(4),
    };
    let proxy = FaultProxy::start(reg.port, first_n(1, stall.clone()));
    let started = Instant::now();
    let tags = client(1000)
        .list_tags(&image(&proxy), None)
        .await
        .expect("list");
    assert_eq!(sorted(tags), TAGS);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "one timeout (2 s), then success: {took:?}"
    );

    let proxy = FaultProxy::start(reg.port, first_n(usize::MAX, stall));
    let err = client(1000)
        .list_tags(&image(&proxy), None)
        .await
        .expect_err("always stalls");
    assert!(matches!(err, RegistryError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn malformed_json_names_the_url() {
    let reg = registry();
    let proxy = FaultProxy::start(
        reg.port,
        first_n(
            usize::MAX,
            Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: br#"{"name":"app","tags":["1.0.0","#.to_vec(),
            },
        ),
    );
    let err = client(1000)
        .list_tags(&image(&proxy), None)
        .await
        .expect_err("malformed");
    assert!(matches!(err, RegistryError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("/v2/app/tags/list"), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let reg = registry();
    let proxy = FaultProxy::start(reg.port, |_| Action::Forward);
    let small = Client::new(ClientOptions {
        max_body: 16,
        ..ClientOptions::default()
    })
    .expect("client");
    let err = small
        .list_tags(&image(&proxy), None)
        .await
        .expect_err("too large");
    assert!(
        matches!(err, RegistryError::TooLarge { limit: 16, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn many_scans_of_one_host_stay_under_the_concurrency_limit() {
    let reg = registry();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let proxy = {
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        FaultProxy::start(reg.port, move |r| {
            if r.path().ends_with("/tags/list") {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
            Action::Forward
        })
    };
    let img = image(&proxy);
    let opts = ClientOptions {
        per_registry: 2,
        ..ClientOptions::default()
    };
    // Separate clients, as separate ImageRepositories have: the limit is per host.
    let scans: Vec<_> = (0..8)
        .map(|_| {
            let c = Client::new(opts.clone()).expect("client");
            let img = img.clone();
            tokio::spawn(async move { c.list_tags(&img, None).await })
        })
        .collect();
    for s in scans {
        assert_eq!(sorted(s.await.expect("join").expect("list")), TAGS);
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn tags_outside_the_oci_grammar_are_skipped_counted_and_escaped() {
    let reg = registry();
    let mut hostile = tagwarden_testkit::hostile_tags();
    hostile.push("b".repeat(128));
    let proxy = FaultProxy::start(reg.port, serve_tags(hostile));
    let list = client(1000)
        .scan_tags(&image(&proxy), None)
        .await
        .expect("scan");
    assert_eq!(list.tags, ["1.0.0", "2.0.0", &"b".repeat(128)]);
    assert_eq!(list.invalid, 5);
    assert_eq!(
        list.examples_line(),
        format!(
            "'1.0\\u{{2028}}evil', '../x', '{}…', '-bad', 'x\\u{{1b}}[31m'",
            "a".repeat(40)
        )
    );
    let result = scan_result("r/app", list, &[]);
    assert_eq!(
        result.message(),
        "successful scan: found 3 tags (5 invalid tags skipped)"
    );
    assert_eq!(result.invalid_tag_count, 5);
    assert!(
        result
            .tags
            .iter()
            .all(|t| tagwarden_registry::is_valid_tag(t))
    );
}

/// Endless pages of `per_page` fresh 40-byte tags, each with a Link to the next.
fn endless_pages(per_page: usize) -> impl Fn(&Request) -> Action + Send + Sync {
    let n = Arc::new(AtomicUsize::new(0));
    move |r: &Request| {
        if !r.path().ends_with("/tags/list") {
            return Action::Forward;
        }
        let i = n.fetch_add(1, Ordering::SeqCst);
        let tags: Vec<String> = (0..per_page).map(|j| format!("{i:08}-{j:031}")).collect();
        let Action::Respond { body, .. } = tag_page(&tags) else {
            unreachable!()
        };
        Action::Respond {
            status: 200,
            headers: vec![(
                "Link".into(),
                format!("</v2/app/tags/list?n={per_page}&last={i:08}>; rel=\"next\""),
            )],
            body,
        }
    }
}

#[tokio::test]
async fn the_total_tag_list_is_capped_in_tags_and_bytes() {
    let reg = registry();
    // Pages of 2,000 tags (~86 KB each) with no end.
    let proxy = FaultProxy::start(reg.port, endless_pages(2000));
    let c = Client::new(ClientOptions {
        page_size: 2000,
        max_tags: 9000,
        ..ClientOptions::default()
    })
    .expect("client");
    let err = c
        .scan_tags(&image(&proxy), None)
        .await
        .expect_err("tag cap");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: repository 'app' lists more than 9000 tags; a scan keeps at most 9000",
            proxy.host()
        )
    );
    assert!(!err.is_transient() && !err.is_stalled());
    assert_eq!(
        tag_requests(&proxy).len(),
        5,
        "the fifth page crosses the cap"
    );

    let proxy = FaultProxy::start(reg.port, endless_pages(2000));
    let c = Client::new(ClientOptions {
        page_size: 2000,
        max_tag_bytes: 300_000,
        ..ClientOptions::default()
    })
    .expect("client");
    let err = c
        .scan_tags(&image(&proxy), None)
        .await
        .expect_err("byte cap");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the tag list of 'app' exceeds 300000 bytes in total; a scan reads at most 300000",
            proxy.host()
        )
    );
    assert_eq!(
        tag_requests(&proxy).len(),
        4,
        "3 pages fit, the fourth does not"
    );

    // The defaults are documented: a million tags, 64 MiB of bodies.
    let d = ClientOptions::default();
    assert_eq!((d.max_tags, d.max_tag_bytes), (1_000_000, 64 << 20));
}

#[tokio::test]
async fn the_timeout_bounds_the_whole_scan() {
    let reg = registry();
    let timed = |timeout_ms: u64| {
        Client::new(ClientOptions {
            page_size: 1,
            timeout: Duration::from_millis(timeout_ms),
            backoff: Duration::from_millis(300),
            attempts: 10,
            ..ClientOptions::default()
        })
        .expect("client")
    };
    let expected = |p: &FaultProxy, after: &str| {
        format!(
            "{}: scan timed out after {after} (the timeout bounds the whole scan: every page, retry and token request)",
            p.host()
        )
    };

    // Trickling: every page answers in 400 ms, each well within the
    // timeout; seven pages are not.
    let proxy = FaultProxy::start(reg.port, |r| {
        if r.path().ends_with("/tags/list") {
            std::thread::sleep(Duration::from_millis(400));
        }
        Action::Paginate { cap: 1 }
    });
    let started = Instant::now();
    let err = timed(1500)
        .scan_tags(&image(&proxy), None)
        .await
        .expect_err("trickles past the deadline");
    let took = started.elapsed();
    assert_eq!(err.to_string(), expected(&proxy, "1.5s"));
    assert!(err.is_transient());
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert!(tag_requests(&proxy).len() < 7, "the scan stopped early");

    // Hanging: the head and a few bytes, then nothing.
    let proxy = FaultProxy::start(
        reg.port,
        first_n(
            usize::MAX,
            Action::Stall {
                sent: 5,
                hold: Duration::from_secs(8),
            },
        ),
    );
    let started = Instant::now();
    let err = timed(1000)
        .scan_tags(&image(&proxy), None)
        .await
        .expect_err("hangs");
    assert_eq!(err.to_string(), expected(&proxy, "1s"));
    assert!(started.elapsed() < Duration::from_secs(2));

    // Retries: ten attempts with growing backoff would take seconds.
    let proxy = FaultProxy::start(
        reg.port,
        first_n(
            usize::MAX,
            Action::Respond {
                status: 503,
                headers: vec![],
                body: b"busy".to_vec(),
            },
        ),
    );
    let started = Instant::now();
    let err = timed(1000)
        .scan_tags(&image(&proxy), None)
        .await
        .expect_err("always 503");
    assert_eq!(err.to_string(), expected(&proxy, "1s"));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_redirect_to_another_host_gets_neither_credentials_nor_referer() {
    let reg = registry();
    // The second listener records what reaches it and serves the list.
    let target = FaultProxy::start(reg.port, serve_tags(vec!["9.9.9".into()]));
    let location = format!("http://{}/v2/app/tags/list?n=1000", target.host());
    let proxy = FaultProxy::start(reg.port, move |r| {
        if r.path().ends_with("/tags/list") {
            Action::Respond {
                status: 307,
                headers: vec![("Location".into(), location.clone())],
                body: vec![],
            }
        } else {
            Action::Forward
        }
    });
    let creds = Credentials {
        username: "bot".into(),
        password: "s3cret".into(),
    };
    let tags = client(1000)
        .list_tags(&image(&proxy), Some(&creds))
        .await
        .expect("followed");
    assert_eq!(tags, ["9.9.9"]);
    let has = |r: &Request, name: &str| r.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let sent = tag_requests(&proxy);
    assert!(
        has(&sent[0], "authorization"),
        "credentials go to the registry"
    );
    let got = tag_requests(&target);
    assert_eq!(got.len(), 1);
    assert!(!has(&got[0], "authorization"), "{:?}", got[0].headers);
    assert!(!has(&got[0], "referer"), "{:?}", got[0].headers);
}

#[tokio::test]
async fn a_link_to_another_host_is_refused_before_credentials_go_there() {
    let reg = registry();
    let target = FaultProxy::start(reg.port, serve_tags(vec!["9.9.9".into()]));
    let linking = |link: String| {
        FaultProxy::start(reg.port, move |r| {
            if r.path().ends_with("/tags/list") {
                let Action::Respond { body, .. } = tag_page(&["a".to_string()]) else {
                    unreachable!()
                };
                Action::Respond {
                    status: 200,
                    headers: vec![("Link".into(), link.clone())],
                    body,
                }
            } else {
                Action::Forward
            }
        })
    };
    let creds = Credentials {
        username: "bot".into(),
        password: "s3cret".into(),
    };
    let next = format!("http://{}/v2/app/tags/list?n=1&last=a", target.host());
    let proxy = linking(format!("<{next}>; rel=\"next\""));
    let err = client(1)
        .list_tags(&image(&proxy), Some(&creds))
        .await
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "{0}: malformed response for http://{0}/v2/app/tags/list?n=1: the Link header's next page '{next}' is not on this registry; credentials are sent only to http://{0}",
            proxy.host()
        )
    );

    // Pasted after the base, `@host/…` would read as userinfo@host; resolved
    // as a URL it is a path on the registry.
    let proxy = linking(format!(
        "<@{}/v2/app/tags/list?n=1&last=a>; rel=\"next\"",
        target.host()
    ));
    let tags = client(1)
        .list_tags(&image(&proxy), Some(&creds))
        .await
        .expect("stays on the registry");
    assert_eq!(tags, ["a"]);
    let pages = tag_requests(&proxy);
    assert_eq!(pages.len(), 2);
    assert!(
        pages[1].path().starts_with("/@127.0.0.1:"),
        "{:?}",
        pages[1]
    );
    assert!(
        tag_requests(&target).is_empty(),
        "nothing reached the other host"
    );
}

//! The client against a real docker-registry behind our fault-injecting
//! proxy: pagination (Distribution 2.8 ignores `n`/`last`), 429, 500,
//! resets, stalled bodies, malformed JSON and looping `Link` headers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tagwarden_api::image::ImageRef;
use tagwarden_registry::{Client, ClientOptions, RegistryError};
use tagwarden_testkit::{Action, FaultProxy, Registry, RegistryAuth, Request};

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
        timeout: Duration::from_secs(2),
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
    assert!(
        matches!(err, RegistryError::Status { status: 429, .. }),
        "{err}"
    );
    assert!(err.is_transient());
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

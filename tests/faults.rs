//! Faults (issue 7): a store that fails, stalls, breaks off or never ends, and an upstream that resets,
//! answers 5xx or sends an endless body. Every case ends with the SPEC's status, an error event, and
//! an answer within the configured bound; transient upstream failures are retried, others are not.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use disttags_core::{App, Config, Defaults, LogEvent, Store};
use disttags_tests::faults::{Fault, FaultInjectingStore};
use disttags_tests::load::rss_kib;
use disttags_tests::target::{Reply, Target, app_get, seed};
use disttags_tests::{Behaviour, TestUpstream, packument, shared_packument};
use object_store::memory::InMemory;

/// The request budget these tests configure (the default is 10 s).
const STORE_TIMEOUT: Duration = Duration::from_millis(700);

struct Faulty {
    app: App,
    store: Arc<FaultInjectingStore>,
    events: Arc<Mutex<Vec<LogEvent>>>,
    upstream: TestUpstream,
}

async fn faulty() -> Faulty {
    let upstream = TestUpstream::start(
        &[("upstream-only", Behaviour::Tags(r#"{"latest":"1.0.0"}"#))],
        true,
    )
    .await;
    let inner = Arc::new(InMemory::new());
    seed(
        inner.as_ref(),
        &[
            (
                "small/index.json",
                packument("small", Some(r#"{"latest":"1.0.0"}"#)),
            ),
            ("tail/index.json", shared_packument("react.tail.json.gz")),
        ],
    )
    .await;
    let store = Arc::new(FaultInjectingStore::new(inner));
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let config = Config::from_vars(
        [
            ("DISTTAGS_STORE", "memory://"),
            ("DISTTAGS_UPSTREAM", upstream.url.as_str()),
        ],
        Defaults::CLOUD,
    )
    .expect("config");
    let app = App::new(
        Store::objects(store.clone()),
        config.build_upstream().expect("upstream"),
        Arc::new(move |e: &LogEvent| sink.lock().expect("lock").push(e.clone())),
    )
    .with_request_timeout(STORE_TIMEOUT);
    Faulty {
        app,
        store,
        events,
        upstream,
    }
}

async fn get(app: &App, name: &str) -> (Reply, Duration) {
    let started = Instant::now();
    // A guard against a hang, not a timing measurement.
    let reply = tokio::time::timeout(
        Duration::from_secs(15),
        app_get(app, &format!("/-/package/{name}/dist-tags")),
    )
    .await
    .unwrap_or_else(|_| panic!("{name}: no answer within 15 s"));
    (reply, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_faults_end_in_500_with_one_event_each() {
    let f = faulty().await;
    // (fault, package, what the error event says): a stall and an endless body end at our bound.
    for (fault, name, cause) in [
        (Fault::Fail, "small", "injected fault: read failed"),
        (
            Fault::Stall(Duration::from_secs(5)),
            "small",
            "no answer within",
        ),
        (
            Fault::BreakMidBody,
            "tail",
            "injected fault: connection reset",
        ),
        (Fault::EndlessBody, "small", "no answer within"),
        (
            Fault::Vanished,
            "small",
            "bucket, container or directory does not exist",
        ),
    ] {
        f.store.inject(fault);
        let before = f.events.lock().expect("lock").len();
        let (reply, took) = get(&f.app, name).await;
        println!("{fault:?}: {} in {took:?}", reply.status);
        assert_eq!(reply.status, 500, "{fault:?}: {:?}", reply.body);
        assert_eq!(reply.json()["ok"], false);
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("injected"),
            "details stay in the log"
        );
        let events = f.events.lock().expect("lock").clone();
        assert_eq!(events.len(), before + 1, "{fault:?}: one event");
        let message = events[before].body["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(message.contains(cause), "{fault:?}: {message}");
    }
    assert!(
        f.upstream.seen().is_empty(),
        "no store fault looks like a missing package"
    );
    // Nothing is poisoned: the next healthy read works.
    f.store.inject(Fault::None);
    assert_eq!(get(&f.app, "small").await.0.status, 200);
    assert_eq!(get(&f.app, "tail").await.0.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_faults_end_in_502_or_504() {
    let upstream = TestUpstream::start(
        &[
            ("reset", Behaviour::Reset),
            ("endless", Behaviour::Endless),
            ("status-500", Behaviour::Status(500)),
            ("status-503", Behaviour::Status(503)),
            ("garbage", Behaviour::Garbage),
            ("hang", Behaviour::Hang),
        ],
        true,
    )
    .await;
    let t = Target::in_process(&[], &upstream, &[]).await;
    for (name, status, asked) in [
        ("reset", 502, 1),
        ("endless", 502, 1),
        ("status-500", 502, 1),
        ("status-503", 502, 3),
        ("garbage", 502, 1),
        ("hang", 504, 1),
    ] {
        let reply = t.get(&format!("/-/package/{name}/dist-tags")).await;
        assert_eq!(reply.status, status, "{name}: {:?}", reply.body);
        assert_eq!(
            upstream.asked(name),
            asked,
            "{name}: retried only when transient (503), and at most twice"
        );
    }
    let events = t.events(6).await;
    assert_eq!(events.len(), 6, "one error event per failed request");
    // The reset's event says what went wrong on the wire, not only reqwest's "error sending request".
    let reset = events[0]["body"]["message"].as_str().unwrap_or_default();
    assert!(
        reset.to_ascii_lowercase().contains("connection"),
        "the cause is kept: {reset}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_upstream_packument_ends_at_the_deadline_in_bounded_memory() {
    // An upstream without the dist-tags endpoint, whose packument never ends, behind `disttags serve`
    // (its own process, so its memory is measured alone).
    let upstream = TestUpstream::start(&[("endless", Behaviour::Endless)], false).await;
    let mut t = Target::local(&[], &upstream, &[("DISTTAGS_UPSTREAM_TIMEOUT_MS", "2000")]).await;
    let pid = t.transport.process_mut().expect("process").id();
    assert_eq!(
        t.get("/-/package/small/dist-tags").await.status,
        404,
        "warm-up"
    );
    let rss_before = rss_kib(pid).unwrap_or(0);
    let reply = t.get("/-/package/endless/dist-tags").await;
    let rss_after = rss_kib(pid).unwrap_or(0);
    assert_eq!(reply.status, 504, "{:?}", reply.body);
    println!("endless packument: server RSS {rss_before} -> {rss_after} KiB");
    // Streaming a fast endless body for 2 s: buffering any of it would cost hundreds of MB.
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
}

/// Redaction on its own: the store's error text carries a configured secret and a signed URL, as a
/// client library's could; the log event keeps neither. (tests/leaks.rs checks every output for
/// secrets, but the real clients there never put one in an error, so it cannot tell whether
/// redaction works.)
#[tokio::test]
async fn store_errors_are_redacted_in_the_log() {
    const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    let f = faulty().await;
    let app = App::new(
        Store::objects(f.store.clone()),
        None,
        Arc::new({
            let sink = f.events.clone();
            move |e: &LogEvent| sink.lock().expect("lock").push(e.clone())
        }),
    )
    .with_secrets(vec![SECRET.to_owned()]);
    f.store.inject(Fault::FailWith(
        "GET https://bucket.store.invalid/small/index.json?X-Amz-Signature=0badc0ffee&X-Amz-Credential=AKIAEXAMPLE \
         failed: credentials wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY rejected",
    ));
    let (reply, _) = get(&app, "small").await;
    assert_eq!(reply.status, 500);
    let events = f.events.lock().expect("lock").clone();
    let message = events
        .last()
        .and_then(|e| e.body["message"].as_str())
        .unwrap_or("")
        .to_owned();
    assert!(
        message.contains("https://bucket.store.invalid/small/index.json?[redacted]"),
        "the URL stays, its query goes: {message}"
    );
    assert!(
        message.contains("credentials [redacted] rejected"),
        "{message}"
    );
    for leaked in [SECRET, "0badc0ffee", "AKIAEXAMPLE"] {
        assert!(!message.contains(leaked), "{leaked} in {message}");
    }
}

//! Log events: identity and request id reach the event, and each sink (stdout, HTTP, none) behaves,
//! including an HTTP endpoint that fails or hangs, which must not change or stall any response.

use disttags_tests::matrix::Shim;
use std::time::Duration;

use disttags_core::Identity;
use disttags_tests::LogEndpoint;
use disttags_tests::target::Sent;
use http::Method;

use crate::fixture;

const CORRUPT: &str = "/-/package/corrupt/dist-tags";
const STORED: &str = "/-/package/left-pad/dist-tags";

#[tokio::test]
async fn error_event_carries_identity_and_request_id_once() {
    let (t, _) = fixture(Shim::Core, &[]).await;
    let alice = Identity {
        name: "alice".into(),
        avatar: Some("https://avatars.example/alice.png".into()),
    };
    let reply = t
        .transport
        .send(Sent {
            method: &Method::GET,
            path: CORRUPT,
            headers: &[],
            identity: Some(&alice),
            request_id: Some("req-42"),
            body: &[],
        })
        .await;
    assert_eq!(reply.status, 500);
    let events = t.events(1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["user"]["name"], "alice");
    assert_eq!(e["user"]["avatar"], "https://avatars.example/alice.png");
    assert_eq!(e["requestId"], "req-42");
    assert_eq!(e["namespace"], "error:dist-tags:get");
    assert!(
        e["body"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("corrupt/index.json"))
    );
    // Without a context the user is null and an id is made up.
    t.get(CORRUPT).await;
    let events = t.events(2).await;
    assert_eq!(events[1]["user"], serde_json::Value::Null);
    assert!(
        events[1]["requestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty() && id != "req-42")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_sink_writes_one_json_line_per_event() {
    let (t, _) = fixture(Shim::Local, &[]).await;
    assert_eq!(t.get(CORRUPT).await.status, 500);
    assert_eq!(t.get(STORED).await.status, 200);
    let events = t.events(1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    for key in [
        "timestamp",
        "level",
        "namespace",
        "command",
        "user",
        "requestId",
        "body",
    ] {
        assert!(
            events[0].get(key).is_some(),
            "{key} missing in {}",
            events[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_posts_each_event_with_its_token() {
    let endpoint = LogEndpoint::start(200, Duration::ZERO).await;
    let (t, _) = fixture(
        Shim::Local,
        &[
            ("DISTTAGS_LOG", &endpoint.url),
            ("DISTTAGS_LOG_TOKEN", "tok-123"),
        ],
    )
    .await;
    assert_eq!(t.get(CORRUPT).await.status, 500);
    assert_eq!(t.get(STORED).await.status, 200);
    let received = endpoint.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].0, "Bearer tok-123");
    let event: serde_json::Value = serde_json::from_str(&received[0].1).expect("event JSON");
    assert_eq!(event["namespace"], "error:dist-tags:get");
    assert!(
        t.events(0).await.is_empty(),
        "the HTTP sink replaces stdout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_or_hanging_http_sink_changes_no_response() {
    let (reference, _) = fixture(Shim::Local, &[("DISTTAGS_LOG", "none")]).await;
    let hanging = LogEndpoint::start(500, Duration::from_secs(120)).await;
    let failing = LogEndpoint::start(503, Duration::ZERO).await;
    for url in [
        hanging.url.as_str(),
        failing.url.as_str(),
        "http://127.0.0.1:9/unreachable",
    ] {
        let (t, _) = fixture(Shim::Local, &[("DISTTAGS_LOG", url)]).await;
        for _ in 0..3 {
            for p in [CORRUPT, STORED] {
                // A guard against a hang, not a timing measurement.
                let got = tokio::time::timeout(Duration::from_secs(10), t.get(p))
                    .await
                    .unwrap_or_else(|_| panic!("{p} hung behind log sink {url}"));
                let want = reference.get(p).await;
                assert_eq!(
                    (got.status, &got.body),
                    (want.status, &want.body),
                    "sink {url}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_sink_emits_nothing() {
    let (t, _) = fixture(Shim::Local, &[("DISTTAGS_LOG", "none")]).await;
    assert_eq!(t.get(CORRUPT).await.status, 500);
    assert_eq!(t.get(STORED).await.status, 200);
    // Give a would-be event time to be flushed before asserting absence.
    assert!(t.events(1).await.is_empty());
}

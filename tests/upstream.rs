//! The upstream client: the small dist-tags endpoint first, the abbreviated packument only when the
//! upstream lacks it, and answers reused for a bounded time that `Cache-Control` can shorten.

use std::process::Command;

use disttags_tests::target::{Target, raw_request};
use disttags_tests::{Behaviour, Process, TestUpstream, binary, free_port};
use http::Method;

const TAGS: &str = r#"{"latest":"2.0.0","beta":"3.0.0-beta.1"}"#;

fn dist_tags(name: &str) -> String {
    format!("/-/package/{name}/dist-tags")
}

#[tokio::test]
async fn endpoint_first_then_abbreviated_packument_fallback() {
    let with_endpoint = TestUpstream::start(&[("pkg", Behaviour::Tags(TAGS))], true).await;
    let t = Target::in_process(&[], &with_endpoint, &[]).await;
    assert_eq!(
        t.get(&dist_tags("pkg")).await.json(),
        serde_json::json!({"latest":"2.0.0","beta":"3.0.0-beta.1"})
    );
    let seen = with_endpoint.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/-/package/pkg/dist-tags");

    let without = TestUpstream::start(&[("@s/pkg", Behaviour::Tags(TAGS))], false).await;
    let t = Target::in_process(&[], &without, &[]).await;
    let reply = t.get(&dist_tags("@s%2fpkg")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        &reply.body[..],
        TAGS.as_bytes(),
        "stored order kept through the packument"
    );
    let seen = without.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].path, "/-/package/@s%2fpkg/dist-tags");
    assert_eq!(seen[1].path, "/@s%2fpkg");
    assert!(
        seen[1]
            .accept
            .starts_with("application/vnd.npm.install-v1+json"),
        "{:?}",
        seen[1]
    );
    // Missing on an upstream without the endpoint: both asked, then 404.
    assert_eq!(t.get(&dist_tags("nope")).await.status, 404);
}

#[tokio::test]
async fn answers_are_reused_within_the_ttl_and_cache_control() {
    let upstream = TestUpstream::start(
        &[
            ("plain", Behaviour::Tags(TAGS)),
            ("no-cache", Behaviour::TagsCached(TAGS, "no-cache")),
            ("short", Behaviour::TagsCached(TAGS, "public, max-age=0")),
        ],
        true,
    )
    .await;
    let t = Target::in_process(&[], &upstream, &[]).await;
    for _ in 0..3 {
        for name in ["plain", "no-cache", "short"] {
            assert_eq!(t.get(&dist_tags(name)).await.status, 200);
        }
    }
    assert_eq!(upstream.asked("plain"), 1, "reused within the default 30 s");
    assert_eq!(
        upstream.asked("no-cache"),
        3,
        "Cache-Control: no-cache is honoured"
    );
    assert_eq!(upstream.asked("short"), 3, "max-age=0 is honoured");

    let off = Target::in_process(&[], &upstream, &[("DISTTAGS_UPSTREAM_CACHE_MS", "0")]).await;
    let before = upstream.asked("plain");
    for _ in 0..2 {
        assert_eq!(off.get(&dist_tags("plain")).await.status, 200);
    }
    assert_eq!(
        upstream.asked("plain") - before,
        2,
        "DISTTAGS_UPSTREAM_CACHE_MS=0 disables reuse"
    );
}

/// `disttags serve` on `addr` with an empty store, asking `upstream`.
fn serve(addr: &str, upstream: &str) -> Process {
    let mut command = Command::new(binary("disttags"));
    command
        .args(["serve", "--listen", addr, "--store", "memory://"])
        .args(["--upstream", upstream, "--log", "stdout"]);
    Process::spawn(command, true)
}

/// (status, message) of each error event a server logged, waiting up to 5 s for `n` of them.
async fn errors(server: &Process, n: usize) -> Vec<(u64, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let events: Vec<(u64, String)> = server
            .events()
            .iter()
            .map(|e| {
                (
                    e["body"]["status"].as_u64().unwrap_or_default(),
                    e["body"]["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        if events.len() >= n || std::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An upstream that leads back to the server (npm's registry set to this server, which takes npm's
/// registry as its default upstream; or two registries that are each other's upstream) is refused on
/// the way round, not followed until the deadline: the server that finds itself in the request's
/// `Via` answers 508 Loop Detected, and so does each server on the way back, never a 404 or a 504.
#[tokio::test]
async fn an_upstream_that_leads_back_here_is_not_followed() {
    let path = "/-/package/nowhere/dist-tags";
    let statuses =
        |events: &[(u64, String)]| events.iter().map(|(status, _)| *status).collect::<Vec<_>>();

    let own = format!("127.0.0.1:{}", free_port());
    let itself = serve(&own, &format!("http://{own}/"));
    // It says so at start, and goes on: the loop is answered, not followed.
    let warned = || {
        itself
            .stderr
            .lock()
            .map(|lines| {
                lines
                    .iter()
                    .any(|l| l.contains("upstream is this server itself"))
            })
            .unwrap_or(false)
    };
    let reply = raw_request(&own, Method::GET, path, &[]).await;
    assert_eq!(reply.status, 508, "{:?}", reply.body);
    // Once round: the request that came back, then the client's.
    let events = errors(&itself, 2).await;
    assert_eq!(statuses(&events), [508, 508], "{events:?}");
    assert!(
        events[0].1.contains("came round to this server again"),
        "{events:?}"
    );
    assert!(events[1].1.contains("answered 508"), "{events:?}");
    assert!(warned(), "{:?}", itself.stderr);

    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let server_a = serve(&a, &format!("http://{b}/"));
    let server_b = serve(&b, &format!("http://{a}/"));
    let reply = raw_request(&a, Method::GET, path, &[]).await;
    assert_eq!(reply.status, 508, "{:?}", reply.body);
    // A asked B, B asked A, A found itself in the request; each hop asked once, none retried.
    let (at_a, at_b) = (errors(&server_a, 2).await, errors(&server_b, 1).await);
    assert_eq!(statuses(&at_b), [508], "{at_b:?}");
    assert_eq!(statuses(&at_a), [508, 508], "{at_a:?}");

    // Hops before this server are passed on, and only this server's own name counts as a loop.
    let upstream = TestUpstream::start(&[("pkg", Behaviour::Tags(TAGS))], true).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let _server = serve(&addr, &upstream.url);
    let reply = raw_request(
        &addr,
        Method::GET,
        "/-/package/pkg/dist-tags",
        &[("Via", "1.1 proxy.internal, 1.0 disttags-0000000000000000")],
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let via = upstream.seen()[0].via.clone();
    let hops: Vec<&str> = via.split(", ").collect();
    assert_eq!(hops.len(), 3, "{via}");
    assert_eq!(
        hops[..2],
        ["1.1 proxy.internal", "1.0 disttags-0000000000000000"]
    );
    assert!(hops[2].starts_with("1.1 disttags-"), "{via}");
}

//! The upstream client: the small dist-tags endpoint first, the abbreviated packument only when the
//! upstream lacks it, and answers reused for a bounded time that `Cache-Control` can shorten.

use disttags_tests::target::Target;
use disttags_tests::{Behaviour, TestUpstream};

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

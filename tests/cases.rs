//! Each SPEC row as one case, written once; `tests.rs` runs every case through every shim and store.

use disttags_tests::shared_packument;
use disttags_tests::target::Reply;
use http::Method;
use serde_json::{Value, json};

use disttags_core::Identity;

use disttags_tests::matrix::Fixture;

const DIST_TAGS_NAMESPACE: &str = "error:dist-tags:get";

fn path(name: &str) -> String {
    format!("/-/package/{name}/dist-tags")
}

/// The dist-tags of a shared packument, read with serde_json (the reference, not our extractor).
fn reference_tags(file: &str) -> Value {
    let doc: Value = serde_json::from_slice(&shared_packument(file)).expect("packument JSON");
    doc["dist-tags"].clone()
}

fn assert_json_ok(reply: &Reply, expected: &Value) {
    assert_eq!(reply.status, 200, "body: {:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("etag").is_some(), "a 200 carries an ETag");
    assert_eq!(&reply.json(), expected);
}

fn assert_error(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "body: {:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["ok"], json!(false), "body: {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "error message: {body}"
    );
    // The wire shape npm expects: `ok` first.
    assert!(
        reply.body.starts_with(br#"{"ok":false,"error":"#),
        "{:?}",
        reply.body
    );
}

/// Exactly one error event, well formed, for a request that failed with a 5xx.
fn assert_one_error_event(events: &[Value], status: u16) {
    let errors: Vec<&Value> = events
        .iter()
        .filter(|e| e["namespace"] == DIST_TAGS_NAMESPACE)
        .collect();
    assert_eq!(errors.len(), 1, "events: {events:?}");
    let event = errors[0];
    assert_eq!(event["level"], "error");
    assert_eq!(event["command"], "dist-tags:get");
    assert_eq!(event["body"]["status"], status);
    assert!(event["requestId"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(event["timestamp"].as_str().is_some_and(|t| t.contains('T')));
    assert!(
        event.get("user").is_some(),
        "user is present, null when unknown"
    );
}

pub async fn stored(f: Fixture) {
    let (t, upstream) = f.start(&[]).await;
    let reply = t.get(&path("left-pad")).await;
    assert_json_ok(&reply, &reference_tags("left-pad.front.json.gz"));
    assert!(
        upstream.seen().is_empty(),
        "a stored package never asks the upstream"
    );
}

pub async fn scoped_encoded(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    for name in ["@scope%2fpkg", "@scope%2Fpkg", "%40scope%2fpkg"] {
        let reply = t.get(&path(name)).await;
        assert_json_ok(&reply, &json!({"latest": "1.0.0", "next": "2.0.0-rc.1"}));
        // Keys in stored order.
        assert_eq!(
            &reply.body[..],
            br#"{"latest":"1.0.0","next":"2.0.0-rc.1"}"#
        );
    }
}

pub async fn scoped_decoded(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    let reply = t.get(&path("@scope/pkg")).await;
    assert_json_ok(&reply, &json!({"latest": "1.0.0", "next": "2.0.0-rc.1"}));
}

pub async fn legacy_name(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    assert_json_ok(
        &t.get(&path("JSONStream")).await,
        &json!({"latest": "1.3.5"}),
    );
}

pub async fn no_dist_tags(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    let reply = t.get(&path("no-tags")).await;
    assert_json_ok(&reply, &json!({}));
    assert_eq!(&reply.body[..], b"{}", "never an empty body");
}

pub async fn corrupt_packument(f: Fixture) {
    let (t, upstream) = f.start(&[]).await;
    let reply = t.get(&path("corrupt")).await;
    assert_error(&reply, 500);
    assert_one_error_event(&t.events(1).await, 500);
    assert!(
        upstream.seen().is_empty(),
        "a corrupt packument is not a missing one"
    );
}

pub async fn upstream_only(f: Fixture) {
    let (t, upstream) = f.start(&[]).await;
    let reply = t.get(&path("upstream-only")).await;
    assert_json_ok(&reply, &json!({"latest": "2.0.0", "beta": "3.0.0-beta.1"}));
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/-/package/upstream-only/dist-tags");
}

pub async fn upstream_scoped(f: Fixture) {
    let (t, upstream) = f.start(&[]).await;
    for name in ["@up%2fscoped", "@up/scoped"] {
        assert_json_ok(&t.get(&path(name)).await, &json!({"latest": "0.1.0"}));
    }
    for seen in upstream.seen() {
        assert_eq!(
            seen.path, "/-/package/@up%2fscoped/dist-tags",
            "npm's encoding upstream"
        );
    }
}

pub async fn missing_everywhere(f: Fixture) {
    let (t, upstream) = f.start(&[]).await;
    let reply = t.get(&path("nowhere")).await;
    assert_error(&reply, 404);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("nowhere")
    );
    assert!(!upstream.seen().is_empty(), "the upstream was asked");
    assert!(t.events(0).await.is_empty(), "a 404 is not an error event");
}

pub async fn upstream_server_error(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    assert_error(&t.get(&path("upstream-500")).await, 502);
    assert_error(&t.get(&path("upstream-503")).await, 502);
    let events = t.events(2).await;
    assert_eq!(events.len(), 2, "one event per failed request: {events:?}");
}

pub async fn upstream_timeout(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    let reply = t.get(&path("upstream-hang")).await;
    assert_error(&reply, 504);
    assert_one_error_event(&t.events(1).await, 504);
}

pub async fn upstream_garbage(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    assert_error(&t.get(&path("upstream-garbage")).await, 502);
    assert_one_error_event(&t.events(1).await, 502);
}

/// Raw path segments that must be refused with 400 before anything is read.
pub const INVALID_NAMES: &[&str] = &[
    ".hidden",
    "_private",
    "%20leading",
    "trailing%20",
    "..",
    "%2e%2e",
    "%2E%2E",
    "a%5cb",
    "@scope%2f",
    "@scope/",
    "@%2fpkg",
    "%01ctl",
    "ctl%7f",
    "@s%252fp",
    "node_modules",
    "favicon.ico",
    "@a%2fb%2fc",
    "a%2fb",
    "has%20space",
    "%40",
    "caf%C3%A9",
    "%ff",
];

pub async fn invalid_names(f: Fixture) {
    let (t, upstream) = f.start(&[]).await;
    let too_long = "a".repeat(215);
    let longest = "a".repeat(214);
    for name in INVALID_NAMES.iter().copied().chain([too_long.as_str()]) {
        let reply = t.get(&path(name)).await;
        assert_error(&reply, 400);
        assert!(
            upstream.seen().is_empty(),
            "{name}: nothing is asked for an invalid name"
        );
    }
    // The longest valid name is looked up (and is missing everywhere).
    assert_error(&t.get(&path(&longest)).await, 404);
}

pub async fn ping(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    let reply = t.get("/-/ping").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(&reply.body[..], b"{}");
}

pub async fn unknown_path(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    for p in [
        "/",
        "/left-pad",
        "/-/package/left-pad",
        "/-/package/left-pad/dist-tags/latest/x",
        "/-/pingx",
    ] {
        assert_error(&t.get(p).await, 404);
    }
}

pub async fn wrong_method(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    for (method, p) in [
        (Method::POST, path("left-pad")),
        (Method::DELETE, path("left-pad")),
        (Method::PUT, "/-/ping".to_owned()),
    ] {
        let reply = t.send(method, &p, &[]).await;
        assert_error(&reply, 405);
        assert_eq!(reply.header("allow"), Some("GET"));
    }
}

pub async fn etag_and_304(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    let first = t.get(&path("left-pad")).await;
    let etag = first.header("etag").expect("etag").to_owned();
    let again = t
        .send(Method::GET, &path("left-pad"), &[("if-none-match", &etag)])
        .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {weak}");
    assert_eq!(
        t.send(
            Method::GET,
            &path("left-pad"),
            &[("if-none-match", &listed)]
        )
        .await
        .status,
        304
    );
    let other = t
        .send(
            Method::GET,
            &path("left-pad"),
            &[("if-none-match", "\"other\"")],
        )
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body, first.body);
    // Different tags, different ETag.
    let scoped = t.get(&path("@scope%2fpkg")).await;
    assert_ne!(scoped.header("etag"), Some(etag.as_str()));
}

pub async fn no_upstream_configured(f: Fixture) {
    let (t, upstream) = f.start(&[("DISTTAGS_UPSTREAM", "off")]).await;
    assert_error(&t.get(&path("upstream-only")).await, 404);
    assert!(upstream.seen().is_empty());
    assert_json_ok(
        &t.get(&path("left-pad")).await,
        &reference_tags("left-pad.front.json.gz"),
    );
}

pub async fn base_path(f: Fixture) {
    let (t, _) = f.start(&[("DISTTAGS_BASE_PATH", "/registry")]).await;
    assert_json_ok(
        &t.get(&format!("/registry{}", path("left-pad"))).await,
        &reference_tags("left-pad.front.json.gz"),
    );
    assert_json_ok(
        &t.get("/registry/-/package/@scope%2fpkg/dist-tags").await,
        &json!({"latest": "1.0.0", "next": "2.0.0-rc.1"}),
    );
    assert_eq!(t.get("/registry/-/ping").await.status, 200);
    assert_error(&t.get(&path("left-pad")).await, 404);
    assert_error(
        &t.get(&format!("/registryx{}", path("left-pad"))).await,
        404,
    );
}

pub async fn identity_in_log_event(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    let alice = Identity {
        name: "alice@example.com".into(),
        avatar: None,
    };
    assert_error(&t.get_as(&path("corrupt"), &alice).await, 500);
    let events = t.events(1).await;
    assert_one_error_event(&events, 500);
    if t.transport.carries_identity() {
        assert_eq!(events[0]["user"]["name"], "alice@example.com", "{events:?}");
    } else {
        assert_eq!(
            events[0]["user"],
            Value::Null,
            "this platform carries no identity: {events:?}"
        );
    }
}

pub async fn store_failure(f: Fixture) {
    let (t, upstream) = f.start_with(&[], &[]).await;
    let reply = t.get(&path("left-pad")).await;
    assert_error(&reply, 500);
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(
        !body.contains("broken-store-secret-value") && !body.contains("127.0.0.1:9"),
        "{body}"
    );
    assert!(
        upstream.seen().is_empty(),
        "a broken store is not a missing package"
    );
    let events = t.events(1).await;
    assert_one_error_event(&events, 500);
    let event = events[0].to_string();
    assert!(!event.contains("broken-store-secret-value"), "{event}");
}

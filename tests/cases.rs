//! Each SPEC row as one case, written once; `tests.rs` runs every case through every shim and store.

use disttags_tests::target::Reply;
use disttags_tests::{shared_packument, token_hash};
use http::Method;
use serde_json::{Value, json};

use disttags_core::Identity;

use disttags_tests::matrix::Fixture;
use disttags_tests::target::Target;

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
    // Lambda's lines spell levels in upper case, as its log-level filter reads them.
    assert_eq!(
        event["level"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("error")
    );
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

// Tag writes: `PUT` / `DELETE /-/package/{name}/dist-tags/{tag}`, as `npm dist-tag add|rm` sends them.

/// A token listed in `DISTTAGS_WRITE_TOKENS` as `ci`.
const WRITER: &str = "writer-secret-token";
/// A token listed in `DISTTAGS_AUTH_TOKENS` only.
const READER: &str = "reader-secret-token";

/// The cell's target with writes on: a write token named `ci`, and a read-only token (so that
/// reads, too, need a token).
async fn writable(f: Fixture) -> (Target, disttags_tests::TestUpstream) {
    let vars = [
        ("DISTTAGS_WRITES".to_owned(), "on".to_owned()),
        (
            "DISTTAGS_WRITE_TOKENS".to_owned(),
            format!("{} ci", token_hash(WRITER)),
        ),
        ("DISTTAGS_AUTH_TOKENS".to_owned(), token_hash(READER)),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    f.start(&vars).await
}

fn tag_path(name: &str, tag: &str) -> String {
    format!("/-/package/{name}/dist-tags/{tag}")
}

/// `PUT` of `body`, as npm sends it, with `token` if any.
async fn put(t: &Target, name: &str, tag: &str, body: &[u8], token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(auth.as_deref().map(|a| ("authorization", a)));
    t.send_body(Method::PUT, &tag_path(name, tag), &headers, body)
        .await
}

async fn delete(t: &Target, name: &str, tag: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("authorization", a))
        .into_iter()
        .collect();
    t.send(Method::DELETE, &tag_path(name, tag), &headers).await
}

/// `GET …/dist-tags` with the write token (which also reads).
async fn read(t: &Target, name: &str) -> Reply {
    let auth = format!("Bearer {WRITER}");
    t.send(
        Method::GET,
        &path(name),
        &[("authorization", auth.as_str())],
    )
    .await
}

fn version_body(version: &str) -> Vec<u8> {
    serde_json::to_vec(version).expect("JSON string")
}

/// The write events (`dist-tags:put` / `dist-tags:delete`) among `events`.
fn write_events(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["command"] == "dist-tags:put" || e["command"] == "dist-tags:delete")
        .collect()
}

pub async fn tag_add_and_remove(f: Fixture) {
    let (t, upstream) = writable(f).await;
    let file = "left-pad.front.json.gz";
    let doc: Value = serde_json::from_slice(&shared_packument(file)).expect("packument JSON");
    let before = reference_tags(file);
    // A version the package has that no tag points at yet.
    let version = doc["versions"]
        .as_object()
        .and_then(|v| {
            v.keys().find(|k| {
                !before
                    .as_object()
                    .is_some_and(|t| t.values().any(|x| x == *k))
            })
        })
        .expect("a version")
        .clone();
    let mut after = before.clone();
    after["beta"] = json!(version);

    let added = put(
        &t,
        "left-pad",
        "beta",
        &version_body(&version),
        Some(WRITER),
    )
    .await;
    assert_eq!(added.status, 200, "body: {:?}", added.body);
    assert_eq!(
        added.json(),
        json!({"ok": true, "id": "left-pad", "dist-tags": after})
    );
    let shown = read(&t, "left-pad").await;
    assert_json_ok(&shown, &after);
    assert_eq!(shown.header("cache-control"), Some("no-cache"));

    // The tag already points there: 200, nothing written.
    let again = put(
        &t,
        "left-pad",
        "beta",
        &version_body(&version),
        Some(WRITER),
    )
    .await;
    assert_eq!(again.status, 200, "body: {:?}", again.body);
    assert_eq!(again.json()["dist-tags"], after);

    let removed = delete(&t, "left-pad", "beta", Some(WRITER)).await;
    assert_eq!(removed.status, 200, "body: {:?}", removed.body);
    assert_eq!(
        removed.json(),
        json!({"ok": true, "id": "left-pad", "dist-tags": before})
    );
    assert_json_ok(&read(&t, "left-pad").await, &before);
    assert!(
        upstream.seen().is_empty(),
        "a write never asks the upstream"
    );

    // Every change on the record, with the writer's name.
    let events = t.events(3).await;
    let writes = write_events(&events);
    assert_eq!(writes.len(), 3, "{events:?}");
    for (event, namespace, old, new, changed) in [
        (
            writes[0],
            "info:dist-tags:put",
            Value::Null,
            json!(version),
            true,
        ),
        (
            writes[1],
            "info:dist-tags:put",
            json!(version),
            json!(version),
            false,
        ),
        (
            writes[2],
            "info:dist-tags:delete",
            json!(version),
            Value::Null,
            true,
        ),
    ] {
        assert_eq!(event["namespace"], namespace, "{event}");
        assert_eq!(event["user"]["name"], "ci", "{event}");
        assert_eq!(event["body"]["package"], "left-pad");
        assert_eq!(event["body"]["tag"], "beta");
        assert_eq!(event["body"]["old"], old, "{event}");
        assert_eq!(event["body"]["new"], new, "{event}");
        assert_eq!(event["body"]["changed"], changed, "{event}");
        assert!(event["requestId"].as_str().is_some_and(|id| !id.is_empty()));
    }
}

pub async fn tag_scoped(f: Fixture) {
    let (t, _) = writable(f).await;
    for (name, tag) in [("@scope%2fpkg", "beta"), ("@scope/pkg", "gamma")] {
        let reply = put(&t, name, tag, br#""1.0.0""#, Some(WRITER)).await;
        assert_eq!(reply.status, 200, "{name}: {:?}", reply.body);
        assert_eq!(reply.json()["id"], "@scope/pkg");
    }
    let shown = read(&t, "@scope%2fpkg").await;
    assert_eq!(shown.status, 200);
    // New tags after the old ones, in the order they were added.
    assert_eq!(
        &shown.body[..],
        br#"{"latest":"1.0.0","next":"2.0.0-rc.1","beta":"1.0.0","gamma":"1.0.0"}"#
    );
    assert_eq!(
        delete(&t, "@scope%2fpkg", "next", Some(WRITER))
            .await
            .status,
        200
    );
    assert_json_ok(
        &read(&t, "@scope/pkg").await,
        &json!({"latest": "1.0.0", "beta": "1.0.0", "gamma": "1.0.0"}),
    );
}

/// A refused write: method, name, tag, body, token; the status and a word of the error.
type Refusal<'a> = (
    Method,
    &'a str,
    &'a str,
    &'a [u8],
    Option<&'a str>,
    u16,
    &'a str,
);

pub async fn tag_write_refusals(f: Fixture) {
    let (t, upstream) = writable(f).await;
    let v = br#""1.0.0""#.as_slice();
    let huge = format!("\"{}\"", "1".repeat(2000)).into_bytes();
    let cases: Vec<Refusal> = vec![
        (Method::PUT, "@scope%2fpkg", "beta", v, None, 401, "token"),
        (
            Method::PUT,
            "@scope%2fpkg",
            "beta",
            v,
            Some("wrong-token"),
            401,
            "token",
        ),
        (
            Method::PUT,
            "@scope%2fpkg",
            "beta",
            v,
            Some(READER),
            403,
            "DISTTAGS_WRITE_TOKENS",
        ),
        (
            Method::DELETE,
            "@scope%2fpkg",
            "next",
            b"",
            Some(READER),
            403,
            "DISTTAGS_WRITE_TOKENS",
        ),
        (
            Method::PUT,
            "@scope%2fpkg",
            "1.x",
            v,
            Some(WRITER),
            400,
            "SemVer",
        ),
        (
            Method::PUT,
            "@scope%2fpkg",
            "v1",
            v,
            Some(WRITER),
            400,
            "SemVer",
        ),
        (
            Method::PUT,
            "@scope%2fpkg",
            "~1.2",
            v,
            Some(WRITER),
            400,
            "SemVer",
        ),
        (
            Method::PUT,
            "@scope%2fpkg",
            "1.0.0",
            v,
            Some(WRITER),
            400,
            "SemVer",
        ),
        (
            Method::PUT,
            "@scope%2fpkg",
            "beta",
            b"1.0.0",
            Some(WRITER),
            400,
            "JSON string",
        ),
        (
            Method::PUT,
            "@scope%2fpkg",
            "beta",
            b"",
            Some(WRITER),
            400,
            "JSON string",
        ),
        (
            Method::PUT,
            "@scope%2fpkg",
            "beta",
            &huge,
            Some(WRITER),
            413,
            "too large",
        ),
        (
            Method::PUT,
            "@scope%2fpkg",
            "beta",
            br#""9.9.9""#,
            Some(WRITER),
            400,
            "9.9.9",
        ),
        (
            Method::DELETE,
            "@scope%2fpkg",
            "latest",
            b"",
            Some(WRITER),
            400,
            "latest",
        ),
        (
            Method::DELETE,
            "@scope%2fpkg",
            "nope",
            b"",
            Some(WRITER),
            404,
            "nope",
        ),
        (
            Method::PUT,
            "upstream-only",
            "beta",
            v,
            Some(WRITER),
            404,
            "store",
        ),
        (
            Method::PUT,
            "missing-everywhere",
            "beta",
            v,
            Some(WRITER),
            404,
            "store",
        ),
        (Method::PUT, "..%2fx", "beta", v, Some(WRITER), 400, "name"),
        (
            Method::PUT,
            "corrupt",
            "beta",
            v,
            Some(WRITER),
            500,
            "cannot be changed",
        ),
    ];
    // Behind Lambda's and Azure's authorizer the platform decides who writes: a token that passes
    // the read gate is not refused again.
    let guarded = f.shim.defaults().platform_guards_writes;
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|case| !(guarded && case.4 == Some(READER)))
        .collect();
    for (method, name, tag, body, token, status, says) in &cases {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        headers.extend(auth.as_deref().map(|a| ("authorization", a)));
        let reply = t
            .send_body(method.clone(), &tag_path(name, tag), &headers, body)
            .await;
        assert_error(&reply, *status);
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            error.contains(says),
            "{method} {name} {tag}: {error:?} should say {says:?}"
        );
    }
    // Nothing was written, and nothing was asked of the upstream.
    assert_json_ok(
        &read(&t, "@scope%2fpkg").await,
        &json!({"latest": "1.0.0", "next": "2.0.0-rc.1"}),
    );
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
    // Each refused write on the record: a warning, or an error for a 5xx.
    let events = t.events(cases.len()).await;
    let writes = write_events(&events);
    assert_eq!(writes.len(), cases.len(), "{events:?}");
    for (event, (method, _, _, _, _, status, _)) in writes.iter().zip(&cases) {
        let level = if *status >= 500 { "error" } else { "warn" };
        let command = if *method == Method::DELETE {
            "dist-tags:delete"
        } else {
            "dist-tags:put"
        };
        assert_eq!(event["namespace"], format!("{level}:{command}"), "{event}");
        assert_eq!(event["body"]["status"], *status, "{event}");
    }
}

/// Behind a platform authorizer (Lambda, Azure) `DISTTAGS_WRITES=on` needs no write token; the
/// caller is the one the platform names.
pub async fn platform_writes(f: Fixture) {
    assert!(f.shim.defaults().platform_guards_writes, "{:?}", f.shim);
    let carries = matches!(
        f.shim,
        disttags_tests::matrix::Shim::LambdaRest
            | disttags_tests::matrix::Shim::LambdaHttp
            | disttags_tests::matrix::Shim::AzureProxy
            | disttags_tests::matrix::Shim::AzureEnvelope
    );
    let (t, _) = f.start(&[("DISTTAGS_WRITES", "on")]).await;
    let who = Identity {
        name: "release-bot".into(),
        avatar: None,
    };
    let reply = t
        .transport
        .send(disttags_tests::target::Sent {
            method: &Method::PUT,
            path: &tag_path("@scope%2fpkg", "beta"),
            headers: &[("content-type", "application/json")],
            identity: Some(&who),
            request_id: None,
            body: br#""1.0.0""#,
        })
        .await;
    assert_eq!(reply.status, 200, "body: {:?}", reply.body);
    assert_eq!(reply.json()["dist-tags"]["beta"], "1.0.0");
    let events = t.events(1).await;
    let writes = write_events(&events);
    assert_eq!(writes.len(), 1, "{events:?}");
    let user = if carries {
        json!({"name": "release-bot", "avatar": null})
    } else {
        Value::Null
    };
    assert_eq!(writes[0]["user"], user, "{:?}", writes[0]);
}

pub async fn writes_off(f: Fixture) {
    let (t, _) = f.start(&[]).await;
    let reply = put(&t, "left-pad", "beta", br#""1.0.0""#, None).await;
    assert_error(&reply, 403);
    let error = reply.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("DISTTAGS_WRITES"),
        "says how to enable writes: {error}"
    );
    assert_eq!(delete(&t, "left-pad", "latest", None).await.status, 403);
    assert_json_ok(
        &t.get(&path("left-pad")).await,
        &reference_tags("left-pad.front.json.gz"),
    );
}

/// 32 writers of 32 tags on one package at once: every one succeeds and every tag is there.
pub async fn concurrent_tag_writes(f: Fixture) {
    let (t, _) = writable(f).await;
    let tags: Vec<String> = (0..32).map(|i| format!("w{i:02}")).collect();
    let replies = futures_util::future::join_all(
        tags.iter()
            .map(|tag| put(&t, "@scope%2fpkg", tag, br#""1.0.0""#, Some(WRITER))),
    )
    .await;
    for (tag, reply) in tags.iter().zip(&replies) {
        assert_eq!(reply.status, 200, "{tag}: {:?}", reply.body);
    }
    let shown = read(&t, "@scope%2fpkg").await.json();
    let mut expected = json!({"latest": "1.0.0", "next": "2.0.0-rc.1"});
    for tag in &tags {
        expected[tag] = json!("1.0.0");
    }
    assert_eq!(shown, expected, "no write lost");
    let events = t.events(32).await;
    let attempts: u64 = write_events(&events)
        .iter()
        .filter_map(|e| e["body"]["attempts"].as_u64())
        .sum();
    assert!(attempts >= 32, "{attempts}");
}

//! Lambda specifics: identity from each authorizer kind with the invocation's request id, malformed
//! payloads answered with the Runtime API's error (never a panic or a hung invocation), and a
//! configuration error at init.

use std::process::Command;
use std::time::Duration;

use disttags_core::Identity;
use disttags_tests::lambda::{
    EventKind, LAMBDA_ENV, RuntimeApiEmulator, event, proxy_reply, start_function,
};
use disttags_tests::target::{Sent, process_store, standard_store, standard_upstream};
use disttags_tests::{TestUpstream, binary};
use http::Method;
use serde_json::Value;

async fn function(
    kind: EventKind,
) -> (
    disttags_tests::lambda::LambdaTransport,
    tempfile::TempDir,
    TestUpstream,
) {
    let upstream = TestUpstream::start(&standard_upstream(), true).await;
    let (dir, vars) = process_store(&standard_store(), &upstream, &[]).await;
    (start_function(kind, vars).await, dir, upstream)
}

fn corrupt_request(identity: Option<&Identity>) -> Sent<'_> {
    Sent {
        method: &Method::GET,
        path: "/-/package/corrupt/dist-tags",
        headers: &[],
        identity,
        request_id: None,
        body: &[],
    }
}

fn last_event(f: &disttags_tests::lambda::LambdaTransport) -> Value {
    for _ in 0..150 {
        if let Some(e) = f.process.events().last() {
            return e.clone();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no log event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_and_request_id_from_each_authorizer() {
    let alice = Identity {
        name: "alice".into(),
        avatar: Some("https://avatars.example/alice.png".into()),
    };
    // REST API with codebox's custom authorizer: username and avatar in the authorizer context.
    let (f, _dir, _up) = function(EventKind::RestV1).await;
    let reply = proxy_reply(
        f.runtime
            .invoke(
                event(EventKind::RestV1, &corrupt_request(Some(&alice))),
                Some("req-rest-1"),
            )
            .await,
    );
    assert_eq!(reply.status, 500);
    let e = last_event(&f);
    assert_eq!(
        (e["user"]["name"].as_str(), e["user"]["avatar"].as_str()),
        (Some("alice"), alice.avatar.as_deref())
    );
    assert_eq!(e["requestId"], "req-rest-1", "the invocation's request id");

    // HTTP API with a JWT authorizer: the user comes from the token's claims.
    let (f, _dir, _up) = function(EventKind::HttpV2).await;
    let mut jwt: Value =
        serde_json::from_str(&event(EventKind::HttpV2, &corrupt_request(None))).expect("json");
    jwt["requestContext"]["authorizer"] = serde_json::json!({
        "jwt": { "claims": { "sub": "4f7e", "email": "bob@example.com" }, "scopes": ["read"] }
    });
    let reply = proxy_reply(f.runtime.invoke(jwt.to_string(), Some("req-jwt-1")).await);
    assert_eq!(reply.status, 500);
    let e = last_event(&f);
    assert_eq!(e["user"]["name"], "bob@example.com");
    assert_eq!(e["requestId"], "req-jwt-1");

    // HTTP API with a Lambda authorizer: its context under `authorizer.lambda`.
    let reply = proxy_reply(
        f.runtime
            .invoke(
                event(EventKind::HttpV2, &corrupt_request(Some(&alice))),
                Some("req-http-lambda-1"),
            )
            .await,
    );
    assert_eq!(reply.status, 500);
    let e = event_for(&f, "req-http-lambda-1");
    assert_eq!(
        (e["user"]["name"].as_str(), e["user"]["avatar"].as_str()),
        (Some("alice"), alice.avatar.as_deref())
    );

    // A Function URL with AWS_IAM auth: the signing principal; without it, nobody.
    let (f, _dir, _up) = function(EventKind::FunctionUrl).await;
    let mut iam: Value =
        serde_json::from_str(&event(EventKind::FunctionUrl, &corrupt_request(None))).expect("json");
    iam["requestContext"]["authorizer"] = serde_json::json!({ "iam": {
        "accessKey": "AKIAIOSFODNN7EXAMPLE", "accountId": "111122223333",
        "callerId": "AIDACKCEVSQ6C2EXAMPLE", "cognitoIdentity": null, "principalOrgId": null,
        "userArn": "arn:aws:iam::111122223333:user/carol", "userId": "AIDACKCEVSQ6C2EXAMPLE"
    }});
    let reply = proxy_reply(
        f.runtime
            .invoke(iam.to_string(), Some("req-url-iam-1"))
            .await,
    );
    assert_eq!(reply.status, 500);
    let e = event_for(&f, "req-url-iam-1");
    assert_eq!(e["user"]["name"], "arn:aws:iam::111122223333:user/carol");
    let reply = proxy_reply(
        f.runtime
            .invoke(
                event(EventKind::FunctionUrl, &corrupt_request(None)),
                Some("req-url-none-1"),
            )
            .await,
    );
    assert_eq!(reply.status, 500);
    assert_eq!(event_for(&f, "req-url-none-1")["user"], Value::Null);
}

/// The log event of one invocation, waiting up to 3 s for it.
fn event_for(f: &disttags_tests::lambda::LambdaTransport, request_id: &str) -> Value {
    for _ in 0..150 {
        if let Some(e) = f
            .process
            .events()
            .into_iter()
            .find(|e| e["requestId"] == request_id)
        {
            return e;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no log event for {request_id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_documented_sample_event_round_trips() {
    for kind in [
        EventKind::RestV1,
        EventKind::HttpV2,
        EventKind::Alb,
        EventKind::FunctionUrl,
    ] {
        let (f, _dir, _up) = function(kind).await;
        // The sample exactly as the template holds it: `GET /-/ping`.
        let raw = f
            .runtime
            .invoke(kind.template().to_owned(), None)
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: invocation error {e}"));
        let doc: Value = serde_json::from_str(&raw).expect("proxy response JSON");
        assert_eq!(doc["statusCode"], 200, "{kind:?}: {raw}");
        assert_eq!(doc["body"], "{}", "{kind:?}: {raw}");
        assert_eq!(doc["isBase64Encoded"], false, "{kind:?}: {raw}");
        if kind == EventKind::Alb {
            // An ALB also needs the status line's text.
            assert_eq!(doc["statusDescription"], "200 OK", "{raw}");
        }
        let reply = proxy_reply(Ok(raw));
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
}

/// The event of `kind` for a GET whose `rawPath`/`path` is exactly `raw`, as a gateway presents it.
fn event_with_path(kind: EventKind, raw: &str, stage: Option<&str>) -> String {
    let sent = Sent {
        method: &Method::GET,
        path: "/-/ping",
        headers: &[],
        identity: None,
        request_id: None,
        body: &[],
    };
    let mut e: Value = serde_json::from_str(&event(kind, &sent)).expect("json");
    let field = if matches!(kind, EventKind::RestV1 | EventKind::Alb) {
        "path"
    } else {
        "rawPath"
    };
    e[field] = Value::from(raw);
    if let Some(stage) = stage {
        e["requestContext"]["stage"] = Value::from(stage);
    }
    e.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_as_each_gateway_presents_them() {
    let scoped = r#"{"latest":"1.0.0","next":"2.0.0-rc.1"}"#;
    // An HTTP API decodes once: the client's `@s%252fp` arrives as `@s%2fp` and is still refused,
    // while `@scope%2fpkg` arrives as `@scope/pkg` and is served.
    let (f, _dir, _up) = function(EventKind::HttpV2).await;
    for (raw, status) in [
        ("/-/package/@s%2fp/dist-tags", 400),
        ("/-/package/@scope/pkg/dist-tags", 200),
        ("/-/package/caf\u{e9}/dist-tags", 400),
        ("/-/package/a b/dist-tags", 400),
    ] {
        let reply = proxy_reply(
            f.runtime
                .invoke(event_with_path(EventKind::HttpV2, raw, None), None)
                .await,
        );
        assert_eq!(reply.status, status, "{raw}: {:?}", reply.body);
    }
    // An HTTP API on a named stage puts the stage in `rawPath`; routing ignores it.
    let reply = proxy_reply(
        f.runtime
            .invoke(
                event_with_path(
                    EventKind::HttpV2,
                    "/v1/-/package/@scope/pkg/dist-tags",
                    Some("v1"),
                ),
                None,
            )
            .await,
    );
    assert_eq!(&reply.body[..], scoped.as_bytes());

    // A Function URL, a REST API and an ALB keep the client's encoding.
    for kind in [EventKind::FunctionUrl, EventKind::RestV1, EventKind::Alb] {
        let (f, _dir, _up) = function(kind).await;
        for (raw, status) in [
            ("/-/package/@scope%2fpkg/dist-tags", 200),
            ("/-/package/@scope/pkg/dist-tags", 200),
            ("/-/package/@s%252fp/dist-tags", 400),
        ] {
            let reply = proxy_reply(
                f.runtime
                    .invoke(event_with_path(kind, raw, None), None)
                    .await,
            );
            assert_eq!(reply.status, status, "{kind:?} {raw}: {:?}", reply.body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_get_the_runtime_error_and_the_function_keeps_serving() {
    let (f, _dir, _up) = function(EventKind::HttpV2).await;
    let valid = event(
        EventKind::HttpV2,
        &Sent {
            method: &Method::GET,
            path: "/-/package/left-pad/dist-tags",
            headers: &[],
            identity: None,
            request_id: None,
            body: &[],
        },
    );
    let truncated = valid[..valid.len() / 2].to_owned();
    let mut missing: Value = serde_json::from_str(&valid).expect("json");
    missing["requestContext"]
        .as_object_mut()
        .expect("object")
        .remove("http");
    missing.as_object_mut().expect("object").remove("rawPath");
    for (what, payload) in [
        ("truncated JSON", truncated),
        (
            "an unknown event shape",
            r#"{"detail-type":"Scheduled Event","source":"aws.events"}"#.to_owned(),
        ),
        ("not an object", "[1,2,3]".to_owned()),
        ("a required field missing", missing.to_string()),
    ] {
        // The runtime reports the event to the Runtime API as an invocation error: the platform's
        // documented failure, which the gateway answers with a 502.
        let error = f
            .runtime
            .invoke(payload, None)
            .await
            .expect_err("an unreadable event is an invocation error");
        let error: Value =
            serde_json::from_str(&error).unwrap_or_else(|_| panic!("{what}: error body {error}"));
        assert!(
            error["errorType"]
                .as_str()
                .is_some_and(|t| t.contains("DeserializeError")),
            "{what}: {error}"
        );
        let reply = proxy_reply(f.runtime.invoke(valid.clone(), None).await);
        assert_eq!(
            reply.status, 200,
            "{what}: the next valid event is answered"
        );
    }
    // Well-formed events with values no gateway sends, which lambda_http would unwrap into a URL
    // or URI: answered like any request, no panic, and the process keeps serving.
    let odd = |edit: fn(&mut Value)| {
        let mut e: Value = serde_json::from_str(&valid).expect("json");
        edit(&mut e);
        e.to_string()
    };
    for (what, payload) in [
        (
            "a Host that is no authority",
            odd(|e| e["headers"]["host"] = "bad host:99999".into()),
        ),
        (
            "a bad X-Forwarded-Proto",
            odd(|e| e["headers"]["x-forwarded-proto"] = "no scheme".into()),
        ),
        (
            "a domain name that is no authority",
            odd(|e| {
                e["headers"]
                    .as_object_mut()
                    .expect("headers")
                    .remove("host");
                e["requestContext"]["domainName"] = "[::1".into();
            }),
        ),
        (
            "a raw query string with spaces",
            odd(|e| e["rawQueryString"] = "a=b c&d=\"e\"".into()),
        ),
        (
            "a path without its leading slash",
            odd(|e| e["rawPath"] = ":99999/x".into()),
        ),
    ] {
        let reply = proxy_reply(f.runtime.invoke(payload, None).await);
        assert!(matches!(reply.status, 200 | 404), "{what}: {reply:?}");
        let reply = proxy_reply(f.runtime.invoke(valid.clone(), None).await);
        assert_eq!(
            reply.status, 200,
            "{what}: the next valid event is answered"
        );
    }
    let stderr = f.process.stderr.lock().expect("lock").join("\n");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_error_stops_init_with_one_line() {
    let runtime = RuntimeApiEmulator::start().await;
    let output = Command::new(binary("disttags-lambda"))
        .env_clear()
        .envs(LAMBDA_ENV.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", &runtime.addr)
        .output()
        .expect("disttags-lambda");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DISTTAGS_STORE"), "{stderr}");
    // Lambda is told too, through the Runtime API's init error.
    let posted = runtime.init_errors.lock().expect("lock").clone();
    assert_eq!(posted.len(), 1, "{posted:?}");
    let posted: Value = serde_json::from_str(&posted[0]).expect("init error JSON");
    assert_eq!(posted["errorType"], "Runtime.ConfigError");
    assert!(
        posted["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("DISTTAGS_STORE")),
        "{posted}"
    );
}

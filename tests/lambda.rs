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
}

//! No leaks (issue 7): with every kind of credential configured (store keys, a session token, a SAS
//! token, credentials in the upstream URL, the log sink's token, an auth token), drive failures of
//! every kind and collect every response body, every log line and every event the log endpoint
//! received; none may contain a secret.

use disttags_tests::matrix::Shim;
use std::time::Duration;

use disttags_tests::target::{Reply, Target};
use disttags_tests::{Behaviour, LogEndpoint, TestUpstream, token_hash};
use http::Method;

const STORE_SECRET: &str = "leak-test-aws-secret-4f2a9c";
const SESSION_TOKEN: &str = "leak-test-session-token-77d1";
const SAS_SIGNATURE: &str = "leak-test-sas-signature-0b3e";
const UPSTREAM_PASSWORD: &str = "leak-test-upstream-password-5c8d";
const LOG_TOKEN: &str = "leak-test-log-token-91aa";
const AUTH_TOKEN: &str = "leak-test-auth-token-e6f0";
const SECRETS: &[&str] = &[
    STORE_SECRET,
    SESSION_TOKEN,
    SAS_SIGNATURE,
    UPSTREAM_PASSWORD,
    LOG_TOKEN,
    AUTH_TOKEN,
];

/// Every request a failing deployment can get, with and without the token.
async fn drive(t: &Target) -> Vec<Reply> {
    let bearer = format!("Bearer {AUTH_TOKEN}");
    let mut replies = Vec::new();
    for name in [
        "left-pad",
        "@scope%2fpkg",
        "up-500",
        "up-reset",
        "up-garbage",
        "up-hang",
        "missing",
        ".bad",
    ] {
        let path = format!("/-/package/{name}/dist-tags");
        replies.push(
            t.send(Method::GET, &path, &[("authorization", &bearer)])
                .await,
        );
        replies.push(
            t.send(
                Method::GET,
                &path,
                &[("authorization", "Bearer wrong-token")],
            )
            .await,
        );
        replies.push(t.get(&path).await);
    }
    replies.push(t.send(Method::POST, "/-/ping", &[]).await);
    replies
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} leaks a secret ({secret}): {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_or_log_line_carries_a_secret() {
    let upstream = TestUpstream::start(
        &[
            ("up-500", Behaviour::Status(500)),
            ("up-reset", Behaviour::Reset),
            ("up-garbage", Behaviour::Garbage),
            ("up-hang", Behaviour::Hang),
        ],
        true,
    )
    .await;
    let upstream_url = upstream.url.replace(
        "http://",
        &format!("http://registry-user:{UPSTREAM_PASSWORD}@"),
    );
    let log = LogEndpoint::start(200, Duration::ZERO).await;
    let auth = token_hash(AUTH_TOKEN);
    let common = [
        ("DISTTAGS_UPSTREAM", upstream_url.as_str()),
        ("DISTTAGS_UPSTREAM_TIMEOUT_MS", "500"),
        ("DISTTAGS_AUTH_TOKENS", auth.as_str()),
        ("DISTTAGS_STORE_RETRY_MS", "200"),
    ];
    let sas = format!("sv=2022-11-02&ss=b&srt=co&sp=rl&sig={SAS_SIGNATURE}");
    // An S3 store and an Azure store (SAS in every request URL), both unreachable, so that every
    // store error text is produced; logs on stdout for one and to the HTTP endpoint for the other.
    let stores: [Vec<(&str, &str)>; 2] = [
        vec![
            ("DISTTAGS_STORE", "s3://leak-bucket"),
            ("AWS_ENDPOINT", "http://127.0.0.1:9"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDLEAKTEST"),
            ("AWS_SECRET_ACCESS_KEY", STORE_SECRET),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ],
        vec![
            ("DISTTAGS_STORE", "az://leak-container"),
            ("AZURE_STORAGE_ACCOUNT_NAME", "leakacct"),
            ("AZURE_STORAGE_SAS_KEY", sas.as_str()),
            ("AZURE_STORAGE_ENDPOINT", "http://127.0.0.1:9/leakacct"),
            ("AZURE_ALLOW_HTTP", "true"),
            ("DISTTAGS_LOG", log.url.as_str()),
            ("DISTTAGS_LOG_TOKEN", LOG_TOKEN),
        ],
    ];
    let mut checked = 0;
    for store in stores {
        let extra: Vec<(&str, &str)> = common.iter().copied().chain(store).collect();
        for kind in [Shim::Core, Shim::Local, Shim::CloudRun] {
            let (t, _) = crate::fixture_with(kind, &[], &extra).await;
            for reply in drive(&t).await {
                assert!(
                    reply.status >= 400,
                    "{kind:?}: every request here fails: {reply:?}"
                );
                assert_clean(
                    &format!("{kind:?} response"),
                    &String::from_utf8_lossy(&reply.body),
                );
                for (name, value) in &reply.headers {
                    assert_clean(
                        &format!("{kind:?} header {name}"),
                        value.to_str().unwrap_or(""),
                    );
                }
                checked += 1;
            }
            for event in t.events(1).await {
                assert_clean(&format!("{kind:?} log event"), &event.to_string());
                checked += 1;
            }
            if let Some(process) = t.process() {
                for line in process
                    .stdout
                    .lock()
                    .expect("lock")
                    .iter()
                    .chain(process.stderr.lock().expect("lock").iter())
                {
                    assert_clean(&format!("{kind:?} output line"), line);
                    checked += 1;
                }
            }
        }
    }
    let received = log.wait_for(1, Duration::from_secs(5)).await;
    assert!(
        !received.is_empty(),
        "the HTTP sink received the error events"
    );
    for (authorization, body) in &received {
        assert_eq!(
            authorization,
            &format!("Bearer {LOG_TOKEN}"),
            "the sink's own token goes only in its header"
        );
        assert_clean("log endpoint body", body);
        checked += 1;
    }
    println!("checked {checked} bodies, headers and log lines");
}

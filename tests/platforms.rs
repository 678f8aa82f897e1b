//! Platform edges of the shims: malformed invocation envelopes, the Azure host's readiness probe,
//! an empty route prefix, identity headers trusted only where the platform sets them, stalled
//! connections closed only where clients connect directly, and configuration mistakes.

use disttags_tests::matrix::Shim;
use std::process::Command;

use bytes::Bytes;
use disttags_core::Identity;
use disttags_tests::azure_host::{FUNCTION, envelope_reply, principal_headers};
use disttags_tests::target::{iap_headers, raw_request_body, standard_store, standard_upstream};
use disttags_tests::{TestUpstream, binary};
use http::Method;

use crate::fixture;

fn addr_of(t: &disttags_tests::target::Target) -> String {
    let url = t.url().expect("plain HTTP");
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_envelopes_get_a_400_and_the_handler_keeps_serving() {
    let (t, _) = fixture(Shim::AzureProxy, &[]).await;
    let addr = addr_of(&t);
    let cases: [(&str, &[u8]); 5] = [
        (
            "truncated JSON",
            br#"{"Data":{"req":{"Url":"http://localhost/api/-/ping","Meth"#,
        ),
        ("not an object", b"[1,2,3]"),
        ("unknown shape", br#"{"Something":"else"}"#),
        (
            "missing Url",
            br#"{"Data":{"req":{"Method":"GET","Headers":{}}},"Metadata":{}}"#,
        ),
        (
            "relative Url",
            br#"{"Data":{"req":{"Url":"/api/-/ping","Method":"GET"}},"Metadata":{}}"#,
        ),
    ];
    for (what, body) in cases {
        let reply = raw_request_body(
            &addr,
            Method::POST,
            &format!("/{FUNCTION}"),
            &[("content-type", "application/json")],
            Bytes::from_static(body),
        )
        .await;
        assert_eq!(reply.status, 400, "{what}: {:?}", reply.body);
        assert_eq!(reply.json()["ok"], false, "{what}");
        // What the host then tells the client: a failed invocation, never a hang.
        assert_eq!(envelope_reply(&reply).status, 500, "{what}");
    }
    assert_eq!(
        t.get("/-/ping").await.status,
        200,
        "still serving after bad envelopes"
    );
    assert_eq!(t.get("/-/package/left-pad/dist-tags").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_answered_without_touching_a_broken_store() {
    let broken = [
        ("DISTTAGS_STORE", "s3://bucket"),
        ("AWS_ENDPOINT", "http://127.0.0.1:9"),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "AKIDREADY"),
        ("AWS_SECRET_ACCESS_KEY", "ready-secret"),
    ];
    // The emulated host itself waits for `GET /` to answer 200 before it sends work.
    let (t, _) = crate::fixture_with(Shim::AzureProxy, &[], &broken).await;
    assert_eq!(t.get("/-/package/left-pad/dist-tags").await.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_route_prefix_serves_at_the_root() {
    let upstream = TestUpstream::start(&standard_upstream(), true).await;
    let (dir, vars) =
        disttags_tests::target::process_store(&standard_store(), &upstream, &[]).await;
    std::fs::write(
        dir.path().join("host.json"),
        r#"{"version":"2.0","extensions":{"http":{"routePrefix":""}},"customHandler":{"enableProxyingHttpRequest":true}}"#,
    )
    .expect("host.json");
    let port = disttags_tests::free_port();
    let mut command = Command::new(binary("disttags-azure"));
    command
        .env_clear()
        .envs(vars)
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("AzureWebJobsScriptRoot", dir.path());
    let process = disttags_tests::Process::spawn(command, true);
    assert!(
        process.banner.contains(&format!("127.0.0.1:{port}")),
        "{}",
        process.banner
    );
    let addr = format!("127.0.0.1:{port}");
    let root = disttags_tests::target::raw_request(
        &addr,
        Method::GET,
        "/-/package/left-pad/dist-tags",
        &[],
    )
    .await;
    assert_eq!(root.status, 200, "{:?}", root.body);
    let prefixed = disttags_tests::target::raw_request(
        &addr,
        Method::GET,
        "/api/-/package/left-pad/dist-tags",
        &[],
    )
    .await;
    assert_eq!(prefixed.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_count_only_on_their_own_platform() {
    let mallory = Identity {
        name: "mallory@example.com".into(),
        avatar: None,
    };
    let corrupt = "/-/package/corrupt/dist-tags";
    // (target, its settings, headers that a client could forge there)
    for (kind, extra, forged) in [
        (
            Shim::Local,
            &[][..],
            [iap_headers(&mallory), principal_headers(&mallory)].concat(),
        ),
        (Shim::CloudRun, &[][..], principal_headers(&mallory)),
        // Cloud Run taking traffic directly: IAP's header is a client's like any other.
        (
            Shim::CloudRun,
            &[("DISTTAGS_IDENTITY_PROXY", "none")][..],
            iap_headers(&mallory),
        ),
        (Shim::AzureProxy, &[][..], iap_headers(&mallory)),
    ] {
        let (t, _) = fixture(kind, extra).await;
        let headers: Vec<(&str, &str)> = forged
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(t.send(Method::GET, corrupt, &headers).await.status, 500);
        let events = t.events(1).await;
        assert_eq!(events.len(), 1, "{kind:?}: {events:?}");
        assert_eq!(
            events[0]["user"],
            serde_json::Value::Null,
            "{kind:?} trusted a foreign identity header"
        );
    }
}

/// A binary, its arguments, its environment, and the variable its error line must name.
type Mistake<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn configuration_mistakes_stop_each_binary_with_one_line() {
    let cases: &[Mistake] = &[
        (
            "disttags",
            &["serve", "--store", "ftp://bucket"],
            &[],
            "DISTTAGS_STORE",
        ),
        (
            "disttags",
            &["serve"],
            &[("DISTTAGS_UPSTREAM", "not a url")],
            "DISTTAGS_UPSTREAM",
        ),
        (
            "disttags",
            &["serve"],
            &[("DISTTAGS_LOG", "syslog")],
            "DISTTAGS_LOG",
        ),
        (
            "disttags",
            &["serve"],
            &[("DISTTAGS_UPSTREAM_TIMEOUT_MS", "10s")],
            "DISTTAGS_UPSTREAM_TIMEOUT_MS",
        ),
        ("disttags-cloudrun", &[], &[], "DISTTAGS_STORE"),
        (
            "disttags-cloudrun",
            &[],
            &[("DISTTAGS_STORE", "memory://"), ("PORT", "http")],
            "PORT",
        ),
        (
            "disttags-cloudrun",
            &[],
            &[
                ("DISTTAGS_STORE", "memory://"),
                ("DISTTAGS_IDENTITY_PROXY", "cloudflare"),
            ],
            "DISTTAGS_IDENTITY_PROXY",
        ),
        (
            "disttags",
            &["serve"],
            &[("DISTTAGS_HEADER_TIMEOUT_MS", "30s")],
            "DISTTAGS_HEADER_TIMEOUT_MS",
        ),
        (
            "disttags-azure",
            &[],
            &[("DISTTAGS_STORE", "memory://")],
            "FUNCTIONS_CUSTOMHANDLER_PORT",
        ),
        (
            "disttags-azure",
            &[],
            &[("FUNCTIONS_CUSTOMHANDLER_PORT", "1")],
            "DISTTAGS_STORE",
        ),
        // A misspelt variable would be ignored: it stops each binary, naming the likely one.
        (
            "disttags",
            &["serve"],
            &[("DISTTAGS_UPSTREAM_TIMEOUT", "800")],
            "did you mean DISTTAGS_UPSTREAM_TIMEOUT_MS?",
        ),
        (
            "disttags-cloudrun",
            &[],
            &[
                ("DISTTAGS_STORE", "memory://"),
                ("DISTTAGS_STROE", "memory://"),
            ],
            "DISTTAGS_STROE is not a variable disttags reads: did you mean DISTTAGS_STORE?",
        ),
        (
            "disttags-azure",
            &[],
            &[
                ("FUNCTIONS_CUSTOMHANDLER_PORT", "1"),
                ("DISTTAGS_STORE", "memory://"),
                ("DISTTAGS_BASEPATH", "/api"),
            ],
            "did you mean DISTTAGS_BASE_PATH?",
        ),
        (
            "disttags-lambda",
            &[],
            &[("DISTTAGS_STORE", "memory://"), ("DISTTAGS_LOGS", "none")],
            "did you mean DISTTAGS_LOG?",
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for (bin, args, env, names) in cases {
        let output = Command::new(binary(bin))
            .args(*args)
            .env_clear()
            .env("HOME", dir.path())
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{bin} {args:?} {env:?}: {stderr}"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "{bin} {args:?}: one line, no backtrace: {stderr}"
        );
        assert!(
            stderr.contains(names),
            "{bin} {args:?}: the line names {names}: {stderr}"
        );
    }
}

/// `disttags serve` closes a connection that stalls in the middle of a request head once
/// `DISTTAGS_HEADER_TIMEOUT_MS` has passed (here 300 ms); the Cloud Run shim, which only its
/// platform's front end reaches, leaves that to the front end and ignores the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed_where_clients_connect_directly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for (kind, closes, within) in [(Shim::Local, true, 10), (Shim::CloudRun, false, 1)] {
        let (t, _) = fixture(kind, &[("DISTTAGS_HEADER_TIMEOUT_MS", "300")]).await;
        let mut stream = tokio::net::TcpStream::connect(addr_of(&t))
            .await
            .expect("connect");
        stream
            .write_all(b"GET /-/ping HTTP/1.1\r\nHost: t\r\n")
            .await
            .expect("half a head");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(within),
            stream.read_to_end(&mut rest),
        )
        .await;
        assert_eq!(read.is_ok(), closes, "{kind:?}: {read:?}");
    }
}

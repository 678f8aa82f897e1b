//! Bearer-token access on the servers that may face the internet without a gateway (`disttags serve`,
//! `disttags-cloudrun`), proven with the real npm CLI and an `_authToken` in its `.npmrc`.

use disttags_tests::matrix::Shim;
use disttags_tests::token_hash;
use std::process::{Command, Output};

use http::Method;

use crate::fixture;

const TOKEN: &str = "npm_Token-For-Tests-0123456789";

fn npm_dist_tag_ls(registry: &str, npmrc: &str, package: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let userconfig = dir.path().join(".npmrc");
    std::fs::write(&userconfig, npmrc).expect("npmrc");
    Command::new("npm")
        .args(["dist-tag", "ls", package, "--registry", registry])
        .env("npm_config_userconfig", &userconfig)
        .env("npm_config_cache", dir.path().join("cache"))
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fetch_retries", "0")
        .env_remove("npm_config_registry")
        .output()
        .expect("npm")
}

async fn token_required(kind: Shim) {
    let hashes = format!("{} ci-robot", token_hash(TOKEN));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tokens");
    std::fs::write(&file, format!("# accepted tokens\n{hashes}\n")).expect("tokens file");
    let file = file.display().to_string();
    let (t, upstream) = fixture(kind, &[("DISTTAGS_AUTH_TOKENS_FILE", &file)]).await;
    let base = t.url().expect("plain HTTP");
    let registry = format!("{base}/");
    let nerf = registry.trim_start_matches("http:");

    // Without a token: 401 with a Bearer challenge, and nothing is read or asked.
    let reply = t.get("/-/package/left-pad/dist-tags").await;
    assert_eq!(reply.status, 401, "{kind:?}");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"disttags\"")
    );
    assert_eq!(reply.json()["ok"], false);
    let wrong = t
        .send(
            Method::GET,
            "/-/package/upstream-only/dist-tags",
            &[("authorization", "Bearer wrong")],
        )
        .await;
    assert_eq!(wrong.status, 401, "{kind:?}");
    assert!(
        upstream.seen().is_empty(),
        "{kind:?}: an unauthenticated request reaches nothing"
    );
    // The health check stays open.
    assert_eq!(t.get("/-/ping").await.status, 200, "{kind:?}");

    let out = npm_dist_tag_ls(&registry, "", "left-pad");
    assert!(
        !out.status.success(),
        "{kind:?}: npm without a token must fail: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{kind:?}: {out:?}"
    );

    let out = npm_dist_tag_ls(
        &registry,
        &format!("{nerf}:_authToken={TOKEN}\n"),
        "left-pad",
    );
    assert!(
        out.status.success(),
        "{kind:?}: npm with its token: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("latest: "),
        "{kind:?}: {out:?}"
    );

    // A named token identifies the caller in log events.
    let bearer = format!("Bearer {TOKEN}");
    let reply = t
        .send(
            Method::GET,
            "/-/package/corrupt/dist-tags",
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(reply.status, 500);
    let events = t.events(1).await;
    assert_eq!(
        events[0]["user"]["name"], "ci-robot",
        "{kind:?}: {events:?}"
    );
    assert!(
        !events[0].to_string().contains(TOKEN),
        "{kind:?}: the token never reaches a log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disttags_serve_requires_a_token_when_configured() {
    token_required(Shim::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudrun_requires_a_token_when_configured() {
    token_required(Shim::CloudRun).await;
}

#[tokio::test]
async fn a_malformed_token_hash_stops_the_server_at_start() {
    let output = Command::new(disttags_tests::binary("disttags"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        // A raw token where its digest belongs, second in the list.
        .env(
            "DISTTAGS_AUTH_TOKENS",
            format!("{},not-a-hash-but-a-secret", "a".repeat(64)),
        )
        .output()
        .expect("disttags");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(
        stderr.contains("DISTTAGS_AUTH_TOKENS")
            && stderr.contains("line 1, entry 2")
            && stderr.contains("SHA-256"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-a-h"),
        "no part of the value is echoed to the logs: {stderr}"
    );
}

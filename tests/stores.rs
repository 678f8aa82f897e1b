//! Store-only tests that are not conformance cases: a store directory that goes away, and on each
//! cloud emulator (moto, SeaweedFS, Azurite, fake-gcs-server) import, revalidation, a missing bucket,
//! wrong credentials and the emulator stopping mid-run. Cloud stores are configured exactly as a
//! user configures production: `DISTTAGS_STORE` plus the provider's variables, handed to the real
//! `disttags serve` and `disttags import` binaries.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use disttags_core::PREFIX_BYTES;
use disttags_core::{App, PackageName};
use disttags_tests::emulator::{BUCKET, Emulator, Kind};
use disttags_tests::target::{Reply, Target, standard_store, target_vars};
use disttags_tests::{TestUpstream, binary, packument, shared_packument};
use serde_json::json;

use crate::fixture_with;
use disttags_tests::matrix::Shim;

fn path(name: &str) -> String {
    format!("/-/package/{name}/dist-tags")
}

fn assert_status(reply: &Reply, status: u16, store: &str, what: &str) {
    assert_eq!(reply.status, status, "{store}: {what}: {:?}", reply.body);
}

/// An error event for a 500 was written, and nothing secret is in the body or the event.
async fn assert_500_with_event(
    t: &Target,
    reply: &Reply,
    store: &str,
    what: &str,
    secrets: &[&str],
) {
    assert_status(reply, 500, store, what);
    assert_eq!(reply.json()["ok"], json!(false));
    let events = t.events(1).await;
    assert!(
        events
            .iter()
            .any(|e| e["namespace"] == "error:dist-tags:get" && e["body"]["status"] == 500),
        "{store}: {what}: no error event in {events:?}"
    );
    let body = String::from_utf8_lossy(&reply.body);
    for secret in secrets {
        assert!(
            !body.contains(secret),
            "{store}: {what}: the body leaks {secret}: {body}"
        );
        for event in &events {
            assert!(
                !event.to_string().contains(secret),
                "{store}: {what}: an event leaks {secret}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_directory_gone() {
    let (t, upstream) = fixture_with(Shim::Local, &standard_store(), &[]).await;
    assert_status(&t.get(&path("left-pad")).await, 200, "file", "stored");

    // The store's directory is removed or moved away under a running server: 500, for a package
    // it had cached as for one it never read, each with its own error event, never the upstream.
    let data = t
        .dir
        .as_ref()
        .expect("the local target's store")
        .path()
        .join("data");
    std::fs::rename(&data, data.with_extension("moved")).expect("move the store away");
    let asked = upstream.seen().len();
    for name in ["left-pad", "never-read"] {
        let logged = t.events(0).await.len();
        let reply = timed_get(&t, &path(name), "file", "store directory gone").await;
        assert_500_with_event(&t, &reply, "file", "store directory gone", &[]).await;
        assert!(
            t.events(logged + 1).await.len() > logged,
            "{name}: no new error event"
        );
    }
    assert_eq!(
        upstream.seen().len(),
        asked,
        "a missing store directory must not look like a missing package"
    );
}

/// Short store bounds so failures answer quickly; the defaults are documented in the README.
const FAST_FAILURE: &[(&str, &str)] = &[
    ("DISTTAGS_STORE_RETRY_MS", "500"),
    ("DISTTAGS_STORE_CONNECT_TIMEOUT_MS", "500"),
    ("DISTTAGS_STORE_TIMEOUT_MS", "3000"),
];

/// `disttags serve` over the emulator with its READY environment plus `overrides`.
async fn serve(emulator: &Emulator, overrides: &[(&str, &str)]) -> (Target, TestUpstream) {
    let upstream = TestUpstream::start(&disttags_tests::target::standard_upstream(), true).await;
    let mut vars = emulator.vars(&[]);
    vars.push(("PATH".into(), std::env::var("PATH").unwrap_or_default()));
    vars.extend(target_vars(&upstream, FAST_FAILURE));
    vars.extend(
        overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    (Target::local_with(vars), upstream)
}

/// A request that must fail, with how long it took (printed; bounded by a guard, not asserted).
async fn timed_get(t: &Target, p: &str, store: &str, what: &str) -> Reply {
    let started = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(30), t.get(p))
        .await
        .unwrap_or_else(|_| panic!("{store}: {what}: no answer within 30 s"));
    println!(
        "{store}: {what}: {} in {:?}",
        reply.status,
        started.elapsed()
    );
    reply
}

async fn cloud_store(kind: Kind) {
    let started = Instant::now();
    let mut emulator = Emulator::start(kind);
    let store = kind.as_str();
    println!("{store}: started in {:?}", started.elapsed());
    emulator.seed(&standard_store()).await;

    // What every store must do is the conformance matrix's (`conformance::*::*::{store}`); here,
    // what is particular to a cloud store: import, revalidation, a missing bucket, credentials, an outage.
    let (t, _) = serve(&emulator, &[]).await;
    assert_status(&t.get(&path("left-pad")).await, 200, store, "stored");
    import_and_npm(&emulator).await;
    if kind != Kind::Gcs {
        // fake-gcs-server ignores conditional requests; the real GCS honours them.
        revalidation(&emulator).await;
    }

    // A missing bucket or container is a broken deployment: 500, never "ask the upstream".
    let scheme = emulator.env["DISTTAGS_STORE"]
        .split("://")
        .next()
        .unwrap_or_default()
        .to_owned();
    let (missing, upstream) = serve(
        &emulator,
        &[("DISTTAGS_STORE", &format!("{scheme}://no-such-bucket"))],
    )
    .await;
    let reply = timed_get(&missing, &path("left-pad"), store, "missing bucket").await;
    assert_500_with_event(&missing, &reply, store, "missing bucket", &[]).await;
    assert!(
        upstream.seen().is_empty(),
        "{store}: a missing bucket must not look like a missing package"
    );

    // Wrong credentials, where the emulator checks them (moto and fake-gcs-server accept anything).
    let wrong: Option<(&str, &str)> = match kind {
        Kind::SeaweedFs => Some(("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-123")),
        Kind::Azurite => Some(("AZURE_STORAGE_ACCOUNT_KEY", "d3Jvbmcta2V5LXZhbHVlLTEyMw==")),
        Kind::Moto | Kind::Gcs => None,
    };
    if let Some((key, value)) = wrong {
        let (denied, upstream) = serve(&emulator, &[(key, value)]).await;
        let reply = timed_get(&denied, &path("left-pad"), store, "wrong credentials").await;
        assert_500_with_event(&denied, &reply, store, "wrong credentials", &[value]).await;
        assert!(upstream.seen().is_empty());
    }

    // The emulator goes away mid-run: answers stay bounded 500s, with no credential in them.
    let secret_names = [
        "AWS_SECRET_ACCESS_KEY",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
    ];
    let secrets: Vec<String> = secret_names
        .iter()
        .filter_map(|k| emulator.env.get(*k).cloned())
        .collect();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    emulator.stop();
    for name in ["left-pad", "@scope%2fpkg"] {
        let reply = timed_get(&t, &path(name), store, "emulator stopped").await;
        assert_500_with_event(&t, &reply, store, "emulator stopped", &secrets).await;
    }
    println!("{store}: whole suite in {:?}", started.elapsed());
}

/// A warm instance revalidates: an unchanged packument transfers no body, an update is seen at once.
async fn revalidation(emulator: &Emulator) {
    let store = emulator.kind.as_str();
    let client = emulator.client();
    let name = PackageName::parse("@reval/pkg").expect("name");
    let big = shared_packument("react.front.json.gz");
    emulator
        .seed(&[("@reval/pkg/index.json", big.clone())])
        .await;
    let app = App::new(client, None, Arc::new(()));
    let first = app.dist_tags(&name).await.expect("first lookup");
    let cold = app.stats();
    assert!(
        cold.bytes <= PREFIX_BYTES,
        "{store}: a front-layout packument reads a bounded prefix ({} bytes of {})",
        cold.bytes,
        big.len()
    );
    for _ in 0..3 {
        assert_eq!(app.dist_tags(&name).await.expect("repeat"), first);
    }
    let warm = app.stats();
    assert_eq!(
        warm.bytes, cold.bytes,
        "{store}: repeat lookups transfer no body"
    );
    assert_eq!(warm.not_modified, 3, "{store}: each repeat was a 304");
    emulator
        .seed(&[(
            "@reval/pkg/index.json",
            packument("@reval/pkg", Some(r#"{"latest":"9.9.9"}"#)),
        )])
        .await;
    let updated = app.dist_tags(&name).await.expect("after update");
    assert_eq!(
        updated.get("latest"),
        Some("9.9.9"),
        "{store}: the very next lookup sees the update"
    );
}

/// `disttags import` into the cloud store (GCS: seeded through its API), then `npm dist-tag ls` through `disttags serve`.
async fn import_and_npm(emulator: &Emulator) {
    let store = emulator.kind.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("imported.json");
    std::fs::write(
        &file,
        packument(
            "@imported/pkg",
            Some(r#"{"latest":"4.5.6","beta":"5.0.0-beta.2"}"#),
        ),
    )
    .expect("write packument");
    if emulator.kind == Kind::Gcs {
        let doc = std::fs::read(&file).expect("read");
        emulator.seed(&[("@imported/pkg/index.json", doc)]).await;
    } else {
        let output = Command::new(binary("disttags"))
            .arg("import")
            .arg(&file)
            .env_clear()
            .envs(emulator.vars(&[]))
            .output()
            .expect("disttags import");
        assert!(output.status.success(), "{store}: import: {output:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("@imported/pkg/index.json"));
    }
    let (t, _) = serve(emulator, &[]).await;
    let registry = format!("{}/", t.url().expect("HTTP"));
    let userconfig = dir.path().join(".npmrc");
    std::fs::write(&userconfig, "").expect("npmrc");
    let output = Command::new("npm")
        .args(["dist-tag", "ls", "@imported/pkg", "--registry", &registry])
        .env("npm_config_userconfig", &userconfig)
        .env("npm_config_cache", dir.path().join("cache"))
        .env("npm_config_update_notifier", "false")
        .env_remove("npm_config_registry")
        .output()
        .expect("npm");
    assert!(output.status.success(), "{store}: npm: {output:?}");
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, ["beta: 5.0.0-beta.2", "latest: 4.5.6"], "{store}");
    assert_eq!(
        BUCKET,
        emulator.env["DISTTAGS_STORE"]
            .rsplit("://")
            .next()
            .unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_moto() {
    cloud_store(Kind::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_seaweedfs() {
    cloud_store(Kind::SeaweedFs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_azurite() {
    cloud_store(Kind::Azurite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_fake_gcs_server() {
    cloud_store(Kind::Gcs).await;
}

//! Tag writes beyond one request: every byte outside `dist-tags` kept on real packuments, a cold read
//! after a write bounded by the prefix, and two server processes writing one package.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use disttags_core::{App, Config, Defaults, LogEvent, PREFIX_BYTES, Store};
use disttags_tests::matrix::moto_bucket;
use disttags_tests::target::{Reply, Sent, Target, handle, process_store};
use disttags_tests::{TestUpstream, shared_packument};
use http::Method;
use object_store::ObjectStoreExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use serde_json::value::RawValue;

/// Every real packument, in both layouts the shared set has.
const PACKUMENTS: &[&str] = &[
    "aws-sdk.front.json.gz",
    "is-odd.front.json.gz",
    "left-pad.front.json.gz",
    "ms.front.json.gz",
    "react.front.json.gz",
    "react.tail.json.gz",
    "typescript.front.json.gz",
    "typescript.tail.json.gz",
];

/// An app over `store` with anonymous writes, as a development server runs.
fn app(store: Store) -> App {
    let config = Config::from_vars(
        [
            ("DISTTAGS_STORE", "memory://"),
            ("DISTTAGS_UPSTREAM", "off"),
            ("DISTTAGS_WRITES", "anyone"),
        ],
        Defaults::CLOUD,
    )
    .expect("config");
    let events = Arc::new(Mutex::new(Vec::<LogEvent>::new()));
    config
        .app_with(
            store,
            Arc::new(move |e: &LogEvent| events.lock().expect("lock").push(e.clone())),
        )
        .expect("app")
}

async fn send(app: &App, method: &Method, path: &str, body: &[u8]) -> Reply {
    handle(
        app,
        Sent {
            method,
            path,
            headers: &[("content-type", "application/json")],
            identity: None,
            request_id: None,
            body,
        },
    )
    .await
}

/// The top-level members of a document, each value's raw text (serde_json, the reference).
fn members(document: &[u8]) -> HashMap<String, &RawValue> {
    serde_json::from_slice(document).expect("a JSON object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_keeps_every_byte_outside_dist_tags_and_reads_stay_one_prefix() {
    for file in PACKUMENTS {
        let before = shared_packument(file);
        let doc: serde_json::Value = serde_json::from_slice(&before).expect("json");
        let name = doc["name"].as_str().expect("name").to_owned();
        let version = doc["versions"]
            .as_object()
            .and_then(|v| v.keys().next())
            .expect("a version")
            .clone();
        let dir = tempfile::tempdir().expect("tempdir");
        let files = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("file store"));
        let key = Path::from(format!("{name}/index.json"));
        files.put(&key, before.clone().into()).await.expect("seed");

        let writer = app(Store::files(files.clone()));
        let reply = send(
            &writer,
            &Method::PUT,
            &format!("/-/package/{name}/dist-tags/disttags-test"),
            &serde_json::to_vec(&version).expect("json"),
        )
        .await;
        assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);

        let after = files
            .get(&key)
            .await
            .expect("read back")
            .bytes()
            .await
            .expect("bytes");
        let (old, new) = (members(&before), members(&after));
        let mut keys: Vec<&String> = old.keys().collect();
        keys.sort();
        let mut new_keys: Vec<&String> = new.keys().collect();
        new_keys.sort();
        assert_eq!(keys, new_keys, "{file}: the same members");
        for key in keys.iter().filter(|k| k.as_str() != "dist-tags") {
            assert_eq!(
                old[*key].get(),
                new[*key].get(),
                "{file}: member {key} changed"
            );
        }
        let mut tags: serde_json::Value =
            serde_json::from_str(old["dist-tags"].get()).expect("old tags");
        tags["disttags-test"] = serde_json::json!(version);
        let written: serde_json::Value =
            serde_json::from_str(new["dist-tags"].get()).expect("new tags");
        assert_eq!(written, tags, "{file}");
        // The only other bytes that may differ are the member's own: its key and separators.
        let overhead = |doc: &[u8], raw: &RawValue| doc.len() - raw.get().len();
        let (old_rest, new_rest) = (
            overhead(&before, old["dist-tags"]),
            overhead(&after, new["dist-tags"]),
        );
        assert!(
            old_rest.abs_diff(new_rest) <= 16,
            "{file}: {old_rest} vs {new_rest} bytes outside dist-tags"
        );

        // A cold instance reads the new tags in one bounded prefix read.
        let cold = app(Store::files(files.clone()));
        let reply = send(
            &cold,
            &Method::GET,
            &format!("/-/package/{name}/dist-tags"),
            b"",
        )
        .await;
        assert_eq!(reply.status, 200, "{file}");
        assert_eq!(reply.json(), tags, "{file}");
        let stats = cold.stats();
        assert_eq!(stats.requests, 1, "{file}: {stats:?}");
        assert!(stats.bytes <= PREFIX_BYTES, "{file}: {stats:?}");
    }
}

/// Two `disttags serve` processes over one store: writes that alternate between them end with the
/// last one, and writers racing through both leave every tag.
async fn two_processes(vars: Vec<(String, String)>, name: &str) {
    let a = Target::local_with(vars.clone());
    let b = Target::local_with(vars);
    let put = |t: &str, version: &str| {
        (
            format!("/-/package/{name}/dist-tags/{t}"),
            serde_json::to_vec(version).expect("json"),
        )
    };
    let read_path = format!("/-/package/{name}/dist-tags");
    for round in 0..6 {
        let target = if round % 2 == 0 { &a } else { &b };
        let version = if round % 2 == 0 { "1.0.0" } else { "2.0.0" };
        let (path, body) = put("alt", version);
        let reply = target
            .send_body(
                Method::PUT,
                &path,
                &[("content-type", "application/json")],
                &body,
            )
            .await;
        assert_eq!(reply.status, 200, "round {round}: {:?}", reply.body);
        // The other process sees it on its very next read.
        let other = if round % 2 == 0 { &b } else { &a };
        let shown = other.get(&read_path).await;
        assert_eq!(shown.json()["alt"], version, "round {round}");
    }
    let tags: Vec<String> = (0..16).map(|i| format!("r{i:02}")).collect();
    let writes = tags.iter().enumerate().map(|(i, tag)| {
        let target = if i % 2 == 0 { &a } else { &b };
        let path = format!("/-/package/{name}/dist-tags/{tag}");
        async move {
            target
                .send_body(
                    Method::PUT,
                    &path,
                    &[("content-type", "application/json")],
                    br#""1.0.0""#,
                )
                .await
        }
    });
    for reply in futures_util::future::join_all(writes).await {
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    for target in [&a, &b] {
        let shown = target.get(&read_path).await.json();
        assert_eq!(shown["alt"], "2.0.0", "the last write won");
        for tag in &tags {
            assert_eq!(shown[tag], "1.0.0", "{tag} lost: {shown}");
        }
    }
}

fn two_versions() -> Vec<(&'static str, Vec<u8>)> {
    vec![(
        "@scope/pkg/index.json",
        br#"{"_id":"@scope/pkg","name":"@scope/pkg","dist-tags":{"latest":"1.0.0"},"versions":{"1.0.0":{},"2.0.0":{}}}"#.to_vec(),
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_file_store() {
    let upstream = TestUpstream::start(&[], true).await;
    let (_dir, vars) =
        process_store(&two_versions(), &upstream, &[("DISTTAGS_WRITES", "anyone")]).await;
    two_processes(vars, "@scope%2fpkg").await;
}

/// The same on the shared SeaweedFS and Azurite emulators: one package of this test's own in the
/// emulator's bucket, both processes configured as a user configures that store.
async fn two_processes_on(kind: disttags_tests::emulator::Kind) {
    let emulator = disttags_tests::matrix::shared(kind);
    let name = format!("two-processes-{}-{}", kind.as_str(), std::process::id());
    let document = format!(
        r#"{{"_id":"{name}","name":"{name}","dist-tags":{{"latest":"1.0.0"}},"versions":{{"1.0.0":{{}},"2.0.0":{{}}}}}}"#
    );
    emulator
        .client()
        .put(
            &Path::from(format!("{name}/index.json")),
            document.into_bytes().into(),
        )
        .await
        .expect("seed");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vars = vec![
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".to_owned(), dir.path().display().to_string()),
        ("DISTTAGS_UPSTREAM".to_owned(), "off".to_owned()),
        ("DISTTAGS_WRITES".to_owned(), "anyone".to_owned()),
    ];
    vars.extend(emulator.vars(&[]));
    two_processes(vars, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_seaweedfs_bucket() {
    two_processes_on(disttags_tests::emulator::Kind::SeaweedFs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_azurite_container() {
    two_processes_on(disttags_tests::emulator::Kind::Azurite).await;
}

/// moto's conditional write is not atomic under concurrency: here the two processes only
/// alternate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_s3_bucket_alternate() {
    let upstream = TestUpstream::start(&[], true).await;
    let (_dir, vars) =
        moto_bucket(&two_versions(), &upstream, &[("DISTTAGS_WRITES", "anyone")]).await;
    let a = Target::local_with(vars.clone());
    let b = Target::local_with(vars);
    for round in 0..6 {
        let (target, other) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let version = if round % 2 == 0 {
            r#""1.0.0""#
        } else {
            r#""2.0.0""#
        };
        let reply = target
            .send_body(
                Method::PUT,
                "/-/package/@scope%2fpkg/dist-tags/alt",
                &[("content-type", "application/json")],
                version.as_bytes(),
            )
            .await;
        assert_eq!(reply.status, 200, "round {round}: {:?}", reply.body);
        let shown = other.get("/-/package/@scope%2fpkg/dist-tags").await.json();
        assert_eq!(shown["alt"], version.trim_matches('"'), "round {round}");
    }
}

/// What the GCS capture fake holds and saw.
#[derive(Debug, Default)]
struct GcsFakeState {
    generation: u64,
    body: Vec<u8>,
    /// Reads after which another writer is made to change the object, before our write lands.
    races: usize,
    /// Each request: method, and the `x-goog-if-generation-match` it carried.
    seen: Vec<(String, Option<String>)>,
}

/// No GCS emulator that runs here takes `object_store`'s conditional uploads (fake-gcs-server 1.54
/// answers its XML-API `PUT` with 400; gcp-storage-emulator ignores the precondition), so this
/// in-process fake stands in for the one thing the test needs: the generation precondition. It
/// serves the object with `x-goog-generation`, and takes a `PUT` only when its
/// `x-goog-if-generation-match` is the current generation (else 412, as GCS answers). It proves
/// the request the write sends and how a conflict is taken, not GCS itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_writes_carry_the_generation_they_read_against_a_capture_fake() {
    use http_body_util::{BodyExt, Full};
    use std::sync::Mutex as StdMutex;

    let state = Arc::new(StdMutex::new(GcsFakeState {
        generation: 1_700_000_000_000_001,
        body: disttags_tests::packument("left-pad", Some(r#"{"latest":"1.0.0"}"#)),
        races: 1,
        seen: Vec::new(),
    }));
    let shared = state.clone();
    let addr = disttags_tests::serve_fn(move |request: http::Request<hyper::body::Incoming>| {
        let state = shared.clone();
        async move {
            let method = request.method().to_string();
            let precondition = request
                .headers()
                .get("x-goog-if-generation-match")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = request.into_body().collect().await.ok()?.to_bytes();
            let mut s = state.lock().expect("lock");
            s.seen.push((method.clone(), precondition.clone()));
            let (status, payload) = match method.as_str() {
                "GET" => {
                    let payload = s.body.clone();
                    let generation = s.generation;
                    if s.races > 0 {
                        // Another writer lands between this read and our write.
                        s.races -= 1;
                        s.generation += 1;
                    }
                    (200, (payload, generation))
                }
                "PUT" if precondition.as_deref() == Some(&s.generation.to_string()) => {
                    s.body = body.to_vec();
                    s.generation += 1;
                    (200, (Vec::new(), s.generation))
                }
                "PUT" => (
                    412,
                    (
                        b"<Error><Code>ConditionNotMet</Code></Error>".to_vec(),
                        s.generation,
                    ),
                ),
                _ => (404, (Vec::new(), s.generation)),
            };
            let (payload, generation) = payload;
            let response = http::Response::builder()
                .status(status)
                .header("etag", format!("\"e{generation}\""))
                .header("last-modified", "Wed, 01 Jan 2025 00:00:00 GMT")
                .header("x-goog-generation", generation.to_string())
                .body(Full::new(bytes::Bytes::from(payload)).boxed())
                .ok()?;
            Some(response)
        }
    })
    .await;
    let key = serde_json::json!({
        "gcs_base_url": format!("http://{addr}"),
        "disable_oauth": true,
        "client_email": "",
        "private_key": "",
        "private_key_id": "",
    })
    .to_string();
    let store = disttags_core::build_store(
        "gs://bkt",
        &[
            ("google_service_account_key".to_owned(), key),
            ("google_allow_http".to_owned(), "true".to_owned()),
        ],
        &disttags_core::Timeouts::default(),
    )
    .expect("gcs store");
    let app = app(store);
    let reply = send(
        &app,
        &Method::PUT,
        "/-/package/left-pad/dist-tags/beta",
        br#""1.0.0""#,
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let s = state.lock().expect("lock");
    let first = 1_700_000_000_000_001u64;
    // Read at G, conditional write at G refused (another writer made it G+1), read again at G+1,
    // conditional write at G+1 taken.
    assert_eq!(
        s.seen,
        [
            ("GET".to_owned(), None),
            ("PUT".to_owned(), Some(first.to_string())),
            ("GET".to_owned(), None),
            ("PUT".to_owned(), Some((first + 1).to_string())),
        ]
    );
    let doc: serde_json::Value = serde_json::from_slice(&s.body).expect("JSON written");
    assert_eq!(
        doc["dist-tags"],
        serde_json::json!({"latest": "1.0.0", "beta": "1.0.0"})
    );
}

//! `lookups`: what one dist-tags lookup costs the store, for every packument in `../shared/packuments/`,
//! on the file store and on an S3 emulator (moto), each built as `disttags serve` builds it: bytes
//! read, requests, and time, cold (a new process' first lookup) and warm (a repeat lookup: a `stat()`
//! on the file store, a GET with If-None-Match on S3), and warm with a revalidation window
//! (DISTTAGS_REVALIDATE_MS: inside it a repeat lookup asks the store nothing). Prints a table;
//! asserts nothing.
//!
//! `cargo run --release -p disttags-bench --bin lookups [-- --quick]`; scripts/bench-smoke runs `--quick`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use disttags_core::{App, PackageName, ReadPolicy, Store};
use disttags_tests::emulator::{Emulator, Kind};
use disttags_tests::shared_packument;
use disttags_tests::target::seed;
use object_store::local::LocalFileSystem;

fn packuments() -> Vec<String> {
    let dir = std::env::var_os("DISTTAGS_PACKUMENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| disttags_tests::repo_root().join("../shared/packuments"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json.gz"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Median of `runs` lookups, each by a new App (no cache: a cold instance), and the bytes each read.
async fn cold(store: &Store, name: &PackageName, runs: usize) -> (Duration, u64, u64) {
    let mut times = Vec::new();
    let mut stats = Default::default();
    for _ in 0..runs {
        let app = App::new(store.clone(), None, Arc::new(()));
        let started = Instant::now();
        app.dist_tags(name).await.expect("lookup");
        times.push(started.elapsed());
        stats = app.stats();
    }
    times.sort();
    (times[times.len() / 2], stats.bytes, stats.requests)
}

/// Median of `runs` repeat lookups by one warm App with this revalidation window, the bytes all of
/// them read and their store GETs.
async fn warm(
    store: &Store,
    name: &PackageName,
    runs: usize,
    revalidate: Duration,
) -> (Duration, u64, u64) {
    let app = App::new(store.clone(), None, Arc::new(())).with_read_policy(ReadPolicy {
        revalidate,
        ..ReadPolicy::default()
    });
    app.dist_tags(name).await.expect("lookup");
    let before = app.stats();
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        app.dist_tags(name).await.expect("lookup");
        times.push(started.elapsed());
    }
    times.sort();
    let after = app.stats();
    (
        times[times.len() / 2],
        after.bytes - before.bytes,
        after.requests - before.requests,
    )
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 25 };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = Store::files(Arc::new(
        LocalFileSystem::new_with_prefix(dir.path()).expect("file store"),
    ));
    let emulator = Emulator::start(Kind::Moto);
    let s3 = Store::objects(emulator.client());
    println!(
        "{:<8} {:<22} {:>11} | {:>10} {:>8} {:>10} | {:>10} {:>9} {:>10} | {:>10} {:>10}",
        "store",
        "packument",
        "size",
        "cold read",
        "requests",
        "cold time",
        "warm read",
        "warm GETs",
        "warm time",
        "window GETs",
        "window time"
    );
    for (store_name, store) in [("file", &file), ("s3/moto", &s3)] {
        for packument in packuments() {
            let doc = shared_packument(&packument);
            let size = doc.len();
            seed(store.object_store().as_ref(), &[("pkg/index.json", doc)]).await;
            let name = PackageName::parse("pkg").expect("name");
            let (cold_time, cold_bytes, requests) = cold(store, &name, runs).await;
            let (warm_time, warm_bytes, warm_gets) = warm(store, &name, runs, Duration::ZERO).await;
            let (window_time, _, window_gets) =
                warm(store, &name, runs, Duration::from_secs(60)).await;
            println!(
                "{store_name:<8} {:<22} {size:>11} | {cold_bytes:>10} {requests:>8} {:>10.3?} | {warm_bytes:>10} {warm_gets:>9} {:>10.3?} | {window_gets:>11} {:>10.3?}",
                packument.trim_end_matches(".json.gz"),
                cold_time,
                warm_time,
                window_time,
            );
        }
    }
    println!(
        "(medians of {runs}; read = body bytes received from the store; warm = a repeat lookup of an unchanged packument: one stat() on the file store, one GET with If-None-Match on S3; window = the same within DISTTAGS_REVALIDATE_MS=60000: no store request)"
    );
}

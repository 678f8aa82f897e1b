//! The read path under pressure: one deadline per request whatever hangs, one store read per burst
//! of lookups, and the upstream's last good answer when it is down. Hangs are real: a store emulator
//! or an upstream `disttags serve` frozen with SIGSTOP keeps its port and never answers. The counts
//! come from a pass-through layer over real stores (moto, a local directory) and from the test
//! upstream's own request log.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use disttags_core::{App, Config, Defaults, LogEvent, Store};
use disttags_tests::emulator::{Emulator, Kind};
use disttags_tests::faults::{Fault, FaultInjectingStore};
use disttags_tests::matrix::{moto_bucket, shared};
use disttags_tests::target::{Reply, Target, app_get, seed};
use disttags_tests::{Behaviour, TestUpstream, packument, shared_packument};
use futures_util::future::join_all;
use object_store::ObjectStore;

/// The budget the process tests configure: short, so that a hang costs the suite little.
const BUDGET_MS: u64 = 1500;
/// How late past the budget an answer may come: the answer's own work and a loaded test machine.
const SLACK: Duration = Duration::from_millis(1500);

fn budget() -> Duration {
    Duration::from_millis(BUDGET_MS)
}

/// 64 lookups of one name at once over `inner`, on an instance that has not read it yet. Each
/// store read is held back 300 ms before it goes to the store, so that all 64 are certainly in
/// flight before the first read ends (on an idle machine they are anyway; on a loaded one the
/// executor may not poll the last of them before a fast read completes).
async fn burst(inner: Arc<dyn ObjectStore>, upstream: Option<&TestUpstream>, name: &str) -> usize {
    let counted = Arc::new(FaultInjectingStore::new(inner));
    counted.inject(Fault::Stall(Duration::from_millis(300)));
    let config = Config::from_vars(
        [
            ("DISTTAGS_STORE", "memory://"),
            (
                "DISTTAGS_UPSTREAM",
                upstream.map_or("off", |u| u.url.as_str()),
            ),
        ],
        Defaults::CLOUD,
    )
    .expect("config");
    let app = App::new(
        Store::objects(counted.clone()),
        config.build_upstream().expect("upstream"),
        Arc::new(()),
    );
    let path = format!("/-/package/{name}/dist-tags");
    let replies: Vec<Reply> = join_all((0..64).map(|_| app_get(&app, &path))).await;
    let first = &replies[0];
    assert_eq!(first.status, 200, "{name}: {:?}", first.body);
    for reply in &replies {
        assert_eq!(
            (reply.status, &reply.body),
            (first.status, &first.body),
            "{name}"
        );
    }
    assert_eq!(
        app.stats().shared,
        63,
        "{name}: lookups that took another's read"
    );
    counted.reads()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_cold_lookups_of_one_name_cost_one_store_read() {
    let big = shared_packument("react.front.json.gz");
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Arc<dyn ObjectStore> = Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("file store"),
    );
    let upstream_only = TestUpstream::start(
        &[("only-upstream", Behaviour::Tags(r#"{"latest":"2.0.0"}"#))],
        true,
    )
    .await;
    let (_home, vars) = moto_bucket(&[], &upstream_only, &[]).await;
    let bucket = vars
        .iter()
        .find(|(k, _)| k == "DISTTAGS_STORE")
        .map(|(_, v)| v.clone())
        .expect("bucket");
    let moto = shared(Kind::Moto).client_for(&bucket);
    for (store, inner) in [("file", files), ("moto", moto)] {
        seed(inner.as_ref(), &[("react/index.json", big.clone())]).await;
        // The packument's dist-tags sit in its first 64 KiB: one ranged GET answers all 64.
        assert_eq!(burst(inner.clone(), None, "react").await, 1, "{store}");
        // An upstream-only package: one store GET (not found) and one upstream call for all 64.
        let before = upstream_only.asked("only-upstream");
        assert_eq!(
            burst(inner, Some(&upstream_only), "only-upstream").await,
            1,
            "{store}"
        );
        assert_eq!(upstream_only.asked("only-upstream") - before, 1, "{store}");
    }
}

/// Freezes (SIGSTOP) or thaws (SIGCONT) a child process.
fn freeze(pid: u32, frozen: bool) {
    let signal = if frozen { "-STOP" } else { "-CONT" };
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// A GET, and how long it took to be answered.
async fn timed(target: &Target, name: &str) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = target.get(&format!("/-/package/{name}/dist-tags")).await;
    (reply, started.elapsed())
}

fn assert_within_budget(what: &str, took: Duration) {
    assert!(
        took < budget() + SLACK,
        "{what}: answered after {took:?}, the budget is {BUDGET_MS} ms"
    );
}

/// The events with this level whose body has this status.
fn events_with(events: &[serde_json::Value], level: &str, status: u16) -> usize {
    events
        .iter()
        .filter(|e| e["level"] == level && e["body"]["status"] == status)
        .count()
}

/// `disttags serve` over an emulator's bucket with the short budget and no upstream.
fn serve_over(emulator: &Emulator, home: &std::path::Path, extra: &[(&str, &str)]) -> Target {
    let budget = BUDGET_MS.to_string();
    let mut overrides = vec![
        ("DISTTAGS_REQUEST_TIMEOUT_MS", budget.as_str()),
        ("DISTTAGS_UPSTREAM", "off"),
    ];
    overrides.extend_from_slice(extra);
    let mut vars = vec![
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".to_owned(), home.display().to_string()),
    ];
    vars.extend(emulator.vars(&overrides));
    Target::local_with(vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_store_is_answered_500_within_the_budget() {
    let emulator = Emulator::start(Kind::Moto);
    emulator
        .seed(&[
            (
                "warm/index.json",
                packument("warm", Some(r#"{"latest":"1.0.0"}"#)),
            ),
            (
                "cold/index.json",
                packument("cold", Some(r#"{"latest":"1.0.0"}"#)),
            ),
        ])
        .await;
    let home = tempfile::tempdir().expect("tempdir");
    let target = serve_over(&emulator, home.path(), &[]);
    assert_eq!(timed(&target, "warm").await.0.status, 200);
    let before = target.events(0).await;

    emulator.freeze(true);
    // A name read before (revalidated with the store) and one never read.
    for name in ["warm", "cold"] {
        let (reply, took) = timed(&target, name).await;
        assert_eq!(reply.status, 500, "{name}: {:?}", reply.body);
        assert_eq!(
            reply.json()["error"],
            "could not read the package from the registry's store"
        );
        assert_within_budget(name, took);
    }
    let events = target.events(before.len() + 2).await;
    assert_eq!(
        events_with(&events, "error", 500) - events_with(&before, "error", 500),
        2,
        "one error event per hung request: {events:?}"
    );

    emulator.freeze(false);
    let (reply, _) = timed(&target, "cold").await;
    assert_eq!(
        reply.status, 200,
        "after the store recovers: {:?}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_hangs_or_goes_away_is_answered_stale_then_504_or_502() {
    // The upstream is another disttags, as a chain of registries runs: its answers are `no-cache`,
    // so the instance in front asks it on every lookup.
    let behind = TestUpstream::start(&[], true).await;
    let upstream = Target::local(
        &[
            (
                "seen/index.json",
                packument("seen", Some(r#"{"latest":"1.2.3"}"#)),
            ),
            (
                "unseen/index.json",
                packument("unseen", Some(r#"{"latest":"1.0.0"}"#)),
            ),
        ],
        &behind,
        &[("DISTTAGS_UPSTREAM", "off")],
    )
    .await;
    let upstream_url = format!("{}/", upstream.url().expect("upstream URL"));
    let window_ms: u64 = 5000;
    let window = window_ms.to_string();
    let budget = BUDGET_MS.to_string();
    let front = Target::local(
        &[],
        &behind,
        &[
            ("DISTTAGS_UPSTREAM", upstream_url.as_str()),
            ("DISTTAGS_UPSTREAM_TIMEOUT_MS", "10000"),
            ("DISTTAGS_REQUEST_TIMEOUT_MS", budget.as_str()),
            ("DISTTAGS_STALE_IF_ERROR_MS", window.as_str()),
        ],
    )
    .await;
    let (reply, _) = timed(&front, "seen").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["latest"], "1.2.3");
    assert_eq!(reply.header("age"), None);
    let answered = Instant::now();

    // Hung: a package answered before is served stale; one never answered is a 504.
    let pid = upstream.process().expect("upstream process").id();
    freeze(pid, true);
    let before = front.events(0).await;
    let (reply, took) = timed(&front, "seen").await;
    assert_eq!(reply.status, 200, "stale while hung: {:?}", reply.body);
    assert_eq!(reply.json()["latest"], "1.2.3");
    let age: u64 = reply
        .header("age")
        .expect("an Age header")
        .parse()
        .expect("Age in seconds");
    assert!(age <= answered.elapsed().as_secs(), "Age {age}");
    assert_within_budget("stale while hung", took);
    let (reply, took) = timed(&front, "unseen").await;
    assert_eq!(reply.status, 504, "{:?}", reply.body);
    assert_within_budget("hung upstream", took);
    let events = front.events(before.len() + 2).await;
    assert_eq!(
        events_with(&events, "warn", 200) - events_with(&before, "warn", 200),
        1,
        "one warning for the stale answer: {events:?}"
    );
    assert_eq!(
        events_with(&events, "error", 504) - events_with(&before, "error", 504),
        1,
        "one error event for the 504: {events:?}"
    );

    // Gone: stale within the window, 502 after it.
    freeze(pid, false);
    drop(upstream);
    let (reply, _) = timed(&front, "seen").await;
    assert_eq!(reply.status, 200, "stale while down: {:?}", reply.body);
    assert!(reply.header("age").is_some());
    let past = Duration::from_millis(window_ms + 200);
    if let Some(rest) = past.checked_sub(answered.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let (reply, _) = timed(&front, "seen").await;
    assert_eq!(reply.status, 502, "past the window: {:?}", reply.body);
    drop(behind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_revalidation_window_the_store_is_asked_once_per_window() {
    let inner = Arc::new(object_store::memory::InMemory::new());
    seed(
        inner.as_ref(),
        &[(
            "pkg/index.json",
            packument("pkg", Some(r#"{"latest":"1.0.0"}"#)),
        )],
    )
    .await;
    let counted = Arc::new(FaultInjectingStore::new(inner.clone()));
    let events = Arc::new(Mutex::new(Vec::<LogEvent>::new()));
    let sink = events.clone();
    let window = Duration::from_millis(800);
    let app = App::new(
        Store::objects(counted.clone()),
        None,
        Arc::new(move |e: &LogEvent| sink.lock().expect("lock").push(e.clone())),
    )
    .with_read_policy(disttags_core::ReadPolicy {
        revalidate: window,
        ..Default::default()
    });
    let path = "/-/package/pkg/dist-tags";
    assert_eq!(app_get(&app, path).await.status, 200);
    let started = Instant::now();
    // An update inside the window is not seen until the window ends.
    seed(
        inner.as_ref(),
        &[(
            "pkg/index.json",
            packument("pkg", Some(r#"{"latest":"2.0.0"}"#)),
        )],
    )
    .await;
    let mut lookups = 0;
    while started.elapsed() < window / 2 {
        let reply = app_get(&app, path).await;
        assert_eq!(reply.json()["latest"], "1.0.0");
        lookups += 1;
    }
    assert!(lookups > 1);
    assert_eq!(counted.reads(), 1, "{lookups} lookups inside the window");
    tokio::time::sleep(window).await;
    let reply = app_get(&app, path).await;
    assert_eq!(reply.json()["latest"], "2.0.0");
    assert_eq!(counted.reads(), 2);
    assert!(events.lock().expect("lock").is_empty());
}

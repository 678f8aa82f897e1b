//! SIGTERM in the middle of load: every request sent before the listener closed is answered, and the
//! process exits 0 within Cloud Run's 10 s grace period (`disttags serve` and `disttags-cloudrun`).

use disttags_tests::matrix::Shim;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use disttags_tests::load::{Plan, run};

use crate::fixture;

async fn sigterm_mid_load(kind: Shim) {
    let (mut t, _upstream) = fixture(kind, &[]).await;
    let addr = t
        .url()
        .expect("HTTP")
        .trim_start_matches("http://")
        .to_owned();
    let plan = Plan {
        addr,
        paths: vec![
            "/-/package/left-pad/dist-tags".into(),
            "/-/package/@scope%2fpkg/dist-tags".into(),
            "/-/package/upstream-only/dist-tags".into(),
            "/-/package/nowhere/dist-tags".into(),
            "/-/package/.bad/dist-tags".into(),
        ],
        concurrency: 16,
        requests: u64::MAX,
        // One request per connection: a request is sent exactly when its connection was accepted,
        // which makes "sent = answered" checkable. Kept-alive idle connections are closed on
        // shutdown, as HTTP/1.1 allows; clients retry those (npm does).
        keep_alive: false,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(run(plan, stop.clone()));
    tokio::time::sleep(Duration::from_millis(700)).await;

    let process = t.transport.process_mut().expect("a process");
    let signalled = Instant::now();
    let status =
        tokio::task::block_in_place(|| process.signal_and_wait("TERM", Duration::from_secs(10)))
            .and_then(|s| s.code());
    let exited_after = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    let outcome = tokio::time::timeout(Duration::from_secs(20), load)
        .await
        .expect("load ends")
        .expect("join");
    println!(
        "{kind:?}: exit {status:?} after {exited_after:?}; {}",
        outcome.summary()
    );

    assert_eq!(status, Some(0), "{kind:?}: exits 0 within 10 s of SIGTERM");
    assert!(
        outcome.answered() > 100,
        "{kind:?}: the load ran before the signal: {}",
        outcome.summary()
    );
    // Requests started after the signal may be refused or reset while the listener closes; every
    // one started before it must have been answered.
    let dropped_before = outcome
        .dropped_at
        .iter()
        .filter(|at| **at < signalled)
        .count();
    assert_eq!(
        dropped_before,
        0,
        "{kind:?}: a request sent before SIGTERM was dropped: {}",
        outcome.summary()
    );
    assert_eq!(
        outcome.server_errors(),
        0,
        "{kind:?}: {}",
        outcome.summary()
    );
    // Every answered request is on the record: lines still waiting to be written when the
    // signal came were written before the process exited.
    let process = t.transport.process().expect("a process");
    let request_lines = || {
        process
            .json_lines()
            .iter()
            .filter(|l| l["status"].is_number() && l["route"].is_string())
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while request_lines() < outcome.answered() as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        request_lines() >= outcome.answered() as usize,
        "{kind:?}: {} request lines for {}",
        request_lines(),
        outcome.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drains_on_sigterm() {
    sigterm_mid_load(Shim::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudrun_drains_on_sigterm() {
    sigterm_mid_load(Shim::CloudRun).await;
}

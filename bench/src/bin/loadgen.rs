//! `loadgen`: drives a running server with a mixed workload and reports counts, latency and the
//! server's memory. Exits non-zero on an unexpected 5xx, a dropped request, or RSS growth past 20%.
//!
//! `loadgen ADDR PID REQUESTS CONCURRENCY PATH=STATUS...` (used by scripts/load).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use disttags_tests::load::{Plan, rss_kib, run};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: loadgen ADDR PID REQUESTS CONCURRENCY PATH=STATUS...");
        return ExitCode::from(2);
    }
    let (Ok(pid), Ok(requests), Ok(concurrency)) = (
        args[1].parse::<u32>(),
        args[2].parse::<u64>(),
        args[3].parse::<usize>(),
    ) else {
        eprintln!("loadgen: PID, REQUESTS and CONCURRENCY must be numbers");
        return ExitCode::from(2);
    };
    let mut paths = Vec::new();
    let mut expected = std::collections::BTreeSet::new();
    for spec in &args[4..] {
        let Some((path, status)) = spec.rsplit_once('=') else {
            eprintln!("loadgen: {spec}: expected PATH=STATUS");
            return ExitCode::from(2);
        };
        paths.push(path.to_owned());
        expected.insert(status.parse::<u16>().unwrap_or(0));
    }
    let plan = |requests| Plan {
        addr: args[0].clone(),
        paths: paths.clone(),
        concurrency,
        requests,
        keep_alive: true,
    };
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("loadgen: cannot start a runtime");
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let warmup = run(plan(requests / 10), Arc::new(AtomicBool::new(false))).await;
        let rss_warm = rss_kib(pid).unwrap_or(0);
        println!("warm-up:  {}", warmup.summary());
        let outcome = run(plan(requests), Arc::new(AtomicBool::new(false))).await;
        let rss_end = rss_kib(pid).unwrap_or(0);
        println!("load:     {}", outcome.summary());
        println!("rss:      after warm-up {rss_warm} KiB, at the end {rss_end} KiB");
        let unexpected: u64 = outcome
            .statuses
            .iter()
            .filter(|(s, _)| !expected.contains(s))
            .map(|(_, n)| n)
            .sum();
        let growth = rss_end as f64 / rss_warm.max(1) as f64;
        println!(
            "verdict:  unexpected statuses {unexpected}, 5xx {}, dropped {}, refused {}, rss growth {:.1}%",
            outcome.server_errors(),
            outcome.dropped,
            outcome.refused,
            (growth - 1.0) * 100.0
        );
        let ok = unexpected == 0
            && outcome.server_errors() == 0
            && outcome.dropped == 0
            && outcome.refused == 0
            && outcome.answered() == requests
            && growth <= 1.2;
        if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    })
}

//! A load generator that accounts for every request: answered (by status), refused before it was
//! sent (connection refused), or dropped after the server accepted the connection.
//!
//! Used by the shutdown tests and by `scripts/load`. Figures it prints are measurements; tests assert
//! only counts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What to send.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `host:port`.
    pub addr: String,
    /// Paths, sent in turn.
    pub paths: Vec<String>,
    /// Concurrent connections.
    pub concurrency: usize,
    /// Requests in all; `u64::MAX` to run until stopped.
    pub requests: u64,
    /// Reuse connections (as npm does), or open one per request.
    pub keep_alive: bool,
}

/// What happened to every request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests never sent: the connection was refused (the server had stopped listening).
    pub refused: u64,
    /// Requests sent on an accepted connection that got no answer.
    pub dropped: u64,
    /// When each dropped request was started.
    pub dropped_at: Vec<Instant>,
    /// Latency of answered requests, microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Outcome {
    /// Requests that got an answer.
    pub fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Requests sent (answered or dropped; refused ones were never sent).
    pub fn sent(&self) -> u64 {
        self.answered() + self.dropped
    }

    /// Answers with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s >= 500)
            .map(|(_, n)| n)
            .sum()
    }

    /// A latency percentile, in microseconds.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        self.latencies_us[rank.min(self.latencies_us.len() - 1)]
    }

    /// One line of figures.
    pub fn summary(&self) -> String {
        let rate = self.answered() as f64 / self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "sent {} answered {} refused {} dropped {} statuses {:?} | {:.0} req/s p50 {:.2} ms p99 {:.2} ms",
            self.sent(),
            self.answered(),
            self.refused,
            self.dropped,
            self.statuses,
            rate,
            self.percentile(50.0) as f64 / 1000.0,
            self.percentile(99.0) as f64 / 1000.0,
        )
    }
}

enum Attempt {
    Answered(u16, Duration),
    Refused,
    /// Started at this instant, got no answer.
    Dropped(Instant),
}

/// Runs `plan` until its requests are done or `stop` is set.
pub async fn run(plan: Plan, stop: Arc<AtomicBool>) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let plan = Arc::new(plan);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..plan.concurrency {
        let (plan, next, stop) = (plan.clone(), next.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut connection: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> =
                None;
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.requests {
                    break;
                }
                let path = &plan.paths[(i % plan.paths.len() as u64) as usize];
                let attempt = send(&plan, path, &mut connection).await;
                match attempt {
                    Attempt::Answered(status, latency) => {
                        *outcome.statuses.entry(status).or_default() += 1;
                        outcome.latencies_us.push(latency.as_micros() as u64);
                    }
                    Attempt::Refused => {
                        outcome.refused += 1;
                        // The server is gone: stop this worker instead of spinning on refusals.
                        break;
                    }
                    Attempt::Dropped(at) => {
                        outcome.dropped += 1;
                        outcome.dropped_at.push(at);
                    }
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for worker in workers {
        if let Ok(outcome) = worker.await {
            for (status, n) in outcome.statuses {
                *total.statuses.entry(status).or_default() += n;
            }
            total.refused += outcome.refused;
            total.dropped += outcome.dropped;
            total.dropped_at.extend(outcome.dropped_at);
            total.latencies_us.extend(outcome.latencies_us);
        }
    }
    total.latencies_us.sort_unstable();
    total.elapsed = started.elapsed();
    total
}

async fn send(
    plan: &Plan,
    path: &str,
    connection: &mut Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
) -> Attempt {
    let started = Instant::now();
    // A kept-alive connection the server closed while idle carried nothing: open a fresh one.
    if connection.as_ref().is_some_and(|c| c.is_closed()) {
        *connection = None;
    }
    let sender = match connection {
        Some(sender) => sender,
        None => {
            let Ok(stream) = TcpStream::connect(&plan.addr).await else {
                return Attempt::Refused;
            };
            let _ = stream.set_nodelay(true);
            let Ok((sender, conn)) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
            else {
                return Attempt::Dropped(started);
            };
            tokio::spawn(conn);
            connection.insert(sender)
        }
    };
    if sender.ready().await.is_err() {
        *connection = None;
        return Attempt::Dropped(started);
    }
    let mut request = Request::get(path).header("host", plan.addr.as_str());
    if !plan.keep_alive {
        request = request.header("connection", "close");
    }
    let Ok(request) = request.body(Empty::new()) else {
        return Attempt::Dropped(started);
    };
    let response = match sender.send_request(request).await {
        Ok(r) => r,
        Err(_) => {
            *connection = None;
            return Attempt::Dropped(started);
        }
    };
    let status = response.status().as_u16();
    let complete = response.into_body().collect().await.is_ok();
    if !plan.keep_alive {
        *connection = None;
    }
    if complete {
        Attempt::Answered(status, started.elapsed())
    } else {
        *connection = None;
        Attempt::Dropped(started)
    }
}

/// Resident set size of a process, in KiB, from `/proc`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

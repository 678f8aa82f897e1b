//! What operators see: each shim's real binary writes one request line per request in its
//! platform's log format (request id, trace, route, package, status, latency), keeps the
//! codebox-shaped events in that stream, echoes the request id in `x-request-id`, and reports
//! metrics (Prometheus text on `/-/metrics`; CloudWatch Embedded Metric Format lines on Lambda).

use std::time::{Duration, Instant};

use disttags_tests::matrix::{Fixture, Shim, StoreKind, Via};
use disttags_tests::target::{Reply, Sent, Target};
use http::Method;
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const CLOUD_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1";
const STORED: &str = "/-/package/left-pad/dist-tags";
const CORRUPT: &str = "/-/package/corrupt/dist-tags";

async fn binary(shim: Shim, extra: &[(&str, &str)]) -> Target {
    Fixture::new(Via::Binary, shim, StoreKind::File)
        .start(extra)
        .await
        .0
}

/// A GET with the platform's trace header, the platform's request id where the transport can set
/// one, and a client `x-request-id` where it cannot.
async fn traced_get(t: &Target, shim: Shim, path: &str, id: &str) -> Reply {
    let trace = if shim == Shim::CloudRun {
        ("x-cloud-trace-context", CLOUD_TRACE)
    } else {
        ("traceparent", TRACEPARENT)
    };
    let headers = [trace, ("x-request-id", id)];
    t.transport
        .send(Sent {
            method: &Method::GET,
            path,
            headers: &headers,
            identity: None,
            request_id: Some(id),
            body: &[],
        })
        .await
}

/// The JSON lines the target's process wrote so far, once at least `n` of them satisfy `pick`.
async fn lines_where(t: &Target, n: usize, pick: impl Fn(&Value) -> bool) -> Vec<Value> {
    let process = t.process().expect("a process");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines: Vec<Value> = process.json_lines().into_iter().filter(&pick).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn message(line: &Value) -> &str {
    line["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shim_writes_one_request_line_in_its_platforms_format() {
    for shim in [
        Shim::Local,
        Shim::CloudRun,
        Shim::AzureProxy,
        Shim::LambdaUrl,
    ] {
        let project: &[(&str, &str)] = if shim == Shim::CloudRun {
            &[("GOOGLE_CLOUD_PROJECT", "proj-1")]
        } else {
            &[]
        };
        let t = binary(shim, project).await;
        let reply = traced_get(&t, shim, STORED, "req-obs-1").await;
        assert_eq!(reply.status, 200, "{shim:?}");
        let id = reply
            .header("x-request-id")
            .unwrap_or_else(|| panic!("{shim:?}: no x-request-id"))
            .to_owned();
        match shim {
            // The platform's id: the invocation's.
            Shim::AzureProxy | Shim::LambdaUrl => assert_eq!(id, "req-obs-1", "{shim:?}"),
            // Cloud Run's request id is its trace id.
            Shim::CloudRun => assert_eq!(id, TRACE),
            // The client's own id, when it is a sane one.
            _ => assert_eq!(id, "req-obs-1"),
        }
        // The path as it arrived (Azure's carries the host's `/api` prefix).
        let lines = lines_where(&t, 1, |l| {
            message(l).starts_with("GET /") && message(l).ends_with(&format!("{STORED} 200"))
        })
        .await;
        assert_eq!(lines.len(), 1, "{shim:?}: one request line: {lines:?}");
        let line = &lines[0];
        assert_eq!(line["status"], 200, "{shim:?}: {line}");
        assert!(line["latency_ms"].is_number(), "{shim:?}: {line}");
        assert_eq!(line["route"], "dist-tags", "{shim:?}: {line}");
        assert_eq!(line["package"], "left-pad", "{shim:?}: {line}");
        assert_eq!(line["method"], "GET", "{shim:?}: {line}");
        assert_eq!(line["requestId"], id.as_str(), "{shim:?}: {line}");
        // How the store answered: read, or found unchanged since a read before.
        assert!(
            ["read", "unchanged", "fresh"].contains(&line["store"].as_str().unwrap_or_default()),
            "{shim:?}: {line}"
        );
        assert!(line.get("upstream").is_none(), "{shim:?}: {line}");
        // The line as written (for the README's examples: `--nocapture` shows it).
        let process = t.process().expect("a process");
        let written = process.stdout.lock().expect("lock").clone();
        for raw in written
            .iter()
            .filter(|l| l.contains(&format!("{STORED} 200")))
        {
            println!("{shim:?}: {raw}");
        }
        match shim {
            Shim::CloudRun => {
                assert_eq!(line["severity"], "INFO", "{line}");
                assert!(line["time"].is_string(), "{line}");
                assert_eq!(
                    line["logging.googleapis.com/trace"],
                    format!("projects/proj-1/traces/{TRACE}"),
                    "{line}"
                );
                assert_eq!(
                    line["logging.googleapis.com/spanId"], "0000000000000001",
                    "{line}"
                );
            }
            Shim::LambdaUrl => {
                assert_eq!(line["level"], "INFO", "{line}");
                assert!(line["timestamp"].is_string(), "{line}");
                assert_eq!(line["trace_id"], TRACE, "{line}");
            }
            _ => {
                assert_eq!(line["level"], "info", "{shim:?}: {line}");
                assert!(line["timestamp"].is_string(), "{shim:?}: {line}");
                assert_eq!(line["trace_id"], TRACE, "{shim:?}: {line}");
            }
        }

        // A failure: its codebox-shaped event is a line of the same stream, with the same id.
        let reply = traced_get(&t, shim, CORRUPT, "req-obs-2").await;
        assert_eq!(reply.status, 500, "{shim:?}");
        let failed_id = reply.header("x-request-id").unwrap_or_default().to_owned();
        let events = t.events(1).await;
        let event = events
            .iter()
            .find(|e| e["namespace"] == "error:dist-tags:get")
            .unwrap_or_else(|| panic!("{shim:?}: no error event in {events:?}"));
        assert_eq!(event["requestId"], failed_id.as_str(), "{shim:?}: {event}");
        assert!(event["body"]["message"].is_string(), "{shim:?}: {event}");
        match shim {
            Shim::CloudRun => {
                assert_eq!(event["severity"], "ERROR", "{event}");
                assert!(event["logging.googleapis.com/trace"].is_string(), "{event}");
            }
            Shim::LambdaUrl => assert_eq!(event["level"], "ERROR", "{event}"),
            Shim::AzureProxy => {
                // Errors go to standard error, where the Functions host reads them as errors.
                let stderr = t
                    .process()
                    .expect("process")
                    .stderr
                    .lock()
                    .expect("lock")
                    .clone();
                assert!(
                    stderr.iter().any(|l| l.contains("error:dist-tags:get")),
                    "{stderr:?}"
                );
            }
            _ => assert_eq!(event["level"], "error", "{event}"),
        }
        let requests = lines_where(&t, 2, |l| {
            message(l).starts_with("GET /") && message(l).contains("/-/package/")
        })
        .await;
        assert_eq!(
            requests.len(),
            2,
            "{shim:?}: one line per request: {requests:?}"
        );
    }
}

/// `name{labels} value` lines of Prometheus text: the value of the series whose labels include
/// every one of `labels`, summed.
fn series(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && labels.iter().all(|x| series.contains(x))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_status_on_every_http_shim() {
    for shim in [Shim::Local, Shim::CloudRun, Shim::AzureProxy] {
        let t = binary(shim, &[]).await;
        for _ in 0..3 {
            assert_eq!(t.get(STORED).await.status, 200);
        }
        for _ in 0..2 {
            assert_eq!(
                t.get("/-/package/nowhere-at-all/dist-tags").await.status,
                404
            );
        }
        assert_eq!(t.get("/-/package/..%2fx/dist-tags").await.status, 400);
        let reply = t.get("/-/metrics").await;
        assert_eq!(reply.status, 200, "{shim:?}");
        assert!(
            reply
                .header("content-type")
                .is_some_and(|c| c.starts_with("text/plain")),
            "{shim:?}"
        );
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        let requests = |status: &str| {
            series(
                &text,
                "disttags_requests_total",
                &["route=\"dist-tags\"", &format!("status=\"{status}\"")],
            )
        };
        assert_eq!(requests("200"), 3.0, "{shim:?}:\n{text}");
        assert_eq!(requests("404"), 2.0, "{shim:?}:\n{text}");
        assert_eq!(requests("400"), 1.0, "{shim:?}:\n{text}");
        assert!(text.contains("# HELP disttags_requests_total"), "{text}");
        assert!(
            series(
                &text,
                "disttags_request_duration_seconds_count",
                &["route=\"dist-tags\""]
            ) >= 6.0,
            "{text}"
        );
        // Three hits of a stored package: one read, then two confirmed unchanged.
        assert!(
            series(&text, "disttags_cache_misses_total", &["cache=\"store\""]) >= 1.0,
            "{text}"
        );
        assert!(
            !text.contains("left-pad"),
            "no package name in a label:\n{text}"
        );
    }
    // Off by a setting; guarded like every route but /-/ping.
    let off = binary(Shim::Local, &[("DISTTAGS_METRICS", "off")]).await;
    assert_eq!(off.get("/-/metrics").await.status, 404);
    let digest = disttags_tests::token_hash("secret-token");
    let guarded = binary(Shim::Local, &[("DISTTAGS_AUTH_TOKENS", digest.as_str())]).await;
    assert_eq!(guarded.get("/-/metrics").await.status, 401);
    let reply = guarded
        .send(
            Method::GET,
            "/-/metrics",
            &[("authorization", "Bearer secret-token")],
        )
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_writes_embedded_metric_format_lines_each_invocation() {
    let t = binary(Shim::LambdaUrl, &[]).await;
    for i in 0..3 {
        let reply = traced_get(&t, Shim::LambdaUrl, STORED, &format!("req-emf-{i}")).await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(
        traced_get(&t, Shim::LambdaUrl, CORRUPT, "req-emf-x")
            .await
            .status,
        500
    );
    // One document per label set per invocation; at least one per invocation.
    let docs = lines_where(&t, 4, |l| l.get("_aws").is_some()).await;
    let total = |name: &str, dimension: Option<(&str, &str)>| -> f64 {
        let mut sum = 0.0;
        for doc in &docs {
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "disttags", "{doc}");
            assert!(doc["_aws"]["Timestamp"].is_u64(), "{doc}");
            let declared = directive["Metrics"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["Name"] == name));
            if !declared {
                continue;
            }
            // Every dimension the directive names is a member of the document.
            for set in directive["Dimensions"].as_array().into_iter().flatten() {
                for key in set.as_array().into_iter().flatten() {
                    let key = key.as_str().unwrap_or_default();
                    assert!(doc.get(key).is_some(), "dimension {key} missing in {doc}");
                }
            }
            if dimension.is_some_and(|(k, v)| doc[k] != v) {
                continue;
            }
            sum += match &doc[name] {
                Value::Array(values) => values.len() as f64,
                v => v.as_f64().unwrap_or(0.0),
            };
        }
        sum
    };
    assert_eq!(
        total("disttags_requests_total", Some(("status", "200"))),
        3.0
    );
    assert_eq!(
        total("disttags_requests_total", Some(("status", "500"))),
        1.0
    );
    assert_eq!(total("disttags_cold_starts_total", None), 1.0);
    assert_eq!(total("disttags_request_duration_seconds", None), 4.0);
    assert!(
        docs.iter().any(|d| d["requestId"] == "req-emf-0"),
        "{docs:?}"
    );
}

/// `disttags serve` writes request lines in batches (Cloud Run each at once): a burst of
/// concurrent requests must still give one whole line each, none lost, none torn. (That lines
/// still waiting at SIGTERM are written is `tests/shutdown.rs`'s to show: it stops the process
/// under load.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_gives_one_whole_line_per_request() {
    use futures_util::StreamExt;
    const BURST: usize = 2_000;
    for shim in [Shim::Local, Shim::CloudRun] {
        let t = binary(shim, &[]).await;
        let burst = |n: usize| {
            let t = &t;
            futures_util::stream::iter(0..n)
                .map(move |_| t.get(STORED))
                .buffer_unordered(32)
                .filter(|r| std::future::ready(r.status == 200))
                .count()
        };
        assert_eq!(burst(BURST).await, BURST, "{shim:?}");
        let is_request = |l: &Value| message(l).ends_with(&format!("{STORED} 200"));
        let lines = lines_where(&t, BURST, is_request).await;
        assert_eq!(lines.len(), BURST, "{shim:?}: one line per request");
        let ids: std::collections::HashSet<&str> = lines
            .iter()
            .filter_map(|l| l["requestId"].as_str())
            .collect();
        assert_eq!(ids.len(), BURST, "{shim:?}: every line its own request id");
        // Every line the process wrote is whole JSON: no two lines were written into each other.
        let process = t.process().expect("a process");
        let torn: Vec<String> = process
            .stdout
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| serde_json::from_str::<Value>(l).is_err())
            .cloned()
            .collect();
        assert!(
            torn.is_empty(),
            "{shim:?}: lines that are not JSON: {torn:?}"
        );
    }
}

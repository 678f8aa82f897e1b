//! What the operators of each HTTP shim (`disttags serve`, Cloud Run, Azure Functions) get: their
//! platform's log lines (see [`disttags_core::telemetry`]) and Prometheus text on `GET /-/metrics`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use disttags_core::telemetry::{self, LogFormat};
use disttags_core::{App, Env};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: a cached lookup takes microseconds, a cold S3 read milliseconds,
/// a request that runs into its budget seconds.
const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How often the exporter folds recorded histogram values into its buckets.
const UPKEEP: Duration = Duration::from_secs(5);

/// Writes this process' log lines in `format` and, unless `DISTTAGS_METRICS=off`, records metrics
/// and serves them on `GET /-/metrics` of `app`. Call inside the Tokio runtime.
pub fn observe(app: App, env: &Env, format: LogFormat) -> Result<App, String> {
    telemetry::install(format, env).map_err(|e| e.to_string())?;
    if !telemetry::metrics_on(env).map_err(|e| e.to_string())? {
        return Ok(app);
    }
    let handle = prometheus()?;
    Ok(app.with_metrics(Arc::new(move || handle.render())))
}

/// The process' one Prometheus recorder, installed on first use (a process has one recorder).
fn prometheus() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .and_then(|b| b.install_recorder())
        .map_err(|e| format!("cannot start the metrics recorder: {e}"))?;
    telemetry::describe_metrics();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(HANDLE.get_or_init(|| handle).clone())
}

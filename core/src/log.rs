//! Log events and the sinks they go to: standard output as JSON lines, an HTTP endpoint, or nowhere.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

/// Who made a request, as the platform reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// User name (codebox's authorizer `username`, an e-mail, a principal name).
    pub name: String,
    /// Avatar URL, when the platform has one.
    pub avatar: Option<String>,
}

/// Severity of a log event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Something failed and the client got a 5xx.
    Error,
    /// Something odd that did not fail the request.
    Warn,
    /// Routine information.
    Info,
}

/// One log event, serialized as one JSON object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEvent {
    /// RFC 3339 time in UTC.
    pub timestamp: String,
    /// Severity.
    pub level: Level,
    /// `{level}:{command}`, e.g. `error:dist-tags:get`.
    pub namespace: String,
    /// What was being done, e.g. `dist-tags:get`.
    pub command: String,
    /// The caller, or `null` when the platform does not say.
    pub user: Option<Identity>,
    /// The platform's request id, or one made up for the request.
    #[serde(rename = "requestId")]
    pub request_id: String,
    /// Details.
    pub body: serde_json::Value,
}

impl LogEvent {
    /// An event stamped with the current time.
    pub fn new(
        level: Level,
        command: &str,
        user: Option<Identity>,
        request_id: &str,
        body: serde_json::Value,
    ) -> Self {
        let level_name = match level {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        };
        Self {
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            level,
            namespace: format!("{level_name}:{command}"),
            command: command.to_owned(),
            user,
            request_id: request_id.to_owned(),
            body,
        }
    }

    /// The event as one line of JSON, without the newline.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"level\":\"error\",\"body\":\"unserializable log event: {e}\"}}")
        })
    }
}

/// Where log events go; `emit` never blocks on I/O that could stall a response.
pub trait LogSink: Send + Sync {
    /// Hands over one event.
    fn emit(&self, event: &LogEvent);
}

/// The sink that drops every event (`DISTTAGS_LOG=none`).
impl LogSink for () {
    fn emit(&self, _event: &LogEvent) {}
}

/// Any closure is a sink, which is how tests and embedders collect events.
impl<F: Fn(&LogEvent) + Send + Sync> LogSink for F {
    fn emit(&self, event: &LogEvent) {
        self(event)
    }
}

/// JSON lines on standard output, which every platform collects.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

impl LogSink for StdoutSink {
    fn emit(&self, event: &LogEvent) {
        // One line of the platform's log stream (see `telemetry`).
        crate::telemetry::write_event(event);
    }
}

/// POSTs each event as JSON to an endpoint, from a background task behind a bounded queue.
///
/// `emit` only enqueues: a slow or failing endpoint costs the request nothing. When the queue is full
/// the event is written to standard error instead, so nothing is silently lost.
pub struct HttpSink {
    queue: mpsc::Sender<String>,
    overflowed: Arc<AtomicU64>,
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSink").finish_non_exhaustive()
    }
}

/// How many events may wait for the HTTP endpoint.
const HTTP_SINK_QUEUE: usize = 1024;

impl HttpSink {
    /// Starts the sender task; must be called inside a Tokio runtime. Call [`crate::tls::install`]
    /// before building `client` (see [`crate::upstream::HttpUpstream::new`]).
    pub fn new(
        client: reqwest::Client,
        url: url::Url,
        token: Option<String>,
        timeout: Duration,
    ) -> Self {
        let (queue, mut rx) = mpsc::channel::<String>(HTTP_SINK_QUEUE);
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                let mut request = client
                    .post(url.clone())
                    .timeout(timeout)
                    .header("content-type", "application/json")
                    .body(line.clone());
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let failed = match request.send().await {
                    Ok(response) => {
                        (!response.status().is_success()).then(|| response.status().to_string())
                    }
                    Err(e) => Some(crate::error::with_causes(&e.without_url())),
                };
                if let Some(why) = failed {
                    // The endpoint lost it; standard error keeps it.
                    eprintln!("disttags: log endpoint failed ({why}); event: {line}");
                }
            }
        });
        Self {
            queue,
            overflowed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Events that found the queue full and went to standard error instead.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

impl LogSink for HttpSink {
    fn emit(&self, event: &LogEvent) {
        let line = event.to_json_line();
        if let Err(e) = self.queue.try_send(line) {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
            let line = match e {
                mpsc::error::TrySendError::Full(l) | mpsc::error::TrySendError::Closed(l) => l,
            };
            eprintln!("disttags: log queue full; event: {line}");
        }
    }
}

//! Log lines in each platform's own format, from `tracing`: every request is one span (request
//! id, trace context, method, route, package, status, latency) and one line when it is answered;
//! the store lookup and the upstream call are its child spans, with their outcome.
//!
//! `tracing-subscriber`'s registry keeps the spans and filters by level; [`PlatformLayer`] only
//! shapes each line as its platform's log collector reads it:
//!
//! - Lambda: JSON with `timestamp`, `level` (upper case) and `message` at the top level and the
//!   `requestId`, what CloudWatch and Lambda's log-level filter read (`AWS_LAMBDA_LOG_FORMAT=Text`:
//!   one plain line instead);
//! - Cloud Run: JSON with `severity`, `message`, `logging.googleapis.com/trace` and
//!   `logging.googleapis.com/spanId`, which Cloud Logging files under the request's trace;
//! - Azure Functions: JSON lines, warnings and errors on standard error, which the host classifies;
//! - `disttags serve`: one readable line on a terminal, JSON otherwise.
//!
//! The codebox-shaped log events ([`crate::LogEvent`]) written by [`crate::StdoutSink`] become lines
//! of the same stream, their fields kept and the platform's added, whatever `RUST_LOG` says.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::error::ConfigError;
use crate::log::LogEvent;
use crate::vars::{self, Env};

/// The target of the codebox-shaped events: never filtered out, they are the record.
pub(crate) const EVENT_TARGET: &str = "disttags::event";
/// The target of the one line per request.
pub(crate) const REQUEST_TARGET: &str = "disttags::request";

/// How lines are written, by platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    /// AWS Lambda: JSON (or plain text when `AWS_LAMBDA_LOG_FORMAT=Text`).
    Lambda {
        /// Plain text lines instead of JSON.
        text: bool,
    },
    /// Google Cloud Run: Cloud Logging's structured JSON.
    CloudRun {
        /// The project traces belong to (`GOOGLE_CLOUD_PROJECT`), for `logging.googleapis.com/trace`.
        project: Option<String>,
    },
    /// Azure Functions: JSON, warnings and errors on standard error.
    Azure,
    /// JSON lines on standard output.
    Json,
    /// One readable line per event, for a terminal.
    Text,
}

impl LogFormat {
    /// Lambda's format, as its advanced logging controls (`AWS_LAMBDA_LOG_FORMAT`) ask.
    pub fn lambda(env: &Env) -> Self {
        Self::Lambda {
            text: env
                .get(&vars::AWS_LAMBDA_LOG_FORMAT)
                .is_some_and(|f| f.eq_ignore_ascii_case("text")),
        }
    }

    /// Cloud Run's format, its project from `GOOGLE_CLOUD_PROJECT`.
    pub fn cloud_run(env: &Env) -> Self {
        Self::CloudRun {
            project: env.get(&vars::GOOGLE_CLOUD_PROJECT).map(str::to_owned),
        }
    }

    /// `disttags serve`'s format: `DISTTAGS_LOG_FORMAT` (`text`, `json`), else text on a terminal.
    pub fn local(env: &Env, terminal: bool) -> Result<Self, ConfigError> {
        match env
            .get(&vars::LOG_FORMAT)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            None if terminal => Ok(Self::Text),
            None => Ok(Self::Json),
            Some(other) => Err(ConfigError::new(format!(
                "{}={other:?} is not valid: use text or json",
                vars::LOG_FORMAT.name
            ))),
        }
    }
}

/// Set once [`install`] has made the platform's layer the process' subscriber.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Makes `format` the log format of this process, its level from `RUST_LOG` (on Lambda,
/// `AWS_LAMBDA_LOG_LEVEL` first; `info` when neither is set). Events of the record are written
/// whatever the level. A second call changes nothing.
pub fn install(format: LogFormat, env: &Env) -> Result<(), ConfigError> {
    let level = match format {
        LogFormat::Lambda { .. } => env
            .get(&vars::AWS_LAMBDA_LOG_LEVEL)
            .or_else(|| env.get(&vars::RUST_LOG)),
        _ => env.get(&vars::RUST_LOG),
    };
    let filter = parse_level(level.unwrap_or("info"))?.with_target(EVENT_TARGET, LevelFilter::INFO);
    let subscriber =
        tracing_subscriber::registry().with(PlatformLayer { format }.with_filter(filter));
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        INSTALLED.store(true, Ordering::Release);
    }
    Ok(())
}

/// `RUST_LOG` as a target filter: `info`, `warn,disttags_core=debug`, … Lambda's level names
/// (`FATAL`, `WARN`) are accepted too.
fn parse_level(text: &str) -> Result<Targets, ConfigError> {
    let text = text.trim().to_ascii_lowercase().replace("fatal", "error");
    let bad = || {
        ConfigError::new(format!(
            "the log level {text:?} is not valid: use error, warn, info, debug, trace or off, optionally per target (disttags_core=debug)"
        ))
    };
    // `Targets` takes a bare word for a target name; here a bare word must be a level.
    let level = |word: &str| {
        matches!(
            word.trim(),
            "error" | "warn" | "info" | "debug" | "trace" | "off"
        )
    };
    let valid = text.split(',').filter(|d| !d.trim().is_empty()).all(|d| {
        d.split_once('=').map_or_else(
            || level(d),
            |(target, l)| !target.trim().is_empty() && level(l),
        )
    });
    if !valid {
        return Err(bad());
    }
    text.parse::<Targets>().map_err(|_| bad())
}

/// Whether `DISTTAGS_METRICS` asks for metrics: `on` (the default) or `off`.
pub fn metrics_on(env: &Env) -> Result<bool, ConfigError> {
    match env.value(&vars::METRICS).unwrap_or("on") {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(ConfigError::new(format!(
            "{}={other:?} is not valid: use on or off",
            vars::METRICS.name
        ))),
    }
}

/// Every metric the core records: name, unit, meaning. No label holds a package name.
pub const METRICS: &[(&str, &str, &str)] = &[
    (
        "disttags_requests_total",
        "requests",
        "requests answered, by route, method and status",
    ),
    (
        "disttags_request_duration_seconds",
        "seconds",
        "time to answer a request, by route",
    ),
    (
        "disttags_store_lookups_total",
        "lookups",
        "store lookups by outcome: fresh, unchanged, not_modified, read, not_found, shared, error",
    ),
    (
        "disttags_store_lookup_duration_seconds",
        "seconds",
        "time of a store lookup (retries included), by outcome",
    ),
    (
        "disttags_store_requests_total",
        "requests",
        "GET requests sent to the store",
    ),
    (
        "disttags_store_read_bytes_total",
        "bytes",
        "body bytes read from the store",
    ),
    (
        "disttags_upstream_lookups_total",
        "lookups",
        "upstream lookups by outcome: fresh, fetched, revalidated, shared, stale, not_found, error",
    ),
    (
        "disttags_upstream_lookup_duration_seconds",
        "seconds",
        "time of an upstream lookup (retries included), by outcome",
    ),
    (
        "disttags_upstream_requests_total",
        "requests",
        "HTTP requests sent to the upstream",
    ),
    (
        "disttags_cache_hits_total",
        "lookups",
        "lookups answered from a cache (store: tags confirmed unchanged; upstream: reused, revalidated or stale), by cache",
    ),
    (
        "disttags_cache_misses_total",
        "lookups",
        "lookups that had to read (store) or fetch (upstream), by cache",
    ),
    (
        "disttags_cold_starts_total",
        "starts",
        "Lambda only: invocations that started a new execution environment",
    ),
];

/// Gives each metric its unit and help text in the installed recorder.
pub fn describe_metrics() {
    for (name, unit, help) in METRICS {
        let unit = match *unit {
            "seconds" => metrics::Unit::Seconds,
            "bytes" => metrics::Unit::Bytes,
            _ => metrics::Unit::Count,
        };
        if name.ends_with("_seconds") {
            metrics::describe_histogram!(*name, unit, *help);
        } else {
            metrics::describe_counter!(*name, unit, *help);
        }
    }
}

/// Writes a codebox-shaped event: through the platform's layer once [`install`] has run, else
/// as the plain JSON line it always was.
pub(crate) fn write_event(event: &LogEvent) {
    if !INSTALLED.load(Ordering::Acquire) {
        let mut line = event.to_json_line();
        line.push('\n');
        // A closed stdout must not take the request down with it.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
        return;
    }
    let line = event.to_json_line();
    match event.level {
        crate::log::Level::Error => tracing::error!(target: EVENT_TARGET, event = %line),
        crate::log::Level::Warn => tracing::warn!(target: EVENT_TARGET, event = %line),
        crate::log::Level::Info => tracing::info!(target: EVENT_TARGET, event = %line),
    }
}

/// The client's own request id (`x-request-id`), when it is a sane one: 1 to 128 characters of
/// letters, digits and `-._:`. Anything else is replaced by an id of our own.
pub(crate) fn client_request_id(headers: &http::HeaderMap) -> Option<String> {
    let id = headers.get("x-request-id")?.to_str().ok()?;
    let sane = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    sane.then(|| id.to_owned())
}

/// The trace a request belongs to, from the first header that names one: W3C `traceparent`,
/// Google's `X-Cloud-Trace-Context`, AWS X-Ray's `X-Amzn-Trace-Id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TraceContext {
    /// The trace id as its header spells it (32 hex digits; X-Ray's `1-…-…` root).
    pub(crate) trace_id: Option<String>,
    /// The caller's span: 16 hex digits (X-Cloud-Trace-Context's decimal span id converted).
    pub(crate) span_id: Option<String>,
}

impl TraceContext {
    pub(crate) fn from_headers(headers: &http::HeaderMap) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        header("traceparent")
            .and_then(Self::traceparent)
            .or_else(|| header("x-cloud-trace-context").and_then(Self::cloud))
            .or_else(|| header("x-amzn-trace-id").and_then(Self::xray))
            .unwrap_or_default()
    }

    /// `00-<32 hex trace>-<16 hex span>-<2 hex flags>`.
    fn traceparent(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hex(trace, 32) && hex(span, 16) && trace.bytes().any(|b| b != b'0')).then(|| Self {
            trace_id: Some(trace.to_ascii_lowercase()),
            span_id: Some(span.to_ascii_lowercase()),
        })
    }

    /// `<32 hex trace>/<decimal span>;o=<0|1>`.
    fn cloud(value: &str) -> Option<Self> {
        let (trace, rest) = value.trim().split_once('/').unwrap_or((value.trim(), ""));
        if trace.len() != 32 || !trace.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let span = rest
            .split(';')
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .map(|s| format!("{s:016x}"));
        Some(Self {
            trace_id: Some(trace.to_ascii_lowercase()),
            span_id: span,
        })
    }

    /// `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`.
    fn xray(value: &str) -> Option<Self> {
        let field = |key: &str| {
            value
                .split(';')
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.to_owned())
                .filter(|v| {
                    !v.is_empty()
                        && v.len() <= 64
                        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        let trace_id = field("Root")?;
        Some(Self {
            trace_id: Some(trace_id),
            span_id: field("Parent"),
        })
    }
}

/// Field values by name, in the order first given; a later value replaces an earlier one. Names
/// are the fields' own `&'static str`s: collecting a line allocates only for the values.
#[derive(Debug, Default)]
struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    fn put(&mut self, name: &'static str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        let at = self.0.iter().position(|(k, _)| *k == name)?;
        Some(self.0.remove(at).1)
    }

    /// Every field of the spans from the root down to `span`, inner ones winning.
    fn of_scope<'a, S>(
        scope: impl Iterator<Item = tracing_subscriber::registry::SpanRef<'a, S>>,
    ) -> Self
    where
        S: for<'b> LookupSpan<'b> + 'a,
    {
        let mut fields = Self(Vec::with_capacity(16));
        for span in scope {
            if let Some(own) = span.extensions().get::<SpanFields>() {
                for (k, v) in &own.0.0 {
                    fields.put(k, v.clone());
                }
            }
        }
        fields
    }
}

/// The fields a span was given.
struct SpanFields(Fields);

/// When a debug span began, for its duration in its line.
struct Began(Instant);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.put(field.name(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.put(field.name(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.put(field.name(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.put(field.name(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.put(field.name(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.put(field.name(), Value::from(format!("{value:?}")));
    }
}

/// One JSON object written member by member, without building a tree of it first.
struct JsonLine(Vec<u8>);

impl JsonLine {
    fn new() -> Self {
        let mut buffer = Vec::with_capacity(384);
        buffer.push(b'{');
        Self(buffer)
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        // Serializing into a vector cannot fail.
        let _ = serde_json::to_writer(&mut self.0, key);
        self.0.push(b':');
    }

    fn field(&mut self, key: &str, value: &Value) {
        self.key(key);
        let _ = serde_json::to_writer(&mut self.0, value);
    }

    fn text(&mut self, key: &str, value: &str) {
        self.key(key);
        let _ = serde_json::to_writer(&mut self.0, value);
    }

    fn finish(mut self) -> String {
        self.0.push(b'}');
        String::from_utf8(self.0).unwrap_or_default()
    }
}

/// Shapes each event (and the close of a debug span) as one line in the platform's format.
struct PlatformLayer {
    format: LogFormat,
}

impl<S> Layer<S> for PlatformLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Fields(Vec::with_capacity(12));
        attrs.record(&mut Visitor(&mut fields));
        let mut extensions = span.extensions_mut();
        extensions.insert(SpanFields(fields));
        // Only debug spans get a line of their own, with their duration.
        if *span.metadata().level() >= Level::DEBUG {
            extensions.insert(Began(Instant::now()));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut Visitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = match ctx.event_scope(event) {
            Some(scope) => Fields::of_scope(scope.from_root()),
            None => Fields::default(),
        };
        event.record(&mut Visitor(&mut fields));
        let metadata = event.metadata();
        self.write(*metadata.level(), metadata.target(), fields);
    }

    /// A child span (store lookup, upstream call) closing: one debug line with its outcome and
    /// duration, when debug lines are on for it.
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        if span.parent().is_none() || *span.metadata().level() < Level::DEBUG {
            return;
        }
        let mut fields = Fields::of_scope(span.scope().from_root());
        if let Some(began) = span.extensions().get::<Began>() {
            let ms = began.0.elapsed().as_secs_f64() * 1e3;
            fields.put("latency_ms", Value::from((ms * 1e3).round() / 1e3));
        }
        let outcome = fields
            .0
            .iter()
            .find(|(k, _)| *k == "outcome")
            .and_then(|(_, v)| v.as_str())
            .unwrap_or("done");
        let message = format!("{} {outcome}", span.name());
        fields.put("message", Value::from(message));
        fields.put("span", Value::from(span.name()));
        self.write(Level::DEBUG, span.metadata().target(), fields);
    }
}

impl PlatformLayer {
    fn write(&self, level: Level, target: &str, mut fields: Fields) {
        let mut line = if target == EVENT_TARGET {
            self.record_line(level, &mut fields)
        } else {
            self.line(level, fields)
        };
        line.push('\n');
        // Azure's host reads standard error as warnings and errors; a closed stream must not take
        // the request down with it.
        if self.format == LogFormat::Azure && level <= Level::WARN {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        } else {
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
    }

    /// A line for an ordinary event (the request line, a warning of the program).
    fn line(&self, level: Level, mut fields: Fields) -> String {
        let message = take_string(&mut fields, "message").unwrap_or_default();
        let mut out = JsonLine::new();
        match &self.format {
            LogFormat::Text | LogFormat::Lambda { text: true } => {
                return text_line(level, &message, &fields);
            }
            LogFormat::CloudRun { project } => {
                out.text("severity", severity(level));
                out.text("message", &message);
                out.text("time", &now());
                for (key, value) in cloud_trace(project.as_deref(), &mut fields) {
                    out.field(key, &value);
                }
            }
            LogFormat::Lambda { .. } => {
                out.text("timestamp", &now());
                out.text("level", level.as_str());
                out.text("message", &message);
            }
            LogFormat::Azure | LogFormat::Json => {
                out.text("timestamp", &now());
                out.text("level", lower(level));
                out.text("message", &message);
            }
        }
        if let Some(id) = fields.take("request_id") {
            out.field("requestId", &id);
        }
        for (key, value) in &fields.0 {
            out.field(key, value);
        }
        out.finish()
    }

    /// A line for a codebox-shaped event: its own fields, and the platform's around them.
    fn record_line(&self, level: Level, fields: &mut Fields) -> String {
        let Some(Value::Object(mut event)) =
            take_string(fields, "event").and_then(|text| serde_json::from_str::<Value>(&text).ok())
        else {
            return String::new();
        };
        let namespace = event
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let detail = event
            .get("body")
            .and_then(|b| b.get("message"))
            .and_then(Value::as_str)
            .map(|m| format!("{namespace}: {m}"))
            .unwrap_or_else(|| namespace.clone());
        match &self.format {
            LogFormat::Text | LogFormat::Lambda { text: true } => {
                let body = event.remove("body").unwrap_or(Value::Null);
                let mut rest = Fields::default();
                for key in ["requestId", "user"] {
                    if let Some(v) = event.remove(key) {
                        rest.put(key, v);
                    }
                }
                rest.put("body", body);
                return text_line(level, &namespace, &rest);
            }
            LogFormat::CloudRun { project } => {
                let mut out = Map::new();
                out.insert("severity".into(), Value::from(severity(level)));
                out.insert("message".into(), Value::from(detail));
                for (key, value) in cloud_trace(project.as_deref(), fields) {
                    out.insert(key.into(), value);
                }
                out.extend(event);
                return Value::Object(out).to_string();
            }
            LogFormat::Lambda { .. } => {
                event.insert("level".into(), Value::from(level.as_str()));
            }
            LogFormat::Azure | LogFormat::Json => {}
        }
        event.insert("message".into(), Value::from(detail));
        Value::Object(event).to_string()
    }
}

/// Cloud Logging's trace fields from the request span's trace context.
fn cloud_trace(project: Option<&str>, fields: &mut Fields) -> Vec<(&'static str, Value)> {
    let trace = take_string(fields, "trace_id");
    let span = take_string(fields, "span_id");
    let mut out = Vec::with_capacity(2);
    if let (Some(project), Some(trace)) = (project, trace.as_deref()) {
        out.push((
            "logging.googleapis.com/trace",
            Value::from(format!("projects/{project}/traces/{trace}")),
        ));
    } else if let Some(trace) = trace {
        // Without a project the id still ties the lines of one request together.
        out.push(("trace_id", Value::from(trace)));
    }
    if let Some(span) = span {
        out.push(("logging.googleapis.com/spanId", Value::from(span)));
    }
    out
}

fn take_string(fields: &mut Fields, key: &str) -> Option<String> {
    match fields.take(key)? {
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// `2026-12-02T05:42:22.123Z  INFO GET /-/package/left-pad/dist-tags 200 key=value …`
fn text_line(level: Level, message: &str, fields: &Fields) -> String {
    let mut line = format!("{} {:>5} {message}", now(), level.as_str());
    for (key, value) in &fields.0 {
        match value {
            Value::String(s) => {
                let _ = write!(line, " {key}={s}");
            }
            other => {
                let _ = write!(line, " {key}={other}");
            }
        }
    }
    line
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn lower(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Cloud Logging's severity names.
fn severity(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_as_rust_log_and_lambda_write_them() {
        for ok in [
            "info",
            "WARN",
            "FATAL",
            "debug,disttags_core=trace",
            "disttags_core=debug",
        ] {
            assert!(parse_level(ok).is_ok(), "{ok}");
        }
        assert!(parse_level("loud").is_err());
    }

    #[test]
    fn trace_context_from_each_header() {
        let of = |name: &'static str, value: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(name, http::HeaderValue::from_static(value));
            TraceContext::from_headers(&headers)
        };
        let w3c = of(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        assert_eq!(
            w3c.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(w3c.span_id.as_deref(), Some("00f067aa0ba902b7"));
        let google = of(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/1;o=1",
        );
        assert_eq!(
            google.trace_id.as_deref(),
            Some("105445aa7843bc8bf206b12000100000")
        );
        assert_eq!(google.span_id.as_deref(), Some("0000000000000001"));
        let aws = of(
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        );
        assert_eq!(
            aws.trace_id.as_deref(),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(aws.span_id.as_deref(), Some("53995c3f42cd8ad8"));
        assert_eq!(of("traceparent", "00-zz-yy-01"), TraceContext::default());
    }

    #[test]
    fn only_sane_client_request_ids_are_taken() {
        let of = |value: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("x-request-id", http::HeaderValue::from_static(value));
            client_request_id(&headers)
        };
        assert_eq!(of("abc-123.x_y:z").as_deref(), Some("abc-123.x_y:z"));
        assert_eq!(of("has space"), None);
        assert_eq!(of(""), None);
    }

    #[test]
    fn cloud_run_lines_carry_severity_and_the_trace() {
        let layer = PlatformLayer {
            format: LogFormat::CloudRun {
                project: Some("p1".into()),
            },
        };
        let mut fields = Fields::default();
        fields.put("message", Value::from("GET / 200"));
        fields.put("trace_id", Value::from("abc"));
        fields.put("span_id", Value::from("12"));
        fields.put("request_id", Value::from("r1"));
        let line: Value = serde_json::from_str(&layer.line(Level::WARN, fields)).expect("json");
        assert_eq!(line["severity"], "WARNING");
        assert_eq!(line["message"], "GET / 200");
        assert_eq!(
            line["logging.googleapis.com/trace"],
            "projects/p1/traces/abc"
        );
        assert_eq!(line["logging.googleapis.com/spanId"], "12");
        assert_eq!(line["requestId"], "r1");
    }
}

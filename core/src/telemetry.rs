//! Log lines in each platform's own format, from `tracing`: every request is one span (request
//! id, trace context, method, path, route, package, status, latency) whose close is its one line;
//! the store lookup and the upstream call are its child spans, with their outcome. A server's
//! request lines are written in batches (see [`defer_writes`]).
//!
//! `tracing-subscriber`'s registry keeps the spans and filters by level; the `PlatformLayer` only
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

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

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
    // One layer: its filter is the subscriber's, which spares every span and event the
    // per-layer filter's bookkeeping.
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(PlatformLayer::new(format));
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
        emit(Stream::Out, line.as_bytes(), true);
        return;
    }
    let line = event.to_json_line();
    match event.level {
        crate::log::Level::Error => tracing::error!(target: EVENT_TARGET, event = %line),
        crate::log::Level::Warn => tracing::warn!(target: EVENT_TARGET, event = %line),
        crate::log::Level::Info => tracing::info!(target: EVENT_TARGET, event = %line),
    }
}

/// Polls `future` inside `span`, as `tracing`'s `Instrumented` does, but without a second handle
/// on the span (a clone, and its close) and without entering the span again to drop the finished
/// future: on the request path each of those is another look-up of the span.
pub(crate) async fn in_span<F: Future>(span: &tracing::Span, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        let _entered = span.enter();
        future.as_mut().poll(cx)
    })
    .await
}

/// The stream a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out = 0,
    Err = 1,
}

/// Lines not yet written, by stream. A server's worker threads (see [`defer_writes`]) leave their
/// request lines here, and the lines of many requests cost one `write(2)` instead of one each;
/// every other line is written at once, after whatever is waiting on its stream (and, for a line
/// on standard error, after what waits on standard output), so order holds.
static PENDING: [Mutex<Vec<u8>>; 2] = [Mutex::new(Vec::new()), Mutex::new(Vec::new())];

/// Waiting lines are written once they reach this many bytes, however busy the server is.
const FLUSH_AT: usize = 64 * 1024;

/// How long a request line waits to be written, at most.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

thread_local! {
    /// Whether this thread's request lines may wait for the next flush.
    static DEFERS: Cell<bool> = const { Cell::new(false) };
}

/// Lets the calling thread's info and debug lines (request lines, mostly) wait up to
/// [`FLUSH_EVERY`] to be written together: for the worker threads of a server (Tokio's
/// `on_thread_start`), whose runtime calls [`flush`] when it stops. The first call starts the
/// thread that flushes. Warnings, errors and the codebox-shaped events never wait. Not for a
/// platform that may stop the process' CPU between requests (Cloud Run, Lambda): a waiting line
/// would wait for the next request.
pub fn defer_writes() {
    static FLUSHING: OnceLock<bool> = OnceLock::new();
    let flushing = *FLUSHING.get_or_init(|| {
        std::thread::Builder::new()
            .name("disttags-log-flush".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                }
            })
            .is_ok()
    });
    // Without the flushing thread every line is written at once.
    DEFERS.set(flushing);
}

/// Writes every waiting line.
pub fn flush() {
    flush_stream(Stream::Out);
    flush_stream(Stream::Err);
}

/// Writes what waits on `stream`.
fn flush_stream(stream: Stream) {
    let mut pending = PENDING[stream as usize]
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if !pending.is_empty() {
        write_out(stream, &mut pending);
    }
}

/// Adds one line (its newline included) to `stream`, writing it now if it is `urgent` or this
/// thread does not defer.
fn emit(stream: Stream, line: &[u8], urgent: bool) {
    let mut pending = PENDING[stream as usize]
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if urgent && stream == Stream::Err {
        // What waits on standard output came first.
        flush_stream(Stream::Out);
    }
    pending.extend_from_slice(line);
    if urgent || !DEFERS.get() || pending.len() >= FLUSH_AT {
        write_out(stream, &mut pending);
    }
}

/// Writes what is waiting, the lock held so that no other line comes between.
fn write_out(stream: Stream, pending: &mut Vec<u8>) {
    // A closed stream must not take the request down with it.
    let _ = match stream {
        Stream::Out => std::io::stdout().lock().write_all(pending),
        Stream::Err => std::io::stderr().lock().write_all(pending),
    };
    pending.clear();
    if pending.capacity() > 4 * FLUSH_AT {
        pending.shrink_to(FLUSH_AT);
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
/// are the fields' own `&'static str`s and text is kept in one buffer, so collecting a line
/// allocates twice however many fields it has (a request span's, reused, not at all: see
/// [`Self::reused`]).
#[derive(Debug, Default)]
struct Fields {
    kept: Vec<(&'static str, Kept)>,
    text: String,
    /// Bytes of `text` that no field uses any more (replaced values).
    stale: usize,
}

/// A span's text buffer is rebuilt from its live values once this much of it is stale, so that a
/// long-lived span recording a field again and again does not grow without bound.
const STALE_AT: usize = 4 * 1024;

/// A value as [`Fields`] keeps it: text as a range of its buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kept {
    /// A span's field that has no value yet (`Empty`, or not recorded): its place is kept so
    /// that a value recorded later goes straight to it, by the field's index.
    Absent,
    Str(usize, usize),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// A field's value as a line writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FieldValue<'a> {
    Str(&'a str),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    /// A value of a codebox-shaped event, read back from its JSON.
    Json(&'a Value),
}

impl<'a> FieldValue<'a> {
    fn as_str(self) -> Option<&'a str> {
        match self {
            Self::Str(text) => Some(text),
            Self::Json(value) => value.as_str(),
            _ => None,
        }
    }
}

impl Fields {
    fn with_capacity(fields: usize) -> Self {
        Self {
            kept: Vec::with_capacity(fields),
            text: String::with_capacity(fields * 16),
            stale: 0,
        }
    }

    /// Empty fields: spare ones this thread kept (see [`Self::recycle`]), else new ones.
    fn reused() -> Self {
        SPARE
            .try_with(|spare| spare.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| Self::with_capacity(12))
    }

    /// Empties these fields and keeps them for a span this thread makes next, so that a span's
    /// fields cost no allocation: unless they grew large, or enough are kept.
    fn recycle(mut self) {
        if self.kept.capacity() > 64 || self.text.capacity() > 4096 {
            return;
        }
        self.kept.clear();
        self.text.clear();
        self.stale = 0;
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut()
                && spare.len() < 16
            {
                spare.push(self);
            }
        });
    }

    fn put(&mut self, name: &'static str, value: Kept) {
        match self.kept.iter().position(|(k, _)| *k == name) {
            Some(at) => self.replace(at, value),
            None => self.kept.push((name, value)),
        }
    }

    /// Gives the field kept at `at` a new value; the old value's text is stale from now on.
    #[inline(always)]
    fn replace(&mut self, at: usize, value: Kept) {
        let Some(slot) = self.kept.get_mut(at) else {
            return;
        };
        if let Kept::Str(_, len) = slot.1 {
            self.stale += len;
        }
        slot.1 = value;
        if self.stale >= STALE_AT {
            self.compact();
        }
    }

    /// Keeps only the text some field still uses.
    fn compact(&mut self) {
        let mut text = String::with_capacity(self.text.len() - self.stale.min(self.text.len()));
        for (_, kept) in &mut self.kept {
            if let Kept::Str(at, len) = kept {
                let value = self.text.get(*at..*at + *len).unwrap_or_default();
                *kept = Kept::Str(text.len(), value.len());
                text.push_str(value);
            }
        }
        self.text = text;
        self.stale = 0;
    }

    /// Keeps `value`'s text (a replaced value's text stays in the buffer, unused, until
    /// [`Self::compact`] drops it).
    fn put_str(&mut self, name: &'static str, value: &str) {
        let kept = self.keep_str(value);
        self.put(name, kept);
    }

    /// Adds `value` to the buffer, for a field to name.
    fn keep_str(&mut self, value: &str) -> Kept {
        let at = self.text.len();
        self.text.push_str(value);
        Kept::Str(at, value.len())
    }

    /// Adds `value`'s text to the buffer, for a field to name.
    fn keep_text(&mut self, value: std::fmt::Arguments<'_>) -> Kept {
        let at = self.text.len();
        let _ = self.text.write_fmt(value);
        Kept::Str(at, self.text.len() - at)
    }

    fn put_value(&mut self, name: &'static str, value: FieldValue<'_>) {
        match value {
            FieldValue::Str(text) => self.put_str(name, text),
            FieldValue::U64(n) => self.put(name, Kept::U64(n)),
            FieldValue::I64(n) => self.put(name, Kept::I64(n)),
            FieldValue::F64(n) => self.put(name, Kept::F64(n)),
            FieldValue::Bool(b) => self.put(name, Kept::Bool(b)),
            FieldValue::Json(value) => {
                let kept = self.keep_text(format_args!("{value}"));
                self.put(name, kept);
            }
        }
    }

    fn put_absent(&mut self, name: &'static str, value: FieldValue<'_>) {
        if self.get(name).is_none() {
            self.put_value(name, value);
        }
    }

    fn value(&self, kept: Kept) -> Option<FieldValue<'_>> {
        Some(match kept {
            Kept::Absent => return None,
            Kept::Str(at, len) => FieldValue::Str(self.text.get(at..at + len).unwrap_or_default()),
            Kept::U64(n) => FieldValue::U64(n),
            Kept::I64(n) => FieldValue::I64(n),
            Kept::F64(n) => FieldValue::F64(n),
            Kept::Bool(b) => FieldValue::Bool(b),
        })
    }

    /// The value kept at `at`, if it has one.
    fn at(&self, at: usize) -> Option<FieldValue<'_>> {
        self.value(self.kept.get(at)?.1)
    }

    fn get(&self, name: &str) -> Option<FieldValue<'_>> {
        let (_, kept) = self.kept.iter().find(|(k, _)| *k == name)?;
        self.value(*kept)
    }

    fn str(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_str()
    }

    /// The text of the value kept at `at`, or its number as text.
    fn text_at(&self, at: Option<usize>) -> Option<std::borrow::Cow<'_, str>> {
        match self.at(at?)? {
            FieldValue::Str(text) => Some(text.into()),
            other => {
                let mut text = Vec::new();
                write_value(&mut text, other);
                Some(String::from_utf8_lossy(&text).into_owned().into())
            }
        }
    }

    /// The fields that have a value, in order.
    fn iter(&self) -> impl Iterator<Item = (&'static str, FieldValue<'_>)> {
        self.kept
            .iter()
            .filter_map(|(k, v)| Some((*k, self.value(*v)?)))
    }

    /// A span's own fields, in its callsite's order, none with a value yet: values recorded
    /// later (by [`Visitor::own`]) go to their field's index.
    fn place(&mut self, fields: &tracing::field::FieldSet) {
        self.kept
            .extend(fields.iter().map(|field| (field.name(), Kept::Absent)));
    }

    /// Every field of the spans from the root down to `span`, inner ones winning.
    fn of_scope<'a, S>(
        scope: impl Iterator<Item = tracing_subscriber::registry::SpanRef<'a, S>>,
    ) -> Self
    where
        S: for<'b> LookupSpan<'b> + 'a,
    {
        let mut fields = Self::with_capacity(16);
        for span in scope {
            if let Some(own) = span.extensions().get::<SpanFields>() {
                for (k, v) in own.0.iter() {
                    fields.put_value(k, v);
                }
            }
        }
        fields
    }
}

thread_local! {
    /// Emptied fields of closed request spans, for new spans (see [`Fields::recycle`]).
    static SPARE: RefCell<Vec<Fields>> = const { RefCell::new(Vec::new()) };
}

/// The fields a span was given.
struct SpanFields(Fields);

/// When a debug span began, for its duration in its line.
struct Began(Instant);

/// Records values into `fields`: by name, or for a span's own fields (`own`, laid out by
/// [`Fields::place`]) at the field's index, without looking for its name.
struct Visitor<'a> {
    fields: &'a mut Fields,
    own: bool,
}

impl<'a> Visitor<'a> {
    fn new(fields: &'a mut Fields) -> Self {
        Self { fields, own: false }
    }

    fn own(fields: &'a mut Fields) -> Self {
        Self { fields, own: true }
    }

    #[inline(always)]
    fn keep(&mut self, field: &Field, value: Kept) {
        let name = field.name();
        let at = field.index();
        if self.own
            && let Some((kept, _)) = self.fields.kept.get(at)
            && std::ptr::eq(*kept, name)
        {
            self.fields.replace(at, value);
        } else {
            self.fields.put(name, value);
        }
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let kept = self.fields.keep_str(value);
        self.keep(field, kept);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.keep(field, Kept::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.keep(field, Kept::U64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.keep(field, Kept::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.keep(field, Kept::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let kept = self.fields.keep_text(format_args!("{value:?}"));
        self.keep(field, kept);
    }
}

/// A value as JSON: numbers as they are (a number JSON cannot hold, `null`), text quoted.
// Inlined: written a dozen times a line, the calls cost more than most values.
#[inline(always)]
fn write_value(out: &mut Vec<u8>, value: FieldValue<'_>) {
    match value {
        FieldValue::Str(text) => {
            out.push(b'"');
            escape_into(out, text);
            out.push(b'"');
        }
        FieldValue::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        FieldValue::I64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        FieldValue::F64(n) if n.is_finite() => {
            out.extend_from_slice(zmij::Buffer::new().format_finite(n).as_bytes());
        }
        FieldValue::F64(_) => out.extend_from_slice(b"null"),
        FieldValue::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        // Serializing into a vector cannot fail.
        FieldValue::Json(value) => drop(serde_json::to_writer(out, value)),
    }
}

/// One JSON object written member by member into a line's buffer, without building a tree of
/// it first.
struct JsonLine<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> JsonLine<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    // Inlined, as `field` is: called a dozen times a line, the calls cost more than the work.
    #[inline(always)]
    fn key(&mut self, key: &str) {
        self.key_with(key, escape_into);
    }

    /// A key of our own, which needs no escaping.
    #[inline(always)]
    fn known(&mut self, key: &'static str) {
        debug_assert!(plain(key.as_bytes()), "{key}");
        self.key_with(key, |out, key| out.extend_from_slice(key.as_bytes()));
    }

    /// `"key":` (after a comma unless it is the first member), the key's text written by `write`.
    #[inline(always)]
    fn key_with(&mut self, key: &str, write: impl FnOnce(&mut Vec<u8>, &str)) {
        if !std::mem::take(&mut self.empty) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        write(self.out, key);
        self.out.extend_from_slice(b"\":");
    }

    #[inline(always)]
    fn field(&mut self, key: &str, value: FieldValue<'_>) {
        self.key(key);
        write_value(self.out, value);
    }

    #[inline(always)]
    fn known_field(&mut self, key: &'static str, value: FieldValue<'_>) {
        self.known(key);
        write_value(self.out, value);
    }

    fn text(&mut self, key: &'static str, value: &str) {
        self.known_field(key, FieldValue::Str(value));
    }

    /// A string member whose text `write` appends, escaped as it needs.
    #[inline(always)]
    fn quoted(&mut self, key: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        self.known(key);
        self.out.push(b'"');
        write(self.out);
        self.out.push(b'"');
    }

    /// A string member of ours (a level's name), which needs no escaping.
    #[inline(always)]
    fn known_text(&mut self, key: &'static str, value: &'static str) {
        self.quoted(key, |out| out.extend_from_slice(value.as_bytes()));
    }

    fn finish(self) {
        self.out.push(b'}');
    }
}

/// Shapes each event (and the close of a debug span) as one line in the platform's format.
struct PlatformLayer {
    format: LogFormat,
    /// The request span's layout, from the first request span.
    plan: OnceLock<RequestPlan>,
}

impl<S> Layer<S> for PlatformLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Fields::reused();
        fields.place(attrs.metadata().fields());
        attrs.record(&mut Visitor::own(&mut fields));
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
            values.record(&mut Visitor::own(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = match ctx.event_scope(event) {
            Some(scope) => Fields::of_scope(scope.from_root()),
            None => Fields::default(),
        };
        event.record(&mut Visitor::new(&mut fields));
        let metadata = event.metadata();
        let level = *metadata.level();
        let record = metadata.target() == EVENT_TARGET;
        self.write(level, record, |out| {
            if record {
                self.record_line(out, level, &fields);
            } else {
                self.line(out, level, Message::Field("message"), &fields);
            }
        });
    }

    /// The request span closing: the request's line. A child span (store lookup, upstream call)
    /// closing: one debug line with its outcome and duration, when debug lines are on for it.
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        if span.metadata().target() == REQUEST_TARGET {
            // The request span closing is the request's line, from its own fields, taken rather
            // than copied; a span around it (Lambda's invocation) adds what it knows.
            let own = span.extensions_mut().remove::<SpanFields>();
            if let Some(SpanFields(mut fields)) = own {
                // The parents one by one: `scope()` would look the span itself up again first.
                for outer in std::iter::successors(span.parent(), |outer| outer.parent()) {
                    if let Some(theirs) = outer.extensions().get::<SpanFields>() {
                        for (key, value) in theirs.0.iter() {
                            fields.put_absent(key, value);
                        }
                    }
                }
                let metadata = span.metadata();
                let plan = self.plan.get_or_init(|| RequestPlan::of(metadata));
                self.write(Level::INFO, false, |out| {
                    if plan.callsite == metadata.callsite() {
                        self.request_line(out, plan, &fields);
                    } else {
                        self.line(out, Level::INFO, Message::Request, &fields);
                    }
                });
                fields.recycle();
            }
            return;
        }
        if span.parent().is_none() || *span.metadata().level() < Level::DEBUG {
            return;
        }
        let mut fields = Fields::of_scope(span.scope().from_root());
        if let Some(began) = span.extensions().get::<Began>() {
            let ms = began.0.elapsed().as_secs_f64() * 1e3;
            fields.put("latency_ms", Kept::F64((ms * 1e3).round() / 1e3));
        }
        let message = format!(
            "{} {}",
            span.name(),
            fields.str("outcome").unwrap_or("done")
        );
        fields.put_str("span", span.name());
        self.write(Level::DEBUG, false, |out| {
            self.line(out, Level::DEBUG, Message::Text(&message), &fields);
        });
    }
}

thread_local! {
    /// The buffer this thread's lines are written into, kept between lines.
    static LINE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

impl PlatformLayer {
    fn new(format: LogFormat) -> Self {
        Self {
            format,
            plan: OnceLock::new(),
        }
    }

    /// Writes the line `shape` writes: a line of the `record`, a warning or an error at once,
    /// others perhaps with the next flush.
    fn write(&self, level: Level, record: bool, shape: impl FnOnce(&mut Vec<u8>)) {
        // While the thread is being torn down (or a line is written within a line) its buffer is
        // not there: a new one serves.
        let mut line = LINE.try_with(Cell::take).unwrap_or_default();
        line.clear();
        shape(&mut line);
        // An event that could not be read back has no line (it never happens: we wrote it).
        if !line.is_empty() {
            line.push(b'\n');
            // Azure's host reads standard error as warnings and errors.
            let stream = if self.format == LogFormat::Azure && level <= Level::WARN {
                Stream::Err
            } else {
                Stream::Out
            };
            emit(stream, &line, record || level <= Level::WARN);
        }
        if line.capacity() <= FLUSH_AT {
            let _ = LINE.try_with(|kept| kept.set(line));
        }
    }

    /// A line for an ordinary event (a warning of the program, a debug span's close).
    fn line(&self, out: &mut Vec<u8>, level: Level, message: Message<'_>, fields: &Fields) {
        let placed = Placed::of(fields, message);
        self.line_placed(out, level, message, fields, &placed, &[]);
    }

    /// The request span's line: as [`Self::line`], laid out as `plan` says.
    fn request_line(&self, out: &mut Vec<u8>, plan: &RequestPlan, fields: &Fields) {
        let placed = plan.placed(fields);
        self.line_placed(
            out,
            Level::INFO,
            Message::Request,
            fields,
            &placed,
            &plan.keys,
        );
    }

    /// A line whose fields are `placed`; `keys` are the JSON keys (`,"name":`) of the first
    /// fields kept, where they are known before (the others' are written from their names).
    fn line_placed(
        &self,
        out: &mut Vec<u8>,
        level: Level,
        message: Message<'_>,
        fields: &Fields,
        placed: &Placed,
        keys: &[Box<[u8]>],
    ) {
        if let LogFormat::Text | LogFormat::Lambda { text: true } = self.format {
            now_into(out);
            let _ = write!(out, " {:>5} ", level.as_str());
            write_message(out, message, fields, placed, false);
            // Only the message's own field is left out.
            let rest = fields
                .kept
                .iter()
                .enumerate()
                .filter(|(at, _)| Some(*at) != placed.said)
                .filter_map(|(_, (k, v))| Some((*k, fields.value(*v)?)));
            text_fields(out, rest);
            return;
        }
        let mut json = JsonLine::new(out);
        match &self.format {
            LogFormat::CloudRun { project } => {
                json.known_text("severity", severity(level));
                json.quoted("message", |out| {
                    write_message(out, message, fields, placed, true);
                });
                json.quoted("time", now_into);
                let trace = placed.trace.and_then(|t| fields.at(t));
                let span_id = placed.span_id.and_then(|s| fields.at(s));
                for (key, value) in cloud_trace(project.as_deref(), trace, span_id) {
                    json.text(key, &value);
                }
            }
            format => {
                json.quoted("timestamp", now_into);
                let level = match format {
                    LogFormat::Lambda { .. } => level.as_str(),
                    _ => lower(level),
                };
                json.known_text("level", level);
                json.quoted("message", |out| {
                    write_message(out, message, fields, placed, true);
                });
            }
        }
        // The trace and the request id come first.
        if let Some(id) = placed.id.and_then(|id| fields.at(id)) {
            json.known_field("requestId", id);
        }
        if !matches!(self.format, LogFormat::CloudRun { .. }) {
            if let Some(trace) = placed.trace.and_then(|t| fields.at(t)) {
                json.known_field("trace_id", trace);
            }
            if let Some(span_id) = placed.span_id.and_then(|s| fields.at(s)) {
                json.known_field("span_id", span_id);
            }
        }
        for (at, (key, kept)) in fields.kept.iter().enumerate() {
            if placed.has(at) {
                continue;
            }
            let Some(value) = fields.value(*kept) else {
                continue;
            };
            match keys.get(at) {
                // Never the first member: the line's time, level and message come before.
                Some(key) => {
                    json.out.extend_from_slice(key);
                    write_value(json.out, value);
                }
                None => json.field(key, value),
            }
        }
        json.finish();
    }

    /// A line for a codebox-shaped event: its own fields, and the platform's around them.
    fn record_line(&self, out: &mut Vec<u8>, level: Level, fields: &Fields) {
        let Some(Value::Object(mut event)) = fields
            .str("event")
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
        else {
            return;
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
                now_into(out);
                let _ = write!(out, " {:>5} {namespace}", level.as_str());
                let rest = ["requestId", "user", "body"]
                    .into_iter()
                    .filter_map(|key| Some((key, FieldValue::Json(event.get(key)?))));
                text_fields(out, rest);
                return;
            }
            LogFormat::CloudRun { project } => {
                let mut line = Map::new();
                line.insert("severity".into(), Value::from(severity(level)));
                line.insert("message".into(), Value::from(detail));
                let trace = fields.get("trace_id");
                let span_id = fields.get("span_id");
                for (key, value) in cloud_trace(project.as_deref(), trace, span_id) {
                    line.insert(key.into(), Value::from(value));
                }
                line.extend(event);
                drop(serde_json::to_writer(out, &Value::Object(line)));
                return;
            }
            LogFormat::Lambda { .. } => {
                event.insert("level".into(), Value::from(level.as_str()));
            }
            LogFormat::Azure | LogFormat::Json => {}
        }
        event.insert("message".into(), Value::from(detail));
        drop(serde_json::to_writer(out, &Value::Object(event)));
    }
}

/// Cloud Logging's trace fields from the request span's trace context.
fn cloud_trace(
    project: Option<&str>,
    trace: Option<FieldValue<'_>>,
    span_id: Option<FieldValue<'_>>,
) -> Vec<(&'static str, String)> {
    let trace = trace.and_then(FieldValue::as_str);
    let mut out = Vec::with_capacity(2);
    if let (Some(project), Some(trace)) = (project, trace) {
        out.push((
            "logging.googleapis.com/trace",
            format!("projects/{project}/traces/{trace}"),
        ));
    } else if let Some(trace) = trace {
        // Without a project the id still ties the lines of one request together.
        out.push(("trace_id", trace.to_owned()));
    }
    if let Some(span) = span_id.and_then(FieldValue::as_str) {
        out.push(("logging.googleapis.com/spanId", span.to_owned()));
    }
    out
}

/// The fields a JSON line writes in places of their own rather than in the order kept, by where
/// they are kept: found in one look at the fields' names.
#[derive(Debug, Default, Clone, PartialEq)]
struct Placed {
    /// What the message says (the request's path, an event's `message`).
    said: Option<usize>,
    trace: Option<usize>,
    span_id: Option<usize>,
    /// `request_id`; Lambda's invocation span names the same id `requestId`, left out then.
    id: Option<usize>,
    lambda_id: Option<usize>,
    /// Read for the request's message, and written as fields too.
    method: Option<usize>,
    status: Option<usize>,
}

impl Placed {
    fn of(fields: &Fields, message: Message<'_>) -> Self {
        let mut placed = Self::default();
        placed.look(fields, message, 0);
        placed
    }

    /// Looks at the names kept from `from` on (a later one wins).
    fn look(&mut self, fields: &Fields, message: Message<'_>, from: usize) {
        let said = match message {
            Message::Field(name) => name,
            Message::Request => "path",
            Message::Text(_) => "",
        };
        for (at, &(name, _)) in fields.kept.iter().enumerate().skip(from) {
            match name {
                _ if name == said => self.said = Some(at),
                "trace_id" => self.trace = Some(at),
                "span_id" => self.span_id = Some(at),
                "request_id" => self.id = Some(at),
                "requestId" => self.lambda_id = Some(at),
                "method" => self.method = Some(at),
                "status" => self.status = Some(at),
                _ => {}
            }
        }
    }

    /// Whether the field kept at `at` has a place of its own in a JSON line.
    fn has(&self, at: usize) -> bool {
        let at = Some(at);
        at == self.said
            || at == self.trace
            || at == self.span_id
            || at == self.id
            || (self.id.is_some() && at == self.lambda_id)
    }
}

/// How the request span's line is laid out, worked out once from its callsite's fields rather
/// than from their names on every line: where its placed fields are, and each field's JSON key.
struct RequestPlan {
    callsite: tracing::callsite::Identifier,
    /// How many fields the callsite has: the span's own, kept first.
    own: usize,
    placed: Placed,
    /// `,"name":` for each of the callsite's fields, by index.
    keys: Vec<Box<[u8]>>,
}

impl RequestPlan {
    fn of(metadata: &tracing::Metadata<'static>) -> Self {
        let mut fields = Fields::default();
        fields.place(metadata.fields());
        let keys = fields
            .kept
            .iter()
            .map(|(name, _)| {
                // A member after others: the key as `JsonLine` writes it there.
                let mut key = Vec::new();
                JsonLine {
                    out: &mut key,
                    empty: false,
                }
                .key(name);
                key.into_boxed_slice()
            })
            .collect();
        Self {
            callsite: metadata.callsite(),
            own: fields.kept.len(),
            placed: Placed::of(&fields, Message::Request),
            keys,
        }
    }

    /// Where a request span's `fields` are placed: as planned for its own, looked at for those
    /// its parents added after them.
    fn placed(&self, fields: &Fields) -> Placed {
        let mut placed = self.placed.clone();
        if fields.kept.len() > self.own {
            placed.look(fields, Message::Request, self.own);
        }
        placed
    }
}

/// What a line says.
#[derive(Clone, Copy)]
enum Message<'a> {
    /// The text of one of the event's fields (`message`).
    Field(&'static str),
    /// This text.
    Text(&'a str),
    /// The request span's: what was asked and answered, from its fields.
    Request,
}

/// What a line says, JSON-escaped when `escape` is set: the event's text (`said`, the field the
/// message was taken from), or for the request span `GET /-/package/left-pad/dist-tags 200` from
/// its method and status and its path (`said`; `abandoned` for a request dropped before it was
/// answered: the client went away).
fn write_message(
    out: &mut Vec<u8>,
    message: Message<'_>,
    fields: &Fields,
    placed: &Placed,
    escape: bool,
) {
    let text = |out: &mut Vec<u8>, text: &str| {
        if escape {
            escape_into(out, text);
        } else {
            out.extend_from_slice(text.as_bytes());
        }
    };
    let said = fields.text_at(placed.said);
    match message {
        Message::Field(_) => text(out, said.as_deref().unwrap_or_default()),
        Message::Text(message) => text(out, message),
        Message::Request => {
            let method = placed.method.and_then(|m| fields.at(m));
            text(out, method.and_then(FieldValue::as_str).unwrap_or_default());
            out.push(b' ');
            text(out, said.as_deref().unwrap_or_default());
            out.push(b' ');
            match placed.status.and_then(|s| fields.at(s)) {
                Some(FieldValue::U64(status)) => {
                    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
                }
                Some(FieldValue::I64(status)) => {
                    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
                }
                _ => out.extend_from_slice(b"abandoned"),
            }
        }
    }
}

/// Appends `text` as the inside of a JSON string: quote, backslash and control characters
/// escaped, everything else as it is (JSON text is UTF-8).
// Always inlined: called some twenty times a line, mostly on a few bytes, a call costs as much
// as the look.
#[inline(always)]
fn escape_into(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if plain(bytes) {
        out.extend_from_slice(bytes);
    } else {
        escape_slowly(out, bytes);
    }
}

/// Whether `bytes` needs no escaping, as it almost always does: looked at eight bytes at a time,
/// the last eight overlapping the words before them (four and four for a text of four to seven
/// bytes), so that no text is looked at byte by byte unless it is shorter than four.
#[inline]
fn plain(bytes: &[u8]) -> bool {
    let word = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_ne_bytes)
    };
    let half = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(0, u32::from_ne_bytes)
    };
    let n = bytes.len();
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if needs_escape(word(at)) {
                return false;
            }
            at += 8;
        }
        !needs_escape(word(n - 8))
    } else if n >= 4 {
        !needs_escape(u64::from(half(0)) | u64::from(half(n - 4)) << 32)
    } else {
        !bytes.iter().any(|&b| ESCAPED[usize::from(b)])
    }
}

/// [`escape_into`] for a text that holds something to escape.
#[cold]
#[inline(never)]
fn escape_slowly(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| ESCAPED[usize::from(b)]) {
        out.extend_from_slice(&rest[..at]);
        match rest[at] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            control => {
                out.extend_from_slice(b"\\u00");
                out.push(b"0123456789abcdef"[usize::from(control >> 4)]);
                out.push(b"0123456789abcdef"[usize::from(control & 0xf)]);
            }
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

/// The bytes a JSON string cannot hold as they are: control characters, quote, backslash.
static ESCAPED: [bool; 256] = {
    let mut escaped = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        escaped[byte] = true;
        byte += 1;
    }
    escaped[b'"' as usize] = true;
    escaped[b'\\' as usize] = true;
    escaped
};

/// Whether any of the eight bytes of `word` is a control character, a quote or a backslash
/// (the exact "has a byte less than n" and "has a zero byte" tests of bit-twiddling lore).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    control | quote | backslash != 0
}

/// ` key=value …` after a text line's `2026-12-02T05:42:22.123Z  INFO message`.
fn text_fields<'v>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = (&'static str, FieldValue<'v>)>,
) {
    for (key, value) in fields {
        let _ = write!(out, " {key}=");
        match value.as_str() {
            Some(text) => out.extend_from_slice(text.as_bytes()),
            None => write_value(out, value),
        }
    }
}

thread_local! {
    /// The second last formatted on this thread, and its text: most lines share their second.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

/// Appends the current time in RFC 3339, UTC, to the millisecond: `2026-12-02T05:42:22.123Z`.
fn now_into(out: &mut Vec<u8>) {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    let format = |text: &mut String| {
        if let Some(time) = i64::try_from(seconds)
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        {
            let _ = write!(text, "{}", time.format("%Y-%m-%dT%H:%M:%S"));
        }
    };
    let cached = SECOND.try_with(|second| {
        let Ok(mut second) = second.try_borrow_mut() else {
            return false;
        };
        let (at, text) = &mut *second;
        if *at != seconds || text.is_empty() {
            *at = seconds;
            text.clear();
            format(text);
        }
        out.extend_from_slice(text.as_bytes());
        true
    });
    // While the thread is being torn down its cache is gone: format this once.
    if cached != Ok(true) {
        let mut text = String::with_capacity(19);
        format(&mut text);
        out.extend_from_slice(text.as_bytes());
    }
    let millis = since.subsec_millis();
    out.push(b'.');
    for digit in [millis / 100, millis / 10 % 10, millis % 10] {
        out.push(b"0123456789"[digit as usize]);
    }
    out.push(b'Z');
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

    fn line_of(
        layer: &PlatformLayer,
        level: Level,
        message: Message<'_>,
        fields: Fields,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        layer.line(&mut out, level, message, &fields);
        out
    }

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
    fn timestamps_are_rfc3339_utc_to_the_millisecond() {
        let before = chrono::Utc::now();
        let mut stamps = Vec::new();
        // Enough stamps to cross a second on most runs: the cached second must move with them.
        for _ in 0..3 {
            let mut text = Vec::new();
            now_into(&mut text);
            stamps.push(String::from_utf8(text).expect("utf-8"));
            std::thread::sleep(std::time::Duration::from_millis(600));
        }
        let after = chrono::Utc::now();
        let mut last = before - chrono::Duration::milliseconds(1);
        for stamp in &stamps {
            assert_eq!(stamp.len(), "2026-12-02T05:42:22.123Z".len(), "{stamp}");
            let at = chrono::DateTime::parse_from_rfc3339(stamp).expect("rfc 3339");
            assert!(stamp.ends_with('Z'), "{stamp}");
            assert!(
                at >= last && at <= after,
                "{stamp} not in {before}..{after}"
            );
            last = at.with_timezone(&chrono::Utc);
        }
    }

    #[test]
    fn a_request_line_says_what_was_asked_and_answered() {
        let request = |status: Option<u16>| {
            let mut fields = Fields::default();
            fields.put_str("request_id", "r1");
            fields.put_str("method", "GET");
            fields.put_str("path", "/-/package/\"a\"/dist-tags");
            if let Some(status) = status {
                fields.put("status", Kept::U64(status.into()));
            }
            fields
        };
        let json = PlatformLayer::new(LogFormat::Json);
        let line: Value = serde_json::from_slice(&line_of(
            &json,
            Level::INFO,
            Message::Request,
            request(Some(304)),
        ))
        .expect("json");
        assert_eq!(line["message"], "GET /-/package/\"a\"/dist-tags 304");
        assert_eq!(line["requestId"], "r1");
        assert_eq!(line["status"], 304);
        assert_eq!(line.get("path"), None, "the path is in the message");
        let line: Value = serde_json::from_slice(&line_of(
            &json,
            Level::INFO,
            Message::Request,
            request(None),
        ))
        .expect("json");
        assert_eq!(line["message"], "GET /-/package/\"a\"/dist-tags abandoned");
        let text = PlatformLayer::new(LogFormat::Text);
        let line = line_of(&text, Level::INFO, Message::Request, request(Some(200)));
        let line = String::from_utf8(line).expect("utf-8");
        assert!(
            line.contains(" INFO GET /-/package/\"a\"/dist-tags 200 request_id=r1 method=GET"),
            "{line}"
        );
    }

    /// `line` with its time (the one part that differs from one call to the next) taken out.
    fn timeless(line: &[u8]) -> String {
        let line = String::from_utf8(line.to_vec()).expect("utf-8");
        let stamp = "2026-12-02T05:42:22.123Z".len();
        let at = ["\"timestamp\":\"", "\"time\":\""]
            .iter()
            .find_map(|key| line.find(key).map(|at| at + key.len()))
            .unwrap_or(0);
        format!("{}{}", &line[..at], &line[at + stamp..])
    }

    #[test]
    fn a_request_line_laid_out_by_its_plan_is_the_line_of_its_fields() {
        // A callsite of the request span's shape; its metadata exists only while it is enabled.
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
        let metadata = tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!(
                target: REQUEST_TARGET,
                "request",
                request_id = tracing::field::Empty,
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
                method = tracing::field::Empty,
                path = tracing::field::Empty,
                route = tracing::field::Empty,
                "odd \"name\"" = tracing::field::Empty,
                status = tracing::field::Empty,
                latency_ms = tracing::field::Empty,
            );
            span.metadata().expect("an enabled span has metadata")
        });
        let plan = RequestPlan::of(metadata);
        assert_eq!(plan.own, 9);
        let cases: [&[&str]; 3] = [
            &["request_id", "method", "path", "status", "latency_ms"],
            &["trace_id", "span_id", "route", "odd \"name\""],
            // A parent's fields after the span's own: Lambda's invocation span.
            &["request_id", "path", "requestId", "xrayTraceId"],
        ];
        for (round, given) in cases.iter().enumerate() {
            let mut fields = Fields::default();
            fields.place(metadata.fields());
            for (n, name) in given.iter().enumerate() {
                match *name {
                    "status" => fields.put("status", Kept::U64(200)),
                    "latency_ms" => fields.put("latency_ms", Kept::F64(0.25)),
                    "requestId" => fields.put_absent("requestId", FieldValue::Str("lambda")),
                    "xrayTraceId" => fields.put_absent("xrayTraceId", FieldValue::Str("1-2-3")),
                    name => {
                        let name = fields
                            .kept
                            .iter()
                            .find(|(k, _)| *k == name)
                            .expect("a field")
                            .0;
                        fields.put_str(name, &format!("v{n} \"{name}\""));
                    }
                }
            }
            for format in [
                LogFormat::Json,
                LogFormat::Lambda { text: false },
                LogFormat::Azure,
                LogFormat::CloudRun {
                    project: Some("p".into()),
                },
                LogFormat::Text,
            ] {
                let layer = PlatformLayer::new(format.clone());
                let mut planned = Vec::new();
                layer.request_line(&mut planned, &plan, &fields);
                let mut looked = Vec::new();
                layer.line(&mut looked, Level::INFO, Message::Request, &fields);
                assert_eq!(
                    timeless(&planned),
                    timeless(&looked),
                    "{format:?}, case {round}"
                );
                if format == LogFormat::Json {
                    let line: Value = serde_json::from_slice(&planned).expect("json");
                    for name in *given {
                        let key = match *name {
                            "request_id" => "requestId",
                            "path" => continue,
                            key => key,
                        };
                        assert!(line.get(key).is_some(), "{key} in {line}");
                    }
                    assert_eq!(line.get("path"), None, "{line}");
                    // A field never given a value is not written at all.
                    for (name, _) in fields.kept.iter().take(plan.own) {
                        let key = if *name == "request_id" {
                            "requestId"
                        } else {
                            name
                        };
                        if !given.contains(name) {
                            assert_eq!(line.get(key), None, "{key} in {line}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_field_recorded_again_and_again_keeps_its_buffer_bounded() {
        let mut fields = Fields::with_capacity(2);
        fields.put_str("outcome", "first");
        fields.put("status", Kept::U64(200));
        for round in 0..10_000 {
            fields.put_str("outcome", &format!("round {round}"));
            assert!(
                fields.text.len() <= STALE_AT + 64,
                "{} bytes",
                fields.text.len()
            );
        }
        assert_eq!(fields.str("outcome"), Some("round 9999"));
        assert_eq!(fields.get("status"), Some(FieldValue::U64(200)));
        let names: Vec<_> = fields.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["outcome", "status"], "order kept");
    }

    #[test]
    fn escaped_text_reads_back_as_itself() {
        let mut every: String = (0u8..0x80).map(char::from).collect();
        every.push_str("é✓\u{2028}🦀 \\\" end");
        for text in [every.as_str(), "", "plain", "\"", "\\", "\u{0}"] {
            let mut out = vec![b'"'];
            escape_into(&mut out, text);
            out.push(b'"');
            let back: String = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("{text:?} as {:?}: {e}", String::from_utf8_lossy(&out)));
            assert_eq!(back, text);
        }
        // Plain text of every length takes the fast path (a false alarm would only cost time).
        for len in 0..=40 {
            assert!(
                plain("a-Z.é~".repeat(8).as_bytes().get(..len).unwrap_or_default()),
                "{len}"
            );
        }
        // Eight bytes are looked at a time: every character that needs escaping, at every
        // position of texts shorter and longer than a word, among plain and non-ASCII text.
        for special in (0u8..0x20).chain([b'"', b'\\']).map(char::from) {
            for len in 1..=19 {
                for at in 0..len {
                    let text: String = (0..len)
                        .map(|i| match i {
                            i if i == at => special,
                            i if i % 5 == 4 => 'é',
                            _ => 'a',
                        })
                        .collect();
                    let mut out = vec![b'"'];
                    escape_into(&mut out, &text);
                    out.push(b'"');
                    let back: String = serde_json::from_slice(&out).expect("json string");
                    assert_eq!(back, text);
                    assert_eq!(out, serde_json::to_vec(&text).expect("json"), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn cloud_run_lines_carry_severity_and_the_trace() {
        let layer = PlatformLayer::new(LogFormat::CloudRun {
            project: Some("p1".into()),
        });
        let mut fields = Fields::default();
        fields.put_str("trace_id", "abc");
        fields.put_str("span_id", "12");
        fields.put_str("request_id", "r1");
        let line: Value = serde_json::from_slice(&line_of(
            &layer,
            Level::WARN,
            Message::Text("GET / 200"),
            fields,
        ))
        .expect("json");
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

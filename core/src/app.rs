//! The registry endpoint: one `App` per process; a request goes through the auth gate, is routed,
//! answered, and any failure is answered and logged here.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use object_store::ObjectStore;
use percent_encoding::percent_decode_str;
use tracing::Span;
use tracing::field::{Empty, Field, Value};

use crate::answer::{json_response, written_response};
use crate::auth::{Auth, Grant, Writes};
use crate::error::Error;
use crate::extract::DistTags;
use crate::ids::{new_request_id, random_u64};
use crate::log::{Identity, Level, LogEvent, LogSink};
use crate::lookup::{Found, Lookup};
use crate::names::PackageName;
use crate::read::{ReadPolicy, StoreStats};
use crate::redact::Redactor;
use crate::route::{Route, route};
use crate::store::Store;
use crate::tags::{MAX_WRITE_BODY, TagName, version_from_body};
use crate::upstream::Upstream;
use crate::write::{Change, TagWriter, Written};

/// What the shim knows about a request beyond HTTP: put it in the request's extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The caller, when the platform authenticated one.
    pub identity: Option<Identity>,
    /// The platform's request id; one is made up when absent.
    pub request_id: Option<String>,
}

/// What a request's store and upstream lookups came to, for its span's last record.
#[derive(Debug, Default)]
struct Outcome {
    store: Option<&'static str>,
    upstream: Option<&'static str>,
}

impl Outcome {
    /// Records the outcome, the status and the latency in the request span at once: one record
    /// where four would each look the span up again.
    fn record(&self, span: &Span, status: u16, latency_ms: f64) {
        /// The four fields, looked up by name in the request span's callsite once.
        static FIELDS: OnceLock<Option<[Field; 4]>> = OnceLock::new();
        let Some(metadata) = span.metadata() else {
            return;
        };
        let fields = metadata.fields();
        let looked = FIELDS.get_or_init(|| {
            let field = |name| fields.field(name);
            Some([
                field("store")?,
                field("upstream")?,
                field("status")?,
                field("latency_ms")?,
            ])
        });
        // There is one request span callsite: the check is for its fields being its own.
        let Some([store, upstream, status_field, latency]) = looked
            .as_ref()
            .filter(|[store, ..]| store.callsite() == metadata.callsite())
        else {
            return;
        };
        let values: [(&Field, Option<&dyn Value>); 4] = [
            (store, self.store.as_ref().map(|v| v as &dyn Value)),
            (upstream, self.upstream.as_ref().map(|v| v as &dyn Value)),
            (status_field, Some(&status)),
            (latency, Some(&latency_ms)),
        ];
        // `value_set` is how tracing's own macros build a record: hidden from its documentation,
        // kept stable with them.
        span.record_all(&fields.value_set(&values));
    }
}

/// Renders the process' metrics as Prometheus text, for `GET /-/metrics`.
pub type MetricsText = Arc<dyn Fn() -> String + Send + Sync>;

/// The registry endpoint: one per process, shared by all requests.
pub struct App {
    metrics: Option<MetricsText>,
    lookup: Lookup,
    writer: TagWriter,
    writes: Writes,
    log: Arc<dyn LogSink>,
    base_path: String,
    redactor: Redactor,
    auth: Auth,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("store", self.lookup.store())
            .field("upstream", &self.lookup.has_upstream())
            .field("base_path", &self.base_path)
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

const DIST_TAGS_COMMAND: &str = "dist-tags:get";

impl App {
    /// An app over `store`, asking `upstream` for what the store lacks, logging to `log`.
    pub fn new(
        store: impl Into<Store>,
        upstream: Option<Arc<dyn Upstream>>,
        log: Arc<dyn LogSink>,
    ) -> Self {
        let store = store.into();
        let budget = crate::vars::REQUEST_TIMEOUT_MS.default_duration();
        Self {
            metrics: None,
            writer: TagWriter::new(store.clone(), budget),
            writes: Writes::Off,
            lookup: Lookup::new(
                store,
                upstream,
                format!("disttags-{:016x}", random_u64()),
                budget,
            ),
            log,
            base_path: String::new(),
            redactor: Redactor::default(),
            auth: Auth::default(),
        }
    }

    /// Serves the registry under `base_path` (e.g. `/registry`); `/` serves it at the root.
    pub fn with_base_path(mut self, base_path: &str) -> Self {
        self.base_path = base_path.trim_end_matches('/').to_owned();
        self
    }

    /// Values that are replaced by `[redacted]` wherever they would appear in a log event.
    pub fn with_secrets(mut self, secrets: Vec<String>) -> Self {
        self.redactor = Redactor::new(secrets);
        self
    }

    /// Names this server in the `Via` of its upstream requests. Instances of one deployment should
    /// share a name ([`crate::deployment_name`]: [`Config`](crate::Config) does this); without
    /// one, each app has a random name of its own and only a loop back to itself is told.
    pub fn with_via_name(mut self, name: String) -> Self {
        self.lookup.set_via_name(name);
        self
    }

    /// Requires one of these bearer tokens on every route but `/-/ping`.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Who may change tags; writes are off until this says otherwise.
    pub fn with_writes(mut self, writes: Writes) -> Self {
        self.writes = writes;
        self
    }

    /// One request's budget: a lookup's store reads and upstream call with their retries, whatever
    /// hangs (a local file can stall as a network can), or one tag write's reads and writes back,
    /// its retries after a conflict included. A store that does not answer within it is a `500`,
    /// an upstream a `504`. Not bounded: the one `stat()` that revalidates a cached file on a
    /// local disk.
    pub fn with_request_timeout(mut self, budget: Duration) -> Self {
        self.lookup.set_budget(budget);
        self.writer.set_budget(budget);
        self
    }

    /// Answers `GET /-/metrics` with what `render` returns (guarded like every route but
    /// `/-/ping`); without it that route is a 404.
    pub fn with_metrics(mut self, render: MetricsText) -> Self {
        self.metrics = Some(render);
        self
    }

    /// How tags read from the store are cached and revalidated; what is cached is dropped.
    pub fn with_read_policy(mut self, policy: ReadPolicy) -> Self {
        self.lookup.set_read_policy(policy);
        self
    }

    /// The store this app reads.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        self.lookup.store().object_store()
    }

    /// Counters of store traffic since start.
    pub fn stats(&self) -> StoreStats {
        self.lookup.stats()
    }

    /// Answers one request; every failure is already a response. The request is one span (its id,
    /// trace context, method, path, route, package, status, latency), whose close is the request's
    /// one line; its id is echoed in `x-request-id`.
    pub async fn handle<B: AsRef<[u8]>>(&self, mut request: Request<B>) -> Response<Bytes> {
        let began = Instant::now();
        let mut context = request
            .extensions_mut()
            .remove::<RequestContext>()
            .unwrap_or_default();
        let request_id = context
            .request_id
            .take()
            .or_else(|| crate::telemetry::client_request_id(request.headers()))
            .unwrap_or_else(new_request_id);
        let trace = crate::telemetry::TraceContext::from_headers(request.headers());
        let routed = self
            .relative_path(&request)
            .ok_or(Error::RouteNotFound)
            .and_then(|path| route(path, request.method()));
        let label = routed.as_ref().map_or("none", Route::label);
        let package = match routed {
            Ok(Route::DistTags(name) | Route::Tag { name, .. }) => Some(name),
            _ => None,
        };
        // The fields' values are only worked out when the span is on.
        let span = tracing::info_span!(
            target: crate::telemetry::REQUEST_TARGET,
            "request",
            request_id = request_id.as_str(),
            trace_id = trace.trace_id.as_deref(),
            span_id = trace.span_id.as_deref(),
            method = request.method().as_str(),
            path = &*self.redactor.redact(request.uri().path()),
            route = label,
            package = package
                .map(|name| if name.contains('%') {
                    percent_decode_str(name).decode_utf8_lossy()
                } else {
                    name.into()
                })
                .as_deref(),
            store = Empty,
            upstream = Empty,
            status = Empty,
            latency_ms = Empty,
        );
        let mut outcome = Outcome::default();
        let answer = self.route_and_answer(routed, &request, context, &request_id, &mut outcome);
        let mut response = crate::telemetry::in_span(&span, answer).await;
        let status = response.status().as_u16();
        let latency = began.elapsed();
        // The span's line is written when it closes, at the end of this function.
        outcome.record(&span, status, (latency.as_secs_f64() * 1e6).round() / 1e3);
        let method = match *request.method() {
            Method::GET => "GET",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            _ => "other",
        };
        metrics::counter!(
            "disttags_requests_total",
            "route" => label,
            "method" => method,
            "status" => status.to_string()
        )
        .increment(1);
        metrics::histogram!("disttags_request_duration_seconds", "route" => label)
            .record(latency.as_secs_f64());
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", id);
        }
        response
    }

    /// Authorizes and answers the route the request was given.
    async fn route_and_answer<B: AsRef<[u8]>>(
        &self,
        routed: Result<Route<'_>, Error>,
        request: &Request<B>,
        mut context: RequestContext,
        request_id: &str,
        outcome: &mut Outcome,
    ) -> Response<Bytes> {
        if let Ok(Route::Tag { name, tag }) = routed {
            // Boxed, as the read path's store calls are: no reader carries a write's future.
            return Box::pin(self.write_tag(request, context, request_id, name, tag)).await;
        }
        let routed = match self.authorize(request) {
            Ok(grant) => {
                // A named token identifies the caller where the platform does not.
                context.identity = context.identity.or(grant.and_then(|g| g.identity));
                match routed {
                    Ok(route) => {
                        self.read(route, request, &context, request_id, outcome)
                            .await
                    }
                    Err(error) => Err(error),
                }
            }
            Err(denied) => Err(denied),
        };
        match routed {
            Ok(response) => response,
            Err(error) => {
                if error.status().is_server_error() {
                    self.log_error(&error, request, context.identity, request_id);
                }
                error.into_response()
            }
        }
    }

    /// Lets a request in when no token is required, it is the health check, or its token is valid.
    fn authorize<B>(&self, request: &Request<B>) -> Result<Option<Grant>, Error> {
        if !self.auth.is_enabled() || self.relative_path(request) == Some("/-/ping") {
            return Ok(None);
        }
        self.auth
            .grant(request.headers())
            .map(Some)
            .map_err(|_| Error::Unauthorized)
    }

    /// Lets a write in as the [`Writes`] policy says; the caller, as its token names it.
    fn authorize_write<B>(&self, request: &Request<B>) -> Result<Option<Identity>, Error> {
        match self.writes {
            Writes::Off => Err(Error::WritesDisabled),
            // Reads' own rules still apply to whoever may write.
            Writes::Platform | Writes::Anyone => {
                Ok(self.authorize(request)?.and_then(|g| g.identity))
            }
            Writes::Tokens => {
                let grant = self
                    .auth
                    .grant(request.headers())
                    .map_err(|_| Error::Unauthorized)?;
                if grant.write {
                    Ok(grant.identity)
                } else {
                    Err(Error::WriteForbidden)
                }
            }
        }
    }

    /// The request path below the base path, if it is below it.
    fn relative_path<'a, B>(&self, request: &'a Request<B>) -> Option<&'a str> {
        request
            .uri()
            .path()
            .strip_prefix(self.base_path.as_str())
            .filter(|rest| rest.starts_with('/'))
    }

    /// Answers a read route.
    async fn read<B>(
        &self,
        route: Route<'_>,
        request: &Request<B>,
        context: &RequestContext,
        request_id: &str,
        outcome: &mut Outcome,
    ) -> Result<Response<Bytes>, Error> {
        match route {
            Route::Ping => Ok(json_response(StatusCode::OK, Bytes::from_static(b"{}"))),
            Route::Metrics => {
                let render = self.metrics.as_ref().ok_or(Error::RouteNotFound)?;
                let mut response = Response::new(Bytes::from(render()));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                Ok(response)
            }
            Route::DistTags(raw_name) => {
                // The hot path: a package read before whose file is unchanged.
                let cached = percent_decode_str(raw_name)
                    .decode_utf8()
                    .ok()
                    .and_then(|decoded| self.lookup.unchanged_file(&decoded));
                if let Some((answer, how)) = cached {
                    outcome.store = Some(how);
                    return Ok(answer.response(request.headers()));
                }
                let name = PackageName::from_path_segment(raw_name)?;
                // Boxed: the store and upstream calls are most of the request's future, which
                // the hot path above would otherwise carry (and copy) on every request.
                let found = Box::pin(self.lookup.answer(&name, Some(request.headers()))).await?;
                outcome.store = Some(found.store);
                outcome.upstream = found.upstream;
                Ok(self.respond(found, request, context, request_id))
            }
            // Answered by `write_tag`.
            Route::Tag { .. } => Err(Error::RouteNotFound),
        }
    }

    /// The response for what a lookup found; an answer from before, served because the upstream
    /// failed, carries its `Age` and is put on the record as a warning.
    fn respond<B>(
        &self,
        found: Found,
        request: &Request<B>,
        context: &RequestContext,
        request_id: &str,
    ) -> Response<Bytes> {
        let mut response = found.answer.response(request.headers());
        let Some(stale) = found.stale else {
            return response;
        };
        let age = stale.age.as_secs();
        response
            .headers_mut()
            .insert(http::header::AGE, http::HeaderValue::from(age));
        let body = serde_json::json!({
            "status": response.status().as_u16(),
            "message": self.redactor.redact(&format!(
                "served the upstream's answer from {age} s ago: {}",
                stale.cause
            )),
            "age": age,
            "path": self.redactor.redact(request.uri().path()),
        });
        self.log.emit(&LogEvent::new(
            Level::Warn,
            DIST_TAGS_COMMAND,
            context.identity.clone(),
            request_id,
            body,
        ));
        response
    }

    /// Answers `PUT` / `DELETE …/dist-tags/{tag}` and puts it on the record: one event for each
    /// write, and for each refused write.
    async fn write_tag<B: AsRef<[u8]>>(
        &self,
        request: &Request<B>,
        mut context: RequestContext,
        request_id: &str,
        raw_name: &str,
        raw_tag: &str,
    ) -> Response<Bytes> {
        let remove = request.method() == Method::DELETE;
        let command = if remove {
            "dist-tags:delete"
        } else {
            "dist-tags:put"
        };
        let outcome = self
            .change_tag(request, &mut context, raw_name, raw_tag, remove)
            .await;
        let decoded = |raw: &str| percent_decode_str(raw).decode_utf8_lossy().into_owned();
        let (package, tag) = (decoded(raw_name), decoded(raw_tag));
        let (level, body, response) = match outcome {
            Ok(written) => (
                Level::Info,
                serde_json::json!({
                    "package": package,
                    "tag": tag,
                    "old": written.old,
                    "new": written.new,
                    "changed": written.changed,
                    "attempts": written.attempts,
                }),
                written_response(&package, &written.tags),
            ),
            Err(error) => {
                let status = error.status();
                let level = if status.is_server_error() || status == StatusCode::CONFLICT {
                    Level::Error
                } else {
                    Level::Warn
                };
                let body = serde_json::json!({
                    "status": status.as_u16(),
                    "message": self.redactor.redact(&error.to_string()),
                    "package": self.redactor.redact(&package),
                    "tag": self.redactor.redact(&tag),
                    "path": self.redactor.redact(request.uri().path()),
                });
                (level, body, error.into_response())
            }
        };
        self.log.emit(&LogEvent::new(
            level,
            command,
            context.identity,
            request_id,
            body,
        ));
        response
    }

    /// Checks who is writing and what, in the order the contract gives, then writes.
    async fn change_tag<B: AsRef<[u8]>>(
        &self,
        request: &Request<B>,
        context: &mut RequestContext,
        raw_name: &str,
        raw_tag: &str,
        remove: bool,
    ) -> Result<Written, Error> {
        let token_identity = self.authorize_write(request)?;
        context.identity = context.identity.take().or(token_identity);
        let name = PackageName::from_path_segment(raw_name)?;
        let tag = TagName::from_path_segment(raw_tag)?;
        let change = if remove {
            if tag.as_str() == "latest" {
                return Err(Error::LatestRequired);
            }
            Change::Remove { tag }
        } else {
            let body = request.body().as_ref();
            if body.len() > MAX_WRITE_BODY {
                return Err(Error::BodyTooLarge);
            }
            Change::Set {
                tag,
                version: version_from_body(body)?,
            }
        };
        let written = self.writer.write(&name, &change).await?;
        // This instance's next read sees the write without waiting for a revalidation.
        self.lookup.forget(&name);
        Ok(written)
    }

    /// The package's dist-tags: from the store, else from the upstream.
    pub async fn dist_tags(&self, name: &PackageName) -> Result<DistTags, Error> {
        let answer = match self.lookup.unchanged_file(name.as_str()) {
            Some((answer, _)) => answer,
            None => self.lookup.answer(name, None).await?.answer,
        };
        Ok(answer.tags.clone())
    }

    fn log_error<B>(
        &self,
        error: &Error,
        request: &Request<B>,
        user: Option<Identity>,
        request_id: &str,
    ) {
        let body = serde_json::json!({
            "status": error.status().as_u16(),
            "message": self.redactor.redact(&error.to_string()),
            "path": self.redactor.redact(request.uri().path()),
        });
        self.log.emit(&LogEvent::new(
            Level::Error,
            DIST_TAGS_COMMAND,
            user,
            request_id,
            body,
        ));
    }
}

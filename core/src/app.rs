//! The registry endpoint: one `App` per process; a request goes through the auth gate, is routed,
//! answered, and any failure is answered and logged here.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use object_store::ObjectStore;
use percent_encoding::percent_decode_str;

use crate::answer::json_response;
use crate::auth::Auth;
use crate::error::Error;
use crate::extract::DistTags;
use crate::ids::{new_request_id, random_u64};
use crate::log::{Identity, Level, LogEvent, LogSink};
use crate::lookup::Lookup;
use crate::names::PackageName;
use crate::read::StoreStats;
use crate::redact::Redactor;
use crate::route::{Route, route};
use crate::store::Store;
use crate::upstream::Upstream;

/// What the shim knows about a request beyond HTTP: put it in the request's extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The caller, when the platform authenticated one.
    pub identity: Option<Identity>,
    /// The platform's request id; one is made up when absent.
    pub request_id: Option<String>,
}

/// The registry endpoint: one per process, shared by all requests.
pub struct App {
    lookup: Lookup,
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
        Self {
            lookup: Lookup::new(
                store.into(),
                upstream,
                format!("disttags-{:016x}", random_u64()),
                crate::vars::STORE_TIMEOUT_MS.default_duration(),
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

    /// Bounds one lookup's store reads, whatever the store (a local file can stall as a network can).
    /// Not bounded: the one `stat()` that revalidates a cached file on a local disk.
    pub fn with_store_timeout(mut self, timeout: Duration) -> Self {
        self.lookup.set_store_timeout(timeout);
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

    /// Answers one request; every failure is already a response.
    pub async fn handle<B>(&self, mut request: Request<B>) -> Response<Bytes> {
        let mut context = request
            .extensions_mut()
            .remove::<RequestContext>()
            .unwrap_or_default();
        let routed = match self.authorize(&request) {
            Ok(token_identity) => {
                // A named token identifies the caller where the platform does not.
                context.identity = context.identity.or(token_identity);
                self.dispatch(&request).await
            }
            Err(denied) => Err(denied),
        };
        match routed {
            Ok(response) => response,
            Err(error) => {
                if error.status().is_server_error() {
                    let request_id = context.request_id.unwrap_or_else(new_request_id);
                    self.log_error(&error, &request, context.identity, &request_id);
                }
                error.into_response()
            }
        }
    }

    /// Lets a request in when no token is required, it is the health check, or its token is valid.
    fn authorize<B>(&self, request: &Request<B>) -> Result<Option<Identity>, Error> {
        if !self.auth.is_enabled() || self.relative_path(request) == Some("/-/ping") {
            return Ok(None);
        }
        self.auth
            .check(request.headers())
            .map_err(|_| Error::Unauthorized)
    }

    /// The request path below the base path, if it is below it.
    fn relative_path<'a, B>(&self, request: &'a Request<B>) -> Option<&'a str> {
        request
            .uri()
            .path()
            .strip_prefix(self.base_path.as_str())
            .filter(|rest| rest.starts_with('/'))
    }

    async fn dispatch<B>(&self, request: &Request<B>) -> Result<Response<Bytes>, Error> {
        let path = self.relative_path(request).ok_or(Error::RouteNotFound)?;
        match route(path, request.method())? {
            Route::Ping => Ok(json_response(StatusCode::OK, Bytes::from_static(b"{}"))),
            Route::DistTags(raw_name) => {
                // The hot path: a package read before whose file is unchanged.
                let cached = percent_decode_str(raw_name)
                    .decode_utf8()
                    .ok()
                    .and_then(|decoded| self.lookup.unchanged_file(&decoded));
                if let Some(answer) = cached {
                    return Ok(answer.response(request.headers()));
                }
                let name = PackageName::from_path_segment(raw_name)?;
                let answer = self.lookup.answer(&name, Some(request.headers())).await?;
                Ok(answer.response(request.headers()))
            }
        }
    }

    /// The package's dist-tags: from the store, else from the upstream.
    pub async fn dist_tags(&self, name: &PackageName) -> Result<DistTags, Error> {
        let answer = match self.lookup.unchanged_file(name.as_str()) {
            Some(answer) => answer,
            None => self.lookup.answer(name, None).await?,
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

//! Routing and the dist-tags lookup: store first, then upstream, every failure answered in one place.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Error, json_response};
use crate::extract::{DistTags, Extractor};
use crate::log::{Identity, Level, LogEvent, LogSink};
use crate::names::PackageName;
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
    store: Arc<dyn ObjectStore>,
    upstream: Option<Arc<dyn Upstream>>,
    log: Arc<dyn LogSink>,
    base_path: String,
    secrets: Vec<String>,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store.to_string())
            .field("upstream", &self.upstream.is_some())
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

const DIST_TAGS_COMMAND: &str = "dist-tags:get";

impl App {
    /// An app over `store`, asking `upstream` for what the store lacks, logging to `log`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        upstream: Option<Arc<dyn Upstream>>,
        log: Arc<dyn LogSink>,
    ) -> Self {
        Self {
            store,
            upstream,
            log,
            base_path: String::new(),
            secrets: Vec::new(),
        }
    }

    /// Serves the registry under `base_path` (e.g. `/registry`); `/` serves it at the root.
    pub fn with_base_path(mut self, base_path: &str) -> Self {
        self.base_path = base_path.trim_end_matches('/').to_owned();
        self
    }

    /// Values that are replaced by `[redacted]` wherever they would appear in a log event.
    pub fn with_secrets(mut self, secrets: Vec<String>) -> Self {
        self.secrets = secrets;
        self
    }

    /// The store this app reads.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Answers one request; every failure is already a response.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Bytes> {
        let context = request
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_default();
        let request_id = context.request_id.clone().unwrap_or_else(new_request_id);
        match self.route(&request).await {
            Ok(response) => response,
            Err(error) => {
                if error.status().is_server_error() {
                    self.log_error(&error, &request, context.identity, &request_id);
                }
                error.into_response()
            }
        }
    }

    async fn route<B>(&self, request: &Request<B>) -> Result<Response<Bytes>, Error> {
        let path = request.uri().path();
        let path = match path.strip_prefix(self.base_path.as_str()) {
            Some(rest) if rest.starts_with('/') => rest,
            _ => return Err(Error::RouteNotFound),
        };
        if path == "/-/ping" {
            allow_get(request.method())?;
            return Ok(json_response(StatusCode::OK, Bytes::from_static(b"{}")));
        }
        let raw_name = path
            .strip_prefix("/-/package/")
            .and_then(|p| p.strip_suffix("/dist-tags"))
            .ok_or(Error::RouteNotFound)?;
        allow_get(request.method())?;
        let name = PackageName::from_path_segment(raw_name)?;
        let tags = self.dist_tags(&name).await?;
        Ok(tags_response(&tags, request.headers()))
    }

    /// The package's dist-tags: from the store, else from the upstream.
    pub async fn dist_tags(&self, name: &PackageName) -> Result<DistTags, Error> {
        if let Some(tags) = self.stored_tags(name).await? {
            return Ok(tags);
        }
        let Some(upstream) = &self.upstream else {
            return Err(Error::PackageNotFound(format!("package {name} not found")));
        };
        upstream
            .dist_tags(name)
            .await?
            .ok_or_else(|| Error::PackageNotFound(format!("package {name} not found")))
    }

    /// Streams the stored packument through the extractor; `None` when the object does not exist.
    async fn stored_tags(&self, name: &PackageName) -> Result<Option<DistTags>, Error> {
        let key = name.packument_key();
        let store_error = |source| Error::Store {
            key: key.to_string(),
            source,
        };
        let result = match self.store.get(key).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                self.check_store(name).await?;
                return Ok(None);
            }
            Err(source) => return Err(store_error(source)),
        };
        let corrupt = |source| Error::Corrupt {
            key: key.to_string(),
            source,
        };
        let mut extractor = Extractor::new();
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(store_error)?;
            if let Some(tags) = extractor.feed(&chunk).map_err(corrupt)? {
                // Dropping the stream here stops the transfer: the rest is never read.
                return Ok(Some(tags));
            }
        }
        extractor.finish().map(Some).map_err(corrupt)
    }

    /// Tells a missing object from a missing bucket, which object_store reports alike on a read.
    async fn check_store(&self, name: &PackageName) -> Result<(), Error> {
        match self.store.list_with_delimiter(Some(&name.prefix())).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotFound { path, .. }) => Err(Error::StoreMissing(path)),
            Err(source) => Err(Error::Store {
                key: name.prefix().to_string(),
                source,
            }),
        }
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
            "message": self.redact(&error.to_string()),
            "path": self.redact(request.uri().path()),
        });
        self.log.emit(&LogEvent::new(
            Level::Error,
            DIST_TAGS_COMMAND,
            user,
            request_id,
            body,
        ));
    }

    /// Removes configured secrets and URL query strings (signatures, SAS tokens) from a message.
    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        redact_queries(&text)
    }
}

fn allow_get(method: &Method) -> Result<(), Error> {
    if method == Method::GET {
        Ok(())
    } else {
        Err(Error::MethodNotAllowed { allow: "GET" })
    }
}

/// 200 with the tags and their ETag, or 304 when the client already has them.
fn tags_response(tags: &DistTags, request_headers: &HeaderMap) -> Response<Bytes> {
    let body = tags.to_json();
    let etag = format!("\"{:016x}\"", fnv1a(&body));
    let mut response = if if_none_match(request_headers, &etag) {
        let mut r = Response::new(Bytes::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        json_response(StatusCode::OK, Bytes::from(body))
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Whether any `If-None-Match` entry matches `etag` (weak comparison, as RFC 9110 asks for GET).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// FNV-1a: stable across builds and processes, so every instance gives the same ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{:016x}", fnv1a(&start.to_le_bytes()) ^ n)
}

/// Replaces the query string of every URL in `text`.
fn redact_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ','))
            .map_or(rest.len(), |e| at + e);
        let url = &rest[..end];
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?[redacted]");
            }
            None => out.push_str(url),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_redacted() {
        assert_eq!(
            redact_queries("GET https://acct.blob/x?sig=abc&se=1 failed, see http://h/p"),
            "GET https://acct.blob/x?[redacted] failed, see http://h/p"
        );
    }

    #[test]
    fn etag_matching() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(if_none_match(&h, "\"b\""));
        assert!(!if_none_match(&h, "\"c\""));
    }
}

//! The upstream registry: asked for a package's dist-tags when the store does not have it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue, StatusCode};
use reqwest::header::{ACCEPT, CACHE_CONTROL, ETAG, IF_NONE_MATCH, VIA};

use crate::cache::{Cache, Flights, Weigh};
use crate::error::{Error, with_causes};
use crate::extract::{DistTags, Extractor, MAX_DIST_TAGS_LEN};
use crate::names::PackageName;

/// A registry that may know packages the store does not.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// The package's dist-tags; `Ok(None)` when the upstream says it does not exist. `via` is the
    /// `Via` header to send: the hops the request has come through, this server last. No answer
    /// by `deadline` is an [`Error::UpstreamTimeout`].
    async fn dist_tags(
        &self,
        name: &PackageName,
        via: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Fetched>, Error>;
}

/// Tags the upstream gave, now or (when it fails now) before.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The tags.
    pub tags: DistTags,
    /// Set when these are the tags of an earlier answer, served because the upstream failed.
    pub stale: Option<Stale>,
    /// How they were had: `fresh` (reused), `fetched`, `revalidated` (a `304`), `shared` (another
    /// lookup's call), `stale`.
    pub outcome: &'static str,
}

/// Why and since when an answer is served from before.
#[derive(Debug, Clone)]
pub struct Stale {
    /// How long ago the upstream gave these tags (the `Age` header).
    pub age: Duration,
    /// How the upstream failed this time.
    pub cause: Arc<Error>,
}

/// An upstream answer, kept to be reused while fresh, revalidated with its ETag after, and served
/// stale for a while when the upstream fails.
#[derive(Debug)]
struct Remembered {
    tags: DistTags,
    /// When the upstream gave (or confirmed) these tags.
    fetched: Instant,
    /// Reused without asking until then.
    fresh_until: Instant,
    etag: Option<HeaderValue>,
    /// Whether it came from the dist-tags endpoint (else from the packument): which URL its ETag
    /// belongs to.
    endpoint: bool,
    /// `fetched`, or `revalidated` when a `304` confirmed the tags from before.
    how: &'static str,
}

impl Weigh for Arc<Remembered> {
    fn bytes(&self) -> usize {
        use crate::cache::{ALLOCATION, tags_bytes};
        std::mem::size_of::<Remembered>()
            + 2 * ALLOCATION
            + tags_bytes(&self.tags)
            + self.etag.as_ref().map_or(0, HeaderValue::len)
    }
}

type Outcome = Result<Option<Arc<Remembered>>, Arc<Error>>;

/// An npm registry over HTTP; one client, built once, shared by all requests.
pub struct HttpUpstream {
    client: reqwest::Client,
    /// Base URL, ending in `/`.
    base: String,
    /// Set once the upstream has answered the dist-tags endpoint: from then on its 404 is final.
    has_endpoint: AtomicBool,
    /// How long a found package's tags are reused; never longer than the upstream's `Cache-Control`.
    ttl: Duration,
    /// One lookup, every request and retry included.
    deadline: Duration,
    /// How long after the upstream last gave a package's tags they are served when it fails.
    stale_if_error: Duration,
    cache: Cache<Arc<Remembered>>,
    flights: Flights<Outcome>,
}
/// Retries of a transient failure (connection refused, 502/503/504), each after a longer pause.
const RETRIES: u32 = 2;
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

impl fmt::Debug for HttpUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The base URL may carry credentials: it is not printed.
        f.debug_struct("HttpUpstream").finish_non_exhaustive()
    }
}

/// npm's abbreviated packument, preferred, with the full document as a fallback.
const PACKUMENT_ACCEPT: &str =
    "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";

impl HttpUpstream {
    /// An upstream at `base` using `client`, each lookup bounded by `deadline`, answers reused for
    /// `ttl`, no answer served stale, at most 32 MiB of answers kept (see [`Self::with_cache`]).
    /// Call [`crate::tls::install`] before building `client`: reqwest is built without a TLS
    /// crypto provider of its own, and building a client with none installed panics.
    pub fn new(
        client: reqwest::Client,
        base: &url::Url,
        ttl: Duration,
        deadline: Duration,
    ) -> Self {
        let mut base = base.as_str().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        Self {
            client,
            base,
            has_endpoint: AtomicBool::new(false),
            ttl,
            deadline,
            stale_if_error: Duration::ZERO,
            cache: Cache::new(crate::cache::default_bytes()),
            flights: Flights::default(),
        }
    }

    /// Serves a package's last good tags for `window` after the upstream gave them, when it fails
    /// now (5xx, a reset, a timeout); zero: never.
    pub fn with_stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Keeps at most `bytes` of answers (and `bytes / MIN_ENTRY_BYTES` of them).
    pub fn with_cache(mut self, bytes: u64) -> Self {
        self.cache = Cache::new(bytes);
        self
    }

    /// Remembers `tags` for reuse while both our ttl and the answer's `Cache-Control` allow, and
    /// beyond, for revalidation and for the stale-if-error window, unless `Cache-Control` forbids
    /// storing it.
    fn remember(
        &self,
        name: &PackageName,
        headers: &HeaderMap,
        tags: DistTags,
        endpoint: bool,
        how: &'static str,
    ) -> Arc<Remembered> {
        let ttl = cache_lifetime(headers).map_or(self.ttl, |allowed| allowed.min(self.ttl));
        let now = Instant::now();
        let remembered = Arc::new(Remembered {
            tags,
            fetched: now,
            fresh_until: now + ttl,
            etag: headers.get(ETAG).cloned(),
            endpoint,
            how,
        });
        if storable(headers) && (!ttl.is_zero() || !self.stale_if_error.is_zero()) {
            self.cache.insert(name.as_str(), remembered.clone());
        } else {
            self.cache.remove(name.as_str());
        }
        remembered
    }

    /// One GET, retried with backoff while the failure is transient; the lookup's deadline bounds
    /// it all. `etag` makes it conditional.
    async fn get(
        &self,
        url: &str,
        accept: &str,
        via: &str,
        etag: Option<&HeaderValue>,
    ) -> Result<reqwest::Response, Error> {
        let mut attempt = 0;
        loop {
            let mut request = self.client.get(url).header(ACCEPT, accept).header(VIA, via);
            if let Some(etag) = etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            metrics::counter!("disttags_upstream_requests_total").increment(1);
            let result = request.send().await;
            let transient = match &result {
                Err(e) => e.is_connect(),
                Ok(r) => matches!(r.status().as_u16(), 502..=504),
            };
            if !transient || attempt >= RETRIES {
                return result.map_err(transport_error);
            }
            attempt += 1;
            tokio::time::sleep(RETRY_BACKOFF * attempt).await;
        }
    }

    /// The dist-tags endpoint, then the abbreviated packument where the upstream lacks the
    /// endpoint; an answer remembered from before is revalidated with its ETag.
    async fn lookup(
        &self,
        name: &PackageName,
        via: &str,
        before: Option<&Remembered>,
    ) -> Result<Option<Arc<Remembered>>, Error> {
        let validator = |endpoint: bool| {
            before
                .filter(|b| b.endpoint == endpoint)
                .and_then(|b| b.etag.as_ref())
        };
        let not_modified = |headers: &HeaderMap, endpoint: bool| {
            let tags = before.map(|b| b.tags.clone()).unwrap_or_default();
            Ok(Some(self.remember(
                name,
                headers,
                tags,
                endpoint,
                "revalidated",
            )))
        };
        let segment = name.upstream_segment();
        let endpoint = format!("{}-/package/{segment}/dist-tags", self.base);
        let response = self
            .get(&endpoint, "application/json", via, validator(true))
            .await?;
        match response.status() {
            StatusCode::OK => {
                self.has_endpoint.store(true, Ordering::Relaxed);
                let headers = response.headers().clone();
                let tags = Self::read_tags(response).await?;
                return Ok(Some(self.remember(name, &headers, tags, true, "fetched")));
            }
            StatusCode::NOT_MODIFIED if validator(true).is_some() => {
                self.has_endpoint.store(true, Ordering::Relaxed);
                return not_modified(response.headers(), true);
            }
            StatusCode::NOT_FOUND if self.has_endpoint.load(Ordering::Relaxed) => return Ok(None),
            // A registry without the endpoint: ask for the (abbreviated) packument instead.
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => {}
            other => return Err(status_error(other)),
        }
        let response = self
            .get(
                &format!("{}{segment}", self.base),
                PACKUMENT_ACCEPT,
                via,
                validator(false),
            )
            .await?;
        match response.status() {
            StatusCode::OK => {
                let headers = response.headers().clone();
                let tags = Self::read_packument(response).await?;
                Ok(Some(self.remember(name, &headers, tags, false, "fetched")))
            }
            StatusCode::NOT_MODIFIED if validator(false).is_some() => {
                not_modified(response.headers(), false)
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
            other => Err(status_error(other)),
        }
    }

    /// Reads the dist-tags endpoint's small answer, refusing one that is too large to be dist-tags.
    async fn read_tags(mut response: reqwest::Response) -> Result<DistTags, Error> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DIST_TAGS_LEN {
                return Err(Error::UpstreamInvalid("dist-tags answer too large".into()));
            }
        }
        serde_json::from_slice(&body).map_err(|e| {
            Error::UpstreamInvalid(format!("dist-tags answer is not a tag object: {e}"))
        })
    }

    /// Streams a packument through the extractor, stopping as soon as its dist-tags are complete.
    async fn read_packument(mut response: reqwest::Response) -> Result<DistTags, Error> {
        let mut extractor = Extractor::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if let Some(tags) = extractor
                .feed(&chunk)
                .map_err(|e| Error::UpstreamInvalid(e.to_string()))?
            {
                return Ok(tags);
            }
        }
        extractor
            .finish()
            .map_err(|e| Error::UpstreamInvalid(e.to_string()))
    }
}

#[async_trait]
impl Upstream for HttpUpstream {
    /// A fresh remembered answer, else one lookup shared by every concurrent caller for `name`
    /// (bounded by the first caller's deadline and the lookup's own), else, when that fails, the
    /// last good answer within the stale-if-error window.
    async fn dist_tags(
        &self,
        name: &PackageName,
        via: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Fetched>, Error> {
        let before = self.cache.get(name.as_str());
        if let Some(before) = &before
            && Instant::now() < before.fresh_until
        {
            count("fresh");
            return Ok(Some(Fetched {
                tags: before.tags.clone(),
                stale: None,
                outcome: "fresh",
            }));
        }
        let deadline = deadline.min(tokio::time::Instant::now() + self.deadline);
        let timed_out = || Error::UpstreamTimeout("no answer within the request's budget".into());
        let (outcome, led) = self
            .flights
            .run_by(
                name.as_str(),
                deadline,
                timed_out,
                self.lookup(name, via, before.as_deref()),
            )
            .await;
        let fetched = match outcome {
            Ok(Some(found)) => Ok(Some(Fetched {
                tags: found.tags.clone(),
                stale: None,
                outcome: if led { found.how } else { "shared" },
            })),
            Ok(None) => {
                self.cache.remove(name.as_str());
                Ok(None)
            }
            Err(cause) => self.stale(name, cause),
        };
        count(match &fetched {
            Ok(Some(f)) => f.outcome,
            Ok(None) => "not_found",
            Err(_) => "error",
        });
        fetched
    }
}

impl HttpUpstream {
    /// The last good answer for `name`, when the upstream failed the way an outage does and the
    /// answer is within the stale-if-error window; else the failure.
    fn stale(&self, name: &PackageName, cause: Arc<Error>) -> Result<Option<Fetched>, Error> {
        let outage = matches!(
            *cause,
            Error::UpstreamUnavailable(_) | Error::UpstreamTimeout(_)
        );
        let last = self
            .cache
            .get(name.as_str())
            .filter(|_| outage)
            .map(|last| (last.fetched.elapsed(), last))
            .filter(|(age, _)| *age < self.stale_if_error);
        match last {
            Some((age, last)) => Ok(Some(Fetched {
                tags: last.tags.clone(),
                stale: Some(Stale { age, cause }),
                outcome: "stale",
            })),
            None => Err(Error::Shared(cause)),
        }
    }
}

/// Counts an upstream lookup by how it was answered, and as a hit or a miss of the answer cache.
fn count(how: &'static str) {
    let hit = match how {
        "fresh" | "revalidated" | "stale" => Some(true),
        "fetched" | "not_found" => Some(false),
        _ => None,
    };
    crate::cache::count_lookup("disttags_upstream_lookups_total", "upstream", how, hit);
}

/// Whether `Cache-Control` lets a shared cache store the answer at all.
fn storable(headers: &HeaderMap) -> bool {
    !headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim();
            d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("private")
        })
}

/// How long `Cache-Control` lets an answer be reused: `None` when it does not say, zero when it forbids it.
fn cache_lifetime(headers: &HeaderMap) -> Option<Duration> {
    let mut lifetime = None;
    for directive in headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let directive = directive.trim().to_ascii_lowercase();
        if matches!(directive.as_str(), "no-store" | "no-cache" | "private") {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = directive
            .strip_prefix("s-maxage=")
            .or_else(|| directive.strip_prefix("max-age="))
        {
            let seconds = Duration::from_secs(seconds.trim_matches('"').parse().unwrap_or(0));
            lifetime = Some(lifetime.map_or(seconds, |l: Duration| l.min(seconds)));
        }
    }
    lifetime
}

fn status_error(status: StatusCode) -> Error {
    // A registry behind the upstream found the request had come round: a loop on this server's
    // path too, passed back as such (disttags and Verdaccio retry a 502, which would multiply it).
    if status == StatusCode::LOOP_DETECTED {
        return Error::UpstreamLoop;
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Error::UpstreamUnavailable(format!("it answered {status}"))
    } else {
        Error::UpstreamInvalid(format!("it answered {status}"))
    }
}

/// Classifies a transport failure; the URL is dropped because it may carry credentials. The causes
/// are kept ("connection refused", "dns error", a TLS failure): reqwest's own message alone is only
/// "error sending request".
fn transport_error(e: reqwest::Error) -> Error {
    let (timed_out, decode) = (e.is_timeout(), e.is_decode());
    let message = with_causes(&e.without_url());
    if timed_out {
        Error::UpstreamTimeout(message)
    } else if decode {
        Error::UpstreamInvalid(message)
    } else {
        Error::UpstreamUnavailable(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CACHE_CONTROL, v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn cache_control_bounds_reuse() {
        assert_eq!(cache_lifetime(&headers(&[])), None);
        assert_eq!(
            cache_lifetime(&headers(&["public, max-age=300"])),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            cache_lifetime(&headers(&["max-age=300, s-maxage=5"])),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            cache_lifetime(&headers(&["max-age=60", "no-cache"])),
            Some(Duration::ZERO)
        );
        assert_eq!(
            cache_lifetime(&headers(&["No-Store"])),
            Some(Duration::ZERO)
        );
        assert_eq!(
            cache_lifetime(&headers(&["max-age=soon"])),
            Some(Duration::ZERO)
        );
    }
}

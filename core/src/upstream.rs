//! The upstream registry: asked for a package's dist-tags when the store does not have it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::{HeaderMap, StatusCode};
use reqwest::header::{ACCEPT, CACHE_CONTROL, VIA};

use crate::cache::Cache;
use crate::error::{Error, with_causes};
use crate::extract::{DistTags, Extractor, MAX_DIST_TAGS_LEN};
use crate::names::PackageName;

/// A registry that may know packages the store does not.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// The package's dist-tags; `Ok(None)` when the upstream says it does not exist. `via` is the
    /// `Via` header to send: the hops the request has come through, this server last.
    async fn dist_tags(&self, name: &PackageName, via: &str) -> Result<Option<DistTags>, Error>;
}

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
    cache: Cache<(Instant, DistTags)>,
}

/// The most upstream answers a process remembers; past it the cache starts over.
const CACHE_ENTRIES: usize = 10_000;
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
    /// An upstream at `base` using `client`, each lookup bounded by `deadline`, answers reused for `ttl`.
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
            cache: Cache::new(CACHE_ENTRIES),
        }
    }

    fn cached(&self, name: &PackageName) -> Option<DistTags> {
        let (expires, tags) = self.cache.get(name.as_str())?;
        (Instant::now() < expires).then_some(tags)
    }

    /// Remembers `tags` for as long as both our ttl and the answer's `Cache-Control` allow.
    fn remember(&self, name: &PackageName, headers: &HeaderMap, tags: &DistTags) {
        let ttl = cache_lifetime(headers).map_or(self.ttl, |allowed| allowed.min(self.ttl));
        if ttl.is_zero() {
            return;
        }
        self.cache
            .insert(name.as_str(), (Instant::now() + ttl, tags.clone()));
    }

    /// One GET, retried with backoff while the failure is transient; the lookup's deadline bounds it all.
    async fn get(&self, url: &str, accept: &str, via: &str) -> Result<reqwest::Response, Error> {
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .get(url)
                .header(ACCEPT, accept)
                .header(VIA, via)
                .send()
                .await;
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

    /// The dist-tags endpoint, then the abbreviated packument where the upstream lacks the endpoint.
    async fn lookup(&self, name: &PackageName, via: &str) -> Result<Option<DistTags>, Error> {
        let segment = name.upstream_segment();
        let endpoint = format!("{}-/package/{segment}/dist-tags", self.base);
        let response = self.get(&endpoint, "application/json", via).await?;
        match response.status() {
            StatusCode::OK => {
                self.has_endpoint.store(true, Ordering::Relaxed);
                let headers = response.headers().clone();
                let tags = Self::read_tags(response).await?;
                self.remember(name, &headers, &tags);
                return Ok(Some(tags));
            }
            StatusCode::NOT_FOUND if self.has_endpoint.load(Ordering::Relaxed) => return Ok(None),
            // A registry without the endpoint: ask for the (abbreviated) packument instead.
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => {}
            other => return Err(status_error(other)),
        }
        let response = self
            .get(&format!("{}{segment}", self.base), PACKUMENT_ACCEPT, via)
            .await?;
        match response.status() {
            StatusCode::OK => {
                let headers = response.headers().clone();
                let tags = Self::read_packument(response).await?;
                self.remember(name, &headers, &tags);
                Ok(Some(tags))
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
    async fn dist_tags(&self, name: &PackageName, via: &str) -> Result<Option<DistTags>, Error> {
        if let Some(tags) = self.cached(name) {
            return Ok(Some(tags));
        }
        tokio::time::timeout(self.deadline, self.lookup(name, via))
            .await
            .map_err(|_| Error::UpstreamTimeout(format!("no answer within {:?}", self.deadline)))?
    }
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

//! Routing and the dist-tags lookup: store first, then upstream, every failure answered in one place.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, ObjectStore};
use percent_encoding::percent_decode_str;

use crate::auth::Auth;
use crate::config::Timeouts;
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

/// How much of a packument one ranged GET reads first: `dist-tags` sits in the first few hundred
/// bytes of a registry-written packument, and this many bytes cost one round trip on every store.
pub const PREFIX_BYTES: u64 = 64 * 1024;

/// Where packuments are read from: any object store and, when it is a local directory, a direct
/// view of it.
///
/// On a directory on a local disk the cached tags are revalidated with one `stat()` on the
/// request's own thread. `object_store`'s file store hands every read to Tokio's blocking pool, and
/// on a warm instance that hand-off (two thread wake-ups) costs several times the lookup itself.
/// On a network file system (NFS, SMB, FUSE mounts and anything else not known to be a local disk) a
/// stat can hang, and a hung stat on a worker thread would stall every request on that thread, so
/// there every lookup goes through object_store and its timeout, as on a cloud store.
#[derive(Clone)]
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    /// The file store, when it is on a local disk: its files are revalidated by `stat()`.
    files: Option<Arc<LocalFileSystem>>,
    /// The file store's root directory.
    root: Option<PathBuf>,
}

impl Store {
    /// Any object store; every lookup goes through it.
    pub fn objects(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            objects: store,
            files: None,
            root: None,
        }
    }

    /// A local directory: reads go through `object_store`; on a local disk, unchanged files are
    /// told by `stat()`.
    pub fn files(store: Arc<LocalFileSystem>) -> Self {
        let root = store
            .path_to_filesystem(&Path::from("root"))
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from));
        let on_local_disk = root.as_deref().is_some_and(on_local_disk);
        Self {
            objects: store.clone(),
            files: on_local_disk.then_some(store),
            root,
        }
    }

    /// Whether cached tags are revalidated by `stat()` (a file store on a local disk).
    pub fn revalidates_by_stat(&self) -> bool {
        self.files.is_some()
    }

    /// The object store behind this store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }
}

impl From<Arc<dyn ObjectStore>> for Store {
    fn from(store: Arc<dyn ObjectStore>) -> Self {
        Self::objects(store)
    }
}

impl From<Arc<LocalFileSystem>> for Store {
    fn from(store: Arc<LocalFileSystem>) -> Self {
        Self::files(store)
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("objects", &self.objects.to_string())
            .field("files", &self.files.is_some())
            .finish()
    }
}

/// Whether `dir` is on a file system whose `stat()` cannot hang on a network: the common local disk
/// and memory file systems. Anything else, or a `statfs` that fails, counts as not local.
#[cfg(target_os = "linux")]
fn on_local_disk(dir: &std::path::Path) -> bool {
    use nix::sys::statfs::{
        BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, F2FS_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC,
        XFS_SUPER_MAGIC, statfs,
    };
    // ext2 and ext3 share ext4's magic number.
    let local = [
        EXT4_SUPER_MAGIC,
        XFS_SUPER_MAGIC,
        BTRFS_SUPER_MAGIC,
        F2FS_SUPER_MAGIC,
        TMPFS_MAGIC,
        OVERLAYFS_SUPER_MAGIC,
    ];
    statfs(dir).is_ok_and(|fs| local.contains(&fs.filesystem_type()))
}

/// Outside Linux the file system's kind is not checked: every lookup goes through object_store.
#[cfg(not(target_os = "linux"))]
fn on_local_disk(_: &std::path::Path) -> bool {
    false
}

/// Where a cached packument lives on disk, and the metadata its ETag was made of.
#[derive(Debug, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    inode: u64,
    mtime_micros: u128,
    size: u64,
}

impl FileStamp {
    /// Reads the ETag `object_store` 0.14's `LocalFileSystem` gives a file: its inode, mtime in
    /// microseconds and size, in hex (`"{inode:x}-{mtime:x}-{size:x}"`). Were a later version to
    /// make it otherwise, nothing would parse and every lookup would take the (correct, slower)
    /// conditional GET; `tests/reads.rs` would notice.
    fn from_etag(path: PathBuf, etag: &str) -> Option<Self> {
        let mut parts = etag.strip_prefix('"')?.strip_suffix('"')?.split('-');
        let stamp = Self {
            path,
            inode: u64::from_str_radix(parts.next()?, 16).ok()?,
            mtime_micros: u128::from_str_radix(parts.next()?, 16).ok()?,
            size: u64::from_str_radix(parts.next()?, 16).ok()?,
        };
        parts.next().is_none().then_some(stamp)
    }

    /// Whether the file is still the one stamped: one `stat()`.
    fn unchanged(&self) -> bool {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return false;
        };
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0u64;
        let mtime_micros = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .unwrap_or_default()
            .as_micros();
        meta.is_file()
            && inode == self.inode
            && mtime_micros == self.mtime_micros
            && meta.len() == self.size
    }
}

/// The registry endpoint: one per process, shared by all requests.
pub struct App {
    /// How this server names itself in the `Via` header of its upstream requests, so a request
    /// that comes round again is told (see [`crate::via`]).
    via_name: String,
    store: Store,
    upstream: Option<Arc<dyn Upstream>>,
    log: Arc<dyn LogSink>,
    base_path: String,
    secrets: Vec<String>,
    cache: TagCache,
    stats: Counters,
    auth: Auth,
    store_timeout: Duration,
}

/// Store traffic since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// GET requests sent to the store.
    pub requests: u64,
    /// Body bytes received from the store.
    pub bytes: u64,
    /// Revalidations the store answered with "not modified".
    pub not_modified: u64,
    /// Lookups a local file's metadata showed unchanged, with no GET.
    pub file_checks: u64,
}

#[derive(Debug, Default)]
struct Counters {
    store_requests: AtomicU64,
    store_bytes: AtomicU64,
    not_modified: AtomicU64,
    file_checks: AtomicU64,
}

/// Tags ready to answer with: the JSON body and its ETag, made once per version of a packument.
#[derive(Debug)]
struct Answer {
    tags: DistTags,
    body: Bytes,
    etag: HeaderValue,
}

impl Answer {
    fn new(tags: DistTags) -> Arc<Self> {
        let body = Bytes::from(tags.to_json());
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a(&body)))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Arc::new(Self { tags, body, etag })
    }
}

/// Outcome of one attempt to read a stored packument.
enum Read {
    Done(Option<Arc<Answer>>),
    /// The object changed between the prefix and the rest.
    Changed,
}

enum FeedError {
    Store(object_store::Error),
    Corrupt(crate::extract::ExtractError),
}

impl FeedError {
    fn into_error(self, key: &Path) -> Error {
        match self {
            Self::Store(source) => Error::Store {
                key: key.to_string(),
                source,
            },
            Self::Corrupt(source) => Error::Corrupt {
                key: key.to_string(),
                source,
            },
        }
    }
}

/// The most packuments whose tags a process remembers; past it the cache starts over.
const CACHE_ENTRIES: usize = 10_000;

/// Tags of packuments read before, keyed by package name, valid while the store's ETag is unchanged.
#[derive(Debug, Default)]
struct TagCache(RwLock<HashMap<String, Arc<CachedTags>>>);

#[derive(Debug)]
struct CachedTags {
    etag: String,
    answer: Arc<Answer>,
    /// On a file store: the file and its metadata when it was read.
    file: Option<FileStamp>,
}

impl TagCache {
    fn get(&self, name: &str) -> Option<Arc<CachedTags>> {
        self.0.read().ok()?.get(name).cloned()
    }

    fn insert(
        &self,
        name: &str,
        etag: Option<String>,
        answer: &Arc<Answer>,
        file: Option<FileStamp>,
    ) {
        let Ok(mut map) = self.0.write() else { return };
        match etag {
            Some(etag) => {
                if map.len() >= CACHE_ENTRIES && !map.contains_key(name) {
                    map.clear();
                }
                map.insert(
                    name.to_owned(),
                    Arc::new(CachedTags {
                        etag,
                        answer: answer.clone(),
                        file,
                    }),
                );
            }
            // A store without ETags cannot revalidate: nothing is kept.
            None => {
                map.remove(name);
            }
        }
    }

    fn remove(&self, name: &str) {
        if let Ok(mut map) = self.0.write() {
            map.remove(name);
        }
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store)
            .field("upstream", &self.upstream.is_some())
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
            via_name: format!("disttags-{:016x}", random_u64()),
            store: store.into(),
            upstream,
            log,
            base_path: String::new(),
            secrets: Vec::new(),
            cache: TagCache::default(),
            stats: Counters::default(),
            auth: Auth::default(),
            store_timeout: Timeouts::default().store_total,
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

    /// Names this server in the `Via` of its upstream requests. Instances of one deployment should
    /// share a name ([`crate::via::deployment_name`]: [`Config`](crate::Config) does this); without
    /// one, each app has a random name of its own and only a loop back to itself is told.
    pub fn with_via_name(mut self, name: String) -> Self {
        self.via_name = name;
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
        self.store_timeout = timeout;
        self
    }

    /// The store this app reads.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store.objects
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
                self.route(&request).await
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

    async fn route<B>(&self, request: &Request<B>) -> Result<Response<Bytes>, Error> {
        let path = self.relative_path(request).ok_or(Error::RouteNotFound)?;
        if path == "/-/ping" {
            allow_get(request.method())?;
            return Ok(json_response(StatusCode::OK, Bytes::from_static(b"{}")));
        }
        let raw_name = path
            .strip_prefix("/-/package/")
            .and_then(|p| p.strip_suffix("/dist-tags"))
            .ok_or(Error::RouteNotFound)?;
        allow_get(request.method())?;
        // The hot path: a package read before whose file is unchanged. Only names that parsed are
        // ever cached, so a cached one needs no parsing again.
        let cached = percent_decode_str(raw_name)
            .decode_utf8()
            .ok()
            .and_then(|decoded| self.unchanged_file(&decoded));
        if let Some(answer) = cached {
            return Ok(tags_response(&answer, request.headers()));
        }
        let name = PackageName::from_path_segment(raw_name)?;
        let answer = self.answer(&name, Some(request.headers())).await?;
        Ok(tags_response(&answer, request.headers()))
    }

    /// The package's dist-tags: from the store, else from the upstream.
    pub async fn dist_tags(&self, name: &PackageName) -> Result<DistTags, Error> {
        let answer = match self.unchanged_file(name.as_str()) {
            Some(answer) => answer,
            None => self.answer(name, None).await?,
        };
        Ok(answer.tags.clone())
    }

    /// The answer from the store (revalidated with a conditional GET), else from the upstream;
    /// the caller has already tried [`Self::unchanged_file`]. `request` is the head of the request
    /// being answered, if any: its `Via` tells whether it has come round through this server before.
    async fn answer(
        &self,
        name: &PackageName,
        request: Option<&HeaderMap>,
    ) -> Result<Arc<Answer>, Error> {
        let stored = tokio::time::timeout(self.store_timeout, self.stored_tags(name))
            .await
            .map_err(|_| Error::Store {
                key: name.packument_key().to_string(),
                source: object_store::Error::Generic {
                    store: "disttags",
                    source: format!("no answer within {:?}", self.store_timeout).into(),
                },
            })?;
        if let Some(answer) = stored? {
            return Ok(answer);
        }
        let Some(upstream) = &self.upstream else {
            return Err(Error::PackageNotFound(format!("package {name} not found")));
        };
        let via = self.via(request)?;
        upstream
            .dist_tags(name, &via)
            .await?
            .map(Answer::new)
            .ok_or_else(|| Error::PackageNotFound(format!("package {name} not found")))
    }

    /// The `Via` header for an upstream request made while answering a request with `headers`
    /// (see [`crate::via`]); a request that has come round already is refused.
    fn via(&self, headers: Option<&HeaderMap>) -> Result<String, Error> {
        let incoming = headers
            .map(|h| h.get_all(header::VIA).iter())
            .into_iter()
            .flatten()
            .map(HeaderValue::as_bytes);
        crate::via::extend(incoming, &self.via_name).map_err(|_| Error::Loop)
    }

    /// The cached answer, when the store is a local directory and the file's metadata shows it
    /// unchanged: one `stat()` on this thread, no GET, no timer. A stat of a local file takes a
    /// microsecond or two; on a network file system that hangs it would hold this worker thread
    /// until the kernel gives up, where a GET through the blocking pool would time out.
    fn unchanged_file(&self, name: &str) -> Option<Arc<Answer>> {
        self.store.files.as_ref()?;
        let cached = self.cache.get(name)?;
        if !cached.file.as_ref()?.unchanged() {
            return None;
        }
        self.stats.file_checks.fetch_add(1, Ordering::Relaxed);
        Some(cached.answer.clone())
    }

    /// Caches an answer read from the store under the object's ETag (and, on a file store, the
    /// file's stamp).
    fn remember(&self, name: &PackageName, etag: Option<String>, answer: &Arc<Answer>) {
        let file = self.store.files.as_ref().and_then(|files| {
            let path = files.path_to_filesystem(name.packument_key()).ok()?;
            FileStamp::from_etag(path, etag.as_deref()?)
        });
        self.cache.insert(name.as_str(), etag, answer, file);
    }

    /// The stored packument's dist-tags; `None` when the object does not exist.
    ///
    /// A lookup revalidates the cached tags with `If-None-Match` (an unchanged object transfers no
    /// body), else reads a bounded prefix with one ranged GET, which holds `dist-tags` when it is near
    /// the start, and only then streams the rest, pinned to the same object version with `If-Match`.
    async fn stored_tags(&self, name: &PackageName) -> Result<Option<Arc<Answer>>, Error> {
        let key = name.packument_key();
        // An object replaced between the prefix and the rest is read again from the start.
        for _ in 0..3 {
            if let Read::Done(tags) = self.read_stored(name, key).await? {
                return Ok(tags);
            }
        }
        Err(Error::Store {
            key: key.to_string(),
            source: object_store::Error::Generic {
                store: "disttags",
                source: "the packument kept changing while it was read".into(),
            },
        })
    }

    async fn read_stored(&self, name: &PackageName, key: &Path) -> Result<Read, Error> {
        let store_error = |source| Error::Store {
            key: key.to_string(),
            source,
        };
        let corrupt = |source| Error::Corrupt {
            key: key.to_string(),
            source,
        };
        let cached = self.cache.get(name.as_str());
        let options = GetOptions {
            range: Some(GetRange::Bounded(0..PREFIX_BYTES)),
            if_none_match: cached.as_ref().map(|c| c.etag.clone()),
            ..GetOptions::default()
        };
        self.stats.store_requests.fetch_add(1, Ordering::Relaxed);
        let first = match self.store.objects.get_opts(key, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotModified { .. }) if cached.is_some() => {
                self.stats.not_modified.fetch_add(1, Ordering::Relaxed);
                return Ok(Read::Done(cached.map(|c| c.answer.clone())));
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.cache.remove(name.as_str());
                self.check_store(name).await?;
                return Ok(Read::Done(None));
            }
            Err(source) => return Err(store_error(source)),
        };
        let etag = first.meta.e_tag.clone();
        let size = first.meta.size;
        let mut extractor = Extractor::new();
        if let Some(tags) = self
            .feed(&mut extractor, first)
            .await
            .map_err(|e| e.into_error(key))?
        {
            let answer = Answer::new(tags);
            self.remember(name, etag, &answer);
            return Ok(Read::Done(Some(answer)));
        }
        if extractor.bytes_seen() < size {
            let options = GetOptions {
                range: Some(GetRange::Offset(extractor.bytes_seen())),
                if_match: etag.clone(),
                ..GetOptions::default()
            };
            self.stats.store_requests.fetch_add(1, Ordering::Relaxed);
            let rest = match self.store.objects.get_opts(key, options).await {
                Ok(rest) => rest,
                Err(object_store::Error::Precondition { .. }) => return Ok(Read::Changed),
                Err(object_store::Error::NotFound { .. }) => return Ok(Read::Changed),
                Err(source) => return Err(store_error(source)),
            };
            if let Some(tags) = self
                .feed(&mut extractor, rest)
                .await
                .map_err(|e| e.into_error(key))?
            {
                let answer = Answer::new(tags);
                self.remember(name, etag, &answer);
                return Ok(Read::Done(Some(answer)));
            }
        }
        let answer = Answer::new(extractor.finish().map_err(corrupt)?);
        self.remember(name, etag, &answer);
        Ok(Read::Done(Some(answer)))
    }

    /// Streams one GET's body into the extractor; stops, dropping the rest, once the tags are complete.
    async fn feed(
        &self,
        extractor: &mut Extractor,
        result: GetResult,
    ) -> Result<Option<DistTags>, FeedError> {
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(FeedError::Store)?;
            self.stats
                .store_bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if let Some(tags) = extractor.feed(&chunk).map_err(FeedError::Corrupt)? {
                return Ok(Some(tags));
            }
        }
        Ok(None)
    }

    /// Counters of store traffic since start.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            requests: self.stats.store_requests.load(Ordering::Relaxed),
            bytes: self.stats.store_bytes.load(Ordering::Relaxed),
            not_modified: self.stats.not_modified.load(Ordering::Relaxed),
            file_checks: self.stats.file_checks.load(Ordering::Relaxed),
        }
    }

    /// Tells a missing object from a missing bucket, which object_store reports alike on a read.
    async fn check_store(&self, name: &PackageName) -> Result<(), Error> {
        // object_store lists a directory that is not there as empty: the root is checked here, on
        // the blocking pool, so the lookup's timeout still bounds it.
        if let Some(root) = self.store.root.clone() {
            let display = root.display().to_string();
            let exists = tokio::task::spawn_blocking(move || root.is_dir())
                .await
                .unwrap_or(true);
            if !exists {
                return Err(Error::StoreMissing(display));
            }
        }
        match self
            .store
            .objects
            .list_with_delimiter(Some(&name.prefix()))
            .await
        {
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
fn tags_response(answer: &Answer, request_headers: &HeaderMap) -> Response<Bytes> {
    let mut response = if if_none_match(request_headers, answer.etag.as_bytes()) {
        let mut r = Response::new(Bytes::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        json_response(StatusCode::OK, answer.body.clone())
    };
    response
        .headers_mut()
        .insert(header::ETAG, answer.etag.clone());
    response
}

/// Whether any `If-None-Match` entry matches `etag` (weak comparison, as RFC 9110 asks for GET).
fn if_none_match(headers: &HeaderMap, etag: &[u8]) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|t| t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == etag)
}

/// FNV-1a: stable across builds and processes, so every instance gives the same ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// 64 random bits from the operating system; the clock's when it has none to give.
fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => fnv1a(&clock_nanos().to_le_bytes()) ^ u64::from(std::process::id()),
    }
}

fn clock_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", fnv1a(&clock_nanos().to_le_bytes()) ^ n)
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
    fn file_stamps_read_object_stores_etag() {
        let stamp = FileStamp::from_etag(PathBuf::from("p"), "\"1a-5f3e-10\"");
        assert_eq!(
            stamp,
            Some(FileStamp {
                path: PathBuf::from("p"),
                inode: 0x1a,
                mtime_micros: 0x5f3e,
                size: 0x10,
            })
        );
        for other in [
            "1a-5f3e-10",
            "\"1a-5f3e\"",
            "\"1a-5f3e-10-1\"",
            "\"x-1-1\"",
            "\"\"",
        ] {
            assert_eq!(FileStamp::from_etag(PathBuf::new(), other), None, "{other}");
        }
    }

    #[test]
    fn etag_matching() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(if_none_match(&h, b"\"b\""));
        assert!(!if_none_match(&h, b"\"c\""));
    }
}

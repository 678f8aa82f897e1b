//! The store's read protocol: revalidate what was read before, else one bounded ranged read of the
//! prefix where `dist-tags` sits, and only then the rest, pinned to the same object version.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult};

use crate::answer::Answer;
use crate::cache::{Cache, Flights, Weigh};
use crate::error::Error;
use crate::extract::{DistTags, ExtractError, Extractor};
use crate::files::FileStamp;
use crate::lookup::Deadline;
use crate::names::PackageName;
use crate::store::Store;

/// How much of a packument one ranged GET reads first: `dist-tags` sits in the first few hundred
/// bytes of a registry-written packument, and this many bytes cost one round trip on every store.
pub const PREFIX_BYTES: u64 = 64 * 1024;

/// How often one lookup reads a packument that changes between its prefix and its rest.
const READ_ATTEMPTS: usize = 3;

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
    /// Lookups answered within the revalidation window, without asking the store.
    pub fresh: u64,
    /// Lookups that waited for another lookup's read of the same name and took its outcome.
    pub shared: u64,
}

#[derive(Debug, Default)]
struct Counters {
    store_requests: AtomicU64,
    store_bytes: AtomicU64,
    not_modified: AtomicU64,
    file_checks: AtomicU64,
    fresh: AtomicU64,
    shared: AtomicU64,
}

/// Tags read before, valid while the store's ETag is unchanged.
#[derive(Debug)]
struct CachedTags {
    etag: String,
    answer: Arc<Answer>,
    /// On a file store: the file and its metadata when it was read.
    file: Option<FileStamp>,
    /// When the store last confirmed these tags (read or revalidated them).
    confirmed: Instant,
}

impl Weigh for Arc<CachedTags> {
    fn bytes(&self) -> usize {
        let file = self.file.as_ref().map_or(0, FileStamp::bytes);
        // This entry (in its `Arc`), its ETag, the answer, the file's stamp.
        std::mem::size_of::<CachedTags>()
            + 2 * crate::cache::ALLOCATION
            + self.etag.len()
            + self.answer.bytes()
            + file
    }
}

/// How the store reader caches and revalidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPolicy {
    /// At most this many bytes of cached tags (and `bytes / MIN_ENTRY_BYTES` entries).
    pub cache_bytes: u64,
    /// Cached tags are served without asking the store for this long after the store confirmed
    /// them; zero: every lookup revalidates.
    pub revalidate: Duration,
}

impl Default for ReadPolicy {
    fn default() -> Self {
        Self {
            cache_bytes: crate::cache::default_bytes(),
            revalidate: Duration::ZERO,
        }
    }
}

type Outcome = Result<Stored, Arc<Error>>;

/// How a lookup was answered by the store, as log lines and metrics name it.
pub(crate) mod outcome {
    /// Within the revalidation window: the store was not asked.
    pub(crate) const FRESH: &str = "fresh";
    /// A local file's metadata showed it unchanged.
    pub(crate) const UNCHANGED: &str = "unchanged";
    /// The store answered "not modified" to a revalidation.
    pub(crate) const NOT_MODIFIED: &str = "not_modified";
    /// The packument was read (its prefix, or more).
    pub(crate) const READ: &str = "read";
    /// The store has no such packument.
    pub(crate) const NOT_FOUND: &str = "not_found";
    /// Another lookup of the name read it; this one took its outcome.
    pub(crate) const SHARED: &str = "shared";
    /// The store failed.
    pub(crate) const ERROR: &str = "error";
}

/// What a store lookup found, and how.
pub(crate) type Stored = (Option<Arc<Answer>>, &'static str);

/// Outcome of one attempt to read a stored packument.
enum Read {
    Done(Stored),
    /// The object changed between the prefix and the rest.
    Changed,
}

enum FeedError {
    Store(object_store::Error),
    Corrupt(ExtractError),
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

/// Reads packuments' dist-tags from one store, remembering what it read.
#[derive(Debug)]
pub(crate) struct StoreReader {
    store: Store,
    cache: Cache<Arc<CachedTags>>,
    flights: Flights<Outcome>,
    revalidate: Duration,
    stats: Counters,
}

impl StoreReader {
    pub(crate) fn new(store: Store, policy: ReadPolicy) -> Self {
        Self {
            store,
            cache: Cache::new(policy.cache_bytes),
            flights: Flights::default(),
            revalidate: policy.revalidate,
            stats: Counters::default(),
        }
    }

    /// Caches and revalidates as `policy` says; what is cached is dropped.
    pub(crate) fn set_policy(&mut self, policy: ReadPolicy) {
        self.cache = Cache::new(policy.cache_bytes);
        self.revalidate = policy.revalidate;
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Counters of store traffic since start.
    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            requests: self.stats.store_requests.load(Ordering::Relaxed),
            bytes: self.stats.store_bytes.load(Ordering::Relaxed),
            not_modified: self.stats.not_modified.load(Ordering::Relaxed),
            file_checks: self.stats.file_checks.load(Ordering::Relaxed),
            fresh: self.stats.fresh.load(Ordering::Relaxed),
            shared: self.stats.shared.load(Ordering::Relaxed),
        }
    }

    /// Drops the cached tags of `name`.
    pub(crate) fn forget(&self, name: &PackageName) {
        self.cache.remove(name.as_str());
    }

    /// The cached answer, when the store is a local directory and the file's metadata shows it
    /// unchanged: one `stat()` on this thread, no GET, no timer. A stat of a local file takes a
    /// microsecond or two; on a network file system that hangs it would hold this worker thread
    /// until the kernel gives up, where a GET through the blocking pool would time out.
    ///
    /// Within the revalidation window no `stat()` is made either: see [`Self::fresh`].
    pub(crate) fn unchanged_file(&self, name: &str) -> Option<(Arc<Answer>, &'static str)> {
        self.store.local_files()?;
        let cached = self.cache.get(name)?;
        if let Some(answer) = self.fresh_in(&cached) {
            return Some((answer, outcome::FRESH));
        }
        if !cached.file.as_ref()?.unchanged() {
            return None;
        }
        self.stats.file_checks.fetch_add(1, Ordering::Relaxed);
        count(outcome::UNCHANGED);
        self.confirmed(name, &cached);
        Some((cached.answer.clone(), outcome::UNCHANGED))
    }

    /// The cached answer, when the store confirmed it within the revalidation window.
    fn fresh(&self, name: &str) -> Option<Arc<Answer>> {
        let cached = self.cache.get(name)?;
        self.fresh_in(&cached)
    }

    fn fresh_in(&self, cached: &CachedTags) -> Option<Arc<Answer>> {
        if self.revalidate.is_zero() || cached.confirmed.elapsed() >= self.revalidate {
            return None;
        }
        self.stats.fresh.fetch_add(1, Ordering::Relaxed);
        count(outcome::FRESH);
        Some(cached.answer.clone())
    }

    /// Restarts the revalidation window of tags the store has just confirmed unchanged (only
    /// when there is a window: without one the time is never read).
    fn confirmed(&self, name: &str, cached: &CachedTags) {
        if self.revalidate.is_zero() {
            return;
        }
        self.cache.insert(
            name,
            Arc::new(CachedTags {
                etag: cached.etag.clone(),
                answer: cached.answer.clone(),
                file: cached.file.clone(),
                confirmed: Instant::now(),
            }),
        );
    }

    /// The stored packument's dist-tags; `None` when the object does not exist.
    ///
    /// A lookup revalidates the cached tags with `If-None-Match` (an unchanged object transfers no
    /// body), else reads a bounded prefix with one ranged GET, which holds `dist-tags` when it is near
    /// the start, and only then streams the rest, pinned to the same object version with `If-Match`.
    ///
    /// Within the revalidation window the cached tags are the answer. Otherwise concurrent lookups
    /// of one name share one read (see [`Flights`]); each waits no longer than its own deadline,
    /// and the read itself is bounded by the deadline of the lookup that started it.
    pub(crate) async fn stored_tags(
        &self,
        name: &PackageName,
        deadline: Deadline,
    ) -> Result<Stored, Error> {
        if let Some(answer) = self.fresh(name.as_str()) {
            return Ok((Some(answer), outcome::FRESH));
        }
        let key = name.packument_key();
        let timed_out = || Error::StoreTimeout {
            key: key.to_string(),
            after: deadline.budget,
        };
        let (outcome, led) = self
            .flights
            .run_by(
                name.as_str(),
                deadline.at,
                timed_out,
                self.read_attempts(name, key),
            )
            .await;
        let outcome = match outcome {
            Ok((answer, _)) if !led => {
                self.stats.shared.fetch_add(1, Ordering::Relaxed);
                Ok((answer, outcome::SHARED))
            }
            other => other.map_err(Error::Shared),
        };
        count(match &outcome {
            Ok((_, how)) => how,
            Err(_) => outcome::ERROR,
        });
        outcome
    }

    async fn read_attempts(&self, name: &PackageName, key: &Path) -> Result<Stored, Error> {
        // An object replaced between the prefix and the rest is read again from the start.
        for _ in 0..READ_ATTEMPTS {
            if let Read::Done(tags) = self.read_stored(name, key).await? {
                return Ok(tags);
            }
        }
        Err(Error::StoreUnstable {
            key: key.to_string(),
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
        metrics::counter!("disttags_store_requests_total").increment(1);
        let objects = self.store.object_store();
        let first = match objects.get_opts(key, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotModified { .. }) if cached.is_some() => {
                self.stats.not_modified.fetch_add(1, Ordering::Relaxed);
                let answer = cached.map(|c| {
                    self.confirmed(name.as_str(), &c);
                    c.answer.clone()
                });
                return Ok(Read::Done((answer, outcome::NOT_MODIFIED)));
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.cache.remove(name.as_str());
                self.check_store(name).await?;
                return Ok(Read::Done((None, outcome::NOT_FOUND)));
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
            return Ok(Read::Done((
                Some(self.remember(name, etag, tags)),
                outcome::READ,
            )));
        }
        if extractor.bytes_seen() < size {
            let options = GetOptions {
                range: Some(GetRange::Offset(extractor.bytes_seen())),
                if_match: etag.clone(),
                ..GetOptions::default()
            };
            self.stats.store_requests.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("disttags_store_requests_total").increment(1);
            let rest = match objects.get_opts(key, options).await {
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
                return Ok(Read::Done((
                    Some(self.remember(name, etag, tags)),
                    outcome::READ,
                )));
            }
        }
        let tags = extractor.finish().map_err(corrupt)?;
        Ok(Read::Done((
            Some(self.remember(name, etag, tags)),
            outcome::READ,
        )))
    }

    /// Makes the answer for tags read from the store and caches it under the object's ETag (and, on
    /// a file store, the file's stamp). A store without ETags cannot revalidate: nothing is kept.
    fn remember(&self, name: &PackageName, etag: Option<String>, tags: DistTags) -> Arc<Answer> {
        let answer = Answer::new(tags);
        let Some(etag) = etag else {
            self.cache.remove(name.as_str());
            return answer;
        };
        let file = self.store.local_files().and_then(|files| {
            let path = files.path_to_filesystem(name.packument_key()).ok()?;
            FileStamp::from_etag(path, &etag)
        });
        self.cache.insert(
            name.as_str(),
            Arc::new(CachedTags {
                etag,
                answer: answer.clone(),
                file,
                confirmed: Instant::now(),
            }),
        );
        answer
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
            metrics::counter!("disttags_store_read_bytes_total").increment(chunk.len() as u64);
            if let Some(tags) = extractor.feed(&chunk).map_err(FeedError::Corrupt)? {
                return Ok(Some(tags));
            }
        }
        Ok(None)
    }

    /// Tells a missing object from a missing bucket, which object_store reports alike on a read.
    async fn check_store(&self, name: &PackageName) -> Result<(), Error> {
        // object_store lists a directory that is not there as empty: the root is checked here, on
        // the blocking pool, so the lookup's timeout still bounds it.
        if let Some(root) = self.store.root().map(std::path::Path::to_path_buf) {
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
            .object_store()
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
}

/// Counts a store lookup by how it was answered, and as a hit or a miss of the tag cache.
fn count(how: &'static str) {
    let hit = match how {
        outcome::FRESH | outcome::UNCHANGED | outcome::NOT_MODIFIED => Some(true),
        outcome::READ | outcome::NOT_FOUND => Some(false),
        _ => None,
    };
    crate::cache::count_lookup("disttags_store_lookups_total", "store", how, hit);
}

//! One cache type for both caches (tags read from the store, answers of the upstream), and the
//! single flight that lets concurrent lookups of one name share one read.
//!
//! Both come from `quick_cache`: its S3-FIFO eviction keeps the names in steady use when a scan of
//! rarely used ones passes through, its weight bound caps the bytes held, and its placeholders make
//! every concurrent loader of a key wait for the one that got there first.

use std::future::Future;
use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache as QuickCache;

use crate::error::Error;

/// What one cached value holds, roughly, in bytes; the cache's byte bound sums these.
pub(crate) trait Weigh {
    fn bytes(&self) -> usize;
}

/// Every entry weighs at least this much, so that a cache of `bytes` holds at most
/// `bytes / MIN_ENTRY_BYTES` entries, however small they are: one bound by bytes and by entries.
/// A small package's entry in the store cache measures about 1 KiB of resident memory (the
/// `hotset` benchmark: 50,000 of them took 52 MiB), and the weights below estimate the same.
pub const MIN_ENTRY_BYTES: u64 = 1024;

/// What the allocator spends on each heap allocation beyond its bytes (header and rounding).
pub(crate) const ALLOCATION: usize = 16;

/// What a set of tags holds on the heap: a vector of string pairs, each string an allocation.
pub(crate) fn tags_bytes(tags: &crate::extract::DistTags) -> usize {
    let strings = tags.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let pair = std::mem::size_of::<(String, String)>() + 2 * ALLOCATION;
    ALLOCATION + tags.len() * pair + strings
}

/// The bytes each cache holds unless configured otherwise (`DISTTAGS_CACHE_MB`'s default).
pub(crate) fn default_bytes() -> u64 {
    crate::vars::CACHE_MB.default_count() << 20
}

/// Bookkeeping per entry beyond its key and value: the key's `String` and its allocation, the
/// cache's slot and eviction queue entry.
const ENTRY_OVERHEAD: u64 = 24 + ALLOCATION as u64 + 64;

#[derive(Debug, Clone, Copy)]
struct ByBytes;

impl<V: Weigh> Weighter<String, V> for ByBytes {
    fn weight(&self, key: &String, value: &V) -> u64 {
        (key.len() as u64 + value.bytes() as u64 + ENTRY_OVERHEAD).max(MIN_ENTRY_BYTES)
    }
}

/// Values by package name, bounded by bytes (and so by entries, see [`MIN_ENTRY_BYTES`]); a full
/// cache evicts the entries least likely to be asked for again.
pub(crate) struct Cache<V: Weigh + Clone> {
    map: QuickCache<String, V, ByBytes>,
}

impl<V: Weigh + Clone> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.map.len())
            .field("bytes", &self.map.weight())
            .finish()
    }
}

impl<V: Weigh + Clone> Cache<V> {
    /// An empty cache holding at most `bytes` of entries.
    pub(crate) fn new(bytes: u64) -> Self {
        let bytes = bytes.max(MIN_ENTRY_BYTES);
        let entries = usize::try_from(bytes / MIN_ENTRY_BYTES).unwrap_or(usize::MAX);
        Self {
            // The estimate sizes the table up front; a quarter of the most entries it can hold
            // keeps a small cache's memory small, and the table grows when needed.
            map: QuickCache::with_weighter(entries / 4 + 16, bytes, ByBytes),
        }
    }

    /// The value cached for `name`.
    pub(crate) fn get(&self, name: &str) -> Option<V> {
        self.map.get(name)
    }

    /// Caches `value` for `name`, replacing what was there.
    pub(crate) fn insert(&self, name: &str, value: V) {
        self.map.insert(name.to_owned(), value);
    }

    /// Forgets `name`.
    pub(crate) fn remove(&self, name: &str) {
        self.map.remove(name);
    }

    /// Entries and bytes held now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, u64) {
        (self.map.len(), self.map.weight())
    }
}

/// Loads in progress, by name: the first lookup of a name runs its load, every lookup of that name
/// that comes while it runs waits for it and gets the same outcome, error included.
pub(crate) struct Flights<T: Clone> {
    /// An outcome sits here only between its load's end and the line after; the waiters take it
    /// from the placeholder they wait on.
    outcomes: QuickCache<String, T>,
}

impl<T: Clone> std::fmt::Debug for Flights<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights").finish_non_exhaustive()
    }
}

/// As many loads of distinct names at once as the flight table is sized for; past it, quick_cache
/// still keeps one placeholder per loading name (placeholders are not evicted).
const FLIGHTS: usize = 1024;

impl<T: Clone> Default for Flights<T> {
    fn default() -> Self {
        Self {
            outcomes: QuickCache::new(FLIGHTS),
        }
    }
}

impl<T: Clone> Flights<T> {
    /// `load`'s outcome, shared with every concurrent caller for `name`. When the loading caller
    /// goes away (its request was dropped), one of the waiters runs its own load instead.
    pub(crate) async fn run(&self, name: &str, load: impl Future<Output = T>) -> T {
        match self.outcomes.get_value_or_guard_async(name).await {
            Ok(outcome) => outcome,
            Err(guard) => {
                let outcome = load.await;
                // The waiters are handed the outcome by the insert; it is not kept for later
                // lookups, which must load afresh.
                let _ = guard.insert(outcome.clone());
                self.outcomes.remove(name);
                outcome
            }
        }
    }
}

impl<V: Clone> Flights<Result<V, Arc<Error>>> {
    /// [`Self::run`] for a fallible load, by `deadline`: the load that runs is bounded by the
    /// deadline of the caller that started it, each waiter by its own; either running out is
    /// `timed_out()`. Also says whether this caller ran the load itself.
    pub(crate) async fn run_by(
        &self,
        name: &str,
        deadline: tokio::time::Instant,
        timed_out: impl Fn() -> Error,
        load: impl Future<Output = Result<V, Error>>,
    ) -> (Result<V, Arc<Error>>, bool) {
        let mut led = false;
        let load = async {
            led = true;
            tokio::time::timeout_at(deadline, load)
                .await
                .unwrap_or_else(|_| Err(timed_out()))
                .map_err(Arc::new)
        };
        let outcome = tokio::time::timeout_at(deadline, self.run(name, load))
            .await
            .unwrap_or_else(|_| Err(Arc::new(timed_out())));
        (outcome, led)
    }
}

/// Counts a lookup by how it was answered (`counter`, by `outcome`), and as a hit (`Some(true)`)
/// or a miss (`Some(false)`) of `cache`.
pub(crate) fn count_lookup(
    counter: &'static str,
    cache: &'static str,
    how: &'static str,
    hit: Option<bool>,
) {
    metrics::counter!(counter, "outcome" => how).increment(1);
    match hit {
        Some(true) => metrics::counter!("disttags_cache_hits_total", "cache" => cache).increment(1),
        Some(false) => {
            metrics::counter!("disttags_cache_misses_total", "cache" => cache).increment(1);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    impl Weigh for Vec<u8> {
        fn bytes(&self) -> usize {
            self.len()
        }
    }

    #[test]
    fn bounded_by_bytes_and_entries() {
        // Small values: the entry bound (bytes / MIN_ENTRY_BYTES) holds.
        let cache = Cache::new(64 * MIN_ENTRY_BYTES);
        for i in 0..1000 {
            cache.insert(&format!("p{i}"), vec![0u8; 8]);
        }
        let (entries, bytes) = cache.held();
        assert!(entries <= 64, "{entries} entries");
        assert!(bytes <= 64 * MIN_ENTRY_BYTES, "{bytes} bytes");
        // Large values: the byte bound holds.
        let cache = Cache::new(1 << 20);
        for i in 0..100 {
            cache.insert(&format!("p{i}"), vec![0u8; 64 * 1024]);
        }
        // (64 KiB values: the byte bound, not the 1,024-entry bound, is the one that holds.)
        let (entries, bytes) = cache.held();
        assert!(bytes <= 1 << 20, "{bytes} bytes");
        assert!(entries <= 16, "{entries} entries");
        cache.insert("p99", vec![1]);
        assert_eq!(cache.get("p99"), Some(vec![1]));
        cache.remove("p99");
        assert_eq!(cache.get("p99"), None);
    }

    #[test]
    fn a_scan_does_not_flush_the_names_in_use() {
        let cache = Cache::new(1000 * MIN_ENTRY_BYTES);
        let hot: Vec<String> = (0..500).map(|i| format!("hot{i}")).collect();
        let mut hits = 0;
        let mut asked = 0;
        for round in 0..20 {
            for name in &hot {
                asked += 1;
                if cache.get(name).is_some() {
                    hits += 1;
                } else {
                    cache.insert(name, vec![0u8; 8]);
                }
            }
            // A thousand names asked once each, twice the cache's size.
            for i in 0..1000 {
                let cold = format!("cold{round}-{i}");
                if cache.get(&cold).is_none() {
                    cache.insert(&cold, vec![0u8; 8]);
                }
            }
        }
        assert!(hits * 10 > asked * 9, "{hits} hits of {asked}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_loads_of_one_name_share_one_outcome() {
        let flights = Arc::new(Flights::<Result<usize, Arc<String>>>::default());
        let loads = Arc::new(AtomicUsize::new(0));
        let run = |outcome: Result<usize, Arc<String>>| {
            let (flights, loads) = (flights.clone(), loads.clone());
            tokio::spawn(async move {
                flights
                    .run("pkg", async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        outcome
                    })
                    .await
            })
        };
        let tasks: Vec<_> = (0..64)
            .map(|_| run(Err(Arc::new("broken".into()))))
            .collect();
        for task in tasks {
            assert_eq!(task.await.expect("task"), Err(Arc::new("broken".into())));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // The outcome is not kept: the next lookup loads again.
        assert_eq!(run(Ok(7)).await.expect("task"), Ok(7));
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }
}

//! The lookup order: the store, then the upstream, unless the request has come round through this
//! server already; both within the request's one deadline.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use tracing::field::Empty;

use crate::answer::Answer;
use crate::error::Error;
use crate::names::PackageName;
use crate::read::{ReadPolicy, StoreReader, StoreStats};
use crate::store::Store;
use crate::telemetry::in_span;
use crate::upstream::{Stale, Upstream};

/// One request's budget, and the instant it runs out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub(crate) at: tokio::time::Instant,
    pub(crate) budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub(crate) fn after(budget: Duration) -> Self {
        Self {
            at: tokio::time::Instant::now() + budget,
            budget,
        }
    }
}

/// An answer, whether it is the upstream's from before because the upstream failed now, and how
/// the store and the upstream were asked (see [`crate::read::outcome`], [`crate::Fetched`]).
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) answer: Arc<Answer>,
    pub(crate) stale: Option<Stale>,
    pub(crate) store: &'static str,
    pub(crate) upstream: Option<&'static str>,
}

/// Times a phase of a lookup into its histogram.
fn observe(histogram: &'static str, began: std::time::Instant, outcome: &'static str) {
    metrics::histogram!(histogram, "outcome" => outcome).record(began.elapsed().as_secs_f64());
}

/// Where a package's dist-tags come from, in order.
pub(crate) struct Lookup {
    reader: StoreReader,
    upstream: Option<Arc<dyn Upstream>>,
    /// How this server names itself in the `Via` header of its upstream requests.
    via_name: String,
    /// Bounds one lookup, store and upstream together.
    budget: Duration,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup")
            .field("store", self.reader.store())
            .field("upstream", &self.upstream.is_some())
            .finish_non_exhaustive()
    }
}

impl Lookup {
    pub(crate) fn new(
        store: Store,
        upstream: Option<Arc<dyn Upstream>>,
        via_name: String,
        budget: Duration,
    ) -> Self {
        Self {
            reader: StoreReader::new(store, ReadPolicy::default()),
            upstream,
            via_name,
            budget,
        }
    }

    pub(crate) fn set_via_name(&mut self, name: String) {
        self.via_name = name;
    }

    pub(crate) fn set_budget(&mut self, budget: Duration) {
        self.budget = budget;
    }

    pub(crate) fn set_read_policy(&mut self, policy: ReadPolicy) {
        self.reader.set_policy(policy);
    }

    pub(crate) fn store(&self) -> &Store {
        self.reader.store()
    }

    pub(crate) fn has_upstream(&self) -> bool {
        self.upstream.is_some()
    }

    pub(crate) fn stats(&self) -> StoreStats {
        self.reader.stats()
    }

    /// Drops what was read of `name`: it was just written.
    pub(crate) fn forget(&self, name: &PackageName) {
        self.reader.forget(name);
    }

    /// The cached answer for an already-decoded name whose local file is unchanged (see
    /// [`StoreReader::unchanged_file`]). Only names that parsed are ever cached, so a hit needs no
    /// parsing again.
    pub(crate) fn unchanged_file(&self, name: &str) -> Option<(Arc<Answer>, &'static str)> {
        self.reader.unchanged_file(name)
    }

    /// The answer from the store (revalidated), else from the upstream, within one budget from
    /// now; the caller has already tried [`Self::unchanged_file`]. `request` is the head of the request being
    /// answered, if any: its `Via` tells whether it has come round through this server before.
    pub(crate) async fn answer(
        &self,
        name: &PackageName,
        request: Option<&HeaderMap>,
    ) -> Result<Found, Error> {
        let deadline = Deadline::after(self.budget);
        let span = tracing::debug_span!("store", outcome = Empty);
        let began = std::time::Instant::now();
        let stored = in_span(&span, self.reader.stored_tags(name, deadline)).await;
        let how = stored
            .as_ref()
            .map_or(crate::read::outcome::ERROR, |(_, how)| *how);
        span.record("outcome", how);
        observe("disttags_store_lookup_duration_seconds", began, how);
        if let (Some(answer), how) = stored? {
            return Ok(Found {
                answer,
                stale: None,
                store: how,
                upstream: None,
            });
        }
        let not_found = || Error::PackageNotFound(format!("package {name} not found"));
        let Some(upstream) = &self.upstream else {
            return Err(not_found());
        };
        let via = self.via(request)?;
        let span = tracing::debug_span!("upstream", outcome = Empty);
        let began = std::time::Instant::now();
        let fetched = in_span(&span, upstream.dist_tags(name, &via, deadline.at)).await;
        let outcome = match &fetched {
            Ok(Some(f)) => f.outcome,
            Ok(None) => "not_found",
            Err(_) => "error",
        };
        span.record("outcome", outcome);
        observe("disttags_upstream_lookup_duration_seconds", began, outcome);
        let fetched = fetched?.ok_or_else(not_found)?;
        Ok(Found {
            answer: Answer::new(fetched.tags),
            stale: fetched.stale,
            store: how,
            upstream: Some(outcome),
        })
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
}

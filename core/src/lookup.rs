//! The lookup order: the store, bounded by the store timeout; then the upstream, unless the request
//! has come round through this server already.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};

use crate::answer::Answer;
use crate::error::Error;
use crate::names::PackageName;
use crate::read::{StoreReader, StoreStats};
use crate::store::Store;
use crate::upstream::Upstream;

/// Where a package's dist-tags come from, in order.
pub(crate) struct Lookup {
    reader: StoreReader,
    upstream: Option<Arc<dyn Upstream>>,
    /// How this server names itself in the `Via` header of its upstream requests.
    via_name: String,
    /// Bounds one lookup's store reads.
    store_timeout: Duration,
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
        store_timeout: Duration,
    ) -> Self {
        Self {
            reader: StoreReader::new(store),
            upstream,
            via_name,
            store_timeout,
        }
    }

    pub(crate) fn set_via_name(&mut self, name: String) {
        self.via_name = name;
    }

    pub(crate) fn set_store_timeout(&mut self, timeout: Duration) {
        self.store_timeout = timeout;
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
    pub(crate) fn unchanged_file(&self, name: &str) -> Option<Arc<Answer>> {
        self.reader.unchanged_file(name)
    }

    /// The answer from the store (revalidated), else from the upstream; the caller has already
    /// tried [`Self::unchanged_file`]. `request` is the head of the request being answered, if
    /// any: its `Via` tells whether it has come round through this server before.
    pub(crate) async fn answer(
        &self,
        name: &PackageName,
        request: Option<&HeaderMap>,
    ) -> Result<Arc<Answer>, Error> {
        let stored = tokio::time::timeout(self.store_timeout, self.reader.stored_tags(name))
            .await
            .map_err(|_| Error::StoreTimeout {
                key: name.packument_key().to_string(),
                after: self.store_timeout,
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
}

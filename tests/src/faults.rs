//! FaultInjectingStore: an in-process wrapper over a real store that fails the ways no real server
//! here can be made to fail on cue (an error on every read, a stall, a body that breaks off or never
//! ends). Everything but the injected fault is the wrapped store's own behaviour. It also counts
//! the reads it passes on, so that a test can tell how many requests a real store was sent.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// What the next reads do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Reads pass through.
    None,
    /// Every read fails with a (non-"not found") error.
    Fail,
    /// Every read stalls this long before passing through.
    Stall(Duration),
    /// The body breaks off with an error after its first chunk.
    BreakMidBody,
    /// The body never ends: `{"readme":"` and then `x` forever, arriving slowly.
    EndlessBody,
    /// The store reports every object and listing as missing, as a deleted bucket can look.
    Vanished,
    /// Every read fails with this text as the store's error, as a client library might word it
    /// (a signed URL, a credential).
    FailWith(&'static str),
}

/// A real store with one injected fault on reads.
pub struct FaultInjectingStore {
    inner: Arc<dyn ObjectStore>,
    fault: Mutex<Fault>,
    reads: AtomicUsize,
}

impl FaultInjectingStore {
    /// Wraps `inner`; reads pass through until [`Self::inject`].
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            fault: Mutex::new(Fault::None),
            reads: AtomicUsize::new(0),
        }
    }

    /// Sets the fault for the following reads.
    pub fn inject(&self, fault: Fault) {
        *self.fault.lock().expect("lock") = fault;
    }

    /// GET requests (whole or ranged) asked of the store so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    fn fault(&self) -> Fault {
        *self.fault.lock().expect("lock")
    }
}

impl fmt::Debug for FaultInjectingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultInjectingStore({:?})", self.fault())
    }
}

impl fmt::Display for FaultInjectingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultInjectingStore({})", self.inner)
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultInjectingStore",
        source: format!("injected fault: {what}").into(),
    }
}

#[async_trait]
impl ObjectStore for FaultInjectingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        match self.fault() {
            Fault::None => self.inner.get_opts(location, options).await,
            Fault::Fail => Err(injected("read failed")),
            Fault::FailWith(text) => Err(injected(text)),
            Fault::Vanished => Err(object_store::Error::NotFound {
                path: location.to_string(),
                source: "injected fault: the bucket is gone".into(),
            }),
            Fault::Stall(pause) => {
                tokio::time::sleep(pause).await;
                self.inner.get_opts(location, options).await
            }
            Fault::BreakMidBody => {
                let first = self
                    .inner
                    .get_opts(location, options.clone())
                    .await?
                    .into_stream()
                    .next()
                    .await;
                let mut result = self.inner.get_opts(location, options).await?;
                result.payload = GetResultPayload::Stream(
                    stream::iter(first)
                        .chain(stream::once(async {
                            Err(injected("connection reset mid-body"))
                        }))
                        .boxed(),
                );
                Ok(result)
            }
            Fault::EndlessBody => {
                let mut result = self.inner.get_opts(location, options).await?;
                result.payload = GetResultPayload::Stream(
                    stream::once(async { Ok(Bytes::from_static(br#"{"readme":""#)) })
                        .chain(stream::unfold((), |()| async {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            Some((Ok(Bytes::from(vec![b'x'; 64 * 1024])), ()))
                        }))
                        .boxed(),
                );
                Ok(result)
            }
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        match self.fault() {
            Fault::Fail => Err(injected("list failed")),
            Fault::Vanished => Err(object_store::Error::NotFound {
                path: prefix.map(|p| p.to_string()).unwrap_or_default(),
                source: "injected fault: the bucket is gone".into(),
            }),
            _ => self.inner.list_with_delimiter(prefix).await,
        }
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

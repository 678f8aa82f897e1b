//! Tag writes with no lost update: read the packument with its version, change only `dist-tags`,
//! write it back on that version (`PutMode::Update`: an ETag or, on GCS, a generation); when another
//! writer got there first, read again and apply the change again, after a jittered pause, for as
//! long as the write's budget allows. A file store, which has no conditional update, takes an
//! exclusive lock on the document instead and replaces it by an atomic rename.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Write as _};
use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use object_store::path::Path;
use object_store::{GetOptions, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use tokio::time::Instant;

use crate::edit::{Packument, Unwritable};
use crate::error::Error;
use crate::extract::{DistTags, MAX_DIST_TAGS_LEN};
use crate::ids::random_u64;
use crate::names::PackageName;
use crate::store::Store;
use crate::tags::TagName;

/// The first pause after a conflict; each later one may be up to twice as long, up to the cap.
const FIRST_PAUSE: Duration = Duration::from_millis(4);
/// The longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// What a write does to one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Points `tag` at `version` (`PUT`).
    Set {
        /// The tag.
        tag: TagName,
        /// The version, which must be one of the packument's `versions`.
        version: String,
    },
    /// Removes `tag` (`DELETE`).
    Remove {
        /// The tag.
        tag: TagName,
    },
}

impl Change {
    pub(crate) fn tag(&self) -> &TagName {
        match self {
            Self::Set { tag, .. } | Self::Remove { tag } => tag,
        }
    }

    fn version(&self) -> Option<&str> {
        match self {
            Self::Set { version, .. } => Some(version),
            Self::Remove { .. } => None,
        }
    }
}

/// A write that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    /// The package's tags after the write.
    pub(crate) tags: DistTags,
    /// The version the tag pointed at before, if it existed.
    pub(crate) old: Option<String>,
    /// The version it points at now, `None` once removed.
    pub(crate) new: Option<String>,
    /// Whether the document was written (a tag already at its version writes nothing).
    pub(crate) changed: bool,
    /// How many times the packument was read.
    pub(crate) attempts: u32,
}

/// One read-change-write.
enum Attempt {
    Done(Written),
    /// Another writer changed the document first, or holds its lock.
    Conflict,
}

/// The document after a change, or the tags as they are when nothing changes.
enum Applied {
    Unchanged(Written),
    Changed(Vec<u8>, Written),
}

/// Changes tags in one store.
#[derive(Debug, Clone)]
pub(crate) struct TagWriter {
    store: Store,
    budget: Duration,
}

impl TagWriter {
    pub(crate) fn new(store: Store, budget: Duration) -> Self {
        Self { store, budget }
    }

    pub(crate) fn set_budget(&mut self, budget: Duration) {
        self.budget = budget;
    }

    /// Applies `change` to `name`'s packument, within the write budget: a store that hangs is a
    /// [`Error::StoreTimeout`], one that kept changing under the write a [`Error::WriteConflict`].
    pub(crate) async fn write(
        &self,
        name: &PackageName,
        change: &Change,
    ) -> Result<Written, Error> {
        let key = name.packument_key();
        match tokio::time::timeout(self.budget, self.attempts(name, change)).await {
            Ok(result) => result,
            Err(_) => Err(Error::StoreTimeout {
                key: key.to_string(),
                after: self.budget,
            }),
        }
    }

    async fn attempts(&self, name: &PackageName, change: &Change) -> Result<Written, Error> {
        let key = name.packument_key();
        let deadline = Instant::now() + self.budget;
        let mut ceiling = FIRST_PAUSE;
        let blocking_deadline = std::time::Instant::now() + self.budget;
        let mut attempts = 0;
        loop {
            attempts += 1;
            // A conditional write that failed may have landed all the same (a 5xx retried by the
            // client, then refused as changed): a later attempt that finds the change made takes it
            // as its own.
            let retried = attempts > 1;
            let attempt = match self.store.file_path(key) {
                Some(path) => {
                    let (name, change) = (name.clone(), change.clone());
                    tokio::task::spawn_blocking(move || {
                        file_attempt(&path, &name, &change, retried, blocking_deadline)
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(Error::FileWrite {
                            path: key.to_string(),
                            source: std::io::Error::other(e.to_string()),
                        })
                    })?
                }
                None => self.object_attempt(name, change, retried).await?,
            };
            if let Attempt::Done(mut written) = attempt {
                written.attempts = attempts;
                return Ok(written);
            }
            // Full jitter: writers that collided spread out instead of colliding again.
            let pause = ceiling.mul_f64(random_u64() as f64 / u64::MAX as f64);
            ceiling = (ceiling * 2).min(MAX_PAUSE);
            if Instant::now() + pause >= deadline {
                return Err(Error::WriteConflict {
                    key: key.to_string(),
                    attempts,
                });
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Reads the object and its version, and writes the change back on that version.
    async fn object_attempt(
        &self,
        name: &PackageName,
        change: &Change,
        retried: bool,
    ) -> Result<Attempt, Error> {
        let key = name.packument_key();
        let objects = self.store.object_store();
        let read = match objects.get_opts(key, GetOptions::default()).await {
            Ok(read) => read,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::NotStored(name.to_string()));
            }
            Err(source) => return Err(store_error(key, source)),
        };
        let version = UpdateVersion {
            e_tag: read.meta.e_tag.clone(),
            version: read.meta.version.clone(),
        };
        if version.e_tag.is_none() && version.version.is_none() {
            return Err(unwritable(
                key,
                "the store gives the document no version to write it back on",
            ));
        }
        let bytes = read.bytes().await.map_err(|e| store_error(key, e))?;
        let (document, written) = match apply(name, &bytes, change, retried)? {
            Applied::Unchanged(written) => return Ok(Attempt::Done(written)),
            Applied::Changed(document, written) => (document, written),
        };
        let options = PutOptions::from(PutMode::Update(version));
        match objects
            .put_opts(key, PutPayload::from(document), options)
            .await
        {
            Ok(_) => Ok(Attempt::Done(written)),
            // Changed (S3 reports a conflict under load as 409), or removed, since it was read:
            // the next read says which.
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }
                | object_store::Error::NotFound { .. },
            ) => Ok(Attempt::Conflict),
            Err(source) => Err(Error::StoreWrite {
                key: key.to_string(),
                source,
            }),
        }
    }
}

fn store_error(key: &Path, source: object_store::Error) -> Error {
    Error::Store {
        key: key.to_string(),
        source,
    }
}

fn unwritable(key: &Path, why: &str) -> Error {
    Error::Unwritable {
        key: key.to_string(),
        source: Unwritable(why.to_owned()),
    }
}

/// The change applied to one version of the document. `retried`: an earlier attempt's write may
/// have landed, so a tag already removed counts as removed by this write.
fn apply(
    name: &PackageName,
    bytes: &[u8],
    change: &Change,
    retried: bool,
) -> Result<Applied, Error> {
    let key = name.packument_key();
    let packument =
        Packument::parse(bytes, change.version()).map_err(|source| Error::Unwritable {
            key: key.to_string(),
            source,
        })?;
    let mut tags = packument.tags().clone();
    let tag = change.tag().as_str();
    let old = tags.get(tag).map(str::to_owned);
    let new = match change {
        Change::Set { version, .. } => {
            if !packument.has_version() {
                return Err(Error::VersionNotFound {
                    name: name.to_string(),
                    version: version.clone(),
                });
            }
            if old.as_deref() == Some(version.as_str()) {
                return Ok(Applied::Unchanged(Written {
                    tags,
                    new: old.clone(),
                    old,
                    changed: false,
                    attempts: 0,
                }));
            }
            tags.insert(tag.to_owned(), version.clone());
            Some(version.clone())
        }
        Change::Remove { .. } => {
            if tags.remove(tag).is_none() {
                if retried {
                    return Ok(Applied::Unchanged(Written {
                        tags,
                        old: None,
                        new: None,
                        changed: false,
                        attempts: 0,
                    }));
                }
                return Err(Error::TagNotFound {
                    name: name.to_string(),
                    tag: tag.to_owned(),
                });
            }
            None
        }
    };
    if tags.to_json().len() > MAX_DIST_TAGS_LEN {
        // Readers refuse a larger value: no write may make the package unreadable.
        return Err(Error::TooManyTags);
    }
    let document = packument.with_tags(&tags);
    Ok(Applied::Changed(
        document,
        Written {
            tags,
            old,
            new,
            changed: true,
            attempts: 0,
        },
    ))
}

/// One attempt on a file store, on a blocking thread: lock the document (the file itself, so that
/// every process on the host agrees), read it, and replace it by a renamed temporary file. A crash
/// leaves the old document or the new one, never a torn one.
fn file_attempt(
    path: &FsPath,
    name: &PackageName,
    change: &Change,
    retried: bool,
    deadline: std::time::Instant,
) -> Result<Attempt, Error> {
    let io = |source| Error::FileWrite {
        path: path.display().to_string(),
        source,
    };
    let file = match lock_document(path).map_err(io)? {
        Locked::Yes(file) => file,
        Locked::Busy => return Ok(Attempt::Conflict),
        Locked::Missing => return Err(Error::NotStored(name.to_string())),
    };
    let size = file.metadata().map_err(io)?.len();
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
    (&file).read_to_end(&mut bytes).map_err(io)?;
    match apply(name, &bytes, change, retried)? {
        Applied::Unchanged(written) => Ok(Attempt::Done(written)),
        Applied::Changed(document, written) => {
            // Past the budget the client has had its answer: write nothing it was not told of.
            if std::time::Instant::now() >= deadline {
                return Ok(Attempt::Conflict);
            }
            replace(path, &file, &document).map_err(io)?;
            Ok(Attempt::Done(written))
        }
    }
    // The lock goes with `file`.
}

/// The outcome of trying to lock a document of the file store.
enum Locked {
    /// Locked, and still the file at its path.
    Yes(File),
    /// Another writer holds it, or replaced it while this one waited: try again.
    Busy,
    /// There is no such file.
    Missing,
}

/// Takes the exclusive lock on the document at `path` without waiting. The file is opened for
/// writing too: on NFS, `flock` is emulated with a write lock, which needs a file open for writing.
fn lock_document(path: &FsPath) -> std::io::Result<Locked> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Locked::Missing),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(Locked::Busy),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    // A writer that held the lock may have renamed a new document over the one opened here.
    if is_current(&file, path)? {
        Ok(Locked::Yes(file))
    } else {
        Ok(Locked::Busy)
    }
}

/// Stores a whole packument, as `disttags import` does. On a file store it takes the lock a tag
/// write takes, so that neither replaces the other's document unseen; elsewhere it is one put.
pub async fn put_packument(store: &Store, key: &Path, document: Vec<u8>) -> Result<(), Error> {
    let Some(path) = store.file_path(key) else {
        return store
            .object_store()
            .put(key, PutPayload::from(document))
            .await
            .map(|_| ())
            .map_err(|source| Error::StoreWrite {
                key: key.to_string(),
                source,
            });
    };
    let document = std::sync::Arc::new(document);
    let io = |source| Error::FileWrite {
        path: path.display().to_string(),
        source,
    };
    let deadline = Instant::now() + crate::vars::STORE_TIMEOUT_MS.default_duration();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (target, bytes) = (path.clone(), document.clone());
        let done = tokio::task::spawn_blocking(move || put_file(&target, &bytes))
            .await
            .map_err(|e| io(std::io::Error::other(e.to_string())))?
            .map_err(io)?;
        if done {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::WriteConflict {
                key: key.to_string(),
                attempts,
            });
        }
        tokio::time::sleep(FIRST_PAUSE).await;
    }
}

/// One attempt of [`put_packument`] on a file store; `false` when another writer holds the file.
fn put_file(path: &FsPath, document: &[u8]) -> std::io::Result<bool> {
    match lock_document(path)? {
        Locked::Yes(file) => replace(path, &file, document).map(|()| true),
        Locked::Busy => Ok(false),
        Locked::Missing => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // A new document: nothing to lose; two importers of one new package, the last wins.
            replace(
                path,
                &File::open(path.parent().unwrap_or(FsPath::new(".")))?,
                document,
            )
            .map(|()| true)
        }
    }
}

/// Whether `file` is still the one at `path`.
#[cfg(unix)]
fn is_current(file: &File, path: &FsPath) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (open, now) = (file.metadata()?, std::fs::metadata(path)?);
    Ok(open.ino() == now.ino() && open.dev() == now.dev())
}

#[cfg(not(unix))]
fn is_current(_: &File, _: &FsPath) -> std::io::Result<bool> {
    Ok(true)
}

/// Writes `document` beside `path` and renames it over `path`, keeping the old file's permissions.
fn replace(path: &FsPath, old: &File, document: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(FsPath::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staged: PathBuf = dir.join(format!(".{file_name}.{:016x}.tmp", random_u64()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staged)?;
        let before = old.metadata()?;
        if before.is_file() {
            file.set_permissions(before.permissions())?;
        }
        file.write_all(document)?;
        // A later mtime than the old file's, so that a same-size document on a reused inode never
        // has the old one's stamp (inode, mtime, size) and ETag.
        let now = std::time::SystemTime::now();
        let after_old = before
            .modified()
            .map(|m| m + Duration::from_millis(1))
            .unwrap_or(now);
        file.set_modified(now.max(after_old))?;
        file.sync_all()?;
        std::fs::rename(&staged, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    result?;
    // The rename itself is made durable with the directory; a file system that cannot sync a
    // directory still renamed atomically.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

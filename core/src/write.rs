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
use object_store::{GetOptions, PutMode, PutOptions, PutPayload, UpdateVersion};
use tokio::time::Instant;

use crate::edit::{Packument, Unwritable};
use crate::error::Error;
use crate::extract::DistTags;
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
        let mut attempts = 0;
        loop {
            attempts += 1;
            let attempt = match self.store.file_path(key) {
                Some(path) => {
                    let (name, change) = (name.clone(), change.clone());
                    tokio::task::spawn_blocking(move || file_attempt(&path, &name, &change))
                        .await
                        .unwrap_or_else(|e| {
                            Err(Error::FileWrite {
                                path: key.to_string(),
                                source: std::io::Error::other(e.to_string()),
                            })
                        })?
                }
                None => self.object_attempt(name, change).await?,
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
    async fn object_attempt(&self, name: &PackageName, change: &Change) -> Result<Attempt, Error> {
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
        let (document, written) = match apply(name, &bytes, change)? {
            Applied::Unchanged(written) => return Ok(Attempt::Done(written)),
            Applied::Changed(document, written) => (document, written),
        };
        let options = PutOptions::from(PutMode::Update(version));
        match objects
            .put_opts(key, PutPayload::from(document), options)
            .await
        {
            Ok(_) => Ok(Attempt::Done(written)),
            // Changed, or removed, since it was read: the next read says which.
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

/// The change applied to one version of the document.
fn apply(name: &PackageName, bytes: &[u8], change: &Change) -> Result<Applied, Error> {
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
                return Err(Error::TagNotFound {
                    name: name.to_string(),
                    tag: tag.to_owned(),
                });
            }
            None
        }
    };
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
fn file_attempt(path: &FsPath, name: &PackageName, change: &Change) -> Result<Attempt, Error> {
    let io = |source| Error::FileWrite {
        path: path.display().to_string(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotStored(name.to_string()));
        }
        Err(e) => return Err(io(e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(Attempt::Conflict),
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    // A writer that held the lock may have renamed a new document over the one opened here.
    if !is_current(&file, path).map_err(io)? {
        return Ok(Attempt::Conflict);
    }
    let mut bytes = Vec::new();
    (&file).read_to_end(&mut bytes).map_err(io)?;
    match apply(name, &bytes, change)? {
        Applied::Unchanged(written) => Ok(Attempt::Done(written)),
        Applied::Changed(document, written) => {
            replace(path, &file, &document).map_err(io)?;
            Ok(Attempt::Done(written))
        }
    }
    // The lock goes with `file`.
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
        file.set_permissions(old.metadata()?.permissions())?;
        file.write_all(document)?;
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

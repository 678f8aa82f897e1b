//! The store packuments are read from: any object store and, when it is a local directory, a direct
//! view of it.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use crate::files::on_local_disk;

/// Where packuments are read from.
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
    /// The file store, wherever its disk is: writes to it take a file lock (it has no conditional
    /// update).
    local: Option<Arc<LocalFileSystem>>,
}

impl Store {
    /// Any object store; every lookup goes through it.
    pub fn objects(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            objects: store,
            files: None,
            root: None,
            local: None,
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
            files: on_local_disk.then(|| store.clone()),
            root,
            local: Some(store),
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

    /// The file store, when its files are revalidated by `stat()`.
    pub(crate) fn local_files(&self) -> Option<&LocalFileSystem> {
        self.files.as_deref()
    }

    /// Where an object of a file store is on disk; `None` on any other store.
    pub(crate) fn file_path(&self, key: &Path) -> Option<PathBuf> {
        self.local.as_ref()?.path_to_filesystem(key).ok()
    }

    /// The root directory of a file store.
    pub(crate) fn root(&self) -> Option<&FsPath> {
        self.root.as_deref()
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

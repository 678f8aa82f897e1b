//! The local file store's revalidation: a file's stamp (inode, mtime, size) and whether the disk
//! under it is one whose `stat()` cannot hang.

use std::path::PathBuf;

/// Whether `dir` is on a file system whose `stat()` cannot hang on a network: the common local disk
/// and memory file systems. Anything else, or a `statfs` that fails, counts as not local.
#[cfg(target_os = "linux")]
pub(crate) fn on_local_disk(dir: &std::path::Path) -> bool {
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
pub(crate) fn on_local_disk(_: &std::path::Path) -> bool {
    false
}

/// Where a cached packument lives on disk, and the metadata its ETag was made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    path: PathBuf,
    inode: u64,
    mtime_micros: u128,
    size: u64,
}

impl FileStamp {
    /// What a stamp holds in memory, for the cache's byte bound.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.path.as_os_str().len() + crate::cache::ALLOCATION
    }

    /// Reads the ETag `object_store` 0.14's `LocalFileSystem` gives a file: its inode, mtime in
    /// microseconds and size, in hex (`"{inode:x}-{mtime:x}-{size:x}"`). Were a later version to
    /// make it otherwise, nothing would parse and every lookup would take the (correct, slower)
    /// conditional GET; `tests/reads.rs` would notice.
    pub(crate) fn from_etag(path: PathBuf, etag: &str) -> Option<Self> {
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
    pub(crate) fn unchanged(&self) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! What a lookup costs the store: a bounded prefix for front-layout packuments, a streamed rest for
//! tail-layout ones, and no body at all for a repeat lookup of an unchanged object (issue 6).

use std::sync::Arc;

use disttags_core::PREFIX_BYTES;
use disttags_core::{App, DistTags, PackageName, Store, StoreStats};
use disttags_tests::shared_packument;
use disttags_tests::target::{app_get, seed};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};

fn reference(doc: &[u8]) -> DistTags {
    let value: serde_json::Value = serde_json::from_slice(doc).expect("json");
    serde_json::from_value(value["dist-tags"].clone()).expect("tags")
}

fn stores() -> Vec<(
    &'static str,
    Arc<dyn ObjectStore>,
    Option<tempfile::TempDir>,
)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = LocalFileSystem::new_with_prefix(dir.path()).expect("file store");
    vec![
        ("memory", Arc::new(InMemory::new()), None),
        ("file", Arc::new(file), Some(dir)),
    ]
}

fn file_checks(after: StoreStats, before: StoreStats) -> u64 {
    after.file_checks - before.file_checks
}

fn delta(after: StoreStats, before: StoreStats) -> (u64, u64, u64) {
    (
        after.requests - before.requests,
        after.bytes - before.bytes,
        after.not_modified - before.not_modified,
    )
}

#[tokio::test]
async fn front_layout_reads_a_bounded_prefix_whatever_the_size() {
    for (kind, store, _dir) in stores() {
        for file in [
            "left-pad.front.json.gz",
            "react.front.json.gz",
            "typescript.front.json.gz",
        ] {
            let doc = shared_packument(file);
            seed(store.as_ref(), &[("pkg/index.json", doc.clone())]).await;
            let app = App::new(store.clone(), None, Arc::new(()));
            let name = PackageName::parse("pkg").expect("name");
            let tags = app.dist_tags(&name).await.expect("tags");
            assert_eq!(tags, reference(&doc), "{kind} {file}");
            let stats = app.stats();
            assert_eq!(stats.requests, 1, "{kind} {file}: one ranged GET");
            assert!(
                stats.bytes <= PREFIX_BYTES,
                "{kind} {file}: read {} of {} bytes",
                stats.bytes,
                doc.len()
            );
        }
    }
}

#[tokio::test]
async fn tail_layout_streams_the_rest_and_agrees_with_serde() {
    for (kind, store, _dir) in stores() {
        for file in ["react.tail.json.gz", "typescript.tail.json.gz"] {
            let doc = shared_packument(file);
            assert!(doc.len() as u64 > PREFIX_BYTES);
            seed(store.as_ref(), &[("pkg/index.json", doc.clone())]).await;
            let app = App::new(store.clone(), None, Arc::new(()));
            let tags = app
                .dist_tags(&PackageName::parse("pkg").expect("name"))
                .await
                .expect("tags");
            assert_eq!(tags, reference(&doc), "{kind} {file}");
            let stats = app.stats();
            assert_eq!(stats.requests, 2, "{kind} {file}: prefix, then the rest");
            assert!(
                stats.bytes <= doc.len() as u64,
                "{kind} {file}: no byte read twice"
            );
        }
    }
}

#[tokio::test]
async fn repeat_lookups_revalidate_and_see_updates_at_once() {
    for (kind, store, _dir) in stores() {
        let name = PackageName::parse("@s/p").expect("name");
        let v1 = disttags_tests::packument("@s/p", Some(r#"{"latest":"1.0.0"}"#));
        seed(store.as_ref(), &[("@s/p/index.json", v1)]).await;
        let app = App::new(store.clone(), None, Arc::new(()));
        let first = app.dist_tags(&name).await.expect("tags");
        assert_eq!(first.get("latest"), Some("1.0.0"));
        let before = app.stats();
        let again = app.dist_tags(&name).await.expect("tags");
        assert_eq!(again, first);
        assert_eq!(
            delta(app.stats(), before),
            (1, 0, 1),
            "{kind}: 304, no body"
        );

        let v2 = disttags_tests::packument("@s/p", Some(r#"{"latest":"2.0.0","next":"3.0.0"}"#));
        seed(store.as_ref(), &[("@s/p/index.json", v2)]).await;
        let updated = app.dist_tags(&name).await.expect("tags");
        assert_eq!(
            updated.get("latest"),
            Some("2.0.0"),
            "{kind}: the very next lookup sees the update"
        );
        assert_eq!(updated.get("next"), Some("3.0.0"));

        store
            .delete(&"@s/p/index.json".into())
            .await
            .expect("delete");
        assert!(
            matches!(
                app.dist_tags(&name).await,
                Err(disttags_core::Error::PackageNotFound(_))
            ),
            "{kind}"
        );
    }
}

/// Answers `GET /-/package/{segment}/dist-tags` through the whole core, as a shim would.
async fn get(app: &App, segment: &str) -> (u16, String) {
    let reply = app_get(app, &format!("/-/package/{segment}/dist-tags")).await;
    (
        reply.status,
        String::from_utf8_lossy(&reply.body).into_owned(),
    )
}

/// On a file store (as `disttags serve` builds it), an unchanged packument is told by its metadata
/// alone, with no GET; every kind of change is still seen by the very next lookup.
#[tokio::test]
async fn file_store_revalidates_by_metadata_and_sees_every_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("file store"));
    let objects: Arc<dyn ObjectStore> = files.clone();
    let store = Store::files(files);
    assert!(
        store.revalidates_by_stat(),
        "the temporary directory {} is not on a file system known to be a local disk",
        dir.path().display()
    );
    let app = App::new(store, None, Arc::new(()));
    let key = "@s/p/index.json";
    let v1 = disttags_tests::packument("@s/p", Some(r#"{"latest":"1.0.0"}"#));
    seed(objects.as_ref(), &[(key, v1)]).await;

    assert_eq!(
        get(&app, "@s%2fp").await,
        (200, r#"{"latest":"1.0.0"}"#.into())
    );
    let before = app.stats();
    // Every spelling of the name npm may send, answered from the cache after one stat each.
    for segment in ["@s%2fp", "@s%2Fp", "@s/p"] {
        assert_eq!(
            get(&app, segment).await,
            (200, r#"{"latest":"1.0.0"}"#.into()),
            "{segment}"
        );
    }
    // And through the library call embedders use.
    let name = PackageName::parse("@s/p").expect("name");
    let tags = app.dist_tags(&name).await.expect("tags");
    assert_eq!(tags.get("latest"), Some("1.0.0"));
    assert_eq!(
        delta(app.stats(), before),
        (0, 0, 0),
        "no GET for an unchanged file"
    );
    assert_eq!(
        file_checks(app.stats(), before),
        4,
        "each lookup checked the file's metadata (if 0: object_store's file ETag changed form)"
    );

    // Replaced through object_store (a new file renamed into place).
    let v2 = disttags_tests::packument("@s/p", Some(r#"{"latest":"2.0.0"}"#));
    seed(objects.as_ref(), &[(key, v2.clone())]).await;
    assert_eq!(
        get(&app, "@s%2fp").await,
        (200, r#"{"latest":"2.0.0"}"#.into())
    );

    // Rewritten in place, same inode and same size: only the modification time differs.
    let path = dir.path().join("@s/p/index.json");
    let v3 = disttags_tests::packument("@s/p", Some(r#"{"latest":"3.0.0"}"#));
    assert_eq!(v3.len(), v2.len());
    // File times come from the kernel's coarse clock (one tick, up to 10 ms): a rewrite within the
    // same tick would keep the mtime, for object_store's ETag as for this check. Wait one out.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, &v3).expect("rewrite");
    assert_eq!(
        get(&app, "@s%2fp").await,
        (200, r#"{"latest":"3.0.0"}"#.into())
    );

    // Removed: the cached tags are not served.
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(get(&app, "@s%2fp").await.0, 404);
}

/// A directory on a file system not known to be a local disk (here /proc, as NFS or a FUSE mount
/// would be) is read through object_store only: a stat there could hang a worker thread.
#[cfg(target_os = "linux")]
#[test]
fn only_local_disks_are_revalidated_by_stat() {
    let proc_fs = Arc::new(LocalFileSystem::new_with_prefix("/proc/self").expect("proc"));
    assert!(!Store::files(proc_fs).revalidates_by_stat());
    let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    assert!(!Store::objects(memory).revalidates_by_stat());
}

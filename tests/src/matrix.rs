//! The conformance matrix, typed: which shim a case goes through, over which store, and whether the
//! shim is called in-process through its library or run as its real binary.
//!
//! A [`Fixture`] names one cell; [`Fixture::start`] seeds a fresh store of its kind (a fresh prefix
//! of one shared emulator per cloud, started on first use) and builds the target.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use disttags_core::{Config, Defaults, LogEvent, Store};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;

use crate::azure_host::{HostMode, azure_target_with};
use crate::cargo_lambda::cargo_lambda_target_with;
use crate::emulator::{Emulator, Kind};
use crate::lambda::{EventKind, lambda_target_with};
use crate::library::Library;
use crate::target::{
    InProcess, Target, process_store, seed, standard_store, standard_upstream, target_vars,
};
use crate::{TestUpstream, repo_root};

/// Where a request meets the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shim {
    /// The core's `App::handle`, with no shim.
    Core,
    /// `disttags serve`.
    Local,
    /// `disttags-cloudrun` behind Identity-Aware Proxy.
    CloudRun,
    /// `disttags-azure`, the host proxying HTTP.
    AzureProxy,
    /// `disttags-azure`, the host sending invocation envelopes.
    AzureEnvelope,
    /// `disttags-lambda` behind an API Gateway REST API.
    LambdaRest,
    /// `disttags-lambda` behind an API Gateway HTTP API.
    LambdaHttp,
    /// `disttags-lambda` behind an Application Load Balancer.
    LambdaAlb,
    /// `disttags-lambda` behind a Function URL.
    LambdaUrl,
    /// `disttags-lambda` behind cargo-lambda's emulator, its Function URL front end: a real
    /// process only (no library twin).
    LambdaCargo,
}

impl Shim {
    /// What the shim's binary assumes when a variable is unset (Lambda and Azure: the platform's
    /// authorizer guards the write routes).
    pub fn defaults(self) -> Defaults {
        match self {
            Self::AzureProxy
            | Self::AzureEnvelope
            | Self::LambdaRest
            | Self::LambdaHttp
            | Self::LambdaAlb
            | Self::LambdaUrl
            | Self::LambdaCargo => Defaults::GUARDED,
            Self::Core | Self::Local | Self::CloudRun => Defaults::CLOUD,
        }
    }
}

/// The constants the matrix macro names shims by.
#[allow(non_upper_case_globals)]
pub mod shim {
    use super::Shim;
    /// [`Shim::Core`].
    pub const core: Shim = Shim::Core;
    /// [`Shim::Local`].
    pub const local: Shim = Shim::Local;
    /// [`Shim::CloudRun`].
    pub const cloudrun: Shim = Shim::CloudRun;
    /// [`Shim::AzureProxy`].
    pub const azure_proxy: Shim = Shim::AzureProxy;
    /// [`Shim::AzureEnvelope`].
    pub const azure_envelope: Shim = Shim::AzureEnvelope;
    /// [`Shim::LambdaRest`].
    pub const lambda_rest: Shim = Shim::LambdaRest;
    /// [`Shim::LambdaHttp`].
    pub const lambda_http: Shim = Shim::LambdaHttp;
    /// [`Shim::LambdaAlb`].
    pub const lambda_alb: Shim = Shim::LambdaAlb;
    /// [`Shim::LambdaUrl`].
    pub const lambda_url: Shim = Shim::LambdaUrl;
    /// [`Shim::LambdaCargo`].
    pub const lambda_cargo: Shim = Shim::LambdaCargo;
}

/// Which store the packuments are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// object_store's in-memory store.
    Memory,
    /// A local directory.
    File,
    /// S3 on moto.
    S3Moto,
    /// S3 on SeaweedFS.
    S3Seaweedfs,
    /// Azure Blob on Azurite.
    Azurite,
    /// GCS on fake-gcs-server.
    Gcs,
    /// An S3 endpoint nothing listens on: every store request fails.
    BrokenS3,
}

/// The constants the matrix macro names stores by.
#[allow(non_upper_case_globals)]
pub mod store {
    use super::StoreKind;
    /// [`StoreKind::Memory`].
    pub const memory: StoreKind = StoreKind::Memory;
    /// [`StoreKind::File`].
    pub const file: StoreKind = StoreKind::File;
    /// [`StoreKind::S3Moto`].
    pub const s3_moto: StoreKind = StoreKind::S3Moto;
    /// [`StoreKind::S3Seaweedfs`].
    pub const s3_seaweedfs: StoreKind = StoreKind::S3Seaweedfs;
    /// [`StoreKind::Azurite`].
    pub const azurite: StoreKind = StoreKind::Azurite;
    /// [`StoreKind::Gcs`].
    pub const gcs: StoreKind = StoreKind::Gcs;
    /// [`StoreKind::BrokenS3`].
    pub const broken_s3: StoreKind = StoreKind::BrokenS3;
}

impl StoreKind {
    /// The emulator behind a cloud store.
    fn emulator(self) -> Option<Kind> {
        match self {
            Self::S3Moto => Some(Kind::Moto),
            Self::S3Seaweedfs => Some(Kind::SeaweedFs),
            Self::Azurite => Some(Kind::Azurite),
            Self::Gcs => Some(Kind::Gcs),
            Self::Memory | Self::File | Self::BrokenS3 => None,
        }
    }
}

/// How the shim is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// In-process, through the shim's library, as its platform hands a request over.
    Library,
    /// The shim's real binary as a child process, behind its platform's front end.
    Binary,
}

/// A store whose every request fails (an S3 endpoint nothing listens on), with credentials set
/// so the client never looks for instance metadata.
pub const BROKEN_STORE: &[(&str, &str)] = &[
    ("DISTTAGS_STORE", "s3://bucket"),
    ("AWS_ENDPOINT", "http://127.0.0.1:9"),
    ("AWS_ALLOW_HTTP", "true"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "AKIDBROKENSTORE"),
    ("AWS_SECRET_ACCESS_KEY", "broken-store-secret-value"),
    ("DISTTAGS_STORE_RETRY_MS", "300"),
];

/// One cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixture {
    /// In-process or a real process.
    pub via: Via,
    /// Which shim.
    pub shim: Shim,
    /// Which store.
    pub store: StoreKind,
}

impl Fixture {
    /// A cell.
    pub fn new(via: Via, shim: Shim, store: StoreKind) -> Self {
        Self { via, shim, store }
    }

    /// The shim as users run it, over a file store: its binary (the core: in-process, over memory).
    pub fn of(shim: Shim) -> Self {
        match shim {
            Shim::Core => Self::new(Via::Library, shim, StoreKind::Memory),
            _ => Self::new(Via::Binary, shim, StoreKind::File),
        }
    }

    /// The standard upstream, and this cell's target over the standard store.
    pub async fn start(self, extra: &[(&str, &str)]) -> (Target, TestUpstream) {
        self.start_with(&standard_store(), extra).await
    }

    /// The standard upstream, and this cell's target over a store holding `objects`.
    pub async fn start_with(
        self,
        objects: &[(&str, Vec<u8>)],
        extra: &[(&str, &str)],
    ) -> (Target, TestUpstream) {
        let upstream = TestUpstream::start(&standard_upstream(), true).await;
        let target = match self.via {
            Via::Library => self.library(objects, &upstream, extra).await,
            Via::Binary => self.binary(objects, &upstream, extra).await,
        };
        (target, upstream)
    }

    async fn library(
        self,
        objects: &[(&str, Vec<u8>)],
        upstream: &TestUpstream,
        extra: &[(&str, &str)],
    ) -> Target {
        assert!(
            self.shim != Shim::LambdaCargo,
            "cargo-lambda's emulator is a process: run Shim::LambdaCargo via Via::Binary"
        );
        let mut vars = vec![("DISTTAGS_STORE".to_owned(), "memory://".to_owned())];
        if self.store == StoreKind::BrokenS3 {
            vars.extend(owned(BROKEN_STORE));
        }
        vars.extend(target_vars(upstream, extra));
        let config = Config::from_vars(vars, self.shim.defaults()).expect("config");
        let (store, dir) = if self.store == StoreKind::BrokenS3
            || extra.iter().any(|(k, _)| *k == "DISTTAGS_STORE")
        {
            (config.build_store().expect("store"), None)
        } else {
            fresh_store(self.store, objects).await
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let app = config
            .app_with(
                store,
                Arc::new(move |e: &LogEvent| sink.lock().expect("lock").push(e.clone())),
            )
            .expect("app");
        let transport: Box<dyn crate::target::Transport> = match self.shim {
            Shim::Core => Box::new(InProcess::new(app, events)),
            shim => Box::new(Library::new(shim, app, &config, events)),
        };
        Target { transport, dir }
    }

    async fn binary(
        self,
        objects: &[(&str, Vec<u8>)],
        upstream: &TestUpstream,
        extra: &[(&str, &str)],
    ) -> Target {
        let (dir, vars) = match self.store {
            StoreKind::File => process_store(objects, upstream, extra).await,
            StoreKind::BrokenS3 => {
                let mut broken = BROKEN_STORE.to_vec();
                broken.extend_from_slice(extra);
                process_store(&[], upstream, &broken).await
            }
            StoreKind::S3Moto => moto_bucket(objects, upstream, extra).await,
            other => panic!("the binaries run on the file store and moto, not {other:?}"),
        };
        let mut target = match self.shim {
            Shim::Core => panic!("the core has no binary"),
            Shim::Local => Target::local_with(vars),
            Shim::CloudRun => Target::cloudrun_with(vars),
            Shim::AzureProxy => azure_target_with(HostMode::Proxy, vars, dir.path()).await,
            Shim::AzureEnvelope => azure_target_with(HostMode::Envelope, vars, dir.path()).await,
            Shim::LambdaRest => lambda_target_with(EventKind::RestV1, vars).await,
            Shim::LambdaHttp => lambda_target_with(EventKind::HttpV2, vars).await,
            Shim::LambdaAlb => lambda_target_with(EventKind::Alb, vars).await,
            Shim::LambdaUrl => lambda_target_with(EventKind::FunctionUrl, vars).await,
            Shim::LambdaCargo => cargo_lambda_target_with(vars).await,
        };
        target.dir = Some(dir);
        target
    }
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A name no other test of this run uses.
fn unique(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store of `kind` holding exactly `objects`, with what keeps it alive.
async fn fresh_store(
    kind: StoreKind,
    objects: &[(&str, Vec<u8>)],
) -> (Store, Option<tempfile::TempDir>) {
    if kind == StoreKind::File {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = LocalFileSystem::new_with_prefix(dir.path()).expect("file store");
        seed(&files, objects).await;
        return (Store::files(Arc::new(files)), Some(dir));
    }
    let Some(emulator) = kind.emulator().map(shared) else {
        let memory = InMemory::new();
        seed(&memory, objects).await;
        return (Store::objects(Arc::new(memory)), None);
    };
    // A prefix of its own in the shared bucket: every key this test reads or writes is under it.
    let prefix = unique("t");
    let store = PrefixStore::new(emulator.client(), prefix.as_str());
    if emulator.kind == Kind::Gcs {
        let keyed: Vec<(String, Vec<u8>)> = objects
            .iter()
            .map(|(k, v)| (format!("{prefix}/{k}"), v.clone()))
            .collect();
        let keyed: Vec<(&str, Vec<u8>)> =
            keyed.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        emulator.seed(&keyed).await;
    } else {
        seed(&store, objects).await;
    }
    (
        Store::objects(Arc::new(store) as Arc<dyn ObjectStore>),
        None,
    )
}

/// A bucket of its own on the shared moto server, seeded, and the environment that points a shim
/// at it as a user would configure S3.
pub async fn moto_bucket(
    objects: &[(&str, Vec<u8>)],
    upstream: &TestUpstream,
    extra: &[(&str, &str)],
) -> (tempfile::TempDir, Vec<(String, String)>) {
    let emulator = shared(Kind::Moto);
    let bucket = unique("b");
    let created = crate::target::raw_request_body(
        &emulator.addr,
        http::Method::PUT,
        &format!("/{bucket}"),
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(created.status, 200, "create {bucket}: {:?}", created.body);
    let store_url = format!("s3://{bucket}");
    let overrides = [
        ("DISTTAGS_STORE", store_url.as_str()),
        ("AWS_BUCKET", bucket.as_str()),
    ];
    seed(emulator.client_for(&store_url).as_ref(), objects).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vars = vec![
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".to_owned(), dir.path().display().to_string()),
    ];
    vars.extend(emulator.vars(&overrides));
    vars.extend(target_vars(upstream, extra));
    (dir, vars)
}

/// The one emulator of `kind` this test process shares, started on first use with its data in
/// `target/emulators/{kind}-{pid}`; data left there by test processes that have ended is removed.
pub fn shared(kind: Kind) -> &'static Emulator {
    static MOTO: OnceLock<Emulator> = OnceLock::new();
    static SEAWEEDFS: OnceLock<Emulator> = OnceLock::new();
    static AZURITE: OnceLock<Emulator> = OnceLock::new();
    static GCS: OnceLock<Emulator> = OnceLock::new();
    let cell = match kind {
        Kind::Moto => &MOTO,
        Kind::SeaweedFs => &SEAWEEDFS,
        Kind::Azurite => &AZURITE,
        Kind::Gcs => &GCS,
    };
    cell.get_or_init(|| {
        let parent: PathBuf = repo_root().join("target/emulators");
        remove_ended(&parent);
        let data = parent.join(format!("{}-{}", kind.as_str(), std::process::id()));
        std::fs::create_dir_all(&data).expect("emulator data directory");
        Emulator::start_in(kind, data)
    })
}

/// Removes the emulator data of test processes that are no longer running.
fn remove_ended(parent: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .rsplit_once('-')
            .and_then(|(_, pid)| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

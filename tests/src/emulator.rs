//! Real storage emulators (moto and SeaweedFS for S3, Azurite, fake-gcs-server) as child processes.
//!
//! `scripts/install-tools emulators` installs them (scripts/test runs it); `tests/emulators/run.py` starts
//! one on a free port of 127.0.0.1 with throw-away data, creates the bucket and prints the environment
//! a user would set for it. An emulator that cannot start fails the test: nothing is skipped.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use disttags_core::{Timeouts, build_store};
use object_store::ObjectStore;

use crate::{Process, free_port, repo_root};

/// Which server stands in for which cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// moto's S3 server.
    Moto,
    /// SeaweedFS's S3 gateway.
    SeaweedFs,
    /// Azurite, the Azure Blob emulator.
    Azurite,
    /// fake-gcs-server.
    Gcs,
}

impl Kind {
    /// The name run.py knows it by.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Moto => "moto",
            Self::SeaweedFs => "seaweedfs",
            Self::Azurite => "azurite",
            Self::Gcs => "gcs",
        }
    }
}

/// The bucket (or container) every emulator is started with.
pub const BUCKET: &str = "disttags-test";

/// A running emulator; stopped when dropped.
#[derive(Debug)]
pub struct Emulator {
    /// Which one.
    pub kind: Kind,
    /// The environment a user would set to use it (`DISTTAGS_STORE` and the provider's variables).
    pub env: BTreeMap<String, String>,
    /// `127.0.0.1:port`.
    pub addr: String,
    process: Option<Process>,
    /// The emulator's data, removed with it unless it lives in a directory of the caller's.
    _data: Option<tempfile::TempDir>,
}

impl Emulator {
    /// Starts `kind` and waits for its READY line (up to 90 s, the launcher's own bound is 60 s).
    pub fn start(kind: Kind) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let mut emulator = Self::start_in(kind, data.path().to_path_buf());
        emulator._data = Some(data);
        emulator
    }

    /// [`Self::start`] with its data in `data`, which outlives it.
    pub fn start_in(kind: Kind, data: std::path::PathBuf) -> Self {
        let port = free_port();
        let tools = std::env::var("DISTTAGS_TOOLS")
            .unwrap_or_else(|_| repo_root().join(".tools").display().to_string());
        let mut command = Command::new("python3");
        command
            .arg(repo_root().join("tests/emulators/run.py"))
            .arg(kind.as_str())
            .args([
                "--port",
                &port.to_string(),
                "--bucket",
                BUCKET,
                "--tools",
                &tools,
            ])
            .arg("--data")
            .arg(&data);
        let process = Process::spawn(command, true);
        let json = process
            .banner
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("{kind:?} did not start: {:?}", process.banner));
        let env: BTreeMap<String, String> = serde_json::from_str(json).expect("READY env JSON");
        Self {
            kind,
            env,
            addr: format!("127.0.0.1:{port}"),
            process: Some(process),
            _data: None,
        }
    }

    /// The environment as pairs, with `overrides` replacing or adding variables.
    pub fn vars(&self, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        env.into_iter().collect()
    }

    /// A client of the emulator's bucket for seeding, built by the product's own `build_store`.
    ///
    /// object_store reads Azurite's URL from the process environment, which tests must not touch:
    /// this client names the same endpoint through configuration keys instead.
    pub fn client(&self) -> Arc<dyn ObjectStore> {
        self.client_for(&self.env["DISTTAGS_STORE"])
    }

    /// [`Self::client`] for another bucket (`s3://…`) of the same emulator.
    pub fn client_for(&self, url: &str) -> Arc<dyn ObjectStore> {
        let mut options: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(k, _)| k != &"AZURE_STORAGE_USE_EMULATOR" && k != &"AZURITE_BLOB_STORAGE_URL")
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        if let Some(url) = self.env.get("AZURITE_BLOB_STORAGE_URL") {
            options.push((
                "azure_storage_endpoint".into(),
                format!("{url}/devstoreaccount1"),
            ));
            options.push(("azure_allow_http".into(), "true".into()));
        }
        build_store(url, &options, &Timeouts::default())
            .expect("emulator client")
            .object_store()
            .clone()
    }

    /// Writes objects into the bucket. fake-gcs-server refuses object_store's uploads, so GCS objects
    /// go through its JSON upload API; every other emulator is written through object_store.
    pub async fn seed(&self, objects: &[(&str, Vec<u8>)]) {
        if self.kind != Kind::Gcs {
            crate::target::seed(self.client().as_ref(), objects).await;
            return;
        }
        for (key, bytes) in objects {
            let name = percent_encode_query(key);
            let path = format!("/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={name}");
            let reply = crate::target::raw_request_body(
                &self.addr,
                http::Method::POST,
                &path,
                &[("content-type", "application/json")],
                bytes::Bytes::from(bytes.clone()),
            )
            .await;
            assert_eq!(
                reply.status, 200,
                "seed {key} into fake-gcs-server: {:?}",
                reply.body
            );
        }
    }

    /// Freezes the emulator's server with SIGSTOP (`true`) or thaws it with SIGCONT: frozen, it
    /// still holds its port, so the kernel accepts connections that are then never answered, as a
    /// hung endpoint does.
    pub fn freeze(&self, frozen: bool) {
        let process = self.process.as_ref().expect("emulator running");
        let launcher = process.id();
        // The launcher starts the server in a process group of its own (see run.py).
        let children =
            std::fs::read_to_string(format!("/proc/{launcher}/task/{launcher}/children"))
                .expect("the launcher's children");
        let signal = if frozen { "-STOP" } else { "-CONT" };
        for server in children.split_whitespace() {
            let status = Command::new("kill")
                .args([signal, "--", &format!("-{server}")])
                .status()
                .expect("kill");
            assert!(status.success(), "kill {signal} -{server}");
        }
    }

    /// Stops the emulator now (the "store goes away mid-run" case).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.signal_and_wait("TERM", Duration::from_secs(15));
        }
    }
}

fn percent_encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

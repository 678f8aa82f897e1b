//! What a conformance case runs against: the core in-process, or a shim as a real child process,
//! each built from the same fixture (store contents and a test upstream).

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use disttags_core::{App, Config, Defaults, LogEvent, RequestContext};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::{Behaviour, Process, TestUpstream, binary, packument, shared_packument};

/// The upstream timeout every target is configured with, short so the hang case is quick.
pub const UPSTREAM_TIMEOUT_MS: &str = "800";

/// Objects every conformance case starts with.
pub fn standard_store() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "left-pad/index.json",
            shared_packument("left-pad.front.json.gz"),
        ),
        (
            "@scope/pkg/index.json",
            packument(
                "@scope/pkg",
                Some(r#"{"latest":"1.0.0","next":"2.0.0-rc.1"}"#),
            ),
        ),
        (
            "JSONStream/index.json",
            packument("JSONStream", Some(r#"{"latest":"1.3.5"}"#)),
        ),
        ("no-tags/index.json", packument("no-tags", None)),
        ("corrupt/index.json", b"this is not json {".to_vec()),
    ]
}

/// Packages the standard test upstream knows, and how it answers for each.
pub fn standard_upstream() -> Vec<(&'static str, Behaviour)> {
    vec![
        (
            "upstream-only",
            Behaviour::Tags(r#"{"latest":"2.0.0","beta":"3.0.0-beta.1"}"#),
        ),
        ("@up/scoped", Behaviour::Tags(r#"{"latest":"0.1.0"}"#)),
        ("upstream-500", Behaviour::Status(500)),
        ("upstream-503", Behaviour::Status(503)),
        ("upstream-hang", Behaviour::Hang),
        ("upstream-garbage", Behaviour::Garbage),
    ]
}

/// Writes objects into a store.
pub async fn seed(store: &dyn ObjectStore, objects: &[(&str, Vec<u8>)]) {
    for (key, bytes) in objects {
        let path = StorePath::parse(*key).expect("valid key");
        store
            .put(&path, PutPayload::from(bytes.clone()))
            .await
            .unwrap_or_else(|e| panic!("seed {key}: {e}"));
    }
}

/// An HTTP answer, whichever way it was obtained.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A running endpoint that cases send requests to.
pub enum Target {
    /// The core's `App::handle`, called directly; events collected by a closure sink.
    InProcess {
        /// The app.
        app: Box<App>,
        /// Events emitted so far.
        events: Arc<Mutex<Vec<LogEvent>>>,
    },
    /// A shim binary serving HTTP on 127.0.0.1.
    Http {
        /// The process.
        process: Process,
        /// `host:port`.
        addr: String,
        /// Path prefix the platform puts in front of the registry's paths.
        prefix: String,
        /// Keeps the file store alive.
        _dir: tempfile::TempDir,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InProcess { .. } => f.write_str("Target::InProcess"),
            Self::Http { addr, .. } => write!(f, "Target::Http({addr})"),
        }
    }
}

fn target_vars(upstream: &TestUpstream, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = vec![
        ("DISTTAGS_UPSTREAM".to_owned(), upstream.url.clone()),
        (
            "DISTTAGS_UPSTREAM_TIMEOUT_MS".to_owned(),
            UPSTREAM_TIMEOUT_MS.to_owned(),
        ),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vars
}

impl Target {
    /// The core in-process over a memory store seeded with `objects`.
    pub async fn in_process(
        objects: &[(&str, Vec<u8>)],
        upstream: &TestUpstream,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut vars = vec![("DISTTAGS_STORE".to_owned(), "memory://".to_owned())];
        vars.extend(target_vars(upstream, extra));
        let config = Config::from_vars(vars, Defaults::CLOUD).expect("config");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let app = App::new(
            config.build_store().expect("store"),
            config.build_upstream().expect("upstream"),
            Arc::new(move |e: &LogEvent| sink.lock().expect("lock").push(e.clone())),
        )
        .with_base_path(&config.base_path)
        .with_secrets(config.secrets());
        seed(app.store().as_ref(), objects).await;
        Self::InProcess {
            app: Box::new(app),
            events,
        }
    }

    /// `disttags serve` as a child process over a file store in a temporary directory.
    pub async fn local(
        objects: &[(&str, Vec<u8>)],
        upstream: &TestUpstream,
        extra: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let store = object_store::local::LocalFileSystem::new_with_prefix({
            std::fs::create_dir_all(&data).expect("mkdir");
            &data
        })
        .expect("file store");
        seed(&store, objects).await;
        let mut command = Command::new(binary("disttags"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("DISTTAGS_STORE", format!("file://{}", data.display()))
            .envs(target_vars(upstream, extra));
        let process = Process::spawn(command, true);
        let addr = process.url().trim_start_matches("http://").to_owned();
        let (addr, prefix) = match addr.split_once('/') {
            Some((a, p)) => (a.to_owned(), format!("/{p}")),
            None => (addr, String::new()),
        };
        Self::Http {
            process,
            addr,
            prefix,
            _dir: dir,
        }
    }

    /// Sends `method path` with `headers`; the path goes out byte for byte as given.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send_with(method, path, headers, RequestContext::default())
            .await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[]).await
    }

    /// Sends a request; `context` reaches the core only in-process (shims derive their own).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        context: RequestContext,
    ) -> Reply {
        match self {
            Self::InProcess { app, .. } => {
                let mut builder = Request::builder().method(method).uri(path);
                for (k, v) in headers {
                    builder = builder.header(*k, *v);
                }
                let mut request = builder.body(Bytes::new()).expect("request");
                request.extensions_mut().insert(context);
                let response = app.handle(request).await;
                let (parts, body) = response.into_parts();
                Reply {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body,
                }
            }
            Self::Http { addr, prefix, .. } => {
                raw_request(addr, method, &format!("{prefix}{path}"), headers).await
            }
        }
    }

    /// Log events so far; waits up to 3 s for at least `at_least` of them (a process flushes late).
    pub async fn events(&self, at_least: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let events: Vec<serde_json::Value> = match self {
                Self::InProcess { events, .. } => events
                    .lock()
                    .expect("lock")
                    .iter()
                    .map(|e| serde_json::to_value(e).expect("event json"))
                    .collect(),
                Self::Http { process, .. } => process.events(),
            };
            if events.len() >= at_least || Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One HTTP/1.1 request over a fresh connection, path sent exactly as given (no URL normalisation).
pub async fn raw_request(
    addr: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Empty::<Bytes>::new()).expect("request");
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

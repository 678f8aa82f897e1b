//! Test harness: real servers on 127.0.0.1 (an upstream registry, a log endpoint), the shims as child
//! processes, and the fixtures every conformance case starts from.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub mod azure_host;
pub mod cargo_lambda;
pub mod emulator;
pub mod faults;
pub mod lambda;
pub mod library;
pub mod load;
pub mod matrix;
pub mod target;

/// A port on 127.0.0.1 that was free a moment ago, for servers that must be told their port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A binary of the workspace, freshly built, next to this test executable's `deps/` directory.
///
/// `cargo test` does not rebuild other packages' binaries, so the first call runs `cargo build
/// --bins` for the same profile: a test never runs against a stale shim.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory")
        .to_path_buf();
    let built = BUILT.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(repo_root())
            .args(["build", "--workspace", "--bins", "--quiet"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        match cargo.status() {
            Ok(s) if s.success() => Ok(()),
            other => Err(format!("cargo build --workspace --bins failed: {other:?}")),
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    path
}

/// The hex SHA-256 of a bearer token, as the token lists and files hold it.
pub fn token_hash(token: &str) -> String {
    disttags_core::sha256(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A real packument from `../shared/packuments/` (or `$DISTTAGS_PACKUMENTS`), decompressed.
pub fn shared_packument(file: &str) -> Vec<u8> {
    let dir = std::env::var_os("DISTTAGS_PACKUMENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/packuments"));
    let path = dir.join(file);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    out
}

/// A minimal packument with the given dist-tags JSON (or none).
pub fn packument(name: &str, dist_tags: Option<&str>) -> Vec<u8> {
    let tags = dist_tags
        .map(|t| format!(r#""dist-tags":{t},"#))
        .unwrap_or_default();
    format!(
        r#"{{"_id":"{name}","name":"{name}",{tags}"versions":{{"1.0.0":{{"name":"{name}","version":"1.0.0","dist":{{"tarball":"http://127.0.0.1/x.tgz"}}}}}},"time":{{"1.0.0":"2020-01-01T00:00:00.000Z"}}}}"#
    )
    .into_bytes()
}

/// What the test upstream does for one package.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Has the package with these dist-tags (JSON object text).
    Tags(&'static str),
    /// Has the package, answering with this `Cache-Control`.
    TagsCached(&'static str, &'static str),
    /// Answers this status with a JSON error body.
    Status(u16),
    /// Never answers.
    Hang,
    /// Answers 200 with a body that is not JSON.
    Garbage,
    /// Closes the connection without answering.
    Reset,
    /// Answers 200 with a body that never ends (a JSON string that never closes).
    Endless,
}

/// One request the test upstream saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Raw request path, as sent (percent-encoding intact).
    pub path: String,
    /// The `Accept` header.
    pub accept: String,
    /// The `Via` header.
    pub via: String,
}

/// A real npm-registry-like HTTP server on 127.0.0.1, programmable per package.
#[derive(Debug, Clone)]
pub struct TestUpstream {
    /// Base URL, with a trailing slash.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestUpstream {
    /// Starts an upstream that serves the dist-tags endpoint (`endpoint`) or only packuments.
    pub async fn start(packages: &[(&'static str, Behaviour)], endpoint: bool) -> Self {
        let packages: Arc<HashMap<String, Behaviour>> = Arc::new(
            packages
                .iter()
                .map(|(n, b)| (n.replace('/', "%2f"), b.clone()))
                .collect(),
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let addr = serve_fn(move |request: Request<Incoming>| {
            let packages = packages.clone();
            let seen = seen2.clone();
            async move {
                let path = request.uri().path().to_owned();
                let header = |name: &str| {
                    request
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                seen.lock().expect("lock").push(Seen {
                    path: path.clone(),
                    accept: header("accept"),
                    via: header("via"),
                });
                let (name, is_endpoint) = match path
                    .strip_prefix("/-/package/")
                    .and_then(|p| p.strip_suffix("/dist-tags"))
                {
                    Some(name) => (name.to_owned(), true),
                    None => (path.trim_start_matches('/').to_owned(), false),
                };
                if is_endpoint && !endpoint {
                    return Some(reply(404, r#"{"error":"no such endpoint"}"#.into()));
                }
                let response = match packages.get(&name) {
                    Some(Behaviour::Tags(tags)) if is_endpoint => reply(200, (*tags).into()),
                    Some(Behaviour::TagsCached(tags, cache_control)) => {
                        let mut r = reply(200, (*tags).into());
                        if let Ok(v) = hyper::header::HeaderValue::from_str(cache_control) {
                            r.headers_mut().insert("cache-control", v);
                        }
                        r
                    }
                    Some(Behaviour::Tags(tags)) => reply(
                        200,
                        format!(r#"{{"name":"{name}","dist-tags":{tags},"versions":{{}}}}"#),
                    ),
                    Some(Behaviour::Status(code)) => reply(*code, r#"{"error":"boom"}"#.into()),
                    Some(Behaviour::Garbage) => reply(200, "<html>this is not json".into()),
                    Some(Behaviour::Reset) => return None,
                    Some(Behaviour::Endless) => {
                        let mut response = Response::new(BoxBody::new(Endless { started: false }));
                        response.headers_mut().insert(
                            "content-type",
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        return Some(response);
                    }
                    Some(Behaviour::Hang) => {
                        tokio::time::sleep(Duration::from_secs(120)).await;
                        reply(200, "{}".into())
                    }
                    None => reply(404, r#"{"error":"Not found"}"#.into()),
                };
                Some(response)
            }
        })
        .await;
        Self {
            url: format!("http://{addr}/"),
            seen,
        }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// How often the dist-tags endpoint was asked for `name` (as it appears in the path).
    pub fn asked(&self, name: &str) -> usize {
        let path = format!("/-/package/{name}/dist-tags");
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.path == path)
            .count()
    }
}

/// A response body that never ends: `{"name":"x","readme":"` and then `x` forever.
struct Endless {
    started: bool,
}

impl hyper::body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        let chunk = if self.started {
            Bytes::from(vec![b'x'; 64 * 1024])
        } else {
            self.started = true;
            Bytes::from_static(br#"{"name":"x","readme":""#)
        };
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }
}

/// The body type of the test servers.
pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn reply(status: u16, body: String) -> Response<BoxBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Serves `handler` on a free port of 127.0.0.1 for the rest of the test; `None` resets the connection.
pub async fn serve_fn<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<Response<BoxBody>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |r| {
                    let handler = handler.clone();
                    async move { handler(r).await.ok_or("reset by the test server") }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A real HTTP log endpoint: records each POSTed body and its `Authorization`, answers `status`.
#[derive(Debug, Clone)]
pub struct LogEndpoint {
    /// URL to configure as `DISTTAGS_LOG`.
    pub url: String,
    received: Arc<Mutex<Vec<(String, String)>>>,
}

impl LogEndpoint {
    /// Starts an endpoint answering `status`, after `delay`.
    pub async fn start(status: u16, delay: Duration) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let r2 = received.clone();
        let addr = serve_fn(move |request: Request<Incoming>| {
            let received = r2.clone();
            async move {
                let auth = request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                received
                    .lock()
                    .expect("lock")
                    .push((auth, String::from_utf8_lossy(&body).into_owned()));
                tokio::time::sleep(delay).await;
                Some(reply(status, "{}".into()))
            }
        })
        .await;
        Self {
            url: format!("http://{addr}/events"),
            received,
        }
    }

    /// Waits up to `within` for `n` events; returns `(authorization, body)` pairs.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<(String, String)> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received.lock().expect("lock").clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A shim binary running as a child process; killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// Lines the process wrote to standard output after its first line (log events).
    pub stdout: Arc<Mutex<Vec<String>>>,
    /// Lines the process wrote to standard error.
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// The first line of standard output, if waited for.
    pub banner: String,
}

impl Process {
    /// Starts `command`; when `banner` is set, waits (up to 20 s) for its first stdout line.
    pub fn spawn(mut command: Command, banner: bool) -> Self {
        // stdin stays an open pipe for the child's life: a child that watches it (the emulator
        // launcher does) ends when this test process ends, however it ends.
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            let lines = stdout.clone();
            std::thread::spawn(move || {
                let mut first = true;
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if first && banner {
                        let _ = tx.send(line);
                        first = false;
                    } else {
                        lines.lock().expect("lock").push(line);
                    }
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let lines = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    lines.lock().expect("lock").push(line);
                }
            });
        }
        let banner_line = if banner {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "{command:?} printed no address; stderr: {:?}",
                        stderr.lock().expect("lock")
                    );
                }
            }
        } else {
            String::new()
        };
        Self {
            child,
            stdout,
            stderr,
            banner: banner_line,
        }
    }

    /// The `http://…` URL in the banner line.
    pub fn url(&self) -> String {
        self.banner
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in banner {:?}", self.banner))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The codebox-shaped log events (JSON lines with a `namespace`) written so far, on standard
    /// output and standard error (Azure's handler writes warnings and errors there), in order of
    /// each stream.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.json_lines()
            .into_iter()
            .filter(|l| l.get("namespace").is_some())
            .collect()
    }

    /// Every JSON line written so far: standard output's, then standard error's.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        let stdout = self.stdout.lock().expect("lock").clone();
        let stderr = self.stderr.lock().expect("lock").clone();
        stdout
            .iter()
            .chain(stderr.iter())
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Sends a signal and waits up to `within` for the exit status.
    pub fn signal_and_wait(
        &mut self,
        signal: &str,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

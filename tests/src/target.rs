//! What a conformance case runs against: the core in-process, or a shim as a real child process,
//! each built from the same fixture (store contents and a test upstream).

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;

use disttags_core::{App, Config, Defaults, Identity, LogEvent, RequestContext};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
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

/// A boxed future, so transports can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One request as a case states it, before a platform dresses it up.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// Method.
    pub method: &'a Method,
    /// Path relative to the registry's base (`/-/package/…`), sent byte for byte.
    pub path: &'a str,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// The caller, carried the way the platform carries an authenticated user.
    pub identity: Option<&'a Identity>,
    /// The request id the platform assigns, where the transport can choose it.
    pub request_id: Option<&'a str>,
    /// The body (a tag write's version); empty for reads.
    pub body: &'a [u8],
}

/// `GET`, for requests built without a method of their own.
static GET: Method = Method::GET;

impl<'a> Sent<'a> {
    /// `GET path`, with no headers and no platform context.
    pub fn get(path: &'a str) -> Self {
        Self {
            method: &GET,
            path,
            headers: &[],
            identity: None,
            request_id: None,
            body: &[],
        }
    }
}

/// How cases reach one kind of target: its platform's way of carrying a request, and its log output.
pub trait Transport: Send + Sync {
    /// Sends one request and returns the HTTP answer the platform would give the client.
    fn send<'a>(&'a self, request: Sent<'a>) -> BoxFuture<'a, Reply>;
    /// Log events written so far.
    fn events(&self) -> Vec<serde_json::Value>;
    /// Whether an identity given in [`Sent`] reaches the core on this platform.
    fn carries_identity(&self) -> bool;
    /// The registry URL an HTTP client (npm) can use, where the platform serves plain HTTP.
    fn url(&self) -> Option<String> {
        None
    }
    /// The shim's process, where there is one.
    fn process_mut(&mut self) -> Option<&mut Process> {
        None
    }
    /// The shim's process, read-only.
    fn process(&self) -> Option<&Process> {
        None
    }
}

/// A running endpoint that cases send requests to.
pub struct Target {
    /// How requests reach it.
    pub transport: Box<dyn Transport>,
    /// Keeps a process's file store alive.
    pub dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").finish_non_exhaustive()
    }
}

/// The core's `App::handle`, called directly; events collected by a closure sink.
#[derive(Debug)]
pub struct InProcess {
    app: App,
    events: Arc<Mutex<Vec<LogEvent>>>,
}

/// Sends one request to `app` as a shim would hand it over: method, path, headers and context.
pub async fn handle(app: &App, sent: Sent<'_>) -> Reply {
    let mut builder = Request::builder()
        .method(sent.method.clone())
        .uri(sent.path);
    for (k, v) in sent.headers {
        builder = builder.header(*k, *v);
    }
    let mut request = builder
        .body(Bytes::copy_from_slice(sent.body))
        .expect("request");
    request.extensions_mut().insert(RequestContext {
        identity: sent.identity.cloned(),
        request_id: sent.request_id.map(str::to_owned),
    });
    let (parts, body) = app.handle(request).await.into_parts();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// `GET path` on `app`, with no headers and no platform context.
pub async fn app_get(app: &App, path: &str) -> Reply {
    handle(app, Sent::get(path)).await
}

impl InProcess {
    /// The core's `app`, its events collected in `events`.
    pub fn new(app: App, events: Arc<Mutex<Vec<LogEvent>>>) -> Self {
        Self { app, events }
    }
}

/// Events a closure sink collected, as JSON.
pub fn collected(events: &Mutex<Vec<LogEvent>>) -> Vec<serde_json::Value> {
    events
        .lock()
        .expect("lock")
        .iter()
        .map(|e| serde_json::to_value(e).expect("event json"))
        .collect()
}

impl Transport for InProcess {
    fn send<'a>(&'a self, sent: Sent<'a>) -> BoxFuture<'a, Reply> {
        Box::pin(handle(&self.app, sent))
    }

    fn events(&self) -> Vec<serde_json::Value> {
        collected(&self.events)
    }

    fn carries_identity(&self) -> bool {
        true
    }
}

/// Adds a platform's identity headers to a request.
pub type IdentityHeaders = fn(&Identity) -> Vec<(String, String)>;

/// A shim process serving plain HTTP on 127.0.0.1.
#[derive(Debug)]
pub struct HttpProcess {
    /// The process.
    pub process: Process,
    /// `host:port`.
    pub addr: String,
    /// How this platform's gateway tells the shim who is calling; `None` where nothing is trusted.
    pub identity: Option<IdentityHeaders>,
}

impl Transport for HttpProcess {
    fn send<'a>(&'a self, sent: Sent<'a>) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            let mut headers: Vec<(String, String)> = sent
                .headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            if let (Some(identity), Some(add)) = (sent.identity, self.identity) {
                headers.extend(add(identity));
            }
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            raw_request_body(
                &self.addr,
                sent.method.clone(),
                sent.path,
                &headers,
                Bytes::copy_from_slice(sent.body),
            )
            .await
        })
    }

    fn events(&self) -> Vec<serde_json::Value> {
        self.process.events()
    }

    fn carries_identity(&self) -> bool {
        self.identity.is_some()
    }

    fn url(&self) -> Option<String> {
        Some(format!("http://{}", self.addr))
    }

    fn process_mut(&mut self) -> Option<&mut Process> {
        Some(&mut self.process)
    }

    fn process(&self) -> Option<&Process> {
        Some(&self.process)
    }
}

/// The environment every target shares: the test upstream, with a short timeout for the hang case.
pub fn target_vars(upstream: &TestUpstream, extra: &[(&str, &str)]) -> Vec<(String, String)> {
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

/// What Identity-Aware Proxy adds in front of Cloud Run for an authenticated user.
pub fn iap_headers(identity: &Identity) -> Vec<(String, String)> {
    vec![(
        "X-Goog-Authenticated-User-Email".into(),
        format!("accounts.google.com:{}", identity.name),
    )]
}

/// A temporary file store seeded with `objects`, and the environment that points a shim at it.
pub async fn process_store(
    objects: &[(&str, Vec<u8>)],
    upstream: &TestUpstream,
    extra: &[(&str, &str)],
) -> (tempfile::TempDir, Vec<(String, String)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let store = object_store::local::LocalFileSystem::new_with_prefix(&data).expect("file store");
    seed(&store, objects).await;
    let mut vars = vec![
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".to_owned(), dir.path().display().to_string()),
        (
            "DISTTAGS_STORE".to_owned(),
            format!("file://{}", data.display()),
        ),
    ];
    vars.extend(target_vars(upstream, extra));
    (dir, vars)
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
        let app = config
            .app_with_log(Arc::new(move |e: &LogEvent| {
                sink.lock().expect("lock").push(e.clone())
            }))
            .expect("app");
        seed(app.store().as_ref(), objects).await;
        Self {
            transport: Box::new(InProcess::new(app, events)),
            dir: None,
        }
    }

    /// `disttags serve` as a child process over a file store in a temporary directory.
    pub async fn local(
        objects: &[(&str, Vec<u8>)],
        upstream: &TestUpstream,
        extra: &[(&str, &str)],
    ) -> Self {
        let (dir, vars) = process_store(objects, upstream, extra).await;
        let mut target = Self::local_with(vars);
        target.dir = Some(dir);
        target
    }

    /// `disttags serve` as a child process with exactly this environment.
    pub fn local_with(vars: Vec<(String, String)>) -> Self {
        let mut command = Command::new(binary("disttags"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_clear()
            .envs(vars);
        let process = Process::spawn(command, true);
        let url = process.url();
        let addr = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        Self {
            transport: Box::new(HttpProcess {
                process,
                addr,
                identity: None,
            }),
            dir: None,
        }
    }

    /// `disttags-cloudrun` with exactly this environment (and `PORT`), behind the emulated proxy.
    pub fn cloudrun_with(vars: Vec<(String, String)>) -> Self {
        let port = crate::free_port();
        let mut command = Command::new(binary("disttags-cloudrun"));
        // Behind the emulated proxy, and told so (`vars` may say otherwise).
        command
            .env_clear()
            .env("DISTTAGS_IDENTITY_PROXY", "iap")
            .envs(vars)
            .env("PORT", port.to_string());
        let process = Process::spawn(command, true);
        Self {
            transport: Box::new(HttpProcess {
                process,
                // It listens on 0.0.0.0 as Cloud Run requires; tests reach it over loopback.
                addr: format!("127.0.0.1:{port}"),
                identity: Some(iap_headers),
            }),
            dir: None,
        }
    }

    /// Sends `method path` with `headers`; the path goes out byte for byte as given.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send_body(method, path, headers, &[]).await
    }

    /// [`Self::send`] with a body.
    pub async fn send_body(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        self.transport
            .send(Sent {
                method: &method,
                path,
                headers,
                identity: None,
                request_id: None,
                body,
            })
            .await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[]).await
    }

    /// `GET path` as `identity`, carried the platform's way.
    pub async fn get_as(&self, path: &str, identity: &Identity) -> Reply {
        self.transport
            .send(Sent {
                method: &Method::GET,
                path,
                headers: &[],
                identity: Some(identity),
                request_id: None,
                body: &[],
            })
            .await
    }

    /// The shim's process, where there is one.
    pub fn process(&self) -> Option<&Process> {
        self.transport.process()
    }

    /// The registry URL for HTTP clients, where the target serves plain HTTP.
    pub fn url(&self) -> Option<String> {
        self.transport.url()
    }

    /// Log events so far; waits up to 3 s for at least `at_least` of them (a process flushes late).
    pub async fn events(&self, at_least: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let events = self.transport.events();
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
    raw_request_body(addr, method, path, headers, Bytes::new()).await
}

/// [`raw_request`] with a body; panics when the server cannot be reached.
pub async fn raw_request_body(
    addr: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    try_raw_request(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{path} on {addr}: {e}"))
}

/// One request; an error when the server cannot be reached or breaks the connection.
pub async fn try_raw_request(
    addr: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Reply, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

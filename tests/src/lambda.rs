//! RuntimeApiEmulator: the AWS Lambda Runtime API, for running `disttags-lambda` as Lambda runs it.
//!
//! Written from AWS's published interface ("AWS Lambda runtime API", docs.aws.amazon.com/lambda/latest/
//! dg/runtimes-api.html): `GET /2018-06-01/runtime/invocation/next` hands out the next event with the
//! `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id` headers;
//! the function answers with `POST …/invocation/{id}/response` or `…/{id}/error`; an initialisation
//! failure is `POST /2018-06-01/runtime/init/error`. The transport dresses a case's request as a real
//! event of each kind (templates in `tests/data/lambda/`, shaped as AWS's documented samples) and reads
//! the proxy response back the way API Gateway, ALB and Function URLs do.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::target::{BoxFuture, Reply, Sent, Target, Transport};
use crate::{BoxBody, Process, binary, serve_fn};

/// Which trigger the events imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// API Gateway REST API (payload 1.0), stage `prod` in the path.
    RestV1,
    /// API Gateway HTTP API (payload 2.0).
    HttpV2,
    /// Application Load Balancer.
    Alb,
    /// Lambda Function URL.
    FunctionUrl,
}

impl EventKind {
    /// The kind's sample event as AWS documents it, for `GET /-/ping`.
    pub fn template(self) -> &'static str {
        match self {
            Self::RestV1 => include_str!("../data/lambda/apigw-rest.json"),
            Self::HttpV2 => include_str!("../data/lambda/apigw-http.json"),
            Self::Alb => include_str!("../data/lambda/alb.json"),
            Self::FunctionUrl => include_str!("../data/lambda/function-url.json"),
        }
    }
}

/// The stage the REST events carry.
pub const STAGE: &str = "prod";

type Waiting = Mutex<HashMap<String, oneshot::Sender<Result<String, String>>>>;

/// The Runtime API on 127.0.0.1, queueing invocations for one function process.
#[derive(Debug)]
pub struct RuntimeApiEmulator {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub addr: String,
    queue: mpsc::UnboundedSender<(String, String)>,
    waiting: Arc<Waiting>,
    /// Bodies posted to `/runtime/init/error`.
    pub init_errors: Arc<Mutex<Vec<String>>>,
    next_id: AtomicU64,
}

impl RuntimeApiEmulator {
    /// Starts the emulator.
    pub async fn start() -> Self {
        let (queue, rx) = mpsc::unbounded_channel::<(String, String)>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let waiting: Arc<Waiting> = Arc::new(Mutex::new(HashMap::new()));
        let init_errors = Arc::new(Mutex::new(Vec::new()));
        let (w, e) = (waiting.clone(), init_errors.clone());
        let addr = serve_fn(move |request: Request<Incoming>| {
            let (rx, waiting, init_errors) = (rx.clone(), w.clone(), e.clone());
            async move {
                let path = request.uri().path().to_owned();
                let body = request.into_body().collect().await.ok()?.to_bytes();
                let body = String::from_utf8_lossy(&body).into_owned();
                if path == "/2018-06-01/runtime/invocation/next" {
                    // Long poll: the function waits here until an event is queued.
                    let (id, event) = rx.lock().await.recv().await?;
                    let deadline = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis() + 30_000)
                        .unwrap_or(0);
                    let mut response = Response::new(Full::new(Bytes::from(event)).boxed());
                    let headers = response.headers_mut();
                    for (name, value) in [
                        ("content-type", "application/json".to_owned()),
                        ("lambda-runtime-aws-request-id", id),
                        ("lambda-runtime-deadline-ms", deadline.to_string()),
                        (
                            "lambda-runtime-invoked-function-arn",
                            "arn:aws:lambda:us-east-1:123456789012:function:disttags".to_owned(),
                        ),
                        (
                            "lambda-runtime-trace-id",
                            "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1".to_owned(),
                        ),
                    ] {
                        headers.insert(name, value.parse().ok()?);
                    }
                    return Some(response);
                }
                if path == "/2018-06-01/runtime/init/error" {
                    init_errors.lock().ok()?.push(body);
                    return Some(accepted());
                }
                let rest = path.strip_prefix("/2018-06-01/runtime/invocation/")?;
                let (id, outcome) = rest.split_once('/')?;
                let result = match outcome {
                    "response" => Ok(body),
                    "error" => Err(body),
                    _ => return None,
                };
                if let Some(waiter) = waiting.lock().ok()?.remove(id) {
                    let _ = waiter.send(result);
                }
                Some(accepted())
            }
        })
        .await;
        Self {
            addr: addr.to_string(),
            queue,
            waiting,
            init_errors,
            next_id: AtomicU64::new(1),
        }
    }

    /// Queues one event and waits (up to 15 s) for the function's response (`Ok`) or error (`Err`).
    pub async fn invoke(&self, event: String, request_id: Option<&str>) -> Result<String, String> {
        let id = request_id.map_or_else(
            || {
                format!(
                    "8476a536-e9f4-11e8-9739-{:012x}",
                    self.next_id.fetch_add(1, Ordering::Relaxed)
                )
            },
            str::to_owned,
        );
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .map_err(|e| e.to_string())?
            .insert(id.clone(), tx);
        self.queue.send((id, event)).map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(15), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the emulator dropped the invocation".into()),
            Err(_) => Err("no response or error within 15 s: the invocation hung".into()),
        }
    }
}

fn accepted() -> Response<BoxBody> {
    let mut response = Response::new(Full::new(Bytes::from_static(br#"{"status":"OK"}"#)).boxed());
    *response.status_mut() = http::StatusCode::ACCEPTED;
    response
}

/// Builds the event a trigger of `kind` would send for `sent`.
pub fn event(kind: EventKind, sent: &Sent<'_>) -> String {
    let mut event: Value = serde_json::from_str(kind.template()).expect("template JSON");
    if !sent.body.is_empty() {
        event["body"] = Value::from(String::from_utf8_lossy(sent.body));
        event["isBase64Encoded"] = Value::from(false);
    }
    let (path, query) = sent.path.split_once('?').unwrap_or((sent.path, ""));
    let query_map: serde_json::Map<String, Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), Value::from(v))
        })
        .collect();
    let method = sent.method.as_str();
    let headers = event
        .get_mut("headers")
        .and_then(Value::as_object_mut)
        .expect("template headers");
    for (k, v) in sent.headers {
        headers.insert(k.to_ascii_lowercase(), Value::from(*v));
    }
    match kind {
        EventKind::RestV1 => {
            event["path"] = Value::from(path);
            event["httpMethod"] = Value::from(method);
            event["pathParameters"] = json!({ "proxy": path.trim_start_matches('/') });
            event["requestContext"]["path"] = Value::from(format!("/{STAGE}{path}"));
            event["requestContext"]["httpMethod"] = Value::from(method);
            if !query_map.is_empty() {
                event["queryStringParameters"] = Value::Object(query_map.clone());
                event["multiValueQueryStringParameters"] = Value::Object(
                    query_map
                        .iter()
                        .map(|(k, v)| (k.clone(), json!([v])))
                        .collect(),
                );
            }
            let multi: serde_json::Map<String, Value> = event["headers"]
                .as_object()
                .map(|h| h.iter().map(|(k, v)| (k.clone(), json!([v]))).collect())
                .unwrap_or_default();
            event["multiValueHeaders"] = Value::Object(multi);
            if let Some(identity) = sent.identity {
                // codebox's custom authorizer puts the user in the authorizer context.
                event["requestContext"]["authorizer"] = json!({
                    "principalId": identity.name,
                    "username": identity.name,
                    "avatar": identity.avatar,
                });
            }
        }
        EventKind::HttpV2 | EventKind::FunctionUrl => {
            // An HTTP API hands the function the path decoded once (so `@scope%2fpkg` arrives as
            // `@scope/pkg`), the query string as sent; a Function URL keeps the client's encoding.
            let path = if kind == EventKind::HttpV2 {
                decode_once(path)
            } else {
                path.to_owned()
            };
            event["rawPath"] = Value::from(path.as_str());
            event["rawQueryString"] = Value::from(query);
            event["requestContext"]["http"]["method"] = Value::from(method);
            event["requestContext"]["http"]["path"] = Value::from(path);
            if !query_map.is_empty() {
                event["queryStringParameters"] = Value::Object(query_map);
            }
            if let (Some(identity), EventKind::HttpV2) = (sent.identity, kind) {
                event["requestContext"]["authorizer"] = json!({
                    "lambda": { "username": identity.name, "avatar": identity.avatar },
                });
            }
        }
        EventKind::Alb => {
            event["path"] = Value::from(path);
            event["httpMethod"] = Value::from(method);
            event["queryStringParameters"] = Value::Object(query_map);
        }
    }
    event.to_string()
}

/// Percent-decodes `path` once, as an HTTP API does; bytes that are not UTF-8 become U+FFFD.
pub fn decode_once(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        let hex = hex.filter(|_| bytes[i + 1..i + 3].iter().all(u8::is_ascii_hexdigit));
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the client gets for a function's proxy response (or a 502, as the gateways answer an error).
pub fn proxy_reply(result: Result<String, String>) -> Reply {
    let bad_gateway = Reply {
        status: 502,
        headers: HeaderMap::new(),
        body: Bytes::from_static(br#"{"message":"Internal server error"}"#),
    };
    let Ok(doc) = result.map(|body| serde_json::from_str::<Value>(&body)) else {
        return bad_gateway;
    };
    let Ok(doc) = doc else {
        return bad_gateway;
    };
    let mut headers = HeaderMap::new();
    let single = doc
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten();
    let multi = doc
        .get("multiValueHeaders")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .flat_map(|(k, vs)| vs.as_array().into_iter().flatten().map(move |v| (k, v)));
    for (name, value) in single.chain(multi) {
        if let (Ok(name), Some(Ok(value))) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(http::HeaderValue::from_str),
        ) {
            headers.insert(name, value);
        }
    }
    let text = doc.get("body").and_then(Value::as_str).unwrap_or_default();
    let body = if doc.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    Reply {
        status: doc
            .get("statusCode")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(502),
        headers,
        body: Bytes::from(body),
    }
}

/// `disttags-lambda` fed one kind of event through the emulator.
#[derive(Debug)]
pub struct LambdaTransport {
    /// The Runtime API the process polls.
    pub runtime: RuntimeApiEmulator,
    /// The function process.
    pub process: Process,
    kind: EventKind,
}

impl Transport for LambdaTransport {
    fn send<'a>(&'a self, sent: Sent<'a>) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            let result = self
                .runtime
                .invoke(event(self.kind, &sent), sent.request_id)
                .await;
            proxy_reply(result)
        })
    }

    fn events(&self) -> Vec<Value> {
        self.process.events()
    }

    fn carries_identity(&self) -> bool {
        matches!(self.kind, EventKind::RestV1 | EventKind::HttpV2)
    }

    fn process_mut(&mut self) -> Option<&mut Process> {
        Some(&mut self.process)
    }

    fn process(&self) -> Option<&Process> {
        Some(&self.process)
    }
}

/// The environment Lambda gives a function, besides `AWS_LAMBDA_RUNTIME_API`.
pub const LAMBDA_ENV: &[(&str, &str)] = &[
    ("AWS_LAMBDA_FUNCTION_NAME", "disttags"),
    ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
    ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/disttags"),
    (
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "2026/11/25/[$LATEST]0123456789abcdef",
    ),
    ("AWS_REGION", "us-east-1"),
    ("LAMBDA_TASK_ROOT", "/var/task"),
];

/// Starts `disttags-lambda` with `vars` against a fresh emulator.
pub async fn start_function(kind: EventKind, vars: Vec<(String, String)>) -> LambdaTransport {
    let runtime = RuntimeApiEmulator::start().await;
    let mut command = Command::new(binary("disttags-lambda"));
    command
        .env_clear()
        .envs(vars)
        .envs(LAMBDA_ENV.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", &runtime.addr);
    let process = Process::spawn(command, false);
    LambdaTransport {
        runtime,
        process,
        kind,
    }
}

/// `disttags-lambda` with exactly this environment, fed events of `kind`.
pub async fn lambda_target_with(kind: EventKind, vars: Vec<(String, String)>) -> Target {
    Target {
        transport: Box::new(start_function(kind, vars).await),
        dir: None,
    }
}

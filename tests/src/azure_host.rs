//! AzureHostEmulator: drives `disttags-azure` the way the Azure Functions host drives a custom handler.
//!
//! The real host cannot be installed here (its installer downloads from outside the registries), so
//! this emulator reproduces the documented behaviour the shim depends on:
//! - it picks a free port, passes it in `FUNCTIONS_CUSTOMHANDLER_PORT`, sets `AzureWebJobsScriptRoot`
//!   to a folder holding `host.json`, and polls the handler until it answers before sending work
//!   ("Azure Functions custom handlers", learn.microsoft.com/azure/azure-functions/functions-custom-handlers:
//!   "Application settings", "Custom handler configuration", "HTTP-only function");
//! - with `enableProxyingHttpRequest` / `enableForwardingHttpRequest` it forwards the client's request
//!   unchanged under the route prefix (`/api` unless `host.json` says otherwise), adding
//!   `X-Azure-Functions-InvocationId` (same page, "Forwarding HTTP requests");
//! - otherwise it POSTs the invocation envelope `{"Data":{"req":{Url,Method,Query,Headers,Params}},
//!   "Metadata":{…}}` to `/{functionName}` and reads `Outputs.res` (or `ReturnValue`) from the answer;
//!   a non-2xx answer is a failed invocation, which the host reports to the client as a 500 (same page,
//!   "Request payload", "Response payload");
//! - App Service Authentication puts the caller in `X-MS-CLIENT-PRINCIPAL-NAME` and the base64 JSON
//!   `X-MS-CLIENT-PRINCIPAL` (learn.microsoft.com/azure/app-service/configure-authentication-user-identities).

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use disttags_core::Identity;
use http::{HeaderMap, Method};
use serde_json::{Value, json};

use crate::target::{BoxFuture, Reply, Sent, Target, Transport, raw_request_body};
use crate::{Process, binary, free_port};

/// How the emulated host hands requests to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMode {
    /// `enableProxyingHttpRequest` (or forwarding): the HTTP request itself.
    Proxy,
    /// The invocation envelope.
    Envelope,
}

/// The function's name in the emulated app (its folder holds `function.json`).
pub const FUNCTION: &str = "disttags";

/// The emulated host in front of one `disttags-azure` process.
#[derive(Debug)]
pub struct AzureHostEmulator {
    process: Process,
    addr: String,
    mode: HostMode,
    invocations: AtomicU64,
}

impl AzureHostEmulator {
    /// Starts the handler as the host would and waits until it is ready.
    pub async fn start(
        mode: HostMode,
        vars: Vec<(String, String)>,
        root: &std::path::Path,
    ) -> Self {
        let host_json = json!({
            "version": "2.0",
            "customHandler": {
                "description": { "defaultExecutablePath": "disttags-azure" },
                "enableProxyingHttpRequest": mode == HostMode::Proxy,
            },
            "extensions": { "http": { "routePrefix": "api" } },
        });
        std::fs::write(root.join("host.json"), host_json.to_string()).expect("host.json");
        let port = free_port();
        let mut command = Command::new(binary("disttags-azure"));
        command
            .env_clear()
            .envs(vars)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("AzureWebJobsScriptRoot", root)
            .current_dir(root);
        let process = Process::spawn(command, false);
        let addr = format!("127.0.0.1:{port}");
        // The host's readiness wait: poll until the handler answers.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Ok(reply)) = tokio::time::timeout(
                Duration::from_secs(1),
                crate::target::try_raw_request(&addr, Method::GET, "/", &[], Bytes::new()),
            )
            .await
                && reply.status == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "disttags-azure never became ready; stderr: {:?}",
                process.stderr.lock().expect("lock")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            process,
            addr,
            mode,
            invocations: AtomicU64::new(0),
        }
    }

    fn invocation_id(&self) -> String {
        next_invocation_id(&self.invocations)
    }
}

/// The next invocation id from `counter`, shaped as the host's (a UUID).
pub fn next_invocation_id(counter: &AtomicU64) -> String {
    format!(
        "00000000-0000-4000-8000-{:012x}",
        counter.fetch_add(1, Ordering::Relaxed)
    )
}

/// The headers App Service Authentication adds for `identity`.
pub fn principal_headers(identity: &Identity) -> Vec<(String, String)> {
    let mut claims = vec![json!({"typ": "name", "val": identity.name})];
    if let Some(avatar) = &identity.avatar {
        claims.push(json!({"typ": "picture", "val": avatar}));
    }
    let principal =
        json!({"auth_typ": "aad", "name_typ": "name", "role_typ": "roles", "claims": claims});
    vec![
        ("X-MS-CLIENT-PRINCIPAL-NAME".into(), identity.name.clone()),
        (
            "X-MS-CLIENT-PRINCIPAL".into(),
            base64::engine::general_purpose::STANDARD.encode(principal.to_string()),
        ),
    ]
}

/// What the host sends the handler for `sent`: method, path, headers and body.
pub fn host_request(
    mode: HostMode,
    sent: &Sent<'_>,
    invocation: &str,
) -> (Method, String, Vec<(String, String)>, Bytes) {
    let mut headers: Vec<(String, String)> = sent
        .headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if let Some(identity) = sent.identity {
        headers.extend(principal_headers(identity));
    }
    match mode {
        HostMode::Proxy => {
            headers.push((
                "X-Azure-Functions-InvocationId".into(),
                invocation.to_owned(),
            ));
            (
                sent.method.clone(),
                format!("/api{}", sent.path),
                headers,
                Bytes::copy_from_slice(sent.body),
            )
        }
        HostMode::Envelope => {
            let mut by_name = serde_json::Map::new();
            for (k, v) in &headers {
                by_name.insert(k.clone(), json!([v]));
            }
            let envelope = json!({
                "Data": { "req": {
                    "Url": format!("http://localhost:7071/api{}", sent.path),
                    "Method": sent.method.as_str(),
                    "Query": {},
                    "Headers": by_name,
                    "Params": { "path": sent.path.trim_start_matches('/') },
                    // The host passes a text body as a string.
                    "Body": if sent.body.is_empty() { Value::Null } else { Value::from(String::from_utf8_lossy(sent.body)) },
                }},
                "Metadata": { "sys": { "MethodName": FUNCTION, "UtcNow": "2026-01-01T00:00:00Z", "RandGuid": invocation } },
            });
            (
                Method::POST,
                format!("/{FUNCTION}"),
                vec![
                    ("content-type".into(), "application/json".into()),
                    (
                        "X-Azure-Functions-InvocationId".into(),
                        invocation.to_owned(),
                    ),
                ],
                Bytes::from(envelope.to_string()),
            )
        }
    }
}

/// What the client gets for the handler's answer.
pub fn host_reply(mode: HostMode, answer: Reply) -> Reply {
    match mode {
        HostMode::Proxy => answer,
        HostMode::Envelope => envelope_reply(&answer),
    }
}

impl Transport for AzureHostEmulator {
    fn send<'a>(&'a self, sent: Sent<'a>) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            let invocation = sent
                .request_id
                .map_or_else(|| self.invocation_id(), str::to_owned);
            let (method, path, headers, body) = host_request(self.mode, &sent, &invocation);
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let answer = raw_request_body(&self.addr, method, &path, &headers, body).await;
            host_reply(self.mode, answer)
        })
    }

    fn events(&self) -> Vec<Value> {
        self.process.events()
    }

    fn process(&self) -> Option<&Process> {
        Some(&self.process)
    }

    fn carries_identity(&self) -> bool {
        true
    }

    fn url(&self) -> Option<String> {
        (self.mode == HostMode::Proxy).then(|| format!("http://{}/api", self.addr))
    }
}

/// What the host sends the client for a handler's envelope answer.
pub fn envelope_reply(answer: &Reply) -> Reply {
    let failed = Reply {
        status: 500,
        headers: HeaderMap::new(),
        body: Bytes::new(),
    };
    if !(200..300).contains(&answer.status) {
        return failed;
    }
    let Ok(doc) = serde_json::from_slice::<Value>(&answer.body) else {
        return failed;
    };
    let Some(res) = doc
        .pointer("/Outputs/res")
        .or_else(|| doc.get("ReturnValue"))
    else {
        return failed;
    };
    let mut headers = HeaderMap::new();
    if let Some(map) = res.get("headers").and_then(Value::as_object) {
        for (k, v) in map {
            if let (Ok(name), Some(Ok(value))) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(http::HeaderValue::from_str),
            ) {
                headers.insert(name, value);
            }
        }
    }
    Reply {
        status: res
            .get("statusCode")
            .and_then(|s| s.as_u64().or_else(|| s.as_str()?.parse().ok()))
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(500),
        headers,
        body: Bytes::from(
            res.get("body")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
    }
}

/// `disttags-azure` behind the emulated host with exactly this environment, its app in `root`.
pub async fn azure_target_with(
    mode: HostMode,
    vars: Vec<(String, String)>,
    root: &std::path::Path,
) -> Target {
    let host = AzureHostEmulator::start(mode, vars, root).await;
    Target {
        transport: Box::new(host),
        dir: None,
    }
}

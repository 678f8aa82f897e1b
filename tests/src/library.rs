//! Each shim's library called in-process: the request dressed as its platform hands it over (an
//! HTTP request, an Azure envelope, a Lambda event), answered by the shim's own code, and read
//! back as the platform's front end would.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use disttags_core::{App, Config, LogEvent};
use disttags_server::{AppHandler, Handler};
use http::Request;
use lambda_http::lambda_runtime::{Context, LambdaEvent};
use lambda_http::request::LambdaRequest;

use crate::azure_host::{HostMode, host_reply, host_request};
use crate::lambda::{EventKind, event, proxy_reply};
use crate::matrix::Shim;
use crate::target::{BoxFuture, IdentityHeaders, Reply, Sent, Transport, iap_headers};

/// A shim's library over an app, in-process.
pub struct Library {
    shim: Shim,
    platform: Platform,
    events: Arc<Mutex<Vec<LogEvent>>>,
    invocations: AtomicU64,
}

enum Platform {
    /// `disttags serve` and `disttags-cloudrun`: the shared server's handler.
    Http(AppHandler, Option<IdentityHeaders>),
    Azure(disttags_azure::Azure, HostMode),
    Lambda(disttags_lambda::Function, EventKind),
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library").field("shim", &self.shim).finish()
    }
}

impl Library {
    /// `shim`'s library over `app` (configured by `config`), its events collected in `events`.
    pub fn new(shim: Shim, app: App, config: &Config, events: Arc<Mutex<Vec<LogEvent>>>) -> Self {
        let platform = match shim {
            Shim::Core => panic!("the core has no shim library"),
            Shim::Local => Platform::Http(AppHandler::new(app, disttags_server::no_context), None),
            Shim::CloudRun => Platform::Http(
                AppHandler::new(
                    app,
                    disttags_cloudrun::context_for(Some("iap")).expect("iap"),
                ),
                Some(iap_headers),
            ),
            Shim::AzureProxy | Shim::AzureEnvelope => {
                // The test host's host.json sets the route prefix `api`.
                let base = disttags_azure::base_path("/api", &config.base_path);
                let mode = if shim == Shim::AzureProxy {
                    HostMode::Proxy
                } else {
                    HostMode::Envelope
                };
                Platform::Azure(disttags_azure::Azure::new(app.with_base_path(&base)), mode)
            }
            Shim::LambdaRest => {
                Platform::Lambda(disttags_lambda::Function::new(app), EventKind::RestV1)
            }
            Shim::LambdaHttp => {
                Platform::Lambda(disttags_lambda::Function::new(app), EventKind::HttpV2)
            }
            Shim::LambdaAlb => {
                Platform::Lambda(disttags_lambda::Function::new(app), EventKind::Alb)
            }
            Shim::LambdaUrl => {
                Platform::Lambda(disttags_lambda::Function::new(app), EventKind::FunctionUrl)
            }
            Shim::LambdaCargo => panic!("cargo-lambda's emulator has no library twin"),
        };
        Self {
            shim,
            platform,
            events,
            invocations: AtomicU64::new(0),
        }
    }

    fn next_id(&self) -> String {
        crate::azure_host::next_invocation_id(&self.invocations)
    }
}

impl Transport for Library {
    fn send<'a>(&'a self, sent: Sent<'a>) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            match &self.platform {
                Platform::Http(handler, identity) => {
                    let mut headers = owned(sent.headers);
                    if let (Some(who), Some(add)) = (sent.identity, identity) {
                        headers.extend(add(who));
                    }
                    let request = build(
                        sent.method.clone(),
                        sent.path,
                        &headers,
                        Bytes::copy_from_slice(sent.body),
                    );
                    reply(handler.call(request).await)
                }
                Platform::Azure(handler, mode) => {
                    let invocation = sent
                        .request_id
                        .map_or_else(|| self.next_id(), str::to_owned);
                    let (method, path, headers, body) = host_request(*mode, &sent, &invocation);
                    let request = build(method, &path, &headers, body);
                    host_reply(*mode, reply(handler.call(request).await))
                }
                Platform::Lambda(function, kind) => {
                    let json = event(*kind, &sent);
                    let result = match serde_json::from_str::<LambdaRequest>(&json) {
                        Ok(payload) => {
                            let mut context = Context::default();
                            context.request_id = sent
                                .request_id
                                .map_or_else(|| self.next_id(), str::to_owned);
                            match function.invoke(LambdaEvent::new(payload, context)).await {
                                Ok(response) => {
                                    serde_json::to_string(&response).map_err(|e| e.to_string())
                                }
                                Err(e) => Err(e.to_string()),
                            }
                        }
                        // The runtime reports an event it cannot read as an invocation error.
                        Err(e) => Err(e.to_string()),
                    };
                    proxy_reply(result)
                }
            }
        })
    }

    fn events(&self) -> Vec<serde_json::Value> {
        crate::target::collected(&self.events)
    }

    fn carries_identity(&self) -> bool {
        match self.shim {
            Shim::Local | Shim::LambdaAlb | Shim::LambdaUrl | Shim::LambdaCargo => false,
            Shim::Core
            | Shim::CloudRun
            | Shim::AzureProxy
            | Shim::AzureEnvelope
            | Shim::LambdaRest
            | Shim::LambdaHttp => true,
        }
    }
}

fn owned(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn build(
    method: http::Method,
    path: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Request<Bytes> {
    let mut builder = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder.body(body).expect("request")
}

fn reply(response: http::Response<Bytes>) -> Reply {
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

//! disttags-azure: the core as an Azure Functions custom handler on `FUNCTIONS_CUSTOMHANDLER_PORT`.
//!
//! The Functions host talks to a custom handler in one of two ways, both served here:
//! - HTTP proxying/forwarding (`enableProxyingHttpRequest`, or the older `enableForwardingHttpRequest`):
//!   the client's request arrives as it was sent, under the host's route prefix (`/api` by default,
//!   read from `host.json`: [`host`]).
//! - The invocation envelope ([`envelope`]): `POST /{function}`, answered inside a 200, because the
//!   host treats a non-2xx answer as a failed invocation; only an envelope that cannot be read gets
//!   a 400.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use disttags_core::{App, Config, Defaults, Env, Error, RequestContext, json_response, vars};
use disttags_server::identity::header;
use disttags_server::{Handler, listen_and_serve};
use http::{Method, Request, Response, StatusCode};

mod envelope;
pub mod host;
mod identity;

/// The binary's name, as it prefixes its messages.
pub const NAME: &str = "disttags-azure";

/// The handler: the core app, with the host's two ways of handing over a request.
#[derive(Debug)]
pub struct Azure {
    app: App,
}

impl Azure {
    /// The handler over `app`, which serves under the route prefix and base path already.
    pub fn new(app: App) -> Self {
        Self { app }
    }

    async fn envelope(&self, envelope: &Request<Bytes>) -> Response<Bytes> {
        let request = match envelope::parse_envelope(envelope.body()) {
            Ok(request) => request,
            Err(why) => return Error::InvalidEnvelope(why).into_response(),
        };
        let response = self
            .forward(invocation_id(envelope.headers()), request)
            .await;
        json_response(StatusCode::OK, envelope::wrap(&response))
    }

    /// The client's request through the core, with the caller and the host's invocation id.
    async fn forward(
        &self,
        invocation: Option<String>,
        request: Request<Bytes>,
    ) -> Response<Bytes> {
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(RequestContext {
            identity: identity::identity(&parts.headers),
            request_id: invocation,
        });
        self.app.handle(Request::from_parts(parts, body)).await
    }
}

impl Handler for Azure {
    async fn call(&self, request: Request<Bytes>) -> Response<Bytes> {
        let path = request.uri().path();
        if path == "/" && request.method() == Method::GET {
            // The host's readiness probe: answered at once, without touching the store.
            return json_response(StatusCode::OK, Bytes::from_static(b"{}"));
        }
        if request.method() == Method::POST && envelope::is_function_name(path) {
            return self.envelope(&request).await;
        }
        let invocation = invocation_id(request.headers());
        self.forward(invocation, request).await
    }
}

/// The host's id of this invocation.
fn invocation_id(headers: &http::HeaderMap) -> Option<String> {
    header(headers, "x-azure-functions-invocationid").map(str::to_owned)
}

/// Where the registry is served: the host strips nothing, so paths arrive as
/// `/{routePrefix}{base path}/-/…`.
pub fn base_path(route_prefix: &str, configured: &str) -> String {
    format!("{route_prefix}{}", configured.trim_end_matches('/'))
}

/// Configures from `env`, then serves on loopback until the host stops the process.
pub async fn serve(env: Env) -> Result<(), String> {
    let port_var = vars::FUNCTIONS_CUSTOMHANDLER_PORT.name;
    let port: u16 = match env.get(&vars::FUNCTIONS_CUSTOMHANDLER_PORT) {
        Some(p) => p
            .parse()
            .map_err(|_| format!("{port_var}={p:?} is not a port number"))?,
        None => {
            return Err(format!(
                "{port_var} is not set: the Functions host sets it; set it to run the handler by hand"
            ));
        }
    };
    let config = Config::from_env(&env, Defaults::GUARDED).map_err(|e| e.to_string())?;
    let prefix = host::route_prefix(&host::host_json_path(&env))?;
    let base_path = base_path(&prefix, &config.base_path);
    let app = config
        .build_app()
        .map_err(|e| e.to_string())?
        .with_base_path(&base_path);
    let app =
        disttags_server::observe::observe(app, &env, disttags_core::telemetry::LogFormat::Azure)?;
    // The host reaches the handler on loopback only.
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // Only the Functions host connects, and it keeps its connections.
    listen_and_serve(NAME, addr, &base_path, None, Arc::new(Azure::new(app))).await
}

//! disttags-azure: the core as an Azure Functions custom handler on `FUNCTIONS_CUSTOMHANDLER_PORT`.
//!
//! The Functions host talks to a custom handler in one of two ways, both served here:
//! - HTTP proxying/forwarding (`enableProxyingHttpRequest`, or the older `enableForwardingHttpRequest`):
//!   the client's request arrives as it was sent, under the host's route prefix (`/api` by default).
//! - The invocation envelope: `POST /{function}` with `{"Data":{"req":{…}},"Metadata":{…}}`, answered
//!   with `{"Outputs":{"res":{…}},"Logs":[],"ReturnValue":…}`. The host treats a non-2xx answer as a
//!   failed invocation, so every HTTP outcome travels inside a 200; only an envelope that cannot be
//!   read gets a 400.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use disttags_core::{App, Config, Defaults, Identity, RequestContext};
use disttags_server::identity::{base64_json, header};
use disttags_server::{Handler, listen_and_serve, run};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

const NAME: &str = "disttags-azure";

fn main() -> ExitCode {
    run(NAME, async {
        let port: u16 = match std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT") {
            Ok(p) => p
                .parse()
                .map_err(|_| format!("FUNCTIONS_CUSTOMHANDLER_PORT={p:?} is not a port number"))?,
            Err(_) => return Err("FUNCTIONS_CUSTOMHANDLER_PORT is not set: the Functions host sets it; set it to run the handler by hand".into()),
        };
        let config =
            Config::from_vars(std::env::vars(), Defaults::CLOUD).map_err(|e| e.to_string())?;
        let prefix = route_prefix(&host_json_path())?;
        // The host strips nothing: paths arrive as `/{routePrefix}{base path}/-/…`.
        let base_path = format!("{prefix}{}", config.base_path.trim_end_matches('/'));
        let app = config
            .build_app()
            .map_err(|e| e.to_string())?
            .with_base_path(&base_path);
        // The host reaches the handler on loopback only.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // Only the Functions host connects, and it keeps its connections.
        listen_and_serve(NAME, addr, &base_path, None, Arc::new(Azure { app })).await
    })
}

/// `host.json` of the function app: in `AzureWebJobsScriptRoot`, else the working directory.
fn host_json_path() -> PathBuf {
    std::env::var_os("AzureWebJobsScriptRoot")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join("host.json")
}

/// The host's HTTP route prefix as `/api` (or empty), read from `host.json` so the two cannot drift.
fn route_prefix(host_json: &std::path::Path) -> Result<String, String> {
    let text = match std::fs::read_to_string(host_json) {
        Ok(text) => text,
        // Without a host.json the host's own default applies.
        Err(_) => return Ok("/api".into()),
    };
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", host_json.display()))?;
    let prefix = match doc.pointer("/extensions/http/routePrefix") {
        None => "api",
        Some(Value::String(p)) => p.as_str(),
        Some(_) => {
            return Err(format!(
                "{}: extensions.http.routePrefix must be a string",
                host_json.display()
            ));
        }
    };
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() {
        String::new()
    } else {
        format!("/{prefix}")
    })
}

struct Azure {
    app: App,
}

impl Handler for Azure {
    async fn call(&self, request: Request<Bytes>) -> Response<Bytes> {
        let path = request.uri().path();
        if path == "/" && request.method() == Method::GET {
            // The host's readiness probe: answered at once, without touching the store.
            return json(StatusCode::OK, Bytes::from_static(b"{}"));
        }
        if request.method() == Method::POST && is_function_name(path) {
            return self.envelope(&request).await;
        }
        let (mut parts, body) = request.into_parts();
        let invocation =
            header(&parts.headers, "x-azure-functions-invocationid").map(str::to_owned);
        parts.extensions.insert(RequestContext {
            identity: identity(&parts.headers),
            request_id: invocation,
        });
        self.app.handle(Request::from_parts(parts, body)).await
    }
}

/// `POST /{function}`: one path segment that is not a registry path.
fn is_function_name(path: &str) -> bool {
    let name = path.trim_start_matches('/');
    !name.is_empty() && !name.contains('/') && !name.starts_with('-')
}

/// Identity from App Service Authentication, which replaces these headers on every request it passes.
fn identity(headers: &HeaderMap) -> Option<Identity> {
    let principal = header(headers, "x-ms-client-principal").and_then(base64_json);
    let claim = |typ: &str| -> Option<String> {
        principal
            .as_ref()?
            .get("claims")?
            .as_array()?
            .iter()
            .find(|c| c.get("typ").and_then(Value::as_str) == Some(typ))?
            .get("val")?
            .as_str()
            .map(str::to_owned)
    };
    let name = header(headers, "x-ms-client-principal-name")
        .map(str::to_owned)
        .or_else(|| {
            let name_typ = principal.as_ref()?.get("name_typ")?.as_str()?.to_owned();
            claim(&name_typ)
        })
        .or_else(|| claim("name"))?;
    Some(Identity {
        name,
        avatar: claim("picture"),
    })
}

/// The `req` binding of an invocation envelope, as the host sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnvelopeRequest {
    url: String,
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Azure {
    async fn envelope(&self, envelope: &Request<Bytes>) -> Response<Bytes> {
        let invocation =
            header(envelope.headers(), "x-azure-functions-invocationid").map(str::to_owned);
        let request = match parse_envelope(envelope.body()) {
            Ok(request) => request,
            Err(why) => {
                let body =
                    json!({ "ok": false, "error": format!("invalid invocation envelope: {why}") });
                return json(StatusCode::BAD_REQUEST, Bytes::from(body.to_string()));
            }
        };
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(RequestContext {
            identity: identity(&parts.headers),
            request_id: invocation,
        });
        let response = self.app.handle(Request::from_parts(parts, body)).await;
        let headers: serde_json::Map<String, Value> = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), Value::from(v.to_str().ok()?))))
            .collect();
        let res = json!({
            "statusCode": response.status().as_u16(),
            "headers": headers,
            "body": String::from_utf8_lossy(response.body()),
        });
        let answer = json!({ "Outputs": { "res": res.clone() }, "Logs": [], "ReturnValue": res });
        json(StatusCode::OK, Bytes::from(answer.to_string()))
    }
}

/// Rebuilds the client's request from an envelope's `Data.req`.
fn parse_envelope(body: &[u8]) -> Result<Request<Bytes>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let req = doc
        .pointer("/Data/req")
        .ok_or("Data.req is missing")?
        .clone();
    let req: EnvelopeRequest = serde_json::from_value(req).map_err(|e| format!("Data.req: {e}"))?;
    let url = url_path(&req.url).ok_or("Data.req.Url is not an absolute URL")?;
    let method =
        Method::from_bytes(req.method.as_bytes()).map_err(|_| "Data.req.Method is not a method")?;
    let mut builder = Request::builder().method(method).uri(url);
    for (name, values) in &req.headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let values = match values {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v.as_slice(),
        };
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value) {
                builder = builder.header(name.clone(), value);
            }
        }
    }
    builder.body(Bytes::new()).map_err(|e| e.to_string())
}

/// The path and query of an absolute URL, kept byte for byte (no normalisation of `%2f` or `..`).
fn url_path(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let at = rest.find('/')?;
    Some(&rest[at..])
}

fn json(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_prefix_from_host_json() {
        let dir = std::env::temp_dir().join(format!("disttags-azure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("host.json");
        assert_eq!(
            route_prefix(&file).as_deref(),
            Ok("/api"),
            "no host.json: the host's default"
        );
        std::fs::write(
            &file,
            r#"{"version":"2.0","extensions":{"http":{"routePrefix":""}}}"#,
        )
        .expect("w");
        assert_eq!(route_prefix(&file).as_deref(), Ok(""));
        std::fs::write(&file, r#"{"extensions":{"http":{"routePrefix":"/npm/"}}}"#).expect("w");
        assert_eq!(route_prefix(&file).as_deref(), Ok("/npm"));
        std::fs::write(&file, r#"{"extensions":{"http":{"routePrefix":3}}}"#).expect("w");
        assert!(route_prefix(&file).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn envelope_urls_keep_their_encoding() {
        assert_eq!(
            url_path("http://localhost:7071/api/-/package/@s%2fp/dist-tags?x=1"),
            Some("/api/-/package/@s%2fp/dist-tags?x=1")
        );
        assert_eq!(url_path("no-scheme"), None);
        assert!(is_function_name("/disttags"));
        assert!(!is_function_name("/api/-/ping"));
        assert!(!is_function_name("/-/ping"));
    }

    #[test]
    fn identity_from_principal_headers() {
        let mut h = HeaderMap::new();
        // {"auth_typ":"aad","name_typ":"preferred_username","claims":[{"typ":"preferred_username","val":"ann@contoso.com"},{"typ":"picture","val":"https://p/a.png"}]}
        let principal = "eyJhdXRoX3R5cCI6ImFhZCIsIm5hbWVfdHlwIjoicHJlZmVycmVkX3VzZXJuYW1lIiwiY2xhaW1zIjpbeyJ0eXAiOiJwcmVmZXJyZWRfdXNlcm5hbWUiLCJ2YWwiOiJhbm5AY29udG9zby5jb20ifSx7InR5cCI6InBpY3R1cmUiLCJ2YWwiOiJodHRwczovL3AvYS5wbmcifV19";
        h.insert("x-ms-client-principal", HeaderValue::from_static(principal));
        let id = identity(&h).expect("identity");
        assert_eq!(id.name, "ann@contoso.com");
        assert_eq!(id.avatar.as_deref(), Some("https://p/a.png"));
        h.insert(
            "x-ms-client-principal-name",
            HeaderValue::from_static("ann"),
        );
        assert_eq!(identity(&h).map(|i| i.name).as_deref(), Some("ann"));
        assert_eq!(identity(&HeaderMap::new()), None);
    }
}

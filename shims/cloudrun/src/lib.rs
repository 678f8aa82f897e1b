//! disttags-cloudrun: the core behind Google Cloud Run, on `0.0.0.0:$PORT`, draining on SIGTERM;
//! the caller from Identity-Aware Proxy or API Gateway, read only when the proxy is named.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use disttags_core::vars::{IDENTITY_PROXY, PORT};
use disttags_core::{Config, Defaults, Env, Identity, RequestContext};
use disttags_server::identity::{base64_json, header};
use disttags_server::{AppHandler, ContextFn, listen_and_serve};
use http::request::Parts;

/// The binary's name, as it prefixes its messages.
pub const NAME: &str = "disttags-cloudrun";

/// Configures from `env`, then serves on `0.0.0.0:$PORT` until SIGTERM, and drains.
pub async fn serve(env: Env) -> Result<(), String> {
    let port = env.value(&PORT).unwrap_or_default();
    let port: u16 = port
        .parse()
        .map_err(|_| format!("PORT={port:?} is not a port number"))?;
    let proxy = env.get(&IDENTITY_PROXY);
    let context = context_for(proxy)?;
    let config = Config::from_env(&env, Defaults::CLOUD).map_err(|e| e.to_string())?;
    let app = config.build_app().map_err(|e| e.to_string())?;
    let app = disttags_server::observe::observe(
        app,
        &env,
        disttags_core::telemetry::LogFormat::cloud_run(&env),
    )?;
    if let Some(warning) = config.writes_warning() {
        eprintln!("{NAME}: {warning}");
    }
    if proxy.is_none() {
        // Deployments from before this setting read IAP's header unasked: say why it is ignored.
        eprintln!(
            "{NAME}: {} is not set: no identity header is read \
             (set it to iap or api-gateway when one is in front)",
            IDENTITY_PROXY.name
        );
    }
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    listen_and_serve(
        NAME,
        addr,
        &config.base_path,
        // Only Cloud Run's front end connects to the container, and it keeps its connections.
        None,
        Arc::new(AppHandler::new(app, context)),
    )
    .await
}

/// How requests are read, given `DISTTAGS_IDENTITY_PROXY`.
///
/// Identity-Aware Proxy and API Gateway replace their identity headers on the requests they pass on,
/// but a Cloud Run service that also takes traffic directly (ingress `all`, as npm clients need
/// without a proxy) gets whatever a client sends. So the headers are read only when the operator
/// names the proxy that sets them; by default no header is an identity.
pub fn context_for(proxy: Option<&str>) -> Result<ContextFn, String> {
    match proxy.map(str::trim) {
        None | Some("" | "none") => Ok(trace_only),
        Some("iap") => Ok(behind_iap),
        Some("api-gateway") => Ok(behind_api_gateway),
        Some(other) => Err(format!(
            "{}={other:?} is not valid: use iap, api-gateway, or none",
            IDENTITY_PROXY.name
        )),
    }
}

/// The request id from Cloud Run's trace header; no identity.
pub fn trace_only(parts: &Parts) -> RequestContext {
    RequestContext {
        identity: None,
        request_id: header(&parts.headers, "x-cloud-trace-context")
            .map(|v| v.split('/').next().unwrap_or(v).to_owned()),
    }
}

/// Behind Identity-Aware Proxy: the caller from `X-Goog-Authenticated-User-Email`.
pub fn behind_iap(parts: &Parts) -> RequestContext {
    let identity = header(&parts.headers, "x-goog-authenticated-user-email").map(|v| Identity {
        // IAP prefixes the identity provider: `accounts.google.com:alice@example.com`.
        name: v.rsplit_once(':').map_or(v, |(_, email)| email).to_owned(),
        avatar: None,
    });
    RequestContext {
        identity,
        ..trace_only(parts)
    }
}

/// Behind API Gateway: the caller from the JWT claims in `X-Apigateway-Api-Userinfo`.
pub fn behind_api_gateway(parts: &Parts) -> RequestContext {
    let identity = (|| {
        let claims = base64_json(header(&parts.headers, "x-apigateway-api-userinfo")?)?;
        let name = ["email", "sub"]
            .iter()
            .find_map(|k| claims.get(*k)?.as_str())?
            .to_owned();
        let avatar = claims
            .get("picture")
            .and_then(|p| p.as_str())
            .map(str::to_owned);
        Some(Identity { name, avatar })
    })();
    RequestContext {
        identity,
        ..trace_only(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder();
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn identity_only_from_the_proxy_named() {
        let iap = [
            (
                "x-goog-authenticated-user-email",
                "accounts.google.com:alice@example.com",
            ),
            (
                "x-cloud-trace-context",
                "105445aa7843bc8bf206b12000100000/1;o=1",
            ),
        ];
        // {"sub":"123","email":"bob@example.com","picture":"https://p/b.png"}, base64url
        let info = "eyJzdWIiOiIxMjMiLCJlbWFpbCI6ImJvYkBleGFtcGxlLmNvbSIsInBpY3R1cmUiOiJodHRwczovL3AvYi5wbmcifQ";
        let gateway = [("x-apigateway-api-userinfo", info)];
        let both = parts(&[iap.as_slice(), gateway.as_slice()].concat());
        let name = |proxy: Option<&str>| {
            context_for(proxy).expect("valid")(&both)
                .identity
                .map(|i| i.name)
        };

        assert_eq!(name(Some("iap")).as_deref(), Some("alice@example.com"));
        assert_eq!(
            name(Some("api-gateway")).as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(name(None), None, "no proxy named: no header is trusted");
        assert_eq!(name(Some("none")), None);

        let c = context_for(Some("api-gateway")).expect("valid")(&parts(&gateway));
        let id = c.identity.expect("identity");
        assert_eq!(id.avatar.as_deref(), Some("https://p/b.png"));
        let c = context_for(None).expect("valid")(&parts(&iap));
        assert_eq!(
            c.request_id.as_deref(),
            Some("105445aa7843bc8bf206b12000100000")
        );
        assert_eq!(
            context_for(Some("iap")).expect("valid")(&parts(&[(
                "x-ms-client-principal-name",
                "eve"
            )]))
            .identity,
            None
        );
        let error = context_for(Some("IAP ")).err().unwrap_or_default();
        assert!(error.contains(IDENTITY_PROXY.name), "{error}");
    }
}

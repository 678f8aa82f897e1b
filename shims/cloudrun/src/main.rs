//! disttags-cloudrun: the core behind Google Cloud Run, on `0.0.0.0:$PORT`, draining on SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use disttags_core::{Config, Defaults, Identity, RequestContext};
use disttags_server::identity::{base64_json, header};
use disttags_server::{AppHandler, listen_and_serve, run};
use http::request::Parts;

const NAME: &str = "disttags-cloudrun";
/// Cloud Run's default when `PORT` is unset.
const DEFAULT_PORT: u16 = 8080;

fn main() -> ExitCode {
    run(NAME, async {
        let port = match std::env::var("PORT") {
            Err(_) => DEFAULT_PORT,
            Ok(p) => p
                .parse()
                .map_err(|_| format!("PORT={p:?} is not a port number"))?,
        };
        let config =
            Config::from_vars(std::env::vars(), Defaults::CLOUD).map_err(|e| e.to_string())?;
        let app = config.build_app().map_err(|e| e.to_string())?;
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        listen_and_serve(
            NAME,
            addr,
            &config.base_path,
            Arc::new(AppHandler::new(app, context)),
        )
        .await
    })
}

/// Identity from Identity-Aware Proxy or API Gateway, which strip these headers from client requests;
/// request id from Cloud Run's trace header.
fn context(parts: &Parts) -> RequestContext {
    let headers = &parts.headers;
    let iap = header(headers, "x-goog-authenticated-user-email").map(|v| Identity {
        // IAP prefixes the identity provider: `accounts.google.com:alice@example.com`.
        name: v.rsplit_once(':').map_or(v, |(_, email)| email).to_owned(),
        avatar: None,
    });
    let gateway = || {
        let claims = base64_json(header(headers, "x-apigateway-api-userinfo")?)?;
        let name = ["email", "sub"]
            .iter()
            .find_map(|k| claims.get(*k)?.as_str())?
            .to_owned();
        let avatar = claims
            .get("picture")
            .and_then(|p| p.as_str())
            .map(str::to_owned);
        Some(Identity { name, avatar })
    };
    RequestContext {
        identity: iap.or_else(gateway),
        request_id: header(headers, "x-cloud-trace-context")
            .map(|v| v.split('/').next().unwrap_or(v).to_owned()),
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
    fn identity_from_iap_then_api_gateway() {
        let c = context(&parts(&[
            (
                "x-goog-authenticated-user-email",
                "accounts.google.com:alice@example.com",
            ),
            (
                "x-cloud-trace-context",
                "105445aa7843bc8bf206b12000100000/1;o=1",
            ),
        ]));
        assert_eq!(
            c.identity.map(|i| i.name).as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(
            c.request_id.as_deref(),
            Some("105445aa7843bc8bf206b12000100000")
        );
        // {"sub":"123","email":"bob@example.com","picture":"https://p/b.png"}, base64url
        let info = "eyJzdWIiOiIxMjMiLCJlbWFpbCI6ImJvYkBleGFtcGxlLmNvbSIsInBpY3R1cmUiOiJodHRwczovL3AvYi5wbmcifQ";
        let c = context(&parts(&[("x-apigateway-api-userinfo", info)]));
        let id = c.identity.expect("identity");
        assert_eq!(
            (id.name.as_str(), id.avatar.as_deref()),
            ("bob@example.com", Some("https://p/b.png"))
        );
        assert_eq!(
            context(&parts(&[("x-ms-client-principal-name", "eve")])).identity,
            None
        );
    }
}

//! disttags-lambda: the core behind AWS Lambda, for API Gateway REST (v1) and HTTP API (v2), ALB and
//! Function URL events.
//!
//! Clients are built once at init, outside the handler. Requests are routed on the stage-free path
//! (`raw_http_path`), identity comes from the API Gateway authorizer, and the request id is the
//! invocation's. An event that is not one of those shapes never reaches this code: the runtime
//! reports it to the Runtime API as an invocation error.

use std::process::ExitCode;
use std::sync::Arc;

use disttags_core::{App, Config, Defaults, Identity, RequestContext};
use lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizer;
use lambda_http::request::RequestContext as Event;
use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

const NAME: &str = "disttags-lambda";

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{NAME}: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let app = match Config::from_vars(std::env::vars(), Defaults::CLOUD)
            .and_then(|c| c.build_app())
        {
            Ok(app) => Arc::new(app),
            Err(e) => {
                // Lambda reports the exit as an init failure; the line says what to set.
                eprintln!("{NAME}: {e}");
                return ExitCode::from(2);
            }
        };
        let handler = service_fn(move |request: Request| {
            let app = app.clone();
            async move { Ok::<_, lambda_http::Error>(handle(&app, request).await) }
        });
        match lambda_http::run(handler).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{NAME}: the Lambda runtime stopped: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Characters that cannot stand in a URI path as they are (a decoded path may hold them).
const NOT_IN_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'#')
    .add(b'?');

async fn handle(app: &App, request: Request) -> Response<Body> {
    let context = RequestContext {
        identity: request.request_context_ref().and_then(identity),
        request_id: request.lambda_context_ref().map(|c| c.request_id.clone()),
    };
    // The stage-free path, kept as the gateway gave it: the core decodes a name exactly once, and
    // characters a gateway decoded that a URI cannot hold are encoded again rather than refused here.
    let mut uri = utf8_percent_encode(request.raw_http_path(), NOT_IN_PATH).to_string();
    if let Some(query) = request.uri().query() {
        uri.push('?');
        uri.push_str(query);
    }
    let mut core = http::Request::builder().method(request.method().clone());
    for (name, value) in request.headers() {
        core = core.header(name, value);
    }
    let response = match core.uri(uri.as_str()).body(bytes::Bytes::new()) {
        Ok(mut core) => {
            core.extensions_mut().insert(context);
            app.handle(core).await
        }
        Err(_) => disttags_core::Error::RouteNotFound.into_response(),
    };
    let (parts, body) = response.into_parts();
    let body = if body.is_empty() {
        Body::Empty
    } else {
        // Every body the core writes is JSON text.
        Body::Text(String::from_utf8_lossy(&body).into_owned())
    };
    Response::from_parts(parts, body)
}

/// The caller, from the API Gateway authorizer: codebox's (REST) authorizer context `username` and
/// `avatar`, an HTTP API Lambda authorizer's context, or JWT claims.
fn identity(event: &Event) -> Option<Identity> {
    match event {
        Event::ApiGatewayV1(context) => from_authorizer(&context.authorizer),
        Event::ApiGatewayV2(context) => from_authorizer(context.authorizer.as_ref()?),
        _ => None,
    }
}

fn from_authorizer(authorizer: &ApiGatewayRequestAuthorizer) -> Option<Identity> {
    let field = |key: &str| {
        authorizer
            .fields
            .get(key)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    if let Some(name) = field("username") {
        return Some(Identity {
            name,
            avatar: field("avatar"),
        });
    }
    let claims = &authorizer.jwt.as_ref()?.claims;
    let name = ["username", "cognito:username", "email", "sub"]
        .iter()
        .find_map(|k| claims.get(*k).filter(|v| !v.is_empty()))?;
    Some(Identity {
        name: name.clone(),
        avatar: claims.get("picture").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorizer(json: serde_json::Value) -> ApiGatewayRequestAuthorizer {
        serde_json::from_value(json).expect("authorizer")
    }

    #[test]
    fn identity_from_lambda_authorizer_fields_or_jwt_claims() {
        let lambda = authorizer(
            serde_json::json!({"lambda": {"username": "alice", "avatar": "https://a/p.png"}}),
        );
        let id = from_authorizer(&lambda).expect("identity");
        assert_eq!(
            (id.name.as_str(), id.avatar.as_deref()),
            ("alice", Some("https://a/p.png"))
        );
        let jwt = authorizer(
            serde_json::json!({"jwt": {"claims": {"sub": "123", "email": "bob@example.com"}}}),
        );
        assert_eq!(
            from_authorizer(&jwt).map(|i| i.name).as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(from_authorizer(&authorizer(serde_json::json!({}))), None);
    }
}

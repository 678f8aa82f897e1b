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
use lambda_http::request::{LambdaRequest, RequestContext as Event};
use lambda_http::{Adapter, Body, LambdaEvent, Request, RequestExt, Response, Service, service_fn};
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
                // One line says what to set; Lambda also gets it as the init error.
                eprintln!("{NAME}: {e}");
                report_init_error(&e.to_string()).await;
                return ExitCode::from(2);
            }
        };
        let handler = service_fn(move |request: Request| {
            let app = app.clone();
            async move { Ok::<_, lambda_http::Error>(handle(&app, request).await) }
        });
        // The runtime panics on a missing Lambda variable; outside Lambda say so in one line instead.
        for var in RUNTIME_VARS {
            if std::env::var_os(var).is_none() {
                eprintln!("{NAME}: {var} is not set: run this binary in AWS Lambda (or a Runtime API emulator)");
                return ExitCode::from(2);
            }
        }
        // lambda_http's own event conversion, behind a step that makes sure it cannot panic.
        let adapter = Adapter::from(handler);
        let runtime = service_fn(move |mut event: LambdaEvent<LambdaRequest>| {
            sanitize(&mut event.payload);
            let mut adapter = adapter.clone();
            async move { adapter.call(event).await }
        });
        match lambda_http::lambda_runtime::run(runtime).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{NAME}: the Lambda runtime stopped: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// What `lambda_http::run` requires of the environment.
const RUNTIME_VARS: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Characters that cannot stand in a URI's query as they are.
const NOT_IN_QUERY: &AsciiSet = &CONTROLS
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
    .add(b'#');

/// Makes an event safe for lambda_http's conversion, which unwraps a URL built from the Host (or
/// domain name), `X-Forwarded-Proto` and the path, and a URI with the raw query string appended:
/// a value no gateway sends is dropped or encoded here, so the request is answered, not panicked on.
fn sanitize(event: &mut LambdaRequest) {
    match event {
        LambdaRequest::ApiGatewayV1(e) => {
            sanitize_origin(&mut e.headers, &mut e.request_context.domain_name);
            lead_with_slash(&mut e.path);
        }
        LambdaRequest::ApiGatewayV2(e) => {
            sanitize_origin(&mut e.headers, &mut e.request_context.domain_name);
            lead_with_slash(&mut e.raw_path);
            if let Some(query) = &mut e.raw_query_string {
                *query = utf8_percent_encode(query, NOT_IN_QUERY).to_string();
            }
        }
        LambdaRequest::Alb(e) => {
            sanitize_origin(&mut e.headers, &mut None);
            lead_with_slash(&mut e.path);
        }
        _ => {}
    }
}

fn sanitize_origin(headers: &mut http::HeaderMap, domain_name: &mut Option<String>) {
    let is_authority = |host: &str| url::Url::parse(&format!("https://{host}/")).is_ok();
    let host_ok = headers
        .get(http::header::HOST)
        .map(|h| h.to_str().is_ok_and(is_authority));
    if host_ok == Some(false) {
        headers.remove(http::header::HOST);
    }
    if domain_name.as_deref().is_some_and(|d| !is_authority(d)) {
        *domain_name = None;
    }
    let proto = headers.get("x-forwarded-proto").map(|p| {
        p.to_str()
            .is_ok_and(|p| p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("https"))
    });
    if proto == Some(false) {
        headers.remove("x-forwarded-proto");
    }
}

fn lead_with_slash(path: &mut Option<String>) {
    if let Some(p) = path.as_mut().filter(|p| !p.starts_with('/')) {
        p.insert(0, '/');
    }
}

/// Characters that cannot stand in a URI path as they are (a decoded path may hold them): those of
/// a query, and the `?` that would start one.
const NOT_IN_PATH: &AsciiSet = &NOT_IN_QUERY.add(b'?');

/// For a path a gateway has already decoded once: `%` too, so the core's one decoding is undone exactly.
const DECODED_PATH: &AsciiSet = &NOT_IN_PATH.add(b'%');

async fn handle(app: &App, request: Request) -> Response<Body> {
    let context = RequestContext {
        identity: request.request_context_ref().and_then(identity),
        request_id: request.lambda_context_ref().map(|c| c.request_id.clone()),
    };
    let (path, escape) = stage_free_path(&request);
    // The core decodes a name exactly once. Characters a gateway decoded that a URI cannot hold are
    // encoded again rather than refused here.
    let mut uri = utf8_percent_encode(path, escape).to_string();
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

/// The path below the stage, and what to encode again before the core decodes it once.
///
/// REST APIs (v1), ALB and Function URLs give the path as the client sent it, and a REST API's
/// `path` is already stage-free. An HTTP API gives `rawPath` decoded once (lambda_http's own test
/// event `apigw_request_path_with_space.json` shows it), with a named stage in front.
fn stage_free_path(request: &Request) -> (&str, &'static AsciiSet) {
    let path = request.raw_http_path();
    let Some(Event::ApiGatewayV2(context)) = request.request_context_ref() else {
        return (path, NOT_IN_PATH);
    };
    let path = match context.stage.as_deref() {
        Some(stage) if stage != "$default" && !stage.is_empty() => path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(stage))
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map_or(path, |rest| if rest.is_empty() { "/" } else { rest }),
        _ => path,
    };
    // A Function URL event has the HTTP API's shape but keeps the client's encoding.
    let function_url = context
        .domain_name
        .as_deref()
        .is_some_and(|d| d.contains(".lambda-url."));
    (
        path,
        if function_url {
            NOT_IN_PATH
        } else {
            DECODED_PATH
        },
    )
}

/// Tells Lambda why init failed (Runtime API `POST /runtime/init/error`); bounded, best effort.
async fn report_init_error(message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    disttags_core::tls::install();
    let Ok(client) = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
    else {
        return;
    };
    let body = serde_json::json!({
        "errorMessage": message,
        "errorType": "Runtime.ConfigError",
        "stackTrace": [],
    });
    let sent = client
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    if let Err(e) = sent {
        eprintln!("{NAME}: could not report the init error to the Runtime API: {e}");
    }
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
    if let Some(jwt) = &authorizer.jwt {
        let claims = &jwt.claims;
        let name = ["username", "cognito:username", "email", "sub"]
            .iter()
            .find_map(|k| claims.get(*k).filter(|v| !v.is_empty()))?;
        return Some(Identity {
            name: name.clone(),
            avatar: claims.get("picture").cloned(),
        });
    }
    // IAM authorization (HTTP API or a Function URL with AWS_IAM): the signing principal.
    let iam = authorizer.iam.as_ref()?;
    let name = [&iam.user_arn, &iam.caller_id, &iam.user_id]
        .into_iter()
        .find_map(|v| v.as_deref().filter(|v| !v.is_empty()))?;
    Some(Identity {
        name: name.to_owned(),
        avatar: None,
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
        let iam = authorizer(serde_json::json!({"iam": {
            "accessKey": "AKIAEXAMPLE", "accountId": "111122223333",
            "callerId": "AIDAEXAMPLE", "userArn": "arn:aws:iam::111122223333:user/carol",
            "userId": "AIDAEXAMPLE"
        }}));
        assert_eq!(
            from_authorizer(&iam).map(|i| i.name).as_deref(),
            Some("arn:aws:iam::111122223333:user/carol")
        );
    }
}

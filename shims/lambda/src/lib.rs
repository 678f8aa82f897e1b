//! disttags-lambda: the core behind AWS Lambda, for API Gateway REST (v1) and HTTP API (v2), ALB and
//! Function URL events.
//!
//! A [`Function`] takes one invocation: the event is repaired where lambda_http's conversion would
//! panic ([`event`]), converted by lambda_http into a plain request, routed on its stage-free path
//! ([`path`]) with the caller from the authorizer ([`identity`]) and the invocation's request id,
//! answered by the core, and converted back into the trigger's response shape.

use std::sync::Arc;
use std::time::Duration;

use disttags_core::{App, Error, RequestContext};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Body, LambdaEvent, Request, RequestExt, Response, Service, service_fn};

pub mod event;
mod identity;
mod path;

pub use lambda_http::lambda_runtime::Context;

/// The binary's name, as it prefixes its messages.
pub const NAME: &str = "disttags-lambda";

/// What `lambda_http::run` requires of the environment.
pub const RUNTIME_VARS: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// The function: the core app, built once at init and shared by every invocation.
#[derive(Clone)]
pub struct Function {
    app: Arc<App>,
    /// Where metrics are gathered between flushes, when they are on.
    metrics: Option<&'static metrics_cloudwatch_embedded::Collector>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("app", &self.app)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

/// The CloudWatch namespace of the function's metrics.
pub const METRICS_NAMESPACE: &str = "disttags";

impl Function {
    /// The function over `app`.
    pub fn new(app: App) -> Self {
        Self {
            app: Arc::new(app),
            metrics: None,
        }
    }

    /// Records metrics and writes them as CloudWatch Embedded Metric Format lines on standard output
    /// before each invocation returns; counts this start as a cold start. One per process.
    pub fn with_metrics(mut self) -> Result<Self, String> {
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(METRICS_NAMESPACE)
            .init()
            .map_err(|e| format!("cannot start the metrics recorder: {e}"))?;
        disttags_core::telemetry::describe_metrics();
        metrics::counter!("disttags_cold_starts_total").increment(1);
        self.metrics = Some(collector);
        Ok(self)
    }

    /// Answers one invocation with the response its trigger expects (lambda_http's proxy response,
    /// as the Runtime API is sent it); never fails on an event of a known shape.
    pub async fn invoke(
        &self,
        mut event: LambdaEvent<LambdaRequest>,
    ) -> Result<impl serde::Serialize + Send + use<>, lambda_http::Error> {
        event::sanitize(&mut event.payload);
        let request_id = event.context.request_id.clone();
        let app = self.app.clone();
        let mut adapter = Adapter::from(service_fn(move |request: Request| {
            let app = app.clone();
            async move { Ok::<_, lambda_http::Error>(handle(&app, request).await) }
        }));
        let response = adapter.call(event).await;
        if let Some(collector) = self.metrics {
            // Written before the response is returned, so Lambda cannot freeze the environment
            // with them unwritten; a closed stdout must not fail the invocation.
            let _ = collector
                .set_property("requestId", request_id)
                .flush(std::io::stdout().lock());
        }
        response
    }

    /// Takes invocations from the Runtime API until it stops.
    pub async fn run(self) -> Result<(), lambda_http::Error> {
        lambda_http::lambda_runtime::run(service_fn(move |event| {
            let function = self.clone();
            async move { function.invoke(event).await }
        }))
        .await
    }
}

/// One converted request through the core, and its response as lambda_http takes it.
async fn handle(app: &App, request: Request) -> Response<Body> {
    let lambda = request.lambda_context_ref();
    let context = RequestContext {
        identity: request.request_context_ref().and_then(identity::identity),
        request_id: lambda.map(|c| c.request_id.clone()),
    };
    let uri = path::core_uri(&request);
    let mut core = http::Request::builder().method(request.method().clone());
    for (name, value) in request.headers() {
        core = core.header(name, value);
    }
    // The invocation's X-Ray trace, where the trigger did not pass a trace header of its own.
    if !request.headers().contains_key("x-amzn-trace-id")
        && let Some(trace) = lambda.and_then(|c| c.xray_trace_id.as_deref())
    {
        core = core.header("x-amzn-trace-id", trace);
    }
    let body = bytes::Bytes::copy_from_slice(request.body().as_ref());
    let response = match core.uri(uri.as_str()).body(body) {
        Ok(mut core) => {
            core.extensions_mut().insert(context);
            app.handle(core).await
        }
        Err(_) => Error::RouteNotFound.into_response(),
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

/// The first Lambda variable that is missing: outside Lambda the runtime would panic on it.
pub fn missing_runtime_var() -> Option<&'static str> {
    RUNTIME_VARS
        .into_iter()
        .find(|var| std::env::var_os(var).is_none())
}

/// Where the Runtime API takes an init error. `AWS_LAMBDA_RUNTIME_API` is `host:port` in Lambda;
/// some emulators (cargo-lambda's) give a whole URL.
fn init_error_url(api: &str) -> String {
    let api = api.trim_end_matches('/');
    if api.contains("://") {
        format!("{api}/2018-06-01/runtime/init/error")
    } else {
        format!("http://{api}/2018-06-01/runtime/init/error")
    }
}

/// Tells Lambda why init failed (Runtime API `POST /runtime/init/error`); bounded, best effort.
pub async fn report_init_error(message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let bound = Duration::from_secs(2);
    let Ok(client) = disttags_core::http_client("Runtime API", bound, Some(bound)) else {
        return;
    };
    let body = serde_json::json!({
        "errorMessage": message,
        "errorType": "Runtime.ConfigError",
        "stackTrace": [],
    });
    let sent = client
        .post(init_error_url(&api))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    if let Err(e) = sent {
        eprintln!("{NAME}: could not report the init error to the Runtime API: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::init_error_url;

    #[test]
    fn the_init_error_goes_to_the_runtime_api_as_lambda_or_an_emulator_names_it() {
        assert_eq!(
            init_error_url("127.0.0.1:9001"),
            "http://127.0.0.1:9001/2018-06-01/runtime/init/error"
        );
        assert_eq!(
            init_error_url("http://127.0.0.1:9000/.rt/"),
            "http://127.0.0.1:9000/.rt/2018-06-01/runtime/init/error"
        );
    }
}

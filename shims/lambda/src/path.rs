//! Paths: the stage-free path of each trigger, and the URI the core gets, decoded exactly once.

use lambda_http::request::RequestContext as Event;
use lambda_http::{Request, RequestExt};
use percent_encoding::{AsciiSet, utf8_percent_encode};

use crate::event::NOT_IN_QUERY;

/// Characters that cannot stand in a URI path as they are (a decoded path may hold them): those of
/// a query, and the `?` that would start one.
pub(crate) const NOT_IN_PATH: &AsciiSet = &NOT_IN_QUERY.add(b'?');

/// For a path a gateway has already decoded once: `%` too, so the core's one decoding is undone exactly.
pub(crate) const DECODED_PATH: &AsciiSet = &NOT_IN_PATH.add(b'%');

/// The core's URI for `request`: the stage-free path, characters a gateway decoded that a URI
/// cannot hold encoded again (the core decodes a name exactly once), then the query.
pub(crate) fn core_uri(request: &Request) -> String {
    let (path, escape) = stage_free_path(request);
    let mut uri = utf8_percent_encode(path, escape).to_string();
    if let Some(query) = request.uri().query() {
        uri.push('?');
        uri.push_str(query);
    }
    uri
}

/// The path below the stage, and what to encode again before the core decodes it once.
///
/// REST APIs (v1), ALB and Function URLs give the path as the client sent it, and a REST API's
/// `path` is already stage-free. An HTTP API gives `rawPath` decoded once (lambda_http's own test
/// event `apigw_request_path_with_space.json` shows it), with a named stage in front.
pub(crate) fn stage_free_path(request: &Request) -> (&str, &'static AsciiSet) {
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
    // A Function URL event has the HTTP API's shape but keeps the client's encoding; so does the
    // one cargo-lambda's emulator builds for its Function URLs (`cargo lambda watch`), which names
    // no API (`apiId` null, domain `localhost`): every API Gateway event names its API.
    let function_url = context
        .domain_name
        .as_deref()
        .is_some_and(|d| d.contains(".lambda-url."))
        || context.apiid.is_none();
    (
        path,
        if function_url {
            NOT_IN_PATH
        } else {
            DECODED_PATH
        },
    )
}

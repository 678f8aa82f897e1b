//! Event repair: what lambda_http's conversion would panic on is dropped or encoded before it runs.

use lambda_http::request::LambdaRequest;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Characters that cannot stand in a URI's query as they are.
pub(crate) const NOT_IN_QUERY: &AsciiSet = &CONTROLS
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
pub fn sanitize(event: &mut LambdaRequest) {
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

//! The invocation envelope: `POST /{function}` with `{"Data":{"req":{…}},"Metadata":{…}}`, read back
//! into the client's request, and the answer wrapped as `{"Outputs":{"res":{…}},"Logs":[],"ReturnValue":…}`.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// The `req` binding of an invocation envelope, as the host sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnvelopeRequest {
    url: String,
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, OneOrMany>,
    /// The client's body: the host passes text as a string (anything else is taken as the JSON it
    /// is).
    #[serde(default)]
    body: Value,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Rebuilds the client's request from an envelope's `Data.req`.
pub(crate) fn parse_envelope(body: &[u8]) -> Result<Request<Bytes>, String> {
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
    let body = match req.body {
        Value::Null => Bytes::new(),
        Value::String(text) => Bytes::from(text),
        other => Bytes::from(other.to_string()),
    };
    builder.body(body).map_err(|e| e.to_string())
}

/// The path and query of an absolute URL, kept byte for byte (no normalisation of `%2f` or `..`).
fn url_path(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let at = rest.find('/')?;
    Some(&rest[at..])
}

/// Wraps the core's response as the host reads an HTTP output binding.
pub(crate) fn wrap(response: &Response<Bytes>) -> Bytes {
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
    Bytes::from(answer.to_string())
}

/// `POST /{function}`: one path segment that is not a registry path.
pub(crate) fn is_function_name(path: &str) -> bool {
    let name = path.trim_start_matches('/');
    !name.is_empty() && !name.contains('/') && !name.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! The answer to a dist-tags request: its JSON body and ETag, made once per packument version, and
//! the 200 or 304 it becomes.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::digest::fnv1a;
use crate::extract::DistTags;

/// Tags ready to answer with: the JSON body and its ETag.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) tags: DistTags,
    body: Bytes,
    etag: HeaderValue,
}

impl Answer {
    pub(crate) fn new(tags: DistTags) -> Arc<Self> {
        let body = Bytes::from(tags.to_json());
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a(&body)))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Arc::new(Self { tags, body, etag })
    }

    /// What the answer holds in memory, for the cache's byte bound: itself in its `Arc`, the
    /// tags (a vector of string pairs, each string an allocation), the body, the ETag.
    pub(crate) fn bytes(&self) -> usize {
        use crate::cache::{ALLOCATION, tags_bytes};
        std::mem::size_of::<Self>()
            + 3 * ALLOCATION
            + tags_bytes(&self.tags)
            + self.body.len()
            + self.etag.len()
    }

    /// 200 with the tags and their ETag, or 304 when the client already has them.
    pub(crate) fn response(&self, request_headers: &HeaderMap) -> Response<Bytes> {
        let mut response = if if_none_match(request_headers, self.etag.as_bytes()) {
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            json_response(StatusCode::OK, self.body.clone())
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, self.etag.clone());
        // npm's HTTP cache revalidates (a cheap 304) instead of showing tags from before a write.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

/// The answer to a tag write: `{"ok":true,"id":<name>,"dist-tags":{…}}`, as npm's registry writes it.
pub(crate) fn written_response(name: &str, tags: &DistTags) -> Response<Bytes> {
    #[derive(serde::Serialize)]
    struct Written<'a> {
        ok: bool,
        id: &'a str,
        #[serde(rename = "dist-tags")]
        tags: &'a DistTags,
    }
    let body = serde_json::to_vec(&Written {
        ok: true,
        id: name,
        tags,
    })
    .unwrap_or_else(|_| br#"{"ok":true}"#.to_vec());
    let mut response = json_response(StatusCode::OK, Bytes::from(body));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether any `If-None-Match` entry matches `etag` (weak comparison, as RFC 9110 asks for GET).
fn if_none_match(headers: &HeaderMap, etag: &[u8]) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|t| t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == etag)
}

/// A response with a JSON body and its `Content-Type`.
pub fn json_response(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_matching() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(if_none_match(&h, b"\"b\""));
        assert!(!if_none_match(&h, b"\"c\""));
    }
}

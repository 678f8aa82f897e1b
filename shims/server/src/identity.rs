//! Reading platform identity headers: plain values and base64-encoded JSON documents.
//!
//! Only the shim of the platform that sets a header may call these for it: anywhere else a client
//! could send the header itself.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::HeaderMap;

/// A header's value as text, if present, non-empty and valid.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Decodes a base64 (standard or URL-safe, padded or not) JSON document; `None` when it is not one.
pub fn base64_json(value: &str) -> Option<serde_json::Value> {
    let trimmed = value.trim().trim_end_matches('=');
    let bytes = URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| STANDARD.decode(value.trim()))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_alphabets() {
        let doc = br#"{"email":"a@b.c","x":"??>>"}"#;
        let std = STANDARD.encode(doc);
        let url = URL_SAFE_NO_PAD.encode(doc);
        assert_ne!(
            std.trim_end_matches('='),
            url,
            "the sample exercises the alphabet difference"
        );
        for encoded in [std, url] {
            assert_eq!(base64_json(&encoded).expect("decodes")["email"], "a@b.c");
        }
        assert_eq!(base64_json("not base64!"), None);
    }
}

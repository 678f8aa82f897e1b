//! Tag names and the versions a write sets them to, refused or accepted by the rules npm itself
//! applies before it sends `npm dist-tag add|rm`.

use std::fmt;

use percent_encoding::percent_decode_str;

/// The largest `PUT` body taken: a JSON string of a version is a few dozen bytes.
pub const MAX_WRITE_BODY: usize = 1024;

/// A tag name a write may set or remove: non-empty, URL-safe, not a semver range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagName(String);

/// Why a tag name or a version was refused; the text is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTag(pub String);

impl fmt::Display for InvalidTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidTag {}

impl TagName {
    /// Decodes a tag exactly once, as it arrives in a request path, and validates it.
    pub(crate) fn from_path_segment(raw: &str) -> Result<Self, InvalidTag> {
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| InvalidTag("tag is not valid UTF-8 after percent-decoding".into()))?;
        Self::parse(&decoded)
    }

    /// Validates a decoded tag.
    pub(crate) fn parse(tag: &str) -> Result<Self, InvalidTag> {
        if tag.is_empty() {
            return Err(InvalidTag("tag name must not be empty".into()));
        }
        if tag.len() > 214 {
            return Err(InvalidTag(
                "tag name can not be longer than 214 characters".into(),
            ));
        }
        if !tag.bytes().all(url_safe) {
            return Err(InvalidTag(format!(
                "tag name {tag:?} must be URL-safe (letters, digits and -_.!~*'())"
            )));
        }
        if is_semver_range(tag) {
            return Err(InvalidTag(format!(
                "tag name {tag:?} must not be a valid SemVer range"
            )));
        }
        Ok(Self(tag.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The version a `PUT` body names: a JSON string, as `npm dist-tag add` sends it.
pub(crate) fn version_from_body(body: &[u8]) -> Result<String, InvalidTag> {
    let version: String = serde_json::from_slice(body).map_err(|_| {
        InvalidTag("the request body must be the version as a JSON string, e.g. \"1.4.0\"".into())
    })?;
    let version = version.trim();
    if version.is_empty() {
        return Err(InvalidTag("the version must not be empty".into()));
    }
    if version.chars().any(char::is_control) || version.len() > 256 {
        return Err(InvalidTag(
            "the version must be one line of at most 256 bytes".into(),
        ));
    }
    Ok(version.to_owned())
}

/// What `encodeURIComponent` leaves as it is.
fn url_safe(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte)
}

/// Whether `semver.validRange(tag)` (node-semver, not loose) accepts a URL-safe tag. With no spaces,
/// `|`, `<`, `>`, `=`, `^` or `+` left, a range is one comparator: an optional `~`, any number of
/// `v`, then an X-range `1`, `1.x`, `1.2.*` or a version `1.2.3` with an optional prerelease. node-semver
/// also drops the first `*` of a comparator before it reads it (`1.2.3*`, `*1.2.3` are ranges).
fn is_semver_range(tag: &str) -> bool {
    comparator(tag) || (tag.contains('*') && comparator(&tag.replacen('*', "", 1)))
}

fn comparator(tag: &str) -> bool {
    let rest = tag.strip_prefix('~').unwrap_or(tag);
    let rest = rest.trim_start_matches('v');
    let (core, prerelease) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || !parts.iter().all(|p| x_range_part(p)) {
        return false;
    }
    match prerelease {
        None => true,
        // A prerelease only follows a full version; each identifier is numeric without a leading
        // zero, or alphanumeric with hyphens.
        Some(pre) => parts.len() == 3 && pre.split('.').all(prerelease_identifier),
    }
}

fn x_range_part(part: &str) -> bool {
    matches!(part, "x" | "X" | "*") || numeric(part)
}

fn numeric(part: &str) -> bool {
    !part.is_empty()
        && part.bytes().all(|b| b.is_ascii_digit())
        && (part == "0" || !part.starts_with('0'))
}

fn prerelease_identifier(id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    if id.bytes().all(|b| b.is_ascii_digit()) {
        return numeric(id);
    }
    id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_npm_reads_them_are_refused() {
        for range in [
            "1",
            "1.x",
            "1.2.x",
            "1.2.3",
            "v1",
            "vv1.2",
            "~1.2",
            "x",
            "X",
            "*",
            "1.2.3-beta.1",
            "1.*",
            "0",
        ] {
            assert!(is_semver_range(range), "{range}");
            assert!(TagName::parse(range).is_err(), "{range}");
        }
        for tag in [
            "latest",
            "next",
            "beta",
            "canary-1",
            "v",
            "1-beta",
            "01",
            "1.2.3.4",
            "rc1",
            "x1",
            "1.2.3-",
            "1.2.3-01",
            "~",
            "dist-tags",
        ] {
            assert!(!is_semver_range(tag), "{tag}");
        }
    }

    #[test]
    fn tags_must_be_url_safe_and_not_empty() {
        assert!(TagName::parse("").is_err());
        assert!(TagName::parse("a b").is_err());
        assert!(TagName::parse("a/b").is_err());
        assert!(TagName::parse("^2").is_err());
        assert!(TagName::parse("a%2fb").is_err());
        assert!(TagName::from_path_segment("a%2fb").is_err());
        assert_eq!(
            TagName::from_path_segment("next%21").map(|t| t.to_string()),
            Ok("next!".to_owned())
        );
        assert!(TagName::parse(&"a".repeat(215)).is_err());
    }

    #[test]
    fn bodies_are_json_strings() {
        assert_eq!(version_from_body(br#""1.4.0""#), Ok("1.4.0".to_owned()));
        assert!(version_from_body(b"1.4.0").is_err());
        assert!(version_from_body(br#"{"v":"1"}"#).is_err());
        assert!(version_from_body(br#""""#).is_err());
        assert!(version_from_body(b"").is_err());
    }
}

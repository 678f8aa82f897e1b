//! npm package names: validation by npm's own rules, and the store key and upstream path derived from a name.
//!
//! The rules follow `validate-npm-package-name` v8: its *errors* are refused, its *warnings* (capital
//! letters, `~'!()*`, core-module names) are served, because old packages such as `JSONStream` carry
//! them. Every character that survives validation is URL-safe, so nothing derived from a name can
//! leave the package's own prefix in the store or the upstream's base path.

use std::fmt;

use object_store::path::Path;
use percent_encoding::percent_decode_str;

/// The longest name npm accepts.
pub const MAX_NAME_LEN: usize = 214;

/// A package name that passed npm's rules; its store key and upstream path are safe by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageName {
    name: String,
    /// Byte offset of the `/` of a scoped name.
    slash: Option<usize>,
    key: Path,
}

/// Why a name was refused; the text is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName(pub &'static str);

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidName {}

impl PackageName {
    /// Decodes a name exactly once, as it arrives in a request path (`@scope%2fpkg` or `@scope/pkg`), and validates it.
    pub fn from_path_segment(raw: &str) -> Result<Self, InvalidName> {
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| InvalidName("name is not valid UTF-8 after percent-decoding"))?;
        Self::parse(&decoded)
    }

    /// Validates an already-decoded name.
    pub fn parse(name: &str) -> Result<Self, InvalidName> {
        if name.is_empty() {
            return Err(InvalidName("name length must be greater than zero"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(InvalidName("name can not be longer than 214 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidName("name can not contain control characters"));
        }
        if name.trim() != name {
            return Err(InvalidName(
                "name cannot contain leading or trailing spaces",
            ));
        }
        if name.starts_with('.') {
            return Err(InvalidName("name cannot start with a period"));
        }
        if name.starts_with('_') {
            return Err(InvalidName("name cannot start with an underscore"));
        }
        if name.contains('\\') {
            return Err(InvalidName("name can not contain backslashes"));
        }
        if name.eq_ignore_ascii_case("node_modules") || name.eq_ignore_ascii_case("favicon.ico") {
            return Err(InvalidName("name is blocklisted"));
        }
        let slash = if let Some(rest) = name.strip_prefix('@') {
            let Some(at) = rest.find('/') else {
                return Err(InvalidName("name can only contain URL-friendly characters"));
            };
            let (scope, pkg) = (&rest[..at], &rest[at + 1..]);
            if scope.is_empty() || pkg.is_empty() {
                return Err(InvalidName("scoped name needs both a scope and a name"));
            }
            if pkg.starts_with('.') {
                return Err(InvalidName("name cannot start with a period"));
            }
            if !url_friendly(scope) || !url_friendly(pkg) {
                return Err(InvalidName("name can only contain URL-friendly characters"));
            }
            Some(at + 1)
        } else {
            if !url_friendly(name) {
                return Err(InvalidName("name can only contain URL-friendly characters"));
            }
            None
        };
        // `Path::parse` keeps the name's characters as they are (codebox's keys are raw), and refuses
        // empty, `.` and `..` segments: a second guard behind the rules above.
        let key = Path::parse(format!("{name}/index.json"))
            .map_err(|_| InvalidName("name cannot be used as a store key"))?;
        Ok(Self {
            name: name.to_owned(),
            slash,
            key,
        })
    }

    /// The name as npm writes it (`@scope/pkg`).
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Whether the name has a scope.
    pub fn is_scoped(&self) -> bool {
        self.slash.is_some()
    }

    /// The store key of the packument, `{name}/index.json`, as codebox-npm lays its bucket out.
    pub fn packument_key(&self) -> &Path {
        &self.key
    }

    /// The package's own prefix in the store (`{name}`), the parent of its packument key.
    pub fn prefix(&self) -> Path {
        Path::from_iter(
            self.key
                .parts()
                .take(if self.slash.is_some() { 2 } else { 1 }),
        )
    }

    /// The name as one URL path segment, scope slash encoded (`@scope%2fpkg`) as npm sends it.
    pub fn upstream_segment(&self) -> String {
        match self.slash {
            Some(at) => format!("{}%2f{}", &self.name[..at], &self.name[at + 1..]),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// What `encodeURIComponent` leaves untouched: npm's definition of URL-friendly.
fn url_friendly(part: &str) -> bool {
    part.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_upstream_segments() {
        let plain = PackageName::parse("left-pad").expect("valid");
        assert_eq!(plain.packument_key().as_ref(), "left-pad/index.json");
        assert_eq!(plain.upstream_segment(), "left-pad");
        let scoped = PackageName::from_path_segment("@types%2fnode").expect("valid");
        assert_eq!(scoped.as_str(), "@types/node");
        assert_eq!(scoped.packument_key().as_ref(), "@types/node/index.json");
        assert_eq!(scoped.prefix().as_ref(), "@types/node");
        assert_eq!(scoped.upstream_segment(), "@types%2fnode");
    }

    #[test]
    fn legacy_characters_keep_their_key() {
        // object_store's `Path::from` would percent-encode `~` and `*`; codebox's keys are raw.
        let legacy = PackageName::parse("JSONStream~x*(y)").expect("warnings are served");
        assert_eq!(
            legacy.packument_key().as_ref(),
            "JSONStream~x*(y)/index.json"
        );
    }
}

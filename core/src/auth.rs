//! Bearer-token access for servers no platform gateway guards: tokens are configured only as SHA-256
//! hashes, and a presented token is hashed and compared in constant time. Read tokens and write
//! tokens are kept apart: a write token also reads, a read token never writes. Who may write at all
//! is the [`Writes`] policy.

use std::fmt;

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::digest::sha256;
use crate::log::Identity;

/// One accepted token, as its SHA-256, with the name it stands for in log events.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TokenHash {
    hash: [u8; 32],
    name: Option<String>,
    /// Listed as a write token (`DISTTAGS_WRITE_TOKENS`).
    write: bool,
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenHash")
            .field("name", &self.name)
            .field("write", &self.write)
            .finish_non_exhaustive()
    }
}

/// The tokens a server accepts. Reads are open unless a read token is configured; writes need a
/// write token where the [`Writes`] policy says so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    tokens: Vec<TokenHash>,
}

/// What a presented token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The name the token stands for in log events, if it has one.
    pub identity: Option<Identity>,
    /// Whether it is a write token.
    pub write: bool,
}

/// Who may change tags (`DISTTAGS_WRITES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Writes {
    /// Nobody: a write is answered 403, saying how to enable writes.
    #[default]
    Off,
    /// A caller presenting a write token (`disttags serve`, Cloud Run).
    Tokens,
    /// Whoever the platform's authorizer let through to the route (Lambda, Azure).
    Platform,
    /// Anyone, anonymously: a local development server.
    Anyone,
}

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that matches no configured hash.
    Invalid,
}

impl Auth {
    /// Parses read tokens: lines of `<sha256 hex> [name]` (blank lines and `#` comments skipped), or
    /// a comma-separated list.
    pub fn parse(text: &str, source: &str) -> Result<Self, String> {
        Self::parse_as(text, source, false)
    }

    /// Parses write tokens, in the same format as [`Self::parse`].
    pub fn parse_writers(text: &str, source: &str) -> Result<Self, String> {
        Self::parse_as(text, source, true)
    }

    fn parse_as(text: &str, source: &str, write: bool) -> Result<Self, String> {
        let mut tokens = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            // A comment is a whole line, commas and all.
            if line.starts_with('#') {
                continue;
            }
            for (index, entry) in line.split(',').enumerate() {
                let entry = entry.trim();
                if entry.is_empty() {
                    continue;
                }
                let (hex, name) = match entry.split_once(char::is_whitespace) {
                    Some((h, n)) => (h, Some(n.trim().to_owned())),
                    None => (entry, None),
                };
                let hash = decode_sha256(hex).ok_or_else(|| {
                    // Not the value itself: a raw token put here by mistake would reach the
                    // platform's logs.
                    format!(
                        "{source}: line {}, entry {} is not a SHA-256 hex digest (64 hex characters; e.g. `printf %s TOKEN | sha256sum`)",
                        number + 1,
                        index + 1
                    )
                })?;
                tokens.push(TokenHash { hash, name, write });
            }
        }
        Ok(Self { tokens })
    }

    /// Adds the tokens of another source.
    pub fn extend(&mut self, other: Self) {
        self.tokens.extend(other.tokens);
    }

    /// Whether reads need a token: a read token is configured.
    pub fn is_enabled(&self) -> bool {
        self.tokens.iter().any(|t| !t.write)
    }

    /// Whether a write token is configured.
    pub fn has_writers(&self) -> bool {
        self.tokens.iter().any(|t| t.write)
    }

    /// Checks a request's bearer token; on success, the identity the token stands for, if named.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<Identity>, Denied> {
        self.grant(headers).map(|grant| grant.identity)
    }

    /// Checks a request's bearer token against every configured token, read and write.
    pub fn grant(&self, headers: &HeaderMap) -> Result<Grant, Denied> {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(Denied::Missing)?;
        let presented = sha256(token.as_bytes());
        // Every configured hash is compared in full, so timing says nothing about which one matched.
        let mut matched = None;
        for entry in &self.tokens {
            if constant_time_eq(&entry.hash, &presented) {
                matched = Some(entry);
            }
        }
        let entry = matched.ok_or(Denied::Invalid)?;
        Ok(Grant {
            identity: entry
                .name
                .clone()
                .map(|name| Identity { name, avatar: None }),
            write: entry.write,
        })
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::digest::hex;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        h
    }

    #[test]
    fn accepts_only_configured_tokens() {
        let text = format!(
            "# ci tokens: alice, then the other\n{} alice\n\n{}\n",
            hex(&sha256(b"s3cret")),
            hex(&sha256(b"other"))
        );
        let auth = Auth::parse(&text, "test").expect("parse");
        assert!(auth.is_enabled());
        assert_eq!(
            auth.check(&bearer("s3cret"))
                .expect("ok")
                .map(|i| i.name)
                .as_deref(),
            Some("alice")
        );
        assert_eq!(auth.check(&bearer("other")), Ok(None));
        assert_eq!(auth.check(&bearer("nope")), Err(Denied::Invalid));
        assert_eq!(auth.check(&HeaderMap::new()), Err(Denied::Missing));
        let mut basic = HeaderMap::new();
        basic.insert(AUTHORIZATION, "Basic czNjcmV0".parse().expect("header"));
        assert_eq!(auth.check(&basic), Err(Denied::Missing));
        assert!(Auth::parse("not-a-hash", "DISTTAGS_AUTH_TOKENS").is_err());
        // Where a mistake is, by line and comma-separated entry.
        let error = Auth::parse(&format!("# a\n{}, oops", hex(&sha256(b"x"))), "f")
            .err()
            .unwrap_or_default();
        assert!(error.starts_with("f: line 2, entry 2 "), "{error}");
        assert!(!Auth::parse("", "x").expect("empty").is_enabled());
    }

    #[test]
    fn write_tokens_also_read_and_read_tokens_never_write() {
        let mut auth = Auth::parse(&hex(&sha256(b"reader")), "r").expect("read");
        auth.extend(
            Auth::parse_writers(&format!("{} ci", hex(&sha256(b"writer"))), "w").expect("write"),
        );
        assert!(auth.is_enabled() && auth.has_writers());
        assert_eq!(auth.grant(&bearer("reader")).map(|g| g.write), Ok(false));
        let writer = auth.grant(&bearer("writer")).expect("writer");
        assert!(writer.write);
        assert_eq!(writer.identity.map(|i| i.name).as_deref(), Some("ci"));
        // Write tokens alone leave reads open.
        let writers = Auth::parse_writers(&hex(&sha256(b"w")), "w").expect("write");
        assert!(!writers.is_enabled() && writers.has_writers());
    }
}

//! Takes the top-level `dist-tags` out of a packument as its bytes stream past, without a tree of the document.
//!
//! [`Extractor`] is a push parser: feed it chunks as they arrive from the store or the upstream and it
//! answers as soon as the top-level `dist-tags` value is complete, so the caller can stop reading. It
//! checks the JSON structure of everything before that value (brackets, separators, literals, numbers,
//! escapes) and keeps in memory only the nesting stack and the `dist-tags` value itself. String
//! contents are skipped with `memchr`, which is where almost all of a packument's bytes are.

use std::fmt;

use memchr::memchr2;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// serde_json's own nesting limit, so that both agree on which documents are valid.
const MAX_DEPTH: usize = 128;
/// The largest `dist-tags` value kept in memory; real ones are a few hundred bytes.
pub const MAX_DIST_TAGS_LEN: usize = 1 << 20;
/// A number or literal longer than this is not one a packument carries.
const MAX_TOKEN_LEN: usize = 512;
/// Long enough for `dist-tags` written with every character escaped.
const MAX_KEY_LEN: usize = 64;

/// A package's dist-tags, in the order they were stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistTags(Vec<(String, String)>);

impl DistTags {
    /// Tags in stored order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The version a tag points at.
    pub fn get(&self, tag: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == tag)
            .map(|(_, v)| v.as_str())
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compact JSON object, keys in stored order.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing strings into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

impl FromIterator<(String, String)> for DistTags {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut tags = DistTags::default();
        for (k, v) in iter {
            tags.insert(k, v);
        }
        tags
    }
}

impl DistTags {
    /// Sets a tag, replacing an earlier value in place as a JSON object with a repeated key would.
    pub fn insert(&mut self, tag: String, version: String) {
        match self.0.iter_mut().find(|(k, _)| *k == tag) {
            Some(slot) => slot.1 = version,
            None => self.0.push((tag, version)),
        }
    }
}

impl Serialize for DistTags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for DistTags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TagsVisitor;
        impl<'de> Visitor<'de> for TagsVisitor {
            type Value = DistTags;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of tag names to version strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DistTags, A::Error> {
                let mut tags = DistTags::default();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    tags.insert(k, v);
                }
                Ok(tags)
            }
        }
        deserializer.deserialize_map(TagsVisitor)
    }
}

/// Why the `dist-tags` of a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractError {
    /// The bytes before or inside the value are not JSON.
    Syntax {
        /// Offset of the offending byte in the document.
        offset: u64,
        /// What was expected there.
        expected: &'static str,
    },
    /// The document ended before its top-level object (or the `dist-tags` value) was complete.
    Truncated,
    /// The top-level `dist-tags` is not an object of strings.
    NotTags(String),
    /// The value is larger than [`MAX_DIST_TAGS_LEN`] or nesting is deeper than serde_json allows.
    TooLarge(&'static str),
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax { offset, expected } => {
                write!(
                    f,
                    "packument is not valid JSON at byte {offset}: expected {expected}"
                )
            }
            Self::Truncated => f.write_str("packument ends before its dist-tags could be read"),
            Self::NotTags(why) => write!(
                f,
                "packument's dist-tags is not an object of strings: {why}"
            ),
            Self::TooLarge(what) => write!(f, "packument's {what} is too large"),
        }
    }
}

impl std::error::Error for ExtractError {}

/// Where a string's bytes go once it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Str {
    /// A key of the top-level object: its bytes are kept to compare with `dist-tags`.
    TopKey,
    /// A key of a nested object.
    Key,
    /// A value.
    Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level `{`.
    Start,
    /// After the top-level `{`: a key or `}`.
    TopKeyOrEnd,
    /// After a top-level `,`: a key.
    TopKey,
    /// After a top-level key: `:`.
    TopColon,
    /// After a top-level `:`: the value.
    TopValue,
    /// After a top-level value: `,` or `}`.
    TopAfterValue,
    /// A nested value is expected.
    Value,
    /// After `[`: a value or `]`.
    ValueOrEnd,
    /// After a nested `{`: a key or `}`.
    KeyOrEnd,
    /// After a nested `,` in an object: a key.
    Key,
    /// After a nested key: `:`.
    Colon,
    /// After a nested value: `,` or the close of its container.
    AfterValue,
    /// Inside a string.
    InStr(Str),
    /// After a backslash in a string.
    Escape(Str),
    /// Inside `\uXXXX`, with this many hex digits still to come.
    Unicode(Str, u8),
    /// Inside a number or literal.
    Token,
    /// The top-level object closed without a `dist-tags`.
    Done,
}

/// Push parser that yields a packument's top-level `dist-tags`; see the module documentation.
#[derive(Debug)]
pub struct Extractor {
    state: State,
    /// Open containers below the top-level object: `b'{'` or `b'['`.
    stack: Vec<u8>,
    key: Vec<u8>,
    key_escaped: bool,
    /// The `dist-tags` value's bytes once its `{` has been seen.
    capture: Option<Vec<u8>>,
    /// Depth of `stack` at which the captured value opened.
    capture_depth: usize,
    token: Vec<u8>,
    /// Bytes consumed before the current chunk.
    offset: u64,
}

impl Default for Extractor {
    fn default() -> Self {
        Self::new()
    }
}

/// What one byte did to the parser.
enum Step {
    Next,
    /// The byte was not consumed: run it through the new state.
    Again,
    /// The captured value closed on this byte.
    Captured,
}

impl Extractor {
    /// A parser at the start of a document.
    pub fn new() -> Self {
        Self {
            state: State::Start,
            stack: Vec::new(),
            key: Vec::new(),
            key_escaped: false,
            capture: None,
            capture_depth: 0,
            token: Vec::new(),
            offset: 0,
        }
    }

    /// Total bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.offset
    }

    /// Feeds the next chunk; `Ok(Some(tags))` means the value is complete and no more input is needed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Option<DistTags>, ExtractError> {
        if self.state == State::Done {
            return Ok(Some(DistTags::default()));
        }
        let mut capture_from = self.capture.as_ref().map(|_| 0);
        let mut i = 0;
        while i < chunk.len() {
            if let State::InStr(kind) = self.state {
                // The hot loop: jump to the next quote or backslash.
                match memchr2(b'"', b'\\', &chunk[i..]) {
                    None => {
                        if kind == Str::TopKey {
                            self.push_key(&chunk[i..]);
                        }
                        i = chunk.len();
                    }
                    Some(n) => {
                        if kind == Str::TopKey {
                            self.push_key(&chunk[i..i + n]);
                        }
                        i += n;
                        if chunk[i] == b'"' {
                            self.string_closed(kind);
                        } else {
                            if kind == Str::TopKey {
                                self.key_escaped = true;
                                self.push_key(b"\\");
                            }
                            self.state = State::Escape(kind);
                        }
                        i += 1;
                    }
                }
                continue;
            }
            let byte = chunk[i];
            match self.step(byte, i)? {
                Step::Next => {
                    if self.capture.is_some() && capture_from.is_none() {
                        capture_from = Some(i);
                    }
                    i += 1;
                    if self.state == State::Done {
                        self.offset += i as u64;
                        return Ok(Some(DistTags::default()));
                    }
                }
                Step::Again => {}
                Step::Captured => {
                    let from = capture_from.unwrap_or(i);
                    let mut bytes = self.capture.take().unwrap_or_default();
                    bytes.extend_from_slice(&chunk[from..=i]);
                    self.offset += (i + 1) as u64;
                    return parse_tags(&bytes).map(Some);
                }
            }
        }
        if let (Some(from), Some(buf)) = (capture_from, self.capture.as_mut()) {
            buf.extend_from_slice(&chunk[from..]);
            if buf.len() > MAX_DIST_TAGS_LEN {
                return Err(ExtractError::TooLarge("dist-tags value"));
            }
        }
        self.offset += chunk.len() as u64;
        Ok(None)
    }

    /// Ends the input: a document that closed without `dist-tags` has none; anything else is truncated.
    pub fn finish(&self) -> Result<DistTags, ExtractError> {
        match self.state {
            State::Done => Ok(DistTags::default()),
            _ => Err(ExtractError::Truncated),
        }
    }

    fn push_key(&mut self, bytes: &[u8]) {
        if self.key.len() <= MAX_KEY_LEN {
            self.key
                .extend_from_slice(&bytes[..bytes.len().min(MAX_KEY_LEN + 1 - self.key.len())]);
        }
    }

    fn syntax(&self, at: usize, expected: &'static str) -> ExtractError {
        ExtractError::Syntax {
            offset: self.offset + at as u64,
            expected,
        }
    }

    fn string_closed(&mut self, kind: Str) {
        self.state = match kind {
            Str::TopKey => State::TopColon,
            Str::Key => State::Colon,
            Str::Value => self.after_value(),
        };
    }

    /// The state after a complete value at the current depth.
    fn after_value(&self) -> State {
        if self.stack.is_empty() {
            State::TopAfterValue
        } else {
            State::AfterValue
        }
    }

    fn is_target_key(&self) -> bool {
        if !self.key_escaped {
            return self.key == b"dist-tags";
        }
        if self.key.len() > MAX_KEY_LEN {
            return false;
        }
        let mut quoted = Vec::with_capacity(self.key.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(&self.key);
        quoted.push(b'"');
        serde_json::from_slice::<String>(&quoted).is_ok_and(|k| k == "dist-tags")
    }

    fn open(&mut self, container: u8) -> Result<(), ExtractError> {
        if self.stack.len() + 1 >= MAX_DEPTH {
            return Err(ExtractError::TooLarge("nesting depth"));
        }
        self.stack.push(container);
        self.state = if container == b'{' {
            State::KeyOrEnd
        } else {
            State::ValueOrEnd
        };
        Ok(())
    }

    /// Closes the innermost container with `close`; reports whether that ended the captured value.
    fn close(&mut self, close: u8, at: usize) -> Result<Step, ExtractError> {
        let want = if close == b'}' { b'{' } else { b'[' };
        if self.stack.pop() != Some(want) {
            return Err(self.syntax(at, "a matching bracket"));
        }
        self.state = self.after_value();
        if self.capture.is_some() && self.stack.len() == self.capture_depth {
            return Ok(Step::Captured);
        }
        Ok(Step::Next)
    }

    /// Starts a nested value with `byte`.
    fn value(&mut self, byte: u8, at: usize) -> Result<Step, ExtractError> {
        match byte {
            b'"' => self.state = State::InStr(Str::Value),
            b'{' | b'[' => self.open(byte)?,
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                self.token.clear();
                self.token.push(byte);
                self.state = State::Token;
            }
            _ => return Err(self.syntax(at, "a value")),
        }
        Ok(Step::Next)
    }

    fn step(&mut self, byte: u8, at: usize) -> Result<Step, ExtractError> {
        let ws = matches!(byte, b' ' | b'\t' | b'\n' | b'\r');
        match self.state {
            State::InStr(_) | State::Done => Ok(Step::Next),
            State::Escape(kind) => {
                if kind == Str::TopKey {
                    self.push_key(&[byte]);
                }
                self.state = match byte {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => State::InStr(kind),
                    b'u' => State::Unicode(kind, 4),
                    _ => return Err(self.syntax(at, "a valid escape")),
                };
                Ok(Step::Next)
            }
            State::Unicode(kind, left) => {
                if !byte.is_ascii_hexdigit() {
                    return Err(self.syntax(at, "a hex digit"));
                }
                if kind == Str::TopKey {
                    self.push_key(&[byte]);
                }
                self.state = if left == 1 {
                    State::InStr(kind)
                } else {
                    State::Unicode(kind, left - 1)
                };
                Ok(Step::Next)
            }
            _ if ws => Ok(Step::Next),
            State::Start => match byte {
                b'{' => {
                    self.state = State::TopKeyOrEnd;
                    Ok(Step::Next)
                }
                _ => Err(self.syntax(at, "a JSON object")),
            },
            State::TopKeyOrEnd | State::TopKey => match byte {
                b'"' => {
                    self.key.clear();
                    self.key_escaped = false;
                    self.state = State::InStr(Str::TopKey);
                    Ok(Step::Next)
                }
                b'}' if self.state == State::TopKeyOrEnd => {
                    self.state = State::Done;
                    Ok(Step::Next)
                }
                _ => Err(self.syntax(at, "an object key")),
            },
            State::TopColon | State::Colon => {
                if byte != b':' {
                    return Err(self.syntax(at, "':'"));
                }
                self.state = if self.state == State::TopColon {
                    State::TopValue
                } else {
                    State::Value
                };
                Ok(Step::Next)
            }
            State::TopValue => {
                if self.is_target_key() {
                    if byte != b'{' {
                        return Err(ExtractError::NotTags(format!(
                            "it starts with {:?}",
                            char::from(byte)
                        )));
                    }
                    self.capture = Some(Vec::new());
                    self.capture_depth = 0;
                }
                self.value(byte, at)
            }
            State::TopAfterValue => match byte {
                b',' => {
                    self.state = State::TopKey;
                    Ok(Step::Next)
                }
                b'}' => {
                    self.state = State::Done;
                    Ok(Step::Next)
                }
                _ => Err(self.syntax(at, "',' or '}'")),
            },
            State::Value => self.value(byte, at),
            State::ValueOrEnd => match byte {
                b']' => self.close(byte, at),
                _ => self.value(byte, at),
            },
            State::KeyOrEnd | State::Key => match byte {
                b'"' => {
                    self.state = State::InStr(Str::Key);
                    Ok(Step::Next)
                }
                b'}' if self.state == State::KeyOrEnd => self.close(byte, at),
                _ => Err(self.syntax(at, "an object key")),
            },
            State::AfterValue => match byte {
                b',' => {
                    self.state = if self.stack.last() == Some(&b'{') {
                        State::Key
                    } else {
                        State::Value
                    };
                    Ok(Step::Next)
                }
                b'}' | b']' => self.close(byte, at),
                _ => Err(self.syntax(at, "',' or a closing bracket")),
            },
            State::Token => match byte {
                b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'.' | b'+' | b'-' => {
                    if self.token.len() >= MAX_TOKEN_LEN {
                        return Err(ExtractError::TooLarge("number"));
                    }
                    self.token.push(byte);
                    Ok(Step::Next)
                }
                _ => {
                    if !valid_token(&self.token) {
                        return Err(self.syntax(at, "a number, true, false or null"));
                    }
                    self.state = self.after_value();
                    Ok(Step::Again)
                }
            },
        }
    }
}

/// Whether a bare token is a JSON literal or number.
fn valid_token(token: &[u8]) -> bool {
    match token {
        b"true" | b"false" | b"null" => true,
        _ => valid_number(token),
    }
}

fn valid_number(mut s: &[u8]) -> bool {
    fn digits(s: &[u8]) -> usize {
        s.iter().take_while(|b| b.is_ascii_digit()).count()
    }
    if let [b'-', rest @ ..] = s {
        s = rest;
    }
    match s {
        [b'0', rest @ ..] => s = rest,
        [b'1'..=b'9', ..] => s = &s[digits(s)..],
        _ => return false,
    }
    if let [b'.', rest @ ..] = s {
        let n = digits(rest);
        if n == 0 {
            return false;
        }
        s = &rest[n..];
    }
    if let [b'e' | b'E', rest @ ..] = s {
        let rest = match rest {
            [b'+' | b'-', r @ ..] => r,
            r => r,
        };
        let n = digits(rest);
        if n == 0 {
            return false;
        }
        s = &rest[n..];
    }
    s.is_empty()
}

fn parse_tags(bytes: &[u8]) -> Result<DistTags, ExtractError> {
    serde_json::from_slice(bytes).map_err(|e| ExtractError::NotTags(e.to_string()))
}

/// Extracts the dist-tags of a whole document held in memory.
pub fn extract(document: &[u8]) -> Result<DistTags, ExtractError> {
    let mut extractor = Extractor::new();
    match extractor.feed(document)? {
        Some(tags) => Ok(tags),
        None => extractor.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> DistTags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn finds_tags_in_any_position_and_keeps_order() {
        let doc = br#"{"name":"x","versions":{"1.0.0":{"a":[1,-2.5e3,true,null,{"dist-tags":{"no":"1"}}]}},"dist-tags":{"z":"2.0.0","a":"1.0.0"},"after": tru"#;
        let got = extract(doc).expect("tags");
        assert_eq!(got, tags(&[("z", "2.0.0"), ("a", "1.0.0")]));
        assert_eq!(got.to_json(), br#"{"z":"2.0.0","a":"1.0.0"}"#.to_vec());
    }

    #[test]
    fn every_split_point_gives_the_same_answer() {
        let doc = br#" { "na\"me" : "x\\" , "d\u0069st-tags" : { "latest" : "1.0.0", "next":"2.0.0-rc.1" } , "x": 1 }"#;
        let whole = extract(doc).expect("whole");
        assert_eq!(whole, tags(&[("latest", "1.0.0"), ("next", "2.0.0-rc.1")]));
        for split in 0..doc.len() {
            let mut ex = Extractor::new();
            let first = ex.feed(&doc[..split]).expect("first half");
            let got = match first {
                Some(t) => t,
                None => match ex.feed(&doc[split..]).expect("second half") {
                    Some(t) => t,
                    None => ex.finish().expect("finish"),
                },
            };
            assert_eq!(got, whole, "split at {split}");
        }
    }

    #[test]
    fn missing_tags_need_a_complete_document() {
        assert_eq!(
            extract(br#"{"name":"x","versions":{}}"#),
            Ok(DistTags::default())
        );
        assert_eq!(extract(br#"{}"#), Ok(DistTags::default()));
        assert_eq!(
            extract(br#"{"name":"x","versions":{"#),
            Err(ExtractError::Truncated)
        );
        assert_eq!(
            extract(br#"{"dist-tags":{"latest":"1"#),
            Err(ExtractError::Truncated)
        );
    }

    #[test]
    fn refuses_what_is_not_json_or_not_tags() {
        for bad in [
            &b"not json"[..],
            br#"[1,2]"#,
            br#"{"a":tru,"dist-tags":{}}"#,
            br#"{"a":01,"dist-tags":{}}"#,
            br#"{"a":[1,}],"dist-tags":{}}"#,
            br#"{"a" 1,"dist-tags":{}}"#,
            br#"{"a":"\x","dist-tags":{}}"#,
            br#"{"a":{"b":1]},"dist-tags":{}}"#,
            br#"{"dist-tags":"latest"}"#,
            br#"{"dist-tags":null}"#,
            br#"{"dist-tags":{"latest":1}}"#,
            br#"{"dist-tags":{"latest":"1",}}"#,
        ] {
            assert!(
                extract(bad).is_err(),
                "accepted {}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn numbers() {
        for ok in ["0", "-0", "1.5", "-12e+3", "3E7", "0.25e-2"] {
            assert!(valid_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["01", "-", "1.", ".5", "1e", "1e+", "+1", "0x1", "1.5.2"] {
            assert!(!valid_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn nesting_is_bounded_like_serde_json() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            extract(deep.as_bytes()),
            Err(ExtractError::TooLarge("nesting depth"))
        );
    }
}

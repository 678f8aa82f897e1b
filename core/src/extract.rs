//! Takes the top-level `dist-tags` out of a packument as its bytes stream past, without a tree of the document.
//!
//! [`Extractor`] is a push parser: feed it chunks as they arrive from the store or the upstream and it
//! answers as soon as the top-level `dist-tags` value is complete, so the caller can stop reading. It
//! checks the JSON structure of everything before that value (brackets, separators, literals, numbers,
//! escapes, control characters in strings) and keeps in memory only the nesting (one bit a level)
//! and the `dist-tags` value itself. String contents, where almost all of a packument's bytes are,
//! are skipped sixteen bytes at a time with word arithmetic (SWAR), and the grammar runs in a loop
//! over local variables that only writes its state back when a chunk runs out.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// serde_json's own nesting limit (it takes at most `MAX_DEPTH - 1` containers), so that both agree
/// on which documents are valid.
const MAX_DEPTH: usize = 128;
/// The largest `dist-tags` value kept in memory; real ones are a few hundred bytes.
pub const MAX_DIST_TAGS_LEN: usize = 1 << 20;
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

    /// Removes a tag; the version it pointed at, if it was there.
    pub fn remove(&mut self, tag: &str) -> Option<String> {
        let index = self.0.iter().position(|(k, _)| k == tag)?;
        Some(self.0.remove(index).1)
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

/// Where a number stands in JSON's number grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    /// After `-`: a digit.
    Minus,
    /// After a leading `0`: `.`, an exponent or the end.
    Zero,
    /// In the integer digits.
    Int,
    /// After `.`: a digit.
    Dot,
    /// In the fraction digits.
    Frac,
    /// After `e` or `E`: a sign or a digit.
    Exp,
    /// After the exponent's sign: a digit.
    ExpSign,
    /// In the exponent digits.
    ExpDigits,
}

impl Num {
    /// The state after a number's first byte, if it can start one.
    fn start(byte: u8) -> Option<Self> {
        match byte {
            b'-' => Some(Self::Minus),
            b'0' => Some(Self::Zero),
            b'1'..=b'9' => Some(Self::Int),
            _ => None,
        }
    }

    /// The state after `byte`, or `None` when `byte` does not continue the number.
    #[inline]
    fn next(self, byte: u8) -> Option<Self> {
        use Num::*;
        match (self, byte) {
            (Minus, b'0') => Some(Zero),
            (Minus | Int, b'0'..=b'9') => Some(Int),
            (Zero | Int, b'.') => Some(Dot),
            (Dot | Frac, b'0'..=b'9') => Some(Frac),
            (Zero | Int | Frac, b'e' | b'E') => Some(Exp),
            (Exp, b'+' | b'-') => Some(ExpSign),
            (Exp | ExpSign | ExpDigits, b'0'..=b'9') => Some(ExpDigits),
            _ => None,
        }
    }

    /// Whether the number may end here.
    fn complete(self) -> bool {
        matches!(self, Self::Zero | Self::Int | Self::Frac | Self::ExpDigits)
    }
}

/// The literals, by the index kept in [`State::Lit`].
const LITERALS: [&[u8]; 3] = [b"true", b"false", b"null"];

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
    /// A value is expected (nested, or a top-level one whose key has been looked at).
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
    /// Inside a number.
    Num(Num),
    /// Inside the literal `LITERALS[.0]`, with `.1` of its bytes seen.
    Lit(u8, u8),
    /// The answer is known.
    Done,
}

/// Push parser that yields a packument's top-level `dist-tags`; see the module documentation.
///
/// Its whole state is a few words, the top-level key being read and the `dist-tags` bytes seen so
/// far: it can stop at any byte and go on with the next chunk.
#[derive(Debug)]
pub struct Extractor {
    state: State,
    /// Containers open below the top-level object.
    depth: u32,
    /// Bit `d` is set when the container at nesting `d` (0 = just below the top level) is an object.
    objects: u128,
    key: Vec<u8>,
    key_escaped: bool,
    /// The `dist-tags` value's bytes from earlier chunks, once its `{` has been seen.
    capture: Option<Vec<u8>>,
    /// Where the captured value starts in the current chunk (0 when it started in an earlier one).
    capture_start: usize,
    /// Bytes consumed before the current chunk.
    offset: u64,
    /// The answer, once there is one: every later call gives it again.
    outcome: Option<Result<DistTags, ExtractError>>,
}

impl Default for Extractor {
    fn default() -> Self {
        Self::new()
    }
}

/// How a run over one chunk ended.
enum Run {
    /// The chunk is consumed; the answer needs more input.
    More,
    /// The top-level object closed without `dist-tags` after this many bytes of the chunk.
    Closed(usize),
    /// The `dist-tags` value ended after this many bytes of the chunk.
    Captured(usize),
}

impl Extractor {
    /// A parser at the start of a document.
    pub fn new() -> Self {
        Self {
            state: State::Start,
            depth: 0,
            objects: 0,
            key: Vec::new(),
            key_escaped: false,
            capture: None,
            capture_start: 0,
            offset: 0,
            outcome: None,
        }
    }

    /// Total bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.offset
    }

    /// Feeds the next chunk; `Ok(Some(tags))` means the value is complete and no more input is needed.
    ///
    /// Once it has answered (tags or an error), every later call gives the same answer.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Option<DistTags>, ExtractError> {
        if let Some(outcome) = &self.outcome {
            return outcome.clone().map(Some);
        }
        self.capture_start = 0;
        let result = match self.run(chunk) {
            Ok(Run::More) => {
                self.offset += chunk.len() as u64;
                match self.capture.as_mut() {
                    Some(buf) => {
                        buf.extend_from_slice(&chunk[self.capture_start..]);
                        if buf.len() > MAX_DIST_TAGS_LEN {
                            Err(ExtractError::TooLarge("dist-tags value"))
                        } else {
                            return Ok(None);
                        }
                    }
                    None => return Ok(None),
                }
            }
            Ok(Run::Closed(end)) => {
                self.offset += end as u64;
                Ok(DistTags::default())
            }
            Ok(Run::Captured(end)) => {
                self.offset += end as u64;
                let tail = &chunk[self.capture_start..end];
                match self.capture.take() {
                    Some(mut buf) if !buf.is_empty() => {
                        buf.extend_from_slice(tail);
                        parse_tags(&buf)
                    }
                    _ => parse_tags(tail),
                }
            }
            Err(e) => Err(e),
        };
        self.state = State::Done;
        self.capture = None;
        self.outcome = Some(result.clone());
        result.map(Some)
    }

    /// Ends the input: a document that closed without `dist-tags` has none; anything else is truncated.
    pub fn finish(&self) -> Result<DistTags, ExtractError> {
        match &self.outcome {
            Some(outcome) => outcome.clone(),
            None => Err(ExtractError::Truncated),
        }
    }

    fn push_key(&mut self, bytes: &[u8]) {
        if self.key.len() <= MAX_KEY_LEN {
            self.key
                .extend_from_slice(&bytes[..bytes.len().min(MAX_KEY_LEN + 1 - self.key.len())]);
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

    /// Runs the chunk through the grammar until it is consumed or the answer is known.
    ///
    /// The state lives in locals while it runs and goes back to `self` only when the chunk runs out;
    /// the usual sequences (`"key":`, a string value and its `,`) are taken without going back
    /// through the dispatch. An error leaves `self` as it was: the caller stops there.
    fn run(&mut self, buf: &[u8]) -> Result<Run, ExtractError> {
        let base = self.offset;
        let syntax = |at: usize, expected: &'static str| ExtractError::Syntax {
            offset: base + at as u64,
            expected,
        };
        let mut st = self.state;
        let mut depth = self.depth;
        let mut objects = self.objects;
        // Whether the innermost open container is an object.
        let mut in_obj = depth > 0 && (objects >> (depth - 1)) & 1 == 1;
        let mut pos = 0usize;

        // Closes the innermost container with `$close` at `pos`, or ends the run with the capture.
        macro_rules! close {
            ($close:expr) => {{
                if in_obj != ($close == b'}') {
                    return Err(syntax(pos, "a matching bracket"));
                }
                depth -= 1;
                pos += 1;
                if depth == 0 {
                    if self.capture.is_some() {
                        break Run::Captured(pos);
                    }
                    st = State::TopAfterValue;
                } else {
                    in_obj = (objects >> (depth - 1)) & 1 == 1;
                    st = State::AfterValue;
                }
            }};
        }
        // The state after a complete value.
        macro_rules! after_value {
            () => {
                if depth == 0 {
                    State::TopAfterValue
                } else {
                    State::AfterValue
                }
            };
        }

        let run = loop {
            match st {
                State::Value | State::ValueOrEnd => {
                    pos = skip_ws(buf, pos);
                    let Some(&byte) = buf.get(pos) else {
                        break Run::More;
                    };
                    match byte {
                        b'"' => {
                            let start = pos + 1;
                            let end = find_special(buf, start);
                            if buf.get(end) == Some(&b'"') {
                                pos = end + 1;
                                st = if depth == 0 {
                                    State::TopAfterValue
                                } else if buf.get(pos) == Some(&b',') {
                                    pos += 1;
                                    if in_obj { State::Key } else { State::Value }
                                } else {
                                    State::AfterValue
                                };
                            } else {
                                pos = start;
                                st = State::InStr(Str::Value);
                            }
                        }
                        b'{' | b'[' => {
                            // With the top-level object, serde_json takes at most MAX_DEPTH - 1.
                            if depth + 2 >= MAX_DEPTH as u32 {
                                return Err(ExtractError::TooLarge("nesting depth"));
                            }
                            in_obj = byte == b'{';
                            let bit = 1u128 << depth;
                            objects = if in_obj {
                                objects | bit
                            } else {
                                objects & !bit
                            };
                            depth += 1;
                            pos += 1;
                            st = if in_obj {
                                State::KeyOrEnd
                            } else {
                                State::ValueOrEnd
                            };
                        }
                        b']' if st == State::ValueOrEnd => close!(byte),
                        b't' | b'f' | b'n' => {
                            let lit = match byte {
                                b't' => 0,
                                b'f' => 1,
                                _ => 2,
                            };
                            pos += 1;
                            st = State::Lit(lit, 1);
                        }
                        _ => match Num::start(byte) {
                            Some(num) => {
                                pos += 1;
                                st = State::Num(num);
                            }
                            None => return Err(syntax(pos, "a value")),
                        },
                    }
                }
                State::KeyOrEnd | State::Key => {
                    pos = skip_ws(buf, pos);
                    let Some(&byte) = buf.get(pos) else {
                        break Run::More;
                    };
                    if byte != b'"' {
                        if byte == b'}' && st == State::KeyOrEnd {
                            close!(byte);
                            continue;
                        }
                        return Err(syntax(pos, "an object key"));
                    }
                    // Members whose values are strings, the bulk of a packument, without dispatch:
                    // `"key": "value",` until something else comes.
                    st = loop {
                        let start = pos + 1;
                        let end = find_special(buf, start);
                        if buf.get(end) != Some(&b'"') {
                            pos = start;
                            break State::InStr(Str::Key);
                        }
                        pos = end + 1;
                        if buf.get(pos) != Some(&b':') {
                            break State::Colon;
                        }
                        pos = skip_ws(buf, pos + 1);
                        if buf.get(pos) != Some(&b'"') {
                            break State::Value;
                        }
                        let start = pos + 1;
                        let end = find_special(buf, start);
                        if buf.get(end) != Some(&b'"') {
                            pos = start;
                            break State::InStr(Str::Value);
                        }
                        pos = end + 1;
                        if buf.get(pos) != Some(&b',') {
                            break State::AfterValue;
                        }
                        pos = skip_ws(buf, pos + 1);
                        if buf.get(pos) != Some(&b'"') {
                            break State::Key;
                        }
                    };
                }
                State::AfterValue => {
                    pos = skip_ws(buf, pos);
                    let Some(&byte) = buf.get(pos) else {
                        break Run::More;
                    };
                    match byte {
                        b',' => {
                            pos += 1;
                            st = if in_obj { State::Key } else { State::Value };
                        }
                        b'}' | b']' => close!(byte),
                        _ => return Err(syntax(pos, "',' or a closing bracket")),
                    }
                }
                State::Colon | State::TopColon => {
                    pos = skip_ws(buf, pos);
                    let Some(&byte) = buf.get(pos) else {
                        break Run::More;
                    };
                    if byte != b':' {
                        return Err(syntax(pos, "':'"));
                    }
                    pos += 1;
                    st = if st == State::TopColon {
                        State::TopValue
                    } else {
                        State::Value
                    };
                }
                State::InStr(kind) => {
                    let end = find_special(buf, pos);
                    if kind == Str::TopKey {
                        self.push_key(&buf[pos..end]);
                    }
                    pos = end;
                    let Some(&byte) = buf.get(pos) else {
                        break Run::More;
                    };
                    match byte {
                        b'"' => {
                            st = match kind {
                                Str::TopKey => State::TopColon,
                                Str::Key => State::Colon,
                                Str::Value => after_value!(),
                            };
                        }
                        b'\\' => {
                            if kind == Str::TopKey {
                                self.key_escaped = true;
                                self.push_key(b"\\");
                            }
                            st = State::Escape(kind);
                        }
                        _ => return Err(syntax(pos, "a string without control characters")),
                    }
                    pos += 1;
                }
                State::Escape(kind) => {
                    let Some(&byte) = buf.get(pos) else {
                        break Run::More;
                    };
                    st = match byte {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                            State::InStr(kind)
                        }
                        b'u' => State::Unicode(kind, 4),
                        _ => return Err(syntax(pos, "a valid escape")),
                    };
                    if kind == Str::TopKey {
                        self.push_key(&[byte]);
                    }
                    pos += 1;
                }
                State::Unicode(kind, left) => {
                    let Some(&byte) = buf.get(pos) else {
                        break Run::More;
                    };
                    if !byte.is_ascii_hexdigit() {
                        return Err(syntax(pos, "a hex digit"));
                    }
                    if kind == Str::TopKey {
                        self.push_key(&[byte]);
                    }
                    pos += 1;
                    st = if left == 1 {
                        State::InStr(kind)
                    } else {
                        State::Unicode(kind, left - 1)
                    };
                }
                State::Num(mut num) => {
                    loop {
                        let Some(&byte) = buf.get(pos) else {
                            st = State::Num(num);
                            break;
                        };
                        match num.next(byte) {
                            Some(next) => {
                                num = next;
                                pos += 1;
                            }
                            None => break,
                        }
                    }
                    if pos == buf.len() {
                        break Run::More;
                    }
                    if !num.complete() {
                        return Err(syntax(pos, "a number, true, false or null"));
                    }
                    st = after_value!();
                }
                State::Lit(lit, mut seen) => {
                    let want = LITERALS[usize::from(lit)];
                    while let Some(&expected) = want.get(usize::from(seen)) {
                        let Some(&byte) = buf.get(pos) else {
                            break;
                        };
                        if byte != expected {
                            return Err(syntax(pos, "a number, true, false or null"));
                        }
                        seen += 1;
                        pos += 1;
                    }
                    if usize::from(seen) < want.len() {
                        st = State::Lit(lit, seen);
                        break Run::More;
                    }
                    st = after_value!();
                }
                State::Start => {
                    pos = skip_ws(buf, pos);
                    let Some(&byte) = buf.get(pos) else {
                        break Run::More;
                    };
                    if byte != b'{' {
                        return Err(syntax(pos, "a JSON object"));
                    }
                    pos += 1;
                    st = State::TopKeyOrEnd;
                }
                State::TopKeyOrEnd | State::TopKey => {
                    pos = skip_ws(buf, pos);
                    let Some(&byte) = buf.get(pos) else {
                        break Run::More;
                    };
                    pos += 1;
                    match byte {
                        b'"' => {
                            self.key.clear();
                            self.key_escaped = false;
                            st = State::InStr(Str::TopKey);
                        }
                        b'}' if st == State::TopKeyOrEnd => break Run::Closed(pos),
                        _ => return Err(syntax(pos - 1, "an object key")),
                    }
                }
                State::TopValue => {
                    pos = skip_ws(buf, pos);
                    let Some(&byte) = buf.get(pos) else {
                        break Run::More;
                    };
                    if self.is_target_key() {
                        if byte != b'{' {
                            return Err(ExtractError::NotTags(format!(
                                "it starts with {:?}",
                                char::from(byte)
                            )));
                        }
                        self.capture = Some(Vec::new());
                        self.capture_start = pos;
                    }
                    st = State::Value;
                }
                State::TopAfterValue => {
                    pos = skip_ws(buf, pos);
                    let Some(&byte) = buf.get(pos) else {
                        break Run::More;
                    };
                    pos += 1;
                    match byte {
                        b',' => st = State::TopKey,
                        b'}' => break Run::Closed(pos),
                        _ => return Err(syntax(pos - 1, "',' or '}'")),
                    }
                }
                State::Done => break Run::Closed(pos),
            }
        };
        self.state = st;
        self.depth = depth;
        self.objects = objects;
        Ok(run)
    }
}

/// Skips JSON whitespace from `pos`.
#[inline(always)]
fn skip_ws(buf: &[u8], mut pos: usize) -> usize {
    while let Some(&byte) = buf.get(pos) {
        if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
            break;
        }
        pos += 1;
    }
    pos
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// High bit of each byte of `word` that is `"`, `\\` or a control character; exact for the lowest one.
///
/// `(x - 0x01..) & !x & 0x80..` flags zero bytes of `x` (and `(w - 0x20..) & !w & 0x80..` bytes below
/// 0x20); a borrow can only flag bytes above a true one, so the lowest flag is always right, which
/// is all the callers use.
#[inline(always)]
fn specials(word: u64) -> u64 {
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    (quote.wrapping_sub(ONES) & !quote
        | backslash.wrapping_sub(ONES) & !backslash
        | word.wrapping_sub(ONES * 0x20) & !word)
        & HIGHS
}

/// The position of the first `"`, `\\` or control character at or after `pos`, or `buf.len()`.
///
/// Eight bytes a word, two words a round: most strings in a packument are shorter than sixteen
/// bytes, so the first round usually answers, with no setup to pay as `memchr` has. (Single u64
/// words measured faster here than u128 ones or a 64-byte bitmap: the scan is bound by the number
/// of operations per string, not by the bytes.)
#[inline(always)]
fn find_special(buf: &[u8], mut pos: usize) -> usize {
    while let Some(block) = buf.get(pos..).and_then(<[u8]>::first_chunk::<16>) {
        let (lo, hi) = block.split_at(8);
        let lo = specials(u64::from_le_bytes(lo.try_into().unwrap_or([0; 8])));
        if lo != 0 {
            return pos + (lo.trailing_zeros() / 8) as usize;
        }
        let hi = specials(u64::from_le_bytes(hi.try_into().unwrap_or([0; 8])));
        if hi != 0 {
            return pos + 8 + (hi.trailing_zeros() / 8) as usize;
        }
        pos += 16;
    }
    while let Some(block) = buf.get(pos..).and_then(<[u8]>::first_chunk::<8>) {
        let found = specials(u64::from_le_bytes(*block));
        if found != 0 {
            return pos + (found.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while let Some(&byte) = buf.get(pos) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            break;
        }
        pos += 1;
    }
    pos
}

/// Whether `s` is a JSON number.
#[cfg_attr(not(test), allow(dead_code))]
fn valid_number(s: &[u8]) -> bool {
    let Some((&first, rest)) = s.split_first() else {
        return false;
    };
    let mut num = Num::start(first);
    for &byte in rest {
        num = num.and_then(|n| n.next(byte));
    }
    num.is_some_and(Num::complete)
}

fn parse_tags(bytes: &[u8]) -> Result<DistTags, ExtractError> {
    if bytes.len() > MAX_DIST_TAGS_LEN {
        return Err(ExtractError::TooLarge("dist-tags value"));
    }
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

    #[test]
    fn nesting_limit_is_exactly_serde_jsons() {
        // serde_json reads 127 nested containers, the top-level object included, and refuses 128.
        for containers in [126, 127, 128, 129] {
            let inner = containers - 1;
            let doc = format!(
                "{{\"a\":{}1{},\"dist-tags\":{{\"latest\":\"1\"}}}}",
                "[".repeat(inner),
                "]".repeat(inner)
            );
            let serde_ok = serde_json::from_str::<serde_json::Value>(&doc).is_ok();
            assert_eq!(extract(doc.as_bytes()).is_ok(), serde_ok, "{containers}");
            assert_eq!(serde_ok, containers <= 127, "{containers}");
        }
    }

    #[test]
    fn control_characters_in_strings_are_refused_as_serde_json_does() {
        for bad in [
            &b"{\"a\":\"x\ny\",\"dist-tags\":{}}"[..],
            b"{\"a\":{\"k\x01\":1},\"dist-tags\":{}}",
            b"{\"a\":[\"0123456789abcdef\x1f\"],\"dist-tags\":{}}",
            b"{\"a\x00\":1,\"dist-tags\":{}}",
        ] {
            assert!(serde_json::from_slice::<serde_json::Value>(bad).is_err());
            assert!(
                matches!(extract(bad), Err(ExtractError::Syntax { .. })),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Whitespace between tokens is not inside a string.
        let pretty = b"{\n\t\"a\": [\r\n1,\n\"x\"\n],\n\"dist-tags\": {\"latest\": \"1\"}\n}";
        assert_eq!(extract(pretty), Ok(tags(&[("latest", "1")])));
    }

    #[test]
    fn strings_of_every_length_and_escape_position() {
        for len in 0..40 {
            for escape_at in [None, Some(0), Some(len / 2), Some(len)] {
                let mut text = "v".repeat(len);
                if let Some(at) = escape_at {
                    text.insert_str(at, "\\\"\\u00e9\\\\");
                }
                let doc = format!(
                    "{{\"k{text}\":[\"{text}\",{{\"{text}\":\"{text}\"}}],\"dist-tags\":{{\"t{text}\":\"{text}\"}}}}"
                );
                let want: serde_json::Value = serde_json::from_str(&doc).expect("valid");
                let got = extract(doc.as_bytes()).expect("extracts");
                let want: DistTags =
                    serde_json::from_value(want["dist-tags"].clone()).expect("tags");
                assert_eq!(got, want, "{doc}");
            }
        }
    }

    #[test]
    fn long_numbers_and_literals_at_any_split() {
        let doc = format!(
            "{{\"n\":[-{}.{}e+{},0,-0.0E-0,true,false,null],\"dist-tags\":{{}}}}",
            "9".repeat(700),
            "1".repeat(600),
            "2".repeat(300)
        );
        assert_eq!(extract(doc.as_bytes()), Ok(DistTags::default()));
        for split in [5, 10, 300, 706, 1310, 1615, 1620, 1625, 1633] {
            let mut ex = Extractor::new();
            assert_eq!(ex.feed(&doc.as_bytes()[..split]), Ok(None), "{split}");
            assert_eq!(
                ex.feed(&doc.as_bytes()[split..]),
                Ok(Some(DistTags::default()))
            );
        }
    }

    #[test]
    fn an_answer_is_given_again_and_never_changes() {
        let mut ex = Extractor::new();
        let doc = br#"{"dist-tags":{"latest":"1"}} garbage"#;
        let first = ex.feed(doc).expect("tags");
        assert_eq!(first, Some(tags(&[("latest", "1")])));
        assert_eq!(ex.bytes_seen(), 27);
        assert_eq!(ex.feed(b"more garbage"), Ok(first.clone()));
        assert_eq!(ex.finish(), Ok(tags(&[("latest", "1")])));

        let mut ex = Extractor::new();
        assert!(ex.feed(br#"{"a":tru "#).is_err());
        let err = ex.finish();
        assert!(
            matches!(err, Err(ExtractError::Syntax { offset: 8, .. })),
            "{err:?}"
        );
        assert_eq!(ex.feed(br#"e}"#).map_err(|_| ()), Err(()));
    }
}

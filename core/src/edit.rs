//! A stored packument's `dist-tags` changed, and not one other byte: the document is checked as JSON
//! and its top-level members are visited, but no tree of it is built and nothing is re-serialised
//! except the `dist-tags` value itself.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::extract::DistTags;
use crate::read::PREFIX_BYTES;

/// Why a stored packument cannot be changed; the document is left as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwritable(pub String);

impl fmt::Display for Unwritable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unwritable {}

/// Byte offsets in the document, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// A packument as read for a write: where its `dist-tags` member is, what it holds, and whether the
/// version a write names is one of its `versions`.
#[derive(Debug)]
pub(crate) struct Packument<'a> {
    bytes: &'a [u8],
    /// The `dist-tags` member: from its key's opening quote to its value's end.
    member: Option<Span>,
    /// The `dist-tags` value alone.
    value: Option<Span>,
    tags: DistTags,
    has_version: bool,
}

impl<'a> Packument<'a> {
    /// Checks `bytes` as one JSON object and finds its `dist-tags`; when `version` is given, also
    /// whether `versions` has that key.
    pub(crate) fn parse(bytes: &'a [u8], version: Option<&str>) -> Result<Self, Unwritable> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let found = Members { version }
            .deserialize(&mut deserializer)
            .and_then(|found| deserializer.end().map(|()| found))
            .map_err(|e| Unwritable(format!("the stored document is not a JSON object: {e}")))?;
        if found.tags_members > 1 {
            return Err(Unwritable(
                "the stored document has more than one dist-tags member".into(),
            ));
        }
        let (value, tags) = match found.tags {
            None => (None, DistTags::default()),
            Some(raw) => {
                let tags: DistTags = serde_json::from_str(raw.get()).map_err(|e| {
                    Unwritable(format!(
                        "the stored dist-tags is not an object of strings: {e}"
                    ))
                })?;
                (Some(span_of(bytes, raw.get().as_bytes())?), tags)
            }
        };
        let member = value.map(|value| member_span(bytes, value)).transpose()?;
        Ok(Self {
            bytes,
            member,
            value,
            tags,
            has_version: found.has_version,
        })
    }

    /// The tags as stored.
    pub(crate) fn tags(&self) -> &DistTags {
        &self.tags
    }

    /// Whether the version asked about in [`Self::parse`] is a key of `versions`.
    pub(crate) fn has_version(&self) -> bool {
        self.has_version
    }

    /// The document with `tags` as its `dist-tags`. The value is replaced where it stands when it
    /// still ends inside the prefix a read takes ([`PREFIX_BYTES`]); otherwise the member moves to
    /// the front, so that every later read is one bounded prefix read. Every other byte is kept.
    pub(crate) fn with_tags(&self, tags: &DistTags) -> Vec<u8> {
        let json = tags.to_json();
        let bytes = self.bytes;
        if let Some(value) = self.value
            && value.start + json.len() <= PREFIX_BYTES as usize
        {
            let mut out = Vec::with_capacity(bytes.len() - (value.end - value.start) + json.len());
            out.extend_from_slice(&bytes[..value.start]);
            out.extend_from_slice(&json);
            out.extend_from_slice(&bytes[value.end..]);
            return out;
        }
        let cut = self.member.map(|member| removal(bytes, member));
        at_front(bytes, cut, &json)
    }
}

/// `document` (one JSON object) without the bytes `cut` (the old member, if any) and with
/// `"dist-tags":json` as its first member, written once into one buffer.
fn at_front(document: &[u8], cut: Option<Span>, json: &[u8]) -> Vec<u8> {
    // The document was checked: its first non-space byte is its `{`.
    let open = document.iter().position(|b| *b == b'{').unwrap_or_default();
    let cut = cut.unwrap_or(Span {
        start: open + 1,
        end: open + 1,
    });
    let (between, rest) = (&document[open + 1..cut.start], &document[cut.end..]);
    // Empty once the old member is gone: nothing but blanks before the closing `}`.
    let empty = between.trim_ascii().is_empty() && rest.trim_ascii_start().first() == Some(&b'}');
    let mut out = Vec::with_capacity(document.len() - (cut.end - cut.start) + json.len() + 13);
    out.extend_from_slice(&document[..=open]);
    out.extend_from_slice(b"\"dist-tags\":");
    out.extend_from_slice(json);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(between);
    out.extend_from_slice(rest);
    out
}

/// The bytes to cut to remove `member` and one comma beside it, so the object stays valid JSON.
fn removal(bytes: &[u8], member: Span) -> Span {
    let before = bytes[..member.start]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace());
    if let Some(comma) = before.filter(|i| bytes[*i] == b',') {
        return Span {
            start: comma,
            end: member.end,
        };
    }
    // The first member: the comma after it goes, if another member follows.
    let after = bytes[member.end..]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| member.end + i);
    match after.filter(|i| bytes[*i] == b',') {
        Some(comma) => Span {
            start: member.start,
            end: comma + 1,
        },
        None => member,
    }
}

/// Where `part`, a slice of `whole` that serde_json borrowed, lies in it.
fn span_of(whole: &[u8], part: &[u8]) -> Result<Span, Unwritable> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    let end = start.wrapping_add(part.len());
    match whole.get(start..end) {
        Some(slice) if std::ptr::eq(slice.as_ptr(), part.as_ptr()) => Ok(Span { start, end }),
        _ => Err(Unwritable(
            "the dist-tags value could not be located".into(),
        )),
    }
}

/// The member whose value is `value`: back over `:` and blanks to the key's closing quote, then
/// to its opening quote (the first `"` not escaped; the key may spell `dist-tags` with escapes).
fn member_span(bytes: &[u8], value: Span) -> Result<Span, Unwritable> {
    let lost = || Unwritable("the dist-tags key could not be located".into());
    let mut i = value.start;
    let skip_blanks = |i: &mut usize| {
        while *i > 0 && bytes[*i - 1].is_ascii_whitespace() {
            *i -= 1;
        }
    };
    skip_blanks(&mut i);
    if i == 0 || bytes[i - 1] != b':' {
        return Err(lost());
    }
    i -= 1;
    skip_blanks(&mut i);
    if i == 0 || bytes[i - 1] != b'"' {
        return Err(lost());
    }
    let mut j = i - 1;
    while j > 0 {
        j -= 1;
        if bytes[j] == b'"' {
            let backslashes = bytes[..j].iter().rev().take_while(|b| **b == b'\\').count();
            if backslashes % 2 == 0 {
                return Ok(Span {
                    start: j,
                    end: value.end,
                });
            }
        }
    }
    Err(lost())
}

/// What a visit of the top-level members found.
struct Found<'de> {
    tags: Option<&'de RawValue>,
    tags_members: usize,
    has_version: bool,
}

/// Visits the top-level object: `dist-tags` is kept as raw bytes, `versions` is searched for one
/// key, every other value is checked and skipped.
struct Members<'v> {
    version: Option<&'v str>,
}

impl<'de> DeserializeSeed<'de> for Members<'_> {
    type Value = Found<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Found<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Members<'_> {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a packument object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found<'de>, A::Error> {
        let mut found = Found {
            tags: None,
            tags_members: 0,
            has_version: false,
        };
        while let Some(key) = map.next_key::<String>()? {
            match (key.as_str(), self.version) {
                ("dist-tags", _) => {
                    found.tags = Some(map.next_value::<&RawValue>()?);
                    found.tags_members += 1;
                }
                ("versions", Some(version)) => {
                    found.has_version = map.next_value_seed(HasKey(version))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// Whether an object has a key, its values checked and skipped.
struct HasKey<'v>(&'v str);

impl<'de> DeserializeSeed<'de> for HasKey<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HasKey<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of versions")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            found |= key == self.0;
            map.next_value::<IgnoredAny>()?;
        }
        Ok(found)
    }

    // `versions` that is not an object holds no version.
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> DistTags {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn edit(doc: &str, new: &[(&str, &str)]) -> String {
        let packument = Packument::parse(doc.as_bytes(), None).expect("parse");
        let out = packument.with_tags(&tags(new));
        serde_json::from_slice::<serde_json::Value>(&out).expect("still JSON");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn the_value_is_replaced_in_place_near_the_front() {
        let doc = "{\n  \"name\": \"a\",\n  \"dist-tags\": { \"latest\": \"1.0.0\" },\n  \"versions\": {}\n}\n";
        assert_eq!(
            edit(doc, &[("latest", "1.0.0"), ("next", "2.0.0")]),
            "{\n  \"name\": \"a\",\n  \"dist-tags\": {\"latest\":\"1.0.0\",\"next\":\"2.0.0\"},\n  \"versions\": {}\n}\n"
        );
    }

    #[test]
    fn a_member_past_the_prefix_moves_to_the_front() {
        let filler = "x".repeat(PREFIX_BYTES as usize);
        for (doc, expected) in [
            (
                format!("{{\"a\":\"{filler}\",\"dist-tags\":{{\"latest\":\"1\"}},\"b\":1}}"),
                format!("{{\"dist-tags\":{{\"latest\":\"2\"}},\"a\":\"{filler}\",\"b\":1}}"),
            ),
            (
                format!("{{\"a\":\"{filler}\" , \"dist-tags\" : {{}} }}"),
                format!("{{\"dist-tags\":{{\"latest\":\"2\"}},\"a\":\"{filler}\"  }}"),
            ),
            // Spelt with an escape, and the only member but for a long one before it.
            (
                format!("{{\"a\":\"{filler}\",\"dist\\u002dtags\":{{}}}}"),
                format!("{{\"dist-tags\":{{\"latest\":\"2\"}},\"a\":\"{filler}\"}}"),
            ),
        ] {
            assert_eq!(edit(&doc, &[("latest", "2")]), expected);
        }
    }

    #[test]
    fn a_document_without_dist_tags_gets_them_first() {
        assert_eq!(
            edit(" {\"name\":\"a\"}", &[("latest", "1")]),
            " {\"dist-tags\":{\"latest\":\"1\"},\"name\":\"a\"}"
        );
        assert_eq!(
            edit("{ }", &[("latest", "1")]),
            "{\"dist-tags\":{\"latest\":\"1\"} }"
        );
    }

    #[test]
    fn the_only_member_is_replaced() {
        assert_eq!(
            edit("{\"dist-tags\":{\"latest\":\"1\"}}", &[("a", "2")]),
            "{\"dist-tags\":{\"a\":\"2\"}}"
        );
    }

    #[test]
    fn versions_and_broken_documents() {
        let doc = br#"{"versions":{"1.0.0":{"v":[1,{"x":null}]},"2.0.0":{}},"dist-tags":{"latest":"2.0.0"}}"#;
        let p = Packument::parse(doc, Some("1.0.0")).expect("parse");
        assert!(p.has_version());
        assert_eq!(p.tags().get("latest"), Some("2.0.0"));
        assert!(
            !Packument::parse(doc, Some("3.0.0"))
                .expect("parse")
                .has_version()
        );
        assert!(
            !Packument::parse(br#"{"versions":null}"#, Some("1"))
                .expect("parse")
                .has_version()
        );
        for broken in [
            &b"[]"[..],
            b"{\"dist-tags\":{}",
            b"{\"dist-tags\":{}} x",
            b"{\"dist-tags\":{\"a\":1}}",
            b"{\"dist-tags\":{},\"dist-tags\":{}}",
            b"",
        ] {
            assert!(Packument::parse(broken, None).is_err(), "{broken:?}");
        }
    }

    mod properties {
        use std::collections::HashMap;

        use proptest::collection::vec;
        use proptest::prelude::*;
        use serde_json::Value;
        use serde_json::value::RawValue;

        use super::*;

        fn members(document: &[u8]) -> HashMap<String, &RawValue> {
            serde_json::from_slice(document).expect("a JSON object")
        }

        fn value() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i32>().prop_map(Value::from),
                "[a-z\\\\\"{},:é ]{0,12}".prop_map(Value::from),
                vec("[a-z\\\\\"{} ]{0,6}", 0..4).prop_map(Value::from),
            ]
        }

        prop_compose! {
            /// A packument-shaped object: members in any order, `dist-tags` among them or not,
            /// compact or pretty, sometimes behind a member longer than the prefix.
            fn document()(
                others in vec(("[a-z_]{1,8}", value()), 0..6),
                tags in proptest::option::of(vec(("[a-z]{1,6}", "[0-9.]{1,6}"), 0..4)),
                at in 0usize..7,
                pretty in any::<bool>(),
                long in proptest::bool::weighted(0.2),
            ) -> Vec<u8> {
                let mut pairs: Vec<(String, Value)> = Vec::new();
                for (k, v) in others {
                    if k != "dist-tags" && !pairs.iter().any(|(p, _)| *p == k) {
                        pairs.push((k, v));
                    }
                }
                if long {
                    pairs.insert(0, ("readme".into(), Value::from("x".repeat(PREFIX_BYTES as usize))));
                }
                if let Some(tags) = tags {
                    let tags: serde_json::Map<String, Value> =
                        tags.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
                    pairs.insert(at.min(pairs.len()), ("dist-tags".into(), Value::Object(tags)));
                }
                let sep = if pretty { ",\n  " } else { "," };
                let colon = if pretty { ": " } else { ":" };
                let body: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}{colon}{}", Value::from(k.as_str()), v))
                    .collect();
                let (open, close) = if pretty { ("{\n  ", "\n}\n") } else { ("{", "}") };
                format!("{open}{}{close}", body.join(sep)).into_bytes()
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]
            #[test]
            fn only_dist_tags_change(doc in document(), new in vec(("[a-z]{1,6}", "[0-9.]{1,6}"), 0..4)) {
                let new: DistTags = new.into_iter().collect();
                let packument = Packument::parse(&doc, None).expect("parse");
                let out = packument.with_tags(&new);
                let (before, after) = (members(&doc), members(&out));
                for (key, raw) in &before {
                    if key != "dist-tags" {
                        prop_assert_eq!(raw.get(), after[key].get(), "member {}", key);
                    }
                }
                prop_assert_eq!(after.len(), before.len() + usize::from(!before.contains_key("dist-tags")));
                let written: DistTags = serde_json::from_str(after["dist-tags"].get()).expect("tags");
                prop_assert_eq!(&written, &new);
                // What a reader takes: the new tags, within the prefix.
                let read = crate::extract::extract(&out[..out.len().min(PREFIX_BYTES as usize)]);
                prop_assert_eq!(read.ok(), Some(new));
            }
        }
    }
}

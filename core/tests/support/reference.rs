//! serde_json's own reading of a packument's `dist-tags`: the reference the property tests
//! (core/tests/properties.rs) and the fuzz targets (core/fuzz) compare the extractor with. One file,
//! included by `#[path]` from both, since the fuzz crate is a workspace of its own.

use std::fmt;

use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// How many top-level `dist-tags` keys a document has, as serde_json decodes keys.
struct TargetCount(usize);

impl<'de> serde::Deserialize<'de> for TargetCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> Visitor<'de> for Counter {
            type Value = TargetCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TargetCount, A::Error> {
                let mut n = 0;
                while let Some((k, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    n += usize::from(k == "dist-tags");
                }
                Ok(TargetCount(n))
            }
        }
        deserializer.deserialize_map(Counter)
    }
}

/// serde_json's answer for a document, when it has one to compare with: the document is JSON, its
/// top level an object with at most one `dist-tags`, which (when present) reads as `Tags`.
pub fn serde_answer<Tags: DeserializeOwned + Default>(bytes: &[u8]) -> Option<Tags> {
    let doc: Value = serde_json::from_slice(bytes).ok()?;
    let TargetCount(n) = serde_json::from_slice(bytes).ok()?;
    if n > 1 || !doc.is_object() {
        return None;
    }
    match doc.get("dist-tags") {
        None => Some(Tags::default()),
        Some(tags) => serde_json::from_value(tags.clone()).ok(),
    }
}

/// Tags (`DistTags::iter()`) as a sorted list, for comparing with serde_json's reading (whose maps
/// may be sorted). Takes the iterator, not the type, because the fuzz crate compiles its own copy of
/// `extract.rs`.
pub fn sorted<'a>(tags: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = tags.map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    v.sort();
    v
}

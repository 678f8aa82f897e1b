//! Properties of dist-tags extraction and of package names, checked on generated inputs in the normal
//! `cargo test` (issue 7). Extraction is checked against serde_json itself (differential): on every
//! document serde_json reads, with a single top-level `dist-tags` that is an object of strings (or
//! none), `extract` must give the same tags, whole and fed in pieces split anywhere; on any bytes it
//! must not panic, and must give the same answer whole and in pieces.

#[path = "support/reference.rs"]
mod reference;

use disttags_core::PackageName;
use disttags_core::extract::{DistTags, Extractor, extract};
use percent_encoding::percent_decode_str;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use reference::{serde_answer, sorted};
use serde_json::Value;

/// Strings with what makes JSON strings hard: quotes, backslashes, control characters, non-ASCII,
/// characters outside the BMP (escaped as surrogate pairs by no one, but written raw), and lengths
/// on both sides of the scanner's 8- and 16-byte words.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9._-]{0,20}",
        2 => vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('/'),
                Just('\n'),
                Just('\u{1}'),
                Just('\u{1f}'),
                Just('\u{7f}'),
                Just('é'),
                Just('\u{2028}'),
                Just('😀'),
                any::<char>(),
                proptest::char::range('a', 'z'),
                Just(' '),
            ],
            0..40,
        )
        .prop_map(|chars| chars.into_iter().collect()),
        1 => any::<String>(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

/// Any JSON value, a few levels deep, sometimes wrapped in a long chain of containers that reaches
/// the nesting limit (127 containers with the top-level object and this member's own).
fn value() -> impl Strategy<Value = Value> {
    let tree = leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(text(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        8 => tree,
        1 => (leaf(), 0usize..=126, any::<bool>()).prop_map(|(mut v, depth, objects)| {
            for level in 0..depth {
                v = if objects && level % 2 == 0 {
                    Value::Object([("k".to_owned(), v)].into_iter().collect())
                } else {
                    Value::Array(vec![v])
                };
            }
            v
        }),
    ]
}

/// A top-level key other than `dist-tags`.
fn other_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => text(),
        1 => prop_oneof![
            Just("dist-tag".to_owned()),
            Just("dist-tags ".to_owned()),
            Just("Dist-Tags".to_owned()),
            Just("distTags".to_owned()),
            Just("versions".to_owned()),
        ],
    ]
    .prop_filter("not the target", |k| k != "dist-tags")
}

/// A packument-like document: members in a chosen order, at most one `dist-tags`.
#[derive(Debug, Clone)]
struct Doc {
    members: Vec<(String, Value)>,
    /// The dist-tags as generated, in order (repeated tags allowed), and where they go.
    tags: Option<(usize, Vec<(String, String)>)>,
}

impl Doc {
    fn write(&self, pretty: bool) -> Vec<u8> {
        let colon = if pretty { ": " } else { ":" };
        let json = |v: &Value| {
            if pretty {
                serde_json::to_string_pretty(v)
            } else {
                serde_json::to_string(v)
            }
            .expect("serializes")
        };
        let mut members: Vec<String> = self
            .members
            .iter()
            .map(|(k, v)| format!("{}{colon}{}", json(&Value::from(k.as_str())), json(v)))
            .collect();
        if let Some((at, tags)) = &self.tags {
            // Written by hand so that repeated tags and their order survive.
            let tags: Vec<String> = tags
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}{colon}{}",
                        json(&Value::from(k.as_str())),
                        json(&Value::from(v.as_str()))
                    )
                })
                .collect();
            let obj = format!("{{{}}}", tags.join(if pretty { ",\n    " } else { "," }));
            let at = at % (members.len() + 1);
            members.insert(at, format!("\"dist-tags\"{colon}{obj}"));
        }
        let (open, sep, close) = if pretty {
            ("{\n  ", ",\n  ", "\n}")
        } else {
            ("{", ",", "}")
        };
        format!("{open}{}{close}", members.join(sep)).into_bytes()
    }

    /// The tags as the extractor must report them: stored order, a repeated tag keeps its first
    /// place and takes its last value (as serde_json's own maps do).
    fn expected(&self) -> DistTags {
        match &self.tags {
            Some((_, tags)) => tags.iter().cloned().collect(),
            None => DistTags::default(),
        }
    }
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        vec((other_key(), value()), 0..8),
        proptest::option::of((any::<usize>(), vec((text(), text()), 0..6))),
    )
        .prop_map(|(members, tags)| Doc { members, tags })
}

/// Feeds `bytes` cut at `cuts` (any positions, any order), stopping at the first answer.
fn extract_in_pieces(
    bytes: &[u8],
    cuts: &[usize],
) -> Result<DistTags, disttags_core::ExtractError> {
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|c| c % (bytes.len() + 1))
        .chain([0, bytes.len()])
        .collect();
    cuts.sort_unstable();
    let mut extractor = Extractor::new();
    for pair in cuts.windows(2) {
        if let Some(tags) = extractor.feed(&bytes[pair[0]..pair[1]])? {
            return Ok(tags);
        }
    }
    extractor.finish()
}

/// Small edits of a valid document: where bugs in a validator hide.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        doc(),
        any::<bool>(),
        vec((any::<usize>(), 0u8..3, any::<u8>()), 1..4),
    )
        .prop_map(|(doc, pretty, edits)| {
            let mut bytes = doc.write(pretty);
            const INTERESTING: &[u8] = b"\"\\{}[],:0-.eE+tfnu \n\x00\x1f\x7f\xc3\xff";
            for (at, op, b) in edits {
                let at = at % (bytes.len() + 1);
                let b = if b % 2 == 0 {
                    INTERESTING[usize::from(b / 2) % INTERESTING.len()]
                } else {
                    b
                };
                match op {
                    0 if at < bytes.len() => bytes[at] = b,
                    1 => bytes.insert(at, b),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.push(b),
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    /// (a) Differential on valid documents, compact and pretty, whole and in pieces.
    #[test]
    fn agrees_with_serde_json_on_valid_documents(
        doc in doc(),
        pretty in any::<bool>(),
        cuts in vec(any::<usize>(), 0..6),
    ) {
        let bytes = doc.write(pretty);
        let serde = serde_answer::<DistTags>(&bytes);
        prop_assert!(serde.is_some(), "serde_json refused a generated document");
        let serde = serde.unwrap_or_default();
        let whole = extract(&bytes);
        prop_assert_eq!(&whole, &Ok(doc.expected()), "{}", String::from_utf8_lossy(&bytes));
        prop_assert_eq!(sorted(doc.expected().iter()), sorted(serde.iter()));
        prop_assert_eq!(extract_in_pieces(&bytes, &cuts), whole);
        // Byte by byte near the start: every early split point.
        let mut one = Extractor::new();
        let mut answer = None;
        for byte in bytes.chunks(1) {
            if let Some(tags) = one.feed(byte).expect("valid") {
                answer = Some(tags);
                break;
            }
        }
        let answer = match answer {
            Some(tags) => tags,
            None => one.finish().expect("complete"),
        };
        prop_assert_eq!(answer, doc.expected());
    }

    /// (b) Arbitrary bytes: no panic, the same answer in pieces, and serde_json's answer whenever it
    /// has one.
    #[test]
    fn arbitrary_bytes(
        bytes in prop_oneof![vec(any::<u8>(), 0..256), mutated()],
        cuts in vec(any::<usize>(), 0..6),
    ) {
        let whole = extract(&bytes);
        prop_assert_eq!(&extract_in_pieces(&bytes, &cuts), &whole);
        if let Some(serde) = serde_answer::<DistTags>(&bytes) {
            // serde_json reads it: the extractor must read it too, to the same tags.
            match &whole {
                Ok(tags) => prop_assert_eq!(sorted(tags.iter()), sorted(serde.iter())),
                Err(e) => prop_assert!(false, "serde_json reads {:?} but extract says {}",
                    String::from_utf8_lossy(&bytes), e),
            }
        }
    }

    /// (c) Names: no panic, and a name that is accepted cannot leave its own prefix.
    #[test]
    fn names_stay_inside_their_prefix(
        raw in prop_oneof![
            any::<String>(),
            "(@[a-zA-Z0-9._~*'()!%-]{0,8}(/|%2[fF]|%252[fF]|%2[eE]){0,2})?[a-zA-Z0-9._~*'()!%/ -]{0,24}",
            "[.%2eE/]{0,12}",
        ],
    ) {
        if let Ok(name) = PackageName::from_path_segment(&raw) {
            let name_str = name.as_str();
            let key = name.packument_key().as_ref().to_owned();
            prop_assert!(key.starts_with(name_str), "{} / {}", key, name_str);
            prop_assert_eq!(&key, &format!("{name_str}/index.json"));
            prop_assert!(key.ends_with("/index.json"));
            for segment in key.split('/') {
                prop_assert!(!matches!(segment, "" | "." | ".."), "segment {:?} in {}", segment, key);
            }
            let prefix = name.prefix();
            prop_assert_eq!(prefix.as_ref(), name_str);
            let upstream = name.upstream_segment();
            prop_assert!(!upstream.contains('/'), "{}", upstream);
            let decoded = percent_decode_str(&upstream).decode_utf8();
            prop_assert_eq!(decoded.as_deref(), Ok(name_str));
            prop_assert_eq!(name_str.matches('/').count(), usize::from(name.is_scoped()));
            prop_assert!(name_str.len() <= 214);
        }
    }
}

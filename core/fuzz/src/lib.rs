//! The checks behind the fuzz targets (and the corpus replay).
//!
//! `extract` and `names` are compiled from core/src itself rather than through the disttags-core
//! crate: they depend only on serde, serde_json, percent-encoding and object_store's `Path`, and
//! this way the sanitizer build does not have to compile the cloud SDKs and TLS stack.

#![allow(dead_code)]

#[path = "../../src/extract.rs"]
pub mod extract;
#[path = "../../src/names.rs"]
pub mod names;
#[path = "../../tests/support/reference.rs"]
mod reference;

use extract::{DistTags, ExtractError, Extractor};
use names::PackageName;
use reference::{serde_answer, sorted};

/// No panic; the same answer whole, byte by byte and in uneven pieces; serde_json's answer whenever
/// serde_json reads the document and it has a single top-level `dist-tags` (or none).
pub fn extract_target(data: &[u8]) {
    let whole = extract::extract(data);
    assert_eq!(in_pieces(data, 1), whole, "byte by byte");
    let size = 2 + data.len() % 61;
    assert_eq!(in_pieces(data, size), whole, "in pieces of {size}");
    if let Some(serde) = serde_answer::<DistTags>(data) {
        match &whole {
            Ok(tags) => assert_eq!(
                sorted(tags.iter()),
                sorted(serde.iter()),
                "serde_json disagrees"
            ),
            Err(e) => panic!("serde_json reads the document but extract says {e}"),
        }
    }
}

/// No panic; an accepted name's store key and upstream segment stay inside the package's prefix.
pub fn names_target(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(name) = PackageName::from_path_segment(raw) else {
        return;
    };
    let name = name.as_str().to_owned();
    let parsed = PackageName::parse(&name).expect("an accepted name parses again");
    let key = parsed.packument_key().as_ref().to_owned();
    assert_eq!(key, format!("{name}/index.json"));
    for segment in key.split('/') {
        assert!(!matches!(segment, "" | "." | ".."), "{key}");
    }
    assert_eq!(parsed.prefix().as_ref(), name);
    let upstream = parsed.upstream_segment();
    assert!(!upstream.contains('/'), "{upstream}");
    let decoded = percent_encoding::percent_decode_str(&upstream).decode_utf8();
    assert_eq!(decoded.as_deref(), Ok(name.as_str()));
}

fn in_pieces(data: &[u8], size: usize) -> Result<DistTags, ExtractError> {
    let mut extractor = Extractor::new();
    for piece in data.chunks(size) {
        if let Some(tags) = extractor.feed(piece)? {
            return Ok(tags);
        }
    }
    extractor.finish()
}

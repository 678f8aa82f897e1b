//! Extraction throughput over the shared packuments: our streaming extractor beside two serde_json
//! baselines (a whole `Value` tree, and a struct that keeps only `dist-tags`). Reports GB/s (decimal,
//! as issue 6 states its goal).
//!
//! `cargo bench -p disttags-core --bench extract`; `-- --quick` for the short CI smoke mode.

use std::io::Read;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use disttags_core::extract::{DistTags, Extractor, extract};
use serde::Deserialize;

fn packuments() -> Vec<(String, Vec<u8>)> {
    let dir = std::env::var_os("DISTTAGS_PACKUMENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/packuments")
        });
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gz"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let mut doc = Vec::new();
            let raw = std::fs::read(&path).expect("read packument");
            flate2::read::GzDecoder::new(raw.as_slice())
                .read_to_end(&mut doc)
                .expect("gunzip");
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .trim_end_matches(".json.gz")
                .to_owned();
            (name, doc)
        })
        .collect()
}

#[derive(Deserialize)]
struct OnlyTags {
    #[serde(rename = "dist-tags", default)]
    dist_tags: Option<DistTags>,
}

/// Feeding in 64 KiB chunks, as a store stream delivers them.
fn extract_chunked(doc: &[u8]) -> DistTags {
    let mut extractor = Extractor::new();
    for chunk in doc.chunks(64 * 1024) {
        if let Some(tags) = extractor.feed(chunk).expect("valid") {
            return tags;
        }
    }
    extractor.finish().expect("complete")
}

fn bench(c: &mut Criterion) {
    for (name, doc) in packuments() {
        let mut group = c.benchmark_group(format!("extract/{name}"));
        group.throughput(Throughput::BytesDecimal(doc.len() as u64));
        let expected = extract(&doc).expect("extracts");
        assert_eq!(extract_chunked(&doc), expected);
        group.bench_with_input(BenchmarkId::new("disttags", doc.len()), &doc, |b, d| {
            b.iter(|| extract(d).expect("extracts"))
        });
        group.bench_with_input(
            BenchmarkId::new("disttags_chunked", doc.len()),
            &doc,
            |b, d| b.iter(|| extract_chunked(d)),
        );
        group.bench_with_input(BenchmarkId::new("serde_struct", doc.len()), &doc, |b, d| {
            b.iter(|| {
                serde_json::from_slice::<OnlyTags>(d)
                    .expect("json")
                    .dist_tags
            })
        });
        group.bench_with_input(BenchmarkId::new("serde_value", doc.len()), &doc, |b, d| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(d).expect("json"))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);

//! `hotset`: the tag cache under a working set larger than it. 50,000 packages in a file store, built
//! as `disttags serve` builds it, looked up in a loop: every other lookup is one of a hot 5,000
//! (chosen at random), the others walk through all 50,000 in turn. The second pass is measured:
//! the hit rate of the hot lookups and of the walk (a hit is an answer from the cache, revalidated
//! by one `stat()`; a miss reads the packument), the time per lookup, and the process' RSS, once
//! for the default cache and once for one too small to hold the walk. Each configuration runs in a
//! process of its own, so that one's memory does not count in the other's. Prints a table;
//! asserts nothing.
//!
//! `cargo run --release -p disttags-bench --bin hotset [-- --quick]` (`--quick`: a tenth of it).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use disttags_core::{Config, Defaults, PackageName};
use disttags_tests::load::rss_kib;
use disttags_tests::packument;

/// xorshift64*: the same hot lookups on every run.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

fn name(i: usize) -> String {
    format!("pkg-{i:05}")
}

/// Writes `count` packuments with a few tags each into `dir`, as `disttags import` lays them out.
fn fill(dir: &Path, count: usize) {
    for i in 0..count {
        let name = name(i);
        let tags = format!(r#"{{"latest":"1.{i}.0","next":"2.0.0-rc.{i}","beta":"2.0.0-beta.1"}}"#);
        let folder = dir.join(&name);
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::write(folder.join("index.json"), packument(&name, Some(&tags))).expect("write");
    }
}

#[derive(Default)]
struct Tally {
    hits: u64,
    lookups: u64,
    time: Duration,
}

impl Tally {
    fn rate(&self) -> f64 {
        100.0 * self.hits as f64 / self.lookups.max(1) as f64
    }
}

/// One configuration, in this process: prints
/// `hot_rate walk_rate us_per_lookup rss_kib entries_bound rss_before_kib`.
async fn child(dir: &Path, packages: usize, hot: usize, cache_mb: Option<&str>) {
    let store = format!("file://{}", dir.display());
    let mut vars = vec![
        ("DISTTAGS_STORE", store.as_str()),
        ("DISTTAGS_UPSTREAM", "off"),
        ("DISTTAGS_LOG", "none"),
    ];
    if let Some(mb) = cache_mb {
        vars.push(("DISTTAGS_CACHE_MB", mb));
    }
    let config = Config::from_vars(vars, Defaults::LOCAL).expect("config");
    let app = config.build_app().expect("app");
    let names: Vec<PackageName> = (0..packages)
        .map(|i| PackageName::parse(&name(i)).expect("name"))
        .collect();
    let before_kib = rss_kib(std::process::id()).unwrap_or(0);
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let (mut hot_tally, mut walk_tally) = (Tally::default(), Tally::default());
    for pass in 0..2 {
        for i in 0..packages {
            for (which, index) in [(0, random.below(hot)), (1, i)] {
                let before = app.stats();
                let started = Instant::now();
                app.dist_tags(&names[index]).await.expect("lookup");
                let took = started.elapsed();
                let after = app.stats();
                if pass == 0 {
                    continue;
                }
                let tally = if which == 0 {
                    &mut hot_tally
                } else {
                    &mut walk_tally
                };
                tally.lookups += 1;
                tally.time += took;
                // Answered from the cache: the file's metadata showed it unchanged (or the store
                // said "not modified"); a miss reads the packument.
                tally.hits += u64::from(
                    after.file_checks > before.file_checks
                        || after.not_modified > before.not_modified,
                );
            }
        }
    }
    let lookups = hot_tally.lookups + walk_tally.lookups;
    let micros = (hot_tally.time + walk_tally.time).as_secs_f64() * 1e6 / lookups.max(1) as f64;
    let rss = rss_kib(std::process::id()).unwrap_or(0);
    println!(
        "{:.1} {:.1} {micros:.1} {rss} {} {before_kib}",
        hot_tally.rate(),
        walk_tally.rate(),
        config.cache_bytes / disttags_core::MIN_ENTRY_BYTES
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let (packages, hot) = if quick { (5_000, 500) } else { (50_000, 5_000) };
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let dir = Path::new(&args[at + 1]);
        let mb = args
            .get(at + 2)
            .map(String::as_str)
            .filter(|m| *m != "default");
        child(dir, packages, hot, mb).await;
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    fill(dir.path(), packages);
    println!(
        "{packages} packuments written in {:.1?}; each pass: {packages} lookups of a hot {hot} (at random) between {packages} walking them all; the second pass is measured",
        started.elapsed()
    );
    // The default (32,768 entries: the hot set fits, the walk does not), and a smaller cache that
    // still holds the hot set (8,192 entries for a hot 5,000; 1,024 for 500 with --quick).
    let small = if quick { "1" } else { "8" };
    println!(
        "{:>12} {:>12} {:>14} {:>15} {:>12} {:>15} {:>9}",
        "cache MiB",
        "entries max",
        "hot hit rate",
        "walk hit rate",
        "µs/lookup",
        "RSS before MiB",
        "RSS MiB"
    );
    for mb in ["default", small] {
        let exe = std::env::current_exe().expect("own path");
        let mut command = Command::new(exe);
        command.arg("--child").arg(dir.path()).arg(mb);
        if quick {
            command.arg("--quick");
        }
        let output = command.output().expect("child");
        let line = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(
            output.status.success() && fields.len() == 6,
            "child failed: {line} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let shown = if mb == "default" {
            disttags_core::vars::CACHE_MB.default_count().to_string() + " (default)"
        } else {
            mb.to_owned()
        };
        let mib = |field: &str| field.parse::<f64>().unwrap_or(0.0) / 1024.0;
        println!(
            "{shown:>12} {:>12} {:>13}% {:>14}% {:>12} {:>15.1} {:>9.1}",
            fields[4],
            fields[0],
            fields[1],
            fields[2],
            mib(fields[5]),
            mib(fields[3])
        );
    }
}

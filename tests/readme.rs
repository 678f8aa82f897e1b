//! The README agrees with the code: its configuration table is the one `disttags_core::vars`
//! renders, and its layout names every source file there is, and only files there are.

use std::collections::BTreeSet;
use std::path::Path;

use disttags_tests::repo_root;

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).expect("README.md")
}

#[test]
fn the_configuration_table_is_the_one_the_code_reads() {
    let table = disttags_core::vars::markdown_table();
    assert!(
        readme().contains(&table),
        "README.md's configuration table differs from disttags_core::vars::ALL; it should read:\n{table}"
    );
}

/// The paths the README's layout block names: the first word of each line that has one.
fn layout_paths() -> BTreeSet<String> {
    let text = readme();
    let section = text
        .split("\n## Layout\n")
        .nth(1)
        .expect("a Layout section");
    let block = section
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a text block in the Layout section");
    block
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(|p| p.trim_end_matches('/').to_owned())
        .collect()
}

/// Every Rust source file of the workspace's crates, and the scripts people run.
fn source_files() -> BTreeSet<String> {
    let root = repo_root();
    let mut files = BTreeSet::new();
    let dirs = [
        "core/src",
        "core/tests",
        "core/benches",
        "shims/server/src",
        "shims/local/src",
        "shims/lambda/src",
        "shims/azure/src",
        "shims/cloudrun/src",
        "tests",
        "tests/src",
        "tests/src/bin",
        "bench/src",
        "bench/src/bin",
        "scripts",
    ];
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_source = path.extension().is_some_and(|e| e == "rs") || dir == "scripts";
            if path.is_file() && is_source {
                let relative = path.strip_prefix(&root).unwrap_or(&path);
                files.insert(relative.display().to_string());
            }
        }
    }
    files
}

#[test]
fn the_layout_names_every_source_file_and_only_files_that_exist() {
    let listed = layout_paths();
    let root = repo_root();
    let missing: Vec<&String> = listed
        .iter()
        .filter(|p| !Path::new(&root).join(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "README layout names paths that do not exist: {missing:?}"
    );
    let unlisted: Vec<String> = source_files()
        .into_iter()
        .filter(|f| !listed.contains(f))
        .collect();
    assert!(
        unlisted.is_empty(),
        "README layout does not name these files (one line each, saying its job): {unlisted:?}"
    );
}

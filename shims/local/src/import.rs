//! `disttags import`: packument files (JSON, optionally gzipped) copied into the store under
//! `{name}/index.json`, the name read from each document and checked by npm's rules.

use std::io::Read;
use std::path::PathBuf;

use disttags_core::{Config, PackageName, Store, extract::extract, put_packument};

#[derive(serde::Deserialize)]
struct Head {
    name: String,
}

pub async fn import(config: Config, files: &[PathBuf]) -> Result<(), String> {
    let store = config.build_store().map_err(|e| e.to_string())?;
    let mut failed = 0;
    for file in files {
        match import_one(&store, file).await {
            Ok(line) => println!("{line}"),
            Err(e) => {
                failed += 1;
                eprintln!("disttags: {}: {e}", file.display());
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} of {} files were not imported", files.len())),
    }
}

async fn import_one(store: &Store, file: &PathBuf) -> Result<String, String> {
    let raw = std::fs::read(file).map_err(|e| e.to_string())?;
    let document = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format!("not a readable gzip file: {e}"))?;
        out
    } else {
        raw
    };
    let head: Head = serde_json::from_slice(&document)
        .map_err(|e| format!("not a packument (a JSON object with a \"name\"): {e}"))?;
    let name =
        PackageName::parse(&head.name).map_err(|e| format!("package name {:?}: {e}", head.name))?;
    let tags = extract(&document).map_err(|e| e.to_string())?;
    let key = name.packument_key();
    let size = document.len();
    // On a file store, under the lock a tag write takes: neither replaces the other's document unseen.
    put_packument(store, key, document)
        .await
        .map_err(|e| format!("writing {key} failed: {e}"))?;
    Ok(format!(
        "imported {name} -> {key} ({size} bytes, {} dist-tags)",
        tags.len()
    ))
}

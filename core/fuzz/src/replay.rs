//! Runs every file of a corpus through its target, without libFuzzer: `replay extract corpus/extract`.
//! A failed check panics, which ends the process with a non-zero status and the file's name.

use std::path::Path;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(target), dirs) = (args.next(), args.collect::<Vec<_>>()) else {
        eprintln!("usage: replay extract|names DIR...");
        std::process::exit(2);
    };
    let run: fn(&[u8]) = match target.as_str() {
        "extract" => disttags_core_fuzz::extract_target,
        "names" => disttags_core_fuzz::names_target,
        other => {
            eprintln!("unknown target {other}");
            std::process::exit(2);
        }
    };
    let mut count = 0;
    for dir in &dirs {
        let mut files: Vec<_> = std::fs::read_dir(Path::new(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            eprintln!("{}", file.display());
            run(&data);
            count += 1;
        }
    }
    println!("replay {target}: {count} passed, 0 failed");
}

//! `disttags serve` and `disttags import`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = disttags_local::Cli::parse();
    disttags_server::run(
        "disttags",
        disttags_server::Lines::Batched,
        disttags_local::run(cli, disttags_core::Env::from_process()),
    )
}

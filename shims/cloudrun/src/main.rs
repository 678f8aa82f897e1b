//! `disttags-cloudrun`: the container's entry point.

use std::process::ExitCode;

fn main() -> ExitCode {
    disttags_server::run(
        disttags_cloudrun::NAME,
        disttags_server::Lines::AtOnce,
        disttags_cloudrun::serve(disttags_core::Env::from_process()),
    )
}

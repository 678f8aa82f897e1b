//! `disttags-azure`: the custom handler the Functions host starts.

use std::process::ExitCode;

fn main() -> ExitCode {
    disttags_server::run(
        disttags_azure::NAME,
        disttags_server::Lines::Batched,
        disttags_azure::serve(disttags_core::Env::from_process()),
    )
}

//! The one integration-test binary: conformance cases run through every target, plus the name
//! table, log sinks and the real npm CLI.

mod cases;
mod logs;
mod names;
mod npm_cli;

use disttags_tests::TestUpstream;
use disttags_tests::target::{Target, standard_store, standard_upstream};

/// A fixture: the standard upstream, and a target of `kind` over the standard store.
pub async fn fixture(kind: &str, extra: &[(&str, &str)]) -> (Target, TestUpstream) {
    let upstream = TestUpstream::start(&standard_upstream(), true).await;
    let store = standard_store();
    let target = match kind {
        "in_process" => Target::in_process(&store, &upstream, extra).await,
        "local" => Target::local(&store, &upstream, extra).await,
        other => panic!("unknown target kind {other}"),
    };
    (target, upstream)
}

/// Declares one `#[tokio::test]` per case for each target kind, so every case runs everywhere.
macro_rules! conformance {
    ($($kind:ident),+ $(,)?) => {
        $(
            mod $kind {
                conformance!(@cases $kind:
                    stored, scoped_encoded, scoped_decoded, legacy_name, no_dist_tags,
                    corrupt_packument, upstream_only, upstream_scoped, missing_everywhere,
                    upstream_server_error, upstream_timeout, upstream_garbage, invalid_names,
                    ping, unknown_path, wrong_method, etag_and_304, no_upstream_configured,
                    base_path,
                );
            }
        )+
    };
    (@cases $kind:ident: $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::cases::$case(stringify!($kind)).await;
            }
        )+
    };
}

conformance!(in_process, local);

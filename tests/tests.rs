//! The one integration-test binary: conformance cases run through every target, plus the name
//! table, log sinks and the real npm CLI.

mod auth;
mod cases;
mod faults;
mod infra;
mod lambda;
mod leaks;
mod logs;
mod names;
mod npm_cli;
mod platforms;
mod reads;
mod shutdown;
mod stores;
mod upstream;

use disttags_tests::TestUpstream;
use disttags_tests::azure_host::{HostMode, azure_target};
use disttags_tests::lambda::{EventKind, lambda_target};
use disttags_tests::target::{Target, standard_store, standard_upstream};

/// A fixture: the standard upstream, and a target of `kind` over the standard store.
pub async fn fixture(kind: &str, extra: &[(&str, &str)]) -> (Target, TestUpstream) {
    fixture_with(kind, &standard_store(), extra).await
}

/// A fixture over a store holding `store`.
pub async fn fixture_with(
    kind: &str,
    store: &[(&str, Vec<u8>)],
    extra: &[(&str, &str)],
) -> (Target, TestUpstream) {
    let upstream = TestUpstream::start(&standard_upstream(), true).await;
    let target = match kind {
        "in_process" => Target::in_process(store, &upstream, extra).await,
        "local" => Target::local(store, &upstream, extra).await,
        "cloudrun" => Target::cloudrun(store, &upstream, extra).await,
        "azure_proxy" => azure_target(HostMode::Proxy, store, &upstream, extra).await,
        "azure_envelope" => azure_target(HostMode::Envelope, store, &upstream, extra).await,
        "lambda_rest" => lambda_target(EventKind::RestV1, store, &upstream, extra).await,
        "lambda_http" => lambda_target(EventKind::HttpV2, store, &upstream, extra).await,
        "lambda_alb" => lambda_target(EventKind::Alb, store, &upstream, extra).await,
        "lambda_url" => lambda_target(EventKind::FunctionUrl, store, &upstream, extra).await,
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
                    base_path, identity_in_log_event, store_failure,
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

conformance!(
    in_process,
    local,
    cloudrun,
    azure_proxy,
    azure_envelope,
    lambda_rest,
    lambda_http,
    lambda_alb,
    lambda_url,
);

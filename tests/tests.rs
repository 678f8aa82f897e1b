//! The one integration-test binary. `conformance::{case}::{shim}::{store}` runs each case of
//! `cases.rs` in-process through every shim's library over every store; `processes::{case}::{shim}::{store}`
//! runs it through every shim's real binary over the file store and S3 on moto. The other modules
//! are the platform-edge and store-only tests (start-up, signals, ports, emulators stopped, …).

mod auth;
mod cases;
mod faults;
mod infra;
mod lambda;
mod leaks;
mod logs;
mod names;
mod npm_cli;
mod observability;
mod platforms;
mod pressure;
mod readme;
mod reads;
mod shutdown;
mod stores;
mod upstream;
mod writes;

use disttags_tests::TestUpstream;
use disttags_tests::matrix::{Fixture, Shim};
use disttags_tests::target::{Target, standard_store};

/// The shim as users run it (its binary over a file store; the core in-process over memory), over
/// the standard store, with the standard upstream.
pub async fn fixture(shim: Shim, extra: &[(&str, &str)]) -> (Target, TestUpstream) {
    Fixture::of(shim).start_with(&standard_store(), extra).await
}

/// [`fixture`] over a store holding `store`.
pub async fn fixture_with(
    shim: Shim,
    store: &[(&str, Vec<u8>)],
    extra: &[(&str, &str)],
) -> (Target, TestUpstream) {
    Fixture::of(shim).start_with(store, extra).await
}

/// One `#[tokio::test]` per case × shim × store, as `{case}::{shim}::{store}`.
macro_rules! matrix {
    ($via:ident, $shims:tt, $stores:tt, [$($case:ident),+ $(,)?]) => {
        $(
            mod $case {
                matrix!(@shims $via, $case, $stores, $shims);
            }
        )+
    };
    (@shims $via:ident, $case:ident, $stores:tt, [$($shim:ident),+ $(,)?]) => {
        $(
            mod $shim {
                matrix!(@stores $via, $case, $shim, $stores);
            }
        )+
    };
    (@stores $via:ident, $case:ident, $shim:ident, [$($store:ident),+ $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $store() {
                use disttags_tests::matrix::{Fixture, Via, shim, store};
                crate::cases::$case(Fixture::new(Via::$via, shim::$shim, store::$store)).await;
            }
        )+
    };
}

/// Every case that reads a store: written once, in `cases.rs`.
macro_rules! store_cases {
    ($via:ident, $shims:tt, $stores:tt) => {
        matrix!(
            $via,
            $shims,
            $stores,
            [
                stored,
                scoped_encoded,
                scoped_decoded,
                legacy_name,
                no_dist_tags,
                corrupt_packument,
                upstream_only,
                upstream_scoped,
                missing_everywhere,
                upstream_server_error,
                upstream_timeout,
                upstream_garbage,
                invalid_names,
                ping,
                unknown_path,
                wrong_method,
                etag_and_304,
                no_upstream_configured,
                base_path,
                identity_in_log_event,
            ]
        );
        // A store whose every request fails: the store axis is that broken store.
        matrix!($via, $shims, [broken_s3], [store_failure]);
    };
}

/// Every tag-write case: written once, in `cases.rs`, run on the stores that take conditional
/// writes here (moto too: these cases write one at a time).
macro_rules! write_cases {
    ($via:ident, $shims:tt, $stores:tt) => {
        matrix!(
            $via,
            $shims,
            $stores,
            [
                tag_add_and_remove,
                tag_scoped,
                tag_write_refusals,
                writes_off
            ]
        );
    };
}

/// The shims behind a platform authorizer, and those of one via only (`$more`).
macro_rules! guarded_write_cases {
    ($via:ident, [$($more:ident),* $(,)?], $stores:tt) => {
        matrix!(
            $via,
            [
                azure_proxy,
                azure_envelope,
                lambda_rest,
                lambda_http,
                lambda_alb,
                lambda_url
                $(, $more)*
            ],
            $stores,
            [platform_writes]
        );
    };
}

/// Every case of `cases.rs` through `$shims`: the reads over `$reads`, the tag writes over `$writes`
/// (the stores that take conditional writes here; GCS's emulator does not).
macro_rules! every_case {
    ($via:ident, $shims:tt, reads: $reads:tt, writes: $writes:tt) => {
        store_cases!($via, $shims, $reads);
        write_cases!($via, $shims, $writes);
    };
}

/// In-process through each shim's library, over every store.
mod conformance {
    every_case!(
        Library,
        [
            core,
            local,
            cloudrun,
            azure_proxy,
            azure_envelope,
            lambda_rest,
            lambda_http,
            lambda_alb,
            lambda_url
        ],
        reads: [memory, file, s3_moto, s3_seaweedfs, azurite, gcs],
        writes: [memory, file, s3_moto, s3_seaweedfs, azurite]
    );
    guarded_write_cases!(Library, [], [memory, file]);
    // Racing writers, on every store whose conditional write is atomic under concurrency (moto's
    // check is not); the shim does not matter to a race in the store.
    matrix!(
        Library,
        [core],
        [memory, file, s3_seaweedfs, azurite],
        [concurrent_tag_writes]
    );
}

/// Through each shim's real binary, behind its platform's front end.
mod processes {
    every_case!(
        Binary,
        [
            local,
            cloudrun,
            azure_proxy,
            azure_envelope,
            lambda_rest,
            lambda_http,
            lambda_alb,
            lambda_url,
            lambda_cargo
        ],
        reads: [file, s3_moto],
        writes: [file, s3_moto]
    );
    // cargo-lambda's emulator is a real front end: a process, with no library twin.
    guarded_write_cases!(Binary, [lambda_cargo], [file]);
}

//! disttags-core: the npm `GET /-/package/{name}/dist-tags` endpoint, provider-neutral.
//!
//! [`App::handle`] takes a plain `http::Request` and always returns a response. Storage is any
//! `object_store::ObjectStore`; the upstream registry and the log sink are small traits. Shims turn
//! their platform's events into requests and put a [`RequestContext`] in the request's extensions.
//! Each module has one job, named by its file; this page re-exports what shims and tests use. Three
//! modules stay public as a whole: `extract` (the benches and the fuzz crate), `tls` and `vars`
//! (the variable table the shims read their own variables from).

mod answer;
mod app;
mod auth;
mod build;
mod cache;
mod config;
mod digest;
mod edit;
mod error;
pub mod extract;
mod files;
mod ids;
mod log;
mod lookup;
mod names;
mod read;
mod redact;
mod route;
mod sources;
mod store;
mod tags;
pub mod telemetry;
pub mod tls;
mod upstream;
pub mod vars;
mod via;
mod write;

pub use answer::json_response;
pub use app::{App, RequestContext};
pub use auth::{Auth, Denied, Grant, Writes};
pub use build::{build_store, http_client};
pub use cache::MIN_ENTRY_BYTES;
pub use config::{Config, Defaults, LogTarget, Timeouts};
pub use digest::sha256;
pub use edit::Unwritable;
pub use error::{ConfigError, Error};
pub use extract::{DistTags, ExtractError, Extractor};
pub use log::{HttpSink, Identity, Level, LogEvent, LogSink, StdoutSink};
pub use names::{InvalidName, MAX_NAME_LEN, PackageName};
pub use read::{PREFIX_BYTES, ReadPolicy, StoreStats};
pub use sources::Sources;
pub use store::Store;
pub use tags::{InvalidTag, MAX_WRITE_BODY};
pub use upstream::{Fetched, HttpUpstream, Stale, Upstream};
pub use vars::Env;
pub use via::deployment_name;
pub use write::put_packument;

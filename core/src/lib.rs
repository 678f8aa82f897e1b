//! disttags-core: the npm `GET /-/package/{name}/dist-tags` endpoint, provider-neutral.
//!
//! [`App::handle`] takes a plain `http::Request` and always returns a response. Storage is any
//! `object_store::ObjectStore`; the upstream registry and the log sink are small traits. Shims turn
//! their platform's events into requests and put a [`RequestContext`] in the request's extensions.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod log;
pub mod names;
pub mod tls;
pub mod upstream;
pub mod via;

pub use app::{App, RequestContext, Store, StoreStats};
pub use config::{Config, ConfigError, Defaults};
pub use error::Error;
pub use extract::{DistTags, ExtractError, Extractor};
pub use log::{Identity, Level, LogEvent, LogSink};
pub use names::{InvalidName, PackageName};
pub use upstream::{HttpUpstream, Upstream};

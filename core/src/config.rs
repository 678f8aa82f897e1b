//! Configuration from environment-style pairs, and the clients it builds once per process.
//!
//! [`Config::from_vars`] takes the pairs as an iterator so that tests pass their own; `main` passes
//! `std::env::vars()`. A variable that is set but malformed is an error, never a silent default.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use url::Url;

use crate::app::{App, Store};
use crate::auth::Auth;
use crate::log::{HttpSink, LogSink, StdoutSink};
use crate::upstream::{HttpUpstream, Upstream};

/// Every variable the program reads itself (store credentials come from the provider's own variables).
pub const VARIABLES: &[&str] = &[
    "DISTTAGS_STORE",
    "DISTTAGS_UPSTREAM",
    "DISTTAGS_LOG",
    "DISTTAGS_LOG_TOKEN",
    "DISTTAGS_BASE_PATH",
    "DISTTAGS_LISTEN",
    "DISTTAGS_UPSTREAM_CONNECT_TIMEOUT_MS",
    "DISTTAGS_UPSTREAM_TIMEOUT_MS",
    "DISTTAGS_STORE_CONNECT_TIMEOUT_MS",
    "DISTTAGS_STORE_TIMEOUT_MS",
    "DISTTAGS_STORE_RETRY_MS",
    "DISTTAGS_LOG_TIMEOUT_MS",
    "DISTTAGS_UPSTREAM_CACHE_MS",
    // Read by disttags serve only.
    "DISTTAGS_HEADER_TIMEOUT_MS",
    "DISTTAGS_AUTH_TOKENS",
    "DISTTAGS_AUTH_TOKENS_FILE",
    // Read by disttags-cloudrun only.
    "DISTTAGS_IDENTITY_PROXY",
    "bucket",
    "region",
    "registry",
];

/// A configuration mistake, worded as the one line that tells the operator what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// Where log events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// JSON lines on standard output.
    Stdout,
    /// Dropped.
    None,
    /// POSTed to this URL.
    Http(Url),
}

/// Every timeout and retry budget, each with a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting to the upstream registry (`DISTTAGS_UPSTREAM_CONNECT_TIMEOUT_MS`, 3000).
    pub upstream_connect: Duration,
    /// A whole upstream call, body included (`DISTTAGS_UPSTREAM_TIMEOUT_MS`, 10000).
    pub upstream_total: Duration,
    /// Connecting to a cloud store (`DISTTAGS_STORE_CONNECT_TIMEOUT_MS`, 2000).
    pub store_connect: Duration,
    /// One store request, body included, and one lookup's store reads in all (`DISTTAGS_STORE_TIMEOUT_MS`, 30000).
    pub store_total: Duration,
    /// Time within which failed store requests are retried (`DISTTAGS_STORE_RETRY_MS`, 3000).
    pub store_retry: Duration,
    /// One POST to the HTTP log sink (`DISTTAGS_LOG_TIMEOUT_MS`, 2000).
    pub log_total: Duration,
    /// How long an upstream answer is reused, capped by its `Cache-Control` (`DISTTAGS_UPSTREAM_CACHE_MS`, 30000; 0 disables).
    pub upstream_cache: Duration,
    /// `disttags serve` only: how long a connection may take to send a request head, idle
    /// kept-alive time included (`DISTTAGS_HEADER_TIMEOUT_MS`, 75000; 0: no limit). Longer than the
    /// 60 s that AWS load balancers and nginx keep idle connections, so a proxy in front closes
    /// first and never sends a request on a connection this server is closing.
    pub header_read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            upstream_connect: Duration::from_millis(3000),
            upstream_total: Duration::from_millis(10_000),
            store_connect: Duration::from_millis(2000),
            store_total: Duration::from_millis(30_000),
            store_retry: Duration::from_millis(3000),
            log_total: Duration::from_millis(2000),
            upstream_cache: Duration::from_millis(30_000),
            header_read: Duration::from_millis(75_000),
        }
    }
}

/// What a shim assumes when a variable is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// The store when `DISTTAGS_STORE` (and codebox's `bucket`) are unset; `None` makes it required.
    pub store: Option<&'static str>,
}

impl Defaults {
    /// The local server: an embedded file store in `./data`.
    pub const LOCAL: Self = Self {
        store: Some("file://./data"),
    };
    /// Cloud shims: the store must be configured.
    pub const CLOUD: Self = Self { store: None };
}

/// The whole configuration of a process.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Store URL (`DISTTAGS_STORE`).
    pub store: String,
    /// Provider variables for the store (`AWS_*`, `GOOGLE_*`, `AZURE_*`), lower-cased keys.
    pub store_options: Vec<(String, String)>,
    /// Upstream registry base URL, if any.
    pub upstream: Option<Url>,
    /// Log sink.
    pub log: LogTarget,
    /// Bearer token for the HTTP log sink (`DISTTAGS_LOG_TOKEN`).
    pub log_token: Option<String>,
    /// Path prefix the registry is served under (`DISTTAGS_BASE_PATH`), `/` when none.
    pub base_path: String,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Accepted bearer tokens (`DISTTAGS_AUTH_TOKENS`, `DISTTAGS_AUTH_TOKENS_FILE`); empty: open.
    pub auth: Auth,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Store options and the log token carry credentials: only their keys are shown.
        f.debug_struct("Config")
            .field("store", &self.store)
            .field(
                "store_options",
                &self
                    .store_options
                    .iter()
                    .map(|(k, _)| k)
                    .collect::<Vec<_>>(),
            )
            .field("upstream", &self.upstream.as_ref().map(redacted_url))
            .field("log", &self.log)
            .field("base_path", &self.base_path)
            .field("timeouts", &self.timeouts)
            .field("auth", &self.auth.is_enabled())
            .finish_non_exhaustive()
    }
}

/// `url` without its credentials and query, as it may be printed or hashed.
pub(crate) fn redacted_url(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.set_query(None);
    url.to_string()
}

impl Config {
    /// Reads the configuration from environment-style pairs.
    pub fn from_vars<I, K, V>(vars: I, defaults: Defaults) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let get = |key: &str| vars.get(key).map(String::as_str).filter(|v| !v.is_empty());

        let store = match (get("DISTTAGS_STORE"), get("bucket")) {
            (Some(url), _) => url.to_owned(),
            (None, Some(bucket)) => format!("s3://{bucket}"),
            (None, None) => defaults
                .store
                .ok_or_else(|| bad("DISTTAGS_STORE is not set: set it to the store URL, e.g. s3://my-bucket, gs://my-bucket or az://my-container"))?
                .to_owned(),
        };
        let mut store_options: Vec<(String, String)> = vars
            .iter()
            .filter(|(k, _)| {
                ["AWS_", "GOOGLE_", "AZURE_"]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        if let (None, Some(region)) = (get("AWS_REGION"), get("region")) {
            store_options.push(("aws_region".into(), region.to_owned()));
        }
        // Azure Functions and App Service hand the managed identity's endpoint over as
        // IDENTITY_ENDPOINT (MSI_ENDPOINT on older hosts), not under an AZURE_ name; without it
        // object_store would ask the VM metadata address, which those platforms do not serve.
        if get("AZURE_MSI_ENDPOINT").is_none()
            && let Some(endpoint) = get("IDENTITY_ENDPOINT").or(get("MSI_ENDPOINT"))
        {
            store_options.push(("azure_msi_endpoint".into(), endpoint.to_owned()));
        }

        let upstream = match get("DISTTAGS_UPSTREAM").or(get("registry")) {
            Some("off") => None,
            Some(url) => Some(parse_http_url("DISTTAGS_UPSTREAM", url)?),
            None => npm_registry(&vars)?,
        };

        let log = match get("DISTTAGS_LOG") {
            None | Some("stdout") => LogTarget::Stdout,
            Some("none") => LogTarget::None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                LogTarget::Http(parse_http_url("DISTTAGS_LOG", url)?)
            }
            Some(other) => {
                return Err(bad(format!(
                    "DISTTAGS_LOG={other:?} is not valid: use stdout, none, or an http(s):// URL"
                )));
            }
        };

        let base_path = match get("DISTTAGS_BASE_PATH") {
            None => "/".to_owned(),
            Some(p) if p.starts_with('/') && !p.contains(['?', '#', '%']) => {
                format!("/{}", p.trim_matches('/')).replace("//", "/")
            }
            Some(p) => {
                return Err(bad(format!(
                    "DISTTAGS_BASE_PATH={p:?} is not valid: use a path such as /registry"
                )));
            }
        };

        let d = Timeouts::default();
        let ms = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| {
                        *n > 0
                            || key == "DISTTAGS_UPSTREAM_CACHE_MS"
                            || key == "DISTTAGS_HEADER_TIMEOUT_MS"
                    })
                    .map(Duration::from_millis)
                    .ok_or_else(|| {
                        bad(format!(
                            "{key}={v:?} is not valid: use a whole number of milliseconds"
                        ))
                    }),
            }
        };
        let timeouts = Timeouts {
            upstream_connect: ms("DISTTAGS_UPSTREAM_CONNECT_TIMEOUT_MS", d.upstream_connect)?,
            upstream_total: ms("DISTTAGS_UPSTREAM_TIMEOUT_MS", d.upstream_total)?,
            store_connect: ms("DISTTAGS_STORE_CONNECT_TIMEOUT_MS", d.store_connect)?,
            store_total: ms("DISTTAGS_STORE_TIMEOUT_MS", d.store_total)?,
            store_retry: ms("DISTTAGS_STORE_RETRY_MS", d.store_retry)?,
            log_total: ms("DISTTAGS_LOG_TIMEOUT_MS", d.log_total)?,
            upstream_cache: ms("DISTTAGS_UPSTREAM_CACHE_MS", d.upstream_cache)?,
            header_read: ms("DISTTAGS_HEADER_TIMEOUT_MS", d.header_read)?,
        };

        let mut auth = match get("DISTTAGS_AUTH_TOKENS") {
            Some(list) => Auth::parse(list, "DISTTAGS_AUTH_TOKENS").map_err(bad)?,
            None => Auth::default(),
        };
        if let Some(path) = get("DISTTAGS_AUTH_TOKENS_FILE") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(format!("DISTTAGS_AUTH_TOKENS_FILE={path}: {e}")))?;
            auth.extend(Auth::parse(&text, path).map_err(bad)?);
            if !auth.is_enabled() {
                return Err(bad(format!(
                    "DISTTAGS_AUTH_TOKENS_FILE={path} holds no token hash"
                )));
            }
        }

        Ok(Self {
            auth,
            store,
            store_options,
            upstream,
            log,
            log_token: get("DISTTAGS_LOG_TOKEN").map(str::to_owned),
            base_path,
            timeouts,
        })
    }

    /// Values that must never appear in a response or a log line.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .store_options
            .iter()
            .filter(|(k, _)| {
                ["secret", "key", "token", "sas", "password", "credential"]
                    .iter()
                    .any(|w| k.contains(w))
                    && !k.ends_with("_id")
            })
            .map(|(_, v)| v.clone())
            .chain(self.log_token.clone())
            .chain(
                self.upstream
                    .iter()
                    .filter_map(|u| u.password().map(str::to_owned)),
            )
            .filter(|s| s.len() >= 4)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets
    }

    /// Builds the store this configuration names.
    pub fn build_store(&self) -> Result<Store, ConfigError> {
        build_store(&self.store, &self.store_options, &self.timeouts)
    }

    /// Builds the upstream client, if an upstream is configured.
    pub fn build_upstream(&self) -> Result<Option<Arc<dyn Upstream>>, ConfigError> {
        let Some(base) = &self.upstream else {
            return Ok(None);
        };
        crate::tls::install();
        let client = reqwest::Client::builder()
            .connect_timeout(self.timeouts.upstream_connect)
            .timeout(self.timeouts.upstream_total)
            .user_agent(concat!("disttags/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(format!("cannot build the upstream HTTP client: {e}")))?;
        Ok(Some(Arc::new(HttpUpstream::new(
            client,
            base,
            self.timeouts.upstream_cache,
            self.timeouts.upstream_total,
        ))))
    }

    /// Builds the log sink; must be called inside a Tokio runtime (the HTTP sink starts a task).
    pub fn build_log_sink(&self) -> Result<Arc<dyn LogSink>, ConfigError> {
        Ok(match &self.log {
            LogTarget::Stdout => Arc::new(StdoutSink),
            LogTarget::None => Arc::new(()),
            LogTarget::Http(url) => {
                crate::tls::install();
                let client = reqwest::Client::builder()
                    .connect_timeout(self.timeouts.log_total)
                    .build()
                    .map_err(|e| bad(format!("cannot build the log HTTP client: {e}")))?;
                Arc::new(HttpSink::new(
                    client,
                    url.clone(),
                    self.log_token.clone(),
                    self.timeouts.log_total,
                ))
            }
        })
    }

    /// Builds the whole application: store, upstream and log sink, once per process.
    pub fn build_app(&self) -> Result<App, ConfigError> {
        self.app_with_log(self.build_log_sink()?)
    }

    /// Builds the application with a log sink of the caller's (tests and embedders collect events).
    pub fn app_with_log(&self, log: Arc<dyn LogSink>) -> Result<App, ConfigError> {
        Ok(App::new(self.build_store()?, self.build_upstream()?, log)
            .with_base_path(&self.base_path)
            .with_secrets(self.secrets())
            .with_auth(self.auth.clone())
            .with_store_timeout(self.timeouts.store_total)
            .with_via_name(crate::via::deployment_name(
                &self.store,
                self.upstream.as_ref(),
                &self.base_path,
            )))
    }
}

fn parse_http_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    match Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        _ => Err(bad(format!(
            "{key} is not valid: use an http:// or https:// URL"
        ))),
    }
}

/// The registry npm itself is configured with: `npm_config_registry`, else `registry=` in the user's npmrc.
fn npm_registry(vars: &BTreeMap<String, String>) -> Result<Option<Url>, ConfigError> {
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, v)| k.eq_ignore_ascii_case(name) && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    if let Some(url) = lookup("npm_config_registry") {
        return parse_http_url("npm_config_registry", url).map(Some);
    }
    let path = match (lookup("npm_config_userconfig"), vars.get("HOME")) {
        (Some(path), _) => PathBuf::from(path),
        (None, Some(home)) => PathBuf::from(home).join(".npmrc"),
        (None, None) => return Ok(None),
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with(['#', ';']) {
            continue;
        }
        if let Some((key, value)) = line.split_once('=')
            && key.trim() == "registry"
        {
            let value = expand_env(value.trim().trim_matches('"'), vars);
            return parse_http_url(&format!("registry in {}", path.display()), &value).map(Some);
        }
    }
    Ok(None)
}

/// npm's `${VAR}` expansion in npmrc values.
fn expand_env(value: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = &rest[start + 2..start + end];
        out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Builds a store from its URL and provider options, with our timeouts and retry budget.
pub fn build_store(
    url: &str,
    options: &[(String, String)],
    timeouts: &Timeouts,
) -> Result<Store, ConfigError> {
    if url == "memory://" || url == "memory:///" {
        return Ok(Store::objects(Arc::new(InMemory::new())));
    }
    if let Some(path) = url.strip_prefix("file://") {
        let path = if path.is_empty() { "." } else { path };
        std::fs::create_dir_all(path).map_err(|e| {
            bad(format!(
                "DISTTAGS_STORE={url}: cannot create the directory: {e}"
            ))
        })?;
        let store = LocalFileSystem::new_with_prefix(path)
            .map_err(|e| bad(format!("DISTTAGS_STORE={url}: {e}")))?;
        return Ok(Store::files(Arc::new(store)));
    }
    let parsed = Url::parse(url).map_err(|_| {
        bad(format!(
            "DISTTAGS_STORE={url:?} is not a URL: use file:///path, memory://, s3://bucket, gs://bucket or az://container"
        ))
    })?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad(format!(
            "DISTTAGS_STORE={url}: the bucket or container name is missing"
        )));
    }
    crate::tls::install();
    let client = ClientOptions::new()
        .with_timeout(timeouts.store_total)
        .with_connect_timeout(timeouts.store_connect);
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(1000),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: timeouts.store_retry,
    };
    let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match parsed.scheme() {
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::new()
                .with_client_options(client)
                .with_retry(retry);
            for (k, v) in options.iter().filter(|(k, _)| k.starts_with("aws_")) {
                if let Ok(key) = k.parse::<AmazonS3ConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            b.with_url(url).build().map(|s| Arc::new(s) as _)
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::new()
                .with_client_options(client)
                .with_retry(retry);
            for (k, v) in options.iter().filter(|(k, _)| k.starts_with("google_")) {
                if let Ok(key) = k.parse::<GoogleConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            b.with_url(url).build().map(|s| Arc::new(s) as _)
        }
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            let mut b = MicrosoftAzureBuilder::new()
                .with_client_options(client)
                .with_retry(retry);
            for (k, v) in options.iter().filter(|(k, _)| k.starts_with("azure_")) {
                if let Ok(key) = k.parse::<AzureConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            b.with_url(url).build().map(|s| Arc::new(s) as _)
        }
        other => {
            return Err(bad(format!(
                "DISTTAGS_STORE scheme {other}:// is not supported: use file://, memory://, s3://, gs:// or az://"
            )));
        }
    };
    built
        .map(Store::objects)
        .map_err(|e| bad(format!("DISTTAGS_STORE={url}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(pairs.iter().copied(), Defaults::LOCAL)
    }

    #[test]
    fn defaults_and_codebox_names() {
        let c = cfg(&[]).expect("defaults");
        assert_eq!(c.store, "file://./data");
        assert_eq!(c.upstream, None);
        assert_eq!(c.log, LogTarget::Stdout);
        let c = cfg(&[
            ("bucket", "b1"),
            ("region", "eu-west-1"),
            ("registry", "http://127.0.0.1:9/"),
        ])
        .expect("codebox");
        assert_eq!(c.store, "s3://b1");
        assert!(
            c.store_options
                .contains(&("aws_region".into(), "eu-west-1".into()))
        );
        assert_eq!(
            c.upstream.as_ref().map(Url::as_str),
            Some("http://127.0.0.1:9/")
        );
        assert!(
            Config::from_vars(Vec::<(String, String)>::new(), Defaults::CLOUD)
                .expect_err("cloud needs a store")
                .0
                .contains("DISTTAGS_STORE")
        );
    }

    #[test]
    fn azure_functions_managed_identity_reaches_the_store() {
        let c = cfg(&[
            ("DISTTAGS_STORE", "az://packuments"),
            ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/msi/token"),
        ])
        .expect("config");
        assert!(c.store_options.contains(&(
            "azure_msi_endpoint".into(),
            "http://127.0.0.1:41741/msi/token".into()
        )));
        assert!(
            "azure_msi_endpoint".parse::<AzureConfigKey>().is_ok(),
            "object_store takes this key"
        );
        let explicit = cfg(&[
            ("AZURE_MSI_ENDPOINT", "http://127.0.0.1:1/token"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:2/token"),
        ])
        .expect("config");
        assert!(
            !explicit
                .store_options
                .iter()
                .any(|(_, v)| v == "http://127.0.0.1:2/token"),
            "an explicit AZURE_MSI_ENDPOINT wins"
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        assert!(cfg(&[("DISTTAGS_UPSTREAM", "ftp://x")]).is_err());
        assert!(cfg(&[("DISTTAGS_LOG", "syslog")]).is_err());
        assert!(cfg(&[("DISTTAGS_UPSTREAM_TIMEOUT_MS", "soon")]).is_err());
        assert!(cfg(&[("DISTTAGS_BASE_PATH", "registry")]).is_err());
        assert_eq!(
            cfg(&[("DISTTAGS_BASE_PATH", "/registry/")])
                .expect("ok")
                .base_path,
            "/registry"
        );
    }

    #[test]
    fn upstream_from_npm_configuration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().to_str().expect("utf-8").to_owned();
        std::fs::write(
            dir.path().join(".npmrc"),
            "; comment\nregistry = http://127.0.0.1:${PORT}/npm/\n",
        )
        .expect("write npmrc");
        let c = cfg(&[("HOME", &home), ("PORT", "4000")]).expect("npmrc");
        assert_eq!(
            c.upstream.as_ref().map(Url::as_str),
            Some("http://127.0.0.1:4000/npm/")
        );
        let c = cfg(&[
            ("HOME", &home),
            ("NPM_CONFIG_REGISTRY", "http://127.0.0.1:5/"),
        ])
        .expect("env");
        assert_eq!(
            c.upstream.as_ref().map(Url::as_str),
            Some("http://127.0.0.1:5/")
        );
        let c = cfg(&[("HOME", &home), ("DISTTAGS_UPSTREAM", "off")]).expect("off");
        assert_eq!(c.upstream, None);
    }

    #[test]
    fn store_urls() {
        let t = Timeouts::default();
        assert!(build_store("memory://", &[], &t).is_ok());
        assert!(
            build_store("ftp://x", &[], &t)
                .expect_err("scheme")
                .0
                .contains("not supported")
        );
        assert!(build_store("s3://", &[], &t).is_err());
        let opts = vec![
            ("aws_access_key_id".to_owned(), "AKIDEXAMPLE".to_owned()),
            (
                "aws_secret_access_key".to_owned(),
                "sekrit-value".to_owned(),
            ),
            (
                "aws_ca_bundle".to_owned(),
                "/etc/ssl/certs/ca-certificates.crt".to_owned(),
            ),
        ];
        assert!(
            build_store("s3://bucket", &opts, &t).is_ok(),
            "unknown AWS_ variables are ignored"
        );
    }

    #[test]
    fn secrets_are_collected_and_debug_hides_them() {
        let c = cfg(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("DISTTAGS_LOG_TOKEN", "log-token-1"),
        ])
        .expect("ok");
        let secrets = c.secrets();
        assert!(secrets.contains(&"very-secret".to_owned()));
        assert!(secrets.contains(&"log-token-1".to_owned()));
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}

//! Configuration: environment-style pairs and the files they name, parsed into a [`Config`].
//!
//! [`Config::from_vars`] takes the pairs as an iterator so that tests pass their own; `main` passes
//! the process environment. A variable that is set but malformed is an error, never a silent
//! default. Building clients from a configuration is the job of `build.rs`.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::auth::{Auth, Writes};
use crate::error::ConfigError;
use crate::redact::redacted_url;
use crate::sources::{Sources, npm_variable};
use crate::vars::{self, Env};

fn bad(message: impl Into<String>) -> ConfigError {
    ConfigError::new(message)
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

/// Every timeout and retry budget of the core, each with its default from [`crate::vars`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// One request's budget: store lookup, upstream call and their retries, or one tag write.
    pub request: Duration,
    /// Connecting to the upstream registry.
    pub upstream_connect: Duration,
    /// One upstream lookup, every request and retry included.
    pub upstream_total: Duration,
    /// Connecting to a cloud store.
    pub store_connect: Duration,
    /// One store request, body included, and one lookup's store reads in all.
    pub store_total: Duration,
    /// Time within which failed store requests are retried.
    pub store_retry: Duration,
    /// One POST to the HTTP log sink.
    pub log_total: Duration,
    /// How long an upstream answer is reused, capped by its `Cache-Control` (zero: not reused).
    pub upstream_cache: Duration,
    /// How long after the upstream gave an answer it is served when the upstream fails (zero: never).
    pub stale_if_error: Duration,
    /// How long tags read from the store are served without asking it again (zero: always ask).
    pub revalidate: Duration,
}

impl Timeouts {
    /// Reads each bound from `env`, its default where unset.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            request: env.millis(&vars::REQUEST_TIMEOUT_MS)?,
            upstream_connect: env.millis(&vars::UPSTREAM_CONNECT_TIMEOUT_MS)?,
            upstream_total: env.millis(&vars::UPSTREAM_TIMEOUT_MS)?,
            store_connect: env.millis(&vars::STORE_CONNECT_TIMEOUT_MS)?,
            store_total: env.millis(&vars::STORE_TIMEOUT_MS)?,
            store_retry: env.millis(&vars::STORE_RETRY_MS)?,
            log_total: env.millis(&vars::LOG_TIMEOUT_MS)?,
            upstream_cache: env.millis(&vars::UPSTREAM_CACHE_MS)?,
            stale_if_error: env.millis(&vars::STALE_IF_ERROR_MS)?,
            revalidate: env.millis(&vars::REVALIDATE_MS)?,
        })
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request: vars::REQUEST_TIMEOUT_MS.default_duration(),
            upstream_connect: vars::UPSTREAM_CONNECT_TIMEOUT_MS.default_duration(),
            upstream_total: vars::UPSTREAM_TIMEOUT_MS.default_duration(),
            store_connect: vars::STORE_CONNECT_TIMEOUT_MS.default_duration(),
            store_total: vars::STORE_TIMEOUT_MS.default_duration(),
            store_retry: vars::STORE_RETRY_MS.default_duration(),
            log_total: vars::LOG_TIMEOUT_MS.default_duration(),
            upstream_cache: vars::UPSTREAM_CACHE_MS.default_duration(),
            stale_if_error: vars::STALE_IF_ERROR_MS.default_duration(),
            revalidate: vars::REVALIDATE_MS.default_duration(),
        }
    }
}

/// What a shim assumes when a variable is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// The store when `DISTTAGS_STORE` (and codebox's `bucket`) are unset; `None` makes it required.
    pub store: Option<&'static str>,
    /// Whether the platform's authorizer guards the write routes, so that `DISTTAGS_WRITES=on`
    /// needs no write token (Lambda behind API Gateway, Azure Functions).
    pub platform_guards_writes: bool,
}

impl Defaults {
    /// The local server: an embedded file store in `./data`.
    pub const LOCAL: Self = Self {
        store: Some("file://./data"),
        platform_guards_writes: false,
    };
    /// Cloud shims: the store must be configured; writes need a write token (Cloud Run).
    pub const CLOUD: Self = Self {
        store: None,
        platform_guards_writes: false,
    };
    /// Cloud shims behind a platform authorizer (Lambda, Azure Functions): the store must be
    /// configured, and the authorizer decides who writes.
    pub const GUARDED: Self = Self {
        store: None,
        platform_guards_writes: true,
    };
}

/// The whole configuration of the core in one process.
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
    /// Bytes each of the two caches may hold (`DISTTAGS_CACHE_MB`).
    pub cache_bytes: u64,
    /// Accepted bearer tokens: read tokens (`DISTTAGS_AUTH_TOKENS`, `DISTTAGS_AUTH_TOKENS_FILE`;
    /// none: reads are open) and write tokens (`DISTTAGS_WRITE_TOKENS`, `…_FILE`).
    pub auth: Auth,
    /// Who may change tags (`DISTTAGS_WRITES`).
    pub writes: Writes,
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
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads the configuration from environment-style pairs and the files they name.
    pub fn from_vars<I, K, V>(vars: I, defaults: Defaults) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::from_env(&Env::new(vars), defaults)
    }

    /// [`Self::from_vars`] over pairs already collected: checks the names, reads the files, parses.
    pub fn from_env(env: &Env, defaults: Defaults) -> Result<Self, ConfigError> {
        env.check_names()?;
        Self::parse(env, &Sources::read(env)?, defaults)
    }

    /// Parses pairs whose files have been read already; reads nothing itself.
    pub fn parse(env: &Env, sources: &Sources, defaults: Defaults) -> Result<Self, ConfigError> {
        let store = match (env.get(&vars::STORE), env.get(&vars::CODEBOX_BUCKET)) {
            (Some(url), _) => url.to_owned(),
            (None, Some(bucket)) => format!("s3://{bucket}"),
            (None, None) => defaults
                .store
                .ok_or_else(|| bad("DISTTAGS_STORE is not set: set it to the store URL, e.g. s3://my-bucket, gs://my-bucket or az://my-container"))?
                .to_owned(),
        };
        let mut store_options: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| {
                ["AWS_", "GOOGLE_", "AZURE_"]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        if let (None, Some(region)) = (env.raw("AWS_REGION"), env.get(&vars::CODEBOX_REGION)) {
            store_options.push(("aws_region".into(), region.to_owned()));
        }
        // Azure Functions and App Service hand the managed identity's endpoint over as
        // IDENTITY_ENDPOINT (MSI_ENDPOINT on older hosts), not under an AZURE_ name; without it
        // object_store would ask the VM metadata address, which those platforms do not serve.
        if env.raw("AZURE_MSI_ENDPOINT").is_none()
            && let Some(endpoint) = env
                .get(&vars::IDENTITY_ENDPOINT)
                .or(env.get(&vars::MSI_ENDPOINT))
        {
            store_options.push(("azure_msi_endpoint".into(), endpoint.to_owned()));
        }

        let upstream = match env
            .get(&vars::UPSTREAM)
            .or(env.get(&vars::CODEBOX_REGISTRY))
        {
            Some("off") => None,
            Some(url) => Some(parse_http_url(vars::UPSTREAM.name, url)?),
            None => npm_registry(env, sources)?,
        };

        let log = match env.get(&vars::LOG) {
            None | Some("stdout") => LogTarget::Stdout,
            Some("none") => LogTarget::None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                LogTarget::Http(parse_http_url(vars::LOG.name, url)?)
            }
            Some(other) => {
                return Err(bad(format!(
                    "DISTTAGS_LOG={other:?} is not valid: use stdout, none, or an http(s):// URL"
                )));
            }
        };

        let base_path = match env.get(&vars::BASE_PATH) {
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

        let mut auth = match env.get(&vars::AUTH_TOKENS) {
            Some(list) => Auth::parse(list, vars::AUTH_TOKENS.name).map_err(bad)?,
            None => Auth::default(),
        };
        if let Some((path, text)) = &sources.token_file {
            auth.extend(Auth::parse(text, path).map_err(bad)?);
            if !auth.is_enabled() {
                return Err(bad(format!(
                    "DISTTAGS_AUTH_TOKENS_FILE={path} holds no token hash"
                )));
            }
        }

        if let Some(list) = env.get(&vars::WRITE_TOKENS) {
            auth.extend(Auth::parse_writers(list, vars::WRITE_TOKENS.name).map_err(bad)?);
        }
        if let Some((path, text)) = &sources.write_token_file {
            let writers = Auth::parse_writers(text, path).map_err(bad)?;
            if !writers.has_writers() {
                return Err(bad(format!(
                    "DISTTAGS_WRITE_TOKENS_FILE={path} holds no token hash"
                )));
            }
            auth.extend(writers);
        }
        let writes = match env.get(&vars::WRITES) {
            None | Some("off") => Writes::Off,
            Some("anyone") => Writes::Anyone,
            // Write tokens, where set, guard writes on every platform: behind an authorizer that
            // lets every reader through, they are what tells writers from readers.
            Some("on") if auth.has_writers() => Writes::Tokens,
            Some("on") if defaults.platform_guards_writes => Writes::Platform,
            Some("on") => {
                return Err(bad(
                    "DISTTAGS_WRITES=on needs a write token: set DISTTAGS_WRITE_TOKENS or \
                     DISTTAGS_WRITE_TOKENS_FILE to SHA-256 digests of the tokens that may change tags \
                     (or DISTTAGS_WRITES=anyone on a development server)",
                ));
            }
            Some(other) => {
                return Err(bad(format!(
                    "DISTTAGS_WRITES={other:?} is not valid: use off, on or anyone"
                )));
            }
        };

        Ok(Self {
            auth,
            writes,
            store,
            store_options,
            upstream,
            log,
            log_token: env.get(&vars::LOG_TOKEN).map(str::to_owned),
            base_path,
            timeouts: Timeouts::from_env(env)?,
            cache_bytes: env.count(&vars::CACHE_MB)?.saturating_mul(1 << 20),
        })
    }

    /// What a program says at start about tag writes, when they are open to anyone.
    pub fn writes_warning(&self) -> Option<&'static str> {
        (self.writes == Writes::Anyone).then_some(
            "warning: DISTTAGS_WRITES=anyone: whoever reaches this server may change tags, with no \
             token (meant for a development server)",
        )
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
fn npm_registry(env: &Env, sources: &Sources) -> Result<Option<Url>, ConfigError> {
    if let Some(url) = npm_variable(env, vars::NPM_CONFIG_REGISTRY.name) {
        return parse_http_url(vars::NPM_CONFIG_REGISTRY.name, url).map(Some);
    }
    let Some((path, text)) = &sources.npmrc else {
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
            let value = expand_env(value.trim().trim_matches('"'), env);
            return parse_http_url(&format!("registry in {}", path.display()), &value).map(Some);
        }
    }
    Ok(None)
}

/// npm's `${VAR}` expansion in npmrc values.
fn expand_env(value: &str, env: &Env) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = &rest[start + 2..start + end];
        out.push_str(env.raw(name).unwrap_or(""));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::azure::AzureConfigKey;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(pairs.iter().copied(), Defaults::LOCAL)
    }

    #[test]
    fn who_may_write() {
        let hash = "a".repeat(64);
        let on = |defaults, tokens: bool| {
            let mut pairs = vec![("DISTTAGS_WRITES", "on")];
            if tokens {
                pairs.push(("DISTTAGS_WRITE_TOKENS", hash.as_str()));
            }
            Config::from_vars(pairs, defaults).map(|c| c.writes)
        };
        assert_eq!(cfg(&[]).map(|c| c.writes), Ok(Writes::Off));
        assert_eq!(on(Defaults::LOCAL, true), Ok(Writes::Tokens));
        assert!(
            on(Defaults::LOCAL, false)
                .expect_err("on needs a token")
                .0
                .contains("DISTTAGS_WRITE_TOKENS")
        );
        let guarded = Defaults {
            store: Some("memory://"),
            ..Defaults::GUARDED
        };
        assert_eq!(on(guarded, false), Ok(Writes::Platform));
        // Write tokens set behind an authorizer still guard writes.
        assert_eq!(on(guarded, true), Ok(Writes::Tokens));
        let anyone = cfg(&[("DISTTAGS_WRITES", "anyone")]).expect("anyone");
        assert_eq!(anyone.writes, Writes::Anyone);
        assert!(anyone.writes_warning().is_some());
        assert!(
            cfg(&[("DISTTAGS_WRITES", "yes")])
                .expect_err("typo")
                .0
                .contains("off, on or anyone")
        );
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

//! Building what a configuration names, once per process: the store, the upstream client, the log
//! sink and the app over them.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use crate::app::App;
use crate::config::{Config, LogTarget, Timeouts};
use crate::error::ConfigError;
use crate::log::{HttpSink, LogSink, StdoutSink};
use crate::read::ReadPolicy;
use crate::store::Store;
use crate::upstream::{HttpUpstream, Upstream};

fn bad(message: impl Into<String>) -> ConfigError {
    ConfigError::new(message)
}

impl Config {
    /// Builds the store this configuration names.
    pub fn build_store(&self) -> Result<Store, ConfigError> {
        build_store(&self.store, &self.store_options, &self.timeouts)
    }

    /// Builds the upstream client, if an upstream is configured.
    pub fn build_upstream(&self) -> Result<Option<Arc<dyn Upstream>>, ConfigError> {
        let Some(base) = &self.upstream else {
            return Ok(None);
        };
        let client = http_client(
            "upstream",
            self.timeouts.upstream_connect,
            Some(self.timeouts.upstream_total),
        )?;
        Ok(Some(Arc::new(
            HttpUpstream::new(
                client,
                base,
                self.timeouts.upstream_cache,
                self.timeouts.upstream_total,
            )
            .with_stale_if_error(self.timeouts.stale_if_error)
            .with_cache(self.cache_bytes),
        )))
    }

    /// Builds the log sink; must be called inside a Tokio runtime (the HTTP sink starts a task).
    pub fn build_log_sink(&self) -> Result<Arc<dyn LogSink>, ConfigError> {
        Ok(match &self.log {
            LogTarget::Stdout => Arc::new(StdoutSink),
            LogTarget::None => Arc::new(()),
            LogTarget::Http(url) => {
                let client = http_client("log", self.timeouts.log_total, None)?;
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
        self.app_with(self.build_store()?, log)
    }

    /// Builds the application over a store and a log sink of the caller's; everything else as
    /// configured.
    pub fn app_with(&self, store: Store, log: Arc<dyn LogSink>) -> Result<App, ConfigError> {
        Ok(App::new(store, self.build_upstream()?, log)
            .with_base_path(&self.base_path)
            .with_secrets(self.secrets())
            .with_auth(self.auth.clone())
            .with_writes(self.writes)
            .with_request_timeout(self.timeouts.request)
            .with_read_policy(ReadPolicy {
                cache_bytes: self.cache_bytes,
                revalidate: self.timeouts.revalidate,
            })
            .with_via_name(crate::via::deployment_name(
                &self.store,
                self.upstream.as_ref(),
                &self.base_path,
            )))
    }
}

/// An HTTP client over rustls with these bounds, for the upstream (`what`), the log sink or a shim.
pub fn http_client(
    what: &str,
    connect: Duration,
    total: Option<Duration>,
) -> Result<reqwest::Client, ConfigError> {
    crate::tls::install();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect)
        .user_agent(concat!("disttags/", env!("CARGO_PKG_VERSION")));
    if let Some(total) = total {
        builder = builder.timeout(total);
    }
    builder
        .build()
        .map_err(|e| bad(format!("cannot build the {what} HTTP client: {e}")))
}

/// Applies every option under `prefix` that the builder has a key for, in order; the others (such
/// as `AWS_CA_BUNDLE`) are ignored. One fold for every provider, as object_store's URL parser does.
fn configure<B, K: FromStr>(
    builder: B,
    options: &[(String, String)],
    prefix: &str,
    with: impl Fn(B, K, &str) -> B,
) -> B {
    options
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .filter_map(|(k, v)| Some((k.parse::<K>().ok()?, v)))
        .fold(builder, |b, (key, value)| with(b, key, value))
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
    if let Some(mistake) = plain_http(parsed.scheme(), options) {
        return Err(bad(mistake));
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
    // One provider's builder, with our client options and retry budget, its options folded in.
    macro_rules! cloud {
        ($builder:ty, $key:ty, $prefix:literal) => {
            configure(
                <$builder>::new()
                    .with_client_options(client)
                    .with_retry(retry),
                options,
                $prefix,
                |b, k: $key, v| b.with_config(k, v),
            )
            .with_url(url)
            .build()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        };
    }
    let built = match parsed.scheme() {
        "s3" | "s3a" => cloud!(AmazonS3Builder, AmazonS3ConfigKey, "aws_"),
        "gs" => cloud!(GoogleCloudStorageBuilder, GoogleConfigKey, "google_"),
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            cloud!(MicrosoftAzureBuilder, AzureConfigKey, "azure_")
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

/// A store endpoint over plain HTTP that the provider's client would refuse on every request
/// (object_store reports it only as "builder error", request after request), worded as the line
/// that says what to set. The value is not repeated: an endpoint URL can carry credentials.
fn plain_http(scheme: &str, options: &[(String, String)]) -> Option<String> {
    let get = |key: &str| {
        options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let is_true = |key: &str| get(key).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let http = |url: &str| url.trim().to_ascii_lowercase().starts_with("http://");
    let (allow, endpoints): (&str, Vec<(String, &str)>) = match scheme {
        "s3" | "s3a" => (
            "AWS_ALLOW_HTTP",
            ["aws_endpoint", "aws_endpoint_url", "aws_endpoint_url_s3"]
                .iter()
                .filter_map(|k| Some((k.to_ascii_uppercase(), get(k)?)))
                .collect(),
        ),
        "az" | "azure" | "abfs" | "abfss" | "adl" => (
            "AZURE_ALLOW_HTTP",
            ["azure_storage_endpoint", "azure_endpoint"]
                .iter()
                // Azurite mode allows plain HTTP by itself.
                .filter(|_| !is_true("azure_storage_use_emulator"))
                .filter_map(|k| Some((k.to_ascii_uppercase(), get(k)?)))
                .collect(),
        ),
        "gs" => {
            let key_url = get("google_service_account_key")
                .and_then(|key| serde_json::from_str::<serde_json::Value>(key).ok())
                .and_then(|key| key["gcs_base_url"].as_str().map(str::to_owned));
            let mut endpoints: Vec<(String, &str)> = get("google_base_url")
                .map(|url| ("GOOGLE_BASE_URL".to_owned(), url))
                .into_iter()
                .collect();
            if key_url.as_deref().is_some_and(http) {
                endpoints.push((
                    "the gcs_base_url of GOOGLE_SERVICE_ACCOUNT_KEY".to_owned(),
                    "http://",
                ));
            }
            ("GOOGLE_ALLOW_HTTP", endpoints)
        }
        _ => return None,
    };
    let (name, _) = endpoints.into_iter().find(|(_, url)| http(url))?;
    let allow_key = allow.to_ascii_lowercase();
    (!is_true(&allow_key)).then(|| {
        format!(
            "{name} is a plain http:// endpoint, which the store client refuses: set {allow}=true \
             to allow it (an emulator, a private network), or use an https:// endpoint"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_endpoints_need_the_providers_allow_variable() {
        let t = Timeouts::default();
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let s3 = [
            ("aws_endpoint", "http://127.0.0.1:9000"),
            ("aws_access_key_id", "AKIDEXAMPLE"),
            ("aws_secret_access_key", "sekrit-value"),
        ];
        let error = build_store("s3://b", &pairs(&s3), &t).expect_err("refused");
        assert!(
            error.0.contains("AWS_ENDPOINT") && error.0.contains("AWS_ALLOW_HTTP=true"),
            "{error}"
        );
        let mut allowed = pairs(&s3);
        allowed.push(("aws_allow_http".into(), "true".into()));
        assert!(build_store("s3://b", &allowed, &t).is_ok());
        let azure = [
            ("azure_storage_account_name", "acct"),
            ("azure_storage_endpoint", "http://127.0.0.1:10000/acct"),
        ];
        let error = build_store("az://c", &pairs(&azure), &t).expect_err("refused");
        assert!(error.0.contains("AZURE_ALLOW_HTTP=true"), "{error}");
        let key = r#"{"gcs_base_url":"http://127.0.0.1:4443","disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}"#;
        let gcs = [("google_service_account_key", key)];
        let error = build_store("gs://b", &pairs(&gcs), &t).expect_err("refused");
        assert!(
            error.0.contains("GOOGLE_ALLOW_HTTP=true") && !error.0.contains("4443"),
            "{error}"
        );
        let mut allowed = pairs(&gcs);
        allowed.push(("google_allow_http".into(), "true".into()));
        assert!(build_store("gs://b", &allowed, &t).is_ok());
        // https, and Azurite's own mode, need nothing.
        let https = [("aws_endpoint", "https://s3.internal.example")];
        assert!(plain_http("s3", &pairs(&https)).is_none());
        assert!(plain_http("az", &pairs(&[("azure_storage_use_emulator", "true")])).is_none());
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
}

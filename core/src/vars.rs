//! Every variable the programs read, as data: name, default, who reads it, one line of meaning.
//!
//! Parsing ([`crate::Config`]), the README's configuration table ([`markdown_table`], kept equal by a
//! test) and the start-up check for a misspelt `DISTTAGS_*` name ([`Env::check_names`]) all read
//! this one table.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::ConfigError;

/// A program of this project that reads variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `disttags` (`serve` and `import`).
    Local,
    /// `disttags-lambda`.
    Lambda,
    /// `disttags-azure`.
    Azure,
    /// `disttags-cloudrun`.
    CloudRun,
    /// The test suite and the benchmarks.
    Tests,
}

impl Program {
    /// The name the README uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "`disttags`",
            Self::Lambda => "`disttags-lambda`",
            Self::Azure => "`disttags-azure`",
            Self::CloudRun => "`disttags-cloudrun`",
            Self::Tests => "tests, benchmarks",
        }
    }
}

/// Every shipped binary.
pub const SHIMS: &[Program] = &[
    Program::Local,
    Program::Lambda,
    Program::Azure,
    Program::CloudRun,
];

/// What a variable holds, as far as parsing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text the reader interprets.
    Text,
    /// Whole milliseconds, more than zero.
    Millis,
    /// Whole milliseconds; `0` turns the thing off.
    MillisOrOff,
    /// A whole number, more than zero.
    Count,
}

/// What applies when a variable is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// This value.
    Value(&'static str),
    /// Nothing, or something worked out as this text says.
    Described(&'static str),
}

/// One variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    /// The name, as set in the environment.
    pub name: &'static str,
    /// What applies when it is unset.
    pub fallback: Fallback,
    /// Which programs read it.
    pub read_by: &'static [Program],
    /// How it is parsed.
    pub kind: Kind,
    /// One line of meaning, as the README shows it.
    pub meaning: &'static str,
}

impl Var {
    const fn text(
        name: &'static str,
        fallback: Fallback,
        read_by: &'static [Program],
        meaning: &'static str,
    ) -> Self {
        Self {
            name,
            fallback,
            read_by,
            kind: Kind::Text,
            meaning,
        }
    }

    const fn millis(name: &'static str, default: &'static str, meaning: &'static str) -> Self {
        Self {
            name,
            fallback: Fallback::Value(default),
            read_by: SHIMS,
            kind: Kind::Millis,
            meaning,
        }
    }

    /// The default as a number, for a [`Kind::Count`] variable (zero for any other).
    pub fn default_count(&self) -> u64 {
        match self.fallback {
            Fallback::Value(v) => v.parse().unwrap_or_default(),
            Fallback::Described(_) => 0,
        }
    }

    /// The default as a duration, for a milliseconds variable (zero for any other).
    pub fn default_duration(&self) -> Duration {
        match self.fallback {
            Fallback::Value(v) => v.parse().map(Duration::from_millis).unwrap_or_default(),
            Fallback::Described(_) => Duration::ZERO,
        }
    }
}

use Fallback::{Described, Value};

/// `DISTTAGS_STORE`.
pub const STORE: Var = Var::text(
    "DISTTAGS_STORE",
    Described("`disttags`: `file://./data`; cloud shims: required"),
    SHIMS,
    "store URL: `file:///path`, `memory://`, `s3://bucket`, `gs://bucket`, `az://container`; credentials and endpoints from the provider's own variables",
);
/// `DISTTAGS_UPSTREAM`.
pub const UPSTREAM: Var = Var::text(
    "DISTTAGS_UPSTREAM",
    Described(
        "`npm_config_registry`, else `registry=` in `~/.npmrc` (or `$npm_config_userconfig`), else off",
    ),
    SHIMS,
    "upstream registry base URL, or `off`",
);
/// `DISTTAGS_LOG`.
pub const LOG: Var = Var::text(
    "DISTTAGS_LOG",
    Value("stdout"),
    SHIMS,
    "`stdout` (JSON lines), `none`, or an `http(s)://` URL events are POSTed to",
);
/// `DISTTAGS_LOG_TOKEN`.
pub const LOG_TOKEN: Var = Var::text(
    "DISTTAGS_LOG_TOKEN",
    Described("none"),
    SHIMS,
    "bearer token for the HTTP log sink",
);
/// `DISTTAGS_BASE_PATH`.
pub const BASE_PATH: Var = Var::text(
    "DISTTAGS_BASE_PATH",
    Value("/"),
    SHIMS,
    "path prefix the registry is served under, e.g. `/registry`",
);
/// `DISTTAGS_LISTEN`.
pub const LISTEN: Var = Var::text(
    "DISTTAGS_LISTEN",
    Value("127.0.0.1:4873"),
    &[Program::Local],
    "address `disttags serve` listens on",
);
/// `DISTTAGS_REQUEST_TIMEOUT_MS`.
pub const REQUEST_TIMEOUT_MS: Var = Var::millis(
    "DISTTAGS_REQUEST_TIMEOUT_MS",
    "10000",
    "one request's budget: its store lookup, upstream call and their retries, or one tag write, in all; a store that hangs is answered `500`, an upstream that hangs `504`, within it",
);
/// `DISTTAGS_UPSTREAM_CONNECT_TIMEOUT_MS`.
pub const UPSTREAM_CONNECT_TIMEOUT_MS: Var = Var::millis(
    "DISTTAGS_UPSTREAM_CONNECT_TIMEOUT_MS",
    "3000",
    "connecting to the upstream registry",
);
/// `DISTTAGS_UPSTREAM_TIMEOUT_MS`.
pub const UPSTREAM_TIMEOUT_MS: Var = Var::millis(
    "DISTTAGS_UPSTREAM_TIMEOUT_MS",
    "10000",
    "one upstream lookup, every request and retry included",
);
/// `DISTTAGS_STORE_CONNECT_TIMEOUT_MS`.
pub const STORE_CONNECT_TIMEOUT_MS: Var = Var::millis(
    "DISTTAGS_STORE_CONNECT_TIMEOUT_MS",
    "2000",
    "connecting to a cloud store",
);
/// `DISTTAGS_STORE_TIMEOUT_MS`.
pub const STORE_TIMEOUT_MS: Var = Var::millis(
    "DISTTAGS_STORE_TIMEOUT_MS",
    "10000",
    "one store request, body included (inside the request's budget)",
);
/// `DISTTAGS_STORE_RETRY_MS`.
pub const STORE_RETRY_MS: Var = Var::millis(
    "DISTTAGS_STORE_RETRY_MS",
    "3000",
    "time within which failed store requests are retried (at most 3 retries, backoff from 50 ms)",
);
/// `DISTTAGS_LOG_TIMEOUT_MS`.
pub const LOG_TIMEOUT_MS: Var = Var::millis(
    "DISTTAGS_LOG_TIMEOUT_MS",
    "2000",
    "one POST to the HTTP log sink",
);
/// `DISTTAGS_UPSTREAM_CACHE_MS`.
pub const UPSTREAM_CACHE_MS: Var = Var {
    kind: Kind::MillisOrOff,
    ..Var::millis(
        "DISTTAGS_UPSTREAM_CACHE_MS",
        "30000",
        "how long a found upstream answer is reused, never longer than its `Cache-Control` allows; `0` disables",
    )
};
/// `DISTTAGS_STALE_IF_ERROR_MS`.
pub const STALE_IF_ERROR_MS: Var = Var {
    kind: Kind::MillisOrOff,
    ..Var::millis(
        "DISTTAGS_STALE_IF_ERROR_MS",
        "3600000",
        "when the upstream fails (5xx, reset, timeout), a package it answered within this long is answered `200` with those tags and an `Age` header; `0`: never",
    )
};
/// `DISTTAGS_REVALIDATE_MS`.
pub const REVALIDATE_MS: Var = Var {
    kind: Kind::MillisOrOff,
    ..Var::millis(
        "DISTTAGS_REVALIDATE_MS",
        "0",
        "how long tags read from the store are served without asking the store again; `0`: every lookup revalidates, so an update is seen on the next request",
    )
};
/// `DISTTAGS_CACHE_MB`.
pub const CACHE_MB: Var = Var {
    kind: Kind::Count,
    ..Var::millis(
        "DISTTAGS_CACHE_MB",
        "32",
        "memory for each of the two caches (tags read from the store, upstream answers), in MiB; each holds at most 1,024 entries per MiB (32,768 at the default)",
    )
};
/// `DISTTAGS_HEADER_TIMEOUT_MS`.
pub const HEADER_TIMEOUT_MS: Var = Var {
    kind: Kind::MillisOrOff,
    read_by: &[Program::Local],
    ..Var::millis(
        "DISTTAGS_HEADER_TIMEOUT_MS",
        "75000",
        "how long a connection may take to send a request head, idle time on a kept-alive connection included (keep it above the idle timeout of any proxy in front); `0`: no limit",
    )
};
/// `DISTTAGS_AUTH_TOKENS`.
pub const AUTH_TOKENS: Var = Var::text(
    "DISTTAGS_AUTH_TOKENS",
    Described("none (open)"),
    SHIMS,
    "comma-separated SHA-256 hex digests of accepted bearer tokens; set: every route but `/-/ping` needs one",
);
/// `DISTTAGS_AUTH_TOKENS_FILE`.
pub const AUTH_TOKENS_FILE: Var = Var::text(
    "DISTTAGS_AUTH_TOKENS_FILE",
    Described("none"),
    SHIMS,
    "a file of `<sha256-hex> [name]` lines, same meaning; the name identifies the caller in log events",
);
/// `DISTTAGS_WRITES`.
pub const WRITES: Var = Var::text(
    "DISTTAGS_WRITES",
    Value("off"),
    SHIMS,
    "who may change tags (`npm dist-tag add`/`rm`): `off`; `on` (`disttags`, `disttags-cloudrun`: a write token; Lambda, Azure: whoever the platform's authorizer lets through); `anyone` (anonymous, for a development server)",
);
/// `DISTTAGS_WRITE_TOKENS`.
pub const WRITE_TOKENS: Var = Var::text(
    "DISTTAGS_WRITE_TOKENS",
    Described("none"),
    SHIMS,
    "comma-separated SHA-256 hex digests of tokens that may change tags (and read); read tokens stay read-only",
);
/// `DISTTAGS_WRITE_TOKENS_FILE`.
pub const WRITE_TOKENS_FILE: Var = Var::text(
    "DISTTAGS_WRITE_TOKENS_FILE",
    Described("none"),
    SHIMS,
    "a file of `<sha256-hex> [name]` lines of write tokens; the name identifies the writer in log events",
);
/// `DISTTAGS_IDENTITY_PROXY`.
pub const IDENTITY_PROXY: Var = Var::text(
    "DISTTAGS_IDENTITY_PROXY",
    Value("none"),
    &[Program::CloudRun],
    "the proxy in front that sets the caller's identity header: `iap` (`X-Goog-Authenticated-User-Email`), `api-gateway` (`X-Apigateway-Api-Userinfo`) or `none`; only that header is read",
);
/// `DISTTAGS_LOG_FORMAT`.
pub const LOG_FORMAT: Var = Var::text(
    "DISTTAGS_LOG_FORMAT",
    Described("`text` on a terminal, else `json`"),
    &[Program::Local],
    "how `disttags serve` writes its log lines: `text` (one readable line each) or `json`; the cloud shims write their platform's format",
);
/// `DISTTAGS_METRICS`.
pub const METRICS: Var = Var::text(
    "DISTTAGS_METRICS",
    Value("on"),
    SHIMS,
    "`on`: metrics (Prometheus text on `GET /-/metrics`, guarded like every route but `/-/ping`; on Lambda, CloudWatch Embedded Metric Format lines after each invocation); `off`: none",
);
/// `RUST_LOG`.
pub const RUST_LOG: Var = Var::text(
    "RUST_LOG",
    Value("info"),
    SHIMS,
    "the lowest level of log line written (`error`, `warn`, `info`, `debug`: also a line per store lookup and upstream call), optionally per target (`disttags_core=debug`); log events are written whatever it says",
);
/// `AWS_LAMBDA_LOG_LEVEL`.
pub const AWS_LAMBDA_LOG_LEVEL: Var = Var::text(
    "AWS_LAMBDA_LOG_LEVEL",
    Described("`RUST_LOG`"),
    &[Program::Lambda],
    "Lambda's application log level (its advanced logging controls set it); wins over `RUST_LOG`",
);
/// `AWS_LAMBDA_LOG_FORMAT`.
pub const AWS_LAMBDA_LOG_FORMAT: Var = Var::text(
    "AWS_LAMBDA_LOG_FORMAT",
    Value("JSON"),
    &[Program::Lambda],
    "Lambda's log format (its advanced logging controls set it): `JSON` lines, or `Text`",
);
/// `GOOGLE_CLOUD_PROJECT`.
pub const GOOGLE_CLOUD_PROJECT: Var = Var::text(
    "GOOGLE_CLOUD_PROJECT",
    Described("none (log lines then carry `trace_id` instead)"),
    &[Program::CloudRun],
    "the project of the service, for `logging.googleapis.com/trace` in its log lines (`projects/<project>/traces/<id>`)",
);
/// codebox's `bucket`.
pub const CODEBOX_BUCKET: Var = Var::text(
    "bucket",
    Described("none"),
    SHIMS,
    "codebox's name: the store is `s3://$bucket` when `DISTTAGS_STORE` is unset",
);
/// codebox's `region`.
pub const CODEBOX_REGION: Var = Var::text(
    "region",
    Described("none"),
    SHIMS,
    "codebox's name: the S3 region when `AWS_REGION` is unset",
);
/// codebox's `registry`.
pub const CODEBOX_REGISTRY: Var = Var::text(
    "registry",
    Described("none"),
    SHIMS,
    "codebox's name: the upstream when `DISTTAGS_UPSTREAM` is unset",
);
/// `npm_config_registry`.
pub const NPM_CONFIG_REGISTRY: Var = Var::text(
    "npm_config_registry",
    Described("none"),
    SHIMS,
    "npm's own registry setting (any case), the default upstream",
);
/// `npm_config_userconfig`.
pub const NPM_CONFIG_USERCONFIG: Var = Var::text(
    "npm_config_userconfig",
    Described("`$HOME/.npmrc`"),
    SHIMS,
    "npm's user configuration file, whose `registry=` is the default upstream after `npm_config_registry`",
);
/// `HOME`.
pub const HOME: Var = Var::text(
    "HOME",
    Described("none"),
    SHIMS,
    "where `.npmrc` is looked for",
);
/// `PORT`.
pub const PORT: Var = Var::text(
    "PORT",
    Value("8080"),
    &[Program::CloudRun],
    "the port Cloud Run gives the container; it listens on `0.0.0.0:$PORT`",
);
/// `FUNCTIONS_CUSTOMHANDLER_PORT`.
pub const FUNCTIONS_CUSTOMHANDLER_PORT: Var = Var::text(
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    Described("required (the Functions host sets it)"),
    &[Program::Azure],
    "the loopback port the Functions host forwards to",
);
/// `AzureWebJobsScriptRoot`.
pub const AZURE_SCRIPT_ROOT: Var = Var::text(
    "AzureWebJobsScriptRoot",
    Described("the working directory"),
    &[Program::Azure],
    "the function app's directory, where `host.json` (its route prefix) is read",
);
/// `IDENTITY_ENDPOINT` / `MSI_ENDPOINT`.
pub const IDENTITY_ENDPOINT: Var = Var::text(
    "IDENTITY_ENDPOINT",
    Described("none"),
    SHIMS,
    "the managed identity endpoint Azure Functions sets (`MSI_ENDPOINT` on older hosts); used as `AZURE_MSI_ENDPOINT` when that is unset",
);
/// `MSI_ENDPOINT`.
pub const MSI_ENDPOINT: Var = Var::text(
    "MSI_ENDPOINT",
    Described("none"),
    SHIMS,
    "the older name of `IDENTITY_ENDPOINT`",
);
/// `AWS_LAMBDA_RUNTIME_API`.
pub const LAMBDA_RUNTIME_API: Var = Var::text(
    "AWS_LAMBDA_RUNTIME_API",
    Described(
        "required (Lambda sets it, with `AWS_LAMBDA_FUNCTION_NAME`, `_MEMORY_SIZE`, `_VERSION`)",
    ),
    &[Program::Lambda],
    "the Runtime API the function takes its invocations from",
);
/// `DISTTAGS_TOOLS`.
pub const TOOLS: Var = Var::text(
    "DISTTAGS_TOOLS",
    Value(".tools"),
    &[Program::Tests],
    "where the test command installs the storage emulators and other tools",
);
/// `DISTTAGS_PACKUMENTS`.
pub const PACKUMENTS: Var = Var::text(
    "DISTTAGS_PACKUMENTS",
    Value("../shared/packuments"),
    &[Program::Tests],
    "the directory of real (gzipped) packuments the tests and benchmarks read",
);

/// `DISTTAGS_BENCH_PROFILE`.
pub const BENCH_PROFILE: Var = Var::text(
    "DISTTAGS_BENCH_PROFILE",
    Value("release"),
    &[Program::Tests],
    "the Cargo profile the benchmark scripts build and run: `release` (the README's figures) or `dev` (`scripts/bench-smoke`: the test command's build, nothing more to compile)",
);

/// The whole table, in the README's order.
pub const ALL: &[Var] = &[
    STORE,
    UPSTREAM,
    LOG,
    LOG_TOKEN,
    BASE_PATH,
    LISTEN,
    REQUEST_TIMEOUT_MS,
    UPSTREAM_CONNECT_TIMEOUT_MS,
    UPSTREAM_TIMEOUT_MS,
    STORE_CONNECT_TIMEOUT_MS,
    STORE_TIMEOUT_MS,
    STORE_RETRY_MS,
    LOG_TIMEOUT_MS,
    UPSTREAM_CACHE_MS,
    STALE_IF_ERROR_MS,
    REVALIDATE_MS,
    CACHE_MB,
    HEADER_TIMEOUT_MS,
    AUTH_TOKENS,
    AUTH_TOKENS_FILE,
    WRITES,
    WRITE_TOKENS,
    WRITE_TOKENS_FILE,
    IDENTITY_PROXY,
    LOG_FORMAT,
    METRICS,
    RUST_LOG,
    AWS_LAMBDA_LOG_LEVEL,
    AWS_LAMBDA_LOG_FORMAT,
    GOOGLE_CLOUD_PROJECT,
    CODEBOX_BUCKET,
    CODEBOX_REGION,
    CODEBOX_REGISTRY,
    NPM_CONFIG_REGISTRY,
    NPM_CONFIG_USERCONFIG,
    HOME,
    PORT,
    FUNCTIONS_CUSTOMHANDLER_PORT,
    AZURE_SCRIPT_ROOT,
    IDENTITY_ENDPOINT,
    MSI_ENDPOINT,
    LAMBDA_RUNTIME_API,
    TOOLS,
    PACKUMENTS,
    BENCH_PROFILE,
];

/// The README's configuration table, from [`ALL`].
pub fn markdown_table() -> String {
    let mut out = String::from("| variable | read by | meaning | default |\n|---|---|---|---|\n");
    for var in ALL {
        let read_by = if var.read_by == SHIMS {
            "all".to_owned()
        } else {
            var.read_by
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let default = match var.fallback {
            Value(v) => format!("`{v}`"),
            Described(text) => text.to_owned(),
        };
        out.push_str(&format!(
            "| `{}` | {read_by} | {} | {default} |\n",
            var.name, var.meaning
        ));
    }
    out
}

/// Environment-style pairs, as read once at start (tests pass their own).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env(BTreeMap<String, String>);

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values carry credentials: only the names are shown.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Whether `name` is one a container platform sets for a service or link named `disttags`
/// (Kubernetes' `DISTTAGS_SERVICE_HOST`, `DISTTAGS_PORT_4873_TCP_ADDR`, Docker links' `DISTTAGS_PORT`):
/// not a typo of ours.
fn set_by_platform(name: &str) -> bool {
    name == "DISTTAGS_PORT"
        || name.starts_with("DISTTAGS_PORT_")
        || name.starts_with("DISTTAGS_SERVICE_")
}

impl Env {
    /// The pairs; a later pair wins over an earlier one of the same name.
    pub fn new<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// Sets `name` to `value`, as a command-line flag overrides its variable.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_owned(), value.into());
    }

    /// The process environment (variables that are not valid UTF-8 are left out).
    pub fn from_process() -> Self {
        Self::new(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// The value of `var`, when set and not empty.
    pub fn get(&self, var: &Var) -> Option<&str> {
        self.raw(var.name)
    }

    /// The value of `var` when set and not empty, else its default value if it has one.
    pub fn value(&self, var: &Var) -> Option<&str> {
        self.get(var).or(match var.fallback {
            Value(v) => Some(v),
            Described(_) => None,
        })
    }

    /// The value of any name, when set and not empty.
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Every pair.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A whole-number variable ([`Kind::Count`]), or its default.
    pub fn count(&self, var: &Var) -> Result<u64, ConfigError> {
        let value = match (self.get(var), var.fallback) {
            (Some(value), _) | (None, Fallback::Value(value)) => value,
            (None, Fallback::Described(_)) => return Ok(0),
        };
        value.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ConfigError::new(format!(
                "{}={value:?} is not valid: use a whole number, more than zero",
                var.name
            ))
        })
    }

    /// A milliseconds variable, or its default.
    pub fn millis(&self, var: &Var) -> Result<Duration, ConfigError> {
        let Some(value) = self.get(var) else {
            return Ok(var.default_duration());
        };
        value
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0 || var.kind == Kind::MillisOrOff)
            .map(Duration::from_millis)
            .ok_or_else(|| {
                ConfigError::new(format!(
                    "{}={value:?} is not valid: use a whole number of milliseconds",
                    var.name
                ))
            })
    }

    /// Refuses a `DISTTAGS_*` name that no program reads: a typo that would otherwise be ignored.
    pub fn check_names(&self) -> Result<(), ConfigError> {
        for name in self.0.keys() {
            if !name.starts_with("DISTTAGS_")
                || ALL.iter().any(|v| v.name == name)
                || set_by_platform(name)
            {
                continue;
            }
            let closest = ALL
                .iter()
                .filter(|v| v.name.starts_with("DISTTAGS_"))
                .min_by_key(|v| distance(v.name, name))
                .filter(|v| distance(v.name, name) <= 3);
            let hint = closest.map_or_else(
                || " (the README's configuration table lists every variable)".to_owned(),
                |v| format!(": did you mean {}?", v.name),
            );
            return Err(ConfigError::new(format!(
                "{name} is not a variable disttags reads{hint}"
            )));
        }
        Ok(())
    }
}

/// Levenshtein distance, for telling a typo from an unrelated name.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_milliseconds_default_parses_and_names_are_unique() {
        for var in ALL {
            match (var.kind, var.fallback) {
                (Kind::Millis | Kind::Count, _) => {
                    assert_ne!(Env::default().count(var).ok(), None, "{}", var.name);
                }
                (Kind::MillisOrOff, Fallback::Value(v)) => {
                    assert!(v.parse::<u64>().is_ok(), "{}", var.name);
                }
                _ => {}
            }
            assert_eq!(
                ALL.iter().filter(|v| v.name == var.name).count(),
                1,
                "{}",
                var.name
            );
        }
    }

    #[test]
    fn a_misspelt_name_is_named_with_the_likely_one() {
        let env = Env::new([("DISTTAGS_STROE", "memory://")]);
        let error = env.check_names().expect_err("typo");
        assert_eq!(
            error.0,
            "DISTTAGS_STROE is not a variable disttags reads: did you mean DISTTAGS_STORE?"
        );
        let env = Env::new([("DISTTAGS_SOMETHING_ELSE_ENTIRELY", "1")]);
        assert!(env.check_names().expect_err("unknown").0.contains("README"));
        assert!(
            Env::new([("DISTTAGS_STORE", "x"), ("OTHER_THING", "y")])
                .check_names()
                .is_ok()
        );
        // What Kubernetes and Docker links set for a service named disttags is not a typo.
        let linked = Env::new([
            ("DISTTAGS_PORT", "tcp://10.0.0.7:4873"),
            ("DISTTAGS_PORT_4873_TCP_ADDR", "10.0.0.7"),
            ("DISTTAGS_SERVICE_HOST", "10.0.0.7"),
            ("DISTTAGS_SERVICE_PORT", "4873"),
        ]);
        assert!(linked.check_names().is_ok());
        assert!(
            !format!("{linked:?}").contains("10.0.0.7"),
            "Debug shows names only"
        );
    }

    #[test]
    fn milliseconds() {
        let env = Env::new([
            ("DISTTAGS_UPSTREAM_TIMEOUT_MS", "soon"),
            ("DISTTAGS_STORE_TIMEOUT_MS", "0"),
            ("DISTTAGS_UPSTREAM_CACHE_MS", "0"),
        ]);
        assert!(env.millis(&UPSTREAM_TIMEOUT_MS).is_err());
        assert!(env.millis(&STORE_TIMEOUT_MS).is_err(), "0 is not a timeout");
        assert_eq!(env.millis(&UPSTREAM_CACHE_MS), Ok(Duration::ZERO));
        assert_eq!(env.millis(&LOG_TIMEOUT_MS), Ok(Duration::from_millis(2000)));
    }
}

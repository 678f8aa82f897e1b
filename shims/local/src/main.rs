//! `disttags`: the local and self-hosted server (`serve`) and the packument loader (`import`).

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use disttags_core::{Config, Defaults, PackageName, extract::extract};
use object_store::{ObjectStoreExt, PutPayload};

/// npm dist-tags endpoint over any object store.
#[derive(Debug, Parser)]
#[command(name = "disttags", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Flags shared by both commands; each overrides the environment variable it names.
#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// Store URL: file:///path, memory://, s3://bucket, gs://bucket, az://container [env: DISTTAGS_STORE; default file://./data]
    #[arg(long)]
    store: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve GET /-/package/{name}/dist-tags and /-/ping over HTTP.
    Serve {
        /// Address to listen on [env: DISTTAGS_LISTEN; default 127.0.0.1:4873]
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        store: StoreArgs,
        /// Upstream registry URL, or `off` [env: DISTTAGS_UPSTREAM; default: npm's configured registry]
        #[arg(long)]
        upstream: Option<String>,
        /// Log sink: stdout, none, or an http(s):// URL [env: DISTTAGS_LOG; default stdout]
        #[arg(long)]
        log: Option<String>,
        /// Path prefix to serve under, e.g. /registry [env: DISTTAGS_BASE_PATH; default /]
        #[arg(long)]
        base_path: Option<String>,
    },
    /// Copy packument files (JSON, optionally gzipped) into the store under {name}/index.json.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// Packument files; the package name is read from each document.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

const DEFAULT_LISTEN: &str = "127.0.0.1:4873";

fn main() -> ExitCode {
    let cli = Cli::parse();
    disttags_server::run("disttags", async {
        match cli.command {
            Command::Serve {
                listen,
                store,
                upstream,
                log,
                base_path,
            } => {
                let flags = [
                    ("DISTTAGS_STORE", store.store),
                    ("DISTTAGS_UPSTREAM", upstream),
                    ("DISTTAGS_LOG", log),
                    ("DISTTAGS_BASE_PATH", base_path),
                ];
                serve(listen, config(&flags)?).await
            }
            Command::Import { store, files } => {
                import(config(&[("DISTTAGS_STORE", store.store)])?, &files).await
            }
        }
    })
}

/// The environment, with each given flag overriding its variable.
fn config(flags: &[(&str, Option<String>)]) -> Result<Config, String> {
    let overrides = flags
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), v)));
    Config::from_vars(std::env::vars().chain(overrides), Defaults::LOCAL).map_err(|e| e.to_string())
}

async fn serve(listen: Option<SocketAddr>, config: Config) -> Result<(), String> {
    let listen = match listen {
        Some(addr) => addr,
        None => std::env::var("DISTTAGS_LISTEN")
            .unwrap_or_else(|_| DEFAULT_LISTEN.to_owned())
            .parse()
            .map_err(|_| {
                "DISTTAGS_LISTEN is not valid: use an address such as 127.0.0.1:4873".to_owned()
            })?,
    };
    let app = config.build_app().map_err(|e| e.to_string())?;
    let upstream = config.upstream.as_ref().map_or_else(
        || "off".to_owned(),
        |u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")),
    );
    eprintln!("disttags: store {}, upstream {upstream}", config.store);
    if config
        .upstream
        .as_ref()
        .is_some_and(|u| is_this_server(u.host_str(), u.port_or_known_default(), listen))
    {
        // The usual way here: npm's registry set to this server, which takes it as its upstream.
        eprintln!(
            "disttags: warning: the upstream is this server itself (npm's configured registry, or \
             DISTTAGS_UPSTREAM, points here): packages the store lacks will be answered 508; set \
             --upstream to another registry, or off"
        );
    }
    // Nothing in front of this server authenticates callers: no identity header is trusted.
    let handler = Arc::new(disttags_server::AppHandler::new(
        app,
        disttags_server::no_context,
    ));
    disttags_server::listen_and_serve(
        "disttags",
        listen,
        &config.base_path,
        // Clients connect directly, or through a proxy that keeps idle connections for less long.
        Some(config.timeouts.header_read).filter(|t| !t.is_zero()),
        handler,
    )
    .await
}

/// Whether an upstream at `host`:`port` is the server listening on `listen`: the same port on a
/// loopback name or address, or on the listening address itself.
fn is_this_server(host: Option<&str>, port: Option<u16>, listen: SocketAddr) -> bool {
    let Some(host) = host else { return false };
    if port != Some(listen.port()) {
        return false;
    }
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified() || ip == listen.ip())
}

#[derive(serde::Deserialize)]
struct Head {
    name: String,
}

async fn import(config: Config, files: &[PathBuf]) -> Result<(), String> {
    let store = config.build_store().map_err(|e| e.to_string())?;
    let mut failed = 0;
    for file in files {
        match import_one(store.object_store().as_ref(), file).await {
            Ok(line) => println!("{line}"),
            Err(e) => {
                failed += 1;
                eprintln!("disttags: {}: {e}", file.display());
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} of {} files were not imported", files.len())),
    }
}

async fn import_one(
    store: &dyn object_store::ObjectStore,
    file: &PathBuf,
) -> Result<String, String> {
    let raw = std::fs::read(file).map_err(|e| e.to_string())?;
    let document = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format!("not a readable gzip file: {e}"))?;
        out
    } else {
        raw
    };
    let head: Head = serde_json::from_slice(&document)
        .map_err(|e| format!("not a packument (a JSON object with a \"name\"): {e}"))?;
    let name =
        PackageName::parse(&head.name).map_err(|e| format!("package name {:?}: {e}", head.name))?;
    let tags = extract(&document).map_err(|e| e.to_string())?;
    let key = name.packument_key();
    let size = document.len();
    store
        .put(key, PutPayload::from(document))
        .await
        .map_err(|e| format!("writing {key} failed: {e}"))?;
    Ok(format!(
        "imported {name} -> {key} ({size} bytes, {} dist-tags)",
        tags.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_on_this_servers_port_and_a_local_address_is_this_server() {
        let listen: SocketAddr = "127.0.0.1:4873".parse().expect("addr");
        let this = |host, port| is_this_server(Some(host), Some(port), listen);
        assert!(this("127.0.0.1", 4873));
        assert!(this("localhost", 4873));
        assert!(this("[::1]", 4873));
        assert!(this("0.0.0.0", 4873));
        assert!(!this("127.0.0.1", 4874));
        assert!(!this("registry.internal.example", 4873));
        assert!(!this("10.0.0.7", 4873));
        let public: SocketAddr = "10.0.0.7:80".parse().expect("addr");
        assert!(is_this_server(Some("10.0.0.7"), Some(80), public));
        assert!(!is_this_server(None, Some(4873), listen));
    }
}

//! `disttags`: the local and self-hosted server ([`serve`]) and the packument loader ([`import`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use disttags_core::{Config, Defaults, Env};

pub mod import;
pub mod serve;

/// npm dist-tags endpoint over any object store.
#[derive(Debug, Parser)]
#[command(name = "disttags", version, about)]
pub struct Cli {
    #[command(subcommand)]
    /// What to do.
    pub command: Command,
}

/// Flags shared by both commands; each overrides the environment variable it names.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Store URL: file:///path, memory://, s3://bucket, gs://bucket, az://container [env: DISTTAGS_STORE; default file://./data]
    #[arg(long)]
    pub store: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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

/// Runs one command with `env`, each given flag overriding the variable it names.
pub async fn run(cli: Cli, mut env: Env) -> Result<(), String> {
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
            let config = config(&mut env, flags)?;
            serve::serve(listen, config, &env).await
        }
        Command::Import { store, files } => {
            let config = config(&mut env, [("DISTTAGS_STORE", store.store)])?;
            import::import(config, &files).await
        }
    }
}

/// The configuration of `env` with the given flags set over it.
fn config<const N: usize>(
    env: &mut Env,
    flags: [(&str, Option<String>); N],
) -> Result<Config, String> {
    for (name, value) in flags {
        if let Some(value) = value {
            env.set(name, value);
        }
    }
    Config::from_env(env, Defaults::LOCAL).map_err(|e| e.to_string())
}

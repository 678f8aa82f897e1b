//! `disttags serve`: the core on a local address, for development and self-hosting.

use std::net::SocketAddr;
use std::sync::Arc;

use disttags_core::{Config, Env, vars};

/// Serves `config` on `listen` (else `DISTTAGS_LISTEN`, else its default) until SIGTERM or Ctrl-C.
pub async fn serve(listen: Option<SocketAddr>, config: Config, env: &Env) -> Result<(), String> {
    let listen = match listen {
        Some(addr) => addr,
        None => env
            .value(&vars::LISTEN)
            .unwrap_or_default()
            .parse()
            .map_err(|_| {
                "DISTTAGS_LISTEN is not valid: use an address such as 127.0.0.1:4873".to_owned()
            })?,
    };
    let header_timeout = env
        .millis(&vars::HEADER_TIMEOUT_MS)
        .map_err(|e| e.to_string())?;
    let app = config.build_app().map_err(|e| e.to_string())?;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let format =
        disttags_core::telemetry::LogFormat::local(env, terminal).map_err(|e| e.to_string())?;
    let app = disttags_server::observe::observe(app, env, format)?;
    let upstream = config.upstream.as_ref().map_or_else(
        || "off".to_owned(),
        |u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")),
    );
    eprintln!("disttags: store {}, upstream {upstream}", config.store);
    if let Some(warning) = config.writes_warning() {
        eprintln!("disttags: {warning}");
    }
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
        Some(header_timeout).filter(|t| !t.is_zero()),
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

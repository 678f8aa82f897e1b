//! A bare hyper server answering every request with one fixed 40-byte JSON body: the ceiling
//! `bench/server.sh` measures `disttags serve` against. Same runtime (tokio multi-thread, one worker
//! per core), same HTTP/1.1 builder settings (`disttags serve`'s default header read timeout) and
//! `TCP_NODELAY` as the shims' server, and nothing else.
//!
//! `cargo run --release -p disttags-bench --bin bare -- 127.0.0.1:8999`

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// 40 bytes, about the size of a small package's dist-tags.
const BODY: &[u8] = br#"{"latest":"1.0.1","next":"2.0.0-beta.1"}"#;

async fn answer(_: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8999".to_owned());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bare: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(&addr).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("bare: cannot listen on {addr}: {e}");
                std::process::exit(2);
            }
        };
        println!("bare: listening on {addr}");
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(disttags_core::vars::HEADER_TIMEOUT_MS.default_duration());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let connection = http.serve_connection(TokioIo::new(stream), service_fn(answer));
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    });
}

//! The HTTP/1.1 server the hyper-based shims share: accept loop, request conversion, graceful drain.
//!
//! A shim supplies only what its platform adds: how to read the caller and request id from the
//! request (`ContextFn`), and where to listen. Everything else is here, once.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use disttags_core::{App, RequestContext};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// Reads what the platform says about a request (identity, request id) from its head.
pub type ContextFn = fn(&Parts) -> RequestContext;

/// A context that trusts no header: for servers no platform gateway stands in front of.
pub fn no_context(_: &Parts) -> RequestContext {
    RequestContext::default()
}

/// The largest request body read; the routes take none.
const MAX_BODY: usize = 64 * 1024;

/// How long in-flight requests may run after shutdown starts (Cloud Run allows 10 s in all).
pub const DRAIN: Duration = Duration::from_secs(8);

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and drains.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    context: ContextFn,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let http = hyper::server::conn::http1::Builder::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    eprintln!("disttags: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(answer(&app, context, request).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away mid-request is not an error of ours.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("disttags: some connections were still busy after {DRAIN:?}; closing them");
    }
}

async fn answer(
    app: &App,
    context: ContextFn,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let mut response = Response::new(Full::new(Bytes::from_static(
                br#"{"ok":false,"error":"request body too large or unreadable"}"#,
            )));
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            return response;
        }
    };
    let ctx = context(&parts);
    parts.extensions.insert(ctx);
    let response = app.handle(Request::from_parts(parts, body)).await;
    response.map(Full::new)
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

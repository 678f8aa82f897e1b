//! The HTTP/1.1 server the hyper-based shims share: accept loop, request conversion, graceful drain.
//!
//! A shim supplies only what its platform adds: how to read the caller and request id from the
//! request (`ContextFn`), and where to listen. Everything else is here, once.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use disttags_core::{App, Error, RequestContext, telemetry};
use http::request::Parts;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub mod identity;
pub mod observe;

/// Reads what the platform says about a request (identity, request id) from its head.
pub type ContextFn = fn(&Parts) -> RequestContext;

/// A context that trusts no header: for servers no platform gateway stands in front of.
pub fn no_context(_: &Parts) -> RequestContext {
    RequestContext::default()
}

/// What a shim does with one request once its body has been read.
pub trait Handler: Send + Sync + 'static {
    /// Answers the request; never fails.
    fn call(&self, request: Request<Bytes>) -> impl Future<Output = Response<Bytes>> + Send;
}

/// The common case: the platform's context is read from the request head, then the core answers.
#[derive(Debug)]
pub struct AppHandler {
    app: App,
    context: ContextFn,
}

impl AppHandler {
    /// Hands requests to `app` with the context `context` reads.
    pub fn new(app: App, context: ContextFn) -> Self {
        Self { app, context }
    }
}

impl Handler for AppHandler {
    async fn call(&self, request: Request<Bytes>) -> Response<Bytes> {
        let (mut parts, body) = request.into_parts();
        let context = (self.context)(&parts);
        // An empty context is what the core assumes without one; inserting it would cost an allocation.
        if context != RequestContext::default() {
            parts.extensions.insert(context);
        }
        self.app.handle(Request::from_parts(parts, body)).await
    }
}

/// The largest request body read: the routes take none, an Azure invocation envelope a few KB.
const MAX_BODY: usize = 1024 * 1024;

/// How long in-flight requests may run after shutdown starts (Cloud Run allows 10 s in all).
pub const DRAIN: Duration = Duration::from_secs(8);

/// How long after the signal the server still accepts and reads requests, so none already sent is lost.
pub const LINGER: Duration = Duration::from_millis(250);

/// How long a request body may take to arrive where no header read timeout is set (the routes take
/// none; an Azure invocation envelope is a few KB): past it the request is answered 408 and the
/// connection closed. Where one is set, a body gets as long as a head.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `handler` on `listener` until `shutdown` resolves, then stops accepting and drains.
///
/// `header_read_timeout`: how long a connection may take to send a request head, idle time between
/// requests on a kept-alive connection included; past it the connection is closed. `None` where
/// only the platform's front end connects (Cloud Run's, the Azure Functions host): it shields the
/// server from stalled clients and keeps its own connections open for minutes, and closing them
/// first would race its next request on them.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    header_read_timeout: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) {
    let body_read_timeout = header_read_timeout.unwrap_or(BODY_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let http = http1(header_read_timeout);
    // After the signal, each connection serves one request and closes.
    let mut last_call = http1(header_read_timeout);
    last_call.keep_alive(false);
    tokio::pin!(shutdown);
    let mut linger_until: Option<tokio::time::Instant> = None;
    loop {
        let stream = match linger_until {
            // Connections accepted just before the signal, or still queued by the kernel, carry
            // requests their clients sent before it; hyper would close them as idle if told to shut
            // down before it has read them. So for a short linger the server keeps accepting and
            // reading, then drains what is queued, and only then shuts connections down.
            Some(until) => match tokio::time::timeout_at(until, listener.accept()).await {
                Ok(Ok((stream, _))) => stream,
                Ok(Err(_)) => continue,
                Err(_) => match tokio::time::timeout(Duration::ZERO, listener.accept()).await {
                    Ok(Ok((stream, _))) => stream,
                    _ => break,
                },
            },
            None => tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        eprintln!("disttags: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => {
                    linger_until = Some(tokio::time::Instant::now() + LINGER);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move {
                Ok::<_, Infallible>(answer(handler.as_ref(), request, body_read_timeout).await)
            }
        });
        let builder = if linger_until.is_some() {
            &last_call
        } else {
            &http
        };
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
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

/// The HTTP/1.1 settings every connection gets.
fn http1(header_read_timeout: Option<Duration>) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    if let Some(timeout) = header_read_timeout {
        // hyper enforces the timeout only when it has a timer.
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(timeout);
    }
    builder
}

async fn answer<H: Handler>(
    handler: &H,
    request: Request<Incoming>,
    body_read_timeout: Duration,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // A GET carries no body: nothing to collect.
    let body = if hyper::body::Body::is_end_stream(&body) {
        Ok(Bytes::new())
    } else {
        match tokio::time::timeout(body_read_timeout, Limited::new(body, MAX_BODY).collect()).await
        {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(_)) => Err(Error::BodyTooLarge),
            Err(_) => Err(Error::BodyTimeout),
        }
    };
    let body = match body {
        Ok(bytes) => bytes,
        Err(error) => {
            let mut response = error.into_response().map(Full::new);
            // The rest of the body is not read: the connection cannot serve another request.
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            return response;
        }
    };
    handler
        .call(Request::from_parts(parts, body))
        .await
        .map(Full::new)
}

/// Binds `addr`, prints `{name} listening on http://{addr}{base_path}`, serves until SIGTERM or Ctrl-C, drains.
/// `header_read_timeout` as for [`serve`].
pub async fn listen_and_serve<H: Handler>(
    name: &str,
    addr: std::net::SocketAddr,
    base_path: &str,
    header_read_timeout: Option<Duration>,
    handler: Arc<H>,
) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "{name} listening on http://{local}{}",
        base_path.trim_end_matches('/')
    );
    serve(listener, handler, header_read_timeout, shutdown_signal()).await;
    eprintln!("{name}: stopped");
    Ok(())
}

/// How a server writes its request lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Together, at most `telemetry::FLUSH_EVERY` late: the lines of many requests cost one
    /// write(2) instead of one each. For a process whose CPU runs between requests.
    Batched,
    /// Each when its request is answered: for a platform that may throttle the CPU between
    /// requests (Cloud Run with request-based billing), where a waiting line would wait for the
    /// next request.
    AtOnce,
}

/// Runs a shim's async main on a multi-threaded runtime; an error is one line on stderr and exit 2.
pub fn run<F>(name: &str, lines: Lines, main: F) -> std::process::ExitCode
where
    F: Future<Output = Result<(), String>>,
{
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if lines == Lines::Batched {
        builder
            .on_thread_start(telemetry::defer_writes)
            .on_thread_stop(telemetry::flush);
    }
    let result = builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
        .and_then(|runtime| runtime.block_on(main));
    telemetry::flush();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{name}: {message}");
            std::process::ExitCode::from(2)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Fixed;

    impl Handler for Fixed {
        async fn call(&self, _: Request<Bytes>) -> Response<Bytes> {
            Response::new(Bytes::from_static(b"{}"))
        }
    }

    /// One HTTP/1.1 request on a new connection, read until the server closes it; bounded, so a
    /// server that keeps the connection open fails the test instead of hanging it.
    async fn ask(addr: std::net::SocketAddr, close: bool) -> std::io::Result<String> {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = if close {
            "GET /-/ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        } else {
            "GET /-/ping HTTP/1.1\r\nHost: t\r\n\r\n"
        };
        stream.write_all(request.as_bytes()).await?;
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
            .await
            .map_err(|_| std::io::Error::other("the server kept the connection open"))??;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    /// A request that arrives just after the shutdown signal (its client sent it before learning of
    /// the shutdown) is still read and answered, on a connection that then closes. With no linger the
    /// listener would be gone and the client refused. (Timing: the request comes 20 ms after the
    /// signal, well inside the 250 ms linger; nothing here measures speed.)
    #[tokio::test]
    async fn requests_racing_the_signal_are_answered() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (signal, shutdown) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::new(Fixed), None, async {
            let _ = shutdown.await;
        }));
        let before = ask(addr, true).await.expect("before");
        assert!(before.starts_with("HTTP/1.1 200"), "{before}");

        signal.send(()).expect("signal");
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A keep-alive request: after the signal the server answers it and closes on its own.
        let late = ask(addr, false)
            .await
            .expect("a request just after the signal is not refused");
        assert!(late.starts_with("HTTP/1.1 200"), "{late}");
        assert!(
            late.to_ascii_lowercase().contains("connection: close"),
            "{late}"
        );

        server.await.expect("server stops");
        assert!(
            ask(addr, true).await.is_err(),
            "after the linger, nothing listens"
        );
    }

    /// A client that sends half a request head, one that keeps a connection idle after its
    /// request, and one that stops in the middle of a body are all disconnected once the header
    /// read timeout passes (here 300 ms); without it each would hold its connection for ever.
    #[tokio::test]
    async fn stalled_idle_and_slow_connections_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (_stop, shutdown) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(
            listener,
            Arc::new(Fixed),
            Some(Duration::from_millis(300)),
            async {
                let _ = shutdown.await;
            },
        ));

        let mut stalled = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stalled
            .write_all(b"GET /-/ping HTTP/1.1\r\nHost: t\r\n")
            .await
            .expect("half a head");
        let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
        idle.write_all(b"GET /-/ping HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .expect("request");

        let mut slow_body = tokio::net::TcpStream::connect(addr).await.expect("connect");
        slow_body
            .write_all(b"POST /-/ping HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n{}")
            .await
            .expect("a head and part of its body");

        for (what, stream) in [
            ("stalled", &mut stalled),
            ("idle", &mut idle),
            ("slow body", &mut slow_body),
        ] {
            let mut reply = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply)).await;
            assert!(read.is_ok(), "{what}: the server kept the connection open");
            let reply = String::from_utf8_lossy(&reply);
            match what {
                "idle" => assert!(reply.starts_with("HTTP/1.1 200"), "{what}: {reply}"),
                "slow body" => assert!(reply.starts_with("HTTP/1.1 408"), "{what}: {reply}"),
                _ => {}
            }
        }
    }
}

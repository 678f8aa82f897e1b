//! `runtime_api`: the suite's Lambda Runtime API emulator ([`RuntimeApiEmulator`]) as a program, so
//! that the start-up benchmark (bench/startup.py) feeds `disttags-lambda` the way the tests do.
//!
//! Prints `READY {env}` once: a JSON object of the environment Lambda gives a function,
//! `AWS_LAMBDA_RUNTIME_API` (this emulator's `host:port`) and the rest of [`LAMBDA_ENV`]. Then reads
//! one request path per line from standard input (`/-/package/left-pad/dist-tags`), invokes the
//! function with the API Gateway HTTP API event for `GET path` (built by [`event`], as the tests
//! build it), waits for its answer and prints one JSON line: `{"status":200}`, or
//! `{"status":502,"error":"…"}` with what the function, or its failed initialisation, reported
//! (statuses as API Gateway would answer the client, by [`proxy_reply`]). Exits 0 at the end of
//! standard input.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use disttags_tests::lambda::{EventKind, LAMBDA_ENV, RuntimeApiEmulator, event, proxy_reply};
use disttags_tests::target::Sent;
use serde_json::{Map, Value, json};

fn main() -> ExitCode {
    // One worker serves the function's requests while this thread waits on standard input.
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    else {
        eprintln!("runtime_api: cannot start a runtime");
        return ExitCode::FAILURE;
    };
    let api = runtime.block_on(RuntimeApiEmulator::start());
    let mut env: Map<String, Value> = LAMBDA_ENV
        .iter()
        .map(|(name, value)| ((*name).to_owned(), Value::from(*value)))
        .collect();
    env.insert(
        "AWS_LAMBDA_RUNTIME_API".into(),
        Value::from(api.addr.as_str()),
    );
    let mut out = std::io::stdout().lock();
    if say(&mut out, &format!("READY {}", Value::Object(env))).is_err() {
        return ExitCode::FAILURE;
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else {
            break;
        };
        let path = line.trim();
        if path.is_empty() {
            continue;
        }
        let answer = runtime.block_on(answer(&api, path));
        if say(&mut out, &answer.to_string()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn say(out: &mut impl Write, line: &str) -> std::io::Result<()> {
    writeln!(out, "{line}")?;
    out.flush()
}

/// One invocation of `GET path`, as the line to print.
async fn answer(api: &RuntimeApiEmulator, path: &str) -> Value {
    let sent = Sent::get(path);
    let result = tokio::select! {
        result = api.invoke(event(EventKind::HttpV2, &sent), None) => result,
        error = init_error(api) => Err(format!("init error: {error}")),
    };
    let failure = result.as_ref().err().cloned();
    let reply = proxy_reply(result);
    match (reply.status, failure) {
        (200, None) => json!({ "status": 200 }),
        (status, Some(error)) => json!({ "status": status, "error": error }),
        (status, None) => json!({
            "status": status,
            "error": String::from_utf8_lossy(&reply.body),
        }),
    }
}

/// The first body the function posted to `/runtime/init/error`, once there is one.
async fn init_error(api: &RuntimeApiEmulator) -> String {
    loop {
        if let Some(error) = api
            .init_errors
            .lock()
            .ok()
            .and_then(|errors| errors.first().cloned())
        {
            return error;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

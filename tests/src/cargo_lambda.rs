//! `disttags-lambda` behind cargo-lambda's emulator (`cargo lambda watch --only-lambda-apis`), a real
//! front end: its Runtime API feeds the function, and its Function URL front end
//! (`/lambda-url/{function}/…`) turns each HTTP request into the event and the function's response
//! back into HTTP, as cargo-lambda does for a developer.
//!
//! `scripts/install-tools emulators` installs it into `.tools/` (the pinned PyPI wheel); a missing
//! cargo-lambda fails the test. One emulator per target, on a port of its own: it starts in about
//! 0.1 s, and a Function URL front end names one queue per function (a binary of the workspace), so
//! concurrent targets cannot share one.
//!
//! cargo-lambda 1.9's Function URL event has no authorizer (`requestContext.authorizer` is always
//! null): no identity reaches the function, as behind a real Function URL without IAM.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::lambda::LAMBDA_ENV;
use crate::target::{BoxFuture, Reply, Sent, Target, Transport, raw_request_body};
use crate::{Process, binary, free_port, repo_root};

/// The function's name: a binary of the workspace, as cargo-lambda requires of a `/lambda-url/` name.
pub const FUNCTION: &str = "disttags-lambda";

/// The `cargo-lambda` binary `scripts/install-tools` put in `.tools/bin` (or `$DISTTAGS_TOOLS/bin`);
/// panics, saying how to install it, when it is not there.
pub fn cargo_lambda() -> PathBuf {
    let tools = std::env::var_os("DISTTAGS_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools"));
    let path = tools.join("bin/cargo-lambda");
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-tools emulators (it installs cargo-lambda)",
        path.display()
    );
    path
}

/// `cargo lambda watch --only-lambda-apis` on a free port of 127.0.0.1; stopped when dropped.
#[derive(Debug)]
pub struct CargoLambda {
    /// `127.0.0.1:port`: the Runtime API under `/.rt`, the Function URLs under `/lambda-url`.
    pub addr: String,
    /// The emulator's process.
    pub process: Process,
}

impl CargoLambda {
    /// Starts the emulator in the function's package directory (as a developer runs it) and waits,
    /// up to 20 s, until it listens.
    pub async fn start() -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(cargo_lambda());
        // The binary is the `cargo lambda` subcommand: `lambda` is its first argument. It reads the
        // package's binaries with `cargo metadata --no-deps` ($CARGO, set by cargo test) and compiles
        // nothing with `--only-lambda-apis`.
        command
            .args(["lambda", "watch", "--only-lambda-apis"])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .current_dir(repo_root().join("shims/lambda"));
        let process = Process::spawn(command, false);
        let listening = format!("runtime_addr={addr}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let announced = process
                .stdout
                .lock()
                .expect("lock")
                .iter()
                .any(|line| line.contains(&listening));
            if announced && tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return Self { addr, process };
            }
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on {addr} within 20 s; stdout: {:?}, stderr: {:?}",
                process.stdout.lock().expect("lock"),
                process.stderr.lock().expect("lock"),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `AWS_LAMBDA_RUNTIME_API` of `function`: cargo-lambda's Runtime API under `/.rt`, the
    /// function's queue named in the path (lambda_runtime takes a base URL with a path only with
    /// its scheme).
    pub fn runtime_api(&self, function: &str) -> String {
        format!("http://{}/.rt/{function}", self.addr)
    }

    /// The Function URL of `function`, as cargo-lambda serves it.
    pub fn function_url(&self, function: &str) -> String {
        format!("http://{}/lambda-url/{function}", self.addr)
    }
}

/// `disttags-lambda` polling cargo-lambda's Runtime API; requests go through its Function URL front end.
#[derive(Debug)]
pub struct CargoLambdaTransport {
    /// The function process.
    pub process: Process,
    /// The emulator in front of it.
    pub emulator: CargoLambda,
}

impl Transport for CargoLambdaTransport {
    fn send<'a>(&'a self, sent: Sent<'a>) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            // The client's path byte for byte below the function's prefix; cargo-lambda keeps it
            // as `rawPath` (`@scope%2fpkg` stays encoded). An identity has no way through: the
            // front end's events carry no authorizer, and the request id is cargo-lambda's own.
            raw_request_body(
                &self.emulator.addr,
                sent.method.clone(),
                &format!("/lambda-url/{FUNCTION}{}", sent.path),
                sent.headers,
                Bytes::copy_from_slice(sent.body),
            )
            .await
        })
    }

    fn events(&self) -> Vec<serde_json::Value> {
        self.process.events()
    }

    fn carries_identity(&self) -> bool {
        false
    }

    fn url(&self) -> Option<String> {
        Some(self.emulator.function_url(FUNCTION))
    }

    fn process_mut(&mut self) -> Option<&mut Process> {
        Some(&mut self.process)
    }

    fn process(&self) -> Option<&Process> {
        Some(&self.process)
    }
}

/// `disttags-lambda` with exactly this environment (and Lambda's), behind a fresh cargo-lambda.
pub async fn cargo_lambda_target_with(vars: Vec<(String, String)>) -> Target {
    let emulator = CargoLambda::start().await;
    let mut command = Command::new(binary("disttags-lambda"));
    command
        .env_clear()
        .envs(vars)
        .envs(LAMBDA_ENV.iter().copied())
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
        .env("AWS_LAMBDA_RUNTIME_API", emulator.runtime_api(FUNCTION));
    let process = Process::spawn(command, false);
    Target {
        transport: Box::new(CargoLambdaTransport { process, emulator }),
        dir: None,
    }
}

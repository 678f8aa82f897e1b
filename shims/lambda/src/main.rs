//! `disttags-lambda`: clients built once at init, then invocations from the Runtime API.

use std::process::ExitCode;

use disttags_core::{Config, Defaults, Env};
use disttags_lambda::{Function, NAME, missing_runtime_var, report_init_error};

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{NAME}: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let env = Env::from_process();
        let observed = disttags_core::telemetry::install(
            disttags_core::telemetry::LogFormat::lambda(&env),
            &env,
        )
        .and_then(|()| disttags_core::telemetry::metrics_on(&env));
        let config = observed.and_then(|metrics| {
            Config::from_env(&env, Defaults::GUARDED).map(|config| (config, metrics))
        });
        let function = match config.and_then(|(c, metrics)| c.build_app().map(|a| (a, metrics))) {
            Ok((app, false)) => Function::new(app),
            Ok((app, true)) => match Function::new(app).with_metrics() {
                Ok(function) => function,
                Err(e) => {
                    eprintln!("{NAME}: {e}");
                    report_init_error(&e).await;
                    return ExitCode::from(2);
                }
            },
            Err(e) => {
                // One line says what to set; Lambda also gets it as the init error.
                eprintln!("{NAME}: {e}");
                report_init_error(&e.to_string()).await;
                return ExitCode::from(2);
            }
        };
        if let Some(var) = missing_runtime_var() {
            eprintln!(
                "{NAME}: {var} is not set: run this binary in AWS Lambda (or a Runtime API emulator)"
            );
            return ExitCode::from(2);
        }
        match function.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{NAME}: the Lambda runtime stopped: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

//! The `pulseboard` binary: configuration, logging, signals. Everything else
//! is in the library.

use std::process::ExitCode;

use clap::Parser;
use pulseboard::config::Config;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|e| {
        eprintln!("invalid --log filter {:?} ({e}); using info", config.log);
        EnvFilter::new("info")
    });
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    if config.log_json {
        fmt.json().init();
    } else {
        fmt.init();
    }
    // Two runtimes: WebSocket sessions on one, everything else (REST,
    // pages, the broker, the store) on the other. A fan-out wakes
    // thousands of session tasks at once; on a shared runtime every request
    // would queue behind them, so under load a task creation took several
    // times longer to answer, and its event reached subscribers that much
    // later. Separate runtimes are separate threads, which the kernel
    // schedules fairly.
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name(name)
            .build()
    };
    let (api, sessions) = match (runtime("pulseboard"), runtime("pulseboard-ws")) {
        (Ok(api), Ok(sessions)) => (api, sessions),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = api.block_on(pulseboard::start(
        config,
        sessions.handle().clone(),
        shutdown_signal(),
    ));
    // Sessions have ended (shutdown waited for them, or gave up after the
    // grace period); what is left is stopped without waiting further.
    sessions.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

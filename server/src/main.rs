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
    // Signal handlers first, so a SIGTERM at any moment after start-up
    // means a graceful shutdown.
    let signal = {
        let _runtime = api.enter();
        shutdown_signal()
    };
    let outcome = api.block_on(pulseboard::start(config, sessions.handle().clone(), signal));
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

/// Starts listening for Ctrl-C and SIGTERM now, and returns a future that
/// completes when either arrives.
///
/// Why now and not on the future's first poll: until a handler is
/// installed, SIGTERM's default action kills the process on the spot, with
/// no close frames and no draining. The accept loop may first poll this
/// future only after it has accepted (and served) connections, so a
/// deploy's SIGTERM right after start-up could otherwise kill instead of
/// stopping gracefully. Must be called inside the runtime.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let (mut interrupt, mut terminate) = match (interrupt, terminate) {
                (Ok(i), Ok(t)) => (i, t),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot listen for SIGINT or SIGTERM");
                    return std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("Ctrl-C received"),
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("Ctrl-C received");
    }
}

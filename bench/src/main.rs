//! `pulseboard-bench`: Pulseboard side by side with the seed article's
//! FastAPI design and a minimal axum server (the floor), on one machine, in
//! one run, so the ratios hold even when the machine is noisy.
//!
//! `make bench` runs `pulseboard-bench suite`, which starts every server,
//! runs every scenario against each, and writes `results.json`,
//! `results.md` and `fanout.svg`. The other subcommands run one scenario
//! against a server that is already running (for profiling it).

mod hist;
mod procstat;
mod publish;
mod receiver;
mod report;
mod scenario;
mod servers;
mod tally;
mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use receiver::Protocol;
use scenario::fanout::{Endpoint, Target};
use servers::{Kind, Programs, Server};

/// The instant every timestamp of the run counts from.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Prints `label: status()` every second until aborted.
pub fn progress(
    label: String,
    status: impl Fn() -> String + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            eprintln!(
                "      [{label}] {:>3.0} s: {}",
                start.elapsed().as_secs_f64(),
                status()
            );
        }
    })
}

#[derive(Parser)]
#[command(
    name = "pulseboard-bench",
    about = "Load generator and baselines for Pulseboard"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every scenario against every server, and the report (`make bench`).
    Suite(SuiteArgs),
    /// Rewrites results.md and fanout.svg from a results.json.
    Report {
        /// The directory holding results.json; the report is written there.
        #[arg(long, default_value = "docs/bench")]
        dir: PathBuf,
    },
    /// Fan-out against a running server.
    Fanout {
        #[command(flatten)]
        target: TargetArgs,
        /// Subscribe with the typed protocol on `/ws/v1`.
        #[arg(long)]
        typed: bool,
        /// With `--typed`: offer compression, as browsers do.
        #[arg(long)]
        deflate: bool,
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Publish rates to try in turn (tasks per second).
        #[arg(long, value_delimiter = ',', default_value = "100,200,500,1000")]
        rates: Vec<u32>,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
    /// Echo round trips against a running server.
    Echo {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 100)]
        connections: usize,
        #[arg(long, default_value_t = 4)]
        in_flight: usize,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
    /// Chat broadcast against a running server.
    Chat {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Messages per second per client, tried in turn.
        #[arg(long, value_delimiter = ',', default_value = "5,10,20")]
        rates: Vec<u32>,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
    /// Idle connections against a running server (needs --pid).
    Idle {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long)]
        typed: bool,
        /// Offer permessage-deflate, as browsers do.
        #[arg(long)]
        deflate: bool,
        #[arg(long, default_value_t = 15_000)]
        connections: usize,
        /// Open this many in all after measuring, to test capacity.
        #[arg(long, default_value_t = 19_000)]
        goal: usize,
    },
    /// The scale-out soak against running instances that share one Redis
    /// and database and allow open writes (`make soak` starts them).
    Soak {
        /// The instances' addresses, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        addrs: Vec<SocketAddr>,
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Task changes per second, sent to the instances in turn.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
    },
    /// Handshakes per second against a running server.
    Connect {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
    },
}

#[derive(Args)]
struct TargetArgs {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// The server's process id, for its CPU and memory.
    #[arg(long)]
    pid: Option<u32>,
}

impl TargetArgs {
    fn target(&self) -> Target {
        Target {
            name: self.addr.to_string(),
            addr: self.addr,
            pid: self.pid,
        }
    }
}

#[derive(Args, Clone)]
pub struct SuiteArgs {
    /// Where the report goes.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
    /// Where data directories and server logs go.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    #[arg(long, default_value = "target/release/pulseboard")]
    pulseboard: PathBuf,
    #[arg(long, default_value = "target/release/bench-floor")]
    floor: PathBuf,
    /// The Python of a virtualenv with `bench/seed/requirements.txt`.
    #[arg(long, default_value = "target/bench/venv/bin/python")]
    seed_python: PathBuf,
    #[arg(long, default_value = "bench/seed")]
    seed_dir: PathBuf,
    /// Servers to measure (seed, floor, pulseboard).
    #[arg(long, value_delimiter = ',', default_value = "seed,floor,pulseboard")]
    servers: Vec<String>,
    /// Seconds of publishing per fan-out or chat point.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Smaller ladders and counts, to try the tool out in a minute.
    #[arg(long)]
    quick: bool,
}

/// The scenarios' sizes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub fanout: Vec<(usize, Vec<u32>)>,
    pub chat_clients: usize,
    pub chat_rates: Vec<u32>,
    pub echo_connections: usize,
    pub echo_in_flight: usize,
    pub echo_secs: f64,
    pub idle_measure_at: usize,
    pub idle_goal: usize,
    pub connect_concurrency: usize,
    pub connect_secs: f64,
    pub point_secs: f64,
}

impl Plan {
    fn new(quick: bool, point_secs: f64) -> Plan {
        if quick {
            return Plan {
                fanout: vec![(100, vec![100, 500]), (1000, vec![100, 500])],
                chat_clients: 50,
                chat_rates: vec![5],
                echo_connections: 100,
                echo_in_flight: 4,
                echo_secs: 2.0,
                idle_measure_at: 2_000,
                idle_goal: 2_000,
                connect_concurrency: 32,
                connect_secs: 1.0,
                point_secs: point_secs.min(2.0),
            };
        }
        Plan {
            fanout: vec![
                (100, vec![500, 1000, 2000, 4000]),
                (1000, vec![100, 200, 500, 1000, 2000]),
                (5000, vec![30, 100, 200, 400]),
            ],
            chat_clients: 100,
            chat_rates: vec![5, 10, 20],
            echo_connections: 100,
            echo_in_flight: 4,
            echo_secs: 5.0,
            idle_measure_at: 15_000,
            idle_goal: 19_000,
            connect_concurrency: 32,
            connect_secs: 3.0,
            point_secs,
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    epoch();
    let cli = Cli::parse();
    let run_ids = AtomicU64::new(1);
    let outcome = match cli.command {
        Command::Suite(args) => suite(args).await,
        Command::Report { dir } => report::rewrite(&dir),
        Command::Fanout {
            target,
            typed,
            deflate,
            subscribers,
            rates,
            duration,
        } => {
            let endpoint = match (typed, deflate) {
                (true, true) => Endpoint::TypedCompressed,
                (true, false) => Endpoint::Typed,
                (false, _) => Endpoint::Notifications,
            };
            scenario::fanout::ladder(
                &target.target(),
                endpoint,
                subscribers,
                &rates,
                Duration::from_secs_f64(duration),
                &run_ids,
            )
            .await
            .map(|points| {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&points).unwrap_or_default()
                )
            })
        }
        Command::Soak {
            addrs,
            subscribers,
            rate,
            duration,
        } => scenario::soak::run(&addrs, subscribers, rate, Duration::from_secs_f64(duration))
            .await
            .map(|outcome| {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&outcome).unwrap_or_default()
                )
            }),
        Command::Echo {
            target,
            connections,
            in_flight,
            duration,
        } => scenario::echo::run(
            &target.target(),
            connections,
            in_flight,
            Duration::from_secs_f64(duration),
        )
        .await
        .map(|r| println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default())),
        Command::Chat {
            target,
            clients,
            rates,
            duration,
        } => scenario::chat::ladder(
            &target.target(),
            clients,
            &rates,
            Duration::from_secs_f64(duration),
            &run_ids,
        )
        .await
        .map(|r| println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default())),
        Command::Idle {
            target,
            typed,
            deflate,
            connections,
            goal,
        } => {
            let (path, protocol) = if typed {
                ("/ws/v1", Protocol::Typed)
            } else {
                ("/ws/notifications/tasks", Protocol::Text)
            };
            scenario::idle::run(&target.target(), path, protocol, deflate, connections, goal)
                .await
                .map(|r| println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default()))
        }
        Command::Connect {
            target,
            concurrency,
            duration,
        } => {
            let r = scenario::connect::run(
                &target.target(),
                "/ws/notifications/tasks",
                concurrency,
                Duration::from_secs_f64(duration),
            )
            .await;
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            Ok(())
        }
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pulseboard-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Everything, against every server, then the report.
async fn suite(args: SuiteArgs) -> Result<(), String> {
    let started = Instant::now();
    let kinds: Vec<Kind> = args
        .servers
        .iter()
        .map(|s| Kind::parse(s).ok_or_else(|| format!("unknown server {s:?}")))
        .collect::<Result<_, _>>()?;
    // Absolute paths: the seed runs in its own directory.
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let programs = Programs {
        pulseboard: absolute(&args.pulseboard),
        floor: absolute(&args.floor),
        seed_python: absolute(&args.seed_python),
        seed_dir: absolute(&args.seed_dir),
        work_dir: absolute(&args.work_dir),
    };
    let plan = Plan::new(args.quick, args.duration);
    let point = Duration::from_secs_f64(plan.point_secs);
    let run_ids = AtomicU64::new(1);
    let mut results = report::Results::new(&plan, &kinds);
    eprintln!("machine: {}", results.machine);

    // One long-lived instance of each server for the traffic scenarios.
    let mut running = Vec::new();
    for &kind in &kinds {
        let server = Server::start(kind, &programs, &format!("{kind:?}").to_lowercase())?;
        eprintln!(
            "started {} on {} (pid {})",
            kind.name(),
            server.addr,
            server.pid()
        );
        running.push(server);
    }
    let target = |s: &Server| Target {
        name: s.kind.name().to_owned(),
        addr: s.addr,
        pid: Some(s.pid()),
    };

    eprintln!(
        "\n== echo: {} connections x {} in flight",
        plan.echo_connections, plan.echo_in_flight
    );
    for s in &running {
        eprintln!("  {}", s.kind.name());
        let r = scenario::echo::run(
            &target(s),
            plan.echo_connections,
            plan.echo_in_flight,
            Duration::from_secs_f64(plan.echo_secs),
        )
        .await?;
        eprintln!(
            "    {:.0} round trips/s, p50 {:.2} ms, p99 {:.2} ms",
            r.round_trips_per_sec, r.p50_ms, r.p99_ms
        );
        results.echo.push(r);
    }

    for (n, rates) in &plan.fanout {
        eprintln!("\n== fan-out: {n} subscribers, rates {rates:?}/s");
        for s in &running {
            let mut endpoints = vec![Endpoint::Notifications];
            if s.kind.has_typed() {
                endpoints.push(Endpoint::Typed);
                endpoints.push(Endpoint::TypedCompressed);
            }
            for endpoint in endpoints {
                eprintln!("  {} {}", s.kind.name(), endpoint.name());
                match scenario::fanout::ladder(&target(s), endpoint, *n, rates, point, &run_ids)
                    .await
                {
                    Ok(points) => results.fanout.extend(points),
                    Err(e) => {
                        eprintln!("    failed: {e}");
                        results.failures.push(format!(
                            "fan-out {n} on {} {}: {e}",
                            s.kind.name(),
                            endpoint.name()
                        ));
                    }
                }
            }
        }
    }

    eprintln!(
        "\n== chat: {} clients, rates {:?}/s each",
        plan.chat_clients, plan.chat_rates
    );
    for s in &running {
        eprintln!("  {}", s.kind.name());
        match scenario::chat::ladder(
            &target(s),
            plan.chat_clients,
            &plan.chat_rates,
            point,
            &run_ids,
        )
        .await
        {
            Ok(points) => results.chat.extend(points),
            Err(e) => results
                .failures
                .push(format!("chat on {}: {e}", s.kind.name())),
        }
    }

    eprintln!(
        "\n== connect rate: {} clients in a loop",
        plan.connect_concurrency
    );
    for s in &running {
        let r = scenario::connect::run(
            &target(s),
            "/ws/notifications/tasks",
            plan.connect_concurrency,
            Duration::from_secs_f64(plan.connect_secs),
        )
        .await;
        eprintln!(
            "  {}: {:.0} handshakes/s, p99 {:.2} ms, {} errors",
            s.kind.name(),
            r.handshakes_per_sec,
            r.p99_ms,
            r.errors
        );
        results.connect.push(r);
    }
    drop(running);

    // Memory on fresh processes, so nothing freed by earlier scenarios is
    // reused and hidden.
    eprintln!(
        "\n== idle connections: memory at {}, capacity up to {}",
        plan.idle_measure_at, plan.idle_goal
    );
    for &kind in &kinds {
        // Seed and floor do not negotiate compression; Pulseboard does, and
        // browsers always offer it, so it is measured both ways.
        let mut endpoints = vec![("/ws/notifications/tasks", Protocol::Text, false)];
        if kind.has_typed() {
            endpoints.push(("/ws/v1", Protocol::Typed, false));
            endpoints.push(("/ws/v1", Protocol::Typed, true));
        }
        for (path, protocol, deflate) in endpoints {
            let label = format!(
                "{kind:?}-idle{}{}",
                path.replace('/', "-"),
                if deflate { "-deflate" } else { "" }
            )
            .to_lowercase();
            let server = Server::start(kind, &programs, &label)?;
            eprintln!(
                "  {} {path}{}",
                kind.name(),
                if deflate { " (deflate offered)" } else { "" }
            );
            match scenario::idle::run(
                &target(&server),
                path,
                protocol,
                deflate,
                plan.idle_measure_at,
                plan.idle_goal,
            )
            .await
            {
                Ok(r) => results.idle.push(r),
                Err(e) => results
                    .failures
                    .push(format!("idle on {} {path}: {e}", kind.name())),
            }
            drop(server);
        }
    }

    results.duration_secs = started.elapsed().as_secs_f64().round();
    report::write(&args.out, &results)?;
    eprintln!(
        "\nwrote {}/results.json, results.md and fanout.svg in {:.0} s",
        args.out.display(),
        results.duration_secs
    );
    if !results.failures.is_empty() {
        eprintln!("scenarios that could not run:");
        for f in &results.failures {
            eprintln!("  {f}");
        }
    }
    Ok(())
}

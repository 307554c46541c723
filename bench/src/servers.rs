//! The servers under test: started on a free loopback port, each with its
//! own data directory and log file, stopped with SIGTERM.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Which server, and how to reach its endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The seed article's FastAPI app (uvicorn, one worker).
    Seed,
    /// axum + `tokio::sync::broadcast`, nothing else.
    Floor,
    /// Pulseboard with its embedded defaults (SQLite, in-process broker).
    Pulseboard,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Seed => "seed (FastAPI)",
            Kind::Floor => "floor (axum)",
            Kind::Pulseboard => "Pulseboard",
        }
    }

    /// Whether it serves the typed `/ws/v1` endpoint.
    pub fn has_typed(self) -> bool {
        matches!(self, Kind::Pulseboard)
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "seed" => Some(Kind::Seed),
            "floor" => Some(Kind::Floor),
            "pulseboard" => Some(Kind::Pulseboard),
            _ => None,
        }
    }
}

/// Where the programs are.
#[derive(Clone, Debug)]
pub struct Programs {
    pub pulseboard: PathBuf,
    pub floor: PathBuf,
    /// The Python of the seed's virtualenv.
    pub seed_python: PathBuf,
    /// The folder holding the seed's `app.py`.
    pub seed_dir: PathBuf,
    /// Where data directories and logs go.
    pub work_dir: PathBuf,
}

/// A running server. Stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    data_dir: Option<PathBuf>,
}

/// The flags Pulseboard runs with in the benchmark, beyond its defaults:
/// the load generator's connections all come from one machine and one
/// publisher writes tasks without signing in.
pub const PULSEBOARD_FLAGS: &[&str] = &[
    "--open-writes",
    // Every simulated client comes from one loopback address.
    "--max-connections-per-address",
    "0",
    "--max-connections",
    "0",
    "--ws-max-connections",
    "20000",
    "--ws-rate-per-sec",
    "100000",
    "--ws-rate-burst",
    "100000",
    // One anonymous publisher writes every task.
    "--publish-rate-per-sec",
    "0",
    // Every subscriber connects from the same address, thousands at once.
    "--ws-handshakes-per-sec",
    "0",
];

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    pub fn start(kind: Kind, programs: &Programs, label: &str) -> Result<Server, String> {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let logs = programs.work_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let log_path = logs.join(format!("{label}.log"));
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let mut data_dir = None;
        let mut cmd = match kind {
            Kind::Floor => {
                let mut c = Command::new(&programs.floor);
                c.arg(addr.to_string());
                c
            }
            Kind::Seed => {
                let mut c = Command::new(&programs.seed_python);
                c.current_dir(&programs.seed_dir).args([
                    "-m",
                    "uvicorn",
                    "app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--workers",
                    "1",
                    "--log-level",
                    "warning",
                ]);
                c
            }
            Kind::Pulseboard => {
                let dir = programs.work_dir.join("data").join(label);
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let mut c = Command::new(&programs.pulseboard);
                c.arg("--addr")
                    .arg(addr.to_string())
                    .arg("--data-dir")
                    .arg(&dir)
                    .args(PULSEBOARD_FLAGS)
                    .env_remove("DATABASE_URL")
                    .env("NO_COLOR", "1");
                data_dir = Some(dir);
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", kind.name()))?;
        let mut server = Server {
            kind,
            addr,
            child,
            data_dir,
        };
        server.wait_ready(&log_path)?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `GET /healthz` until the server answers.
    fn wait_ready(&mut self, log: &Path) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                return Err(format!("{} exited ({status}):\n{text}", self.kind.name()));
            }
            if health(self.addr) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("{} did not answer within 60 s", self.kind.name()))
    }
}

/// Whether `GET /healthz` gets any HTTP answer.
fn health(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

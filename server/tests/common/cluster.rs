//! What scale-out tests need beside the server: a `redis-server` of their
//! own on a free loopback port (so they can kill and restart it), and a
//! PostgreSQL database of their own that every instance shares.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A `redis-server` process on 127.0.0.1. Killed when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Redis {
    /// Starts a server without persistence: a restart loses everything,
    /// like a cache node replaced in production.
    pub async fn start() -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("a directory for redis"),
        };
        redis.spawn().await;
        redis
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.command("PING").await.as_deref() != Some("+PONG") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends one inline command and returns the first line of the reply,
    /// or `None` when the server does not answer.
    pub async fn command(&self, cmd: &str) -> Option<String> {
        let reply = self.reply(cmd).await?;
        reply.lines().next().map(str::to_owned)
    }

    /// Sends one inline command and returns its whole (short) reply as
    /// text, or `None` when the server does not answer.
    pub async fn reply(&self, cmd: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).await.ok()?;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).to_string())
    }

    /// Cuts the pub/sub connection subscribed to the most channels (an
    /// instance with subscribers holds more than one with none), as a
    /// network fault would; Redis keeps its data.
    pub async fn cut_busiest_subscriber(&self) {
        let list = self
            .reply("CLIENT LIST TYPE pubsub")
            .await
            .expect("CLIENT LIST");
        let field = |line: &str, name: &str| -> Option<u64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
        };
        let id = list
            .lines()
            .filter_map(|l| Some((field(l, "sub")?, field(l, "id")?)))
            .max()
            .map(|(_, id)| id)
            .expect("a subscriber connection");
        let killed = self.command(&format!("CLIENT KILL ID {id}")).await;
        assert_eq!(killed.as_deref(), Some(":1"), "CLIENT KILL ID {id}");
    }

    /// SIGKILL: no goodbye to its clients, and (without persistence) all
    /// data gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }
}

/// The PostgreSQL server the tests may use, from `PULSEBOARD_TEST_POSTGRES`;
/// `None` (skip) outside CI when unset, a panic under `CI=true`.
pub fn postgres_url() -> Option<String> {
    match std::env::var("PULSEBOARD_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but PULSEBOARD_TEST_POSTGRES is not set: PostgreSQL tests cannot be skipped in CI")
        }
        _ => {
            eprintln!("SKIPPED: PULSEBOARD_TEST_POSTGRES is not set");
            None
        }
    }
}

/// `base` with its database name replaced.
pub fn with_database(base: &str, name: &str) -> String {
    let (head, tail) = match base.split_once('?') {
        Some((h, t)) => (h, Some(t)),
        None => (base, None),
    };
    let prefix = &head[..head.rfind('/').expect("a database in the URL") + 1];
    match tail {
        Some(t) => format!("{prefix}{name}?{t}"),
        None => format!("{prefix}{name}"),
    }
}

/// A new, empty PostgreSQL database named after `what`; returns its URL.
pub async fn new_database(base: &str, what: &str) -> String {
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(base)
        .await
        .expect("connect to postgres");
    let name = format!(
        "pb_{what}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create a database");
    admin.close().await;
    with_database(base, &name)
}

/// Starts `n` instances on one Redis and one database.
pub async fn instances(
    n: usize,
    redis: &Redis,
    database: &str,
    dirs: &[&Path],
    extra: &[&str],
) -> Vec<super::Server> {
    let redis_url = redis.url();
    let mut servers = Vec::with_capacity(n);
    for dir in dirs.iter().take(n) {
        let mut args = vec!["--redis-url", &redis_url, "--database-url", database];
        args.extend_from_slice(extra);
        // One token secret for the cluster: a token issued by one instance
        // is accepted by every other.
        let server = super::Server::start_with_env(
            dir,
            &args,
            &[(
                "PULSEBOARD_JWT_SECRET",
                "a cluster-wide test secret of enough length",
            )],
        )
        .await;
        servers.push(server);
    }
    servers
}

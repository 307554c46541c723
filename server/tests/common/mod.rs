//! Starts the real `pulseboard` binary on a free port for black-box tests.

#![allow(dead_code)]

pub mod cluster;
pub mod ws;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The password [`Server::signup`] registers every account with.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server process. Killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    logs: Arc<Mutex<String>>,
    /// The tasks copying stdout and stderr into `logs`; they end when the
    /// process closes its pipes.
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Starts the server with its data in `data_dir` and extra flags.
    pub async fn start(data_dir: &Path, args: &[&str]) -> Server {
        Self::start_with_env(data_dir, args, &[]).await
    }

    pub async fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulseboard"));
        cmd.arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env_remove("DATABASE_URL")
            .env("LEPTOS_OUTPUT_NAME", "pulseboard")
            .env("NO_COLOR", "1")
            // Every test client comes from 127.0.0.1, many tests open
            // sockets by the hundred, and the handshake rate per address
            // is not what they test: off unless a test's flags set it
            // (flags win over the environment).
            .env("PULSEBOARD_WS_HANDSHAKES_PER_SEC", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn pulseboard");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SocketAddr>(1);
        let mut readers = Vec::new();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        if let Some(Ok(addr)) = rest.split_whitespace().next().map(str::parse) {
                            let _ = tx.send(addr).await;
                        }
                    }
                    let mut l = logs.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            }));
        }
        let addr = match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(addr)) => addr,
            _ => panic!("server did not start; logs:\n{}", logs.lock().unwrap()),
        };
        Server {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            logs,
            readers,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// `POST /auth/register`.
    pub async fn register(&self, username: &str, password: &str) -> reqwest::Response {
        client()
            .post(self.url("/auth/register"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// `POST /token` with the password grant's form.
    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        client()
            .post(self.url("/token"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .unwrap()
    }

    /// Registers `username` with [`PASSWORD`] (or finds it already there,
    /// when the data directory is reused after a restart) and logs in.
    /// Returns the access token.
    pub async fn signup(&self, username: &str) -> String {
        let resp = self.register(username, PASSWORD).await;
        let status = resp.status();
        assert!(
            status == reqwest::StatusCode::CREATED || status == reqwest::StatusCode::CONFLICT,
            "register {username}: {status} {}",
            resp.text().await.unwrap_or_default()
        );
        let resp = self.login(username, PASSWORD).await;
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "login {username}");
        let body: Value = resp.json().await.unwrap();
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// The server process's resident memory in KiB, from
    /// `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// How many file descriptors the server process has open (its
    /// sockets among them), from `/proc/<pid>/fd`.
    pub fn open_fds(&self) -> usize {
        let pid = self.child.id().expect("running");
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    }

    /// A TCP connection to the server from the loopback address `from`
    /// (all of 127.0.0.0/8 is loopback: attack tests give the attacker and
    /// the ordinary client different addresses, as they would have), with
    /// a receive buffer of `recv_buffer` bytes when given.
    pub async fn connect_from(
        &self,
        from: [u8; 4],
        recv_buffer: Option<u32>,
    ) -> tokio::net::TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        ws::within("connect", socket.connect(self.addr))
            .await
            .unwrap()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// A metric's value from `GET /metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = client()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until a metric has `value`: the server's own word that
    /// something happened (a session ended, a subscription is in place),
    /// instead of a sleep that hopes so. Panics after 10 s.
    pub async fn wait_for_metric(&self, name: &str, value: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.metric(name).await;
            if now == value {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} stayed at {now}, expected {value}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process with SIGKILL (a crash: no graceful shutdown) and
    /// waits for it to be gone.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill the server");
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it
    /// exited successfully.
    pub async fn terminate(self) -> bool {
        self.stop().await.0
    }

    /// Sends SIGTERM, waits for the process to exit and for its output to
    /// be read to the end: whether it exited successfully, and everything
    /// it logged, teardown included.
    pub async fn stop(mut self) -> (bool, String) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let exited = match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => panic!("server did not exit after SIGTERM"),
        };
        for reader in std::mem::take(&mut self.readers) {
            tokio::time::timeout(Duration::from_secs(10), reader)
                .await
                .expect("the server's output ends once it has exited")
                .expect("log reader");
        }
        (exited, self.logs())
    }
}

/// `POST /tasks` with `writer` (a client carrying a token); asserts 201
/// and returns the task.
pub async fn create_task(writer: &reqwest::Client, server: &Server, title: &str) -> Value {
    let resp = create_task_response(writer, server, title).await;
    assert_eq!(
        resp.status(),
        reqwest::StatusCode::CREATED,
        "creating {title:?}"
    );
    resp.json().await.unwrap()
}

/// `POST /tasks` with a title, whatever the answer.
pub async fn create_task_response(
    writer: &reqwest::Client,
    server: &Server,
    title: &str,
) -> reqwest::Response {
    writer
        .post(server.url("/tasks"))
        .json(&json!({ "title": title }))
        .send()
        .await
        .unwrap()
}

/// `GET /tasks`, anonymously: the board's tasks.
pub async fn list_tasks(server: &Server) -> Value {
    let resp = client().get(server.url("/tasks")).send().await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    resp.json().await.unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A client that sends `Authorization: Bearer <token>` with every request.
pub fn authed_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .unwrap()
}

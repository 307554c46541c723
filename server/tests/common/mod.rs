//! Starts the real `pulseboard` binary on a free port for black-box tests.

#![allow(dead_code)]

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
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn pulseboard");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SocketAddr>(1);
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
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
            });
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

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it
    /// exited successfully.
    pub async fn terminate(mut self) -> bool {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => panic!("server did not exit after SIGTERM"),
        }
    }
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

//! Command-line flags, each with an environment-variable fallback.
//!
//! Every option is documented here once; `pulseboard --help` prints it and
//! the README's configuration table mirrors it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Pulseboard: a real-time task board and notification hub.
#[derive(Clone, Debug, Parser)]
#[command(name = "pulseboard", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PULSEBOARD_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Directory for the default SQLite database and other local state.
    /// Created if missing.
    #[arg(long, env = "PULSEBOARD_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Database URL (`sqlite://…` or `postgres://…`). Default: a SQLite file
    /// `pulseboard.db` in the data directory, created on first run.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Log filter in `tracing` syntax, e.g. `info` or `pulseboard=debug,info`.
    #[arg(long, env = "PULSEBOARD_LOG", default_value = "info")]
    pub log: String,

    /// Emit logs as JSON lines instead of human-readable text.
    #[arg(long, env = "PULSEBOARD_LOG_JSON", default_value_t = false)]
    pub log_json: bool,

    /// Where the built site (`pkg/`, assets) lives, as written by cargo-leptos.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,

    /// Largest accepted REST request body, in bytes.
    #[arg(long, env = "PULSEBOARD_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds a client may take to send a request's headers before the
    /// connection is dropped (guards against slowloris).
    #[arg(long, env = "PULSEBOARD_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,

    /// Seconds to wait for connections to finish after a shutdown signal.
    #[arg(long, env = "PULSEBOARD_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Largest accepted WebSocket message, in bytes; a larger one closes the
    /// connection with 1009.
    #[arg(long, env = "PULSEBOARD_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message_bytes: usize,
}

impl Config {
    /// The database URL to use: the configured one, or the default SQLite
    /// file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("pulseboard.db").display()
            ),
        }
    }

    /// A configuration with every default, for tests.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        Config::parse_from(["pulseboard", "--data-dir", &data_dir.display().to_string()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn default_database_is_sqlite_in_data_dir() {
        let c = Config::parse_from(["pulseboard", "--data-dir", "/tmp/x"]);
        assert_eq!(c.database_url(), "sqlite:///tmp/x/pulseboard.db?mode=rwc");
        let c = Config::parse_from(["pulseboard", "--database-url", "postgres://h/db"]);
        assert_eq!(c.database_url(), "postgres://h/db");
    }
}

//! Command-line flags, each with an environment-variable fallback.
//!
//! Every option is documented here once; `pulseboard --help` prints it and
//! the README's configuration table mirrors it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
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

    /// Redis URL (`redis://host:port/db`). When set, topics, history and
    /// fan-out go through Redis, so several instances act as one; unset,
    /// the in-process broker serves a single instance.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel Pulseboard uses, so that
    /// several deployments (or test runs) can share one Redis.
    #[arg(long, env = "PULSEBOARD_REDIS_PREFIX", default_value = "pulseboard")]
    pub redis_prefix: String,

    /// Log filter in `tracing` syntax, e.g. `info` or `pulseboard=debug,info`.
    #[arg(long, env = "PULSEBOARD_LOG", default_value = "info")]
    pub log: String,

    /// Emit logs as JSON lines instead of human-readable text.
    #[arg(long, env = "PULSEBOARD_LOG_JSON", default_value_t = false, value_parser = BoolishValueParser::new())]
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

    /// Seconds a request may take from its headers to the end of its
    /// response, the reading of its body included; past it the client gets
    /// 408 and the connection is closed. (WebSocket sessions, once
    /// upgraded, have their own rules.)
    #[arg(long, env = "PULSEBOARD_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Seconds a write to a client may stall (the client reads nothing)
    /// before the connection is dropped.
    #[arg(long, env = "PULSEBOARD_WRITE_TIMEOUT_SECS", default_value_t = 30)]
    pub write_timeout_secs: u64,

    /// Most TCP connections open at once, HTTP and WebSocket together; the
    /// next is answered 503 and closed before anything is read. 0: no
    /// limit (the process's open-file limit still applies).
    #[arg(long, env = "PULSEBOARD_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,

    /// Most TCP connections open at once from one client address (IPv6
    /// counted per /64); the next is answered 503 and closed before
    /// anything is read. Behind a reverse proxy every client shares the
    /// proxy's address: raise it there. 0: no limit.
    #[arg(
        long,
        env = "PULSEBOARD_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 512
    )]
    pub max_connections_per_address: usize,

    /// Seconds to wait for connections to finish after a shutdown signal.
    #[arg(long, env = "PULSEBOARD_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Largest accepted WebSocket message, in bytes; a larger one closes the
    /// connection with 1009.
    #[arg(long, env = "PULSEBOARD_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message_bytes: usize,

    /// Most WebSocket connections open at once; the next one is closed with
    /// 1008 right after the handshake.
    #[arg(long, env = "PULSEBOARD_WS_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub ws_max_connections: usize,

    /// Most WebSocket connections one signed-in account may have open at
    /// once; the next one is closed with 1008.
    #[arg(
        long,
        env = "PULSEBOARD_WS_MAX_CONNECTIONS_PER_USER",
        default_value_t = 64
    )]
    pub ws_max_connections_per_user: usize,

    /// Events queued for one connection before it counts as a slow consumer
    /// and is closed with 1013.
    #[arg(long, env = "PULSEBOARD_WS_SEND_QUEUE", default_value_t = 1024)]
    pub ws_send_queue: usize,

    /// Bytes of events (counted as their JSON size) queued for one
    /// connection before it counts as a slow consumer and is closed with
    /// 1013, whichever of the two bounds comes first.
    #[arg(long, env = "PULSEBOARD_WS_SEND_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub ws_send_queue_bytes: usize,

    /// Seconds between server pings (and typed heartbeats); a peer silent
    /// for one and a half intervals is dropped with 1008, so a dead peer is
    /// found within two intervals. 0 turns heartbeats off.
    #[arg(long, env = "PULSEBOARD_WS_PING_INTERVAL_SECS", default_value_t = 15)]
    pub ws_ping_interval_secs: u64,

    /// Sustained inbound messages per second per connection; exceeding it
    /// (beyond the burst) closes the connection with 1008.
    #[arg(long, env = "PULSEBOARD_WS_RATE_PER_SEC", default_value_t = 50)]
    pub ws_rate_per_sec: u32,

    /// WebSocket handshakes a second one client address may make (IPv6
    /// per /64); beyond the burst, 429 with Retry-After before the
    /// upgrade. 0: no limit.
    #[arg(long, env = "PULSEBOARD_WS_HANDSHAKES_PER_SEC", default_value_t = 20)]
    pub ws_handshakes_per_sec: u32,

    /// Handshakes one address may make at once before that rate applies.
    #[arg(long, env = "PULSEBOARD_WS_HANDSHAKE_BURST", default_value_t = 100)]
    pub ws_handshake_burst: u32,

    /// Seconds a WebSocket may stay open with no subscription and no
    /// message from the client (pongs do not count); then it is closed with
    /// 1008. Subscribed connections are never idle. 0: no limit.
    #[arg(long, env = "PULSEBOARD_WS_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub ws_idle_timeout_secs: u64,

    /// Inbound burst allowance per connection, in messages.
    #[arg(long, env = "PULSEBOARD_WS_RATE_BURST", default_value_t = 100)]
    pub ws_rate_burst: u32,

    /// Most topics one typed connection may subscribe to.
    #[arg(long, env = "PULSEBOARD_WS_MAX_SUBSCRIPTIONS", default_value_t = 128)]
    pub ws_max_subscriptions: usize,

    /// Events each topic keeps for resuming clients.
    #[arg(long, env = "PULSEBOARD_HISTORY_SIZE", default_value_t = 1000)]
    pub history_size: usize,

    /// Seconds an event stays in a topic's history.
    #[arg(long, env = "PULSEBOARD_HISTORY_TTL_SECS", default_value_t = 600)]
    pub history_ttl_secs: u64,

    /// Bytes of events (their JSON size) one topic's history keeps; the
    /// oldest go first.
    #[arg(long, env = "PULSEBOARD_HISTORY_MAX_BYTES", default_value_t = 4 << 20)]
    pub history_max_bytes: usize,

    /// Bytes of events all topics' histories keep together in the
    /// in-process broker; the oldest events of any topic go first. (With
    /// Redis, its own `maxmemory` bounds the total.)
    #[arg(long, env = "PULSEBOARD_HISTORY_MAX_TOTAL_BYTES", default_value_t = 256 << 20)]
    pub history_max_total_bytes: usize,

    /// Topics the in-process broker keeps at once (idle ones are
    /// forgotten); subscribing to or publishing on a new topic beyond it is
    /// refused until some are. (With Redis, its `maxmemory` governs.)
    #[arg(long, env = "PULSEBOARD_MAX_TOPICS", default_value_t = 100_000)]
    pub max_topics: usize,

    /// Bytes of events one resume may send; a client further behind is
    /// answered `recovered: false` and reloads its state instead.
    #[arg(long, env = "PULSEBOARD_RECOVERY_MAX_BYTES", default_value_t = 1 << 20)]
    pub recovery_max_bytes: usize,

    /// Origins allowed to open WebSockets (comma-separated, exact match,
    /// e.g. `https://board.example.com`). The server's own `http://<addr>`
    /// is always allowed, and so is `http://localhost:<port>` when it
    /// listens on a loopback address (development). Requests without an
    /// Origin (non-browser clients) are allowed.
    #[arg(long, env = "PULSEBOARD_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Secret for signing access tokens (HS256), at least 32 bytes. Without
    /// it a random secret is generated on first start and kept in
    /// `<data-dir>/jwt-secret`. Several instances must share one secret.
    #[arg(long, env = "PULSEBOARD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Reverse proxies (addresses or networks, comma-separated, e.g.
    /// `127.0.0.1,10.0.0.0/8`) whose `X-Forwarded-For` names the client for
    /// the per-address login and registration limits. Without it the
    /// header is ignored.
    #[arg(long, env = "PULSEBOARD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<crate::client_addr::TrustedProxy>,

    /// Token that `GET /metrics` requires (`Authorization: Bearer ...`).
    /// Without it, metrics are served only to clients on loopback.
    #[arg(long, env = "PULSEBOARD_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Publishes a second one account may make, on every endpoint
    /// together (task writes, `POST /publish`, `POST /publish/{channel}`,
    /// WebSocket publishing); anonymous writers count per address. Beyond
    /// it: 429 with Retry-After, or `rate_limited` on `/ws/v1`. 0: no
    /// limit.
    #[arg(long, env = "PULSEBOARD_PUBLISH_RATE_PER_SEC", default_value_t = 20)]
    pub publish_rate_per_sec: u32,

    /// Personal notifications one user's changes may cause another a
    /// minute, after a burst of five; the rest are counted and said in one
    /// line ("and 12 more changes by ann"). 0: no limit.
    #[arg(long, env = "PULSEBOARD_NOTICES_PER_MINUTE", default_value_t = 10)]
    pub notices_per_minute: u32,

    /// Publishes one account may make at once before the rate applies.
    #[arg(long, env = "PULSEBOARD_PUBLISH_BURST", default_value_t = 60)]
    pub publish_burst: u32,

    /// Seconds an access token stays valid.
    #[arg(long, env = "PULSEBOARD_TOKEN_TTL_SECS", default_value_t = 3600)]
    pub token_ttl_secs: u64,

    /// Longest a session may last from its sign-in with the password, in
    /// seconds (default 7 days). Refreshing a token never extends it; past
    /// it, the user signs in again.
    #[arg(long, env = "PULSEBOARD_SESSION_MAX_SECS", default_value_t = 7 * 24 * 3600)]
    pub session_max_secs: u64,

    /// Sessions one account may have at once; signing in beyond it ends
    /// the account's oldest session.
    #[arg(long, env = "PULSEBOARD_MAX_SESSIONS_PER_USER", default_value_t = 32)]
    pub max_sessions_per_user: usize,

    /// Allow creating, editing and deleting tasks without a token (for
    /// demos). Tokens that are sent are still checked.
    #[arg(long, env = "PULSEBOARD_OPEN_WRITES", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub open_writes: bool,

    /// Failed logins on one username within the lockout window before
    /// `POST /token` answers 429 (a client address gets four times as many).
    #[arg(long, env = "PULSEBOARD_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// Seconds of the login-throttling window.
    #[arg(long, env = "PULSEBOARD_LOGIN_LOCKOUT_SECS", default_value_t = 300)]
    pub login_lockout_secs: u64,

    /// Accounts one client address may register per hour; more get 429.
    #[arg(long, env = "PULSEBOARD_REGISTER_MAX_PER_HOUR", default_value_t = 20)]
    pub register_max_per_hour: u32,

    /// Origins allowed to call the REST API from a browser (CORS;
    /// comma-separated, exact match). Empty: no cross-origin access.
    #[arg(long, env = "PULSEBOARD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Serve a plain echo at `/autobahn` with 16 MiB limits and no
    /// heartbeats, for the Autobahn conformance suite. Off in production.
    #[arg(long, env = "PULSEBOARD_AUTOBAHN_ECHO", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub autobahn_echo: bool,
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
}

impl Config {
    /// Whether a WebSocket upgrade with this `Origin` may proceed. Exact
    /// byte comparison: browsers send origins in lowercase, so any variant
    /// is not one of ours.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let own = format!("http://{}", self.addr);
        // A server on loopback is reached locally, under either name; one
        // on any other address never accepts pages served from localhost.
        let local_name = self
            .addr
            .ip()
            .is_loopback()
            .then(|| format!("http://localhost:{}", self.addr.port()));
        origin == own
            || local_name.as_deref() == Some(origin)
            || self.allowed_origins.iter().any(|o| o.trim() == origin)
    }

    /// The ping interval, or `None` when heartbeats are off.
    pub fn ping_interval(&self) -> Option<Duration> {
        (self.ws_ping_interval_secs > 0).then(|| Duration::from_secs(self.ws_ping_interval_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_public_server_accepts_no_local_origin() {
        let c = Config::parse_from(["pulseboard", "--addr", "0.0.0.0:3000"]);
        assert!(!c.origin_allowed("http://localhost:3000"));
        assert!(!c.origin_allowed("http://127.0.0.1:3000"));
    }

    #[test]
    fn switches_take_what_people_write_in_the_environment() {
        for (value, expected) in [
            ("1", true),
            ("true", true),
            ("yes", true),
            ("on", true),
            ("0", false),
            ("false", false),
            ("no", false),
            ("off", false),
        ] {
            // The environment is process-wide: the value goes straight to
            // the switches' parser instead (the black-box tests set it).
            use clap::builder::TypedValueParser;
            let cmd = Config::command();
            let got = BoolishValueParser::new()
                .parse_ref(&cmd, None, std::ffi::OsStr::new(value))
                .unwrap();
            assert_eq!(got, expected, "{value}");
        }
        assert!(
            Config::try_parse_from(["pulseboard", "--open-writes"])
                .unwrap()
                .open_writes
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn origins_match_exactly() {
        let c = Config::parse_from([
            "pulseboard",
            "--addr",
            "127.0.0.1:8080",
            "--allowed-origins",
            "https://board.example.com,https://ops.example.com",
        ]);
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "https://board.example.com",
            "https://ops.example.com",
        ] {
            assert!(c.origin_allowed(ok), "{ok}");
        }
        for bad in [
            "https://evil.test",
            "http://localhost:3000",
            "http://127.0.0.1:3000",
            "null",
            "",
            "https://board.example.com.evil.test",
            "HTTPS://BOARD.EXAMPLE.COM",
            "https://Board.example.com",
            "http://board.example.com",
            "https://board.example.com:443",
        ] {
            assert!(!c.origin_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn default_database_is_sqlite_in_data_dir() {
        let c = Config::parse_from(["pulseboard", "--data-dir", "/tmp/x"]);
        assert_eq!(c.database_url(), "sqlite:///tmp/x/pulseboard.db?mode=rwc");
        let c = Config::parse_from(["pulseboard", "--database-url", "postgres://h/db"]);
        assert_eq!(c.database_url(), "postgres://h/db");
    }
}

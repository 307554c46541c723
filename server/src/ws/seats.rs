//! The per-account connection limit across instances, in Redis.
//!
//! Each signed-in connection holds a seat: a member of its account's
//! sorted set, scored with the time it expires. Taking a seat drops expired
//! members, counts the rest and adds one, in one Lua script, so two
//! instances cannot both take the last seat. Each instance renews its own
//! seats every [`RENEW_EVERY`]; a crashed instance's seats expire within
//! [`SEAT_TTL`], so its users are not locked out for long.
//!
//! When Redis cannot be reached, the seat is granted (each instance's own
//! limit still holds): refusing every signed-in socket during an outage
//! would turn a Redis fault into an outage of the board.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

/// How long a seat lives without being renewed.
pub const SEAT_TTL: Duration = Duration::from_secs(45);

/// How often an instance renews its seats.
pub const RENEW_EVERY: Duration = Duration::from_secs(15);

const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS: the account's set. ARGV: now (ms), the seat's expiry (ms), the
/// member, the limit, the set's lifetime (ms). Returns 1 if seated.
const TAKE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

pub struct ClusterSeats {
    conn: ConnectionManager,
    prefix: String,
    node: String,
    next: AtomicU64,
    max: usize,
    take: redis::Script,
    /// This instance's seats: member → account.
    held: Mutex<HashMap<String, i64>>,
}

/// What taking a seat came to.
pub enum Taken {
    Seated(ClusterSeat),
    /// The account has its maximum open across the cluster.
    Full,
    /// Redis did not answer: only the instance's own limit applies.
    Unavailable,
}

/// A seat in the cluster-wide count; dropping it gives it back.
pub struct ClusterSeat {
    seats: Arc<ClusterSeats>,
    user_id: i64,
    member: String,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl ClusterSeats {
    /// Starts renewing this instance's seats until `stop`.
    pub fn start(
        conn: ConnectionManager,
        prefix: &str,
        max: usize,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let seats = Arc::new(ClusterSeats {
            conn,
            prefix: prefix.to_owned(),
            node: format!("{:x}-{}", now_ms(), std::process::id()),
            next: AtomicU64::new(0),
            max: max.max(1),
            take: redis::Script::new(TAKE),
            held: Mutex::default(),
        });
        let renewing = seats.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(RENEW_EVERY);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => renewing.renew().await,
                }
            }
        });
        seats
    }

    fn key(&self, user_id: i64) -> String {
        format!("{}:seats:{user_id}", self.prefix)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A seat for one more connection of `user_id`.
    pub async fn take(self: &Arc<Self>, user_id: i64) -> Taken {
        let member = format!(
            "{}:{}",
            self.node,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let now = now_ms();
        let mut conn = self.conn.clone();
        let mut call = self.take.prepare_invoke();
        call.key(self.key(user_id))
            .arg(now)
            .arg(now + SEAT_TTL.as_millis() as u64)
            .arg(&member)
            .arg(self.max)
            .arg(SEAT_TTL.as_millis() as u64 * 2);
        let seated = match tokio::time::timeout(CALL_TIMEOUT, call.invoke_async::<u8>(&mut conn))
            .await
        {
            Ok(Ok(n)) => n == 1,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster-wide seat unavailable; the instance's limit applies");
                return Taken::Unavailable;
            }
            Err(_) => {
                tracing::warn!("cluster-wide seat timed out; the instance's limit applies");
                return Taken::Unavailable;
            }
        };
        if !seated {
            return Taken::Full;
        }
        self.held().insert(member.clone(), user_id);
        Taken::Seated(ClusterSeat {
            seats: self.clone(),
            user_id,
            member,
        })
    }

    /// Pushes every held seat's expiry forward.
    async fn renew(&self) {
        let held: Vec<(String, i64)> = self.held().iter().map(|(m, u)| (m.clone(), *u)).collect();
        if held.is_empty() {
            return;
        }
        let expiry = now_ms() + SEAT_TTL.as_millis() as u64;
        let mut pipe = redis::pipe();
        for (member, user_id) in &held {
            let key = self.key(*user_id);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg("XX")
                .arg(expiry)
                .arg(member)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(SEAT_TTL.as_millis() as u64 * 2)
                .ignore();
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "renewing connection seats failed"),
            Err(_) => tracing::warn!("renewing connection seats timed out"),
        }
    }
}

impl Drop for ClusterSeat {
    fn drop(&mut self) {
        self.seats.held().remove(&self.member);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // It expires on its own.
        };
        let seats = self.seats.clone();
        let key = seats.key(self.user_id);
        let member = std::mem::take(&mut self.member);
        runtime.spawn(async move {
            let mut conn = seats.conn.clone();
            let mut zrem = redis::cmd("ZREM");
            zrem.arg(key).arg(member);
            let _ = tokio::time::timeout(CALL_TIMEOUT, zrem.query_async::<()>(&mut conn)).await;
        });
    }
}

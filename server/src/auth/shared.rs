//! Login throttling and the registration quota in Redis, shared by every
//! instance: with several instances behind a load balancer, counts kept in
//! each process would give an attacker the allowance once per instance.
//!
//! The rules are those of [`super::throttle`]: a fixed window that starts
//! with the first failure, per username and (four times larger) per
//! address; a success clears the username and gives the address its
//! attempt back. Each check-and-count is one Lua script, so concurrent
//! guesses on several instances cannot all pass one check. Counters expire
//! with their window, so Redis holds nothing for idle keys.
//!
//! When Redis cannot be reached, logins and registrations fail closed
//! (503): an outage must not switch the throttle off.

use std::net::IpAddr;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::admission::AddressKey;
use crate::error::ApiError;

/// KEYS: the counters to check and count. ARGV: each key's limit, then the
/// window (ms). Returns 0 when counted, or the milliseconds until the
/// first full counter's window ends.
const ATTEMPT: &str = r"
local window = ARGV[#KEYS + 1]
for i, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k) or '0')
  if n >= tonumber(ARGV[i]) then
    local ttl = redis.call('PTTL', k)
    if ttl < 1 then ttl = 1 end
    return ttl
  end
end
for _, k in ipairs(KEYS) do
  if redis.call('INCR', k) == 1 then
    redis.call('PEXPIRE', k, window)
  end
end
return 0
";

/// KEYS: a counter. Takes one back, if any is left.
const REFUND: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return 0
";

/// How long one Redis call may take before the request fails (503).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How many more failures an address may have than a username (as in the
/// in-process throttle).
const ADDRESS_FACTOR: u32 = 4;

pub struct SharedLimits {
    conn: ConnectionManager,
    prefix: String,
    max_failures: u32,
    lockout: Duration,
    registrations_per_hour: u32,
    attempt: redis::Script,
    refund: redis::Script,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "shared limits in redis unavailable");
    ApiError::Unavailable("login limits are unavailable; retry".into())
}

impl SharedLimits {
    pub fn new(
        conn: ConnectionManager,
        prefix: &str,
        max_failures: u32,
        lockout: Duration,
        registrations_per_hour: u32,
    ) -> Self {
        SharedLimits {
            conn,
            prefix: prefix.to_owned(),
            max_failures: max_failures.max(1),
            lockout,
            registrations_per_hour: registrations_per_hour.max(1),
            attempt: redis::Script::new(ATTEMPT),
            refund: redis::Script::new(REFUND),
        }
    }

    /// A username tried from an address (or from nowhere known).
    fn pair_key(&self, username: &str, addr: Option<IpAddr>) -> String {
        match addr.map(AddressKey::from) {
            Some(addr) => format!("{}:throttle:pair:{addr}:{username}", self.prefix),
            None => format!("{}:throttle:pair:-:{username}", self.prefix),
        }
    }

    fn addr_key(&self, addr: IpAddr) -> String {
        format!("{}:throttle:addr:{}", self.prefix, AddressKey::from(addr))
    }

    /// Checks and counts in one step; `Err` carries how long to wait.
    async fn take(&self, keys: &[(String, u32)], window: Duration) -> Result<(), ApiError> {
        let mut invocation = self.attempt.prepare_invoke();
        for (key, _) in keys {
            invocation.key(key);
        }
        for (_, limit) in keys {
            invocation.arg(*limit);
        }
        invocation.arg(window.as_millis() as u64);
        let mut conn = self.conn.clone();
        let wait_ms: u64 = tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| unavailable("redis did not answer in time"))?
            .map_err(unavailable)?;
        if wait_ms == 0 {
            Ok(())
        } else {
            Err(ApiError::TooManyAttempts(Duration::from_millis(wait_ms)))
        }
    }

    /// A login attempt, counted as a failure until [`succeeded`] says
    /// otherwise.
    ///
    /// [`succeeded`]: Self::succeeded
    pub async fn attempt(&self, username: &str, addr: Option<IpAddr>) -> Result<(), ApiError> {
        let mut keys = vec![(self.pair_key(username, addr), self.max_failures)];
        if let Some(addr) = addr {
            keys.push((
                self.addr_key(addr),
                self.max_failures.saturating_mul(ADDRESS_FACTOR),
            ));
        }
        self.take(&keys, self.lockout).await
    }

    /// Clears the pair's count and gives the address its attempt back.
    /// Failures here only leave a count to expire, so they are logged.
    pub async fn succeeded(&self, username: &str, addr: Option<IpAddr>) {
        let mut conn = self.conn.clone();
        let mut del = redis::cmd("DEL");
        del.arg(self.pair_key(username, addr));
        match tokio::time::timeout(CALL_TIMEOUT, del.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "clearing a login count failed"),
            Err(_) => tracing::warn!("clearing a login count timed out"),
        }
        if let Some(addr) = addr {
            let mut conn = self.conn.clone();
            let mut refund = self.refund.prepare_invoke();
            refund.key(self.addr_key(addr));
            match tokio::time::timeout(CALL_TIMEOUT, refund.invoke_async::<()>(&mut conn)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "refunding a login attempt failed"),
                Err(_) => tracing::warn!("refunding a login attempt timed out"),
            }
        }
    }

    /// Takes one registration from the address's hourly quota.
    pub async fn registration(&self, addr: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(addr) = addr else { return Ok(()) };
        let key = format!("{}:quota:register:{}", self.prefix, AddressKey::from(addr));
        self.take(
            &[(key, self.registrations_per_hour)],
            Duration::from_secs(3600),
        )
        .await
        .map_err(|e| match e {
            ApiError::TooManyAttempts(wait) => ApiError::TooManyRegistrations(wait),
            other => other,
        })
    }
}

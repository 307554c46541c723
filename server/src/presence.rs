//! Who is connected to which topic: every signed-in subscription counts,
//! on whichever instance it lives.
//!
//! In one process the table is a map. With Redis, each topic has a sorted
//! set of `username` + connection members scored with their expiry; each
//! instance renews its own members every half heartbeat interval, and a
//! member not renewed for one and a half intervals (22.5 s by default) is
//! gone, so the users of an instance that crashed disappear within a
//! heartbeat or two without anyone cleaning up after it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A topic's presence, as `GET /presence/{topic}` answers it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Listing {
    pub topic: String,
    /// Signed-in users with at least one subscription, sorted.
    pub users: Vec<String>,
    /// Their subscriptions (a user with two tabs counts twice).
    pub connections: usize,
}

/// Why presence could not be read.
#[derive(Debug, thiserror::Error)]
#[error("presence unavailable: {0}")]
pub struct PresenceError(String);

#[derive(Clone)]
pub struct Presence(Arc<Inner>);

enum Inner {
    Local(Mutex<HashMap<String, HashMap<u64, String>>>),
    Redis(RedisPresence),
}

struct RedisPresence {
    conn: ConnectionManager,
    prefix: String,
    node: String,
    ttl: Duration,
    /// This instance's members: (topic, connection) → member. The truth
    /// that renewals write back, whatever happened to single writes.
    held: Mutex<HashMap<(String, u64), String>>,
    /// Joins and leaves, written in order by one task (so a quick
    /// subscribe-unsubscribe never ends with the join last).
    writes: mpsc::Sender<Write>,
}

/// One change to a topic's sorted set.
enum Write {
    Join { key: String, member: String },
    Leave { key: String, member: String },
}

/// Writes waiting for Redis; beyond it a join waits for the next renewal
/// and a leave for its member's expiry.
const WRITE_QUEUE: usize = 4096;
/// Writes sent to Redis in one pipeline.
const WRITE_BATCH: usize = 256;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Presence {
    /// Presence within this process.
    pub fn local() -> Self {
        Presence(Arc::new(Inner::Local(Mutex::default())))
    }

    /// Presence shared through Redis; members expire `ttl` after their
    /// last renewal, and this instance renews its own every `ttl / 3`
    /// until `stop`.
    pub fn redis(
        conn: ConnectionManager,
        prefix: &str,
        ttl: Duration,
        stop: CancellationToken,
    ) -> Self {
        let (writes, mut queued) = mpsc::channel(WRITE_QUEUE);
        let presence = Presence(Arc::new(Inner::Redis(RedisPresence {
            conn,
            prefix: prefix.to_owned(),
            node: format!("{:x}-{}", now_ms(), std::process::id()),
            ttl,
            held: Mutex::default(),
            writes,
        })));
        let worker = presence.clone();
        tokio::spawn(async move {
            let Inner::Redis(r) = &*worker.0 else {
                return;
            };
            let mut ticks = tokio::time::interval(ttl / 3);
            let mut batch = Vec::with_capacity(WRITE_BATCH);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => r.renew().await,
                    n = queued.recv_many(&mut batch, WRITE_BATCH) => {
                        if n == 0 {
                            return;
                        }
                        r.write(batch.drain(..)).await;
                    }
                }
            }
        });
        presence
    }

    /// `user`'s connection `conn` subscribed to `topic`.
    pub fn join(&self, topic: &str, user: &str, conn: u64) {
        match &*self.0 {
            Inner::Local(map) => {
                lock(map)
                    .entry(topic.to_owned())
                    .or_default()
                    .insert(conn, user.to_owned());
            }
            Inner::Redis(r) => {
                let member = format!("{user}\n{}:{conn}", r.node);
                lock(&r.held).insert((topic.to_owned(), conn), member.clone());
                let key = r.key(topic);
                if r.writes.try_send(Write::Join { key, member }).is_err() {
                    tracing::debug!("presence writes backed up; the next renewal joins");
                }
            }
        }
    }

    /// Connection `conn` left `topic`.
    pub fn leave(&self, topic: &str, conn: u64) {
        match &*self.0 {
            Inner::Local(map) => {
                let mut map = lock(map);
                if let Some(members) = map.get_mut(topic) {
                    members.remove(&conn);
                    if members.is_empty() {
                        map.remove(topic);
                    }
                }
            }
            Inner::Redis(r) => {
                let Some(member) = lock(&r.held).remove(&(topic.to_owned(), conn)) else {
                    return;
                };
                let key = r.key(topic);
                if r.writes.try_send(Write::Leave { key, member }).is_err() {
                    tracing::debug!("presence writes backed up; the member expires instead");
                }
            }
        }
    }

    /// Who is on `topic` now.
    pub async fn list(&self, topic: &str) -> Result<Listing, PresenceError> {
        let members: Vec<String> = match &*self.0 {
            Inner::Local(map) => lock(map)
                .get(topic)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
            Inner::Redis(r) => {
                let mut conn = r.conn.clone();
                let key = r.key(topic);
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(now_ms())
                    .ignore()
                    .cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1);
                let (members,): (Vec<String>,) =
                    tokio::time::timeout(CALL_TIMEOUT, pipe.query_async(&mut conn))
                        .await
                        .map_err(|_| PresenceError("redis did not answer in time".into()))?
                        .map_err(|e| PresenceError(e.to_string()))?;
                members
                    .into_iter()
                    .filter_map(|m| m.split_once('\n').map(|(user, _)| user.to_owned()))
                    .collect()
            }
        };
        let users: BTreeSet<String> = members.iter().cloned().collect();
        Ok(Listing {
            topic: topic.to_owned(),
            users: users.into_iter().collect(),
            connections: members.len(),
        })
    }
}

impl RedisPresence {
    fn key(&self, topic: &str) -> String {
        format!("{}:presence:{{{topic}}}", self.prefix)
    }

    /// Adds `member` to `key` until one lifetime from now, and keeps the
    /// set itself for two lifetimes after its last change.
    fn add(&self, pipe: &mut redis::Pipeline, key: &str, member: &str, expiry: u64) {
        let keep = self.ttl.as_millis() as u64 * 2;
        pipe.cmd("ZADD").arg(key).arg(expiry).arg(member).ignore();
        pipe.cmd("PEXPIRE").arg(key).arg(keep).ignore();
    }

    async fn run(&self, pipe: redis::Pipeline, what: &str) {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "{what} failed"),
            Err(_) => tracing::warn!("{what} timed out"),
        }
    }

    /// Sends queued joins and leaves in one pipeline, in their order.
    async fn write(&self, batch: impl Iterator<Item = Write>) {
        let expiry = now_ms() + self.ttl.as_millis() as u64;
        let mut pipe = redis::pipe();
        for write in batch {
            match write {
                Write::Join { key, member } => self.add(&mut pipe, &key, &member, expiry),
                Write::Leave { key, member } => {
                    pipe.cmd("ZREM").arg(key).arg(member).ignore();
                }
            }
        }
        self.run(pipe, "writing presence").await;
    }

    /// Pushes every member of this instance forward (and writes any whose
    /// join was lost).
    async fn renew(&self) {
        let held: Vec<(String, String)> = lock(&self.held)
            .iter()
            .map(|((topic, _), m)| (self.key(topic), m.clone()))
            .collect();
        if held.is_empty() {
            return;
        }
        let expiry = now_ms() + self.ttl.as_millis() as u64;
        for chunk in held.chunks(WRITE_BATCH * 4) {
            let mut pipe = redis::pipe();
            for (key, member) in chunk {
                self.add(&mut pipe, key, member, expiry);
            }
            self.run(pipe, "renewing presence").await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_presence_counts_signed_in_subscriptions_per_topic() {
        let p = Presence::local();
        p.join("room", "bob", 1);
        p.join("room", "bob", 2);
        p.join("room", "ann", 3);
        p.join("other", "cat", 4);
        let room = p.list("room").await.unwrap();
        assert_eq!(room.users, vec!["ann".to_owned(), "bob".to_owned()]);
        assert_eq!(room.connections, 3);
        p.leave("room", 1);
        p.leave("room", 3);
        let room = p.list("room").await.unwrap();
        assert_eq!((room.users, room.connections), (vec!["bob".to_owned()], 1));
        p.leave("room", 2);
        assert_eq!(p.list("room").await.unwrap().connections, 0);
        assert_eq!(p.list("other").await.unwrap().users, vec!["cat".to_owned()]);
    }
}

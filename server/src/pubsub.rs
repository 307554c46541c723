//! The real-time facade the endpoints use: the local [`Hub`] plus the
//! [`Broker`], kept in step.
//!
//! The broker is subscribed to a topic while at least one local connection
//! wants it. Broker calls are asynchronous (a Redis round trip), so two
//! connections joining and leaving at once could otherwise race and leave
//! the broker unsubscribed from a topic that has members. Each change is
//! therefore reconciled under that topic's own async lock against the hub's
//! membership *at that moment*; the last reconciliation always sees the
//! final state. Topics never wait on each other: a slow subscribe to one
//! does not hold up joins to any other.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;

use app::protocol::{Event, Payload, StreamPosition, Task};

use crate::broker::{Announcement, Broker, BrokerError, Recovery};
use crate::hub::{ConnHandle, Hub};
use crate::metrics::Metrics;
use crate::presence::Presence;

/// The topic on which every task change is published.
pub const TASKS_TOPIC: &str = "tasks";

/// The outcome of subscribing: where the topic stands, whether the missed
/// events could all be recovered, and those events.
#[derive(Debug)]
pub struct Subscribed {
    pub position: StreamPosition,
    pub recovered: bool,
    pub missed: Vec<Event>,
}

#[derive(Clone)]
pub struct Realtime {
    pub hub: Hub,
    broker: Arc<dyn Broker>,
    /// Per topic being reconciled or subscribed: whether the broker is
    /// subscribed, under that topic's own lock. An entry goes once the
    /// broker is unsubscribed and nobody else holds its lock.
    synced: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<bool>>>>>,
    pub metrics: Arc<Metrics>,
    /// Who is subscribed where (signed-in subscriptions).
    pub presence: Presence,
    /// Most bytes of events (as JSON) one recovery may send; beyond it the
    /// client is told to reload instead.
    recovery_max_bytes: usize,
    /// How fast each account (or anonymous address) may publish, on every
    /// endpoint together.
    pub quota: Arc<crate::topics::PublishQuota>,
    /// The ration of personal notifications per (sender, recipient).
    notices: Arc<crate::notices::Notices>,
}

/// Default for [`Realtime::with_recovery_limit`]: the size of one
/// connection's outbound queue, so a recovery is never more than a queue.
pub const RECOVERY_MAX_BYTES: usize = 1 << 20;

impl Realtime {
    /// With presence kept in this process; see
    /// [`with_presence`](Self::with_presence).
    pub fn new(hub: Hub, broker: Arc<dyn Broker>, metrics: Arc<Metrics>) -> Self {
        Realtime {
            hub,
            broker,
            synced: Arc::default(),
            metrics,
            presence: Presence::local(),
            recovery_max_bytes: RECOVERY_MAX_BYTES,
            quota: Arc::new(crate::topics::PublishQuota::new(0, 0)),
            notices: Arc::new(crate::notices::Notices::new(0)),
        }
    }

    /// Rations the personal notifications one user causes another.
    pub fn with_notices(mut self, notices: crate::notices::Notices) -> Self {
        self.notices = Arc::new(notices);
        self
    }

    /// A personal notification that `sender`'s change causes `recipient`,
    /// within the pair's ration (see [`crate::notices`]): sent now, with
    /// the count of any held back before it, or held back and summed up
    /// later.
    pub async fn notify_from(&self, sender: &str, recipient: &str, title: String, body: String) {
        use crate::notices::Verdict;
        match self.notices.admit(sender, recipient) {
            Verdict::Send { also: 0 } => self.notify_user(recipient, title, body).await,
            Verdict::Send { also } => {
                let body = format!("{body} (and {also} more changes by {sender})");
                self.notify_user(recipient, title, body).await
            }
            Verdict::Hold(None) => {}
            Verdict::Hold(Some(wait)) => {
                let rt = self.clone();
                let (sender, recipient) = (sender.to_owned(), recipient.to_owned());
                tokio::spawn(async move { rt.summarise(&sender, &recipient, wait).await });
            }
        }
    }

    /// Sends the count of held-back notifications once the pair may send
    /// again, unless a later notification has carried it already.
    async fn summarise(&self, sender: &str, recipient: &str, mut wait: std::time::Duration) {
        loop {
            tokio::time::sleep(wait).await;
            match self.notices.summary(sender, recipient) {
                Ok(0) => return,
                Ok(n) => {
                    let body = format!("{sender} made {n} more changes to your tasks");
                    self.notify_user(recipient, "More changes to your tasks".into(), body)
                        .await;
                    return;
                }
                Err(again) => wait = again,
            }
        }
    }

    /// Limits how fast each publisher may publish (unlimited without).
    pub fn with_publish_quota(mut self, quota: crate::topics::PublishQuota) -> Self {
        self.quota = Arc::new(quota);
        self
    }

    /// One publish by `who` (an account, or an anonymous writer's
    /// address), or the 429 that says when to retry.
    pub fn publishing(
        &self,
        who: Option<&crate::auth::AuthUser>,
        addr: Option<std::net::IpAddr>,
    ) -> Result<(), crate::error::ApiError> {
        self.quota
            .take(crate::topics::Publisher::of(who, addr))
            .map_err(crate::error::ApiError::PublishingTooFast)
    }

    /// Bounds what one recovery may send, in bytes of JSON.
    pub fn with_recovery_limit(mut self, max_bytes: usize) -> Self {
        self.recovery_max_bytes = max_bytes;
        self
    }

    /// Keeps presence in `presence` instead (Redis, for several instances).
    pub fn with_presence(mut self, presence: Presence) -> Self {
        self.presence = presence;
        self
    }

    /// Makes the broker's subscription to `topic` match the hub's members.
    async fn sync(&self, topic: &str) -> Result<(), BrokerError> {
        let slot = {
            let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
            synced.entry(topic.to_owned()).or_default().clone()
        };
        let result = {
            let mut have = slot.lock().await;
            let wanted = self.hub.has_members(topic);
            if wanted && !*have {
                self.broker.subscribe(topic).await.map(|()| *have = true)
            } else if !wanted && *have {
                self.broker.unsubscribe(topic).await.map(|()| *have = false)
            } else {
                Ok(())
            }
        };
        // Drop the entry if it says "not subscribed" and only the map and
        // this call hold it: a later sync starts from a fresh "false".
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&slot) == 2 && slot.try_lock().is_ok_and(|have| !*have) {
            synced.remove(topic);
        }
        result
    }

    /// Subscribes `conn` to `topic`; with `since`, also recovers what it
    /// missed. Live events start queueing for `conn` before the position is
    /// read, so nothing falls between history and live delivery; the session
    /// drops queued events at or below the returned position.
    pub async fn subscribe(
        &self,
        conn: &ConnHandle,
        topic: &str,
        since: Option<&StreamPosition>,
    ) -> Result<Subscribed, BrokerError> {
        self.hub.add(conn, topic);
        if let Err(e) = self.sync(topic).await {
            self.unsubscribe(conn.id, topic).await;
            return Err(e);
        }
        let result = match since {
            None => self
                .broker
                .position(topic)
                .await
                .map(|position| Subscribed {
                    position,
                    recovered: true,
                    missed: Vec::new(),
                }),
            Some(since) => match self.history(topic, since).await {
                Ok(Recovery::Complete(missed)) => {
                    let position = match missed.last() {
                        Some(last) => StreamPosition {
                            offset: last.offset,
                            epoch: last.epoch.clone(),
                        },
                        None => since.clone(),
                    };
                    Ok(Subscribed {
                        position,
                        recovered: true,
                        missed,
                    })
                }
                Ok(Recovery::Gap) => self
                    .broker
                    .position(topic)
                    .await
                    .map(|position| Subscribed {
                        position,
                        recovered: false,
                        missed: Vec::new(),
                    }),
                Err(e) => Err(e),
            },
        };
        if result.is_err() {
            self.unsubscribe(conn.id, topic).await;
        }
        result
    }

    /// Removes `conn` from `topic`, unsubscribing the broker if it was the
    /// last local member. Broker failures here are logged: the next sync of
    /// the topic repairs them.
    pub async fn unsubscribe(&self, conn_id: u64, topic: &str) {
        if self.hub.remove(conn_id, topic) {
            if let Err(e) = self.sync(topic).await {
                tracing::warn!(topic, error = %e, "broker unsubscribe failed");
            }
        }
    }

    /// The events of `topic` after `since`, if they are all still kept and
    /// together within the recovery limit. Past the limit the answer is a
    /// gap: the client reloads its state (one request) rather than receive
    /// an unbounded replay, which is what makes resuming with an old
    /// position useless as an amplifier.
    pub async fn history(
        &self,
        topic: &str,
        since: &StreamPosition,
    ) -> Result<Recovery, BrokerError> {
        let recovery = self.broker.history(topic, since).await?;
        if let Recovery::Complete(events) = &recovery {
            let mut budget = self.recovery_max_bytes;
            for event in events {
                match budget.checked_sub(crate::broker::json_bytes(event)) {
                    Some(left) => budget = left,
                    None => {
                        self.metrics
                            .recoveries_too_large
                            .fetch_add(1, Ordering::Relaxed);
                        return Ok(Recovery::Gap);
                    }
                }
            }
        }
        Ok(recovery)
    }

    pub async fn publish(&self, topic: &str, payload: Payload) -> Result<Event, BrokerError> {
        let event = self.broker.publish(topic, payload).await?;
        self.metrics.published.fetch_add(1, Ordering::Relaxed);
        Ok(event)
    }

    /// Publishes a change on a board's topic (`tasks` for the shared
    /// board, `board:<id>` for the others). Writes check
    /// [`healthy`](Self::healthy) first and are refused while the broker is
    /// unreachable; if it fails between the store's commit and this
    /// publish, the change is stored but its event is not, so the topic is
    /// invalidated: it starts a new epoch once the broker is back, and every
    /// board reloads its tasks instead of silently missing the change.
    pub async fn board_event(&self, board: i64, payload: Payload) {
        let topic = app::protocol::board_topic(board);
        if let Err(e) = self.publish(&topic, payload).await {
            tracing::error!(error = %e, "publishing a board event failed; boards will reload");
            self.broker.invalidate(&topic);
        }
    }

    pub async fn task_created(&self, task: &Task) {
        self.board_event(task.board_id, Payload::TaskCreated { task: task.clone() })
            .await;
    }

    pub async fn task_updated(&self, task: &Task) {
        self.board_event(task.board_id, Payload::TaskUpdated { task: task.clone() })
            .await;
    }

    pub async fn task_deleted(&self, task: &Task) {
        self.board_event(
            task.board_id,
            Payload::TaskDeleted {
                id: task.id,
                version: task.version,
            },
        )
        .await;
    }

    /// Publishes a notification on a user's personal topic. Logged, not
    /// returned, on failure, as for task events.
    pub async fn notify_user(&self, username: &str, title: String, body: String) {
        let payload = Payload::Notification {
            title,
            body,
            level: app::protocol::Level::Info,
        };
        if let Err(e) = self
            .publish(&app::protocol::user_topic(username), payload)
            .await
        {
            tracing::error!(error = %e, "publishing a personal notification failed");
        }
    }

    /// Drops a topic's history (see [`Broker::forget`]).
    pub async fn forget(&self, topic: &str) -> Result<(), BrokerError> {
        self.broker.forget(topic).await
    }

    /// The topic's current position.
    pub async fn position(&self, topic: &str) -> Result<StreamPosition, BrokerError> {
        self.broker.position(topic).await
    }

    pub fn healthy(&self) -> bool {
        self.broker.healthy()
    }

    /// Fails fast while the broker is unreachable. Writes whose change
    /// must become an event call this before touching the store, so a
    /// change is not committed when its event cannot be published.
    pub fn ensure_up(&self) -> Result<(), BrokerError> {
        if self.broker.healthy() {
            Ok(())
        } else {
            Err(BrokerError::Unavailable("the broker is unreachable".into()))
        }
    }

    /// Sends `announcement` to every instance (see [`Broker::announce`]).
    pub async fn announce(&self, announcement: Announcement) -> Result<(), BrokerError> {
        self.broker.announce(announcement).await
    }

    /// Stops the broker's background work (see [`Broker::shutdown`]).
    pub async fn shutdown(&self) {
        self.broker.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::memory::{HistoryLimits, MemoryBroker};
    use std::time::Duration;

    fn realtime() -> Realtime {
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(64, 1 << 20, metrics.clone());
        let sink = hub.clone();
        let broker = MemoryBroker::new(
            HistoryLimits::new(100, Duration::from_secs(60)),
            Arc::new(move |e| sink.deliver(e)),
        );
        Realtime::new(hub, Arc::new(broker), metrics)
    }

    fn chat(text: &str) -> Payload {
        Payload::Chat {
            from: "x".into(),
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn publish_reaches_local_subscribers_through_the_broker() {
        let rt = realtime();
        let (conn, mut rx) = rt
            .hub
            .register(crate::hub::Halt::child_of(&Default::default()));
        let sub = rt.subscribe(&conn, "room", None).await.unwrap();
        assert_eq!(sub.position.offset, 0);
        rt.publish("room", chat("hi")).await.unwrap();
        let delivery = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("delivered within 5 s")
            .unwrap();
        assert_eq!(delivery.event.offset, 1);
        rt.unsubscribe(conn.id, "room").await;
        rt.publish("room", chat("gone")).await.unwrap();
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn resubscribing_with_since_recovers_exactly_the_missed_events() {
        let rt = realtime();
        let (conn, _rx) = rt
            .hub
            .register(crate::hub::Halt::child_of(&Default::default()));
        let first = rt.subscribe(&conn, "room", None).await.unwrap();
        rt.unsubscribe(conn.id, "room").await;
        for i in 0..3 {
            rt.publish("room", chat(&i.to_string())).await.unwrap();
        }
        let again = rt
            .subscribe(&conn, "room", Some(&first.position))
            .await
            .unwrap();
        assert!(again.recovered);
        assert_eq!(
            again.missed.iter().map(|e| e.offset).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(again.position.offset, 3);

        let stale = StreamPosition {
            offset: 1,
            epoch: "another-epoch".into(),
        };
        let lost = rt.subscribe(&conn, "room", Some(&stale)).await.unwrap();
        assert!(!lost.recovered);
        assert_eq!(lost.position.offset, 3);
    }
}

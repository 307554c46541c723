//! Client-side board state and its single reducer.
//!
//! The page renders `base` (the task list loaded during server rendering)
//! merged with `overlay` (every change seen since, from the live socket or
//! from this browser's own REST calls). [`Board::apply`] is the only place
//! that state changes, and it is a pure function, so it is tested natively.
//!
//! Changes can arrive twice (our own REST answer and the event it caused) or
//! out of order (a reconnect replays history): the task `version` decides,
//! and a deletion is final because ids are never reused.

use std::collections::{BTreeMap, VecDeque};

use crate::protocol::{Event, Level, Payload, ServerMessage, Task, TaskStatus};

/// What a personal topic's name starts with (`user:<name>`).
const PERSONAL_PREFIX: &str = "user:";

/// How many toasts stay on screen at once; older ones are dropped first.
pub const MAX_TOASTS: usize = 4;

/// Whether the live connection is up, as shown in the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Connection {
    Offline,
    /// The state the page is rendered in: it connects as soon as it hydrates.
    #[default]
    Connecting,
    Live,
}

/// A short-lived message in the corner of the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toast {
    pub id: u64,
    pub level: Level,
    pub text: String,
}

/// What the overlay knows of one task.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Known {
    Present(Task),
    Deleted,
}

/// A change the page itself or the socket reports.
#[derive(Clone, Debug)]
pub enum Action {
    /// A task this browser created over REST. Toasts only if the live event
    /// for it has not already done so.
    Created(Task),
    /// A task this browser changed over REST.
    Upsert(Task),
    /// A task this browser deleted over REST.
    Removed(i64),
    /// A message from the live socket.
    Server(ServerMessage),
    /// The socket's state changed.
    Connection(Connection),
    /// Show a toast that did not come from an event (an error, say).
    Notify(Level, String),
    /// The user (or its timer) dismissed a toast.
    Dismiss(u64),
}

/// The state the page renders, apart from the server-rendered base list.
#[derive(Clone, Debug, Default)]
pub struct Board {
    overlay: BTreeMap<i64, Known>,
    pub toasts: VecDeque<Toast>,
    pub connection: Connection,
    next_toast: u64,
    /// Last offset seen per topic, so a reconnect can resume. Keyed by
    /// topic, so the personal `user:<name>` stream never moves the `tasks`
    /// position the task list is resumed from.
    pub positions: BTreeMap<String, (u64, String)>,
    /// The personal topic this connection is subscribed to, if any: shown
    /// on the connection pill, so a user (and a test) can tell that
    /// notifications will arrive.
    pub personal: Option<String>,
}

impl Board {
    /// The reducer. Returns the id of a toast it added, so the caller can
    /// schedule its dismissal.
    pub fn apply(&mut self, action: Action) -> Option<u64> {
        match action {
            Action::Created(task) => {
                let text = format!("Created “{}”", task.title);
                let fresh = self.upsert(task);
                fresh.then(|| self.toast(Level::Success, text))
            }
            Action::Upsert(task) => {
                self.upsert(task);
                None
            }
            Action::Removed(id) => {
                self.overlay.insert(id, Known::Deleted);
                None
            }
            Action::Connection(c) => {
                self.connection = c;
                if c != Connection::Live {
                    self.personal = None;
                }
                None
            }
            Action::Notify(level, text) => Some(self.toast(level, text)),
            Action::Dismiss(id) => {
                self.toasts.retain(|t| t.id != id);
                None
            }
            Action::Server(msg) => self.apply_server(msg),
        }
    }

    fn apply_server(&mut self, msg: ServerMessage) -> Option<u64> {
        match msg {
            ServerMessage::Event(event) => self.apply_event(event),
            ServerMessage::Subscribed {
                topic, position, ..
            } => {
                if topic.starts_with(PERSONAL_PREFIX) {
                    self.personal = Some(topic.clone());
                }
                self.positions
                    .insert(topic, (position.offset, position.epoch));
                None
            }
            ServerMessage::Resync { topic, .. } => {
                // The live layer reloads the task list for `tasks`; a
                // personal topic's lost notifications cannot be fetched.
                let text = if topic.starts_with(PERSONAL_PREFIX) {
                    "Some notifications were missed while the connection was catching up."
                } else {
                    "Some live changes were missed; the board was reloaded."
                };
                self.positions.remove(&topic);
                Some(self.toast(Level::Warning, text.into()))
            }
            ServerMessage::Error { message, .. } => Some(self.toast(Level::Error, message)),
            ServerMessage::Hello { .. }
            | ServerMessage::Unsubscribed { .. }
            | ServerMessage::Published { .. }
            | ServerMessage::Pong { .. }
            | ServerMessage::Authed { .. }
            | ServerMessage::Heartbeat { .. } => None,
        }
    }

    fn apply_event(&mut self, event: Event) -> Option<u64> {
        self.positions
            .insert(event.topic.clone(), (event.offset, event.epoch.clone()));
        match event.payload {
            Payload::TaskCreated { task } => {
                let text = format!("New task: {}", task.title);
                let fresh = self.upsert(task);
                fresh.then(|| self.toast(Level::Success, text))
            }
            Payload::TaskUpdated { task } => {
                let text = format!("Updated: {} ({})", task.title, task.status.label());
                let fresh = self.upsert(task);
                fresh.then(|| self.toast(Level::Info, text))
            }
            Payload::TaskDeleted { id, .. } => {
                let fresh = self.overlay.get(&id) != Some(&Known::Deleted);
                self.overlay.insert(id, Known::Deleted);
                fresh.then(|| self.toast(Level::Warning, format!("Task #{id} deleted")))
            }
            Payload::Notification { title, body, level } => {
                Some(self.toast(level, format!("{title}: {body}")))
            }
            Payload::Chat { from, text } => {
                Some(self.toast(Level::Info, format!("{from}: {text}")))
            }
            Payload::Presence { .. } => None,
            Payload::Message { text } => Some(self.toast(Level::Info, text)),
            Payload::BoardUpdated { board } => {
                Some(self.toast(Level::Info, format!("Board “{}” updated", board.name)))
            }
            Payload::BoardDeleted { .. } => {
                Some(self.toast(Level::Warning, "This board was deleted".into()))
            }
            Payload::MemberRemoved { username, .. } => {
                Some(self.toast(Level::Info, format!("{username} is no longer a member")))
            }
            // Label changes show on the cards; no toast.
            Payload::LabelSet { .. } | Payload::LabelRemoved { .. } => None,
            Payload::MemberSet { member } => Some(self.toast(
                Level::Info,
                format!("{} is now a {}", member.username, member.role.as_str()),
            )),
        }
    }

    /// Records a task unless a newer version (or its deletion) is known.
    /// Returns whether anything changed.
    fn upsert(&mut self, task: Task) -> bool {
        match self.overlay.get(&task.id) {
            Some(Known::Deleted) => false,
            Some(Known::Present(old)) if old.version >= task.version => false,
            _ => {
                self.overlay.insert(task.id, Known::Present(task));
                true
            }
        }
    }

    fn toast(&mut self, level: Level, text: String) -> u64 {
        self.next_toast += 1;
        let id = self.next_toast;
        self.toasts.push_back(Toast { id, level, text });
        while self.toasts.len() > MAX_TOASTS {
            self.toasts.pop_front();
        }
        id
    }

    /// The tasks to show: `base` updated by everything seen since, ordered by id.
    pub fn merged(&self, base: &[Task]) -> Vec<Task> {
        let mut out: BTreeMap<i64, Task> = base.iter().map(|t| (t.id, t.clone())).collect();
        for (id, known) in &self.overlay {
            match known {
                Known::Deleted => {
                    out.remove(id);
                }
                Known::Present(task) => {
                    let newer = out.get(id).is_none_or(|b| b.version < task.version);
                    if newer {
                        out.insert(*id, task.clone());
                    }
                }
            }
        }
        out.into_values().collect()
    }

    /// The tasks of one column, in their order (position, then id).
    pub fn column(&self, base: &[Task], status: TaskStatus) -> Vec<Task> {
        let mut tasks: Vec<Task> = self
            .merged(base)
            .into_iter()
            .filter(|t| t.status == status)
            .collect();
        tasks.sort_by_key(|t| (t.position, t.id));
        tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::StreamPosition;
    use chrono::Utc;

    fn task(id: i64, version: i64, status: TaskStatus) -> Task {
        Task {
            id,
            title: format!("t{id}v{version}"),
            description: String::new(),
            status,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version,
            created_by: None,
            assignee: None,
            board_id: crate::protocol::DEFAULT_BOARD,
            position: 0,
            due: None,
            labels: Vec::new(),
        }
    }

    fn event(offset: u64, payload: Payload) -> Action {
        Action::Server(ServerMessage::Event(Event {
            topic: "tasks".into(),
            offset,
            epoch: "e".into(),
            ts: Utc::now(),
            payload,
        }))
    }

    #[test]
    fn base_is_shown_until_something_changes() {
        let board = Board::default();
        let base = vec![task(1, 1, TaskStatus::Todo), task(2, 1, TaskStatus::Done)];
        assert_eq!(board.merged(&base), base);
        assert_eq!(board.column(&base, TaskStatus::Done), vec![base[1].clone()]);
    }

    #[test]
    fn newer_versions_win_and_stale_ones_are_ignored() {
        let mut board = Board::default();
        let base = vec![task(1, 2, TaskStatus::Todo)];
        board.apply(event(
            1,
            Payload::TaskUpdated {
                task: task(1, 1, TaskStatus::Done),
            },
        ));
        assert_eq!(
            board.merged(&base)[0].version,
            2,
            "older event must not override base"
        );
        board.apply(event(
            2,
            Payload::TaskUpdated {
                task: task(1, 3, TaskStatus::Done),
            },
        ));
        assert_eq!(board.merged(&base)[0].status, TaskStatus::Done);
        board.apply(Action::Upsert(task(1, 2, TaskStatus::Doing)));
        assert_eq!(board.merged(&base)[0].version, 3);
    }

    #[test]
    fn own_create_then_its_event_shows_once_with_one_toast() {
        let mut board = Board::default();
        board.apply(Action::Upsert(task(5, 1, TaskStatus::Todo)));
        let toast = board.apply(event(
            1,
            Payload::TaskCreated {
                task: task(5, 1, TaskStatus::Todo),
            },
        ));
        assert_eq!(toast, None, "the duplicate event adds no toast");
        assert_eq!(board.merged(&[]).len(), 1);
    }

    #[test]
    fn own_create_after_its_event_adds_no_second_toast() {
        let mut board = Board::default();
        let first = board.apply(event(
            1,
            Payload::TaskCreated {
                task: task(6, 1, TaskStatus::Todo),
            },
        ));
        assert!(first.is_some());
        assert_eq!(
            board.apply(Action::Created(task(6, 1, TaskStatus::Todo))),
            None
        );
        assert_eq!(board.toasts.len(), 1);
        let mut other = Board::default();
        assert!(other
            .apply(Action::Created(task(7, 1, TaskStatus::Todo)))
            .is_some());
    }

    #[test]
    fn deletion_is_final() {
        let mut board = Board::default();
        let base = vec![task(1, 1, TaskStatus::Todo)];
        board.apply(event(1, Payload::TaskDeleted { id: 1, version: 1 }));
        board.apply(event(
            2,
            Payload::TaskUpdated {
                task: task(1, 9, TaskStatus::Done),
            },
        ));
        assert!(board.merged(&base).is_empty());
        board.apply(Action::Removed(2));
        assert!(board.merged(&[task(2, 1, TaskStatus::Todo)]).is_empty());
    }

    #[test]
    fn toasts_are_capped_and_dismissable() {
        let mut board = Board::default();
        let mut ids = vec![];
        for i in 0..10 {
            ids.push(
                board
                    .apply(Action::Notify(Level::Info, format!("n{i}")))
                    .unwrap(),
            );
        }
        assert_eq!(board.toasts.len(), MAX_TOASTS);
        assert_eq!(board.toasts.back().unwrap().text, "n9");
        board.apply(Action::Dismiss(*ids.last().unwrap()));
        assert_eq!(board.toasts.back().unwrap().text, "n8");
    }

    #[test]
    fn positions_track_the_last_offset_per_topic() {
        let mut board = Board::default();
        board.apply(Action::Server(ServerMessage::Subscribed {
            id: 1,
            topic: "tasks".into(),
            position: StreamPosition {
                offset: 4,
                epoch: "e".into(),
            },
            recovered: true,
        }));
        assert_eq!(board.positions["tasks"], (4, "e".into()));
        board.apply(event(
            5,
            Payload::Chat {
                from: "a".into(),
                text: "b".into(),
            },
        ));
        assert_eq!(board.positions["tasks"], (5, "e".into()));
        board.apply(Action::Server(ServerMessage::Resync {
            topic: "tasks".into(),
            reason: "lagged".into(),
        }));
        assert!(!board.positions.contains_key("tasks"));
    }

    #[test]
    fn personal_notifications_toast_without_touching_the_tasks_position() {
        let mut board = Board::default();
        board.apply(event(7, Payload::TaskDeleted { id: 1, version: 1 }));
        let note = Action::Server(ServerMessage::Event(Event {
            topic: "user:bob".into(),
            offset: 1,
            epoch: "u".into(),
            ts: Utc::now(),
            payload: Payload::Notification {
                title: "Task assigned to you".into(),
                body: "ann assigned you “Ship”".into(),
                level: Level::Info,
            },
        }));
        assert!(board.apply(note).is_some());
        assert_eq!(
            board.toasts.back().unwrap().text,
            "Task assigned to you: ann assigned you “Ship”"
        );
        assert_eq!(board.positions["tasks"], (7, "e".into()));
        assert_eq!(board.positions["user:bob"], (1, "u".into()));
        board.apply(Action::Server(ServerMessage::Resync {
            topic: "user:bob".into(),
            reason: "lagged".into(),
        }));
        assert_eq!(
            board.positions["tasks"],
            (7, "e".into()),
            "a gap elsewhere keeps the tasks position"
        );
    }

    #[test]
    fn the_personal_subscription_lasts_as_long_as_the_connection() {
        let mut board = Board::default();
        board.apply(Action::Connection(Connection::Live));
        board.apply(Action::Server(ServerMessage::Subscribed {
            id: 3,
            topic: "user:bob".into(),
            position: StreamPosition {
                offset: 0,
                epoch: "u".into(),
            },
            recovered: true,
        }));
        assert_eq!(board.personal.as_deref(), Some("user:bob"));
        board.apply(Action::Connection(Connection::Offline));
        assert_eq!(board.personal, None);
    }

    #[test]
    fn connection_state_changes() {
        let mut board = Board::default();
        assert_eq!(board.connection, Connection::Connecting);
        board.apply(Action::Connection(Connection::Live));
        assert_eq!(board.connection, Connection::Live);
    }
}

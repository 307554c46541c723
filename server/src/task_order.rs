//! Writes to one task, in order.
//!
//! A task write reads the task as it was (for the notifications), writes
//! it, and publishes its event. Two concurrent writes to one task could
//! interleave those steps: publish version 3 before version 2, or notify
//! from a "before" that another write had already changed. Holding the
//! task's lock across the three steps orders them on this instance. (With
//! several instances, two writes to one task on different instances can
//! still publish out of order; clients order a task's events by its
//! version, which the database makes unique, and the board ignores any
//! older than what it shows.)

use tokio::sync::{Mutex, MutexGuard};

/// Locks per instance; tasks share them by id, so memory stays fixed and
/// two different tasks rarely wait on each other.
const STRIPES: usize = 64;

pub struct TaskOrder {
    stripes: Vec<Mutex<()>>,
}

impl Default for TaskOrder {
    fn default() -> Self {
        TaskOrder {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl TaskOrder {
    /// Waits for the other writes to task `id` on this instance.
    pub async fn lock(&self, id: i64) -> MutexGuard<'_, ()> {
        self.stripes[id.rem_euclid(STRIPES as i64) as usize]
            .lock()
            .await
    }
}

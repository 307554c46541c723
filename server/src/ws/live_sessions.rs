//! Live connections per signed-in session.
//!
//! Ending a session (signing out, or a password change ending all the
//! account's sessions) refuses its tokens from then on through the
//! sessions table; this registry is how the sockets those tokens already
//! opened hear of it, here and, through the broker's announcements, on
//! every other instance. They close with 4004.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

/// Every session with a live connection on this instance.
#[derive(Default)]
pub struct LiveSessions {
    map: Mutex<HashMap<String, Entry>>,
    serials: AtomicU64,
}

struct Entry {
    /// Tells this entry from a later one of the same session (made after
    /// this one was ended), so an old watch's drop leaves the new alone.
    serial: u64,
    user_id: i64,
    /// Connections watching the session.
    open: usize,
    ended: CancellationToken,
}

/// One connection's watch on its session; dropping it stops watching.
pub struct SessionWatch {
    sessions: Arc<LiveSessions>,
    sid: String,
    serial: u64,
    /// Cancelled when the session ends, or when the account it belongs to
    /// is deleted (it is a child of the account's token): the session's
    /// loop tells the two apart by looking at the account's token.
    pub ended: CancellationToken,
}

impl Drop for SessionWatch {
    fn drop(&mut self) {
        let mut map = self.sessions.lock();
        if let Some(entry) = map.get_mut(&self.sid).filter(|e| e.serial == self.serial) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 {
                map.remove(&self.sid);
            }
        }
    }
}

impl LiveSessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches session `sid` of `user_id`, whose account token is
    /// `account`.
    pub fn watch(
        self: &Arc<Self>,
        user_id: i64,
        sid: &str,
        account: &CancellationToken,
    ) -> SessionWatch {
        let mut map = self.lock();
        let entry = map.entry(sid.to_owned()).or_insert_with(|| Entry {
            serial: self.serials.fetch_add(1, Ordering::Relaxed),
            user_id,
            open: 0,
            ended: account.child_token(),
        });
        entry.open += 1;
        SessionWatch {
            sessions: self.clone(),
            sid: sid.to_owned(),
            serial: entry.serial,
            ended: entry.ended.clone(),
        }
    }

    /// Ends session `sid`'s connections on this instance.
    pub fn end(&self, sid: &str) {
        if let Some(entry) = self.lock().remove(sid) {
            entry.ended.cancel();
        }
    }

    /// Ends the connections of every session of `user_id` but `except`.
    pub fn end_all(&self, user_id: i64, except: Option<&str>) {
        let mut map = self.lock();
        map.retain(|sid, entry| {
            let ends = entry.user_id == user_id && Some(sid.as_str()) != except;
            if ends {
                entry.ended.cancel();
            }
            !ends
        });
    }

    /// Sessions with a live connection here.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_reaches_the_session_or_the_account_and_nothing_else() {
        let sessions = Arc::new(LiveSessions::default());
        let (ann, bob) = (CancellationToken::new(), CancellationToken::new());
        let phone = sessions.watch(1, "a1", &ann);
        let laptop = sessions.watch(1, "a2", &ann);
        let laptop_too = sessions.watch(1, "a2", &ann);
        let other = sessions.watch(2, "b1", &bob);
        assert_eq!(sessions.len(), 3);

        sessions.end("a1");
        assert!(phone.ended.is_cancelled());
        assert!(!laptop.ended.is_cancelled() && !other.ended.is_cancelled());

        sessions.end_all(1, Some("a2"));
        assert!(!laptop.ended.is_cancelled(), "the one kept");
        sessions.end_all(1, None);
        assert!(laptop.ended.is_cancelled() && laptop_too.ended.is_cancelled());
        assert!(!other.ended.is_cancelled(), "another account's session");

        // The account's deletion reaches its sessions through the parent.
        bob.cancel();
        assert!(other.ended.is_cancelled());
        // A session ended and then watched again: the old watch's drop
        // leaves the new entry be.
        let again = sessions.watch(1, "a1", &ann);
        drop((phone, laptop, laptop_too));
        assert!(!again.ended.is_cancelled());
        assert_eq!(sessions.len(), 2);
        drop(again);
        assert_eq!(sessions.len(), 1);
        drop(other);
        assert_eq!(sessions.len(), 0);
    }
}

//! What one user causes another to receive: personal notifications are
//! rationed per (sender, recipient) pair and the surplus is coalesced.
//!
//! Without it, flipping a task's assignee back and forth sends the
//! assignee one notification per flip, each with a title of the sender's
//! choosing. With it, a pair gets a burst of notifications as they come,
//! then at most the pair's rate; what is held back is never lost but
//! counted, and said in one line: on the pair's next notification ("and 12
//! more changes by ann"), or, if none comes, in a summary sent once the
//! pair may send again. The board's `tasks` topic is not rationed: every
//! change still reaches every board.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::rate::TokenBucket;

/// Pairs kept at most; beyond it settled pairs go first, then the least
/// recently used tenth (their held counts with them).
const MAX_PAIRS: usize = 100_000;

/// Notifications a pair may send at once before the rate applies.
pub const BURST: u32 = 5;

struct Pair {
    bucket: TokenBucket,
    /// Notifications held back since the pair last sent one.
    held: u32,
    /// A summary is already scheduled for the held ones.
    summary_due: bool,
}

/// What to do with one notification.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it, saying that `also` more were held back before it.
    Send { also: u32 },
    /// Hold it back. `Some(wait)`: the first held since the pair last
    /// sent; call [`Notices::summary`] after `wait`.
    Hold(Option<Duration>),
}

/// The per-pair ration.
pub struct Notices {
    /// Notifications a minute per pair; `None`: unlimited.
    per_minute: Option<u32>,
    pairs: Mutex<HashMap<(String, String), Pair>>,
    max: usize,
}

impl Notices {
    /// `per_minute` notifications a minute per pair after a burst of
    /// [`BURST`]; 0: unlimited.
    pub fn new(per_minute: u32) -> Self {
        Notices {
            per_minute: (per_minute > 0).then_some(per_minute),
            pairs: Mutex::default(),
            max: MAX_PAIRS,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Pair>> {
        self.pairs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A notification from `sender` to `recipient`.
    pub fn admit(&self, sender: &str, recipient: &str) -> Verdict {
        let Some(per_minute) = self.per_minute else {
            return Verdict::Send { also: 0 };
        };
        let mut pairs = self.lock();
        let key = (sender.to_owned(), recipient.to_owned());
        if pairs.len() >= self.max && !pairs.contains_key(&key) {
            make_room(&mut pairs, self.max);
        }
        let pair = pairs.entry(key).or_insert_with(|| Pair {
            bucket: TokenBucket::new(f64::from(per_minute) / 60.0, f64::from(BURST)),
            held: 0,
            summary_due: false,
        });
        match pair.bucket.take() {
            Ok(()) => Verdict::Send {
                also: std::mem::take(&mut pair.held),
            },
            Err(wait) => {
                pair.held += 1;
                if pair.summary_due {
                    Verdict::Hold(None)
                } else {
                    pair.summary_due = true;
                    Verdict::Hold(Some(wait))
                }
            }
        }
    }

    /// How many notifications to summarise now (0: none, they went out
    /// with a later notification). Takes a token when there are some; if
    /// there is none yet, says when to ask again.
    pub fn summary(&self, sender: &str, recipient: &str) -> Result<u32, Duration> {
        let mut pairs = self.lock();
        let Some(pair) = pairs.get_mut(&(sender.to_owned(), recipient.to_owned())) else {
            return Ok(0);
        };
        if pair.held == 0 {
            pair.summary_due = false;
            return Ok(0);
        }
        pair.bucket.take()?;
        pair.summary_due = false;
        Ok(std::mem::take(&mut pair.held))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Drops settled pairs (refilled, nothing held); if that is not a tenth of
/// the table, the least recently used tenth.
fn make_room(pairs: &mut HashMap<(String, String), Pair>, max: usize) {
    let now = Instant::now();
    pairs.retain(|_, p| p.held > 0 || !p.bucket.is_full(now));
    if pairs.len() + max / 10 <= max {
        return;
    }
    let mut by_use: Vec<(Instant, (String, String))> = pairs
        .iter()
        .map(|(k, p)| (p.bucket.last_used(), k.clone()))
        .collect();
    by_use.sort_unstable_by_key(|(at, _)| *at);
    for (_, key) in by_use.into_iter().take((max / 10).max(1)) {
        pairs.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate_with_nothing_lost() {
        let n = Notices::new(60);
        for _ in 0..BURST {
            assert_eq!(n.admit("ann", "bob"), Verdict::Send { also: 0 });
        }
        let Verdict::Hold(Some(wait)) = n.admit("ann", "bob") else {
            panic!("the first held one schedules a summary");
        };
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(n.admit("ann", "bob"), Verdict::Hold(None));
        assert_eq!(n.admit("ann", "bob"), Verdict::Hold(None));
        // Another pair is not affected.
        assert_eq!(n.admit("ann", "cy"), Verdict::Send { also: 0 });
        assert_eq!(n.admit("dee", "bob"), Verdict::Send { also: 0 });
        tokio::time::advance(wait).await;
        assert_eq!(n.summary("ann", "bob"), Ok(3));
        assert_eq!(n.summary("ann", "bob"), Ok(0), "said once");
    }

    #[tokio::test(start_paused = true)]
    async fn held_ones_ride_on_the_next_notification() {
        let n = Notices::new(60);
        for _ in 0..BURST {
            n.admit("ann", "bob");
        }
        assert!(matches!(n.admit("ann", "bob"), Verdict::Hold(Some(_))));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(n.admit("ann", "bob"), Verdict::Send { also: 1 });
        // The scheduled summary then has nothing to say.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(n.summary("ann", "bob"), Ok(0));
        assert_eq!(
            Notices::new(0).admit("ann", "bob"),
            Verdict::Send { also: 0 }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_stays_bounded() {
        let mut n = Notices::new(60);
        n.max = 10;
        for i in 0..50 {
            n.admit("ann", &format!("u{i}"));
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(n.len() <= 10, "{}", n.len());
    }
}

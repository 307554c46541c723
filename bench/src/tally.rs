//! What one receiving connection saw during a run: which messages (exactly
//! once, or more), and how long each took from its intended send time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::hist::Histogram;

/// A run's shared facts: its number, the intended send time of each of its
/// messages (nanoseconds since the bench's epoch, 0 = not sent), and a
/// counter of first deliveries across all receivers, for progress and for
/// knowing when everything has arrived.
pub struct Run {
    pub id: u32,
    pub epoch: Instant,
    pub sent_at: Vec<AtomicU64>,
    pub delivered: AtomicU64,
    /// The next sequence number, for runs where many clients send.
    pub next_seq: AtomicU64,
}

impl Run {
    pub fn new(id: u32, epoch: Instant, capacity: usize) -> Arc<Run> {
        Arc::new(Run {
            id,
            epoch,
            sent_at: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            delivered: AtomicU64::new(0),
            next_seq: AtomicU64::new(0),
        })
    }

    /// Nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Records that message `seq` was (meant to be) sent at `at_ns`.
    pub fn mark_sent(&self, seq: u64, at_ns: u64) {
        if let Some(slot) = self.sent_at.get(seq as usize) {
            slot.store(at_ns.max(1), Ordering::Relaxed);
        }
    }
}

/// One receiver's record of the current run.
#[derive(Default)]
pub struct Tally {
    run: Option<Arc<Run>>,
    seen: Vec<u64>,
    pub unique: u64,
    pub duplicates: u64,
    /// Messages of an earlier run, arriving late: not counted.
    stale: u64,
    pub hist: Histogram,
}

/// What a receiver reports at the end of a run.
pub struct Report {
    pub unique: u64,
    pub duplicates: u64,
    pub hist: Histogram,
    /// How the connection ended, if it did.
    pub closed: Option<String>,
}

/// Every receiver's report of one run, added up.
pub struct Summary {
    pub hist: Histogram,
    pub delivered: u64,
    pub duplicates: u64,
    pub missing: u64,
    /// Receivers the server closed, and why the first one was.
    pub cut: usize,
    pub first_cut: Option<String>,
}

impl Summary {
    /// Adds up `reports` of a run in which `expected` deliveries were due.
    pub fn of(reports: &[Report], expected: u64) -> Summary {
        let mut s = Summary {
            hist: Histogram::default(),
            delivered: 0,
            duplicates: 0,
            missing: 0,
            cut: 0,
            first_cut: None,
        };
        for r in reports {
            s.hist.merge(&r.hist);
            s.delivered += r.unique;
            s.duplicates += r.duplicates;
            if let Some(why) = &r.closed {
                s.cut += 1;
                s.first_cut.get_or_insert_with(|| why.clone());
            }
        }
        s.missing = expected.saturating_sub(s.delivered);
        s
    }

    /// Why the run was not sustained (empty when it was): losses,
    /// duplicates, cut receivers (named `who`), `extra` reasons, and a p99
    /// of `limit_ms` or more.
    pub fn faults(&self, who: &str, extra: Option<String>, limit_ms: f64) -> Vec<String> {
        let mut notes = Vec::new();
        if self.missing > 0 {
            notes.push(format!("{} missing", self.missing));
        }
        if self.duplicates > 0 {
            notes.push(format!("{} duplicated", self.duplicates));
        }
        notes.extend(extra);
        if let Some(why) = &self.first_cut {
            notes.push(format!("{} {who} cut ({why})", self.cut));
        }
        let p99 = crate::scenario::fanout::ms(self.hist.quantile(0.99));
        if p99 >= limit_ms {
            notes.push(format!("p99 {p99} ms"));
        }
        notes
    }
}

impl Tally {
    pub fn start(&mut self, run: Arc<Run>) {
        self.seen = vec![0; run.sent_at.len().div_ceil(64)];
        self.run = Some(run);
        self.unique = 0;
        self.duplicates = 0;
        self.stale = 0;
        self.hist = Histogram::default();
    }

    /// Records a received marker at `now_ns`; returns whether it was new.
    pub fn record(&mut self, marker: (u32, u64), now_ns: u64) -> bool {
        let Some(run) = &self.run else {
            self.stale += 1;
            return false;
        };
        let (id, seq) = marker;
        if id != run.id || seq as usize >= run.sent_at.len() {
            self.stale += 1;
            return false;
        }
        let (word, bit) = (seq as usize / 64, 1u64 << (seq % 64));
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        let sent = run.sent_at[seq as usize].load(Ordering::Relaxed);
        if sent > 0 {
            self.hist.record(now_ns.saturating_sub(sent) / 1000);
        }
        true
    }

    /// Adds `n` first deliveries to the run's shared counter.
    pub fn publish_progress(&self, n: u64) {
        if let (Some(run), true) = (&self.run, n > 0) {
            run.delivered.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.run.as_ref().map_or(0, |r| r.now_ns())
    }

    pub fn report(&mut self, closed: Option<String>) -> Report {
        Report {
            unique: self.unique,
            duplicates: self.duplicates,
            hist: std::mem::take(&mut self.hist),
            closed,
        }
    }
}

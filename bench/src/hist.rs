//! A latency histogram in microseconds: exact below 64 µs, then 32
//! sub-buckets per power of two (at most about 3% error), up to hours.
//! Each connection records into its own and they are merged at the end, so
//! recording is an array increment, never a shared atomic.

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const LINEAR: usize = 2 * SUB;
const BUCKETS: usize = LINEAR + (64 - SUB_BITS as usize - 1) * SUB;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS + 1
    let sub = ((v >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    LINEAR + (exp - SUB_BITS - 1) as usize * SUB + sub
}

/// The largest value that lands in bucket `i`.
fn upper(i: usize) -> u64 {
    if i < LINEAR {
        return i as u64;
    }
    let exp = (i - LINEAR) / SUB + SUB_BITS as usize + 1;
    let sub = ((i - LINEAR) % SUB) as u64;
    let base = (SUB as u64 + sub) << (exp - SUB_BITS as usize);
    base + (1u64 << (exp - SUB_BITS as usize)) - 1
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), in microseconds (bucket upper
    /// bound, capped at the maximum seen).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        for i in 0..BUCKETS - 1 {
            assert_eq!(index(upper(i)), i, "upper bound of {i}");
            assert_eq!(index(upper(i) + 1), i + 1, "next after {i}");
        }
        for v in [100u64, 1_000, 65_432, 10_000_000] {
            let u = upper(index(v));
            assert!(u >= v && (u - v) as f64 <= v as f64 * 0.04, "{v} -> {u}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        assert!((490..=520).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 1000);
        let mut other = Histogram::default();
        other.record(5_000);
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert_eq!(h.max(), 5_000);
    }
}

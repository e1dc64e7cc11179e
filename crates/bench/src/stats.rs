//! Percentiles over sorted samples, and a tally of failed requests.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The nearest-rank percentile `p` (0 < p ≤ 100) of `sorted` (ascending), or `None` if empty.
///
/// Nearest rank: the smallest sample such that at least `p` % of the samples are ≤ it, so
/// p99 of 100 samples is the 99th smallest and p100 is the maximum.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[idx])
}

/// p50, p90, p99 and maximum of a set of latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median (nearest rank).
    pub p50: Duration,
    /// 90th percentile (nearest rank).
    pub p90: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Summary {
    /// Sorts `samples` and summarizes them; `None` if there are none.
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        samples.sort_unstable();
        Some(Self {
            count: samples.len(),
            p50: percentile(&samples, 50.0)?,
            p90: percentile(&samples, 90.0)?,
            p99: percentile(&samples, 99.0)?,
            max: *samples.last()?,
        })
    }
}

/// Milliseconds with a precision that suits the magnitude (`0.42`, `3.1`, `250`).
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Requests that did not get the expected answer, grouped by what went wrong.
#[derive(Debug, Default, Clone)]
pub struct ErrorTally {
    counts: BTreeMap<String, usize>,
    samples: BTreeMap<String, String>,
}

impl ErrorTally {
    /// Counts one failure of kind `kind` (e.g. `"POST 500"`, `"transport"`), keeping the first
    /// `detail` (request and response body) seen for each kind.
    pub fn record(&mut self, kind: impl Into<String>, detail: impl FnOnce() -> String) {
        let kind = kind.into();
        if !self.samples.contains_key(&kind) {
            let mut d = detail();
            if d.len() > 400 {
                let mut cut = 400;
                while !d.is_char_boundary(cut) {
                    cut -= 1;
                }
                d.truncate(cut);
                d.push('…');
            }
            self.samples.insert(kind.clone(), d);
        }
        *self.counts.entry(kind).or_default() += 1;
    }

    /// Adds every failure of `other` to this tally.
    pub fn merge(&mut self, other: ErrorTally) {
        for (kind, n) in other.counts {
            *self.counts.entry(kind.clone()).or_default() += n;
            if let Some(s) = other.samples.get(&kind) {
                self.samples.entry(kind).or_insert_with(|| s.clone());
            }
        }
    }

    /// Total number of failures.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// True if nothing failed.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

impl fmt::Display for ErrorTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (kind, n)) in self.counts.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{n} × {kind}")?;
            if let Some(s) = self.samples.get(kind) {
                write!(f, " (first: {s})")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_vec(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentile_nearest_rank() {
        let s = ms_vec(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&s, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&s, 0.1), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_small_sets_round_up() {
        // With 3 samples, p50 is the 2nd and p99 the 3rd (no interpolation).
        let s = ms_vec(&[1, 2, 30]);
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(2)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(30)));
    }

    #[test]
    fn summary_sorts_its_input() {
        let s = Summary::of(ms_vec(&[9, 1, 5, 3, 7])).expect("non-empty");
        assert_eq!(s.count, 5);
        assert_eq!(s.p50, Duration::from_millis(5));
        assert_eq!(s.p90, Duration::from_millis(9));
        assert_eq!(s.p99, Duration::from_millis(9));
        assert_eq!(s.max, Duration::from_millis(9));
        assert!(Summary::of(Vec::new()).is_none());
    }

    #[test]
    fn ms_formats_by_magnitude() {
        assert_eq!(ms(Duration::from_micros(420)), "0.42");
        assert_eq!(ms(Duration::from_micros(31_250)), "31.2");
        assert_eq!(ms(Duration::from_millis(250)), "250");
    }

    #[test]
    fn tally_counts_and_keeps_first_sample() {
        let mut t = ErrorTally::default();
        t.record("POST 500", || "first".into());
        t.record("POST 500", || "second".into());
        t.record("transport", || "reset".into());
        assert_eq!(t.total(), 3);
        let text = t.to_string();
        assert!(text.contains("2 × POST 500 (first: first)"), "{text}");
        assert!(!text.contains("second"), "{text}");
        let mut u = ErrorTally::default();
        u.record("POST 500", || "x".into());
        t.merge(u);
        assert_eq!(t.total(), 4);
        assert!(t.to_string().contains("3 × POST 500 (first: first)"));
    }

    #[test]
    fn tally_truncates_long_samples_on_char_boundary() {
        let mut t = ErrorTally::default();
        t.record("x", || "é".repeat(300));
        let text = t.to_string();
        assert!(text.ends_with("…)"), "{text}");
        assert!(text.len() < 450);
    }
}

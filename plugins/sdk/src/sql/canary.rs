//! The canary the performance probes of every engine share
//! (`pg-performance`, `mysql-performance`): one cheap statement run a few
//! times on a pooled session, timed from the probe as a client sees the
//! database's latency, and the median of the tries by the nearest-rank
//! method, so that each engine's limits mean the same.

use crate::Result;
use std::time::{Duration, Instant};

/// How the tries went.
pub struct Latency {
    /// Every try, in the order run.
    pub tries: Vec<Duration>,
    pub median: Duration,
    pub max: Duration,
}

/// Run `statement` `tries` times on `target` (a pooled session, opened
/// before the first try) and time each. The first failed try ends it: an
/// error that decides a status (unreachable, timed out, refused: see
/// [`crate::Error::status`]) keeps it, so a probe can end its run with it.
pub fn measure(target: &str, statement: &str, tries: usize) -> Result<Latency> {
    let mut times = Vec::with_capacity(tries);
    for _ in 0..tries {
        let started = Instant::now();
        super::query(target, statement, &[])?;
        times.push(started.elapsed());
    }
    let tries = times.clone();
    times.sort();
    Ok(Latency {
        tries,
        median: nearest_rank(&times, 0.5),
        max: times.last().copied().unwrap_or_default(),
    })
}

/// The `p` quantile (0 to 1) of `sorted` (ascending) by the nearest-rank
/// method: the smallest value with at least `p` of them at or below it
/// (the median of 4 is the 2nd). Zero for no values.
pub fn nearest_rank(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn medians_follow_the_nearest_rank() {
        assert_eq!(
            nearest_rank(&ms(&[1, 2, 3, 4, 5]), 0.5),
            Duration::from_millis(3)
        );
        assert_eq!(
            nearest_rank(&ms(&[1, 2, 3, 4]), 0.5),
            Duration::from_millis(2)
        );
        assert_eq!(nearest_rank(&ms(&[7]), 0.5), Duration::from_millis(7));
        assert_eq!(nearest_rank(&ms(&[1, 2, 3]), 1.0), Duration::from_millis(3));
        assert_eq!(nearest_rank(&[], 0.5), Duration::ZERO);
    }
}

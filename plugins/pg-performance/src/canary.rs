//! The canary: one cheap statement run a few times, timed from the probe,
//! as a client sees the database's latency.

use std::time::{Duration, Instant};
use watchpost_probe::{Result, sql};

/// How the tries went.
pub struct Latency {
    /// Every try, in the order run.
    pub tries: Vec<Duration>,
    pub median: Duration,
    pub max: Duration,
}

/// Run `statement` `tries` times on `target` (a pooled session, opened
/// before the first try) and time each.
pub fn measure(target: &str, statement: &str, tries: usize) -> Result<Latency> {
    let mut times = Vec::with_capacity(tries);
    for _ in 0..tries {
        let started = Instant::now();
        sql::query(target, statement, &[])?;
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

/// The `p` quantile (0 to 1) of sorted values by the nearest-rank method.
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

//! The canary: `PING` on the pooled connection a few times, timed from the
//! probe, as a client sees the server's latency.

use std::time::{Duration, Instant};
use watchpost_probe::Result;
use watchpost_probe::redis;

/// How the tries went.
pub struct Latency {
    /// Every try, in the order run.
    pub tries: Vec<Duration>,
    pub median: Duration,
    pub max: Duration,
}

/// One untimed `PING` (it opens the pooled connection, so that connecting
/// is not counted), then `tries` timed ones. An unreachable or frozen
/// server ends it with that error.
pub fn measure(target: &str, tries: usize) -> Result<Latency> {
    redis::call(target, &["PING"])?;
    let mut times = Vec::with_capacity(tries);
    for _ in 0..tries {
        let started = Instant::now();
        redis::call(target, &["PING"])?;
        times.push(started.elapsed());
    }
    Ok(summarize(times))
}

/// Median (nearest rank) and maximum of the tries.
pub fn summarize(tries: Vec<Duration>) -> Latency {
    let mut sorted = tries.clone();
    sorted.sort();
    let median = if sorted.is_empty() {
        Duration::ZERO
    } else {
        let rank = (0.5 * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    };
    Latency {
        tries,
        median,
        max: sorted.last().copied().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn medians_follow_the_nearest_rank() {
        let latency = summarize(ms(&[5, 1, 3, 2, 4]));
        assert_eq!(latency.median, Duration::from_millis(3));
        assert_eq!(latency.max, Duration::from_millis(5));
        assert_eq!(latency.tries, ms(&[5, 1, 3, 2, 4]));
        assert_eq!(
            summarize(ms(&[1, 2, 3, 4])).median,
            Duration::from_millis(2)
        );
        assert_eq!(summarize(Vec::new()).median, Duration::ZERO);
    }
}

//! When probes run: one timing loop per probe, at its `every`, with a
//! stable per-probe phase so that probes do not all fire together.
//!
//! A tick spawns the run as its own task and goes back to waiting, so a
//! slow or hung run never delays another probe's ticks. A tick that finds
//! the previous run of the same probe still going is skipped and counted
//! (no pile-up). How many runs execute at once is bounded elsewhere (the
//! pipeline's semaphore); this module knows nothing of probes.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest wait before a probe's first run: probes with long intervals
/// still report soon after start, spread over this window.
pub const FIRST_RUN_WINDOW: Duration = Duration::from_secs(2);

/// First runs are spread over this much time per configured probe (up to
/// [`FIRST_RUN_WINDOW`]): 10 probes all report within 20 ms of start,
/// 1,000 are spread over 2 s so that they do not all start at once.
pub const FIRST_RUN_SPREAD_PER_PROBE: Duration = Duration::from_millis(2);

/// The window first runs are spread over when `probes` are configured.
pub fn first_run_window(probes: usize) -> Duration {
    FIRST_RUN_SPREAD_PER_PROBE
        .saturating_mul(u32::try_from(probes).unwrap_or(u32::MAX))
        .min(FIRST_RUN_WINDOW)
}

/// Something the scheduler runs periodically.
pub trait Job: Send + Sync + 'static {
    /// One run. `planned` is when the tick was due, to measure lateness.
    fn run(self: Arc<Self>, planned: Instant) -> impl Future<Output = ()> + Send;
    /// A tick was skipped because the previous run was still going.
    fn skipped(&self);
    /// The next run is planned at `at`.
    fn planned(&self, at: SystemTime);
}

/// A stable offset in `[0, window)` derived from the probe's name.
pub fn phase(name: &str, window: Duration) -> Duration {
    if window.is_zero() {
        return Duration::ZERO;
    }
    // SipHash with fixed keys: the same name gets the same phase on every
    // start of the same build.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    let nanos = hasher.finish() % window.as_nanos().max(1) as u64;
    Duration::from_nanos(nanos)
}

/// Start the timing loop of one job, its first run within `window` (see
/// [`first_run_window`]) and then every `every`, at a phase of its own. It
/// stops when `cancel` fires; a run in flight then finishes on its own
/// (runs are spawned on `tracker`, so shutdown can wait for them).
pub fn spawn<J: Job>(
    name: &str,
    job: Arc<J>,
    every: Duration,
    window: Duration,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let first = Instant::now() + phase(name, every.min(window));
    let in_flight = Arc::new(AtomicBool::new(false));
    let runs = tracker.clone();
    tracker.spawn(async move {
        let mut ticks = tokio::time::interval_at(first, every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        job.planned(wall_clock(first));
        loop {
            let planned = tokio::select! {
                _ = cancel.cancelled() => return,
                planned = ticks.tick() => planned,
            };
            job.planned(wall_clock(planned + every));
            if in_flight.swap(true, Ordering::AcqRel) {
                job.skipped();
                continue;
            }
            let job = job.clone();
            let in_flight = in_flight.clone();
            runs.spawn(async move {
                job.run(planned).await;
                in_flight.store(false, Ordering::Release);
            });
        }
    });
}

/// The wall-clock time of a monotonic instant (for display).
fn wall_clock(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn few_probes_start_at_once_and_many_are_spread() {
        assert_eq!(first_run_window(10), Duration::from_millis(20));
        assert_eq!(first_run_window(1000), FIRST_RUN_WINDOW);
        assert_eq!(first_run_window(0), Duration::ZERO);
    }

    #[test]
    fn phases_are_stable_and_inside_the_window() {
        let window = Duration::from_secs(2);
        let a = phase("disk", window);
        assert_eq!(a, phase("disk", window));
        assert!(a < window);
        let distinct: std::collections::HashSet<_> = (0..100)
            .map(|i| phase(&format!("probe-{i}"), window))
            .collect();
        assert!(distinct.len() > 90, "phases spread out");
    }

    struct Slow {
        runs: AtomicU32,
        skips: AtomicU32,
    }

    impl Job for Slow {
        async fn run(self: Arc<Self>, _planned: Instant) {
            self.runs.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(350)).await;
        }
        fn skipped(&self) {
            self.skips.fetch_add(1, Ordering::Relaxed);
        }
        fn planned(&self, _at: SystemTime) {}
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_still_going_makes_the_next_ticks_skip() {
        let job = Arc::new(Slow {
            runs: AtomicU32::new(0),
            skips: AtomicU32::new(0),
        });
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        spawn(
            "slow",
            job.clone(),
            Duration::from_millis(100),
            FIRST_RUN_WINDOW,
            cancel.clone(),
            tracker.clone(),
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
        let (runs, skips) = (
            job.runs.load(Ordering::Relaxed),
            job.skips.load(Ordering::Relaxed),
        );
        // Each 350 ms run covers three more 100 ms ticks.
        assert!((2..=3).contains(&runs), "runs {runs}");
        assert!(skips >= 6, "skips {skips}");
    }
}

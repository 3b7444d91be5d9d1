//! When probes run: one timing loop per probe, at its `every`, with a
//! stable per-probe phase so that probes do not all fire together.
//!
//! Each probe's loop is its own task and drives its runs itself, so a
//! slow or hung run never delays another probe's ticks. A tick that comes
//! while the previous run of the same probe is still going is skipped and
//! counted (no pile-up). A run that panics ends like any other run: the
//! panic is caught and logged, and the next tick runs the job again. No
//! time arithmetic here can panic.
//! How many runs execute at once is bounded elsewhere (the pipeline's
//! semaphore); this module knows nothing of probes.

use futures_util::FutureExt;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
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

/// Phases are multiples of this (when the window holds more than one):
/// probes with the same `every` then share timer wake-ups, up to 100 a
/// second, instead of one wake-up of the runtime per run (1,000 a second
/// at 1,000 probes every 1 s), the largest cost around a run outside the
/// sandbox (the profile in docs/src/history/benchmarks.md).
pub const PHASE_GRID: Duration = Duration::from_millis(10);

/// The first instant at or after `at` on the process-wide
/// [`PHASE_GRID`] (`at` itself if that cannot be represented).
fn on_grid(at: Instant) -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    let grid = PHASE_GRID.as_nanos();
    let since = at.saturating_duration_since(base).as_nanos();
    u64::try_from(since.div_ceil(grid) * grid)
        .ok()
        .and_then(|nanos| base.checked_add(Duration::from_nanos(nanos)))
        .unwrap_or(at)
}

/// A stable offset in `[0, window)` derived from the probe's name, on the
/// [`PHASE_GRID`] when the window spans more than one step of it.
pub fn phase(name: &str, window: Duration) -> Duration {
    if window.is_zero() {
        return Duration::ZERO;
    }
    // SipHash with fixed keys: the same name gets the same phase on every
    // start of the same build.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    let step = window.as_nanos().max(1) as u64;
    let grid = PHASE_GRID.as_nanos() as u64;
    let nanos = if step > grid {
        hasher.finish() % (step / grid) * grid
    } else {
        hasher.finish() % step
    };
    Duration::from_nanos(nanos)
}

/// Start the timing loop of one job, its first run within `window` (see
/// [`first_run_window`]) and then every `every`, at a phase of its own. It
/// stops when `cancel` fires; a run in flight then finishes first (the
/// loop is spawned on `tracker`, so shutdown can wait for it).
///
/// The run is driven by the loop's own task, not spawned per tick: a
/// spawn per run cost an allocation of the whole run's future and often
/// a wake-up of another worker thread. The loop still hears its ticks
/// while a run goes on, and counts them as skipped.
pub fn spawn<J: Job>(
    name: &str,
    job: Arc<J>,
    every: Duration,
    window: Duration,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let window = every.min(window);
    let now = Instant::now();
    // Loops started apart (one after another, or by a reload) share the
    // grid only if it starts at the same instant for all.
    let start = if window > PHASE_GRID {
        on_grid(now)
    } else {
        now
    };
    let first = start.checked_add(phase(name, window)).unwrap_or(now);
    // A zero period would make tokio panic; config keeps `every` >= 10ms.
    let every = every.max(Duration::from_millis(1));
    let name = name.to_string();
    tracker.spawn(async move {
        let mut ticks = tokio::time::interval_at(first, every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        job.planned(wall_clock(first));
        let next = |planned: Instant| wall_clock(planned.checked_add(every).unwrap_or(planned));
        // Registered once, not at every tick.
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        loop {
            let planned = tokio::select! {
                _ = &mut cancelled => return,
                planned = ticks.tick() => planned,
            };
            job.planned(next(planned));
            let run = AssertUnwindSafe(job.clone().run(planned)).catch_unwind();
            tokio::pin!(run);
            let outcome = loop {
                tokio::select! {
                    biased;
                    outcome = &mut run => break outcome,
                    planned = ticks.tick() => {
                        job.planned(next(planned));
                        job.skipped();
                    }
                }
            };
            if let Err(panic) = outcome {
                tracing::error!(
                    "the run of {name} panicked: {}; this is a bug in watchpost, please \
                     report it (the next run is on schedule)",
                    crate::util::panic_message(panic.as_ref())
                );
            }
        }
    });
}

/// The wall-clock time of a monotonic instant (for display); the current
/// time if it cannot be represented.
fn wall_clock(at: Instant) -> SystemTime {
    let now = Instant::now();
    let wall = SystemTime::now();
    let shifted = if at >= now {
        wall.checked_add(at - now)
    } else {
        wall.checked_sub(now - at)
    };
    shifted.unwrap_or(wall)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

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
        let phases: Vec<_> = (0..100)
            .map(|i| phase(&format!("probe-{i}"), window))
            .collect();
        // On the grid, spread over its 200 steps.
        assert!(
            phases
                .iter()
                .all(|p| p.as_nanos() % PHASE_GRID.as_nanos() == 0)
        );
        let distinct: std::collections::HashSet<_> = phases.iter().collect();
        assert!(distinct.len() > 60, "phases spread out");
        // A window within one grid step keeps a fine phase.
        assert!(phase("disk", Duration::from_millis(5)) < Duration::from_millis(5));
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

    struct Panicky {
        runs: AtomicU32,
        skips: AtomicU32,
    }

    impl Job for Panicky {
        async fn run(self: Arc<Self>, _planned: Instant) {
            self.runs.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("a bug on the run's path");
        }
        fn skipped(&self) {
            self.skips.fetch_add(1, Ordering::Relaxed);
        }
        fn planned(&self, _at: SystemTime) {}
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_run_does_not_leave_the_job_in_flight() {
        let job = Arc::new(Panicky {
            runs: AtomicU32::new(0),
            skips: AtomicU32::new(0),
        });
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        spawn(
            "panicky",
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
        // Every tick runs again: none is skipped as "still in flight".
        assert!(job.runs.load(Ordering::Relaxed) >= 9);
        assert_eq!(job.skips.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn far_instants_map_to_a_wall_clock_without_panicking() {
        let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        assert!(wall_clock(far) > SystemTime::now());
        assert!(wall_clock(Instant::now()) <= SystemTime::now() + Duration::from_secs(1));
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

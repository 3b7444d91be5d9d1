//! The clocks a leader's deadline is kept on. Rust's `Instant` (and
//! tokio's) is CLOCK_MONOTONIC, which stops while the machine is
//! suspended; CLOCK_BOOTTIME does not (clock_gettime(2)). etcd's lease
//! runs on another machine's clock, which never stops for ours: a node
//! resumed after a suspend must count the time it slept, or it would take
//! its unexpired monotonic deadline for a held lease while a standby was
//! promoted meanwhile (issue 30: "a paused or suspended VM resumes with
//! its monotonic deadlines unexpired").
//!
//! So the watchdog keeps its deadline on CLOCK_BOOTTIME, and the loop
//! adds to its `Instant` the time the machine slept since the deadline's
//! renewal was sent ([`slept_since`]): the growth of BOOTTIME minus
//! MONOTONIC, which stays constant while the machine runs.
//!
//! What no clock guards: a VM paused by its hypervisor may see neither
//! clock move while it is paused (that depends on the hypervisor's clock
//! source); a server resumed that way serves until the watchdog's next
//! wake-up (at most [`WATCHDOG_WAKE`]) or the loop's next check. A
//! hardware watchdog (`/dev/watchdog`, as Patroni can use) is what closes
//! that; the manual's guarantees page says so.

use std::time::Duration;

/// The longest the watchdog sleeps before it reads the clock again: a
/// deadline that passed while the machine slept is seen within this.
pub const WATCHDOG_WAKE: Duration = Duration::from_millis(100);

fn read(clock: libc::clockid_t) -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(clock, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// CLOCK_MONOTONIC now, in nanoseconds (what `Instant` reads).
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// CLOCK_BOOTTIME now, in nanoseconds: monotonic, and counting the time
/// the machine was suspended. Shared by every process of the machine.
pub fn boottime_ns() -> u64 {
    read(libc::CLOCK_BOOTTIME)
}

/// How far CLOCK_BOOTTIME is ahead of CLOCK_MONOTONIC now (ns): the time
/// the machine has been suspended since it booted. Read once with a
/// renewal, compared later by [`slept_since`].
pub fn suspended_ns() -> u64 {
    // BOOTTIME first: read second, MONOTONIC can only add (never make up)
    // the few nanoseconds between the two reads.
    let boot = boottime_ns();
    boot.saturating_sub(monotonic_ns())
}

/// The time the machine slept (suspended) since `then` (an earlier
/// [`suspended_ns`]): zero while it ran. Differences below a millisecond
/// are the reads' own jitter and count as none.
pub fn slept_since(then: u64) -> Duration {
    slept_between(then, suspended_ns())
}

/// The sleep between two [`suspended_ns`] reads, `then` and `now`.
fn slept_between(then: u64, now: u64) -> Duration {
    let slept = now.saturating_sub(then);
    if slept < 1_000_000 {
        Duration::ZERO
    } else {
        Duration::from_nanos(slept)
    }
}

/// `ahead` from now (negative: `behind` ago) as CLOCK_BOOTTIME
/// nanoseconds: the watchdog's deadline for an `Instant` deadline.
pub fn boottime_in(ahead: Option<Duration>, behind: Duration) -> u64 {
    let base = boottime_ns();
    match ahead {
        Some(ahead) => base + ahead.as_nanos() as u64,
        None => base.saturating_sub(behind.as_nanos() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_machine_has_slept_none_and_boottime_is_ahead_of_monotonic() {
        let then = suspended_ns();
        assert_eq!(slept_since(then), Duration::ZERO);
        let monotonic = monotonic_ns();
        assert!(boottime_ns() >= monotonic);
        // A suspend of 5 s between two reads; jitter below 1 ms is none.
        assert_eq!(slept_between(7, 5_000_000_007), Duration::from_secs(5));
        assert_eq!(slept_between(7, 900_007), Duration::ZERO);
        assert_eq!(slept_between(9, 7), Duration::ZERO);
        let now = boottime_ns();
        let later = boottime_in(Some(Duration::from_secs(2)), Duration::ZERO);
        assert!((now + 1_900_000_000..now + 2_100_000_000).contains(&later));
        assert!(boottime_in(None, Duration::from_millis(10)) < boottime_ns());
    }
}

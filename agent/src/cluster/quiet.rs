//! Logging a fault that lasts, once: the cluster loop runs every
//! `loop_wait` (a second by default), so a line logged on every failed
//! pass (a renewal etcd refuses, a setting that cannot be written) floods
//! the log with thousands of copies of one fact and buries what changed.
//! A [`Faults`] logs a fault's first occurrence, again when its message
//! changes (at most once per [`CHANGED_EVERY`]), a summary while it lasts
//! (every [`SUMMARY_EVERY`]: how many failures since the first), and one
//! line when it ends (how many failures, over how long).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A changed message of a lasting fault is logged at most this often.
pub const CHANGED_EVERY: Duration = Duration::from_secs(60);

/// A lasting fault is summarised this often.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(300);

/// How a line is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Warn,
    Error,
}

/// One fault while it lasts.
#[derive(Debug)]
struct Fault {
    since: Instant,
    /// Failures since `since` (the first included).
    count: u64,
    /// The message last logged, and when.
    logged: String,
    logged_at: Instant,
}

/// What to log for one report, if anything.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The fault's first occurrence (or a changed message): log it.
    Failing(String),
    /// The fault lasts: how many failures since when.
    Lasting(String),
    /// The fault ended.
    Ended(String),
}

/// The faults of one loop, by what failed (`"renew the lease"`).
#[derive(Debug, Default)]
pub struct Faults(HashMap<&'static str, Fault>);

impl Faults {
    /// `what` failed with `message`: the line to log now, if any.
    pub fn failed_at(&mut self, what: &'static str, message: &str, now: Instant) -> Option<Line> {
        match self.0.get_mut(what) {
            None => {
                self.0.insert(
                    what,
                    Fault {
                        since: now,
                        count: 1,
                        logged: message.to_string(),
                        logged_at: now,
                    },
                );
                Some(Line::Failing(format!("cannot {what}: {message}")))
            }
            Some(fault) => {
                fault.count += 1;
                let since_logged = now.saturating_duration_since(fault.logged_at);
                let changed = fault.logged != message;
                if (changed && since_logged >= CHANGED_EVERY) || since_logged >= SUMMARY_EVERY {
                    fault.logged = message.to_string();
                    fault.logged_at = now;
                    Some(Line::Lasting(format!(
                        "still cannot {what} ({} failures in {}): {message}",
                        fault.count,
                        crate::config::units::format_duration(now - fault.since)
                    )))
                } else {
                    None
                }
            }
        }
    }

    /// `what` worked: the line saying the fault ended, if there was one.
    pub fn worked_at(&mut self, what: &'static str, now: Instant) -> Option<Line> {
        let fault = self.0.remove(what)?;
        Some(Line::Ended(format!(
            "can {what} again, after {} failure(s) over {}",
            fault.count,
            crate::config::units::format_duration(now.saturating_duration_since(fault.since))
        )))
    }

    /// [`Faults::failed_at`] now, logged at `level` (`cluster: ` first).
    pub fn failed(&mut self, level: Level, what: &'static str, message: &str) {
        if let Some(Line::Failing(line) | Line::Lasting(line)) =
            self.failed_at(what, message, Instant::now())
        {
            match level {
                Level::Warn => tracing::warn!("cluster: {line}"),
                Level::Error => tracing::error!("cluster: {line}"),
            }
        }
    }

    /// [`Faults::worked_at`] now, logged as information.
    pub fn worked(&mut self, what: &'static str) {
        if let Some(Line::Ended(line)) = self.worked_at(what, Instant::now()) {
            tracing::info!("cluster: {line}");
        }
    }

    /// [`Faults::failed`] or [`Faults::worked`] by `outcome`.
    pub fn outcome<T, E: std::fmt::Display>(
        &mut self,
        level: Level,
        what: &'static str,
        outcome: &Result<T, E>,
    ) {
        match outcome {
            Ok(_) => self.worked(what),
            Err(e) => self.failed(level, what, &e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_fault_is_logged_first_on_change_in_summary_and_at_its_end() {
        let mut faults = Faults::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let what = "renew the lease";
        assert_eq!(
            faults.failed_at(what, "refused", at(0)),
            Some(Line::Failing("cannot renew the lease: refused".into()))
        );
        // Every second for a minute, the same message: nothing.
        for s in 1..60 {
            assert_eq!(faults.failed_at(what, "refused", at(s)), None);
        }
        // Changed, but within a minute of the last line: nothing yet.
        let mut faults2 = Faults::default();
        faults2.failed_at(what, "a", at(0));
        assert_eq!(faults2.failed_at(what, "b", at(30)), None);
        // Changed after a minute: logged, with the count so far.
        match faults.failed_at(what, "timed out", at(60)) {
            Some(Line::Lasting(line)) => {
                assert!(
                    line.contains("61 failures") && line.contains("timed out"),
                    "{line}"
                )
            }
            other => panic!("{other:?}"),
        }
        // The same message again: only the five-minute summary.
        for s in 61..360 {
            assert_eq!(faults.failed_at(what, "timed out", at(s)), None, "at {s}");
        }
        assert!(matches!(
            faults.failed_at(what, "timed out", at(360)),
            Some(Line::Lasting(_))
        ));
        // Another fault is its own.
        assert!(matches!(
            faults.failed_at("read the scope", "x", at(361)),
            Some(Line::Failing(_))
        ));
        match faults.worked_at(what, at(370)) {
            Some(Line::Ended(line)) => {
                assert!(
                    line.contains("361 failure(s)") && line.contains("6m"),
                    "{line}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Working without a fault says nothing; a new fault is new.
        assert_eq!(faults.worked_at(what, at(371)), None);
        assert!(matches!(
            faults.failed_at(what, "refused", at(372)),
            Some(Line::Failing(_))
        ));
    }
}

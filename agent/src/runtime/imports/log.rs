//! `log`: probe log lines into the agent's log, bounded per run and rate
//! limited across runs (per probe name), with control characters escaped
//! so that a probe cannot forge lines (`\n`, `\r`) or terminal sequences.

use crate::runtime::bindings::log::{Host, Level};
use crate::runtime::state::RunState;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Instant;

/// Lines a run may log; later lines are counted and dropped.
const MAX_LINES_PER_RUN: u32 = 100;
/// Bytes kept of one line.
const MAX_LINE_BYTES: usize = 1024;
/// Lines a probe may log in a burst, across runs.
const BURST: f64 = 200.0;
/// Lines a probe may log per second in the long run.
const PER_SECOND: f64 = 5.0;

/// A token bucket per probe name, and the lines it dropped since the last
/// line that went through.
struct Bucket {
    tokens: f64,
    at: Instant,
    dropped: u64,
}

static BUCKETS: LazyLock<Mutex<HashMap<String, Bucket>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Take one line from `probe`'s budget: `Some(dropped before)` if the line
/// may be written, `None` if it is dropped.
fn take(probe: &str, now: Instant) -> Option<u64> {
    let mut buckets = BUCKETS.lock();
    let bucket = buckets.entry(probe.to_string()).or_insert(Bucket {
        tokens: BURST,
        at: now,
        dropped: 0,
    });
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * PER_SECOND).min(BURST);
    bucket.at = now;
    if bucket.tokens < 1.0 {
        bucket.dropped += 1;
        return None;
    }
    bucket.tokens -= 1.0;
    Some(std::mem::take(&mut bucket.dropped))
}

/// `line` with control characters (and Unicode line separators) written
/// as escapes: `\n`, `\r`, `\u{1b}`.
pub fn escape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl Host for RunState {
    async fn log(&mut self, level: Level, message: String) {
        if self.log_lines >= MAX_LINES_PER_RUN {
            self.log_dropped += 1;
            return;
        }
        let probe = self.grants.name.as_str();
        let Some(dropped_before) = take(probe, Instant::now()) else {
            self.log_dropped += 1;
            return;
        };
        self.log_lines += 1;
        if dropped_before > 0 {
            tracing::warn!(target: "probe", probe, "{dropped_before} log lines of this probe were dropped (more than {PER_SECOND} a second)");
        }
        let line = escape(crate::util::truncate_utf8(&message, MAX_LINE_BYTES));
        match level {
            Level::Trace => tracing::trace!(target: "probe", probe, "{line}"),
            Level::Debug => tracing::debug!(target: "probe", probe, "{line}"),
            Level::Info => tracing::info!(target: "probe", probe, "{line}"),
            Level::Warn => tracing::warn!(target: "probe", probe, "{line}"),
            Level::Error => tracing::error!(target: "probe", probe, "{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(
            escape("ok\n2026-01-01 ERROR forged\r\u{1b}[2J"),
            "ok\\n2026-01-01 ERROR forged\\r\\u{1b}[2J"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn lines_are_rate_limited_across_runs() {
        let start = Instant::now();
        let probe = "rate-limit-test-probe";
        let mut written = 0;
        for _ in 0..1000 {
            if take(probe, start).is_some() {
                written += 1;
            }
        }
        assert_eq!(written, BURST as usize);
        // Two seconds later: ten more, and the count of the dropped ones.
        let later = start + Duration::from_secs(2);
        assert_eq!(take(probe, later), Some(1000 - BURST as u64));
        let mut more = 1;
        while take(probe, later).is_some() {
            more += 1;
        }
        assert_eq!(more, (2.0 * PER_SECOND) as usize);
    }
}

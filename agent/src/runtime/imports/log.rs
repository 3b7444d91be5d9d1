//! `log`: probe log lines into the agent's log, bounded per run.

use crate::runtime::bindings::log::{Host, Level};
use crate::runtime::state::RunState;

/// Lines a run may log; later lines are counted and dropped.
const MAX_LINES_PER_RUN: u32 = 100;
/// Bytes kept of one line.
const MAX_LINE_BYTES: usize = 1024;

impl Host for RunState {
    async fn log(&mut self, level: Level, message: String) {
        if self.log_lines >= MAX_LINES_PER_RUN {
            self.log_dropped += 1;
            return;
        }
        self.log_lines += 1;
        let line = crate::util::truncate_utf8(&message, MAX_LINE_BYTES);
        let probe = self.grants.name.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "probe", probe, "{line}"),
            Level::Debug => tracing::debug!(target: "probe", probe, "{line}"),
            Level::Info => tracing::info!(target: "probe", probe, "{line}"),
            Level::Warn => tracing::warn!(target: "probe", probe, "{line}"),
            Level::Error => tracing::error!(target: "probe", probe, "{line}"),
        }
    }
}

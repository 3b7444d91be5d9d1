//! Per-probe counters of the agent's own work (runs, failures by kind,
//! skipped ticks, run durations, scheduling lateness), exported on
//! /metrics and over OTLP.

use crate::report::{ErrorKind, Report};
use crate::telemetry::histogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Error kinds counted separately, in export order.
pub const ERROR_KINDS: [ErrorKind; 8] = [
    ErrorKind::Timeout,
    ErrorKind::Memory,
    ErrorKind::Trap,
    ErrorKind::Denied,
    ErrorKind::InvalidOutput,
    ErrorKind::Probe,
    ErrorKind::Load,
    ErrorKind::Agent,
];

#[derive(Debug, Default)]
pub struct ProbeCounters {
    pub runs: AtomicU64,
    errors: [AtomicU64; ERROR_KINDS.len()],
    pub skipped_ticks: AtomicU64,
    pub durations: Histogram,
    /// How late runs started against their planned tick.
    pub lateness: Histogram,
}

impl ProbeCounters {
    pub fn record_run(&self, report: &Report) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.durations.record(report.duration);
        if let Some(error) = &report.error
            && let Some(i) = ERROR_KINDS.iter().position(|k| *k == error.kind)
        {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record_lateness(&self, late: Duration) {
        self.lateness.record(late);
    }

    pub fn skipped(&self) {
        self.skipped_ticks.fetch_add(1, Ordering::Relaxed);
    }

    /// Count of failed runs of `kind`.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        ERROR_KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.errors[i].load(Ordering::Relaxed))
    }

    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    pub fn skipped_ticks(&self) -> u64 {
        self.skipped_ticks.load(Ordering::Relaxed)
    }
}

/// Outcomes of config reloads.
#[derive(Debug, Default)]
pub struct ReloadCounters {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
}

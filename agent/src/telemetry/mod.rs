//! Telemetry: everything the agent exports. [`prometheus`] renders the
//! text exposition served on /metrics; [`otlp`] pushes metrics and events
//! to an OpenTelemetry collector; [`histogram`] and [`counters`] are the
//! agent's own numbers both read; [`recent`] keeps each probe's recent
//! measurements in memory for the status page's charts; [`snapshot`] is the
//! one reading of the agent's own figures that the API, /metrics and OTLP share.

pub mod counters;
pub mod histogram;
pub mod otlp;
pub mod prometheus;
pub mod recent;
pub mod snapshot;

use counters::ProbeCounters;

/// The agent's own counters, read at each collection (the daemon
/// implements it for /metrics and OTLP; telemetry never reaches into the daemon).
pub trait CounterSource: Send + Sync {
    /// Visit every probe's counters.
    fn each_probe(&self, visit: &mut dyn FnMut(&str, &ProbeCounters));
    /// The agent's own figures now (reloads, remediation decisions, ...).
    fn snapshot(&self) -> snapshot::AgentSnapshot;
}

//! Telemetry: everything the agent exports. [`prometheus`] renders the
//! text exposition served on /metrics; [`histogram`] is the run-duration
//! histogram both exports read.

pub mod counters;
pub mod histogram;
pub mod prometheus;

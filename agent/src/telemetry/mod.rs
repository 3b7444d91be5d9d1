//! Telemetry: everything the agent exports. [`prometheus`] renders the
//! text exposition served on /metrics; [`otlp`] pushes metrics and events
//! to an OpenTelemetry collector; [`histogram`] and [`counters`] are the
//! agent's own numbers both read.

pub mod counters;
pub mod histogram;
pub mod otlp;
pub mod prometheus;

//! One reading of the running agent's own figures, taken by the daemon
//! (`Shared::snapshot`) and shared by its three readers:
//! the status API, the Prometheus exposition and the OTLP export. A value
//! type, so a reader holds no lock of the agent's while it renders.

use std::time::Duration;

/// The agent's own figures at one moment (probes' figures are read per
/// probe, see [`super::CounterSource::each_probe`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentSnapshot {
    /// This node's name (`[agent] node`).
    pub node: String,
    /// Time since the agent started.
    pub uptime: Duration,
    /// Config reloads since the start, by outcome.
    pub reloads: Reloads,
    /// What OTLP export dropped, by signal: (signal, records); empty when
    /// export is off.
    pub telemetry_dropped: Vec<(&'static str, u64)>,
    /// Remediation decisions so far: (remediation, decision word, count).
    pub remediation_decisions: Vec<(String, &'static str, u64)>,
    /// This node's part in its cluster, when `[cluster]` is configured.
    pub cluster: Option<ClusterSummary>,
}

/// Config reloads since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reloads {
    pub succeeded: u64,
    pub failed: u64,
}

/// The cluster figures /metrics shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSummary {
    /// The cluster's scope (`[cluster] scope`).
    pub scope: String,
    /// Whether this node holds the leader key.
    pub is_leader: bool,
    /// Members seen in etcd.
    pub members: usize,
    /// The local server's timeline, when known.
    pub timeline: Option<u64>,
}

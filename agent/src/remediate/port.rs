//! What remediation needs from the running agent, and nothing more: a
//! narrow port that the daemon implements (in the shape of mini-redis's
//! `Db` handle), so that `remediate` never imports the daemon and can be
//! driven by anything that answers these questions.

use crate::config::Config;
use crate::events::RemediationEvent;
use crate::report::{Report, Status};
use crate::sql::SqlTargets;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, for the port's one async question.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a trigger watches, read from the probe's current state.
#[derive(Clone, Debug)]
pub struct Watched {
    /// The hard status (the probe's combined one, or one threshold rule's).
    pub hard: Status,
    /// The onset of the incident during which the wanted level holds, in
    /// ms since the Unix epoch (0: unrecorded). Identifies the incident.
    pub onset: u64,
    pub flapping: bool,
    /// The probe's last report (message and measurements for the records,
    /// the action's environment and webhooks).
    pub report: Option<Arc<Report>>,
}

/// The running agent, as remediation sees it.
pub trait AgentPort: Send + Sync + 'static {
    /// The node name (`[agent] node`).
    fn node(&self) -> String;
    /// The current config (remediations, probes' thresholds); `None` once
    /// the agent is gone.
    fn config(&self) -> Option<Arc<Config>>;
    /// `watchpost run --dry-run` or `[agent] dry_run`.
    fn dry_run(&self) -> bool;
    /// The current state of `probe` as a trigger on `measurement` (or on
    /// the probe's status) waiting for `wanted` sees it; `None` if no such
    /// probe is configured.
    fn watched(&self, probe: &str, measurement: Option<&str>, wanted: Status) -> Option<Watched>;
    /// Run `probe` now, outside its schedule and without changing its
    /// state: its status with thresholds applied, and its message. `None`
    /// if no such probe is configured.
    fn check_now(&self, probe: &str) -> BoxFuture<Option<(Status, String)>>;
    /// The database targets, for the failover's admin sessions.
    fn sql(&self) -> SqlTargets;
    /// Tell the agent's listeners (OTLP) about a decision.
    fn publish(&self, event: RemediationEvent);
}

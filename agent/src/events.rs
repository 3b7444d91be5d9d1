//! What happens in the agent, told to whoever listens: a [`RunEvent`] after
//! each probe run (from the daemon's pipeline) and a [`RemediationEvent`]
//! for each remediation decision (from `remediate`, mirroring its audit
//! record). A neutral module: the producers and the consumers (OTLP export)
//! share these types without importing each other, and every event carries
//! what a consumer needs (node, target, measurement descriptions), so no
//! consumer reaches back into the daemon.
//!
//! Each subscriber gets its own bounded queue, so a slow one never slows
//! the probes; if a queue is full the event is dropped for that subscriber
//! and counted. Remediation does not listen here: it reads probe states
//! directly when woken (see `remediate::engine`), so it never loses a
//! trigger to a full queue.

use crate::policy::confirm::StateType;
use crate::policy::state::Changes;
use crate::report::{Report, Status};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tokio::sync::mpsc;

/// Events a subscriber may queue before new ones are dropped.
pub const QUEUE: usize = 4096;

/// One finished run and what it changed.
#[derive(Clone, Debug)]
pub struct RunEvent {
    pub probe: String,
    /// The agent's node name.
    pub node: Arc<str>,
    /// What the probe watches: its `target` config, its granted targets
    /// joined by `,`, or `host`.
    pub target: Arc<str>,
    /// Descriptions of the probe's measurements (from its `describe()`), by name.
    pub descriptions: Arc<BTreeMap<String, String>>,
    pub at: SystemTime,
    pub report: Arc<Report>,
    pub changes: Changes,
    /// The probe's confirmed status after the run.
    pub hard: Status,
    pub state_type: StateType,
    pub flapping: bool,
}

/// A remediation decision or outcome: the one vocabulary of the audit log,
/// the events, the metrics and the API, serialised (kebab-case) only here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// The action was decided and is about to run.
    Fired,
    /// Not acted on; the record's reason says why.
    Skipped,
    /// Dry run: it would have fired.
    DryRun,
    /// One step of a multi-step action (failover) finished.
    Step,
    Succeeded,
    Failed,
    /// The action succeeded but the verify probe did not turn ok in time.
    NotVerified,
    /// The rate limit was exceeded: the breaker opened.
    BreakerOpen,
    /// An alert was sent (or failed) for an opened breaker.
    Alert,
    /// An action that was fired has no outcome: the agent stopped (crash,
    /// kill, shutdown timeout) while it ran. Found at the next start.
    Interrupted,
    /// Operator commands (and, for the cluster, maintenance mode).
    Reset,
    Paused,
    Resumed,
    /// Cluster mode: this member took the leader key.
    Acquired,
    /// Cluster mode: this member gave the leader key up.
    Released,
    /// Cluster mode: the leader could no longer be sure it holds the key.
    LostLease,
    /// Cluster mode: the local server was stopped or turned into a standby.
    Demoted,
    /// Cluster mode: the local server was promoted.
    Promoted,
    /// Cluster mode: the local server was rewound against the leader.
    Rewound,
    /// Cluster mode: the local server streams from (was pointed at) the leader.
    Following,
    /// Cluster mode: the leader's crashed server was restarted in place.
    Restarted,
    /// Cluster mode: no leader, and this member may not take over (why).
    NoCandidate,
    /// Cluster mode: the leader changed its synchronous standbys (in
    /// PostgreSQL's `synchronous_standby_names` or in etcd's `sync` key).
    Synchronous,
}

impl Decision {
    /// The word used in the audit log and everywhere else.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Fired => "fired",
            Decision::Skipped => "skipped",
            Decision::DryRun => "dry-run",
            Decision::Step => "step",
            Decision::Succeeded => "succeeded",
            Decision::Failed => "failed",
            Decision::NotVerified => "not-verified",
            Decision::BreakerOpen => "breaker-open",
            Decision::Alert => "alert",
            Decision::Interrupted => "interrupted",
            Decision::Reset => "reset",
            Decision::Paused => "paused",
            Decision::Resumed => "resumed",
            Decision::Acquired => "acquired",
            Decision::Released => "released",
            Decision::LostLease => "lost-lease",
            Decision::Demoted => "demoted",
            Decision::Promoted => "promoted",
            Decision::Rewound => "rewound",
            Decision::Following => "following",
            Decision::Restarted => "restarted",
            Decision::NoCandidate => "no-candidate",
            Decision::Synchronous => "synchronous",
        }
    }

    /// An outcome that closes a `fired` record.
    pub fn is_outcome(self) -> bool {
        matches!(
            self,
            Decision::Succeeded | Decision::Failed | Decision::NotVerified | Decision::Interrupted
        )
    }

    /// Worth a warning in the log (and an error-level OTLP record for the
    /// failures).
    pub fn is_alarming(self) -> bool {
        matches!(
            self,
            Decision::Fired
                | Decision::Failed
                | Decision::NotVerified
                | Decision::BreakerOpen
                | Decision::Interrupted
                | Decision::LostLease
                | Decision::Demoted
                | Decision::NoCandidate
        )
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One remediation decision or outcome, as written to the audit log.
#[derive(Clone, Debug, PartialEq)]
pub struct RemediationEvent {
    pub at: SystemTime,
    /// The agent's node name.
    pub node: String,
    /// The `[[remediation]]` name.
    pub remediation: String,
    /// The probe whose state triggered it.
    pub probe: String,
    /// What was decided or what happened.
    pub decision: Decision,
    /// Why (for skips: `cooldown`, `breaker`, `flapping`, `suppressed`, ...).
    pub reason: Option<String>,
    /// The action kind: `exec`, `restart`, `failover`, `webhook`.
    pub action: String,
    /// The probe's status that triggered it.
    pub status: Status,
    /// A human-readable line ("restarted postgresql because alive was critical").
    pub message: String,
    /// Identifies the decision and its outcome records in the audit log.
    pub id: String,
}

/// Anything subscribers hear about.
#[derive(Clone, Debug)]
pub enum AgentEvent {
    Run(Arc<RunEvent>),
    Remediation(Arc<RemediationEvent>),
}

struct Subscriber {
    name: &'static str,
    sender: mpsc::Sender<AgentEvent>,
    dropped: Arc<AtomicU64>,
}

/// Fan-out of run events to subscribers.
#[derive(Default)]
pub struct Bus {
    subscribers: Mutex<Vec<Subscriber>>,
}

impl Bus {
    /// A new subscriber queue; `dropped` counts what it missed.
    pub fn subscribe(&self, name: &'static str) -> (mpsc::Receiver<AgentEvent>, Arc<AtomicU64>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        self.subscribers.lock().push(Subscriber {
            name,
            sender,
            dropped: dropped.clone(),
        });
        (receiver, dropped)
    }

    /// Whether anyone listens: a producer may skip building an event
    /// nobody would receive.
    pub fn has_subscribers(&self) -> bool {
        !self.subscribers.lock().is_empty()
    }

    /// Tell every subscriber about a run.
    pub fn publish(&self, event: RunEvent) {
        self.send(AgentEvent::Run(Arc::new(event)));
    }

    /// Tell every subscriber about a remediation decision.
    pub fn publish_remediation(&self, event: RemediationEvent) {
        self.send(AgentEvent::Remediation(Arc::new(event)));
    }

    fn send(&self, event: AgentEvent) {
        let mut subscribers = self.subscribers.lock();
        subscribers.retain(|s| !s.sender.is_closed());
        for s in subscribers.iter() {
            if s.sender.try_send(event.clone()).is_err()
                && s.dropped.fetch_add(1, Ordering::Relaxed) == 0
            {
                tracing::warn!(
                    "the {} queue is full: dropping run events until it catches up",
                    s.name
                );
            }
        }
    }
}

//! What happens in the agent, told to whoever listens: a [`RunEvent`] after
//! each probe run (from the pipeline) and a [`RemediationEvent`] for each
//! remediation decision (from remediation, mirroring its audit record).
//! Each subscriber (remediation, OTLP export) gets its own bounded queue, so
//! a slow one never slows the probes; if a queue is full the event is
//! dropped for that subscriber and counted.

use crate::policy::confirm::StateType;
use crate::policy::state::Changes;
use crate::report::{Report, Status};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::mpsc;

/// Events a subscriber may queue before new ones are dropped.
pub const QUEUE: usize = 4096;

/// One finished run and what it changed.
#[derive(Clone, Debug)]
pub struct RunEvent {
    pub probe: String,
    pub at: SystemTime,
    pub report: Arc<Report>,
    pub changes: Changes,
    /// The probe's confirmed status after the run.
    pub hard: Status,
    pub state_type: StateType,
    pub flapping: bool,
}

/// One remediation decision or outcome, as written to the audit log.
#[derive(Clone, Debug, PartialEq)]
pub struct RemediationEvent {
    pub at: SystemTime,
    /// The `[[remediation]]` name.
    pub remediation: String,
    /// The probe whose state triggered it.
    pub probe: String,
    /// What was decided or what happened: `fired`, `skipped`, `dry-run`,
    /// `succeeded`, `failed`, `verified`, `not-verified`, `breaker-open`, ...
    pub decision: String,
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
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Subscriber {
                name,
                sender,
                dropped: dropped.clone(),
            });
        (receiver, dropped)
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
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
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

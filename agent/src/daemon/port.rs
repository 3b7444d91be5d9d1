//! The daemon's side of the narrow ports that downstream stages use
//! instead of [`Shared`]: [`AgentPort`] for remediation, [`CounterSource`]
//! for the OTLP export. Each answers from the slots and the config, and
//! holds the agent weakly, so that a stage never keeps it alive.

use super::Shared;
use crate::config::Config;
use crate::events::RemediationEvent;
use crate::remediate::port::{AgentPort, BoxFuture, Watched};
use crate::report::Status;
use crate::sql::SqlTargets;
use crate::telemetry::CounterSource;
use crate::telemetry::counters::ProbeCounters;
use crate::telemetry::snapshot::AgentSnapshot;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// Remediation's view of the running agent.
pub struct RemediationPort(pub Weak<Shared>);

impl AgentPort for RemediationPort {
    fn node(&self) -> String {
        self.0.upgrade().map(|s| s.node()).unwrap_or_default()
    }

    fn config(&self) -> Option<Arc<Config>> {
        self.0.upgrade().map(|s| s.config())
    }

    fn dry_run(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|s| s.dry_run_flag.load(Ordering::Relaxed))
    }

    fn watched(&self, probe: &str, measurement: Option<&str>, wanted: Status) -> Option<Watched> {
        let slot = self.0.upgrade()?.slot(probe)?;
        let state = slot.state();
        let (hard, onset) = state.watched(measurement, wanted);
        Some(Watched {
            hard,
            onset,
            flapping: state.flap.flapping,
            report: state.last_report.clone().map(Arc::new),
        })
    }

    fn check_now(&self, probe: &str) -> BoxFuture<Option<(Status, String)>> {
        let shared = self.0.upgrade();
        let probe = probe.to_string();
        Box::pin(async move {
            let shared = shared?;
            let slot = shared.slot(&probe)?;
            Some(super::pipeline::check_now(&shared, &slot).await)
        })
    }

    fn sql(&self) -> SqlTargets {
        self.0
            .upgrade()
            .map(|s| s.services().sql.clone())
            .unwrap_or_default()
    }

    fn publish(&self, event: RemediationEvent) {
        if let Some(shared) = self.0.upgrade() {
            shared.events.publish_remediation(event);
        }
    }
}

impl CounterSource for Shared {
    fn each_probe(&self, visit: &mut dyn FnMut(&str, &ProbeCounters)) {
        for (name, slot) in self.slots() {
            visit(&name, &slot.counters);
        }
    }

    fn snapshot(&self) -> AgentSnapshot {
        Shared::snapshot(self)
    }
}

//! One scheduled run through every stage: wait for a free run slot, run the
//! probe in the sandbox, fold the report into the probe's state, queue the
//! state for disk (and wait for it when something will act on the change),
//! log what changed and publish the event.

use super::Shared;
use super::slot::ProbeSlot;
use crate::events::RunEvent;
use crate::policy::state::Changes;
use crate::report::Status;
use crate::schedule::Job;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;

/// A slot bound to the agent it runs in: what the scheduler drives.
pub struct ProbeJob {
    pub slot: Arc<ProbeSlot>,
    pub shared: Arc<Shared>,
}

impl Job for ProbeJob {
    async fn run(self: Arc<Self>, planned: Instant) {
        run_once(&self.shared, &self.slot, planned).await;
    }

    fn skipped(&self) {
        self.slot.counters.skipped();
        tracing::debug!(probe = %self.slot.name, "skipped a tick: the previous run is still going");
    }

    fn planned(&self, at: SystemTime) {
        self.slot.set_next_run(at);
    }
}

pub async fn run_once(shared: &Shared, slot: &ProbeSlot, planned: Instant) {
    let semaphore = shared.semaphore();
    let Ok(_permit) = semaphore.acquire_owned().await else {
        return; // closed: the agent is shutting down
    };
    slot.counters.record_lateness(planned.elapsed());
    let setup = slot.setup();
    let services = shared.services();
    let report = shared
        .runtime
        .run(&setup.probe, &setup.grants, &services, setup.limits)
        .await;
    drop(_permit);
    slot.counters.record_run(&report);

    let at = SystemTime::now();
    let (changes, hard, state_type, flapping, urgent, written) = {
        let mut state = slot.state();
        let changes = state.apply(&setup.spec, &report, at);
        // Urgent: what remediation acts on, and any soft change of status
        // (it resets a confirmation counter; losing that reset to a crash
        // would confirm the next failure too early after the restart).
        let urgent = changes.hard.is_some()
            || changes.flapping.is_some()
            || !changes.rules.is_empty()
            || changes.currents;
        let written = shared.writer.save(&slot.name, &state, urgent);
        (
            changes,
            state.hard(),
            state.state_type(),
            state.flap.flapping,
            urgent,
            written,
        )
    };
    slot.recent().record(at, &report);
    if urgent {
        // What remediation acts on is on disk first (a crash cannot take
        // it back).
        if let Some(written) = written {
            let _ = written.await;
        }
        // A trigger may hold now (or a condition that held one back may
        // have cleared): remediation reads the new state.
        shared.remediator.wake();
    }
    log(&slot.name, &report, &changes);
    if !shared.events.has_subscribers() {
        // Nobody listens (no OTLP export): no event to build.
        return;
    }
    shared.events.publish(RunEvent {
        probe: slot.name.clone(),
        node: setup.node.clone(),
        target: setup.target.clone(),
        descriptions: setup.descriptions.clone(),
        at,
        report: Arc::new(report),
        changes,
        hard,
        state_type,
        flapping,
    });
}

fn log(probe: &str, report: &crate::report::Report, changes: &Changes) {
    if let Some(error) = &report.error {
        tracing::warn!(probe, kind = %error.kind, "run failed: {}", error.message);
    }
    if let Some(change) = changes.hard {
        let line = format!(
            "hard state {} -> {}: {}",
            change.from, change.to, report.message
        );
        if change.to == Status::Ok {
            tracing::info!(probe, "{line}");
        } else {
            tracing::warn!(probe, "{line}");
        }
    }
    for (measurement, change) in &changes.rules {
        tracing::info!(
            probe,
            measurement,
            "threshold state {} -> {}",
            change.from,
            change.to
        );
    }
    match changes.flapping {
        Some(true) => tracing::warn!(probe, "started flapping: its remediations are suspended"),
        Some(false) => tracing::info!(probe, "stopped flapping"),
        None => {}
    }
}

/// Run a probe now, outside its schedule (to verify a remediation): its
/// overall status (thresholds applied) and message. The probe's state is
/// not changed.
pub async fn check_now(shared: &Shared, slot: &ProbeSlot) -> (Status, String) {
    let semaphore = shared.semaphore();
    let Ok(_permit) = semaphore.acquire_owned().await else {
        return (Status::Unknown, "the agent is shutting down".into());
    };
    let setup = slot.setup();
    let services = shared.services();
    let report = shared
        .runtime
        .run(&setup.probe, &setup.grants, &services, setup.limits)
        .await;
    (
        crate::policy::thresholds::overall(&setup.spec.thresholds, &report),
        report.message,
    )
}

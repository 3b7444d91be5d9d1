//! The engine task: woken by the pipeline (or an operator, or a finished
//! action), it reads every remediation's trigger from the agent's current
//! state and settles each new incident once.
//!
//! Reading states instead of consuming change events is what makes it
//! lossless: a wake-up carries nothing that can be dropped, several
//! coalesce into one evaluation, and after a restart the persisted hard
//! states are simply evaluated again (an incident the ledger has not
//! settled is a trigger, with all guards). Decisions are quick (an fsync
//! or two); actions run in tasks of their own ([`super::act`]).

use super::Remediator;
use super::act;
use super::decide::{self, Situation, SkipReason, Verdict};
use super::port::AgentPort;
use super::trigger::{Incident, holds, record_of};
use crate::config::Remediation;
use crate::events::Decision;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// While a trigger waits for a passing condition (a pause with an end, an
/// `unless`), how often the engine looks again even if nothing wakes it.
const RECHECK: Duration = Duration::from_secs(1);

/// The engine's loop; ends when shutdown begins.
pub async fn run(core: Arc<Remediator>) {
    loop {
        evaluate(&core);
        let waiting = !core.pending.lock().is_empty();
        tokio::select! {
            _ = core.wake.notified() => {}
            _ = tokio::time::sleep(RECHECK), if waiting => {}
            _ = core.stopping.cancelled() => return,
        }
    }
}

/// Settle every trigger that holds for an incident not yet settled.
pub fn evaluate(core: &Arc<Remediator>) {
    let Some(port) = core.port().cloned() else {
        return;
    };
    let Some(config) = port.config() else {
        return;
    };
    let _deciding = core.deciding.lock();
    core.pending
        .lock()
        .retain(|name, _| config.remediations.iter().any(|r| &r.name == name));
    for remediation in &config.remediations {
        if core.stopping.is_cancelled() {
            return; // shutting down: no new decisions
        }
        let on = &remediation.on;
        let Some(watched) = port.watched(&on.probe, on.measurement.as_deref(), on.status) else {
            continue;
        };
        if !holds(watched.hard, on.status) {
            core.pending.lock().remove(&remediation.name);
            continue;
        }
        let settled = core.with_ledger(|l| l.data.settled.get(&remediation.name).copied());
        if settled == Some(watched.onset) {
            continue;
        }
        let incident = Incident {
            remediation: remediation.clone(),
            status: watched.hard,
            onset: watched.onset,
            report: watched.report,
            id: core.audit.new_id(&remediation.name),
        };
        consider(
            core,
            &port,
            incident,
            watched.flapping,
            config.agent.dry_run,
        );
    }
}

/// Decide on one incident, record the decision, and start the action.
fn consider(
    core: &Arc<Remediator>,
    port: &Arc<dyn AgentPort>,
    incident: Incident,
    flapping: bool,
    config_dry_run: bool,
) {
    let remediation = &incident.remediation;
    let dry_run = config_dry_run || port.dry_run() || remediation.dry_run;
    let what = act::describe(remediation);
    // Re-read the trigger right before deciding: a state that changed in
    // the meantime is not acted on.
    let now = port.watched(
        &remediation.on.probe,
        remediation.on.measurement.as_deref(),
        remediation.on.status,
    );
    let before = core.with_ledger(|l| l.data.clone());
    let verdict = match now {
        Some(w) if holds(w.hard, remediation.on.status) && w.onset == incident.onset => {
            let situation = Situation {
                remediation,
                now: SystemTime::now(),
                dry_run,
                flapping,
                suppressed_by: suppressed_by(port.as_ref(), remediation),
                running: core.is_running(&remediation.name),
            };
            core.with_ledger(|ledger| decide::decide(ledger, &situation))
        }
        _ => Verdict::Skip {
            reason: SkipReason::Stale,
            why: "the probe's state changed before the decision".into(),
        },
    };
    let because = incident.because();
    match verdict {
        Verdict::Skip { reason, why } if reason.is_transient() => {
            let first = core
                .pending
                .lock()
                .insert(remediation.name.clone(), (incident.onset, reason))
                != Some((incident.onset, reason));
            if first {
                let message =
                    format!("skipped {what}: {why} ({because}); reconsidered when that clears");
                core.record(record_of(
                    core,
                    &incident,
                    Decision::Skipped,
                    Some(reason.as_str()),
                    message,
                    incident.detail(),
                ));
            }
        }
        Verdict::Skip { reason, why } => {
            if reason != SkipReason::Stale && !settle(core, &incident) {
                return;
            }
            let message = format!("skipped {what}: {why} ({because})");
            core.record(record_of(
                core,
                &incident,
                Decision::Skipped,
                Some(reason.as_str()),
                message,
                incident.detail(),
            ));
        }
        Verdict::WouldFire => {
            if !settle(core, &incident) {
                return;
            }
            let message = format!("dry run: would {what} because {because}");
            // Session actions list what they would act on (in a task).
            if act::spawn_dry_run(core, incident.clone(), message.clone()) {
                return;
            }
            core.record(record_of(
                core,
                &incident,
                Decision::DryRun,
                None,
                message,
                incident.detail(),
            ));
        }
        Verdict::BreakerOpens { why } => {
            if !settle(core, &incident) {
                return;
            }
            let message = format!("breaker open for {what}: {why}");
            core.record(record_of(
                core,
                &incident,
                Decision::BreakerOpen,
                Some("breaker"),
                message.clone(),
                incident.detail(),
            ));
            if let Some(alert) = remediation.alert.clone() {
                act::spawn_alert(core, incident, alert, dry_run, message);
            }
        }
        Verdict::Fire => {
            let message = format!("{what} because {because}");
            // The decision is on disk before anything acts on it; the ledger
            // (cooldown, incident settled) follows, and `reconcile` repairs
            // it from this record if a crash falls in between.
            if !core.record(record_of(
                core,
                &incident,
                Decision::Fired,
                None,
                message.clone(),
                incident.detail(),
            )) {
                // Not on disk: do not act, and forget what the decision
                // counted, so the next wake decides again.
                core.with_ledger(|l| l.data = before);
                return;
            }
            if !settle(core, &incident) {
                let message = "not run: the remediation state could not be saved".to_string();
                core.record(record_of(
                    core,
                    &incident,
                    Decision::Failed,
                    Some("state"),
                    message,
                    Value::Null,
                ));
                return;
            }
            act::spawn(core, incident, message);
        }
    }
}

/// Mark the incident settled in the ledger and save it (with whatever the
/// decision changed: cooldown, window, breaker). False if it could not be
/// saved.
fn settle(core: &Remediator, incident: &Incident) -> bool {
    core.pending.lock().remove(&incident.remediation.name);
    let saved = core.with_ledger(|l| {
        l.data
            .settled
            .insert(incident.remediation.name.clone(), incident.onset);
        l.save()
    });
    match saved {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(
                "cannot save the remediation ledger; not acting on {:?}: {e}",
                incident.remediation.name
            );
            false
        }
    }
}

/// The first `unless` condition that holds, described.
fn suppressed_by(port: &dyn AgentPort, remediation: &Remediation) -> Option<String> {
    remediation.unless.iter().find_map(|c| {
        let hard = port.watched(&c.probe, None, c.status)?.hard;
        holds(hard, c.status).then(|| format!("probe {:?} is {hard}", c.probe))
    })
}

//! Remediation that operators can trust. The [`Remediator`] listens to run
//! events; when a probe's state turns hard into what a `[[remediation]]`
//! waits for ([`trigger`]), it decides ([`decide`]: flapping, `unless`,
//! pauses, cooldown, rate limit and breaker, failover block, dry run),
//! records the decision durably ([`ledger`], [`audit`]) *before* acting,
//! runs the action ([`actions`], [`command`], [`webhook`], [`failover`]),
//! verifies it by re-running a probe, and records the outcome. Every
//! decision is also published as an event (for OTLP) and counted.

pub mod actions;
pub mod audit;
pub mod command;
pub mod decide;
pub mod failover;
pub mod ledger;
pub mod trigger;
pub mod webhook;

use crate::config::{Action, Remediation};
use crate::daemon::Shared;
use crate::daemon::events::{AgentEvent, RemediationEvent, RunEvent};
use crate::report::Status;
use actions::{ActionContext, ActionOutcome};
use audit::{AuditLog, AuditRecord};
use decide::{Situation, Verdict};
use ledger::Ledger;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The remediation service of a running agent.
pub struct Remediator {
    pub audit: AuditLog,
    ledger: Mutex<Ledger>,
    /// Remediations whose action is running.
    running: Mutex<HashSet<String>>,
    http: reqwest::Client,
    /// Decisions so far, by (remediation, decision).
    counts: Mutex<BTreeMap<(String, String), u64>>,
}

/// What triggered a remediation, for records, env vars and webhooks.
struct Trigger<'a> {
    remediation: &'a Remediation,
    event: &'a RunEvent,
    status: Status,
    id: String,
}

impl Remediator {
    /// Open the audit log and the ledger in `state_dir`.
    pub fn open(state_dir: &std::path::Path) -> anyhow::Result<Remediator> {
        let audit = AuditLog::open(state_dir).map_err(|e| {
            anyhow::anyhow!("cannot open the audit log in {}: {e}", state_dir.display())
        })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("watchpost/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot create the HTTP client for webhooks: {e}"))?;
        Ok(Remediator {
            audit,
            ledger: Mutex::new(Ledger::open(state_dir)),
            running: Mutex::new(HashSet::new()),
            http,
            counts: Mutex::new(BTreeMap::new()),
        })
    }

    /// Decision counts, by (remediation, decision).
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Start listening to the agent's run events.
    pub fn start(shared: &Arc<Shared>) {
        let (mut events, _dropped) = shared.events.subscribe("remediation");
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let AgentEvent::Run(run) = event else {
                    continue;
                };
                if run.changes.hard.is_none() && run.changes.rules.is_empty() {
                    continue;
                }
                let config = shared.config();
                for remediation in &config.remediations {
                    if let Some(change) = trigger::fired_by(&remediation.on, &run) {
                        shared
                            .remediator
                            .consider(&shared, remediation, &run, change.to, config.agent.dry_run)
                            .await;
                    }
                }
            }
        });
    }

    fn with_ledger<R>(&self, f: impl FnOnce(&mut Ledger) -> R) -> R {
        f(&mut self.ledger.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Append a record, publish it as an event and count it. False if it
    /// could not be written (then nothing may act on it).
    fn record(&self, shared: &Shared, record: AuditRecord) -> bool {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((record.remediation.clone(), record.decision.clone()))
            .or_default() += 1;
        let written = match self.audit.append(&record) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    "cannot write to the audit log {}: {e}",
                    self.audit.path().display()
                );
                false
            }
        };
        let level_warn = matches!(
            record.decision.as_str(),
            "fired" | "failed" | "not-verified" | "breaker-open"
        );
        if level_warn {
            tracing::warn!(remediation = %record.remediation, decision = %record.decision, "{}", record.message);
        } else {
            tracing::info!(remediation = %record.remediation, decision = %record.decision, "{}", record.message);
        }
        shared.events.publish_remediation(RemediationEvent {
            at: record.at,
            remediation: record.remediation,
            probe: record.probe,
            decision: record.decision,
            reason: record.reason,
            action: record.action,
            status: record.status,
            message: record.message,
            id: record.id,
        });
        written
    }

    fn base_record(
        &self,
        shared: &Shared,
        t: &Trigger,
        decision: &str,
        reason: Option<&str>,
        message: String,
        detail: Value,
    ) -> AuditRecord {
        AuditRecord {
            id: t.id.clone(),
            at: SystemTime::now(),
            node: shared.node(),
            remediation: t.remediation.name.clone(),
            probe: t.event.probe.clone(),
            decision: decision.into(),
            reason: reason.map(String::from),
            action: t.remediation.action.kind().into(),
            status: t.status,
            message,
            detail,
        }
    }

    /// A triggered remediation: decide, record, act.
    async fn consider(
        &self,
        shared: &Arc<Shared>,
        remediation: &Remediation,
        event: &Arc<RunEvent>,
        status: Status,
        global_dry_run: bool,
    ) {
        let t = Trigger {
            remediation,
            event,
            status,
            id: self.audit.new_id(&remediation.name),
        };
        let dry_run = global_dry_run || remediation.dry_run;
        let suppressed_by = remediation.unless.iter().find_map(|c| {
            let hard = shared.slot(&c.probe)?.state().hard();
            trigger::matches(hard, c.status).then(|| format!("probe {:?} is {hard}", c.probe))
        });
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&remediation.name);
        let situation = Situation {
            remediation,
            now: SystemTime::now(),
            dry_run,
            flapping: event.flapping,
            suppressed_by,
            running,
        };
        let (verdict, saved) = self.with_ledger(|ledger| {
            let verdict = decide::decide(ledger, &situation);
            let saved = match &verdict {
                Verdict::Skip { .. } => Ok(()),
                _ => ledger.save(),
            };
            (verdict, saved)
        });
        let trigger_detail = trigger_detail(event, status);
        let what = describe(remediation);
        let because = format!(
            "probe {:?} is {status}: {}",
            event.probe, event.report.message
        );
        if let Err(e) = saved {
            tracing::error!(
                "cannot save the remediation ledger; not acting on {:?}: {e}",
                remediation.name
            );
            let message = format!("not run: the remediation state could not be saved ({e})");
            self.record(
                shared,
                self.base_record(shared, &t, "failed", Some("state"), message, trigger_detail),
            );
            return;
        }
        match verdict {
            Verdict::Skip { reason, why } => {
                let message = format!("skipped {what}: {why} ({because})");
                self.record(
                    shared,
                    self.base_record(shared, &t, "skipped", Some(reason), message, trigger_detail),
                );
            }
            Verdict::WouldFire => {
                let message = format!("dry run: would {what} because {because}");
                self.record(
                    shared,
                    self.base_record(shared, &t, "dry-run", None, message, trigger_detail),
                );
            }
            Verdict::BreakerOpens { why } => {
                let message = format!("breaker open for {what}: {why}");
                self.record(
                    shared,
                    self.base_record(
                        shared,
                        &t,
                        "breaker-open",
                        Some("breaker"),
                        message.clone(),
                        trigger_detail,
                    ),
                );
                if let Some(alert) = &remediation.alert
                    && dry_run
                {
                    let record = self.base_record(
                        shared,
                        &t,
                        "dry-run",
                        Some(alert.kind()),
                        format!("dry run: would send the {} alert", alert.kind()),
                        serde_json::Value::Null,
                    );
                    self.record(shared, record);
                } else if let Some(alert) = &remediation.alert {
                    let ctx = self.context(shared, &t, "breaker-open", &message);
                    let outcome = actions::run_simple(&ctx, alert).await;
                    let record = self.base_record(
                        shared,
                        &t,
                        "alert",
                        Some(alert.kind()),
                        outcome.message,
                        outcome.detail,
                    );
                    self.record(shared, record);
                }
            }
            Verdict::Fire => {
                let message = format!("{what} because {because}");
                if !self.record(
                    shared,
                    self.base_record(shared, &t, "fired", None, message.clone(), trigger_detail),
                ) {
                    return; // not on disk: do not act
                }
                self.running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(remediation.name.clone());
                let outcome = self.act(shared, &t, &message).await;
                self.running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&remediation.name);
                let verified = match (&remediation.verify, outcome.ok) {
                    (Some(verify), true) => {
                        Some(verify_probe(shared, &verify.probe, verify.within).await)
                    }
                    _ => None,
                };
                let (decision, summary) = match (outcome.ok, &verified) {
                    (false, _) => ("failed", outcome.message.clone()),
                    (true, Some((false, why))) => {
                        ("not-verified", format!("{}; but {why}", outcome.message))
                    }
                    (true, Some((true, why))) => {
                        ("succeeded", format!("{}; {why}", outcome.message))
                    }
                    (true, None) => ("succeeded", outcome.message.clone()),
                };
                let mut detail = outcome.detail;
                if let Value::Object(map) = &mut detail {
                    map.insert(
                        "verified".into(),
                        json!(verified.as_ref().map(|(ok, _)| *ok)),
                    );
                } else {
                    detail = json!({"verified": verified.as_ref().map(|(ok, _)| *ok)});
                }
                self.record(
                    shared,
                    self.base_record(shared, &t, decision, None, summary, detail),
                );
            }
        }
    }

    fn context<'a>(
        &'a self,
        shared: &Shared,
        t: &Trigger,
        decision: &str,
        message: &str,
    ) -> ActionContext<'a> {
        let sql = shared.services().sql.clone();
        let measurements = serde_json::to_string(&t.event.report.measurements).unwrap_or_default();
        let env = BTreeMap::from([
            ("WATCHPOST_EVENT_ID".to_string(), t.id.clone()),
            (
                "WATCHPOST_REMEDIATION".to_string(),
                t.remediation.name.clone(),
            ),
            ("WATCHPOST_PROBE".to_string(), t.event.probe.clone()),
            ("WATCHPOST_STATUS".to_string(), t.status.to_string()),
            (
                "WATCHPOST_MESSAGE".to_string(),
                t.event.report.message.clone(),
            ),
            ("WATCHPOST_MEASUREMENTS".to_string(), measurements),
            ("WATCHPOST_NODE".to_string(), shared.node()),
        ]);
        let event = json!({
            "event": "watchpost.remediation",
            "id": t.id,
            "decision": decision,
            "node": shared.node(),
            "remediation": t.remediation.name,
            "action": t.remediation.action.kind(),
            "probe": t.event.probe,
            "status": t.status,
            "message": message,
            "probe_message": t.event.report.message,
            "measurements": t.event.report.measurements,
            "at": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        });
        ActionContext {
            http: &self.http,
            sql,
            env,
            event,
        }
    }

    async fn act(&self, shared: &Arc<Shared>, t: &Trigger<'_>, message: &str) -> ActionOutcome {
        let ctx = self.context(shared, t, "fired", message);
        match &t.remediation.action {
            Action::Failover(failover) => {
                let mut record_step = |step: &failover::Step| {
                    let record = self.base_record(
                        shared,
                        t,
                        "step",
                        Some(step.name),
                        format!("{}: {}", step.name, step.message),
                        json!({"ok": step.ok, "detail": step.detail}),
                    );
                    self.record(shared, record);
                };
                let (outcome, promoted) =
                    actions::run_failover(&ctx, failover, &mut record_step).await;
                if promoted {
                    self.with_ledger(|ledger| {
                        ledger.data.failover_blocked_until =
                            Some(SystemTime::now() + failover.block_for);
                        if let Err(e) = ledger.save() {
                            tracing::error!("cannot save the failover block: {e}");
                        }
                    });
                }
                outcome
            }
            action => actions::run_simple(&ctx, action).await,
        }
    }

    /// Pause one remediation (or all, with `ledger::ALL`) for a while or
    /// until resumed.
    pub fn pause(
        &self,
        shared: &Shared,
        name: &str,
        duration: Option<Duration>,
    ) -> std::io::Result<()> {
        let until = duration.map(|d| SystemTime::now() + d);
        self.with_ledger(|l| {
            l.data.paused.insert(name.to_string(), until);
            l.save()
        })?;
        let how_long = duration.map_or("until resumed".to_string(), |d| {
            format!("for {}", crate::config::units::format_duration(d))
        });
        self.operator_record(
            shared,
            name,
            "paused",
            format!("paused {how_long} by an operator"),
        );
        Ok(())
    }

    /// Lift a pause.
    pub fn resume(&self, shared: &Shared, name: &str) -> std::io::Result<()> {
        self.with_ledger(|l| {
            l.data.paused.remove(name);
            l.save()
        })?;
        self.operator_record(shared, name, "resumed", "resumed by an operator".into());
        Ok(())
    }

    /// Close the breaker and clear the cooldown of `name`; lift the
    /// failover block if it is a failover.
    pub fn reset(&self, shared: &Shared, name: &str) -> std::io::Result<()> {
        let is_failover = shared
            .config()
            .remediations
            .iter()
            .any(|r| r.name == name && matches!(r.action, Action::Failover(_)));
        self.with_ledger(|l| {
            l.data.live.remove(name);
            l.data.dry_run.remove(name);
            if is_failover {
                l.data.failover_blocked_until = None;
            }
            l.save()
        })?;
        let what = if is_failover {
            "breaker closed, cooldown cleared, failover block lifted"
        } else {
            "breaker closed, cooldown cleared"
        };
        self.operator_record(shared, name, "reset", format!("{what} by an operator"));
        Ok(())
    }

    fn operator_record(&self, shared: &Shared, name: &str, decision: &str, message: String) {
        let record = AuditRecord {
            id: self.audit.new_id(name),
            at: SystemTime::now(),
            node: shared.node(),
            remediation: name.to_string(),
            probe: String::new(),
            decision: decision.into(),
            reason: Some("operator".into()),
            action: String::new(),
            status: Status::Ok,
            message,
            detail: Value::Null,
        };
        self.record(shared, record);
    }

    /// The guard state of every configured remediation, for the API.
    pub fn view(&self, shared: &Shared) -> Value {
        let config = shared.config();
        let now = SystemTime::now();
        self.with_ledger(|l| {
            let blocked = l.data.failover_blocked_until.filter(|t| *t > now);
            let list: Vec<Value> = config
                .remediations
                .iter()
                .map(|r| {
                    let paused = l.paused(&r.name, now);
                    let guards = l.guards(&r.name, false).clone();
                    let cooldown_left = guards.cooling_down(r.cooldown, now).map(|d| d.as_secs_f64());
                    json!({
                        "name": r.name,
                        "action": r.action.kind(),
                        "on": {"probe": r.on.probe, "status": r.on.status, "measurement": r.on.measurement},
                        "dry_run": r.dry_run || config.agent.dry_run,
                        "paused": paused,
                        "cooldown_remaining_seconds": cooldown_left,
                        "last_fired": guards.last_fired.map(|t| humantime::format_rfc3339_millis(t).to_string()),
                        "fires_in_window": guards.fires.len(),
                        "breaker_open": guards.breaker_open_since.is_some(),
                        "failover_blocked_until": matches!(r.action, Action::Failover(_))
                            .then(|| blocked.map(|t| humantime::format_rfc3339_millis(t).to_string()))
                            .flatten(),
                    })
                })
                .collect();
            json!({"remediations": list, "paused_all": l.data.paused.contains_key(ledger::ALL)})
        })
    }
}

fn trigger_detail(event: &RunEvent, status: Status) -> Value {
    json!({
        "trigger": {
            "probe": event.probe,
            "status": status,
            "changes": {
                "hard": event.changes.hard.map(|c| json!({"from": c.from, "to": c.to})),
                "thresholds": event.changes.rules.iter().map(|(m, c)| json!({"measurement": m, "from": c.from, "to": c.to})).collect::<Vec<_>>(),
            },
            "message": event.report.message,
            "measurements": event.report.measurements,
            "error": event.report.error,
        }
    })
}

/// "restart (pg_ctl restart ...)"-style description of the action.
fn describe(r: &Remediation) -> String {
    match &r.action {
        Action::Exec(e) => format!("{}: exec {}", r.name, e.argv.join(" ")),
        Action::Restart(restart) => {
            format!(
                "{}: restart ({})",
                r.name,
                actions::restart_command(&restart.method, restart.timeout.as_secs())
                    .argv
                    .join(" ")
            )
        }
        Action::Failover(f) => format!(
            "{}: fail over from `{}` to `{}`",
            r.name, f.primary, f.standby
        ),
        Action::Webhook(w) => format!("{}: webhook {}", r.name, w.url),
    }
}

/// Re-run `probe` until it is ok or `within` has passed: (ok, what happened).
async fn verify_probe(shared: &Arc<Shared>, probe: &str, within: Duration) -> (bool, String) {
    let Some(slot) = shared.slot(probe) else {
        return (false, format!("verify probe {probe:?} is not configured"));
    };
    let started = Instant::now();
    let mut runs = 0;
    let mut last = String::new();
    while started.elapsed() < within {
        runs += 1;
        let (status, message) = crate::daemon::pipeline::check_now(shared, &slot).await;
        if status == Status::Ok {
            return (
                true,
                format!(
                    "verified: {probe} ok after {runs} run(s) in {:.1} s",
                    started.elapsed().as_secs_f64()
                ),
            );
        }
        last = format!("{status}: {message}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (
        false,
        format!(
            "not verified: {probe} was not ok within {} ({runs} run(s); last {last})",
            crate::config::units::format_duration(within)
        ),
    )
}

//! Remediation that operators can trust, and that never loses a trigger.
//!
//! The [`Remediator`] is a handle on one engine task ([`engine`]) that the
//! run pipeline wakes whenever a probe's hard state, a threshold's state or
//! flapping changes (a wake-up coalesces; it carries no data to drop). The
//! engine then reads every trigger's *current* state through the agent's
//! [`port::AgentPort`] and acts on each incident once: a trigger holds when
//! its probe (or threshold) is hard at the wanted level ([`trigger`]), and
//! an incident is named by the onset of that level, so a restart neither
//! repeats nor misses one. It decides ([`decide`]: flapping, `unless`,
//! pauses, running, failover block, cooldown, rate limit and breaker, dry
//! run), records the decision durably ([`audit`] first, then the
//! [`ledger`]) *before* acting, and runs each action in a task of its own
//! ([`act`]: [`crate::process`], [`webhook`], [`failover`]; an operator's
//! fence command: [`command`]), bounded in time, so a
//! slow restart never delays a failover. Triggers skipped for a passing
//! reason (unless, pause, flapping, an action still running) are
//! reconsidered when it clears. At start, [`reconcile`] reports actions
//! that a crash or shutdown interrupted. Every decision is also published
//! as an event (for OTLP) and counted.

pub mod act;
pub mod answer;
pub mod audit;
pub mod command;
pub mod decide;
pub mod engine;
pub mod failover;
pub mod ledger;
pub mod mysql_failover;
pub mod outcome;
pub mod port;
pub mod promoted;
pub mod reconcile;
pub mod recovery;
pub mod redis_failover;
pub mod reinit;
pub mod rejoin_watch;
pub mod step;
pub mod trigger;
pub mod webhook;

use crate::config::Action;
use crate::events::{Decision, RemediationEvent};
use crate::report::Status;
use audit::{AuditLog, AuditRecord};
use decide::SkipReason;
use ledger::Ledger;
use parking_lot::Mutex;
use port::AgentPort;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for actions in flight before it leaves them
/// (the next start records them as `interrupted`).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The remediation service of a running agent: a cheap handle
/// (`Arc<Remediator>`) on the engine task and its durable state.
pub struct Remediator {
    pub audit: AuditLog,
    ledger: Mutex<Ledger>,
    /// Remediations whose action is running.
    running: Mutex<HashSet<String>>,
    /// Transient skips already recorded, by remediation: (incident, reason),
    /// so that a condition that lasts is recorded once, not at every wake.
    pending: Mutex<HashMap<String, (u64, SkipReason)>>,
    http: reqwest::Client,
    /// Decisions so far, by (remediation, decision).
    counts: Mutex<BTreeMap<(String, Decision), u64>>,
    port: OnceLock<Arc<dyn AgentPort>>,
    wake: Notify,
    /// Action tasks, so that shutdown can wait for them.
    actions: TaskTracker,
    /// Set when shutdown begins: no new action starts after it.
    stopping: CancellationToken,
    /// Held while the engine decides, so that shutdown waits for a
    /// decision in progress (and the action it starts) before it counts
    /// the actions to wait for.
    deciding: Mutex<()>,
}

impl Remediator {
    /// Open the audit log and the ledger in `state_dir`.
    pub fn open(state_dir: &std::path::Path) -> anyhow::Result<Arc<Remediator>> {
        let audit = AuditLog::open(state_dir).map_err(|e| {
            anyhow::anyhow!("cannot open the audit log in {}: {e}", state_dir.display())
        })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("watchpost/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the event and the bearer token to
            // another host: a 3xx is an answer, not a new address.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("cannot create the HTTP client for webhooks: {e}"))?;
        Ok(Arc::new(Remediator {
            audit,
            ledger: Mutex::new(Ledger::open(state_dir)),
            running: Mutex::new(HashSet::new()),
            pending: Mutex::new(HashMap::new()),
            http,
            counts: Mutex::new(BTreeMap::new()),
            port: OnceLock::new(),
            wake: Notify::new(),
            actions: TaskTracker::new(),
            stopping: CancellationToken::new(),
            deciding: Mutex::new(()),
        }))
    }

    /// Reconcile the audit log with what a previous run left (see
    /// [`reconcile`]), then start the engine on `port`. Call once, before
    /// the first probe run.
    pub fn start(self: &Arc<Self>, port: Arc<dyn AgentPort>) {
        if self.port.set(port).is_err() {
            return; // already started
        }
        reconcile::interrupted_actions(self);
        tokio::spawn(engine::run(self.clone()));
    }

    /// Something a trigger may depend on changed: evaluate soon. Cheap and
    /// coalescing; never blocks.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stop starting actions, and wait up to `grace` for those in flight.
    /// Actions still running then are left (and recorded as `interrupted`
    /// at the next start).
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.cancel();
        // A decision being made finishes (its action is then tracked).
        drop(self.deciding.lock());
        self.actions.close();
        if tokio::time::timeout(grace, self.actions.wait())
            .await
            .is_err()
        {
            let running: Vec<String> = self.running.lock().iter().cloned().collect();
            tracing::error!(
                "stopping with remediation actions still running after {}: {}; the next start records them as interrupted",
                crate::config::units::format_duration(grace),
                running.join(", ")
            );
        }
    }

    /// Decision counts, by (remediation, decision).
    pub fn counts(&self) -> BTreeMap<(String, Decision), u64> {
        self.counts.lock().clone()
    }

    fn port(&self) -> Option<&Arc<dyn AgentPort>> {
        self.port.get()
    }

    fn node(&self) -> String {
        self.port().map(|p| p.node()).unwrap_or_default()
    }

    fn with_ledger<R>(&self, f: impl FnOnce(&mut Ledger) -> R) -> R {
        f(&mut self.ledger.lock())
    }

    fn is_running(&self, name: &str) -> bool {
        self.running.lock().contains(name)
    }

    /// Append a record, publish it as an event and count it. False if it
    /// could not be written (then nothing may act on it).
    fn record(&self, record: AuditRecord) -> bool {
        *self
            .counts
            .lock()
            .entry((record.remediation.clone(), record.decision))
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
        if record.decision == Decision::Interrupted {
            tracing::error!(remediation = %record.remediation, decision = %record.decision, "{}", record.message);
        } else if record.decision.is_alarming() {
            tracing::warn!(remediation = %record.remediation, decision = %record.decision, "{}", record.message);
        } else {
            tracing::info!(remediation = %record.remediation, decision = %record.decision, "{}", record.message);
        }
        if let Some(port) = self.port() {
            port.publish(RemediationEvent {
                at: record.at,
                node: record.node,
                remediation: record.remediation,
                probe: record.probe,
                decision: record.decision,
                reason: record.reason,
                action: record.action,
                status: record.status,
                message: record.message,
                id: record.id,
            });
        }
        written
    }

    /// Pause one remediation (or all, with `ledger::ALL`) for a while or
    /// until resumed.
    pub fn pause(&self, name: &str, duration: Option<Duration>) -> std::io::Result<()> {
        // A pause beyond the clock's range is a pause until resumed.
        let until = duration.and_then(|d| SystemTime::now().checked_add(d));
        self.with_ledger(|l| {
            l.data.paused.insert(name.to_string(), until);
            l.save()
        })?;
        let how_long = duration.map_or("until resumed".to_string(), |d| {
            format!("for {}", crate::config::units::format_duration(d))
        });
        self.operator_record(
            name,
            Decision::Paused,
            format!("paused {how_long} by an operator"),
        );
        Ok(())
    }

    /// Lift a pause; triggers it held back are reconsidered.
    pub fn resume(&self, name: &str) -> std::io::Result<()> {
        self.with_ledger(|l| {
            l.data.paused.remove(name);
            l.save()
        })?;
        self.operator_record(name, Decision::Resumed, "resumed by an operator".into());
        self.wake();
        Ok(())
    }

    /// Close the breaker and clear the cooldown of `name`; lift the
    /// failover block if it is a failover.
    pub fn reset(&self, name: &str) -> std::io::Result<()> {
        let is_failover = self.port().and_then(|p| p.config()).is_some_and(|c| {
            c.remediations
                .iter()
                .any(|r| r.name == name && matches!(r.action, Action::Failover(_)))
        });
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
        self.operator_record(name, Decision::Reset, format!("{what} by an operator"));
        Ok(())
    }

    /// Record a decision of the cluster mode (`remediation` = `cluster`):
    /// audit log, event, count, log line.
    pub fn record_cluster(&self, decision: Decision, message: String, detail: Value) {
        let record = AuditRecord {
            id: self.audit.new_id("cluster"),
            at: SystemTime::now(),
            node: self.node(),
            remediation: "cluster".into(),
            probe: String::new(),
            decision,
            reason: None,
            action: "cluster".into(),
            status: Status::Ok,
            message,
            detail,
        };
        self.record(record);
    }

    fn operator_record(&self, name: &str, decision: Decision, message: String) {
        let record = AuditRecord {
            id: self.audit.new_id(name),
            at: SystemTime::now(),
            node: self.node(),
            remediation: name.to_string(),
            probe: String::new(),
            decision,
            reason: Some("operator".into()),
            action: String::new(),
            status: Status::Ok,
            message,
            detail: Value::Null,
        };
        self.record(record);
    }

    /// The guard state of every configured remediation, for the API.
    pub fn view(&self) -> Value {
        let Some(config) = self.port().and_then(|p| p.config()) else {
            return json!({"remediations": [], "paused_all": false});
        };
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
                        "running": self.is_running(&r.name),
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

//! Carrying out a fired remediation, in a task of its own: the action
//! (exec, restart, webhook, failover, whose steps live in
//! [`super::failover`], or a recovery action, in [`super::recovery`]),
//! then the verify probe, then the outcome record.
//! Every part is bounded in time (the action's timeout, the webhook's
//! delivery deadline, each failover step's limit, verify's `within`), so a
//! task always ends with an outcome; only a stop of the agent can cut it
//! short, and the next start reports that (`interrupted`).

use super::Remediator;
use super::failover::{self, Step};
pub use super::outcome::ActionOutcome;
use super::recovery;
use super::reinit;
use super::trigger::Incident;
use super::trigger::record_of;
use super::webhook;
use crate::config::{Action, Remediation, RestartMethod};
use crate::events::Decision;
use crate::pgserver::ctl::{self, PgCtl};
use crate::process::{self, CommandSpec};
use crate::report::Status;
use crate::sql::SqlTargets;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What an action may use and know.
pub struct ActionContext {
    pub http: reqwest::Client,
    pub sql: SqlTargets,
    /// The config the action runs under (the Redis failover's admin
    /// logins); `None` once the agent is gone.
    pub config: Option<Arc<crate::config::Config>>,
    /// Environment describing the trigger, for exec-style actions.
    pub env: BTreeMap<String, String>,
    /// The JSON event for webhooks.
    pub event: Value,
}

impl ActionContext {
    fn new(core: &Remediator, incident: &Incident, decision: &str, message: &str) -> Self {
        let node = core.node();
        ActionContext {
            http: core.http.clone(),
            sql: core.port().map(|p| p.sql()).unwrap_or_default(),
            config: core.port().and_then(|p| p.config()),
            env: incident.env(&node),
            event: incident.event(&node, decision, message),
        }
    }
}

/// "restart (PROGRAM restart ...)"-style description of the action.
pub fn describe(r: &Remediation) -> String {
    match &r.action {
        Action::Exec(e) => format!("{}: exec {}", r.name, e.argv.join(" ")),
        Action::Restart(restart) => {
            format!(
                "{}: restart ({})",
                r.name,
                restart_command(&restart.method, restart.timeout.as_secs())
                    .argv
                    .join(" ")
            )
        }
        Action::Failover(f) => format!(
            "{}: fail over from `{}` to `{}`",
            r.name, f.primary, f.standby
        ),
        Action::Webhook(w) => format!("{}: webhook {}", r.name, webhook::redacted(&w.url)),
        Action::Terminate(a) | Action::Cancel(a) => {
            format!("{}: {} sessions on `{}`", r.name, r.action.kind(), a.target)
        }
        Action::ResumeReplay(a) => format!("{}: resume replay on `{}`", r.name, a.target),
        Action::Reinit(a) => format!("{}: re-clone `{}` from `{}`", r.name, a.standby, a.primary),
    }
}

/// What a dry run of `action` would act on, for actions that can tell
/// without acting (`terminate` and `cancel` list the sessions).
pub async fn preview(ctx: &ActionContext, action: &Action) -> Option<ActionOutcome> {
    match action {
        Action::Terminate(a) => Some(recovery::sessions(&ctx.sql, a, "terminate", false).await),
        Action::Cancel(a) => Some(recovery::sessions(&ctx.sql, a, "cancel", false).await),
        _ => None,
    }
}

/// Record the dry run of an action that can list what it would act on,
/// in a task of its own; false (nothing spawned) for other actions.
pub fn spawn_dry_run(core: &Arc<Remediator>, incident: Incident, message: String) -> bool {
    if !matches!(
        incident.remediation.action,
        Action::Terminate(_) | Action::Cancel(_)
    ) {
        return false;
    }
    let task_core = core.clone();
    core.actions.spawn(async move {
        let core = task_core;
        let ctx = ActionContext::new(&core, &incident, "dry-run", &message);
        let (summary, detail) = match preview(&ctx, &incident.remediation.action).await {
            Some(outcome) => (format!("{message}: {}", outcome.message), outcome.detail),
            None => (message, Value::Null),
        };
        core.record(record_of(
            &core,
            &incident,
            Decision::DryRun,
            None,
            summary,
            detail,
        ));
    });
    true
}

/// Start the action of a fired incident in a task of its own.
pub fn spawn(core: &Arc<Remediator>, incident: Incident, message: String) {
    let name = incident.remediation.name.clone();
    core.running.lock().insert(name.clone());
    let task_core = core.clone();
    core.actions.spawn(async move {
        let core = task_core;
        carry_out(&core, &incident, &message).await;
        core.running.lock().remove(&name);
        // Triggers held back while this ran are reconsidered.
        core.wake();
    });
}

/// Send the alert of an opened breaker in a task of its own.
pub fn spawn_alert(
    core: &Arc<Remediator>,
    incident: Incident,
    alert: Action,
    dry_run: bool,
    message: String,
) {
    let task_core = core.clone();
    core.actions.spawn(async move {
        let core = task_core;
        let record = if dry_run {
            record_of(
                &core,
                &incident,
                Decision::DryRun,
                Some(alert.kind()),
                format!("dry run: would send the {} alert", alert.kind()),
                Value::Null,
            )
        } else {
            let ctx = ActionContext::new(&core, &incident, "breaker-open", &message);
            let outcome = run_simple(&ctx, &alert).await;
            record_of(
                &core,
                &incident,
                Decision::Alert,
                Some(alert.kind()),
                outcome.message,
                outcome.detail,
            )
        };
        core.record(record);
    });
}

/// The action, the verify probe, the outcome record.
async fn carry_out(core: &Arc<Remediator>, incident: &Incident, message: &str) {
    let remediation = &incident.remediation;
    let ctx = ActionContext::new(core, incident, "fired", message);
    let outcome = match &remediation.action {
        Action::Failover(action) => {
            let mut record_step = |step: &Step| {
                core.record(record_of(
                    core,
                    incident,
                    Decision::Step,
                    Some(step.name),
                    format!("{}: {}", step.name, step.message),
                    json!({"ok": step.ok, "detail": step.detail}),
                ));
            };
            let (outcome, promoted) = run_failover(&ctx, action, &mut record_step).await;
            if promoted {
                block_failovers(core, action.block_for);
                let new_primary = outcome.detail["new_primary"].as_str().map(str::to_string);
                if let (Some(redis), Some(new_primary)) = (&action.redis, new_primary) {
                    super::redis_failover::rejoin::spawn_watch(
                        core,
                        incident.clone(),
                        action.clone(),
                        redis.clone(),
                        new_primary,
                    );
                }
                if let Some(mysql) = &action.mysql {
                    let (action, mysql) = (action.clone(), mysql.clone());
                    super::mysql_failover::rejoin::spawn_watch(
                        core,
                        incident.clone(),
                        action,
                        mysql,
                    );
                }
            }
            outcome
        }
        action => run_simple(&ctx, action).await,
    };
    let verified = match (&remediation.verify, outcome.ok) {
        (Some(verify), true) => Some(verify_probe(core, &verify.probe, verify.within).await),
        _ => None,
    };
    let (decision, summary) = match (outcome.ok, &verified) {
        (false, _) => (Decision::Failed, outcome.message.clone()),
        (true, Some((false, why))) => (
            Decision::NotVerified,
            format!("{}; but {why}", outcome.message),
        ),
        (true, Some((true, why))) => (Decision::Succeeded, format!("{}; {why}", outcome.message)),
        (true, None) => (Decision::Succeeded, outcome.message.clone()),
    };
    let mut detail = outcome.detail;
    let verified_flag = json!(verified.as_ref().map(|(ok, _)| *ok));
    if let Value::Object(map) = &mut detail {
        map.insert("verified".into(), verified_flag);
    } else {
        detail = json!({ "verified": verified_flag });
    }
    core.record(record_of(core, incident, decision, None, summary, detail));
}

/// Refuse failovers for `block_for` after one promoted a standby.
pub(super) fn block_failovers(core: &Remediator, block_for: Duration) {
    core.with_ledger(|ledger| {
        // `block_for` is at most a year (config checks it); a clock beyond
        // range blocks for that year.
        let now = SystemTime::now();
        let until = now
            .checked_add(block_for)
            .or_else(|| now.checked_add(Duration::from_secs(365 * 86_400)))
            .unwrap_or(now);
        ledger.data.failover_blocked_until = Some(until);
        if let Err(e) = ledger.save() {
            tracing::error!("cannot save the failover block: {e}");
        }
    });
}

/// Re-run `probe` until it is ok or `within` has passed: (ok, what happened).
async fn verify_probe(core: &Remediator, probe: &str, within: Duration) -> (bool, String) {
    let Some(port) = core.port().cloned() else {
        return (false, "the agent is not running".into());
    };
    let started = Instant::now();
    let mut runs = 0;
    let mut last = String::new();
    while started.elapsed() < within {
        runs += 1;
        let left = within.saturating_sub(started.elapsed());
        let run = tokio::time::timeout(left, port.check_now(probe)).await;
        let (status, message) = match run {
            Ok(Some(outcome)) => outcome,
            Ok(None) => return (false, format!("verify probe {probe:?} is not configured")),
            Err(_) => break,
        };
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

/// The command a restart method runs.
pub fn restart_command(method: &RestartMethod, timeout_secs: u64) -> CommandSpec {
    let (argv, user): (Vec<String>, _) = match method {
        RestartMethod::PgCtl { program, data_dir } => (
            PgCtl::at(program).restart(
                data_dir,
                timeout_secs,
                // `run_simple` makes sure the directory exists.
                &data_dir.join("log").join("watchpost-restart.log"),
            ),
            // Only for describing the action: running it opens the data
            // directory itself and refuses one it cannot hand to its owner.
            crate::pgserver::pgdata::owner_if_root(data_dir)
                .ok()
                .flatten(),
        ),
        RestartMethod::PgCtlCluster { version, cluster } => {
            (ctl::debian_restart(version, cluster), None)
        }
        RestartMethod::Systemctl { unit } => (
            vec!["systemctl".into(), "restart".into(), unit.clone()],
            None,
        ),
        RestartMethod::Command(argv) => (argv.clone(), None),
    };
    CommandSpec {
        argv,
        user,
        ..CommandSpec::default()
    }
}

fn from_command(result: Result<process::CommandOutcome, String>, what: &str) -> ActionOutcome {
    match result {
        Ok(out) => ActionOutcome {
            ok: out.success(),
            message: format!("{what}: {}", out.summary()),
            detail: json!({"command": out}),
        },
        Err(e) => ActionOutcome {
            ok: false,
            message: format!("{what}: {e}"),
            detail: Value::Null,
        },
    }
}

/// Run a non-failover action.
pub async fn run_simple(ctx: &ActionContext, action: &Action) -> ActionOutcome {
    match action {
        Action::Exec(exec) => {
            let mut env = ctx.env.clone();
            env.extend(exec.env.clone());
            let spec = CommandSpec {
                argv: exec.argv.clone(),
                env,
                timeout: exec.timeout,
                user: None,
                current_dir: None,
            };
            from_command(process::run(&spec).await, "exec")
        }
        Action::Restart(restart) => {
            let mut spec = restart_command(&restart.method, restart.timeout.as_secs().max(1));
            spec.timeout = restart.timeout;
            if let RestartMethod::PgCtl { data_dir, .. } = &restart.method {
                // The restart's log file (`-l`) needs the log directory to
                // exist: made as the data directory's owner's, never
                // through a link.
                let prepared = crate::pgserver::pgdata::open(data_dir).and_then(|dir| {
                    spec.user = dir.run_as();
                    dir.subdir("log", true)
                });
                if let Err(e) = prepared {
                    return ActionOutcome {
                        ok: false,
                        message: format!("restart refused: {e}"),
                        detail: Value::Null,
                    };
                }
                crate::pgserver::pgdata::set_aside_dead_postmaster_pid(data_dir);
            }
            spec.env = ctx.env.clone();
            from_command(process::run(&spec).await, "restart")
        }
        Action::Webhook(hook) => {
            let delivery = webhook::deliver(&ctx.http, hook, &ctx.event).await;
            let message = if delivery.delivered {
                format!(
                    "webhook delivered to {} ({} attempt(s))",
                    delivery.url, delivery.attempts
                )
            } else {
                format!(
                    "webhook to {} failed after {} attempt(s): {}",
                    delivery.url,
                    delivery.attempts,
                    delivery.error.clone().unwrap_or_default()
                )
            };
            ActionOutcome {
                ok: delivery.delivered,
                message,
                detail: json!({"delivery": delivery}),
            }
        }
        Action::Terminate(a) => recovery::sessions(&ctx.sql, a, "terminate", true).await,
        Action::Cancel(a) => recovery::sessions(&ctx.sql, a, "cancel", true).await,
        Action::ResumeReplay(a) => recovery::resume_replay(&ctx.sql, a).await,
        Action::Reinit(a) => reinit::reinit(&ctx.sql, a).await,
        Action::Failover(_) => ActionOutcome {
            ok: false,
            message: "a failover cannot be a post step or an alert".into(),
            detail: Value::Null,
        },
    }
}

/// Run a failover: the promotion steps, then the post steps. `record` gets
/// every step as it completes. `promoted` tells whether the standby was
/// promoted (the failover block applies even if a later step failed).
pub async fn run_failover(
    ctx: &ActionContext,
    action: &crate::config::FailoverAction,
    record: &mut (dyn FnMut(&Step) + Send),
) -> (ActionOutcome, bool) {
    let mut promoted = false;
    // The target a step promoted (a Redis failover chooses among several).
    let mut promoted_target: Option<String> = None;
    let mut track = |step: &Step| {
        if super::promoted::counts_as_promoted(step) {
            promoted = true;
            promoted_target = step.detail["target"].as_str().map(str::to_string);
        }
        record(step);
    };
    let mut new_primary = action.standby.clone();
    let result = match (&action.mysql, &action.redis) {
        (Some(mysql), _) => {
            super::mysql_failover::promote(&ctx.sql, action, mysql, &mut track).await
        }
        (None, Some(redis)) => {
            let admins = ctx
                .config
                .as_deref()
                .map(super::redis_failover::server::Admins::from_config)
                .unwrap_or_default();
            super::redis_failover::promote(&admins, action, redis, &mut track)
                .await
                .map(|done| {
                    new_primary = done.new_primary;
                    done.failures
                })
        }
        (None, None) => failover::promote(&ctx.sql, action, &action.primary, &mut track)
            .await
            .map(|()| Vec::new()),
    };
    let mut post_failures = match result {
        Ok(failures) => failures,
        Err(message) => {
            // A later step failed after a promotion: which server was
            // promoted still matters (the old primary's rejoin).
            let detail = match (promoted, promoted_target) {
                (true, Some(target)) => json!({"new_primary": target}),
                _ => Value::Null,
            };
            return (
                ActionOutcome {
                    ok: false,
                    message: format!("failover: {message}"),
                    detail,
                },
                promoted,
            );
        }
    };
    for post in &action.post {
        let outcome = run_simple(ctx, post).await;
        let step = Step {
            name: "post",
            ok: outcome.ok,
            message: outcome.message.clone(),
            detail: outcome.detail.clone(),
        };
        record(&step);
        if !outcome.ok {
            post_failures.push(outcome.message);
        }
    }
    let message = if post_failures.is_empty() {
        format!("failover: promoted `{new_primary}`, which accepts writes")
    } else {
        format!(
            "failover: promoted `{new_primary}`; later steps failed: {}",
            post_failures.join("; ")
        )
    };
    (
        ActionOutcome {
            ok: true,
            message,
            detail: json!({"new_primary": new_primary}),
        },
        true,
    )
}

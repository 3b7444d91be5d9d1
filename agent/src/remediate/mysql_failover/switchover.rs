//! The planned hand-over of a MariaDB pair, asked for by an operator
//! (`watchpost switchover NAME`, `POST /v1/remediations/NAME/switchover`)
//! on a configured failover: the replica must be healthy and the primary
//! alive; the primary is made read-only (its sessions killed), the
//! replica applies everything up to the primary's last GTID, is promoted
//! and takes a write, then the old primary replicates from it and the
//! other replicas are repointed. If the replica does not catch up within
//! `apply_within`, the primary is made writable again and nothing else
//! changes.

use super::steps;
use super::{CONNECT, connect, gtid};
use crate::config::{FailoverAction, MysqlFailover};
use crate::remediate::step::Step;
use crate::remediate::step::within;
use crate::sql::SqlTargets;
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

/// Run the switchover's steps, each passed to `record` as it completes.
/// Ok when the replica was promoted and takes writes (a failed rejoin or
/// repoint is recorded and listed in the `Ok`).
pub async fn run(
    sql: &SqlTargets,
    action: &FailoverAction,
    mysql: &MysqlFailover,
    record: &mut (dyn FnMut(&Step) + Send),
) -> Result<Vec<String>, String> {
    let limit = super::step_limit("apply-relay", action, mysql) + CONNECT * 2;
    let mut run = |step: Step| {
        record(&step);
        if step.ok { Ok(()) } else { Err(step.message) }
    };
    run(within("hand-over", limit, hand_over(sql, action, mysql)).await)?;
    let limit = super::step_limit("promote", action, mysql);
    run(within("promote", limit, steps::promote(sql, action)).await)?;
    run(steps::verify_write(sql, action).await)?;
    let mut failures = Vec::new();
    let rejoin = super::rejoin::rejoin(sql, &action.primary, &action.standby);
    let mut others = vec![rejoin.await];
    for replica in &mysql.replicas {
        others.push(steps::repoint(sql, replica, &action.standby).await);
    }
    for step in others {
        record(&step);
        if !step.ok {
            failures.push(step.message);
        }
    }
    Ok(failures)
}

/// Check both, make the primary read-only, wait for the replica to apply
/// its last GTID; on any failure after the primary was made read-only,
/// make it writable again.
async fn hand_over(sql: &SqlTargets, action: &FailoverAction, mysql: &MysqlFailover) -> Step {
    let (old, new) = (&action.primary, &action.standby);
    let fail = |message: String, detail: Value| Step::failed("hand-over", message, detail);
    let mut replica = match connect(sql, new, CONNECT).await {
        Ok(server) => server,
        Err(e) => {
            return fail(
                format!("the replica `{new}` is not reachable: {e:?}"),
                Value::Null,
            );
        }
    };
    let status = match replica.replica_status().await {
        Ok(Some(status)) => status,
        Ok(None) => return fail(format!("`{new}` is not a replica"), Value::Null),
        Err(e) => return fail(format!("cannot read `{new}`'s state: {e:?}"), Value::Null),
    };
    let mut detail = json!({"replica": status.detail()});
    if status.io_running != "Yes" || status.sql_running != "Yes" {
        return fail(
            format!(
                "the replica `{new}` is not replicating (IO thread {}, SQL thread {}): a switchover needs a healthy replica",
                status.io_running, status.sql_running
            ),
            detail,
        );
    }
    let gtids = match replica.gtids(&status.received).await {
        Ok(gtids) => gtids,
        Err(e) => return fail(format!("cannot read `{new}`'s GTIDs: {e:?}"), detail),
    };
    match gtid::errant(&gtids) {
        gtid::Errant::Clean => {}
        gtid::Errant::Found(errant) => {
            return fail(
                format!(
                    "refused: the replica `{new}` has errant GTIDs {}",
                    errant.join(",")
                ),
                detail,
            );
        }
        gtid::Errant::CannotTell(why) => {
            return fail(
                format!(
                    "refused: whether the replica `{new}` has errant GTIDs cannot be told: {why}"
                ),
                detail,
            );
        }
    }
    let mut primary = match connect(sql, old, CONNECT).await {
        Ok(server) => server,
        Err(e) => {
            return fail(
                format!(
                    "the primary `{old}` is not reachable ({e:?}): that is a failover, not a switchover"
                ),
                detail,
            );
        }
    };
    let killed = match primary.fence().await {
        Ok(killed) => killed,
        Err(e) => return fail(format!("cannot make `{old}` read-only: {e:?}"), detail),
    };
    let last = match primary.value("SELECT @@GLOBAL.gtid_binlog_pos").await {
        Ok(last) => last,
        Err(e) => {
            let _ = primary.run(&["SET GLOBAL read_only = 0"]).await;
            return fail(format!("cannot read `{old}`'s last GTID: {e:?}"), detail);
        }
    };
    detail["primary_gtid_binlog_pos"] = json!(last);
    detail["killed_sessions"] = json!(killed.len());
    let wait = replica
        .session
        .conn
        .exec_first::<Option<i64>, _, _>(
            "SELECT MASTER_GTID_WAIT(?, ?)",
            (last.clone(), mysql.apply_within.as_secs_f64()),
        )
        .await;
    if !matches!(wait, Ok(Some(Some(0)))) {
        let undo = primary.run(&["SET GLOBAL read_only = 0"]).await;
        return fail(
            format!(
                "`{new}` did not apply `{old}`'s last GTID {last} within apply_within ({wait:?}); `{old}` was made writable again ({})",
                if undo.is_ok() {
                    "done"
                } else {
                    "FAILED: set read_only = 0 by hand"
                }
            ),
            detail,
        );
    }
    Step::ok(
        "hand-over",
        format!(
            "`{old}` is read-only ({} session(s) killed) and `{new}` applied its last GTID {last}",
            killed.len()
        ),
        detail,
    )
}

/// Which engine's switchover a remediation runs.
enum Engine {
    Mysql(MysqlFailover),
    Redis(crate::config::RedisFailover),
}

impl crate::remediate::Remediator {
    /// Start a switchover of the MariaDB or Redis failover remediation
    /// `name` in a task of its own (Redis's is
    /// [`crate::remediate::redis_failover::switchover`]): its id (the
    /// audit records' `id`), or why it cannot start (no such failover,
    /// its action running, the agent stopping). Its `fired`, `step` and outcome records go to the audit
    /// log like a failover's; a switchover that promoted blocks automatic
    /// failovers for `block_for`, as a failover does.
    pub fn switchover(self: &std::sync::Arc<Self>, name: &str) -> Result<String, String> {
        use crate::config::Action;
        use crate::events::Decision;
        use crate::remediate::audit::AuditRecord;
        use crate::report::Status;
        use std::time::SystemTime;
        let config = self
            .port()
            .and_then(|p| p.config())
            .ok_or("the agent is not running")?;
        let remediation = config
            .remediations
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| format!("no remediation named {name:?} is configured"))?;
        let Action::Failover(action) = &remediation.action else {
            return Err(format!("remediation {name:?} is not a failover"));
        };
        let engine = match (action.mysql.clone(), action.redis.clone()) {
            (Some(mysql), _) => Engine::Mysql(mysql),
            (None, Some(redis)) => Engine::Redis(redis),
            (None, None) => {
                return Err(format!(
                    "remediation {name:?} fails over PostgreSQL: its switchover is the cluster mode's (`watchpost cluster switchover`)"
                ));
            }
        };
        if self.stopping.is_cancelled() {
            return Err("the agent is stopping".into());
        }
        if !self.running.lock().insert(name.to_string()) {
            return Err(format!(
                "remediation {name:?} is running; try again when it is done"
            ));
        }
        let action = action.clone();
        let id = self.audit.new_id(name);
        let returned = id.clone();
        let node = self.node();
        let remediation_name = name.to_string();
        let record =
            move |decision: Decision, reason: Option<&str>, message: String, detail: Value| {
                AuditRecord {
                    id: id.clone(),
                    at: SystemTime::now(),
                    node: node.clone(),
                    remediation: remediation_name.clone(),
                    probe: String::new(),
                    decision,
                    reason: reason.map(str::to_string),
                    action: "switchover".into(),
                    status: Status::Ok,
                    message,
                    detail,
                }
            };
        self.record(record(
            Decision::Fired,
            Some("operator"),
            format!(
                "switchover from `{}` to `{}` asked for by an operator",
                action.primary, action.standby
            ),
            Value::Null,
        ));
        let core = self.clone();
        let name = name.to_string();
        self.actions.spawn(async move {
            let sql = core.port().map(|p| p.sql()).unwrap_or_default();
            let mut promoted = false;
            let mut on_step = |step: &Step| {
                promoted |= step.name == "promote" && step.ok;
                core.record(record(
                    Decision::Step,
                    Some(step.name),
                    format!("{}: {}", step.name, step.message),
                    json!({"ok": step.ok, "detail": step.detail}),
                ));
            };
            let result = match &engine {
                Engine::Mysql(mysql) => run(&sql, &action, mysql, &mut on_step).await,
                Engine::Redis(redis) => {
                    let admins = core
                        .port()
                        .and_then(|p| p.config())
                        .map(|c| crate::remediate::redis_failover::server::Admins::from_config(&c))
                        .unwrap_or_default();
                    crate::remediate::redis_failover::switchover::run(
                        &admins,
                        &action,
                        redis,
                        &mut on_step,
                    )
                    .await
                    .map(|done| done.failures)
                }
            };
            if promoted {
                crate::remediate::act::block_failovers(&core, action.block_for);
            }
            let (decision, message) = match result {
                Ok(failures) if failures.is_empty() => (
                    Decision::Succeeded,
                    format!(
                        "switchover: `{}` is the primary and `{}` replicates from it",
                        action.standby, action.primary
                    ),
                ),
                Ok(failures) => (
                    Decision::Succeeded,
                    format!(
                        "switchover: `{}` is the primary; later steps failed: {}",
                        action.standby,
                        failures.join("; ")
                    ),
                ),
                Err(why) => (Decision::Failed, format!("switchover: {why}")),
            };
            core.record(record(
                decision,
                None,
                message,
                json!({"new_primary": action.standby}),
            ));
            core.running.lock().remove(&name);
            core.wake();
        });
        Ok(returned)
    }
}

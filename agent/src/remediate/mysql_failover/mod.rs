//! The MariaDB failover of a primary/replica pair by GTID, in recorded
//! steps with the PostgreSQL failover's guards ([`super::failover`]):
//!
//! 1. **pre-check** ([`pre_check`]): the replica's IO thread has *lost*
//!    the primary (reconnecting, or stopped by an error — not running,
//!    and not stopped by hand), its SQL thread did not stop on an error,
//!    it replicates by GTID, the primary's binary log it received but has
//!    not applied is within `max_lag_bytes`, it wrote no transaction of
//!    its own (errant GTIDs, [`gtid::errant`]: by its own `server_id`;
//!    "cannot tell" refuses as well, and so does a replica with
//!    `log_bin` off), and the primary neither answers nor refuses a
//!    session (starting, full, bad login: alive; the agent's own failure,
//!    or an address that accepts a TCP connection and then says nothing:
//!    cannot tell — none of them is "down"; [`Answer`]);
//! 2. **apply-relay**: the relay log it received is applied first: the SQL
//!    thread is started if it was stopped, and `MASTER_GTID_WAIT` waits
//!    (up to `apply_within`) for the received GTIDs;
//! 3. **fence**: if the old primary answers again, `read_only = 1` and its
//!    client sessions killed; else the fence command (a required fence
//!    that fails aborts);
//! 4. **promote**: `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0`;
//!    one that failed is read back: writable or unreadable counts as
//!    promoted ([`super::promoted`]: the block and the rejoin watch hold);
//! 5. **verify-write**: a row written into `watchpost.failover_check`
//!    within `write_within`;
//! 6. **repoint** each of `replicas` to the new primary
//!    (`MASTER_USE_GTID = slave_pos`): recorded, never undoing the
//!    promotion.
//!
//! Then [`rejoin`] waits for the old primary to come back and makes it a
//! replica of the new one, or records that it cannot (error 1236: it has
//! transactions the new primary lacks) and that it needs a rebuild.
//! [`switchover`] is the planned hand-over an operator asks for.

pub mod gtid;
pub mod rejoin;
pub mod server;
mod steps;
pub mod switchover;

use super::answer::Answer;
use super::step::Step;
use crate::config::{FailoverAction, MysqlFailover};
use crate::sql::mysql::Engine;
use crate::sql::{Error, SqlTargets};
use serde_json::{Value, json};
use server::Server;
use std::time::Duration;

/// Upper bound on connecting to a server during a step.
const CONNECT: Duration = Duration::from_secs(5);
/// How long the pre-check waits for the old primary to answer.
const PRIMARY_PROBE: Duration = Duration::from_secs(2);
/// Time for the fence command.
const FENCE_COMMAND: Duration = crate::remediate::command::FENCE_TIMEOUT;

/// Steps 1 to 6 (see the module's documentation). `record` is called with
/// each step as it completes. Ok when the replica was promoted and takes
/// writes; the messages of repoints that failed are in the `Ok`.
pub async fn promote(
    sql: &SqlTargets,
    action: &FailoverAction,
    mysql: &MysqlFailover,
    record: &mut (dyn FnMut(&Step) + Send),
) -> Result<Vec<String>, String> {
    let mut run = |step: Step| {
        record(&step);
        if step.ok { Ok(()) } else { Err(step.message) }
    };
    run(bounded("pre-check", action, mysql, pre_check(sql, action)).await)?;
    let apply = steps::apply_relay(sql, action, mysql);
    run(bounded("apply-relay", action, mysql, apply).await)?;
    run(bounded("fence", action, mysql, steps::fence(sql, action)).await)?;
    let limit = step_limit("promote", action, mysql);
    run(steps::promote_within(sql, action, limit).await)?;
    run(bounded(
        "verify-write",
        action,
        mysql,
        steps::verify_write(sql, action),
    )
    .await)?;
    let mut failures = Vec::new();
    for replica in &mysql.replicas {
        let repoint = steps::repoint(sql, replica, &action.standby);
        let step = bounded("repoint", action, mysql, repoint).await;
        record(&step);
        if !step.ok {
            failures.push(step.message);
        }
    }
    Ok(failures)
}

/// The most a step may take: connecting plus its own work.
pub fn step_limit(step: &str, action: &FailoverAction, mysql: &MysqlFailover) -> Duration {
    match step {
        "pre-check" => CONNECT * 2 + PRIMARY_PROBE,
        "apply-relay" => mysql.apply_within + CONNECT * 2,
        "fence" => FENCE_COMMAND + CONNECT * 2,
        "repoint" => CONNECT * 4,
        _ => action.write_within + CONNECT * 2,
    }
}

/// Run a step within its limit ([`step_limit`]).
async fn bounded(
    name: &'static str,
    action: &FailoverAction,
    mysql: &MysqlFailover,
    step: impl std::future::Future<Output = Step>,
) -> Step {
    super::step::within(name, step_limit(name, action, mysql), step).await
}

/// An admin session to `target` as a [`Server`].
async fn connect(sql: &SqlTargets, target: &str, within: Duration) -> Result<Server, Error> {
    let session = sql.mysql_admin_session(target, within).await?;
    Ok(Server {
        target: target.to_string(),
        session,
    })
}

/// Whether the old primary is gone ([`Answer`]): an admin session to it
/// and a bare connect to its address, each waited for up to
/// [`PRIMARY_PROBE`]. The pre-check and the fence step both ask it.
pub async fn ask_primary(sql: &SqlTargets, primary: &str) -> Answer {
    let session = sql.mysql_admin_session(primary, PRIMARY_PROBE);
    Answer::ask(sql, primary, PRIMARY_PROBE, session).await
}

/// Step 1: see the module's documentation.
async fn pre_check(sql: &SqlTargets, action: &FailoverAction) -> Step {
    let target = &action.standby;
    let fail = |message: String, detail: Value| Step::failed("pre-check", message, detail);
    let mut replica = match connect(sql, target, CONNECT).await {
        Ok(server) => server,
        Err(e) => {
            return fail(
                format!("the replica `{target}` is not reachable: {e:?}"),
                Value::Null,
            );
        }
    };
    if replica.session.engine != Engine::Mariadb {
        return fail(
            format!(
                "`{target}` is MySQL: the failover by GTID is written for MariaDB's GTIDs (MASTER_GTID_WAIT, gtid_slave_pos) only so far; fail over by hand"
            ),
            Value::Null,
        );
    }
    let status = match replica.replica_status().await {
        Ok(Some(status)) => status,
        Ok(None) => {
            return fail(
                format!(
                    "`{target}` replicates from no one (SHOW SLAVE STATUS is empty): it is not a replica (already promoted?)"
                ),
                Value::Null,
            );
        }
        Err(e) => {
            return fail(
                format!("cannot read the replica's replication state: {e:?}"),
                Value::Null,
            );
        }
    };
    let mut detail = json!({"replica": status.detail(), "max_lag_bytes": action.max_lag_bytes});
    match status.io_running.as_str() {
        "Yes" => {
            return fail(
                format!(
                    "the replica `{target}`'s IO thread is still connected to the primary: the primary is alive (frozen or slow?); not failing over"
                ),
                detail,
            );
        }
        "No" if status.last_io_errno == 0 => {
            return fail(
                format!(
                    "the replica `{target}`'s IO thread was stopped (STOP SLAVE), not cut off by an error: it did not lose the primary; start it, or fail over by hand"
                ),
                detail,
            );
        }
        _ => {}
    }
    if status.last_sql_errno != 0 {
        return fail(
            format!(
                "the replica `{target}`'s SQL thread stopped on error {}: {}; it did not apply what it received: repair or rebuild it",
                status.last_sql_errno, status.last_sql_error
            ),
            detail,
        );
    }
    if status.using_gtid.eq_ignore_ascii_case("no") || status.using_gtid.is_empty() {
        return fail(
            format!(
                "the replica `{target}` replicates by binary log file and position (Using_Gtid = No): the failover needs GTIDs (CHANGE MASTER TO MASTER_USE_GTID = slave_pos)"
            ),
            detail,
        );
    }
    match status.unapplied_bytes() {
        Some(gap) if gap <= action.max_lag_bytes => {}
        gap => {
            return fail(
                format!(
                    "the replica `{target}` received {} of the primary's binary log it has not applied, more than max_lag_bytes = {}",
                    gap.map_or("more than a file".to_string(), |g| format!("{g} bytes")),
                    action.max_lag_bytes
                ),
                detail,
            );
        }
    }
    let answer = ask_primary(sql, &action.primary).await;
    detail["primary"] = json!(answer.kind());
    match answer {
        Answer::Gone => {}
        Answer::Answers(why) | Answer::CannotTell(why) => {
            return fail(format!("{why}; not failing over"), detail);
        }
    }
    let gtids = match replica.gtids(&status.received).await {
        Ok(gtids) => gtids,
        Err(e) => return fail(format!("cannot read the replica's GTIDs: {e:?}"), detail),
    };
    detail["server_id"] = json!(gtids.server_id);
    detail["gtid_binlog_pos"] = json!(gtids.binlog.to_string());
    detail["gtid_binlog_state"] = json!(
        gtids
            .binlog_state
            .iter()
            .map(|(d, s, n)| format!("{d}-{s}-{n}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    detail["gtid_slave_pos"] = json!(gtids.applied.to_string());
    detail["gtid_strict_mode"] = json!(gtids.strict_mode);
    detail["log_slave_updates"] = json!(gtids.log_replica_updates);
    detail["log_bin"] = json!(gtids.log_bin);
    match gtid::errant(&gtids) {
        gtid::Errant::Clean => detail["errant_gtids"] = json!([]),
        gtid::Errant::Found(errant) => {
            let message = format!(
                "refused: the replica `{target}` has errant GTIDs {} (transactions written on it, not received from the primary): promoting it would hand them to every replica; remove them or rebuild it",
                errant.join(",")
            );
            detail["errant_gtids"] = json!(errant);
            return fail(message, detail);
        }
        gtid::Errant::CannotTell(why) => {
            detail["errant_gtids"] = Value::Null;
            return fail(
                format!(
                    "refused: whether the replica `{target}` has errant GTIDs cannot be told: {why}"
                ),
                detail,
            );
        }
    }
    Step::ok(
        "pre-check",
        format!(
            "`{target}` lost the primary (IO thread {}, error {}), which does not answer; {} bytes received and not applied (limit {}); no errant GTIDs",
            status.io_running,
            status.last_io_errno,
            status.unapplied_bytes().unwrap_or(0),
            action.max_lag_bytes
        ),
        detail,
    )
}

//! Steps 2 to 6 of the MariaDB failover ([`super`]): apply the received
//! relay log, fence the old primary, promote, verify a write, repoint the
//! other replicas.

use super::{CONNECT, connect};
use crate::config::{FailoverAction, Fence, MysqlFailover};
use crate::remediate::answer::Answer;
use crate::remediate::command;
use crate::remediate::promoted;
use crate::remediate::step::{Step, within};
use crate::sql::{Error, SqlTargets};
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Step 2: start the SQL thread if it was stopped, and wait until the
/// replica applied every GTID its IO thread received.
pub async fn apply_relay(sql: &SqlTargets, action: &FailoverAction, mysql: &MysqlFailover) -> Step {
    let target = &action.standby;
    let started = Instant::now();
    let fail = |message: String, detail: Value| Step::failed("apply-relay", message, detail);
    let mut replica = match connect(sql, target, CONNECT).await {
        Ok(server) => server,
        Err(e) => return fail(format!("cannot connect to `{target}`: {e:?}"), Value::Null),
    };
    let status = match replica.replica_status().await {
        Ok(Some(status)) => status,
        Ok(None) => return fail(format!("`{target}` is no longer a replica"), Value::Null),
        Err(e) => {
            return fail(
                format!("cannot read `{target}`'s state: {e:?}"),
                Value::Null,
            );
        }
    };
    let mut detail = json!({"received_gtid": status.received});
    let mut started_sql = false;
    if status.sql_running != "Yes" {
        if let Err(e) = replica.run(&["START SLAVE SQL_THREAD"]).await {
            return fail(
                format!("cannot start `{target}`'s SQL thread to apply its relay log: {e:?}"),
                detail,
            );
        }
        started_sql = true;
    }
    detail["started_sql_thread"] = json!(started_sql);
    if status.received.trim().is_empty() {
        return Step::ok("apply-relay", "nothing received to apply", detail);
    }
    let wait = mysql.apply_within.as_secs_f64();
    let result = replica
        .session
        .conn
        .exec_first::<Option<i64>, _, _>(
            "SELECT MASTER_GTID_WAIT(?, ?)",
            (status.received.clone(), wait),
        )
        .await;
    let waited = started.elapsed().as_secs_f64() * 1000.0;
    detail["duration_ms"] = json!(waited);
    match result {
        Ok(Some(Some(0))) => {}
        Ok(Some(Some(-1))) => {
            return fail(
                format!(
                    "`{target}` did not apply the GTIDs it received ({}) within apply_within = {}: promoting it would lose them",
                    status.received,
                    crate::config::units::format_duration(mysql.apply_within)
                ),
                detail,
            );
        }
        Ok(other) => {
            return fail(
                format!("MASTER_GTID_WAIT on `{target}` returned {other:?}"),
                detail,
            );
        }
        Err(e) => {
            return fail(
                format!("MASTER_GTID_WAIT on `{target}` failed: {e}"),
                detail,
            );
        }
    }
    if let Ok(Some(after)) = replica.replica_status().await
        && after.last_sql_errno != 0
    {
        return fail(
            format!(
                "`{target}`'s SQL thread stopped on error {}: {}",
                after.last_sql_errno, after.last_sql_error
            ),
            detail,
        );
    }
    let how = if started_sql {
        "started the stopped SQL thread and applied"
    } else {
        "applied"
    };
    Step::ok(
        "apply-relay",
        format!(
            "`{target}` {how} every GTID it received ({}) in {waited:.0} ms",
            status.received
        ),
        detail,
    )
}

/// Step 3: fence the old primary. The pre-check found it gone; if it
/// answers (or refuses, or cannot be told) now, it is back: the failover
/// is withdrawn, never promoted beside it, since commits it acknowledged
/// while its replica was cut off would be lost (and a primary that
/// answers but cannot be made read-only would go on taking writes).
/// Still gone: the fence command.
pub async fn fence(sql: &SqlTargets, action: &FailoverAction) -> Step {
    let primary = &action.primary;
    let answer = super::ask_primary(sql, primary).await;
    if let Answer::Answers(why) | Answer::CannotTell(why) = &answer {
        return Step::failed(
            "fence",
            format!("{why}: the failover is withdrawn and the old primary keeps its place"),
            json!({"primary": answer.kind()}),
        );
    }
    let outcome = match &action.fence {
        Fence::None => Ok(format!(
            "the old primary `{primary}` does not answer; no fence command configured"
        )),
        Fence::Command(argv) => command::fence(argv).await,
        Fence::PgCtl { .. } => Err(format!(
            "fence = {:?} cannot fence MariaDB",
            Fence::BUILT_IN
        )),
    };
    match outcome {
        Ok(message) => Step::ok("fence", message, Value::Null),
        Err(message) if !action.fence_required => Step::ok(
            "fence",
            format!("fence failed but is not required: {message}"),
            Value::Null,
        ),
        Err(message) => Step::failed(
            "fence",
            format!("{message}; the failover is aborted (fence_required = true)"),
            Value::Null,
        ),
    }
}

/// Step 4 ([`promote`]) within `limit`; when it fails (an error, a lost
/// reply, the limit), `read_only` is read back on the target: writable or
/// unreadable counts as promoted ([`promoted::after_error`]), so the
/// failover block and the old primary's rejoin watch still apply.
pub async fn promote_within(sql: &SqlTargets, action: &FailoverAction, limit: Duration) -> Step {
    let step = within("promote", limit, promote(sql, action)).await;
    if step.ok {
        return step;
    }
    let read_back = still_read_only(sql, &action.standby).await;
    promoted::after_error(step, read_back)
}

/// Whether `target`'s `@@GLOBAL.read_only` is on, read over a fresh
/// session within twice [`CONNECT`]. Errors: the session's, a timeout, or
/// a value that is neither on nor off.
async fn still_read_only(sql: &SqlTargets, target: &str) -> Result<bool, Error> {
    let read = async {
        let mut server = connect(sql, target, CONNECT).await?;
        let value = server.value("SELECT @@GLOBAL.read_only").await?;
        match value.trim() {
            "1" => Ok(true),
            "0" => Ok(false),
            v if v.eq_ignore_ascii_case("on") => Ok(true),
            v if v.eq_ignore_ascii_case("off") => Ok(false),
            other => Err(Error::Unreachable(format!(
                "target `{target}`: read_only is {other:?}, neither on nor off"
            ))),
        }
    };
    tokio::time::timeout(CONNECT * 2, read)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout(format!(
                "target `{target}`: reading read_only took longer than {:?}",
                CONNECT * 2
            )))
        })
}

/// Step 4: stop replicating, forget the old primary, take writes.
pub async fn promote(sql: &SqlTargets, action: &FailoverAction) -> Step {
    let target = &action.standby;
    let started = Instant::now();
    let mut replica = match connect(sql, target, CONNECT).await {
        Ok(server) => server,
        Err(e) => {
            return Step::failed(
                "promote",
                format!("cannot connect to `{target}` to promote it: {e:?}"),
                Value::Null,
            );
        }
    };
    let statements = ["STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = 0"];
    if let Err(e) = replica.run(&statements).await {
        return Step::failed(
            "promote",
            format!("promoting `{target}` failed: {e:?}"),
            Value::Null,
        );
    }
    let position = replica.value("SELECT @@GLOBAL.gtid_binlog_pos").await;
    Step::ok(
        "promote",
        format!("promoted `{target}` (STOP SLAVE; RESET SLAVE ALL; read_only = 0)"),
        json!({"duration_ms": started.elapsed().as_secs_f64() * 1000.0,
               "gtid_binlog_pos": position.unwrap_or_default()}),
    )
}

/// The write that proves a new primary takes writes: a row in a table of
/// the agent's own (`read_only` does not stop temporary tables).
pub const CHECK_WRITE: [&str; 3] = [
    "CREATE DATABASE IF NOT EXISTS watchpost",
    "CREATE TABLE IF NOT EXISTS watchpost.failover_check (id tinyint PRIMARY KEY, at datetime(6) NOT NULL, server_id int unsigned NOT NULL) ENGINE=InnoDB",
    "REPLACE INTO watchpost.failover_check VALUES (1, NOW(6), @@server_id)",
];

/// Step 5: the new primary accepts a write within `write_within`.
pub async fn verify_write(sql: &SqlTargets, action: &FailoverAction) -> Step {
    let target = &action.standby;
    let started = Instant::now();
    let deadline = started + action.write_within;
    let mut attempts = 0;
    let mut last_error = String::new();
    while Instant::now() < deadline {
        attempts += 1;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(CONNECT);
        match connect(sql, target, left).await {
            Ok(mut server) => match server.run(&CHECK_WRITE).await {
                Ok(()) => {
                    return Step::ok(
                        "verify-write",
                        format!("`{target}` accepts writes"),
                        json!({"attempts": attempts, "duration_ms": started.elapsed().as_secs_f64() * 1000.0}),
                    );
                }
                Err(e) => last_error = format!("{e:?}"),
            },
            Err(e) => last_error = format!("{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Step::failed(
        "verify-write",
        format!(
            "`{target}` did not accept a write within {}: {last_error}",
            crate::config::units::format_duration(action.write_within)
        ),
        json!({"attempts": attempts}),
    )
}

/// Step 6: point `replica` at the new primary by GTID.
pub async fn repoint(sql: &SqlTargets, replica: &str, new_primary: &str) -> Step {
    let fail = |message: String| Step::failed("repoint", message, Value::Null);
    let login = match sql.mysql_replica_login(new_primary) {
        Ok(login) => login,
        Err(e) => return fail(format!("cannot repoint `{replica}`: {e:?}")),
    };
    let mut server = match connect(sql, replica, CONNECT).await {
        Ok(server) => server,
        Err(e) => return fail(format!("cannot connect to the replica `{replica}`: {e:?}")),
    };
    if let Err(e) = server.follow(&login).await {
        return fail(format!(
            "repointing `{replica}` to `{new_primary}` failed: {e:?}"
        ));
    }
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < CONNECT {
        match server.replica_status().await {
            Ok(Some(status)) if status.io_running == "Yes" && status.sql_running == "Yes" => {
                return Step::ok(
                    "repoint",
                    format!(
                        "`{replica}` replicates from `{new_primary}` ({}:{})",
                        login.host, login.port
                    ),
                    status.detail(),
                );
            }
            Ok(Some(status)) if status.last_io_errno != 0 || status.last_sql_errno != 0 => {
                return Step::failed(
                    "repoint",
                    format!(
                        "`{replica}` cannot replicate from `{new_primary}`: IO error {} ({}), SQL error {} ({})",
                        status.last_io_errno,
                        status.last_io_error,
                        status.last_sql_errno,
                        status.last_sql_error
                    ),
                    status.detail(),
                );
            }
            Ok(status) => last = status,
            Err(e) => return fail(format!("cannot read `{replica}`'s state: {e:?}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Step::failed(
        "repoint",
        format!("`{replica}` did not start replicating from `{new_primary}` within {CONNECT:?}"),
        last.map_or(Value::Null, |s| s.detail()),
    )
}

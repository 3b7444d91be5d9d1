//! The recovery actions: roll back (`terminate` sessions holding stuck
//! transactions), stop (`cancel` long statements), redo (`resume-replay`
//! on a standby whose replay is paused) and restore a standby (`reinit`:
//! move its data directory aside, re-clone it from the primary with
//! `pg_basebackup`, start it, check that it streams).
//!
//! Sessions are chosen and signalled in one statement, so a session that
//! ends meanwhile is not mistaken for a new one with its pid; replication
//! connections, background workers and the agent's own sessions
//! (`application_name` starting with `watchpost`) are never chosen. The
//! audit detail lists each session (pid, user, database, state,
//! transaction age, whether it blocked others), never query text.
//!
//! `reinit` refuses a target that answers as a primary, a data directory
//! not marked a standby's when the server does not answer, and a primary
//! that is itself in recovery. The old directory is renamed aside
//! (`DIR.reinit-UNIXTIME`), never deleted. PostgreSQL's programs run as
//! the data directory's owner; the new directory is made by the agent and
//! handed over with `fchown` on its descriptor (no symlink is followed).

use super::outcome::{ActionOutcome, CONNECT, fail, pg_error};
use crate::config::{ResumeReplayAction, SessionAction};
use crate::sql::SqlTargets;
use serde_json::json;
use std::time::{Duration, Instant};

const SESSIONS: &str = "\
WITH blockers AS MATERIALIZED ( \
  SELECT DISTINCT unnest(pg_blocking_pids(pid)) AS pid FROM pg_stat_activity), \
s AS MATERIALIZED ( \
  SELECT a.pid, a.usename::text AS usename, a.datname::text AS datname, \
         coalesce(a.application_name, '') AS app, coalesce(a.state, '') AS state, \
         extract(epoch FROM now() - a.xact_start)::float8 AS xact_age, \
         extract(epoch FROM now() - a.state_change)::float8 AS state_age, \
         extract(epoch FROM now() - a.query_start)::float8 AS query_age, \
         a.pid IN (SELECT pid FROM blockers) AS blocking \
  FROM pg_stat_activity a \
  WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid() \
    AND coalesce(a.application_name, '') NOT LIKE 'watchpost%'), \
picked AS MATERIALIZED ( \
  SELECT * FROM s \
  WHERE (cardinality($5::text[]) = 0 OR datname = ANY($5::text[])) \
    AND (cardinality($6::text[]) = 0 OR usename = ANY($6::text[])) \
    AND (cardinality($7::text[]) = 0 OR app = ANY($7::text[])) \
    AND (($1::float8 IS NOT NULL AND state IN ('idle in transaction', 'idle in transaction (aborted)') \
          AND state_age > $1::float8) \
      OR ($2::float8 IS NOT NULL AND xact_age > $2::float8 AND (NOT $3::bool OR blocking)) \
      OR ($4::float8 IS NOT NULL AND state = 'active' AND query_age > $4::float8)) \
  ORDER BY xact_age DESC NULLS LAST LIMIT $8::int8) \
SELECT pid, usename, datname, state, xact_age, blocking, \
       CASE WHEN NOT $9::bool THEN NULL \
            WHEN $10::text = 'terminate' THEN pg_terminate_backend(pid, 5000) \
            ELSE pg_cancel_backend(pid) END AS done \
FROM picked";

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

/// `terminate` or `cancel` (`verb`); with `act` false only list what would be.
pub async fn sessions(
    sql: &SqlTargets,
    action: &SessionAction,
    verb: &str,
    act: bool,
) -> ActionOutcome {
    let work = async {
        let client = sql
            .admin_session(&action.target, CONNECT)
            .await
            .map_err(|e| e.to_string())?;
        let f = &action.filter;
        let limit = i64::from(action.max_sessions);
        let rows = client
            .query(
                SESSIONS,
                &[
                    &secs(f.idle_in_transaction),
                    &secs(f.transaction_older_than),
                    &f.blocking,
                    &secs(f.running_longer_than),
                    &f.databases,
                    &f.users,
                    &f.applications,
                    &limit,
                    &act,
                    &verb,
                ],
            )
            .await
            .map_err(|e| pg_error(&e))?;
        Ok::<_, String>(rows)
    };
    let rows = match tokio::time::timeout(action.timeout, work).await {
        Err(_) => {
            return fail(format!(
                "{verb}: no answer from `{}` within {:?}",
                action.target, action.timeout
            ));
        }
        Ok(Err(e)) => return fail(format!("{verb} on `{}`: {e}", action.target)),
        Ok(Ok(rows)) => rows,
    };
    let mut listed = Vec::new();
    let mut done = 0;
    let mut shown = Vec::new();
    for row in &rows {
        let pid: i32 = row.get("pid");
        let user: Option<String> = row.get("usename");
        let database: Option<String> = row.get("datname");
        let state: String = row.get("state");
        let age: Option<f64> = row.get("xact_age");
        let blocking: bool = row.get("blocking");
        let signalled: Option<bool> = row.get("done");
        if signalled == Some(true) {
            done += 1;
        }
        shown.push(format!(
            "pid {pid} ({}@{}, {state}{})",
            user.as_deref().unwrap_or("?"),
            database.as_deref().unwrap_or("?"),
            age.map(|a| format!(", transaction {a:.0} s"))
                .unwrap_or_default()
        ));
        listed.push(json!({
            "pid": pid,
            "user": user,
            "database": database,
            "state": state,
            "transaction_age_s": age,
            "blocking": blocking,
            "signalled": signalled,
        }));
    }
    let past = if verb == "terminate" {
        "terminated"
    } else {
        "cancelled"
    };
    let message = match (act, rows.is_empty()) {
        (_, true) => format!("{verb}: no session on `{}` matches", action.target),
        (false, false) => format!(
            "would {verb} {} session(s) on `{}`: {}",
            rows.len(),
            action.target,
            shown.join("; ")
        ),
        (true, false) => format!(
            "{past} {done} of {} session(s) on `{}`: {}",
            rows.len(),
            action.target,
            shown.join("; ")
        ),
    };
    ActionOutcome {
        ok: !act || done == rows.len(),
        message,
        detail: json!({ "target": action.target, "sessions": listed }),
    }
}

/// Resume WAL replay on a standby whose replay is paused, and wait until
/// it runs.
pub async fn resume_replay(sql: &SqlTargets, action: &ResumeReplayAction) -> ActionOutcome {
    let target = &action.target;
    let started = Instant::now();
    let work = async {
        let client = sql
            .admin_session(target, CONNECT)
            .await
            .map_err(|e| e.to_string())?;
        let read =
            "SELECT pg_is_in_recovery() AS recovery, pg_get_wal_replay_pause_state() AS pause";
        let row = client
            .query_one(read, &[])
            .await
            .map_err(|e| pg_error(&e))?;
        let recovery: bool = row.get("recovery");
        let pause: String = row.get("pause");
        if !recovery {
            return Err(format!(
                "`{target}` is not a standby (not in recovery): nothing to resume"
            ));
        }
        if pause == "not paused" {
            return Ok("replay was not paused".to_string());
        }
        client
            .execute("SELECT pg_wal_replay_resume()", &[])
            .await
            .map_err(|e| pg_error(&e))?;
        loop {
            let row = client
                .query_one(read, &[])
                .await
                .map_err(|e| pg_error(&e))?;
            let pause: String = row.get("pause");
            if pause == "not paused" {
                return Ok(format!("replay resumed (was {pause:?})"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    match tokio::time::timeout(action.timeout, work).await {
        Err(_) => fail(format!(
            "resume-replay: replay on `{target}` was not running within {:?}",
            action.timeout
        )),
        Ok(Err(e)) => fail(format!("resume-replay: {e}")),
        Ok(Ok(what)) => ActionOutcome {
            ok: true,
            message: format!(
                "resume-replay on `{target}`: {what} in {:.1} s",
                started.elapsed().as_secs_f64()
            ),
            detail: json!({ "target": target }),
        },
    }
}

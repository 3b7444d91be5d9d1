//! The PostgreSQL failover action, in recorded steps:
//!
//! 1. **pre-check**: the standby is reachable, in recovery, replay is not
//!    paused, the WAL it received but has not replayed is within
//!    `max_lag_bytes` (default 1 MiB, Patroni's default), and so is its
//!    distance from the primary's last flush; the primary is really gone
//!    (not answering, not still streaming to the standby, not stopped
//!    cleanly): see [`pre_check`];
//! 2. **fence** the old primary: the built-in fence ([`Fence::PgCtl`])
//!    stops it if it runs ([`crate::pgserver::ctl`]) and marks its data
//!    directory a standby's of the new primary
//!    ([`crate::pgserver::pgdata::demote_on_disk`]: the signal file and
//!    `primary_conninfo`), so that a restart by hand or by a service
//!    manager brings it back as a standby — never as a second read-write
//!    primary; a required fence that fails aborts;
//! 3. **promote** the standby (`pg_promote()`); a promote that failed is
//!    read back (`pg_is_in_recovery()`): out of recovery or unreadable
//!    counts as promoted ([`super::promoted`]);
//! 4. **verify-write**: the new primary accepts a write within `write_within`;
//! 5. **post** steps (repoint a proxy, notify), whose failures are recorded
//!    but do not undo the promotion.
//!
//! Each step's outcome goes to the audit log as it completes. Every step
//! is bounded ([`step_limit`]): a server that accepts the connection and
//! then stalls (a paused pooler, dropped packets) fails the step at its
//! limit with a record, never hangs the failover. Admin sessions also set
//! `statement_timeout` and TCP keepalives (see `sql::admin`).

mod evidence;

use super::answer::Answer;
use crate::config::{FailoverAction, Fence};
use crate::pgserver::controldata;
use crate::pgserver::ctl::{self, PgCtl, Status, StopMode};
use crate::pgserver::pgdata::{self, demote_on_disk};
use crate::sql::SqlTargets;
use evidence::wal_beyond;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// Upper bound on connecting to a server during a failover step.
const CONNECT: Duration = Duration::from_secs(5);

pub use super::step::Step;

/// Steps 1 to 4. `record` is called with each step as it completes. Ok
/// when the standby was promoted and accepts writes.
pub async fn promote(
    sql: &SqlTargets,
    action: &FailoverAction,
    old_primary: &str,
    record: &mut (dyn FnMut(&Step) + Send),
) -> Result<(), String> {
    let mut run = |step: Step| {
        record(&step);
        if step.ok { Ok(()) } else { Err(step.message) }
    };
    run(bounded("pre-check", action, pre_check(sql, action)).await)?;
    run(bounded("fence", action, fence(sql, action, old_primary)).await)?;
    let step = bounded("promote", action, promote_standby(sql, action)).await;
    let step = if step.ok {
        step
    } else {
        // A lost reply or the limit may hide a promotion that happened.
        super::promoted::after_error(step, still_in_recovery(sql, &action.standby).await)
    };
    run(step)?;
    run(bounded("verify-write", action, verify_write(sql, action)).await)
}

/// Time for one command of the fence (the old primary's status, its stop,
/// a fence command).
const FENCE_COMMAND: Duration = super::command::FENCE_TIMEOUT;

/// The most a step may take: connecting plus its own work.
pub fn step_limit(step: &str, action: &FailoverAction) -> Duration {
    match step {
        "pre-check" => CONNECT * 2,
        "fence" => FENCE_COMMAND * 2 + CONNECT,
        "promote" => action.write_within + CONNECT * 2,
        _ => action.write_within + CONNECT,
    }
}

/// Run a step within its limit ([`step_limit`]).
async fn bounded(
    name: &'static str,
    action: &FailoverAction,
    step: impl std::future::Future<Output = Step>,
) -> Step {
    super::step::within(name, step_limit(name, action), step).await
}

/// Seconds the pre-check waits for the old primary to answer: one that
/// answers (or refuses a session: starting, stopping, full) is alive.
const PRIMARY_PROBE: Duration = Duration::from_secs(2);

/// What the standby says about its replication, read in one statement.
const STANDBY_STATE: &str = "SELECT pg_is_in_recovery() AS recovery,
    CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS paused,
    CASE WHEN pg_is_in_recovery() THEN
      COALESCE(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::float8
    END AS gap,
    CASE WHEN pg_is_in_recovery() THEN
      GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text
    END AS received,
    (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS receiver,
    (SELECT extract(epoch FROM now() - last_msg_receipt_time)::float8
       FROM pg_stat_wal_receiver LIMIT 1) AS contact_age";

/// The pre-check: promote only a standby that is in recovery, not paused,
/// has replayed what it received (within `max_lag_bytes`), and is within
/// `max_lag_bytes` of what the primary last flushed — and only when the
/// primary is really gone:
///
/// - a standby whose WAL receiver still streams is hearing from the
///   primary: the primary is alive (a freeze, a restart in progress);
/// - a primary that answers, or refuses a session (starting up, shutting
///   down, full), is alive; one whose address accepts a TCP connection
///   but whose session then times out (frozen, stalled) cannot be told
///   ([`Answer`]): only one whose address accepts no connection is gone;
/// - a primary whose data directory is on this node (the built-in fence)
///   and whose control file says `shut down` ([`controldata`]) was
///   stopped on purpose, not crashed; there `pg_waldump` reads the primary's own WAL from the
///   standby's received position to its end: the distance from its last
///   flush;
/// - without the primary's WAL on this node, a standby whose receiver is
///   gone cannot be measured against it, and is refused (promote by hand
///   after checking; the cluster mode compares against the position the
///   primary's agent published).
async fn pre_check(sql: &SqlTargets, action: &FailoverAction) -> Step {
    let target = &action.standby;
    let fail = |message: String, detail: Value| Step::failed("pre-check", message, detail);
    let client = match sql.admin_session(target, CONNECT).await {
        Ok(client) => client,
        Err(e) => {
            return fail(
                format!("the standby `{target}` is not reachable: {e:?}"),
                Value::Null,
            );
        }
    };
    let row = match client.query_one(STANDBY_STATE, &[]).await {
        Ok(row) => row,
        Err(e) => {
            return fail(
                format!("cannot read the standby's replication state: {e}"),
                Value::Null,
            );
        }
    };
    let recovery: bool = row.get("recovery");
    let paused: Option<bool> = row.get("paused");
    let gap: Option<f64> = row.get("gap");
    let received: Option<String> = row.get("received");
    let receiver: Option<String> = row.get("receiver");
    let contact_age: Option<f64> = row.get("contact_age");
    let mut detail = json!({"in_recovery": recovery, "replay_paused": paused, "unreplayed_bytes": gap, "received_lsn": received, "wal_receiver": receiver, "primary_contact_age_s": contact_age, "max_lag_bytes": action.max_lag_bytes});
    if !recovery {
        return fail(
            format!("`{target}` is not in recovery: it is not a standby (already promoted?)"),
            detail,
        );
    }
    let gap = gap.unwrap_or(0.0);
    if gap > action.max_lag_bytes as f64 {
        return fail(
            format!(
                "the standby `{target}` is {gap:.0} bytes behind (received but not replayed), more than max_lag_bytes = {}",
                action.max_lag_bytes
            ),
            detail,
        );
    }
    if paused == Some(true) {
        return fail(
            format!(
                "replay is paused on the standby `{target}`: resume it (pg_wal_replay_resume()) or promote by hand"
            ),
            detail,
        );
    }
    if receiver.as_deref() == Some("streaming") {
        return fail(
            format!(
                "the standby `{target}` still streams from the primary (last message {:.1} s ago): the primary is alive (frozen or restarting?); not failing over",
                contact_age.unwrap_or(0.0)
            ),
            detail,
        );
    }
    let primary = &action.primary;
    // Only silence is "gone": an answer, a refusal or an error is alive,
    // and the agent's own failure cannot tell (never "gone").
    let session = sql.admin_session(primary, PRIMARY_PROBE);
    let answer = Answer::ask(sql, primary, PRIMARY_PROBE, session).await;
    detail["primary"] = json!(answer.kind());
    if let Answer::Answers(why) | Answer::CannotTell(why) = answer {
        return fail(format!("{why}; not failing over"), detail);
    }
    let Fence::PgCtl { program, data_dir } = &action.fence else {
        return fail(
            format!(
                "the standby `{target}`'s WAL receiver is {} and the primary's WAL is not on this node (fence = {:?} with its data_dir): its distance from the primary's last flush cannot be measured; check it and promote by hand",
                receiver
                    .as_deref()
                    .map_or("gone".to_string(), |s| format!("`{s}`")),
                Fence::BUILT_IN
            ),
            detail,
        );
    };
    let tools = PgCtl::at(program).bin_dir().to_path_buf();
    // PostgreSQL's programs read the directory as its owner, never as root.
    let owner = match pgdata::open(data_dir) {
        Ok(dir) => dir.run_as(),
        Err(e) => return fail(format!("refused: {e}"), detail),
    };
    let state = controldata::read(&tools, data_dir, owner)
        .await
        .and_then(|read| read.state().map(str::to_string));
    match state {
        Ok(state) if state.starts_with("shut down") || state == "shutting down" => {
            detail["primary_state"] = json!(state);
            return fail(
                format!(
                    "the primary was stopped cleanly ({}: `{state}`): a planned stop, not a crash; not failing over",
                    controldata::PROGRAM
                ),
                detail,
            );
        }
        Ok(state) => detail["primary_state"] = json!(state),
        Err(e) => return fail(format!("cannot read the primary's state: {e}"), detail),
    }
    let Some(received) = received else {
        return fail(
            format!("the standby `{target}` has received no WAL yet"),
            detail,
        );
    };
    let distance = match wal_beyond(
        &tools.join("pg_waldump"),
        &data_dir.join("pg_wal"),
        &received,
        owner,
    )
    .await
    {
        Ok(distance) => distance,
        Err(e) => {
            return fail(
                format!(
                    "cannot measure how far the standby `{target}` is from the primary's last flush: {e}"
                ),
                detail,
            );
        }
    };
    detail["behind_primary_bytes"] = json!(distance);
    if distance > action.max_lag_bytes as f64 {
        return fail(
            format!(
                "the standby `{target}` is {distance:.0} bytes behind the primary's last flush (its WAL receiver is {}), more than max_lag_bytes = {}: promoting it would lose those commits",
                receiver
                    .as_deref()
                    .map_or("gone".to_string(), |s| format!("`{s}`")),
                action.max_lag_bytes
            ),
            detail,
        );
    }
    Step::ok(
        "pre-check",
        format!(
            "`{target}` is a standby {distance:.0} bytes behind the primary's last flush and {gap:.0} bytes from replaying what it received (limit {})",
            action.max_lag_bytes
        ),
        detail,
    )
}

async fn fence(sql: &SqlTargets, action: &FailoverAction, old_primary: &str) -> Step {
    let outcome = match &action.fence {
        Fence::None => return Step::ok("fence", "no fence configured", Value::Null),
        Fence::Command(argv) => super::command::fence(argv).await,
        Fence::PgCtl { program, data_dir } => {
            built_in_fence(sql, action, &PgCtl::at(program), data_dir, old_primary).await
        }
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

/// Stop the old primary if it runs and make it come back only as a standby.
async fn built_in_fence(
    sql: &SqlTargets,
    action: &FailoverAction,
    program: &PgCtl,
    data_dir: &Path,
    old_primary: &str,
) -> Result<String, String> {
    let data = pgdata::open(data_dir).map_err(|e| format!("refused: {e}"))?;
    if data.kind("PG_VERSION").ok().flatten().is_none() {
        return Err(format!(
            "{} is not a PostgreSQL data directory on this node",
            data_dir.display()
        ));
    }
    let user = data.run_as();
    let status = ctl::run(program.status(data_dir), user, FENCE_COMMAND).await?;
    let mut done: Vec<String> = Vec::new();
    // Running, not running, or cannot tell (no accessible data
    // directory), which is never "not running".
    match Status::of(&status) {
        Status::Unknown(why) => {
            return Err(format!(
                "cannot tell whether the old primary runs ({why}); not fenced: let the agent read the data directory"
            ));
        }
        Status::Running => {
            let stop = ctl::run(
                program.stop(data_dir, StopMode::Immediate, Some(20)),
                user,
                FENCE_COMMAND,
            )
            .await?;
            if !stop.success() {
                return Err(format!("cannot stop the old primary: {}", stop.summary()));
            }
            done.push("stopped the old primary".into());
        }
        Status::NotRunning => done.push("the old primary was not running".into()),
    }
    let login = sql
        .replication_login(&action.standby, old_primary)
        .map_err(|e| format!("cannot build primary_conninfo: {e:?}"))?;
    let written = match &login.password {
        Some(password) => {
            pgdata::demote_with_password(data_dir, &login.conninfo, &login.user, password)
        }
        None => demote_on_disk(data_dir, &login.conninfo, Some(data.owner())),
    };
    written.map_err(|e| {
        format!(
            "cannot write {} and primary_conninfo into {}: {e}",
            pgdata::STANDBY_SIGNAL,
            data_dir.display()
        )
    })?;
    done.push(format!(
        "wrote {} and primary_conninfo: it can only start as a standby",
        pgdata::STANDBY_SIGNAL
    ));
    Ok(done.join("; "))
}

async fn promote_standby(sql: &SqlTargets, action: &FailoverAction) -> Step {
    let target = &action.standby;
    let started = Instant::now();
    let client = match sql.admin_session(target, CONNECT).await {
        Ok(client) => client,
        Err(e) => {
            return Step::failed(
                "promote",
                format!("cannot connect to `{target}` to promote it: {e:?}"),
                Value::Null,
            );
        }
    };
    let wait = i32::try_from(action.write_within.as_secs().max(1)).unwrap_or(i32::MAX);
    // pg_promote waits up to `wait` s: the session's statement timeout
    // must not cut it short.
    let allow = format!("SET statement_timeout = {}", (i64::from(wait) + 5) * 1000);
    if let Err(e) = client.batch_execute(&allow).await {
        return Step::failed(
            "promote",
            format!("cannot prepare the session on `{target}`: {e}"),
            Value::Null,
        );
    }
    match client
        .query_one("SELECT pg_promote(true, $1)", &[&wait])
        .await
    {
        Ok(row) if row.get::<_, bool>(0) => Step::ok(
            "promote",
            format!("promoted `{target}`"),
            json!({"duration_ms": started.elapsed().as_secs_f64() * 1000.0}),
        ),
        // pg_promote signalled the promotion, which goes on after the
        // wait: it counts as promoted.
        Ok(_) => Step::failed(
            "promote",
            format!(
                "`{target}` did not finish promotion within {wait} s (it was signalled and goes on)"
            ),
            json!({ super::promoted::PROMOTED: true }),
        ),
        Err(e) => Step::failed(
            "promote",
            format!("pg_promote() on `{target}` failed: {e}"),
            Value::Null,
        ),
    }
}

/// Whether `target` is still in recovery (`pg_is_in_recovery()`), read
/// over a fresh admin session within twice [`CONNECT`]. Errors: the
/// session's, the statement's, or a timeout.
async fn still_in_recovery(sql: &SqlTargets, target: &str) -> Result<bool, crate::sql::Error> {
    let read = async {
        let client = sql.admin_session(target, CONNECT).await?;
        let row = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| crate::sql::Error::Unreachable(format!("target `{target}`: {e}")))?;
        Ok(row.get::<_, bool>(0))
    };
    tokio::time::timeout(CONNECT * 2, read)
        .await
        .unwrap_or_else(|_| {
            Err(crate::sql::Error::Timeout(format!(
                "target `{target}`: reading pg_is_in_recovery() took longer than {:?}",
                CONNECT * 2
            )))
        })
}

async fn verify_write(sql: &SqlTargets, action: &FailoverAction) -> Step {
    let target = &action.standby;
    let started = Instant::now();
    let deadline = started
        .checked_add(action.write_within)
        .unwrap_or(started + CONNECT);
    let mut last_error = String::new();
    let mut attempts = 0;
    while Instant::now() < deadline {
        attempts += 1;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(CONNECT);
        match sql.admin_session(target, left).await {
            Ok(client) => {
                let write =
                    "CREATE TEMP TABLE IF NOT EXISTS watchpost_failover_check (at timestamptz);
                             INSERT INTO watchpost_failover_check VALUES (now())";
                match client.batch_execute(write).await {
                    Ok(()) => {
                        return Step::ok(
                            "verify-write",
                            format!("`{target}` accepts writes"),
                            json!({"attempts": attempts, "duration_ms": started.elapsed().as_secs_f64() * 1000.0}),
                        );
                    }
                    Err(e) => last_error = e.to_string(),
                }
            }
            Err(e) => last_error = format!("{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Step::failed(
        "verify-write",
        format!(
            "`{target}` did not accept a write within {:?}: {last_error}",
            action.write_within
        ),
        json!({"attempts": attempts}),
    )
}

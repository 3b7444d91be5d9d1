//! The Redis (and Valkey) failover of a primary and its replicas, in
//! recorded steps with the MariaDB failover's guards
//! ([`super::mysql_failover`]), over each server's `admin_dsn` (a
//! read-write ACL user of the agent's own, [`server`]):
//!
//! 1. **pre-check** ([`pre_check`]): the old primary neither answers nor
//!    refuses (a reply, `LOADING`, `BUSY`, max clients: alive; a
//!    connection accepted and left unanswered, as by a frozen process:
//!    cannot tell, never "down"), no replica is still linked to it, and
//!    the replica to promote is chosen by [`choose`]: the old primary's
//!    replication id, the highest offset, within `max_lag_bytes`;
//! 2. **fence**: the old primary is asked again; if it answers (or
//!    refuses, or cannot be told) now, the failover is withdrawn; still
//!    gone, the fence command;
//! 3. **promote**: `REPLICAOF NO ONE` on the chosen replica; a failed or
//!    lost reply is followed by a second read of its role, and a target
//!    that is a primary or cannot be read counts as promoted (the block
//!    and the rejoin watch apply);
//! 4. **repoint** each other replica (`REPLICAOF HOST PORT` of the new
//!    primary, which keeps the old history as its second replication id,
//!    so that they resume by partial sync), recorded, never undoing the
//!    promotion. This comes before the write check so that a new primary
//!    with `min-replicas-to-write` has its replicas when it is asked to
//!    write;
//! 5. **verify-write**: `SET watchpost:failover_check` on the new primary
//!    within `write_within`.
//!
//! Then [`rejoin`] waits for the old primary to come back, pauses its
//! writes (`CLIENT PAUSE WRITE`) and makes it a replica of the new one, so
//! that two primaries never stand for longer than that poll.
//! [`switchover`] is the planned hand-over (`FAILOVER TO`).

pub mod choose;
pub mod fencing;
pub mod rejoin;
pub mod server;
mod steps;
pub mod switchover;

use super::failover::Step;
use crate::config::{FailoverAction, RedisFailover};
use choose::{Choice, Input};
use serde_json::{Value, json};
use server::Admins;
use std::time::Duration;

/// Upper bound on connecting to a server and one command during a step.
const CONNECT: Duration = Duration::from_secs(5);
/// How long the agent waits for the old primary to accept a connection,
/// then to answer `PING`.
pub const PRIMARY_PROBE: Duration = Duration::from_secs(2);
/// Time for the fence command.
const FENCE_COMMAND: Duration = crate::remediate::command::FENCE_TIMEOUT;

fn ok(name: &'static str, message: impl Into<String>, detail: Value) -> Step {
    Step {
        name,
        ok: true,
        message: message.into(),
        detail,
    }
}

fn failed(name: &'static str, message: impl Into<String>, detail: Value) -> Step {
    Step {
        name,
        ok: false,
        message: message.into(),
        detail,
    }
}

/// What a failover did: the promoted target, and the messages of later
/// steps (repoints) that failed.
pub struct Promoted {
    pub new_primary: String,
    pub failures: Vec<String>,
}

/// Steps 1 to 5 (see the module's documentation). `record` is called with
/// each step as it completes. Ok when a replica was promoted and takes
/// writes.
pub async fn promote(
    admins: &Admins,
    action: &FailoverAction,
    redis: &RedisFailover,
    record: &mut (dyn FnMut(&Step) + Send),
) -> Result<Promoted, String> {
    let mut run = |step: Step| {
        record(&step);
        if step.ok { Ok(()) } else { Err(step.message) }
    };
    let (step, choice) = bounded_pre_check(admins, action, redis).await;
    run(step)?;
    let choice = choice.ok_or("the pre-check chose no replica")?;
    run(bounded("fence", steps::fence(admins, action)).await)?;
    run(bounded_promote(admins, &choice.name).await)?;
    let mut failures = Vec::new();
    let others = repoint_list(action, redis, &choice.name);
    for replica in others {
        let step = bounded("repoint", steps::repoint(admins, &replica, &choice.name)).await;
        record(&step);
        if !step.ok {
            failures.push(step.message);
        }
    }
    let write = steps::verify_write(admins, &choice.name, action.write_within);
    let limit = action.write_within + CONNECT * 2;
    let step = tokio::time::timeout(limit, write)
        .await
        .unwrap_or_else(|_| failed("verify-write", "timed out", Value::Null));
    record(&step);
    if !step.ok {
        return Err(format!(
            "`{}` was promoted but {}",
            choice.name, step.message
        ));
    }
    Ok(Promoted {
        new_primary: choice.name,
        failures,
    })
}

/// Every configured replica but the new primary (the old primary is
/// [`rejoin`]'s).
fn repoint_list(action: &FailoverAction, redis: &RedisFailover, new: &str) -> Vec<String> {
    std::iter::once(&action.standby)
        .chain(&redis.replicas)
        .filter(|n| *n != new)
        .cloned()
        .collect()
}

/// The most a step may take: connecting plus its own work.
fn step_limit(step: &str) -> Duration {
    match step {
        "pre-check" => PRIMARY_PROBE * 2 + CONNECT * 8,
        "fence" => FENCE_COMMAND + PRIMARY_PROBE * 2,
        "repoint" => CONNECT * 4,
        // The command and its reply, then a second read of the role.
        "promote" => CONNECT * 6,
        _ => CONNECT * 2,
    }
}

/// Run a step within its limit; past it, the step failed.
async fn bounded(name: &'static str, step: impl std::future::Future<Output = Step>) -> Step {
    let limit = step_limit(name);
    match tokio::time::timeout(limit, step).await {
        Ok(step) => step,
        Err(_) => failed(
            name,
            format!(
                "did not finish within {} (a server accepted the connection but stopped answering?)",
                crate::config::units::format_duration(limit)
            ),
            json!({"limit_ms": limit.as_millis() as u64}),
        ),
    }
}

/// The promote step within its limit; past it, the target may have been
/// promoted (the command may have arrived), and the step says so.
async fn bounded_promote(admins: &Admins, target: &str) -> Step {
    let limit = step_limit("promote");
    match tokio::time::timeout(limit, steps::promote(admins, target)).await {
        Ok(step) => step,
        Err(_) => Step::may_be_promoted(
            target,
            format!(
                "REPLICAOF NO ONE on `{target}` did not finish within {}",
                crate::config::units::format_duration(limit)
            ),
        ),
    }
}

async fn bounded_pre_check(
    admins: &Admins,
    action: &FailoverAction,
    redis: &RedisFailover,
) -> (Step, Option<Choice>) {
    let limit = step_limit("pre-check");
    match tokio::time::timeout(limit, pre_check(admins, action, redis)).await {
        Ok(done) => done,
        Err(_) => (
            failed(
                "pre-check",
                format!("did not finish within {limit:?}"),
                Value::Null,
            ),
            None,
        ),
    }
}

/// Step 1: see the module's documentation.
pub async fn pre_check(
    admins: &Admins,
    action: &FailoverAction,
    redis: &RedisFailover,
) -> (Step, Option<Choice>) {
    let (host, port) = match admins.address(&action.primary) {
        Ok(address) => address,
        Err(e) => return (failed("pre-check", e.to_string(), Value::Null), None),
    };
    let primary = admins.primary_state(&action.primary, PRIMARY_PROBE).await;
    let names: Vec<String> = std::iter::once(action.standby.clone())
        .chain(redis.replicas.iter().cloned())
        .collect();
    let replicas = admins.replicas(&names, CONNECT).await;
    let mut detail = json!({
        "primary": format!("{primary:?}"),
        "replicas": replicas.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>(),
        "max_lag_bytes": action.max_lag_bytes,
    });
    let input = Input {
        primary,
        primary_address: (&host, port),
        preferred: &action.standby,
        replicas,
        max_lag_bytes: action.max_lag_bytes,
    };
    match choose::choose(&input) {
        Err(refusal) => (failed("pre-check", refusal.to_string(), detail), None),
        Ok(choice) => {
            detail["chosen"] = json!(choice.name);
            detail["replid"] = json!(choice.replid);
            detail["offset"] = json!(choice.offset);
            detail["newest_offset"] = json!(choice.newest);
            let message = format!(
                "the primary `{}` neither answers nor refuses; `{}` has its replication id {} and the highest offset {} ({} bytes behind the newest copy, limit {})",
                action.primary,
                choice.name,
                choice.replid,
                choice.offset,
                choice.newest - choice.offset,
                action.max_lag_bytes
            );
            (ok("pre-check", message, detail), Some(choice))
        }
    }
}

//! After a Redis failover: wait for the old primary to come back, pause
//! its writes (`CLIENT PAUSE WRITE`, so that clients still pointed at it
//! cannot write to a second primary), make it a replica of the new
//! primary (`REPLICAOF`) and lift the pause once it is one. Whatever it
//! wrote after the new primary's history split off is discarded by its
//! full resync: that is the price of never having two primaries, and the
//! record says so. Never silently: either outcome is an audit record.

use super::server::Admins;
use super::steps::follow;
use super::{CONNECT, PRIMARY_PROBE, failed, ok};
use crate::config::{FailoverAction, RedisFailover};
use crate::events::Decision;
use crate::remediate::Remediator;
use crate::remediate::failover::Step;
use crate::remediate::trigger::{Incident, record_of};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the old primary is tried while it is away.
const POLL: Duration = Duration::from_millis(500);
/// How long its writes are paused while it is made a replica (lifted as
/// soon as it is one).
const PAUSE_MS: &str = "10000";
/// How long a rejoined server may take to link.
const LINK_WITHIN: Duration = Duration::from_secs(10);

/// Watch for the old primary in a task of its own (for `rejoin_within`,
/// or until the agent stops), and rejoin it to `new_primary` once it
/// answers. Every outcome is recorded under the failover's incident.
pub fn spawn_watch(
    core: &Arc<Remediator>,
    incident: Incident,
    action: FailoverAction,
    redis: RedisFailover,
    new_primary: String,
) {
    if redis.rejoin_within.is_zero() {
        return;
    }
    let task_core = core.clone();
    core.actions.spawn(async move {
        let core = task_core;
        let stopping = core.stopping.clone();
        tokio::select! {
            _ = stopping.cancelled() => {}
            step = watch(&core, &action, &redis, &new_primary) => {
                let decision = if step.ok { Decision::Step } else { Decision::Failed };
                core.record(record_of(
                    &core,
                    &incident,
                    decision,
                    Some("rejoin"),
                    format!("rejoin: {}", step.message),
                    json!({"ok": step.ok, "detail": step.detail}),
                ));
            }
        }
    });
}

/// Poll the old primary until it answers and is rejoined, or
/// `rejoin_within` passes.
async fn watch(
    core: &Remediator,
    action: &FailoverAction,
    redis: &RedisFailover,
    new_primary: &str,
) -> Step {
    let started = Instant::now();
    let mut last = String::from("it never answered");
    loop {
        let admins = core
            .port()
            .and_then(|p| p.config())
            .map(|c| Admins::from_config(&c))
            .unwrap_or_default();
        if let super::choose::Primary::Alive(_) =
            admins.primary_state(&action.primary, PRIMARY_PROBE).await
        {
            let step = rejoin(&admins, &action.primary, new_primary).await;
            if step.ok {
                return step;
            }
            last = step.message;
        }
        if started.elapsed() >= redis.rejoin_within {
            return failed(
                "rejoin",
                format!(
                    "the old primary `{}` was not made a replica of `{new_primary}` within rejoin_within = {} ({last}); when it is back, run REPLICAOF by hand",
                    action.primary,
                    crate::config::units::format_duration(redis.rejoin_within),
                ),
                Value::Null,
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Pause `old`'s writes, make it a replica of `new` and lift the pause
/// once it is one. Ok when its link to `new` is up.
pub async fn rejoin(admins: &Admins, old: &str, new: &str) -> Step {
    let fail = |message: String, detail: Value| failed("rejoin", message, detail);
    // A promotion counted from a lost reply may not have taken: `old`
    // follows `new` only once `new` is read as a primary (else the two
    // would replicate from each other and neither take writes).
    let role = async {
        let mut server = admins.connect(new, CONNECT).await?;
        server.seen(CONNECT).await
    };
    match role.await {
        Ok(seen) if !seen.replica => {}
        Ok(_) => {
            return fail(
                format!(
                    "`{new}` is a replica, not a primary (its promotion did not take): `{old}` is left as it is; check the pair by hand"
                ),
                Value::Null,
            );
        }
        Err(e) => {
            return fail(
                format!("`{new}` cannot be read ({e}): `{old}` is not made its replica yet"),
                Value::Null,
            );
        }
    }
    let mut server = match admins.connect(old, CONNECT).await {
        Ok(server) => server,
        Err(e) => return fail(format!("cannot connect to `{old}`: {e}"), Value::Null),
    };
    if let Err(e) = server
        .call(&["CLIENT", "PAUSE", PAUSE_MS, "WRITE"], CONNECT)
        .await
    {
        return fail(
            format!("the old primary `{old}` is back but its writes could not be paused: {e}"),
            Value::Null,
        );
    }
    let before = server.seen(CONNECT).await.ok();
    let detail = json!({
        "was_primary": before.as_ref().map(|s| !s.replica),
        "offset_before": before.as_ref().map(|s| s.offset),
        "replid_before": before.as_ref().map(|s| s.replid.clone()),
    });
    // On failure the pause stays (it ends by itself; the watch pauses it
    // again on its next try): a server that is not yet a replica must not
    // take writes beside the new primary.
    match follow(admins, old, new, LINK_WITHIN).await {
        Ok(link) => {
            let unpaused = server.call(&["CLIENT", "UNPAUSE"], CONNECT).await;
            let mut detail = detail;
            detail["link"] = link;
            detail["unpaused"] = json!(unpaused.is_ok());
            ok(
                "rejoin",
                format!(
                    "the old primary `{old}` is back: its writes were paused, and it is a replica of `{new}` (what it wrote after the failover, if anything, is discarded by its resync)"
                ),
                detail,
            )
        }
        Err(why) => fail(
            format!("the old primary `{old}` is back but could not be made a replica: {why}"),
            detail,
        ),
    }
}

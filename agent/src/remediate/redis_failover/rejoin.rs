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
use crate::remediate::Remediator;
use crate::remediate::failover::Step;
use crate::remediate::rejoin_watch::{self, Attempt, Try, Watch};
use crate::remediate::trigger::Incident;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How often the old primary is tried while it is away.
const POLL: Duration = Duration::from_millis(500);
/// How long its writes are paused while it is made a replica (lifted as
/// soon as it is one).
const PAUSE_MS: &str = "10000";
/// How long a rejoined server may take to link.
const LINK_WITHIN: Duration = Duration::from_secs(10);

/// Watch for the old primary in a task of its own (for `rejoin_within`,
/// or until the agent stops), and rejoin it to `new_primary` once it
/// answers. Every outcome is recorded under the failover's incident
/// ([`crate::remediate::rejoin_watch`]).
pub fn spawn_watch(
    core: &Arc<Remediator>,
    incident: Incident,
    action: FailoverAction,
    redis: RedisFailover,
    new_primary: String,
) {
    let within = redis.rejoin_within;
    let (primary, new) = (action.primary.clone(), new_primary.clone());
    let watch = Watch {
        within,
        poll: POLL,
        gave_up: Box::new(move |last| {
            failed(
                "rejoin",
                format!(
                    "the old primary `{primary}` was not made a replica of `{new}` within rejoin_within = {} ({last}); when it is back, run REPLICAOF by hand",
                    crate::config::units::format_duration(within),
                ),
                Value::Null,
            )
        }),
    };
    let task_core = core.clone();
    let attempt: Try = Box::new(move || {
        let (core, old, new) = (
            task_core.clone(),
            action.primary.clone(),
            new_primary.clone(),
        );
        Box::pin(async move { attempt(&core, &old, &new).await })
    });
    rejoin_watch::spawn(core, incident, watch, attempt);
}

/// One try: once the old primary answers, rejoin it; a failed rejoin is
/// tried again at the next poll (its pause ends by itself meanwhile).
async fn attempt(core: &Remediator, old: &str, new: &str) -> Attempt {
    let admins = core
        .port()
        .and_then(|p| p.config())
        .map(|c| Admins::from_config(&c))
        .unwrap_or_default();
    let super::choose::Primary::Alive(_) = admins.primary_state(old, PRIMARY_PROBE).await else {
        return Attempt::NotYet(None);
    };
    let step = rejoin(&admins, old, new).await;
    if step.ok {
        Attempt::Done(step)
    } else {
        Attempt::NotYet(Some(step.message))
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

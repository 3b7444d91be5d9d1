//! Steps 2 to 5 of the Redis failover ([`super`]): fence the old primary,
//! promote the chosen replica, repoint the others, verify a write.

use super::choose::Primary;
use super::server::Admins;
use super::{CONNECT, PRIMARY_PROBE, failed, ok};
use crate::config::{FailoverAction, Fence};
use crate::remediate::command;
use crate::remediate::failover::Step;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The key the write check sets on a new primary.
pub const CHECK_KEY: &str = "watchpost:failover_check";

/// Step 2: fence the old primary. The pre-check found it gone; if it
/// answers (or refuses, or cannot be told) now, it is back: the failover
/// is withdrawn, never promoted beside it (the writes it acknowledged
/// while its replicas were cut off would be lost, and two primaries would
/// take writes). Still gone: the fence command.
pub async fn fence(admins: &Admins, action: &FailoverAction) -> Step {
    let primary = &action.primary;
    match admins.primary_state(primary, PRIMARY_PROBE).await {
        Primary::Gone(_) => {}
        Primary::Alive(why) | Primary::CannotTell(why) => {
            return failed(
                "fence",
                format!(
                    "the old primary `{primary}` is back or cannot be told ({why}): the failover is withdrawn and it keeps its place"
                ),
                Value::Null,
            );
        }
    }
    let outcome = match &action.fence {
        Fence::None => Ok(format!(
            "the old primary `{primary}` does not answer; no fence command configured (min-replicas-to-write fences it when it returns)"
        )),
        Fence::Command(argv) => command::fence(argv).await,
        Fence::PgCtl { .. } => Err(format!("fence = {:?} cannot fence Redis", Fence::BUILT_IN)),
    };
    match outcome {
        Ok(message) => ok("fence", message, Value::Null),
        Err(message) if !action.fence_required => ok(
            "fence",
            format!("fence failed but is not required: {message}"),
            Value::Null,
        ),
        Err(message) => failed(
            "fence",
            format!("{message}; the failover is aborted (fence_required = true)"),
            Value::Null,
        ),
    }
}

/// Step 3: `REPLICAOF NO ONE` on `target`. When the command or its reply
/// fails (lost, timed out), the target's role is read again: a target
/// that is a primary now, or that cannot be read, may have been promoted,
/// and the failed step says so ([`Step::may_be_promoted`]) so that the failover block
/// and the rejoin watch apply as after a promotion.
pub async fn promote(admins: &Admins, target: &str) -> Step {
    let started = Instant::now();
    let result = async {
        let mut server = admins.connect(target, CONNECT).await?;
        server.call(&["REPLICAOF", "NO", "ONE"], CONNECT).await?;
        server.seen(CONNECT).await
    };
    match result.await {
        Ok(seen) if !seen.replica => ok(
            "promote",
            format!("promoted `{target}` (REPLICAOF NO ONE)"),
            json!({"target": target, "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
                   "replid": seen.replid, "offset": seen.offset}),
        ),
        Ok(_) => failed(
            "promote",
            format!("`{target}` is still a replica after REPLICAOF NO ONE"),
            Value::Null,
        ),
        Err(e) => {
            let reread = async {
                let mut server = admins.connect(target, CONNECT).await?;
                server.seen(CONNECT).await
            };
            let role = reread
                .await
                .map(|seen| seen.replica)
                .map_err(|e| e.to_string());
            after_error(target, &e.to_string(), &role)
        }
    }
}

/// The promote step after `REPLICAOF NO ONE` on `target` failed with
/// `error`, given a fresh read of its role (`Ok(true)`: still a replica;
/// `Ok(false)`: a primary; `Err`: why it cannot be read). Only a target
/// read as a replica counts as not promoted.
pub fn after_error(target: &str, error: &str, role: &Result<bool, String>) -> Step {
    match role {
        Ok(true) => failed(
            "promote",
            format!("promoting `{target}` failed: {error} (it is still a replica)"),
            Value::Null,
        ),
        Ok(false) => Step::may_be_promoted(
            target,
            format!("REPLICAOF NO ONE on `{target}` failed ({error}) but it is a primary now"),
        ),
        Err(why) => Step::may_be_promoted(
            target,
            format!(
                "REPLICAOF NO ONE on `{target}` failed ({error}) and its role cannot be read ({why}): it may be promoted"
            ),
        ),
    }
}

/// Step 4: point `replica` at `new_primary` and wait for its link.
pub async fn repoint(admins: &Admins, replica: &str, new_primary: &str) -> Step {
    match follow(admins, replica, new_primary, CONNECT * 2).await {
        Ok(detail) => ok(
            "repoint",
            format!("`{replica}` replicates from `{new_primary}`"),
            detail,
        ),
        Err(message) => failed("repoint", message, Value::Null),
    }
}

/// `REPLICAOF` the new primary's address on `replica`, then wait up to
/// `within` for `master_link_status:up`. Its replication state when
/// linked, or why not.
pub async fn follow(
    admins: &Admins,
    replica: &str,
    new_primary: &str,
    within: Duration,
) -> Result<Value, String> {
    let (host, port) = admins.address(new_primary).map_err(|e| e.to_string())?;
    let mut server = admins
        .connect(replica, CONNECT)
        .await
        .map_err(|e| format!("cannot connect to `{replica}`: {e}"))?;
    let port_text = port.to_string();
    server
        .call(&["REPLICAOF", &host, &port_text], CONNECT)
        .await
        .map_err(|e| format!("REPLICAOF {host} {port} on `{replica}` failed: {e}"))?;
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < within {
        match server.seen(CONNECT).await {
            Ok(seen) if seen.link_up => {
                return Ok(
                    json!({"source": format!("{host}:{port}"), "offset": seen.offset,
                                 "replid": seen.replid}),
                );
            }
            Ok(seen) => last = Some(seen),
            Err(e) => return Err(format!("cannot read `{replica}`'s state: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "`{replica}` did not link to `{new_primary}` ({host}:{port}) within {within:?} (last seen: {last:?}); its masterauth/masteruser must be the new primary's"
    ))
}

/// Step 5: the new primary accepts a write within `within`.
pub async fn verify_write(admins: &Admins, target: &str, within: Duration) -> Step {
    let started = Instant::now();
    let deadline = started + within;
    let mut attempts = 0;
    let mut last_error = String::new();
    let stamp = format!(
        "{} {}",
        target,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    while Instant::now() < deadline {
        attempts += 1;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(CONNECT);
        let write = async {
            let mut server = admins.connect(target, left).await?;
            server.call(&["SET", CHECK_KEY, &stamp], left).await
        };
        match write.await {
            Ok(_) => {
                return ok(
                    "verify-write",
                    format!("`{target}` accepts writes (SET {CHECK_KEY})"),
                    json!({"attempts": attempts, "duration_ms": started.elapsed().as_secs_f64() * 1000.0}),
                );
            }
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    failed(
        "verify-write",
        format!(
            "`{target}` did not accept a write within {}: {last_error}",
            crate::config::units::format_duration(within)
        ),
        json!({"attempts": attempts}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_promote_counts_as_one_unless_the_target_is_read_as_a_replica() {
        // (fresh read of the role, counted as promoted?)
        let cases: Vec<(Result<bool, String>, bool)> = vec![
            (Ok(true), false),
            (Ok(false), true),
            (Err("no reply within 5s".into()), true),
            (Err("connection refused".into()), true),
        ];
        for (role, promoted) in cases {
            let step = after_error("r1", "REPLICAOF got no reply within 5s", &role);
            assert_eq!(step.name, "promote");
            assert!(!step.ok, "{role:?}");
            assert_eq!(
                step.counts_as_promoted(),
                promoted,
                "{role:?}: {}",
                step.message
            );
            if promoted {
                assert_eq!(step.detail["target"], "r1");
            }
        }
    }
}

//! `watchpost cluster restart [--pending] [--switch-back] -c FILE`: a
//! rolling restart with no outage, driven from here through etcd (as
//! `patronictl restart` drives Patroni's members). The standbys restart
//! one at a time, each asked through its agent ([`crate::cluster::restart`])
//! and back, healthy and streaming from the leader, before the next; then
//! the leader hands over to a standby by a planned switchover, which stops
//! it cleanly and starts it again as a standby of the new leader; with
//! `--switch-back`, a second switchover returns the lead to it. With
//! `--pending` only servers whose `pg_settings.pending_restart` names a
//! setting restart (and the leader is switched over only if it has one).
//! Any step that fails or does not finish within `--wait` stops the run
//! with what went wrong; the members restarted so far stay restarted.

use crate::cluster::Keys;
use crate::cluster::etcd::Etcd;
use crate::cluster::member::Member;
use crate::cluster::restart::{Outcome, Request};
use crate::cluster::switchover;
use crate::config::ClusterSpec;
use anyhow::{Context, anyhow, bail};
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;

/// What etcd says now: the leader's name, its last position and the
/// members.
async fn read(
    etcd: &Etcd,
    keys: &Keys,
) -> anyhow::Result<(Option<String>, Option<u64>, Vec<Member>)> {
    let scope = etcd.prefix(&keys.root).await.map_err(|e| anyhow!("{e}"))?;
    let snapshot = keys.snapshot(&scope);
    Ok((snapshot.leader_name(), snapshot.optime, snapshot.members))
}

/// Ask `node`'s agent for one restart step and wait for its outcome.
async fn ask(
    etcd: &Etcd,
    keys: &Keys,
    node: &str,
    pending_only: bool,
    within: Duration,
) -> anyhow::Result<Outcome> {
    let id = crate::cluster::request_id();
    let request = serde_json::to_string(&Request {
        id: id.clone(),
        pending_only,
    })?;
    let key = keys.restart_of(node);
    if !etcd
        .create(&key, &request, 0)
        .await
        .map_err(|e| anyhow!("{e}"))?
    {
        bail!(
            "a restart of `{node}` is already pending ({key} exists); wait for it, or delete the key \
             if its agent is gone"
        );
    }
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(kv)) = etcd.get(&keys.restart_result_of(node)).await
            && let Ok(outcome) = serde_json::from_str::<Outcome>(&kv.value)
            && outcome.id == id
        {
            return Ok(outcome);
        }
        if Instant::now() >= deadline {
            let _ = etcd.delete_if(&key, &request).await;
            bail!(
                "`{node}`'s agent did not restart its server within {} s (is it running?); the \
                 request was withdrawn",
                within.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until `node` is a healthy standby streaming from `leader`.
async fn streaming(
    etcd: &Etcd,
    keys: &Keys,
    node: &str,
    leader: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let (_, _, members) = read(etcd, keys).await?;
        let upstream = members
            .iter()
            .find(|m| m.name == leader)
            .map(|m| format!("{}:{}", m.host, m.port));
        let back = members.iter().any(|m| {
            m.name == node && m.healthy && upstream.is_some() && m.streaming_from == upstream
        });
        if back {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "`{node}` does not stream from `{leader}` {} s after its restart; see `watchpost \
                 cluster list`",
                within.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Hand the lead from `from` to `to` and wait until `from` streams from it.
async fn hand_over(
    etcd: &Etcd,
    keys: &Keys,
    spec: &ClusterSpec,
    from: &str,
    to: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let request = switchover::ask(etcd, keys, spec.max_lag_bytes, to, None)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let outcome = switchover::outcome(etcd, keys, &request.id, within)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    if !outcome.ok {
        bail!(
            "the switchover from `{from}` to `{to}` failed: {}",
            outcome.message
        );
    }
    println!("{from}: switched over to `{to}` ({})", outcome.message);
    streaming(etcd, keys, from, to, within).await?;
    println!("{from}: restarted as a standby, streaming from `{to}`");
    Ok(())
}

/// A standby the leader may hand over to now, by name.
fn successor(
    leader: &str,
    members: &[Member],
    optime: Option<u64>,
    max_lag_bytes: u64,
) -> Option<String> {
    members
        .iter()
        .filter(|m| m.name != leader)
        .find(|m| {
            switchover::refusal(&m.name, Some(leader), members, optime, max_lag_bytes).is_none()
        })
        .map(|m| m.name.clone())
}

/// Run the rolling restart (see the module docs).
pub async fn run(
    etcd: &Etcd,
    keys: &Keys,
    spec: &ClusterSpec,
    pending_only: bool,
    switch_back: bool,
    wait: u64,
) -> anyhow::Result<ExitCode> {
    let within = Duration::from_secs(wait);
    let (leader, _, members) = read(etcd, keys).await?;
    let leader = leader.context("there is no leader: a rolling restart needs a healthy cluster")?;
    let mut restarted = 0;
    for member in members.iter().filter(|m| m.name != leader) {
        let outcome = ask(etcd, keys, &member.name, pending_only, within).await?;
        println!("{}: {}", member.name, outcome.message);
        if !outcome.ok {
            eprintln!("rolling restart stopped at `{}`", member.name);
            return Ok(ExitCode::FAILURE);
        }
        if outcome.restarted {
            streaming(etcd, keys, &member.name, &leader, within).await?;
            println!("{}: streaming from `{leader}` again", member.name);
            restarted += 1;
        }
    }
    let outcome = ask(etcd, keys, &leader, pending_only, within).await?;
    if !outcome.ok {
        eprintln!("{leader}: {}", outcome.message);
        return Ok(ExitCode::FAILURE);
    }
    if pending_only && outcome.pending.is_empty() {
        println!("{leader}: leads; no setting waits for a restart");
    } else {
        let (_, optime, members) = read(etcd, keys).await?;
        let Some(to) = successor(&leader, &members, optime, spec.max_lag_bytes) else {
            bail!(
                "no standby can take over from `{leader}` now (see `watchpost cluster list`); \
                 the standbys were restarted, the leader was not"
            );
        };
        hand_over(etcd, keys, spec, &leader, &to, within).await?;
        restarted += 1;
        if switch_back {
            hand_over(etcd, keys, spec, &to, &leader, within).await?;
        }
    }
    println!("rolling restart done: {restarted} server(s) restarted");
    Ok(ExitCode::SUCCESS)
}

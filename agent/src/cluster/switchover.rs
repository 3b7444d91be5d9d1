//! A planned switchover, as an operator asks for it (`watchpost cluster
//! switchover --to NODE [--at TIME]`, or `POST /v1/cluster/switchover`):
//! the request is checked against the members as etcd holds them and
//! written to `/watchpost/SCOPE/switchover` (create-if-absent: one at a
//! time); the leader's and the target's loops carry it out (`handover`);
//! the target writes the outcome to `/watchpost/SCOPE/switchover_result`.
//!
//! A request is refused, with the reason, when there is no leader, the
//! target is the leader, not a member, tagged `nofailover`, not a healthy
//! standby, not streaming from the leader, or has replayed more than
//! `max_lag_bytes` less than the leader's last published position.

use super::Keys;
use super::dcs::Dcs;
use super::etcd::{EtcdError, Op};
use super::member::Member;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// Where a switchover stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Asked for; the leader has not acted yet (`--cancel` withdraws it).
    Requested,
    /// The leader has started (a compare-and-set from `requested`, before
    /// its checkpoint): it is about to stop its server; no cancel now.
    Stopping,
    /// The leader's server is cleanly stopped at `reach`: the target takes
    /// the key once it has replayed up to it.
    Stopped,
}

/// The value of `/watchpost/SCOPE/switchover`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Unique per request: the outcome names it.
    pub id: String,
    /// The leader when it was asked for.
    pub from: String,
    pub to: String,
    /// Not before then (RFC 3339); `None`: at once.
    pub at: Option<String>,
    pub stage: Stage,
    /// `Stopped`: the position before [`Request::reach`] (the shutdown
    /// checkpoint record's start on PostgreSQL), which agents before
    /// `reach` wait to replay *past*; written for them (`None` when
    /// `reach` is 0), read only when `reach` is missing.
    pub lsn: Option<u64>,
    /// `Stopped`: the position the target must have replayed up to,
    /// inclusive ([`ShutDown::reach`](super::local::ShutDown::reach)): a
    /// Redis primary with no write since its first replica attached ends
    /// at offset 0, which no position lies "before". `None` in requests
    /// written by older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<u64>,
    /// `Stopped`: the old leader's timeline (term).
    pub timeline: Option<u64>,
    /// `Stopped`: the lease id under which the old leader held the key
    /// when it stopped; the target's take-over compares it, so that a key
    /// taken back since under another lease (the old leader's agent
    /// restarted) makes the take-over fail. `None` in requests written by
    /// older agents (the target then reads it back, [`lease_at_stop`], and
    /// refuses, naming the upgrade, when it cannot be known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_lease: Option<i64>,
}

impl Request {
    /// Whether its time has come.
    pub fn due(&self) -> bool {
        match &self.at {
            None => true,
            Some(at) => humantime::parse_rfc3339_weak(at).map_or(true, |t| SystemTime::now() >= t),
        }
    }
}

/// The value of `/watchpost/SCOPE/switchover_result`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    pub ok: bool,
    pub message: String,
}

/// Why `to` may not take over from `leader` now, or `None` when it may.
pub fn refusal(
    to: &str,
    leader: Option<&str>,
    members: &[Member],
    leader_optime: Option<u64>,
    max_lag_bytes: u64,
) -> Option<String> {
    let Some(leader) = leader else {
        return Some("there is no leader to switch over from".into());
    };
    if to == leader {
        return Some(format!("`{to}` already leads"));
    }
    let Some(target) = members.iter().find(|m| m.name == to) else {
        let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        names.sort();
        return Some(format!(
            "no live member `{to}` (members: {})",
            names.join(", ")
        ));
    };
    if target.nofailover {
        return Some(format!("`{to}` is tagged nofailover"));
    }
    if !target.healthy {
        return Some(format!(
            "`{to}` is not a healthy standby (its server is {}{})",
            target.role,
            if target.role == "standby" {
                ", replay paused or nothing received"
            } else {
                ""
            }
        ));
    }
    let Some(from) = members.iter().find(|m| m.name == leader) else {
        return Some(format!(
            "the leader `{leader}` has not published itself in etcd"
        ));
    };
    let upstream = format!("{}:{}", from.host, from.port);
    if target.streaming_from.as_deref() != Some(upstream.as_str()) {
        return Some(format!(
            "`{to}` does not stream from the leader `{leader}` ({upstream}); it streams from {}",
            target.streaming_from.as_deref().unwrap_or("nobody")
        ));
    }
    let replayed = target.replayed.or(target.lsn).unwrap_or(0);
    if let Some(optime) = leader_optime
        && optime.saturating_sub(replayed) > max_lag_bytes
    {
        return Some(format!(
            "`{to}` has replayed {} bytes less than the leader's last position, more than max_lag_bytes = {max_lag_bytes}",
            optime - replayed
        ));
    }
    None
}

/// Why [`ask`] wrote no request: its text (Display) is the message shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// Refused, with the reason: the cluster as etcd holds it does not
    /// allow this switchover now (no leader, the target unfit, one
    /// pending, the leader changed meanwhile); nothing was written.
    #[error("{0}")]
    Refused(String),
    /// etcd could not be read or written (out of reach, its refusal, a
    /// lost answer: [`EtcdError`] says which); nothing about the request
    /// was judged.
    #[error(transparent)]
    Store(#[from] EtcdError),
}

impl AskError {
    /// etcd's error, when etcd failed (`None`: a refusal).
    pub fn store(&self) -> Option<&EtcdError> {
        match self {
            AskError::Refused(_) => None,
            AskError::Store(e) => Some(e),
        }
    }
}

/// Why [`cancel`] withdrew no request: its text (Display) is the message
/// shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// Refused, with the reason: there is nothing to withdraw (no request
    /// pending, or it finished or was withdrawn meanwhile), the leader has
    /// started it (it can no longer be cancelled), or the pending request
    /// cannot be read; nothing was deleted, and cancelling again is
    /// refused again until the cluster changes.
    #[error("{0}")]
    Refused(String),
    /// etcd could not be read or written ([`EtcdError`] says which): out
    /// of reach (nothing deleted), its refusal (nothing deleted), or a
    /// lost answer to the delete (the request may have been withdrawn:
    /// cancelling again shows it).
    #[error(transparent)]
    Store(#[from] EtcdError),
}

impl CancelError {
    /// etcd's error, when etcd failed (`None`: a refusal).
    pub fn store(&self) -> Option<&EtcdError> {
        match self {
            CancelError::Refused(_) => None,
            CancelError::Store(e) => Some(e),
        }
    }
}

/// Check and write a request (through any consensus store: etcd, or the
/// simulation's in-memory one): the request, or why it was not written.
pub async fn ask<D: Dcs>(
    etcd: &D,
    keys: &Keys,
    max_lag_bytes: u64,
    to: &str,
    at: Option<SystemTime>,
) -> Result<Request, AskError> {
    let (scope, _) = etcd.read_scope(&keys.root).await?;
    let value = |key: &str| {
        scope
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.clone())
    };
    if let Some(pending) = value(&keys.switchover) {
        return Err(AskError::Refused(format!(
            "a switchover is already pending ({pending}); cancel it with `watchpost cluster switchover --cancel`"
        )));
    }
    let snapshot = keys.snapshot(&scope);
    let leader = snapshot.leader_name();
    let (members, optime) = (snapshot.members, snapshot.optime);
    if let Some(why) = refusal(to, leader.as_deref(), &members, optime, max_lag_bytes) {
        return Err(AskError::Refused(format!(
            "switchover to `{to}` refused: {why}"
        )));
    }
    let request = Request {
        id: super::request_id(),
        from: leader.unwrap_or_default(),
        to: to.into(),
        at: at.map(|t| humantime::format_rfc3339_millis(t).to_string()),
        stage: Stage::Requested,
        lsn: None,
        reach: None,
        timeline: None,
        leader_lease: None,
    };
    // Plain strings and numbers: serialising cannot fail; if it did, the
    // call was not made.
    let text = serde_json::to_string(&request).map_err(|e| EtcdError::Local(e.to_string()))?;
    let written = etcd
        .txn(
            &[
                (&keys.switchover, None),
                (&keys.leader, Some(&request.from)),
            ],
            &[Op::Put {
                key: keys.switchover.clone(),
                value: text,
                lease: 0,
            }],
        )
        .await?;
    if !written {
        return Err(AskError::Refused(
            "the leader changed, or another switchover was asked for meanwhile: try again".into(),
        ));
    }
    Ok(request)
}

/// The lease the old leader held its key under when it stopped, for a
/// `stopped` request (`raw`: its value as read) written by an older agent
/// without `leader_lease` (a rolling upgrade): read back, never inferred.
/// The key's lease read now is the one at the stop only if the key has
/// not changed since the request was marked `stopped` (its revision is
/// older than the request's; the key is read first, so a later change
/// shows in the second read's revision order). `Err` (why, naming the
/// upgrade) otherwise: the target then does not take over, and the old
/// leader withdraws the request when its wait runs out.
pub async fn lease_at_stop<D: Dcs>(
    etcd: &D,
    keys: &Keys,
    request: &Request,
    raw: &str,
) -> Result<i64, String> {
    let older = format!(
        "the request was written by an agent without `leader_lease` (older than this one): upgrade `{}`'s agent, then ask again",
        request.from
    );
    let leader = etcd
        .get(&keys.leader)
        .await
        .map_err(|e| format!("{older}; the leader key could not be read: {e}"))?;
    let asked = etcd
        .get(&keys.switchover)
        .await
        .map_err(|e| format!("{older}; the request could not be read back: {e}"))?;
    match (leader, asked) {
        (Some(leader), Some(asked))
            if leader.value == request.from
                && asked.value == raw
                && leader.revision < asked.revision =>
        {
            Ok(leader.lease)
        }
        (Some(leader), Some(asked)) if leader.value == request.from && asked.value == raw => {
            Err(format!(
                "{older}; the leader key changed after `{}` stopped (revision {} after the request's {}), so the lease it stopped under is not known",
                request.from, leader.revision, asked.revision
            ))
        }
        _ => Err(format!(
            "{older}; the leader key or the request changed meanwhile"
        )),
    }
}

/// Withdraw a request its leader has not acted on yet: the request, or
/// why it was not withdrawn.
pub async fn cancel<D: Dcs>(etcd: &D, keys: &Keys) -> Result<Request, CancelError> {
    let Some(kv) = etcd.get(&keys.switchover).await? else {
        return Err(CancelError::Refused("no switchover is pending".into()));
    };
    let request: Request = serde_json::from_str(&kv.value).map_err(|e| {
        CancelError::Refused(format!("unreadable switchover request {:?}: {e}", kv.value))
    })?;
    let under_way = |request: &Request| {
        CancelError::Refused(format!(
            "the switchover to `{}` is already under way (the leader `{}` has started stopping its server): it cannot be cancelled; it completes, or the leader abandons it and stays the leader",
            request.to, request.from
        ))
    };
    if request.stage != Stage::Requested {
        return Err(under_way(&request));
    }
    // Only while the value is still the `requested` one: the leader's
    // compare-and-set to `stopping` and this delete cannot both succeed.
    if !etcd.delete_if(&keys.switchover, &kv.value).await? {
        return Err(match etcd.get(&keys.switchover).await? {
            Some(now) => under_way(&serde_json::from_str(&now.value).unwrap_or(request)),
            None => {
                CancelError::Refused("the switchover finished or was withdrawn meanwhile".into())
            }
        });
    }
    Ok(request)
}

/// Wait (up to `within`) for the outcome of request `id`.
pub async fn outcome(
    etcd: &super::etcd::Etcd,
    keys: &Keys,
    id: &str,
    within: Duration,
) -> Result<Outcome, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(Some(kv)) = etcd.get(&keys.switchover_result).await
            && let Ok(found) = serde_json::from_str::<Outcome>(&kv.value)
            && found.id == id
        {
            return Ok(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "no outcome within {} s; see `watchpost cluster list` and the agents' audit logs",
                within.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
#[path = "switchover_tests.rs"]
mod tests;

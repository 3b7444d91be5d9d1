//! The cluster mode's side of the status API: `GET /v1/cluster` (the
//! members as this node's loop last read them, like `patronictl list`),
//! and the role endpoints' answers when `[cluster]` is configured — from
//! the leader key, not from a probe: `/v1/role/primary` is 200 only while
//! this node holds the key and its server is an answering primary;
//! `/v1/role/replica` only while its server streams from the current
//! leader within `max_lag` of the leader's last published position.
//! `POST /v1/cluster/switchover` asks for a planned switchover, and `POST
//! /v1/cluster/switchover/cancel` withdraws one not started yet (control
//! endpoints, like `watchpost cluster switchover [--cancel]`).

use crate::cluster::Cluster;
use crate::cluster::etcd::EtcdError;
use crate::cluster::switchover::{AskError, CancelError, Request};
use crate::daemon::Shared;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

type Answer = (StatusCode, Json<Value>);

fn unavailable(reason: impl Into<String>) -> Answer {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"healthy": false, "reason": reason.into(), "mode": "cluster"})),
    )
}

/// `GET /v1/cluster`: 404 when the agent is not in cluster mode.
pub async fn view(State(shared): State<Arc<Shared>>) -> Answer {
    match shared.cluster() {
        Some(cluster) => (StatusCode::OK, Json(cluster.json())),
        None => not_cluster(),
    }
}

/// The primary check in cluster mode (None: not in cluster mode).
pub fn primary(shared: &Shared) -> Option<Answer> {
    let cluster = shared.cluster()?;
    let view = cluster.view();
    if !Cluster::fresh(&view, cluster.spec.ttl) {
        return Some(unavailable("the cluster loop has not read etcd recently"));
    }
    if !view.is_leader {
        return Some(unavailable(format!(
            "this node does not hold the leader key (leader: {})",
            view.leader.as_deref().unwrap_or("none")
        )));
    }
    if !view.observation.primary() {
        return Some(unavailable(format!(
            "this node holds the leader key but its server is {}",
            view.observation.role()
        )));
    }
    Some((
        StatusCode::OK,
        Json(
            json!({"healthy": true, "role": "primary", "mode": "cluster", "member": cluster.spec.name, "timeline": view.observation.timeline}),
        ),
    ))
}

/// The replica check in cluster mode (None: not in cluster mode).
pub fn replica(shared: &Shared, max_lag: Option<u64>) -> Option<Answer> {
    let cluster = shared.cluster()?;
    let view = cluster.view();
    if !Cluster::fresh(&view, cluster.spec.ttl) {
        return Some(unavailable("the cluster loop has not read etcd recently"));
    }
    let seen = &view.observation;
    if !(seen.answering && seen.in_recovery) {
        return Some(unavailable(format!("the local server is {}", seen.role())));
    }
    let Some(leader) = view
        .leader
        .as_ref()
        .and_then(|l| view.members.iter().find(|m| &m.name == l))
    else {
        return Some(unavailable("there is no leader to stream from"));
    };
    let upstream = format!("{}:{}", leader.host, leader.port);
    if seen.streaming_from.as_deref() != Some(upstream.as_str()) {
        return Some(unavailable(format!(
            "not streaming from the leader `{}` ({upstream})",
            leader.name
        )));
    }
    let lag = view
        .leader_optime
        .zip(seen.replayed)
        .map(|(optime, replayed)| optime.saturating_sub(replayed));
    if let Some(max) = max_lag {
        match lag {
            Some(lag) if lag > max => {
                return Some(unavailable(format!(
                    "{lag} bytes behind the leader, more than max_lag = {max}"
                )));
            }
            None => return Some(unavailable("cannot tell the lag behind the leader")),
            _ => {}
        }
    }
    Some((
        StatusCode::OK,
        Json(
            json!({"healthy": true, "role": "replica", "mode": "cluster", "leader": leader.name, "lag_bytes": lag}),
        ),
    ))
}

/// The body of `POST /v1/cluster/switchover`.
#[derive(serde::Deserialize)]
pub struct SwitchoverBody {
    /// The member to take over.
    pub to: String,
    /// Not before this time (RFC 3339).
    pub at: Option<String>,
}

/// Outside cluster mode.
fn not_cluster() -> Answer {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "this agent is not in cluster mode (no [cluster] in its config)"})),
    )
}

/// `POST /v1/cluster/switchover` `{"to": NODE, "at": TIME?}`: 202 with the
/// request written to etcd (the agents carry it out; its outcome goes to
/// `/watchpost/SCOPE/switchover_result` and the audit logs), 409 with the
/// reason when refused, 503 when etcd could not be reached or its answer
/// was lost, 502 when etcd refused (permissions, a full store: an
/// operator's fix), 400 for a bad time, 404 outside cluster mode; see
/// [`asked`].
pub async fn switchover(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<SwitchoverBody>,
) -> Answer {
    let Some(cluster) = shared.cluster() else {
        return not_cluster();
    };
    let at = match body.at.as_deref().map(humantime::parse_rfc3339_weak) {
        None => None,
        Some(Ok(at)) => Some(at),
        Some(Err(e)) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": format!("`at`: {e}; write an RFC 3339 time, e.g. 2026-12-01T03:00:00Z")}),
                ),
            );
        }
    };
    let spec = &cluster.spec;
    let (etcd, keys) = match store(spec) {
        Ok(store) => store,
        Err(answer) => return answer,
    };
    asked(crate::cluster::switchover::ask(&etcd, &keys, spec.max_lag_bytes, &body.to, at).await)
}

/// `POST /v1/cluster/switchover/cancel` (no body): withdraw the pending
/// switchover its leader has not started yet; 200 with the request
/// withdrawn, else as [`switchover`]'s errors (see [`cancelled`]).
pub async fn cancel(State(shared): State<Arc<Shared>>) -> Answer {
    let Some(cluster) = shared.cluster() else {
        return not_cluster();
    };
    let (etcd, keys) = match store(&cluster.spec) {
        Ok(store) => store,
        Err(answer) => return answer,
    };
    cancelled(crate::cluster::switchover::cancel(&etcd, &keys).await)
}

/// The cluster's etcd client (3 s per call) and keys, for a request
/// made through the API; `Err`: the answer naming why it cannot be made.
fn store(
    spec: &crate::config::ClusterSpec,
) -> Result<(crate::cluster::etcd::Etcd, crate::cluster::Keys), Answer> {
    let etcd = crate::cluster::etcd::Etcd::for_cluster(spec, std::time::Duration::from_secs(3))
        .map_err(|e| failed(&e.to_string(), Some(&e)))?;
    Ok((etcd, crate::cluster::Keys::new(&spec.scope)))
}

/// The answer to a switchover asked for: 202 with the request, else
/// [`failed`]'s.
fn asked(result: Result<Request, AskError>) -> Answer {
    match result {
        Ok(request) => (StatusCode::ACCEPTED, Json(json!({"request": request}))),
        Err(e) => failed(&e.to_string(), e.store()),
    }
}

/// The answer to a cancel: 200 with the request withdrawn, else
/// [`failed`]'s (a 503 with `"may_have_been_written": true` when etcd's
/// answer to the delete was lost: cancelling again shows whether it was
/// withdrawn).
fn cancelled(result: Result<Request, CancelError>) -> Answer {
    match result {
        Ok(request) => (StatusCode::OK, Json(json!({"cancelled": request}))),
        Err(e) => failed(&e.to_string(), e.store()),
    }
}

/// A switchover call that did not do what was asked (`store`: etcd's
/// error, `None` for a refusal): 409 for a refusal (the caller may change
/// the request, or wait for the cluster); 503 when etcd was out of reach
/// or its answer to the write was lost (asking again may succeed; after a
/// lost answer the write may have been applied, which asking again shows:
/// `"may_have_been_written": true`); 502 when etcd refused (permission
/// denied, a full store: retrying cannot help until an operator acts);
/// 500 when the agent could not make the call. The body is `{"error":
/// TEXT, "kind": "refused" | "unreachable" | "answer-lost" |
/// "store-refused" | "local", "may_have_been_written": BOOL}`.
fn failed(why: &str, store: Option<&EtcdError>) -> Answer {
    let (status, kind) = match store {
        None => (StatusCode::CONFLICT, "refused"),
        Some(EtcdError::Unreachable(_)) => (StatusCode::SERVICE_UNAVAILABLE, "unreachable"),
        Some(EtcdError::AnswerLost(_)) => (StatusCode::SERVICE_UNAVAILABLE, "answer-lost"),
        Some(EtcdError::Refused(_)) => (StatusCode::BAD_GATEWAY, "store-refused"),
        Some(EtcdError::Local(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "local"),
    };
    (
        status,
        Json(json!({
            "error": why,
            "kind": kind,
            "may_have_been_written": kind == "answer-lost",
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Keys;
    use crate::cluster::dcs::memory::{Call, Fault, Memory};
    use crate::cluster::member::Member;
    use crate::cluster::switchover::{ask, cancel};
    use std::time::Duration;

    /// Leader `a` (a primary) and `b`, a standby streaming from it.
    fn cluster(keys: &Keys) -> Memory {
        let dcs = Memory::new();
        let member = |name: &str, role: &str, port: u16, upstream: Option<&str>| Member {
            name: name.into(),
            role: role.into(),
            healthy: role == "standby",
            host: "h".into(),
            port,
            streaming_from: upstream.map(String::from),
            ..Member::default()
        };
        {
            let mut store = dcs.store.lock();
            store.put(&keys.leader, "a", 0).unwrap();
            for m in [
                member("a", "primary", 5432, None),
                member("b", "standby", 5433, Some("h:5432")),
            ] {
                let text = serde_json::to_string(&m).unwrap();
                store.put(&keys.member(&m.name), &text, 0).unwrap();
            }
        }
        dcs
    }

    fn failing(dcs: Memory, on: fn(&Call) -> bool, fault: Fault) -> Memory {
        dcs.with_faults(Box::new(
            move |call: &Call| {
                if on(call) { fault } else { Fault::None }
            },
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_a_conflict_and_a_failed_store_is_unavailable() {
        let keys = Keys::new("main");
        let scope = |call: &Call| matches!(call, Call::Scope(_));
        let txn = |call: &Call| matches!(call, Call::Txn(..));
        let full = cluster(&keys);
        full.store.lock().nospace = true;
        let rows: Vec<(&str, Memory, &str, StatusCode, &str)> = vec![
            ("written", cluster(&keys), "b", StatusCode::ACCEPTED, ""),
            (
                "no such member",
                cluster(&keys),
                "zz",
                StatusCode::CONFLICT,
                "switchover to `zz` refused: no live member `zz`",
            ),
            (
                "no leader",
                Memory::new(),
                "b",
                StatusCode::CONFLICT,
                "there is no leader",
            ),
            (
                "etcd out of reach",
                failing(cluster(&keys), scope, Fault::Unsent(Duration::ZERO)),
                "b",
                StatusCode::SERVICE_UNAVAILABLE,
                "no etcd endpoint answered",
            ),
            (
                "the write's answer lost",
                failing(cluster(&keys), txn, Fault::AnswerLost(Duration::ZERO)),
                "b",
                StatusCode::SERVICE_UNAVAILABLE,
                "no answer",
            ),
            (
                "etcd refusing writes (NOSPACE)",
                full,
                "b",
                StatusCode::BAD_GATEWAY,
                "database space exceeded",
            ),
        ];
        for (what, dcs, to, status, says) in rows {
            let (got, Json(body)) = asked(ask(&dcs, &keys, 0, to, None).await);
            assert_eq!(got, status, "{what}: {body}");
            if status == StatusCode::ACCEPTED {
                assert_eq!(body["request"]["to"], to, "{what}: {body}");
            } else {
                let error = body["error"].as_str().unwrap_or_default();
                assert!(error.contains(says), "{what}: {body}");
                assert_eq!(
                    body["may_have_been_written"],
                    what == "the write's answer lost",
                    "{what}: {body}"
                );
            }
        }
        // The agent's own failure (the call was not made) is not etcd's.
        let (got, _) = asked(Err(AskError::Store(EtcdError::Local("no client".into()))));
        assert_eq!(got, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancel_is_answered_as_a_switchover_asked_for() {
        let keys = Keys::new("main");
        let get = |call: &Call| matches!(call, Call::Get(_));
        let txn = |call: &Call| matches!(call, Call::Txn(..));
        // A request pending in `cluster`, or one the leader has started.
        let pending = |stage: &str| {
            let dcs = cluster(&keys);
            let text = format!(
                r#"{{"id":"1","from":"a","to":"b","at":null,"stage":"{stage}","lsn":null,"timeline":null}}"#
            );
            dcs.store.lock().put(&keys.switchover, &text, 0).unwrap();
            dcs
        };
        let rows: Vec<(&str, Memory, StatusCode, &str, &str)> = vec![
            ("withdrawn", pending("requested"), StatusCode::OK, "", ""),
            (
                "nothing pending",
                cluster(&keys),
                StatusCode::CONFLICT,
                "refused",
                "no switchover is pending",
            ),
            (
                "under way",
                pending("stopping"),
                StatusCode::CONFLICT,
                "refused",
                "already under way",
            ),
            (
                "etcd out of reach",
                failing(pending("requested"), get, Fault::Unsent(Duration::ZERO)),
                StatusCode::SERVICE_UNAVAILABLE,
                "unreachable",
                "no etcd endpoint answered",
            ),
            (
                "the delete's answer lost",
                failing(pending("requested"), txn, Fault::AnswerLost(Duration::ZERO)),
                StatusCode::SERVICE_UNAVAILABLE,
                "answer-lost",
                "no answer",
            ),
        ];
        for (what, dcs, status, kind, says) in rows {
            let (got, Json(body)) = cancelled(cancel(&dcs, &keys).await);
            assert_eq!(got, status, "{what}: {body}");
            if status == StatusCode::OK {
                assert_eq!(body["cancelled"]["to"], "b", "{what}: {body}");
                assert!(dcs.store.lock().get(&keys.switchover).is_none());
                continue;
            }
            assert_eq!(body["kind"], kind, "{what}: {body}");
            let error = body["error"].as_str().unwrap_or_default();
            assert!(error.contains(says), "{what}: {body}");
            assert_eq!(
                body["may_have_been_written"],
                kind == "answer-lost",
                "{what}: {body}"
            );
        }
        // etcd's refusal and the agent's own failure, as for an ask.
        let refused = EtcdError::Refused("etcdserver: permission denied".into());
        let (got, Json(body)) = cancelled(Err(CancelError::Store(refused)));
        assert_eq!(got, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(body["kind"], "store-refused");
        let (got, _) = cancelled(Err(CancelError::Store(EtcdError::Local(
            "no client".into(),
        ))));
        assert_eq!(got, StatusCode::INTERNAL_SERVER_ERROR);
    }
}

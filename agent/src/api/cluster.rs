//! The cluster mode's side of the status API: `GET /v1/cluster` (the
//! members as this node's loop last read them, like `patronictl list`),
//! and the role endpoints' answers when `[cluster]` is configured — from
//! the leader key, not from a probe: `/v1/role/primary` is 200 only while
//! this node holds the key and its server is an answering primary;
//! `/v1/role/replica` only while its server streams from the current
//! leader within `max_lag` of the leader's last published position.
//! `POST /v1/cluster/switchover` asks for a planned switchover (a control
//! endpoint, like `watchpost cluster switchover`).

use crate::cluster::Cluster;
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
        None => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": "this agent is not in cluster mode (no [cluster] in its config)"}),
            ),
        ),
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

/// `POST /v1/cluster/switchover` `{"to": NODE, "at": TIME?}`: 202 with the
/// request written to etcd (the agents carry it out; its outcome goes to
/// `/watchpost/SCOPE/switchover_result` and the audit logs), 409 with the
/// reason when refused, 400 for a bad time, 404 outside cluster mode.
pub async fn switchover(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<SwitchoverBody>,
) -> Answer {
    let Some(cluster) = shared.cluster() else {
        return (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": "this agent is not in cluster mode (no [cluster] in its config)"}),
            ),
        );
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
    let etcd =
        match crate::cluster::etcd::Etcd::for_cluster(spec, std::time::Duration::from_secs(3)) {
            Ok(etcd) => etcd,
            Err(e) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"error": e.0})),
                );
            }
        };
    let keys = crate::cluster::Keys::new(&spec.scope);
    match crate::cluster::switchover::ask(&etcd, &keys, spec.max_lag_bytes, &body.to, at).await {
        Ok(request) => (StatusCode::ACCEPTED, Json(json!({"request": request}))),
        Err(why) => (StatusCode::CONFLICT, Json(json!({"error": why}))),
    }
}

//! Load-balancer checks, like Patroni's: `GET /v1/role/primary` answers
//! 200 only while this node's database is a healthy primary, and `GET
//! /v1/role/replica?max_lag=BYTES` only while it is a healthy standby
//! within that lag; otherwise 503. HAProxy or pgbouncer route on them.
//!
//! "This node's database" is `[agent] local_target` (or the one target with
//! a `data_dir`). The answer comes from the latest reports of the
//! `pg-alive` probe checking that target (up, accepting sessions, role) and,
//! for replicas, of the `pg-replication` probe watching it as a standby
//! (WAL receiver streaming, replay not paused, and its lag measured from the
//! primary's position: a standby whose stream stalled, which has not heard
//! from the primary for longer than the probe allows, is never healthy,
//! whatever it received). A report older than three intervals counts as no
//! report.

use crate::config::Config;
use crate::daemon::Shared;
use crate::daemon::slot::ProbeSlot;
use crate::report::{Report, Status};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

type Answer = (StatusCode, Json<Value>);

fn unavailable(reason: impl Into<String>) -> Answer {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"healthy": false, "reason": reason.into()})),
    )
}

/// The target whose server runs on this node.
fn local_target(config: &Config) -> Option<String> {
    if let Some(local) = &config.agent.local_target {
        return Some(local.clone());
    }
    let mut with_data_dir = config.targets.iter().filter(|(_, t)| t.data_dir.is_some());
    match (with_data_dir.next(), with_data_dir.next()) {
        (Some((name, _)), None) => Some(name.clone()),
        _ => None,
    }
}

/// The target a probe checks under config key `key` (default `default`).
fn checked_target(slot: &ProbeSlot, key: &str, default: &str) -> String {
    let setup = slot.setup();
    setup
        .spec
        .config
        .get(key)
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// Why no report of a probe can be used: callers tell a node with no such
/// probe (nothing to ask) from one whose probe cannot answer now (it has
/// not reported yet, or its last report is too old: "cannot tell").
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum NoReport {
    #[error("no {probe} probe checks target `{target}`")]
    NoProbe { probe: String, target: String },
    #[error("{0} has not reported yet")]
    NotYet(String),
    #[error("the last report of {name} is {age:.0} s old")]
    Stale { name: String, age: f64 },
}

/// The latest fresh report of the first probe built from `probe` that
/// checks `target` under `key`, with the probe's name.
fn latest(
    shared: &Shared,
    probe: &str,
    key: &str,
    default: &str,
    target: &str,
) -> Result<(String, Report), NoReport> {
    let slot = shared
        .slots()
        .into_values()
        .find(|slot| {
            slot.setup().probe.info.name == probe && checked_target(slot, key, default) == target
        })
        .ok_or_else(|| NoReport::NoProbe {
            probe: probe.to_string(),
            target: target.to_string(),
        })?;
    let every = slot.setup().spec.every;
    let state = slot.state();
    let report = state
        .last_report
        .clone()
        .ok_or_else(|| NoReport::NotYet(slot.name.clone()))?;
    let age = state
        .last_run
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or(Duration::MAX);
    if age > every.saturating_mul(3).max(Duration::from_secs(10)) {
        return Err(NoReport::Stale {
            name: slot.name.clone(),
            age: age.as_secs_f64(),
        });
    }
    Ok((slot.name.clone(), report))
}

/// `/v1/role/replica`'s answer when no `pg-replication` report can be
/// used: `None` (healthy on `pg-alive`'s word) only for a node no such
/// probe watches and only without `max_lag`; a probe that has not
/// reported, or whose report is stale, cannot tell whether the stream
/// runs, so the answer is 503 with the reason.
fn without_replication_report(missing: &NoReport, max_lag: Option<u64>) -> Option<String> {
    match (missing, max_lag) {
        (NoReport::NoProbe { .. }, None) => None,
        (_, Some(_)) => Some(format!("cannot tell the lag: {missing}")),
        (_, None) => Some(format!(
            "cannot tell whether the standby streams: {missing}"
        )),
    }
}

fn value(report: &Report, name: &str) -> Option<f64> {
    report
        .measurements
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value)
}

/// pg-alive's verdict on the local server: (probe name, in recovery?).
fn alive(shared: &Shared) -> Result<(String, String, bool), String> {
    let config = shared.config();
    let target = local_target(&config).ok_or("no local target: set `local_target` in [agent] (the target whose server runs on this node)")?;
    let (probe, report) =
        latest(shared, "pg-alive", "target", "primary", &target).map_err(|e| e.to_string())?;
    if report.status != Status::Ok {
        return Err(format!("{probe} is {}: {}", report.status, report.message));
    }
    if value(&report, "postgresql.accepting_connections").unwrap_or(1.0) < 1.0 {
        return Err(format!("{probe}: the server refuses new sessions"));
    }
    let recovery = value(&report, "postgresql.is_in_recovery")
        .ok_or_else(|| format!("{probe} did not report the server's role"))?;
    Ok((target, probe, recovery >= 1.0))
}

/// `GET /v1/role/primary`.
pub async fn primary(State(shared): State<Arc<Shared>>) -> Answer {
    if let Some(answer) = super::cluster::primary(&shared) {
        return answer;
    }
    match alive(&shared) {
        Ok((target, probe, false)) => (
            StatusCode::OK,
            Json(json!({"healthy": true, "role": "primary", "target": target, "probe": probe})),
        ),
        Ok((target, _, true)) => unavailable(format!("`{target}` is a standby, not a primary")),
        Err(reason) => unavailable(reason),
    }
}

#[derive(Deserialize)]
pub struct ReplicaQuery {
    /// Most bytes the standby may be behind the primary.
    max_lag: Option<u64>,
}

/// The standby's lag in bytes as pg-replication measured it: from the
/// primary's position (`standby.lag_bytes`), never only from what the
/// standby received. A probe that reports how long ago the standby heard
/// from the primary but no lag found the stream stalled: no lag can be
/// trusted then (an error). A probe of an older version that reports
/// neither gives the received-but-not-replayed gap.
fn standby_lag(report: &Report) -> Result<Option<f64>, String> {
    if let Some(lag) = value(report, "postgresql.replication.standby.lag_bytes") {
        return Ok(Some(lag));
    }
    if let Some(age) = value(report, "postgresql.replication.standby.contact_age") {
        return Err(format!(
            "the standby has not heard from the primary for {age:.0} s: its stream is stalled \
             and its lag unknown"
        ));
    }
    Ok(value(
        report,
        "postgresql.replication.standby.receive_replay_gap",
    ))
}

/// `GET /v1/role/replica?max_lag=BYTES`.
pub async fn replica(State(shared): State<Arc<Shared>>, Query(q): Query<ReplicaQuery>) -> Answer {
    if let Some(answer) = super::cluster::replica(&shared, q.max_lag) {
        return answer;
    }
    let (target, probe) = match alive(&shared) {
        Ok((target, probe, true)) => (target, probe),
        Ok((target, _, false)) => {
            return unavailable(format!("`{target}` is a primary, not a standby"));
        }
        Err(reason) => return unavailable(reason),
    };
    let (replication, report) = match latest(
        &shared,
        "pg-replication",
        "standby",
        "standby",
        &target,
    ) {
        Ok(found) => found,
        Err(missing) => {
            return match without_replication_report(&missing, q.max_lag) {
                Some(reason) => unavailable(reason),
                None => (
                    StatusCode::OK,
                    Json(
                        json!({"healthy": true, "role": "replica", "target": target, "probe": probe}),
                    ),
                ),
            };
        }
    };
    if value(&report, "postgresql.replication.standby.streaming") == Some(0.0) {
        return unavailable(format!("{replication}: the WAL receiver is not streaming"));
    }
    if value(&report, "postgresql.replication.standby.replay_paused") == Some(1.0) {
        return unavailable(format!("{replication}: replay is paused"));
    }
    let lag = match standby_lag(&report) {
        Ok(lag) => lag,
        Err(reason) => return unavailable(format!("{replication}: {reason}")),
    };
    if let Some(max) = q.max_lag {
        match lag {
            Some(lag) if lag > max as f64 => {
                return unavailable(format!(
                    "{replication}: {lag:.0} bytes behind the primary, more than max_lag = {max}"
                ));
            }
            None => return unavailable(format!("{replication} did not report the standby's lag")),
            _ => {}
        }
    }
    (
        StatusCode::OK,
        Json(
            json!({"healthy": true, "role": "replica", "target": target, "probe": probe, "lag_bytes": lag}),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(values: &[(&str, f64)]) -> Report {
        Report::with_values(Status::Ok, values)
    }

    #[test]
    fn the_lag_is_the_one_from_the_primary_and_a_stalled_stream_has_none() {
        let gap = "postgresql.replication.standby.receive_replay_gap";
        let lag = "postgresql.replication.standby.lag_bytes";
        let contact = "postgresql.replication.standby.contact_age";
        // The stalled WAL sender: nothing unreplayed, 21.9 MiB behind.
        let stalled = report(&[(gap, 0.0), (lag, 22_963_814.0), (contact, 0.5)]);
        assert_eq!(standby_lag(&stalled), Ok(Some(22_963_814.0)));
        let silent = report(&[(gap, 0.0), (contact, 34.0)]);
        let reason = standby_lag(&silent).unwrap_err();
        assert!(
            reason.contains("has not heard from the primary for 34 s"),
            "{reason}"
        );
        assert_eq!(standby_lag(&report(&[(gap, 7.0)])), Ok(Some(7.0)));
    }

    #[test]
    fn only_a_standby_no_replication_probe_watches_is_judged_without_its_report() {
        let no_probe = NoReport::NoProbe {
            probe: "pg-replication".into(),
            target: "local".into(),
        };
        let not_yet = NoReport::NotYet("replication".into());
        let stale = NoReport::Stale {
            name: "replication".into(),
            age: 95.0,
        };
        assert_eq!(without_replication_report(&no_probe, None), None);
        // A probe that watches the standby but cannot answer now cannot
        // vouch for its stream, with or without max_lag.
        for missing in [&not_yet, &stale] {
            let reason = without_replication_report(missing, None).unwrap();
            assert!(
                reason.contains("cannot tell whether the standby streams"),
                "{reason}"
            );
        }
        assert_eq!(
            without_replication_report(&stale, None).unwrap(),
            "cannot tell whether the standby streams: the last report of replication is 95 s old"
        );
        for missing in [&no_probe, &not_yet, &stale] {
            let reason = without_replication_report(missing, Some(1024)).unwrap();
            assert!(reason.starts_with("cannot tell the lag: "), "{reason}");
        }
    }
}

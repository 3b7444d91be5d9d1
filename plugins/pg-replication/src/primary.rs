//! The primary's side: `pg_stat_replication`, one row per WAL sender.
//!
//! Not every WAL sender is a standby: `pg_receivewal` (a WAL archiver) and
//! `pg_basebackup` stream WAL too but replay nothing. A row counts as a
//! standby unless its `application_name` is one of `not_standbys`
//! (default `pg_receivewal, pg_basebackup, pg_recvlogical`), its state is
//! `backup`, or it streams without ever reporting a replay position
//! (flushes WAL, replays none: what a WAL archiver does). Those are named
//! in a note and counted apart.
//!
//! A role without `pg_monitor` sees the rows but not their state or
//! positions: the part is then `unknown`, naming the privilege, rather than
//! "0 standbys streaming".

use crate::{Limits, bytes};
use watchpost_probe::{Findings, Result, Status, config, measurement, sql};

const STANDBYS: &str = "\
SELECT application_name, client_addr::text AS client_addr, client_port, state, \
       replay_lsn IS NULL AND flush_lsn IS NOT NULL AS replays_nothing, \
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS lag_bytes, \
       extract(epoch FROM replay_lag)::float8 AS replay_lag \
FROM pg_stat_replication \
ORDER BY application_name, client_addr, client_port";

/// One standby as the primary sees it.
struct Standby {
    /// `application_name` (the standby's `cluster_name` or
    /// `primary_conninfo` setting).
    name: String,
    /// `client_addr:client_port`.
    address: String,
    /// How measurements and messages name it: the name, made unique with
    /// the address when standbys share a name.
    label: String,
    state: String,
    lag_bytes: Option<f64>,
    replay_lag: Option<f64>,
}

pub fn check(target: &str, limits: &Limits, findings: &mut Findings) -> Result<()> {
    let role = sql::query(target, "SELECT pg_is_in_recovery() AS in_recovery", &[])?;
    if role.first()?.bool("in_recovery")?.unwrap_or(false) {
        findings.problem(
            Status::Critical,
            format!(
                "{target} is in recovery (a standby), not a primary: check for a failover or the \
                 probe's `primary` target"
            ),
        );
        return Ok(());
    }
    if !sql::sees_all_stats(target)? {
        return Err(sql::needs_pg_monitor(
            target,
            "the standbys' replication state",
        ));
    }
    let rows = sql::query(target, STANDBYS, &[])?;
    let not_standbys = not_standbys();
    let mut standbys = Vec::new();
    let mut others = Vec::new();
    for row in rows.iter() {
        let name = match row.text("application_name")? {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => "unnamed".to_string(),
        };
        let state = row.text("state")?.unwrap_or("unknown");
        let replays_nothing = state == "streaming" && row.bool("replays_nothing")? == Some(true);
        if not_standbys.contains(&name) || state == "backup" || replays_nothing {
            others.push(format!("{name} ({state})"));
            continue;
        }
        standbys.push(Standby {
            name,
            address: format!(
                "{}:{}",
                row.text("client_addr")?.unwrap_or("local"),
                row.int("client_port")?.unwrap_or(0)
            ),
            label: String::new(),
            state: row.text("state")?.unwrap_or("unknown").to_string(),
            lag_bytes: row.float("lag_bytes")?,
            replay_lag: row.float("replay_lag")?,
        });
    }
    label(&mut standbys);
    if !others.is_empty() {
        findings.note(format!(
            "{target}: WAL senders that are not standbys (replay nothing): {}",
            others.join(", ")
        ));
    }

    let streaming = standbys.iter().filter(|s| s.state == "streaming").count();
    findings.push(measurement(
        "postgresql.replication.standbys",
        streaming as f64,
        "1",
    ));
    if (streaming as u64) < u64::from(limits.min_standbys) {
        findings.problem(
            Status::Critical,
            format!(
                "{target}: {streaming} standby streaming, `min_standbys` is {}",
                limits.min_standbys
            ),
        );
    }
    for standby in &standbys {
        report_standby(target, standby, limits, findings);
    }
    if standbys.is_empty() {
        findings.note(format!("{target}: no standby connected"));
    }
    Ok(())
}

/// The `application_name`s that are never standbys (config `not_standbys`).
fn not_standbys() -> Vec<String> {
    let configured = config::list("not_standbys");
    if config::raw("not_standbys").is_some() {
        configured
    } else {
        ["pg_receivewal", "pg_basebackup", "pg_recvlogical"]
            .map(String::from)
            .to_vec()
    }
}

/// Label standbys by name; standbys that share one are told apart by
/// their address (`walreceiver@127.0.0.1:5433`).
fn label(standbys: &mut [Standby]) {
    let names: Vec<String> = standbys.iter().map(|s| s.name.clone()).collect();
    for standby in standbys.iter_mut() {
        let shared = names.iter().filter(|n| **n == standby.name).count() > 1;
        standby.label = if shared {
            format!("{}@{}", standby.name, standby.address)
        } else {
            standby.name.clone()
        };
    }
}

fn report_standby(target: &str, standby: &Standby, limits: &Limits, findings: &mut Findings) {
    let label = &standby.label;
    if standby.state != "streaming" {
        findings.problem(
            Status::Warning,
            format!("{target}: standby {label} is in state `{}`", standby.state),
        );
    }
    let Some(lag) = standby.lag_bytes else {
        findings.note(format!(
            "{target}: standby {label} reports no replay position yet (or the role lacks pg_monitor)"
        ));
        return;
    };
    findings.push(
        measurement("postgresql.replication.lag_bytes", lag, "By").attr("standby", label.as_str()),
    );
    // A caught-up, idle standby has no lag time (NULL): it is zero.
    let delay = standby
        .replay_lag
        .or(if lag <= 0.0 { Some(0.0) } else { None });
    if let Some(delay) = delay {
        findings.push(
            measurement("postgresql.replication.replay_lag", delay, "s")
                .attr("standby", label.as_str()),
        );
    }
    let lag_status = limits.lag_bytes.status(lag);
    let delay_status = delay.map_or(Status::Ok, |d| limits.delay_seconds.status(d));
    let status = lag_status.worst(delay_status);
    let delay_text = delay.map_or(String::new(), |d| format!(" / {d:.1} s"));
    let text = format!(
        "{target}: standby {label} {}, replay {}{delay_text} behind",
        standby.state,
        bytes(lag)
    );
    if status == Status::Ok {
        findings.note(text);
    } else {
        findings.problem(
            status,
            format!(
                "{text} (limits {} / {}, {} / {} s)",
                bytes(limits.lag_bytes.warning),
                bytes(limits.lag_bytes.critical),
                limits.delay_seconds.warning,
                limits.delay_seconds.critical
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standby(name: &str, address: &str) -> Standby {
        Standby {
            name: name.into(),
            address: address.into(),
            label: String::new(),
            state: "streaming".into(),
            lag_bytes: Some(0.0),
            replay_lag: None,
        }
    }

    #[test]
    fn standbys_sharing_a_name_are_told_apart_by_address() {
        let mut standbys = vec![
            standby("walreceiver", "10.0.0.2:5000"),
            standby("walreceiver", "10.0.0.3:5000"),
            standby("db-3", "10.0.0.4:5000"),
        ];
        label(&mut standbys);
        let labels: Vec<&str> = standbys.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "walreceiver@10.0.0.2:5000",
                "walreceiver@10.0.0.3:5000",
                "db-3"
            ]
        );
    }
}

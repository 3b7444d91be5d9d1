//! The standby's side: how far replay is behind what was received, how
//! old the last replayed transaction is, whether replay is paused, and
//! whether the WAL receiver streams.

use crate::{Limits, bytes};
use std::time::{Duration, Instant};
use watchpost_probe::sql::{self, Value};
use watchpost_probe::{Findings, Result, Status, measurement};

/// Replay state; only valid in recovery (the functions fail otherwise).
/// The replay delay is 0 while everything received is replayed: an idle
/// primary sends no transactions, and the age of the last one says
/// nothing then.
const REPLAY: &str = "\
SELECT pg_last_wal_receive_lsn()::text AS received, \
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 AS gap, \
       CASE WHEN pg_last_wal_receive_lsn() IS NULL \
                 OR pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() THEN 0 \
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) \
       END::float8 AS delay, \
       pg_is_wal_replay_paused() AS paused, \
       (SELECT status FROM pg_stat_wal_receiver) AS receiver";

/// How long a standby that looks behind gets to reach what it had
/// received, before its gap and delay count, and how often to look.
const SETTLE: Duration = Duration::from_secs(1);
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// One reading of the standby's replay state.
struct Replay {
    received: Option<String>,
    gap: Option<f64>,
    delay: f64,
    paused: bool,
    receiver: Option<String>,
}

fn read(target: &str) -> Result<Replay> {
    let rows = sql::query(target, REPLAY, &[])?;
    let row = rows.first()?;
    Ok(Replay {
        received: row.text("received")?.map(String::from),
        gap: row.float("gap")?,
        delay: row.float("delay")?.unwrap_or(0.0).max(0.0),
        paused: row.bool("paused")?.unwrap_or(false),
        receiver: row.text("receiver")?.map(String::from),
    })
}

/// A standby a little behind is usually just replaying what it received a
/// moment ago (or waiting for the rest of a record split across pages): its
/// "delay" then is the age of the last transaction, which can be hours on a
/// quiet primary. Give it [`SETTLE`] to reach what it had received; if it
/// does, it is caught up.
fn settle(target: &str, first: Replay, limits: &Limits) -> Result<Replay> {
    let behind = first.gap.is_some_and(|g| g > 0.0);
    let alarming = limits.delay_seconds.status(first.delay) != Status::Ok
        || first
            .gap
            .is_some_and(|g| limits.lag_bytes.status(g) != Status::Ok);
    let Some(received) = first.received.clone() else {
        return Ok(first);
    };
    if !behind || !alarming || first.paused {
        return Ok(first);
    }
    let started = Instant::now();
    while started.elapsed() < SETTLE {
        std::thread::sleep(SETTLE_POLL);
        let caught_up = sql::query(
            target,
            "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn AS caught_up",
            &[Value::Text(received.clone())],
        )?;
        if caught_up.first()?.bool("caught_up")? == Some(true) {
            return read(target);
        }
    }
    read(target)
}

pub fn check(target: &str, limits: &Limits, findings: &mut Findings) -> Result<()> {
    let role = sql::query(target, "SELECT pg_is_in_recovery() AS in_recovery", &[])?;
    if !role.first()?.bool("in_recovery")?.unwrap_or(false) {
        findings.problem(
            Status::Critical,
            format!(
                "{target} is not in recovery: it was promoted or is a primary, so it replicates \
                 nothing"
            ),
        );
        return Ok(());
    }
    let replay = settle(target, read(target)?, limits)?;
    let (gap, delay, paused) = (replay.gap, replay.delay, replay.paused);
    let receiver = replay.receiver.as_deref();
    let streaming = receiver == Some("streaming");

    findings.push(measurement(
        "postgresql.replication.standby.streaming",
        f64::from(u8::from(streaming)),
        "1",
    ));
    findings.push(measurement(
        "postgresql.replication.standby.replay_paused",
        f64::from(u8::from(paused)),
        "1",
    ));
    findings.push(measurement(
        "postgresql.replication.standby.replay_delay",
        delay,
        "s",
    ));
    if let Some(gap) = gap {
        findings.push(measurement(
            "postgresql.replication.standby.receive_replay_gap",
            gap,
            "By",
        ));
    }

    if !streaming {
        findings.problem(
            Status::Critical,
            format!(
                "{target}: the WAL receiver is {}",
                receiver.map_or("not running".to_string(), |s| format!(
                    "`{s}`, not streaming"
                ))
            ),
        );
    }
    if paused {
        findings.problem(
            Status::Warning,
            format!("{target}: replay is paused (pg_wal_replay_resume() resumes it)"),
        );
    }
    let gap_status = gap.map_or(Status::Ok, |g| limits.lag_bytes.status(g));
    let delay_status = limits.delay_seconds.status(delay);
    let behind = format!(
        "replay {} / {delay:.1} s behind what it received",
        gap.map_or("?".to_string(), bytes)
    );
    let status = gap_status.worst(delay_status);
    if status != Status::Ok {
        findings.problem(status, format!("{target}: {behind}"));
    } else if streaming && !paused {
        findings.note(format!("{target}: streaming, {behind}"));
    }
    Ok(())
}

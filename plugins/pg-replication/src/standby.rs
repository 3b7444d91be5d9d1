//! The standby's side: how far it is behind the primary, how far replay is
//! behind what was received, how long ago it last heard from the primary,
//! whether replay is paused, and whether the WAL receiver streams.
//!
//! Lag is measured from the primary's side of the stream, never only from
//! what the standby happened to receive (a stalled WAL sender sends
//! nothing, so "received = replayed" proves nothing):
//! - with the primary granted too, `postgresql.replication.standby.lag_bytes`
//!   is the primary's flushed WAL position minus the standby's replay
//!   position, and the replay delay is the primary's own `replay_lag` for
//!   this standby (it keeps growing while replay is stuck);
//! - on the standby alone, the lag is measured from the last position the
//!   primary reported (`pg_stat_wal_receiver.latest_end_lsn`), and only
//!   while the standby has heard from the primary recently
//!   (`postgresql.replication.standby.contact_age`): an idle primary still
//!   answers the receiver's ping every `wal_receiver_timeout / 2`, so
//!   silence past that plus `wal_receiver_status_interval` means the
//!   stream is stalled and the lag is unknown (no `lag_bytes`; a warning).
//!
//! The replay delay is 0 while everything received is replayed. Otherwise,
//! without the primary, it is the age of the last replayed transaction: an
//! upper bound that counts the primary's idle time before the WAL not yet
//! replayed (the message says so; grant the primary for the exact value).

use crate::{Limits, bytes};
use std::time::{Duration, Instant};
use watchpost_probe::sql::{self, Value};
use watchpost_probe::{Findings, Result, Status, config, measurement};

/// Replay state; only valid in recovery (the functions fail otherwise).
const REPLAY: &str = "\
SELECT pg_last_wal_receive_lsn()::text AS received, \
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 AS gap, \
       CASE WHEN pg_last_wal_receive_lsn() IS NULL \
                 OR pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() THEN 0 \
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) \
       END::float8 AS delay, \
       pg_is_wal_replay_paused() AS paused, \
       r.status AS receiver, \
       greatest(pg_wal_lsn_diff(r.latest_end_lsn, pg_last_wal_replay_lsn()), 0)::float8 \
         AS behind_last_known, \
       extract(epoch FROM now() - r.last_msg_receipt_time)::float8 AS contact_age, \
       substring(r.conninfo FROM 'application_name=([^ ]+)') AS application_name, \
       (SELECT setting::float8 / 1000 FROM pg_settings WHERE name = 'wal_receiver_timeout') \
         AS receiver_timeout, \
       (SELECT setting::float8 FROM pg_settings WHERE name = 'wal_receiver_status_interval') \
         AS status_interval, \
       current_setting('cluster_name') AS cluster_name \
FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver r ON true";

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
    behind_last_known: Option<f64>,
    contact_age: Option<f64>,
    /// The name the primary knows this standby by.
    name: String,
    /// Seconds of silence from the primary after which the stream is stalled.
    contact_limit: f64,
}

fn read(target: &str) -> Result<Replay> {
    let rows = sql::query(target, REPLAY, &[])?;
    let row = rows.first()?;
    let receiver_timeout = row.float("receiver_timeout")?.unwrap_or(60.0);
    let status_interval = row.float("status_interval")?.unwrap_or(10.0);
    // The receiver pings an idle primary after half its timeout; allow the
    // status interval and a second for the answer.
    let derived = if receiver_timeout > 0.0 {
        receiver_timeout / 2.0 + status_interval.max(0.0) + 1.0
    } else {
        60.0
    };
    let name = row
        .text("application_name")?
        .filter(|n| !n.is_empty())
        .or(row.text("cluster_name")?.filter(|n| !n.is_empty()))
        .unwrap_or("walreceiver")
        .to_string();
    Ok(Replay {
        received: row.text("received")?.map(String::from),
        gap: row.float("gap")?,
        delay: row.float("delay")?.unwrap_or(0.0).max(0.0),
        paused: row.bool("paused")?.unwrap_or(false),
        receiver: row.text("receiver")?.map(String::from),
        behind_last_known: row.float("behind_last_known")?,
        contact_age: row.float("contact_age")?.map(|a| a.max(0.0)),
        name,
        contact_limit: config::get_or("contact_limit", derived)?,
    })
}

/// A standby a little behind is usually just replaying what it received a
/// moment ago: give it [`SETTLE`] to reach what it had received; if it
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

/// What the primary knows of this standby: its flushed WAL position (read
/// before the standby's replay position, so the lag is never understated
/// by the time between the two reads) and its `replay_lag` for the
/// standby.
struct PrimaryView {
    flushed: String,
    replay_lag: Option<f64>,
}

fn primary_view(primary: &str, name: &str) -> Result<Option<PrimaryView>> {
    let rows = sql::query(
        primary,
        "SELECT pg_current_wal_flush_lsn()::text AS flushed, \
                (SELECT extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication \
                  WHERE application_name = $1 ORDER BY replay_lag DESC NULLS LAST LIMIT 1) \
                  AS replay_lag \
         WHERE NOT pg_is_in_recovery()",
        &[Value::Text(name.to_string())],
    )?;
    let Some(row) = rows.iter().next() else {
        return Ok(None);
    };
    Ok(row.text("flushed")?.map(|flushed| PrimaryView {
        flushed: flushed.to_string(),
        replay_lag: row.float("replay_lag").ok().flatten(),
    }))
}

pub fn check(
    target: &str,
    primary: Option<&str>,
    limits: &Limits,
    findings: &mut Findings,
) -> Result<()> {
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
    if !sql::sees_all_stats(target)? {
        return Err(sql::needs_pg_monitor(target, "the WAL receiver's state"));
    }
    let first = read(target)?;
    // The primary's position first, then the standby's replay position.
    let view = match primary {
        Some(primary) => primary_view(primary, &first.name).unwrap_or_else(|e| {
            findings.note(format!("cannot ask the primary `{primary}`: {e}"));
            None
        }),
        None => None,
    };
    let replay = settle(target, first, limits)?;
    let receiver = replay.receiver.as_deref();
    let streaming = receiver == Some("streaming");
    let paused = replay.paused;
    let stalled = replay
        .contact_age
        .is_some_and(|age| age > replay.contact_limit);

    let (lag, source) = match &view {
        Some(view) => {
            let rows = sql::query(
                target,
                "SELECT greatest(pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn()), 0)\
                 ::float8 AS lag",
                &[Value::Text(view.flushed.clone())],
            )?;
            (rows.first()?.float("lag")?, "primary")
        }
        None if streaming && !stalled => (replay.behind_last_known, "receiver"),
        None => (None, "receiver"),
    };
    let (delay, exact) = match view.as_ref() {
        Some(_) if replay.gap.unwrap_or(0.0) <= 0.0 && lag.unwrap_or(0.0) <= 0.0 => (0.0, true),
        Some(PrimaryView {
            replay_lag: Some(lag),
            ..
        }) => (*lag, true),
        _ => (replay.delay, replay.delay == 0.0),
    };

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
    if let Some(gap) = replay.gap {
        findings.push(measurement(
            "postgresql.replication.standby.receive_replay_gap",
            gap,
            "By",
        ));
    }
    if let Some(age) = replay.contact_age {
        findings.push(measurement(
            "postgresql.replication.standby.contact_age",
            age,
            "s",
        ));
    }
    if let Some(lag) = lag {
        findings.push(
            measurement("postgresql.replication.standby.lag_bytes", lag, "By")
                .attr("source", source),
        );
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
    } else if stalled && view.is_none() {
        findings.problem(
            Status::Warning,
            format!(
                "{target}: has not heard from the primary for {:.0} s (limit {:.0} s): the \
                 stream is stalled and its lag unknown",
                replay.contact_age.unwrap_or(0.0),
                replay.contact_limit
            ),
        );
    }
    if paused {
        findings.problem(
            Status::Warning,
            format!("{target}: replay is paused (pg_wal_replay_resume() resumes it)"),
        );
    }
    let worst_lag = lag
        .into_iter()
        .chain(replay.gap)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let lag_status = worst_lag.map_or(Status::Ok, |g| limits.lag_bytes.status(g));
    let delay_status = limits.delay_seconds.status(delay);
    let behind = format!(
        "{} behind the primary ({source}), replay {} behind what it received, delay {delay:.1} s{}",
        lag.map_or("?".to_string(), bytes),
        replay.gap.map_or("?".to_string(), bytes),
        if exact {
            ""
        } else {
            " (upper bound: age of the last replayed transaction)"
        }
    );
    let status = lag_status.worst(delay_status);
    if status != Status::Ok {
        findings.problem(status, format!("{target}: {behind}"));
    } else if streaming && !paused {
        findings.note(format!("{target}: streaming, {behind}"));
    }
    Ok(())
}

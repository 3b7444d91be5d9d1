//! `pg-replication`: is streaming replication healthy, seen from the
//! primary and from the standby?
//!
//! On the primary (`pg_stat_replication`), per connected standby: its state,
//! how far its replay is behind the primary's WAL in bytes
//! (`postgresql.replication.lag_bytes` {standby}) and in time
//! (`postgresql.replication.replay_lag` {standby}), and how many standbys
//! stream (`postgresql.replication.standbys`). On the standby: the gap
//! between WAL received and WAL replayed, how old the last replayed
//! transaction is when replay is behind, whether replay is paused and
//! whether the WAL receiver streams (`postgresql.replication.standby.*`).
//! Either side is checked when the probe has its target; both when it has
//! both. A standby that looks behind past a limit gets up to a second to
//! replay what it had already received before it counts (on a quiet
//! primary the age of the last transaction is no measure of delay).
//!
//! Lag on the standby side is measured from the primary's position, and
//! from a standby that has not heard from the primary recently it is
//! unknown, never 0 (see `standby.rs`). WAL senders that replay nothing
//! (`pg_receivewal`, `pg_basebackup`) are not standbys (see `primary.rs`).
//! Each side stands alone: one that cannot be read is `unknown` with the
//! reason (a missing `pg_monitor` is named), the other keeps reporting.
//!
//! Statuses: fewer streaming standbys than `min_standbys`, a standby side
//! that is not streaming or not in recovery, or a primary side in recovery
//! are `critical`; a standby that is not streaming yet (e.g. `catchup`)
//! or whose replay is paused is `warning`; lags follow their limits.
//!
//! Config (defaults in brackets):
//! - `primary` / `standby`: the targets [`primary` / `standby`, each used
//!   when granted].
//! - `min_standbys`: streaming standbys the primary must have [1].
//! - `lag_warning` / `lag_critical`: bytes of WAL not yet replayed
//!   [16777216 (16 MiB) / 268435456 (256 MiB)].
//! - `delay_warning` / `delay_critical`: seconds replay is behind
//!   [30 / 300].
//! - `not_standbys`: `application_name`s that are never standbys
//!   [`pg_receivewal, pg_basebackup, pg_recvlogical`].
//! - `contact_limit`: seconds without a message from the primary after
//!   which a standby's stream counts as stalled [`wal_receiver_timeout / 2
//!   + wal_receiver_status_interval + 1`, 41 with the defaults].
//!
//! The role needs `pg_monitor` (or `pg_read_all_stats`) to see other
//! sessions' replication details.

mod primary;
mod standby;

use watchpost_probe::{Findings, Info, Kind, Probe, Report, Result, Threshold, bail, config, sql};

struct PgReplication;

/// The limits both sides apply.
pub(crate) struct Limits {
    pub lag_bytes: Threshold,
    pub delay_seconds: Threshold,
    pub min_standbys: u32,
}

impl Limits {
    fn from_config() -> Result<Self> {
        Ok(Limits {
            lag_bytes: Threshold::above(16.0 * 1024.0 * 1024.0, 256.0 * 1024.0 * 1024.0)
                .configured("lag_warning", "lag_critical")?,
            delay_seconds: Threshold::above(30.0, 300.0)
                .configured("delay_warning", "delay_critical")?,
            min_standbys: config::get_or("min_standbys", 1)?,
        })
    }
}

/// Bytes in a short human form: `512 B`, `3.2 MiB`.
pub(crate) fn bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl Probe for PgReplication {
    fn describe() -> Info {
        Info::new(
            "pg-replication",
            Kind::Availability,
            "PostgreSQL streaming replication: standbys, lag, replay and WAL receiver",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "postgresql.replication.lag_bytes",
            "By",
            "WAL the standby has not replayed yet, per standby (seen on the primary)",
        )
        .measures(
            "postgresql.replication.replay_lag",
            "s",
            "time the standby's replay is behind, per standby (seen on the primary)",
        )
        .measures(
            "postgresql.replication.standbys",
            "1",
            "standbys streaming from the primary",
        )
        .measures(
            "postgresql.replication.standby.receive_replay_gap",
            "By",
            "WAL the standby received but has not replayed",
        )
        .measures(
            "postgresql.replication.standby.replay_delay",
            "s",
            "age of the last replayed transaction while replay is behind (0 when caught up)",
        )
        .measures(
            "postgresql.replication.standby.lag_bytes",
            "By",
            "WAL the standby has not replayed, from the primary's flushed position (primary \
             granted) or the last position the primary reported to it",
        )
        .measures(
            "postgresql.replication.standby.contact_age",
            "s",
            "seconds since the standby last heard from the primary",
        )
        .measures(
            "postgresql.replication.standby.replay_paused",
            "1",
            "1 when replay is paused on the standby",
        )
        .measures(
            "postgresql.replication.standby.streaming",
            "1",
            "1 when the standby's WAL receiver is streaming",
        )
    }

    fn check() -> Result<Report> {
        let limits = Limits::from_config()?;
        let primary = sql::optional_target("primary", "primary")?;
        let standby = sql::optional_target("standby", "standby")?;
        if primary.is_none() && standby.is_none() {
            bail!(
                "no target to check: grant the probe a target named `primary` and/or `standby`, \
                 or name them with `primary = \"...\"` / `standby = \"...\"` in its config"
            );
        }
        // Each side stands alone: a primary that cannot be reached (or
        // read) leaves the standby's side reporting, and the other way.
        let mut findings = Findings::new();
        if let Some(target) = &primary {
            findings.part(&format!("primary `{target}`"), |f| {
                primary::check(target, &limits, f)
            });
        }
        if let Some(target) = &standby {
            findings.part(&format!("standby `{target}`"), |f| {
                standby::check(target, primary.as_deref(), &limits, f)
            });
        }
        Ok(findings.into_report())
    }
}

watchpost_probe::export_probe!(PgReplication);

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1023.0), "1023 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
    }
}

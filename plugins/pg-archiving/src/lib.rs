//! `pg-archiving`: is WAL leaving the server the way recovery needs it —
//! archived to the backup repository, and not piling up behind a forgotten
//! replication slot?
//!
//! - Archiver (`pg_stat_archiver`): a failure newer than the last success
//!   means the archiver is stuck on that segment (it retries forever and
//!   `pg_wal` grows): `critical`, naming the segment. The cumulative
//!   counters are measurements (`postgresql.archiver.failed_count`,
//!   `postgresql.archiver.archived_count`), so failed attempts since the
//!   previous run are the counter's increase, computed downstream (a rate
//!   in Prometheus), not remembered by the probe. The age of the last
//!   archived segment (`postgresql.archiver.last_archived_age`) has limits
//!   only when configured (a quiet server switches WAL rarely unless
//!   `archive_timeout` is set). `archive_mode` off is `warning` (a node
//!   whose backups need the archive cannot be recovered to a point in time).
//! - Segments waiting (`pg_ls_archive_statusdir()`, the `.ready` files):
//!   `postgresql.archiver.pending_segments`, and the age of the oldest
//!   (`postgresql.archiver.oldest_waiting_age`, from its `.ready` file's
//!   time): an archiver that hangs (an `archive_command` that never
//!   returns fails nothing, so `stuck` stays 0) is caught by it. The
//!   message names the oldest segment and says whether anything was
//!   archived since it became ready (no progress of `archived_count`).
//! - Replication slots (`pg_replication_slots`): WAL each keeps
//!   (`postgresql.replication_slot.wal_retained` {slot}), whether it is in
//!   use (`postgresql.replication_slot.active` {slot}); an inactive slot
//!   keeping more than the limits is reported by name; `wal_status`
//!   `unreserved` (its WAL is about to be removed) is `warning`, `lost`
//!   (removed: the consumer cannot resume) is `critical`.
//!
//! Config (defaults in brackets):
//! - `target`: the server to check [`primary`].
//! - `archive_off`: the status when `archive_mode` is off: `ok`,
//!   `warning` or `critical` [`warning`].
//! - `pending_warning` / `pending_critical`: segments waiting [16 / 128].
//! - `waiting_warning` / `waiting_critical`: seconds the oldest segment
//!   has waited to be archived [600 (10 min) / 3600 (1 h)].
//! - `age_warning` / `age_critical`: seconds since the last archived
//!   segment [none].
//! - `slot_warning` / `slot_critical`: bytes of WAL an inactive slot may
//!   keep [33554432 (32 MiB) / 1073741824 (1 GiB)].
//!
//! The role needs `pg_monitor` (for `pg_ls_archive_statusdir`).

use watchpost_probe::{
    Error, Findings, Info, Kind, Probe, Report, Result, Status, Threshold, config, measurement, sql,
};

struct PgArchiving;

const ARCHIVER: &str = "\
SELECT current_setting('archive_mode') AS mode, \
       archived_count, failed_count, last_archived_wal, last_failed_wal, \
       extract(epoch FROM now() - last_archived_time)::float8 AS archived_age, \
       (last_failed_time IS NOT NULL AND \
        (last_archived_time IS NULL OR last_failed_time > last_archived_time)) AS stuck, \
       to_char(last_failed_time, 'YYYY-MM-DD HH24:MI:SS TZ') AS failed_at \
FROM pg_stat_archiver";

/// The segments waiting (`.ready`), the oldest of them and its age, and
/// whether anything was archived since it became ready: the archiver works
/// oldest first, so nothing archived since means it made no progress.
const PENDING: &str = "\
SELECT count(*)::int8 AS pending, \
       (array_agg(w.name ORDER BY w.modification, w.name))[1] AS oldest, \
       extract(epoch FROM now() - min(w.modification))::float8 AS oldest_age, \
       coalesce((SELECT last_archived_time FROM pg_stat_archiver) < min(w.modification), true) \
         AS no_progress, \
       (SELECT archived_count FROM pg_stat_archiver)::int8 AS archived_count \
FROM pg_ls_archive_statusdir() w WHERE w.name LIKE '%.ready'";

const SLOTS: &str = "\
SELECT slot_name, slot_type, active, wal_status, \
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                            ELSE pg_current_wal_lsn() END, restart_lsn)::float8 AS retained \
FROM pg_replication_slots ORDER BY slot_name";

/// Bytes in a short human form: `512 B`, `3.2 MiB`.
fn bytes(n: f64) -> String {
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

fn status_setting(key: &str, default: Status) -> Result<Status> {
    match config::raw(key).as_deref().map(str::trim) {
        None => Ok(default),
        Some("ok") => Ok(Status::Ok),
        Some("warning") => Ok(Status::Warning),
        Some("critical") => Ok(Status::Critical),
        Some(other) => Err(Error::msg(format!(
            "config `{key}` = {other:?} is not valid: write \"ok\", \"warning\" or \"critical\""
        ))),
    }
}

fn archiver(target: &str, findings: &mut Findings) -> Result<bool> {
    let archive_off = status_setting("archive_off", Status::Warning)?;
    let age = Threshold::optional_above("age_warning", "age_critical")?;
    let rows = sql::query(target, ARCHIVER, &[])?;
    let row = rows.first()?;
    let mode = row.text("mode")?.unwrap_or("off").to_string();
    let enabled = mode != "off";
    findings.push(measurement(
        "postgresql.archiver.enabled",
        if enabled { 1.0 } else { 0.0 },
        "1",
    ));
    if !enabled {
        findings.problem(
            archive_off,
            "archive_mode is off: WAL is not archived, so backups cannot be recovered to a point in time",
        );
        return Ok(false);
    }
    let archived = row.int("archived_count")?.unwrap_or(0);
    let failed = row.int("failed_count")?.unwrap_or(0);
    findings.push(measurement(
        "postgresql.archiver.archived_count",
        archived as f64,
        "1",
    ));
    findings.push(measurement(
        "postgresql.archiver.failed_count",
        failed as f64,
        "1",
    ));
    let stuck = row.bool("stuck")?.unwrap_or(false);
    findings.push(measurement(
        "postgresql.archiver.stuck",
        if stuck { 1.0 } else { 0.0 },
        "1",
    ));
    if stuck {
        let wal = row.text("last_failed_wal")?.unwrap_or("?");
        let at = row.text("failed_at")?.unwrap_or("?");
        findings.problem(
            Status::Critical,
            format!(
                "archiving is failing: segment {wal} failed at {at} and nothing was archived since \
                 ({failed} failed attempts in all); check archive_command and the archive's space and permissions"
            ),
        );
    }
    match row.float("archived_age")? {
        Some(seconds) => {
            findings.push(measurement(
                "postgresql.archiver.last_archived_age",
                seconds,
                "s",
            ));
            let last = row.text("last_archived_wal")?.unwrap_or("?");
            match age.map(|t| t.status(seconds)) {
                Some(status) if status != Status::Ok => findings.problem(
                    status,
                    format!("the last archived segment ({last}) is {seconds:.0} s old"),
                ),
                _ => findings.note(format!("last archived {last} {seconds:.0} s ago")),
            }
        }
        None => findings.note("nothing archived yet"),
    }
    Ok(true)
}

fn pending(target: &str, findings: &mut Findings) -> Result<()> {
    let limit = Threshold::above(16.0, 128.0).configured("pending_warning", "pending_critical")?;
    let wait_limit =
        Threshold::above(600.0, 3600.0).configured("waiting_warning", "waiting_critical")?;
    let rows = sql::query(target, PENDING, &[])?;
    let row = rows.first()?;
    let pending = row.int("pending")?.unwrap_or(0) as f64;
    findings.push(measurement(
        "postgresql.archiver.pending_segments",
        pending,
        "1",
    ));
    findings.problem(
        limit.status(pending),
        format!("{pending:.0} WAL segment(s) waiting to be archived"),
    );
    let (Some(oldest), Some(age)) = (row.text("oldest")?, row.float("oldest_age")?) else {
        return Ok(());
    };
    let age = age.max(0.0);
    let segment = oldest.trim_end_matches(".ready");
    findings.push(measurement(
        "postgresql.archiver.oldest_waiting_age",
        age,
        "s",
    ));
    let status = wait_limit.status(age);
    if status == Status::Ok {
        findings.note(format!(
            "the oldest waiting segment {segment} has waited {age:.0} s"
        ));
        return Ok(());
    }
    let progress = if row.bool("no_progress")?.unwrap_or(false) {
        format!(
            "the archiver is making no progress: nothing was archived since it became ready              (archived_count {}); check whether archive_command hangs",
            row.int("archived_count")?.unwrap_or(0)
        )
    } else {
        "the archiver is falling behind".to_string()
    };
    findings.problem(
        status,
        format!(
            "the oldest WAL segment waiting to be archived, {segment}, has waited {age:.0} s \
             (limits {} / {} s): {progress}",
            wait_limit.warning, wait_limit.critical
        ),
    );
    Ok(())
}

fn slots(target: &str, findings: &mut Findings) -> Result<()> {
    let limit = Threshold::above(32.0 * 1024.0 * 1024.0, 1024.0 * 1024.0 * 1024.0)
        .configured("slot_warning", "slot_critical")?;
    let rows = sql::query(target, SLOTS, &[])?;
    for row in rows.iter() {
        let name = row.text("slot_name")?.unwrap_or("?");
        let active = row.bool("active")?.unwrap_or(false);
        let retained = row.float("retained")?.unwrap_or(0.0).max(0.0);
        let wal_status = row.text("wal_status")?.unwrap_or("");
        findings.push(
            measurement("postgresql.replication_slot.wal_retained", retained, "By")
                .attr("slot", name),
        );
        findings.push(
            measurement(
                "postgresql.replication_slot.active",
                if active { 1.0 } else { 0.0 },
                "1",
            )
            .attr("slot", name),
        );
        match wal_status {
            "lost" => findings.problem(
                Status::Critical,
                format!("replication slot {name}: its WAL was removed (wal_status lost); its consumer cannot resume"),
            ),
            "unreserved" => findings.problem(
                Status::Warning,
                format!("replication slot {name}: keeps {} past max_wal_size (wal_status unreserved)", bytes(retained)),
            ),
            _ => {}
        }
        if !active {
            findings.problem(
                limit.status(retained),
                format!(
                    "replication slot {name} is inactive and keeps {} of WAL",
                    bytes(retained)
                ),
            );
        }
    }
    Ok(())
}

impl Probe for PgArchiving {
    fn describe() -> Info {
        Info::new(
            "pg-archiving",
            Kind::Availability,
            "PostgreSQL WAL archiving, segments waiting, and WAL kept by replication slots",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "postgresql.archiver.enabled",
            "1",
            "1 when archive_mode is on",
        )
        .measures(
            "postgresql.archiver.archived_count",
            "1",
            "segments archived since the statistics reset",
        )
        .measures(
            "postgresql.archiver.failed_count",
            "1",
            "failed archive attempts since the statistics reset",
        )
        .measures(
            "postgresql.archiver.stuck",
            "1",
            "1 when the last failure is newer than the last success",
        )
        .measures(
            "postgresql.archiver.last_archived_age",
            "s",
            "time since the last segment was archived",
        )
        .measures(
            "postgresql.archiver.pending_segments",
            "1",
            "WAL segments waiting to be archived (.ready)",
        )
        .measures(
            "postgresql.archiver.oldest_waiting_age",
            "s",
            "time the oldest segment waiting to be archived has waited",
        )
        .measures(
            "postgresql.replication_slot.wal_retained",
            "By",
            "WAL kept for a replication slot, per slot",
        )
        .measures(
            "postgresql.replication_slot.active",
            "1",
            "1 when the slot's consumer is connected, per slot",
        )
    }

    fn check() -> Result<Report> {
        let target = sql::target_from_config("target", "primary")?;
        let mut findings = Findings::new();
        if archiver(&target, &mut findings)? {
            pending(&target, &mut findings)?;
        }
        slots(&target, &mut findings)?;
        Ok(findings.into_report())
    }
}

watchpost_probe::export_probe!(PgArchiving);

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(64.0 * 1024.0 * 1024.0), "64.0 MiB");
    }
}

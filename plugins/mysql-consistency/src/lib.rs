//! `mysql-consistency`: do the replica's tables hold the same rows as the
//! primary's?
//!
//! The design of `pg-consistency`, on MariaDB/MySQL: each table is split
//! into chunks along its primary key and each chunk's digest (row count
//! and XORed row MD5s) compared on both sides: read at once on the
//! replica, and when that differs again once the replica applied the
//! primary's GTID position taken after the primary's read; a chunk that
//! differs is counted only if the primary's rows were unchanged around
//! the replica's read (see `walk.rs`). Nothing is
//! written and no statement-based binlog is needed (unlike
//! `pt-table-checksum`): both sides are read as they are. A replica that
//! replicates from no source (promoted) is compared as it is.
//!
//! The work is bounded: one chunk (an index range scan sized to take
//! `chunk_time`, as `pt-table-checksum` sizes its chunks: see `walk.rs`)
//! at a time and no new chunk once `time_budget` is spent, shared fairly
//! between tables (smallest first); a replica that lags past the budget
//! behind a chunk that differs pauses the comparison (`warning`, nothing
//! concluded). A table too big for one run starts at a random key and
//! wraps round, so successive runs cover it.
//!
//! Statuses: `critical` when a chunk differs (the message names the table
//! and the key range); `warning` when the replica lags past the budget or
//! a table has no primary key (named); `ok` otherwise, partial coverage
//! noted.
//!
//! Config (defaults in brackets):
//! - `primary` / `replica`: the targets [`primary` / `replica`].
//! - `tables`: comma-separated `db.table` names [every base table with a
//!   primary key outside the system schemas].
//! - `rows_per_chunk`: rows of the first chunk, and of every chunk a
//!   differing one is compared again in, 1 to 50000 [1000].
//! - `chunk_time`: the time a chunk's digest on the primary should take
//!   (`pt-table-checksum`'s `--chunk-time`, 0.5 s there; shorter here, as
//!   a run's budget is 2 s); `0s` keeps every chunk at `rows_per_chunk`
//!   [250ms].
//! - `time_budget`: time after which no new chunk starts, e.g. `5s`; keep
//!   it well below the probe's `timeout` [2s].
//! - `show`: mismatched ranges named per table [3].
//!
//! Measurements, per table {table}: `mysql.consistency.mismatched_chunks`,
//! `mysql.consistency.compared_rows`, `mysql.consistency.complete` (1
//! when every key was compared in this run), `mysql.consistency.duration`
//! (s); and `mysql.consistency.skipped_tables`.
//!
//! Grants: `SELECT` on the compared tables on both servers, and
//! `REPLICATION CLIENT` (MariaDB: `SLAVE MONITOR`) on the replica.

mod chunk;
mod tables;
mod walk;

use std::time::{Duration, Instant};
use watchpost_probe::{
    Error, Findings, Info, Kind, Probe, Report, Result, Status, bail, config, measurement, sql,
};

struct MysqlConsistency;

impl Probe for MysqlConsistency {
    fn describe() -> Info {
        Info::new(
            "mysql-consistency",
            Kind::Consistency,
            "the replica's tables hold the same rows as the primary's, chunk by chunk",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "mysql.consistency.skipped_tables",
            "1",
            "tables not compared (no primary key), each named",
        )
        .measures(
            "mysql.consistency.mismatched_chunks",
            "1",
            "chunks whose rows differ between primary and replica, per table",
        )
        .measures(
            "mysql.consistency.compared_rows",
            "1",
            "rows compared in this run, per table",
        )
        .measures(
            "mysql.consistency.complete",
            "1",
            "1 when every key of the table was compared in this run",
        )
        .measures(
            "mysql.consistency.duration",
            "s",
            "time spent comparing the table in this run",
        )
    }

    fn check() -> Result<Report> {
        let primary = sql::target_from_config("primary", "primary")?;
        let replica = sql::target_from_config("replica", "replica")?;
        let rows_per_chunk: usize = config::get_or("rows_per_chunk", 1000)?;
        if !(1..=50_000).contains(&rows_per_chunk) {
            bail!("config `rows_per_chunk` = {rows_per_chunk} must be between 1 and 50000");
        }
        let chunk_time: Duration = config::get_or("chunk_time", Duration::from_millis(250))?;
        let time_budget: Duration = config::get_or("time_budget", Duration::from_secs(2))?;
        let show: usize = config::get_or("show", 3)?;
        let named = match config::raw("tables") {
            Some(raw) => Some(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        mysql_common::table_name(s)
                            .map_err(|e| Error::msg(format!("config `tables`: {e}")))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let started = Instant::now();
        let end = started + time_budget;
        let mariadb = sql::engine(&primary)? == "mariadb";
        let replicating = !mysql_common::replica_status(&replica)?.is_empty();
        let mut findings = Findings::new();
        if !replicating {
            findings.note(format!(
                "{replica} replicates from no source (promoted?): compared as it is"
            ));
        }
        let (mut tables, skipped) = tables::list(&primary, named.as_deref())?;
        findings.push(measurement(
            "mysql.consistency.skipped_tables",
            skipped.len() as f64,
            "1",
        ));
        for table in &skipped {
            findings.problem(
                Status::Warning,
                format!("{} not compared: {}", table.name, table.reason),
            );
        }
        if tables.is_empty() {
            findings.note("no table with a primary key to compare");
            return Ok(findings.into_report());
        }
        // Smallest first: what a small table leaves of its share goes to
        // the bigger ones after it.
        tables.sort_by(|a, b| a.estimated_rows.total_cmp(&b.estimated_rows));
        let sides = walk::Sides {
            primary: &primary,
            replica: &replica,
            mariadb,
            replicating,
            rows_per_chunk,
            chunk_time,
        };
        let count = tables.len();
        let mut complete = 0;
        for (i, table) in tables.iter().enumerate() {
            let now = Instant::now();
            let share_end = now + end.saturating_duration_since(now) / (count - i) as u32;
            let walked = match walk::walk(&sides, table, share_end) {
                Ok(walked) => walked,
                // Connection failures decide the run; a table that cannot
                // be read (no privilege, dropped meanwhile) is reported.
                Err(error) if error.status().is_some() => return Err(error),
                Err(error) => {
                    findings.problem(
                        Status::Unknown,
                        format!("{}: cannot compare: {error}", table.quoted()),
                    );
                    continue;
                }
            };
            let name = table.quoted();
            let series =
                |n: &str, v: f64, unit: &str| measurement(n, v, unit).attr("table", name.as_str());
            findings.push(series(
                "mysql.consistency.mismatched_chunks",
                walked.mismatches.len() as f64,
                "1",
            ));
            findings.push(series(
                "mysql.consistency.compared_rows",
                walked.compared_rows as f64,
                "1",
            ));
            findings.push(series(
                "mysql.consistency.complete",
                if walked.complete { 1.0 } else { 0.0 },
                "1",
            ));
            findings.push(series(
                "mysql.consistency.duration",
                now.elapsed().as_secs_f64(),
                "s",
            ));
            if walked.complete {
                complete += 1;
            }
            if !walked.mismatches.is_empty() {
                let ranges: Vec<String> = walked
                    .mismatches
                    .iter()
                    .take(show.max(1))
                    .map(|(lo, hi)| {
                        format!(
                            "keys past {} up to {}",
                            chunk::shown(lo.as_ref(), "start"),
                            chunk::shown(hi.as_ref(), "end")
                        )
                    })
                    .collect();
                findings.problem(
                    Status::Critical,
                    format!(
                        "{name} differs between {primary} and {replica} in {} chunk(s) by key \
                         ({}): {}",
                        walked.mismatches.len(),
                        table.key.join(", "),
                        ranges.join("; ")
                    ),
                );
            }
            if walked.changing > 0 {
                findings.note(format!(
                    "{name}: {} chunk(s) changed on the primary while compared (not counted)",
                    walked.changing
                ));
            }
            if let Some(position) = walked.lagging {
                findings.problem(
                    Status::Warning,
                    format!(
                        "{replica} did not apply the primary's position {position} within the \
                         time budget ({time_budget:?}): comparison paused at {name}"
                    ),
                );
                break;
            }
        }
        findings.note(format!(
            "{complete} of {count} tables compared completely in {:.2} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(findings.into_report())
    }
}

watchpost_probe::export_probe!(MysqlConsistency);

//! `pg-consistency`: do the standby's tables hold the same rows as the
//! primary's?
//!
//! The way pt-table-checksum and pg_comparator do it: once the standby has
//! replayed past the primary's WAL position taken at the start, each table
//! is split into chunks along its primary key and each chunk hashed on
//! both sides. Equal digests settle a chunk. One that differs is hashed
//! again on the primary (noting its WAL position), on the standby once it
//! has replayed past that, and on the primary again: it counts only when
//! the primary's rows were unchanged around the standby's read (rows being
//! written are not reported), and is then narrowed down to its keys. A
//! standby that was promoted is compared as it is, without waiting.
//!
//! The work is bounded, so that the probe never loads the database: one
//! chunk (an index range scan of `rows_per_chunk` rows) at a time, and no
//! new chunk once the run's `time_budget` is spent, shared fairly between
//! tables. A table too big for one run is compared from a random key (a
//! `TABLESAMPLE` of two pages) round to the same key, so successive runs
//! cover all of it.
//!
//! Statuses: `critical` when any chunk differs (the message names the
//! table, the key range and the first keys); `warning` when the standby
//! did not replay far enough within the budget (nothing could be
//! compared); `ok` otherwise, partial coverage noted.
//!
//! Config (defaults in brackets):
//! - `primary` / `standby`: the targets [`primary` / `standby`].
//! - `tables`: comma-separated tables, `schema.table` or `table` (on the
//!   search path), quoted names allowed [every permanent table with a
//!   primary key outside the system schemas; partitions through their
//!   parent].
//! - `rows_per_chunk`: rows hashed per statement, 1 to 50000 [1000].
//! - `time_budget`: time after which no new chunk starts, e.g. `5s`; keep
//!   it well below the probe's `timeout` [2s].
//! - `show`: mismatched ranges named in the message [3].
//!
//! Measurements, per table {table}: `postgresql.consistency.mismatched_chunks`,
//! `postgresql.consistency.compared_rows`, `postgresql.consistency.complete`
//! (1 when every key was compared in this run) and
//! `postgresql.consistency.duration` (s).
//!
//! The role needs `SELECT` on the compared tables on both servers (e.g.
//! `pg_read_all_data`) besides `pg_monitor`.

mod chunks;
mod diff;
mod lsn;
mod report;
mod source;
mod tables;
mod walk;

use chunks::Table;
use lsn::Lsn;
use source::{SqlSource, key_of};
use std::time::{Duration, Instant};
use walk::Walk;
use watchpost_probe::sql::ident::{Name, parse_names};
use watchpost_probe::{
    Error, Findings, Info, Kind, Probe, Report, Result, Status, bail, config, measurement, sql,
};

struct PgConsistency;

/// The probe's settings.
pub(crate) struct Settings {
    primary: String,
    standby: String,
    tables: Option<Vec<Name>>,
    rows_per_chunk: usize,
    time_budget: Duration,
    show: usize,
}

impl Settings {
    fn from_config() -> Result<Settings> {
        let rows_per_chunk: usize = config::get_or("rows_per_chunk", 1000)?;
        if !(1..=50_000).contains(&rows_per_chunk) {
            bail!("config `rows_per_chunk` = {rows_per_chunk} must be between 1 and 50000");
        }
        let tables = match config::raw("tables") {
            Some(raw) => {
                Some(parse_names(&raw).map_err(|e| Error::msg(format!("config `tables`: {e}")))?)
            }
            None => None,
        };
        Ok(Settings {
            primary: sql::target_from_config("primary", "primary")?,
            standby: sql::target_from_config("standby", "standby")?,
            tables,
            rows_per_chunk,
            time_budget: config::get_or("time_budget", Duration::from_secs(2))?,
            show: config::get_or("show", 3)?,
        })
    }
}

/// One table's outcome.
pub(crate) struct Compared {
    table: Table,
    walk: Walk,
    took: Duration,
}

impl Probe for PgConsistency {
    fn describe() -> Info {
        Info::new(
            "pg-consistency",
            Kind::Consistency,
            "the standby's tables hold the same rows as the primary's, chunk by chunk",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "postgresql.consistency.skipped_tables",
            "1",
            "tables not compared (no primary key, no privilege, row-level security), each named",
        )
        .measures(
            "postgresql.consistency.mismatched_chunks",
            "1",
            "chunks whose rows differ between primary and standby, per table",
        )
        .measures(
            "postgresql.consistency.compared_rows",
            "1",
            "rows compared in this run, per table",
        )
        .measures(
            "postgresql.consistency.complete",
            "1",
            "1 when every key of the table was compared in this run",
        )
        .measures(
            "postgresql.consistency.duration",
            "s",
            "time spent comparing the table in this run",
        )
    }

    fn check() -> Result<Report> {
        let settings = Settings::from_config()?;
        let started = Instant::now();
        if in_recovery(&settings.primary)? {
            bail!(
                "target `{}` is in recovery: pg-consistency compares a primary with its standby \
                 (set `primary` to the primary's target)",
                settings.primary
            );
        }
        let mut findings = Findings::new();
        let standby_in_recovery = in_recovery(&settings.standby)?;
        let end = started + settings.time_budget;
        let mut replayed = Lsn::default();
        if standby_in_recovery {
            let start = source::primary_position(&settings.primary)?;
            if !source::wait_for_replay(&settings.standby, start, &mut replayed, end)? {
                findings.problem(
                    Status::Warning,
                    format!(
                        "{} has not replayed the primary's WAL position {start} within the time                          budget ({:?}; it is at {replayed}): nothing compared",
                        settings.standby, settings.time_budget
                    ),
                );
                return Ok(findings.into_report());
            }
        } else {
            findings.note(format!(
                "{} is not in recovery (promoted?): compared as it is",
                settings.standby
            ));
        }
        // Every table that cannot be compared is named, with why, and
        // counted: `tables = all` must never silently mean "some".
        let skipped = tables::skipped(&settings.primary, settings.tables.as_deref())?;
        findings.push(measurement(
            "postgresql.consistency.skipped_tables",
            skipped.len() as f64,
            "1",
        ));
        for table in &skipped {
            findings.problem(
                Status::Warning,
                format!("{} not compared: {}", table.name, table.reason),
            );
        }
        let mut tables = match &settings.tables {
            Some(names) => {
                let names: Vec<_> = names
                    .iter()
                    .filter(|n| !skipped.iter().any(|s| s.name == **n))
                    .cloned()
                    .collect();
                tables::named(&settings.primary, &names)?
            }
            None => tables::all(&settings.primary)?,
        };
        tables.retain(|t| !skipped.iter().any(|s| s.name == t.name));
        // Smallest first: what a small table leaves of its share goes to
        // the bigger ones after it.
        tables.sort_by(|a, b| a.estimated_rows.total_cmp(&b.estimated_rows));
        if tables.is_empty() {
            findings.note("no table with a primary key to compare");
            return Ok(findings.into_report());
        }

        let mut compared = Vec::new();
        let count = tables.len();
        for (i, table) in tables.into_iter().enumerate() {
            // An equal share of what is left; what a table leaves unused
            // goes to the next ones.
            let now = Instant::now();
            let share_end = now + end.saturating_duration_since(now) / (count - i) as u32;
            match compare_table(&settings, &table, standby_in_recovery, replayed, share_end) {
                Ok(walk) => compared.push(Compared {
                    table,
                    walk,
                    took: now.elapsed(),
                }),
                // Connection failures decide the run; a table that cannot
                // be read (no privilege, dropped meanwhile) is reported.
                Err(error) if error.status().is_some() => return Err(error),
                Err(error) => findings.problem(
                    Status::Unknown,
                    format!("{}: cannot compare: {error}", table.name),
                ),
            }
        }
        report::report(&settings, &compared, &mut findings)?;
        Ok(findings.into_report())
    }
}

fn in_recovery(target: &str) -> Result<bool> {
    let rows = sql::query(target, "SELECT pg_is_in_recovery() AS in_recovery", &[])?;
    Ok(rows.first()?.bool("in_recovery")?.unwrap_or(false))
}

/// Walk one table until it is done or its share of the budget is spent.
fn compare_table(
    settings: &Settings,
    table: &Table,
    standby_in_recovery: bool,
    replayed: Lsn,
    share_end: Instant,
) -> Result<Walk> {
    let start = match table.sample_statement() {
        Some((statement, params)) => {
            let rows = sql::query(&settings.primary, &statement, &params)?;
            match rows.iter().next() {
                Some(row) => key_of(&row, table.key.len())?,
                None => None,
            }
        }
        None => None,
    };
    let mut source = SqlSource {
        table,
        primary: &settings.primary,
        standby: &settings.standby,
        standby_in_recovery,
        replayed,
        deadline: share_end,
    };
    walk::walk(&mut source, start, settings.rows_per_chunk, &|| {
        Instant::now() >= share_end
    })
}

watchpost_probe::export_probe!(PgConsistency);

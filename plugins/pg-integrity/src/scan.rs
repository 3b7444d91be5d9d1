//! The active integrity scan: `verify_heapam` (amcheck, PostgreSQL 14+)
//! over block ranges of every table, and `bt_index_check(index,
//! heapallindexed => true)` for a table's B-tree indexes when the scan
//! finishes the table, within a budget per run, so that a page no query
//! reads is still checked once per cycle (`checksum_failures` counts only
//! pages some backend happened to read).
//!
//! Where a run starts is kept by the clock: the tables' blocks, in a
//! fixed order (by OID), form one sequence, and a run at time `t` starts
//! at the fraction `(t mod scan_cycle) / scan_cycle` of it. Runs every
//! `scan_every` that each scan `N × scan_every / scan_cycle` blocks cover
//! all `N` within a cycle, and the scan resumes where the cycle is after a
//! restart of the agent. The position is reported
//! (`postgresql.integrity.scan.position`, 0 to 1), with the blocks and
//! bytes checked and the scan rate. A window past the budget is cut at
//! the budget with a warning (raise `scan_budget` or `scan_cycle`).
//!
//! A corrupt page is reported with its relation and block (and the line
//! pointer and attribute when amcheck names them); a page whose checksum
//! fails stops that range with the server's error, which names the block.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use watchpost_probe::sql::ident::quote;
use watchpost_probe::sql::{self, SqlError, Value};
use watchpost_probe::{Findings, Result, Status, config, measurement};

/// Permanent tables (and materialized views) outside the system schemas,
/// in OID order, with their size in blocks.
const RELATIONS: &str = "\
SELECT c.oid::int8 AS oid, format('%I.%I', n.nspname, c.relname) AS name, \
       (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 AS blocks \
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p' \
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' \
ORDER BY c.oid";

/// The shipped cycle: every table page once a week (see BENCHMARKS.md for
/// the I/O this adds to a busy server).
pub const DEFAULT_CYCLE: Duration = Duration::from_secs(7 * 86_400);

/// The scan's settings: on by default (cycle [`DEFAULT_CYCLE`]),
/// `scan_cycle = "off"` turns it off.
pub struct Settings {
    /// Every table page is checked once within this time.
    pub cycle: Duration,
    /// Expected time between runs [0: scan from the cycle's position on].
    pub every: Duration,
    /// Most blocks a run checks.
    pub budget_blocks: i64,
    /// Most time a run spends scanning.
    pub time: Duration,
    /// The operator set `scan_cycle`: missing prerequisites are `unknown`
    /// (with the shipped default they are a note).
    pub explicit: bool,
}

impl Settings {
    /// `None` when `scan_cycle` is `off`.
    pub fn from_config() -> Result<Option<Settings>> {
        let raw = config::raw("scan_cycle");
        if raw.as_deref().map(str::trim) == Some("off") {
            return Ok(None);
        }
        let cycle = config::get_or("scan_cycle", DEFAULT_CYCLE)?;
        if cycle < Duration::from_secs(1) {
            watchpost_probe::bail!("config `scan_cycle` must be at least 1s, or \"off\"");
        }
        let budget_blocks: i64 = config::get_or("scan_budget_blocks", 16384)?;
        if budget_blocks < 1 {
            watchpost_probe::bail!("config `scan_budget_blocks` must be at least 1");
        }
        Ok(Some(Settings {
            cycle,
            every: config::get_or("scan_every", Duration::ZERO)?,
            budget_blocks,
            time: config::get_or("scan_time", Duration::from_secs(2))?,
            explicit: raw.is_some(),
        }))
    }
}

/// Why the scan cannot run on this server, if it cannot: `verify_heapam`
/// (amcheck 1.3, PostgreSQL 14+) and `bt_index_check(regclass, boolean)`
/// must exist in `schema` and be executable by the probe's role.
pub fn missing_prerequisite(target: &str, schema: &str) -> Result<Option<String>> {
    let rows = sql::query(
        target,
        "SELECT f.signature, p IS NOT NULL AS present, \
                coalesce(has_function_privilege(p::oid, 'EXECUTE'), false) AS allowed \
         FROM (VALUES ('verify_heapam(regclass, boolean, boolean, text, bigint, bigint)'), \
                      ('bt_index_check(regclass, boolean)')) f(signature), \
              LATERAL (SELECT to_regprocedure(format('%I.', $1::text) || f.signature) AS p) r",
        &[Value::Text(schema.to_string())],
    )?;
    for row in rows.iter() {
        let signature = row.text("signature")?.unwrap_or_default();
        if row.bool("present")? != Some(true) {
            return Ok(Some(format!(
                "amcheck in schema {schema} has no {signature} (amcheck 1.3, PostgreSQL 14+: \
                 ALTER EXTENSION amcheck UPDATE)"
            )));
        }
        if row.bool("allowed")? != Some(true) {
            return Ok(Some(format!(
                "the role may not execute {schema}.{signature}: GRANT EXECUTE ON FUNCTION \
                 {schema}.{signature} TO the probe's role"
            )));
        }
    }
    Ok(None)
}

struct Relation {
    oid: i64,
    name: String,
    blocks: i64,
}

/// The fraction of the cycle `at` is in.
fn phase(at: SystemTime, cycle: Duration) -> f64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs_f64() % cycle.as_secs_f64()) / cycle.as_secs_f64()
}

/// The block ranges `[start, end)` of the global sequence of `total` blocks
/// between positions `from` and `to` (fractions), wrapping at the end.
fn window(total: i64, from: f64, to: f64, budget: i64) -> (i64, i64, bool) {
    let start = (from * total as f64).floor() as i64;
    let mut end = (to * total as f64).floor() as i64;
    if end <= start {
        end += total;
    }
    let wanted = end - start;
    (start, start + wanted.min(budget), wanted > budget)
}

/// Run this run's share of the scan.
pub fn run(target: &str, schema: &str, settings: &Settings, findings: &mut Findings) -> Result<()> {
    let relations: Vec<Relation> = sql::query(target, RELATIONS, &[])?
        .iter()
        .map(|r| {
            Ok(Relation {
                oid: r.int("oid")?.unwrap_or(0),
                name: r.text("name")?.unwrap_or_default().to_string(),
                blocks: r.int("blocks")?.unwrap_or(0),
            })
        })
        .collect::<Result<_>>()?;
    let total: i64 = relations.iter().map(|r| r.blocks).sum();
    let now = SystemTime::now();
    let to = phase(now, settings.cycle);
    if total == 0 {
        findings.note("integrity scan: no table pages to check");
        return Ok(());
    }
    let (start, end, short) = if settings.every.is_zero() {
        let per_run = settings.budget_blocks.min(total);
        (
            (to * total as f64).floor() as i64,
            (to * total as f64).floor() as i64 + per_run,
            false,
        )
    } else {
        let from = phase(now - settings.every.min(settings.cycle), settings.cycle);
        window(total, from, to, settings.budget_blocks)
    };
    let verify = format!("{}.verify_heapam", quote(schema));
    let index_check = format!("{}.bt_index_check", quote(schema));
    let started = Instant::now();
    let deadline = started + settings.time;
    let (mut blocks, mut problems) = (0i64, Vec::new());
    let mut position = start;
    let mut stopped_early = false;
    while position < end {
        if Instant::now() >= deadline {
            stopped_early = true;
            break;
        }
        // Where `position` falls: the relation and the block in it.
        let global = position % total;
        let mut offset = 0;
        let Some(relation) = relations.iter().find(|r| {
            offset += r.blocks;
            global < offset
        }) else {
            break;
        };
        let first = global - (offset - relation.blocks);
        let last = (first + (end - position) - 1).min(relation.blocks - 1);
        blocks += last - first + 1;
        position += last - first + 1;
        check_range(target, &verify, relation, first, last, &mut problems)?;
        if last == relation.blocks - 1 {
            check_indexes(target, &index_check, relation, &mut problems)?;
        }
    }
    let took = started.elapsed().as_secs_f64().max(1e-6);
    let bytes = blocks as f64 * 8192.0;
    findings.push(measurement("postgresql.integrity.scan.position", to, "1"));
    findings.push(measurement(
        "postgresql.integrity.scan.blocks",
        blocks as f64,
        "1",
    ));
    findings.push(measurement(
        "postgresql.integrity.scan.rate",
        bytes / took,
        "By/s",
    ));
    findings.push(measurement(
        "postgresql.integrity.scan.corruptions",
        problems.len() as f64,
        "1",
    ));
    if !problems.is_empty() {
        findings.problem(
            Status::Critical,
            format!("integrity scan found corruption: {}", problems.join("; ")),
        );
    }
    if short || stopped_early {
        findings.problem(
            Status::Warning,
            format!(
                "integrity scan fell behind its cycle ({} of {} blocks this run): raise \
                 `scan_budget_blocks`/`scan_time` or `scan_cycle`",
                blocks,
                end - start
            ),
        );
    }
    findings.note(format!(
        "integrity scan: {blocks} of {total} blocks checked at {:.1} MB/s, cycle at {:.0}%",
        bytes / took / 1e6,
        to * 100.0
    ));
    Ok(())
}

/// `verify_heapam` over blocks `first..=last` of `relation`.
fn check_range(
    target: &str,
    verify: &str,
    relation: &Relation,
    first: i64,
    last: i64,
    problems: &mut Vec<String>,
) -> Result<()> {
    let statement = format!(
        "SELECT blkno, offnum, attnum, msg FROM {verify}($1::int8::oid::regclass, \
         on_error_stop => false, check_toast => true, skip => 'none', \
         startblock => $2, endblock => $3) LIMIT 20"
    );
    match sql::query(
        target,
        &statement,
        &[
            Value::Int(relation.oid),
            Value::Int(first),
            Value::Int(last),
        ],
    ) {
        Ok(rows) => {
            for row in rows.iter() {
                problems.push(format!(
                    "{} block {} (line pointer {}, attribute {}): {}",
                    relation.name,
                    row.int("blkno")?.unwrap_or(-1),
                    row.int("offnum")?.map_or("-".into(), |v| v.to_string()),
                    row.int("attnum")?.map_or("-".into(), |v| v.to_string()),
                    row.text("msg")?.unwrap_or_default()
                ));
            }
            Ok(())
        }
        // A page that fails its checksum (XX001) stops the range: the
        // server's message names the block.
        Err(SqlError::Query(e)) if e.code.starts_with("XX") => {
            problems.push(format!(
                "{} blocks {first}..{last}: {}",
                relation.name, e.message
            ));
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

/// `bt_index_check(index, true)` for each valid B-tree index of `relation`:
/// the index is consistent and holds every heap tuple.
fn check_indexes(
    target: &str,
    index_check: &str,
    relation: &Relation,
    problems: &mut Vec<String>,
) -> Result<()> {
    let indexes = sql::query(
        target,
        "SELECT i.indexrelid::int8 AS oid, i.indexrelid::regclass::text AS name FROM pg_index i \
         JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
         WHERE i.indrelid = $1::int8::oid AND am.amname = 'btree' AND i.indisvalid",
        &[Value::Int(relation.oid)],
    )?;
    for index in indexes.iter() {
        let statement = format!("SELECT {index_check}($1::int8::oid::regclass, true)");
        match sql::query(
            target,
            &statement,
            &[Value::Int(index.int("oid")?.unwrap_or(0))],
        ) {
            Ok(_) => {}
            Err(SqlError::Query(e)) if e.code.starts_with("XX") => problems.push(format!(
                "index {} of {}: {}",
                index.text("name")?.unwrap_or("?"),
                relation.name,
                e.message
            )),
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_cycle_and_wrap() {
        assert_eq!(window(1000, 0.1, 0.2, 10_000), (100, 200, false));
        assert_eq!(window(1000, 0.9, 0.1, 10_000), (900, 1100, false));
        assert_eq!(window(1000, 0.1, 0.5, 100), (100, 200, true));
    }

    #[test]
    fn the_phase_is_the_fraction_of_the_cycle() {
        let at = UNIX_EPOCH + Duration::from_secs(3600 * 24 * 1000 + 1800);
        assert!((phase(at, Duration::from_secs(3600)) - 0.5).abs() < 1e-9);
    }
}

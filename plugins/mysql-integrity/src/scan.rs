//! One run's share of the `CHECK TABLE` cycle: which tables, from where
//! (by the clock), until the time budget is spent, and what each check
//! said.

use mysql_common::{is_access_denied, quote};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use watchpost_probe::sql::{self, SqlError, Value};
use watchpost_probe::{Error, Findings, Result, Status, measurement};

/// Base tables outside the system schemas, in a fixed order, with their
/// data and index bytes.
const TABLES: &str = "\
SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, \
       COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS bytes \
FROM information_schema.TABLES \
WHERE TABLE_TYPE = 'BASE TABLE' \
  AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
ORDER BY TABLE_SCHEMA, TABLE_NAME";

/// A table's smallest weight (an empty InnoDB table still has pages).
const MIN_BYTES: f64 = 16_384.0;

/// ER_GET_ERRNO / ER_GET_ERRMSG (the storage engine failed the read),
/// ER_NOT_KEYFILE, ER_CRASHED_ON_USAGE, ER_CRASHED_ON_REPAIR, and
/// HA_ERR_TABLE_CORRUPT / HA_ERR_INDEX_CORRUPT as MariaDB forwards them:
/// the table is damaged.
const CORRUPT: [u32; 7] = [1030, 1296, 1034, 1194, 1195, 1877, 1712];

struct Table {
    db: String,
    name: String,
    bytes: f64,
}

impl Table {
    fn shown(&self) -> String {
        format!("{}.{}", quote(&self.db), quote(&self.name))
    }
}

/// The index of the table holding the point `fraction` (0 to 1) of the
/// tables' total weight.
fn start_index(weights: &[f64], fraction: f64) -> usize {
    let total: f64 = weights.iter().sum();
    let point = fraction.clamp(0.0, 1.0) * total;
    let mut cumulative = 0.0;
    for (i, w) in weights.iter().enumerate() {
        cumulative += w;
        if point < cumulative {
            return i;
        }
    }
    0
}

pub fn run(
    target: &str,
    schemas: &[String],
    check_time: f64,
    cycle: f64,
    f: &mut Findings,
) -> Result<()> {
    let rows = sql::query(target, TABLES, &[])?;
    let mut tables = Vec::new();
    for row in rows.iter() {
        let db = row.text("db")?.unwrap_or_default().to_string();
        if !schemas.is_empty() && !schemas.iter().any(|s| *s == db) {
            continue;
        }
        tables.push(Table {
            db,
            name: row.text("name")?.unwrap_or_default().to_string(),
            bytes: row.float("bytes")?.unwrap_or(0.0).max(MIN_BYTES),
        });
    }
    if tables.is_empty() {
        f.push(measurement(
            "mysql.integrity.tables_checked",
            0.0,
            "{table}",
        ));
        f.push(measurement(
            "mysql.integrity.corrupt_tables",
            0.0,
            "{table}",
        ));
        f.note("no tables to check");
        return Ok(());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let position = (now % cycle) / cycle;
    f.push(measurement("mysql.integrity.scan.position", position, "1"));
    let weights: Vec<f64> = tables.iter().map(|t| t.bytes).collect();
    let start = start_index(&weights, position);

    let started = Instant::now();
    let (mut checked, mut bytes, mut corrupt) = (0usize, 0.0, 0usize);
    for offset in 0..tables.len() {
        if started.elapsed().as_secs_f64() >= check_time {
            break;
        }
        let table = &tables[(start + offset) % tables.len()];
        match check_table(target, table)? {
            Verdict::Ok => {}
            Verdict::Corrupt(why) => {
                corrupt += 1;
                f.problem(
                    Status::Critical,
                    format!("table {} on {target} is corrupt: {why}", table.shown()),
                );
            }
            Verdict::Doubtful(why) => f.problem(
                Status::Warning,
                format!("CHECK TABLE {} on {target} says: {why}", table.shown()),
            ),
            Verdict::OutOfTime => break,
        }
        checked += 1;
        bytes += table.bytes;
    }
    f.push(measurement(
        "mysql.integrity.tables_checked",
        checked as f64,
        "{table}",
    ));
    f.push(measurement("mysql.integrity.bytes_checked", bytes, "By"));
    f.push(measurement(
        "mysql.integrity.corrupt_tables",
        corrupt as f64,
        "{table}",
    ));
    f.note(format!(
        "{checked} of {} tables checked ({:.1} MiB) from position {position:.3} of the cycle",
        tables.len(),
        bytes / 1_048_576.0
    ));
    Ok(())
}

enum Verdict {
    Ok,
    Corrupt(String),
    Doubtful(String),
    /// The run's deadline stopped the check: not a verdict on the table.
    OutOfTime,
}

fn check_table(target: &str, table: &Table) -> Result<Verdict> {
    let statement = format!("CHECK TABLE {}", table.shown());
    let rows = match sql::query(target, &statement, &[]) {
        Ok(rows) => rows,
        Err(SqlError::Timeout(_)) => return Ok(Verdict::OutOfTime),
        Err(error) if is_access_denied(&error) => {
            return Err(mysql_common::needs_grant(
                target,
                &format!("table {}", table.shown()),
                "SELECT",
                &error,
            ));
        }
        Err(error @ SqlError::Query(_))
            if mysql_common::failed_number().is_some_and(|n| CORRUPT.contains(&n)) =>
        {
            return Ok(Verdict::Corrupt(error.describe()));
        }
        Err(error) => return Err(Error::from(error)),
    };
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut status_text = None;
    for row in rows.iter() {
        let kind = text(row.get("Msg_type")?).to_ascii_lowercase();
        let said = text(row.get("Msg_text")?);
        match kind.as_str() {
            "error" => errors.push(said),
            "warning" => warnings.push(said),
            "status" => status_text = Some(said),
            _ => {}
        }
    }
    if !errors.is_empty() {
        let mut all = warnings;
        all.extend(errors);
        return Ok(Verdict::Corrupt(all.join("; ")));
    }
    match status_text {
        Some(s) if s.eq_ignore_ascii_case("ok") || s.contains("up to date") => Ok(Verdict::Ok),
        Some(s) => Ok(Verdict::Doubtful(s)),
        None if warnings.is_empty() => Ok(Verdict::Ok),
        None => Ok(Verdict::Doubtful(warnings.join("; "))),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Null => String::new(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::start_index;

    #[test]
    fn the_clock_picks_the_table_holding_its_point() {
        let weights = [10.0, 30.0, 60.0];
        assert_eq!(start_index(&weights, 0.0), 0);
        assert_eq!(start_index(&weights, 0.09), 0);
        assert_eq!(start_index(&weights, 0.1), 1);
        assert_eq!(start_index(&weights, 0.5), 2);
        assert_eq!(start_index(&weights, 1.0), 0);
        assert_eq!(start_index(&[], 0.5), 0);
    }
}

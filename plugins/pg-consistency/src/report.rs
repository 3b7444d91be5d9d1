//! What a run found, as measurements and a message: per table, the
//! mismatched chunks (narrowed down to their first keys), a standby that
//! fell behind, and how much was covered.

use crate::chunks::{Key, Range, Table};
use crate::diff::{self, Difference};
use crate::source::key_of;
use crate::{Compared, Settings};
use watchpost_probe::{Findings, Result, Status, measurement, sql};

/// Keys listed per mismatched range in the message.
const KEYS_SHOWN: usize = 3;

/// Measurements, and the message: mismatches first (narrowed to keys),
/// then a standby that fell behind, then what was covered.
pub fn report(settings: &Settings, compared: &[Compared], findings: &mut Findings) -> Result<()> {
    let mut shown = 0;
    let mut rows = 0;
    let mut chunks = 0;
    for Compared { table, walk, took } in compared {
        let label = table.name.to_string();
        let measure = |name: &str, value: f64, unit: &str| {
            measurement(name, value, unit).attr("table", label.as_str())
        };
        findings.push(measure(
            "postgresql.consistency.mismatched_chunks",
            walk.mismatches.len() as f64,
            "1",
        ));
        findings.push(measure(
            "postgresql.consistency.compared_rows",
            walk.rows as f64,
            "1",
        ));
        findings.push(measure(
            "postgresql.consistency.complete",
            f64::from(u8::from(walk.complete)),
            "1",
        ));
        findings.push(measure(
            "postgresql.consistency.duration",
            took.as_secs_f64(),
            "s",
        ));
        rows += walk.rows;
        chunks += walk.chunks;

        if !walk.mismatches.is_empty() {
            let mut ranges = Vec::new();
            for range in &walk.mismatches {
                if shown == settings.show {
                    break;
                }
                shown += 1;
                ranges.push(describe_mismatch(settings, table, range)?);
            }
            let more = walk.mismatches.len() - ranges.len();
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            findings.problem(
                Status::Critical,
                format!(
                    "{label}: {} of {} chunks differ: {}{more}",
                    walk.mismatches.len(),
                    walk.chunks,
                    ranges.join("; ")
                ),
            );
        }
        if walk.standby_behind {
            findings.problem(
                Status::Warning,
                format!(
                    "{label}: {} did not replay far enough within the time budget ({:?}); \
                     compared {} rows",
                    settings.standby, settings.time_budget, walk.rows
                ),
            );
        } else if !walk.complete {
            findings.note(format!(
                "{label}: compared {} of about {:.0} rows within the time budget",
                walk.rows,
                table.estimated_rows.max(walk.rows as f64)
            ));
        }
        if walk.unsettled > 0 {
            findings.note(format!(
                "{label}: {} chunks changed while being compared and were skipped",
                walk.unsettled
            ));
        }
    }
    findings.note(format!(
        "{} tables compared: {rows} rows in {chunks} chunks, no difference",
        compared.len()
    ));
    Ok(())
}

/// `id in (100, 200] (id=150 changed, id=151 missing on standby)`.
fn describe_mismatch(settings: &Settings, table: &Table, range: &Range) -> Result<String> {
    let limit = settings.rows_per_chunk * 2 + 1;
    let (statement, params) = table.keys_statement(range, limit);
    let primary = keyed_hashes(&settings.primary, &statement, &params, table)?;
    let standby = keyed_hashes(&settings.standby, &statement, &params, table)?;
    let differences = diff::differences(&primary, &standby);
    let keys: Vec<String> = differences
        .iter()
        .take(KEYS_SHOWN)
        .map(|d| match d {
            Difference::Changed(key) => format!("{} changed", table.describe_key(key)),
            Difference::MissingOnStandby(key) => {
                format!("{} missing on standby", table.describe_key(key))
            }
            Difference::OnlyOnStandby(key) => {
                format!("{} only on standby", table.describe_key(key))
            }
        })
        .collect();
    let range = table.describe(range);
    Ok(if keys.is_empty() {
        range
    } else {
        let more = differences.len().saturating_sub(KEYS_SHOWN);
        let more = if more > 0 {
            format!(", {more} more")
        } else {
            String::new()
        };
        format!("{range} ({}{more})", keys.join(", "))
    })
}

fn keyed_hashes(
    target: &str,
    statement: &str,
    params: &[sql::Value],
    table: &Table,
) -> Result<Vec<(Key, String)>> {
    let rows = sql::query(target, statement, params)?;
    let mut keyed = Vec::with_capacity(rows.len());
    for row in rows.iter() {
        if let Some(key) = key_of(&row, table.key.len())? {
            keyed.push((key, row.text("h")?.unwrap_or_default().to_string()));
        }
    }
    Ok(keyed)
}

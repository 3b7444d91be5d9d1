//! The `mysql-consistency` section: `mysql-consistency` against
//! `pt-table-checksum` finding one row changed on a replica of a
//! 1,000,000-row table, from `tests/examples/mysql_consistency_bench.rs`:
//! the time each took and the CPU the primary's (and the replica's)
//! `mariadbd` spent meanwhile, each the median of the rounds.

use super::{Options, Row};

/// Debian packages the comparison needs.
pub const PACKAGES: &[&str] = &["percona-toolkit", "mariadb-server"];

/// What each figure of the example is, for the table.
fn describe(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "watchpost-consistency-time" => (
            "mysql-consistency: one changed row in a 1M-row table found (one run over the whole table, default chunks: sized to take 250 ms)",
            "",
        ),
        "watchpost-consistency-primary-cpu" => (
            "mysql-consistency: CPU of the primary's mariadbd during that run",
            "the load it adds on the primary",
        ),
        "watchpost-consistency-replica-cpu" => (
            "mysql-consistency: CPU of the replica's mariadbd during that run",
            "",
        ),
        "pt-table-checksum-consistency-time" => (
            "peer: pt-table-checksum 3.2 (defaults, --replicate) finding the same row",
            "the peer, same data and run",
        ),
        "pt-table-checksum-consistency-primary-cpu" => {
            ("peer: pt-table-checksum, CPU of the primary's mariadbd", "")
        }
        "pt-table-checksum-consistency-replica-cpu" => {
            ("peer: pt-table-checksum, CPU of the replica's mariadbd", "")
        }
        _ => return None,
    })
}

pub fn run(options: &Options) -> Result<Vec<Row>, String> {
    let rounds = if options.quick { 1 } else { options.rounds };
    let mut rows = Vec::new();
    for value in super::example::json_lines(
        "mysql-consistency",
        "mysql_consistency_bench",
        &[rounds.to_string()],
    )? {
        let Some((what, note)) = value["benchmark"].as_str().and_then(describe) else {
            continue;
        };
        rows.push(Row::new(
            what,
            format!(
                "{:.1} {} (range {:.1}-{:.1}, {} rounds)",
                value["value"].as_f64().unwrap_or(f64::NAN),
                value["unit"].as_str().unwrap_or(""),
                value["min"].as_f64().unwrap_or(f64::NAN),
                value["max"].as_f64().unwrap_or(f64::NAN),
                value["rounds"]
            ),
            note,
        ));
    }
    Ok(rows)
}

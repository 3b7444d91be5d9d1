//! Data checksums: whether the cluster has them, and how many pages
//! failed verification (`pg_stat_database.checksum_failures`, counted
//! since the statistics were last reset; `SELECT pg_stat_reset()` in a
//! database clears its count once the damage is repaired).

use watchpost_probe::{Result, sql};

const CHECKSUMS: &str = "\
SELECT current_setting('data_checksums') = 'on' AS enabled, \
       coalesce(sum(checksum_failures), 0)::int8 AS failures, \
       max(checksum_last_failure)::text AS last_failure, \
       string_agg(coalesce(datname, '(shared catalogs)') || ': ' || checksum_failures, ', ' \
                  ORDER BY datname) FILTER (WHERE checksum_failures > 0) AS databases \
FROM pg_stat_database";

pub struct Checksums {
    pub enabled: bool,
    pub failures: u64,
    /// When the last failure happened, if any.
    pub last_failure: Option<String>,
    /// `db: count` for each database with failures.
    pub databases: Option<String>,
}

pub fn read(target: &str) -> Result<Checksums> {
    let rows = sql::query(target, CHECKSUMS, &[])?;
    let row = rows.first()?;
    Ok(Checksums {
        enabled: row.bool("enabled")?.unwrap_or(false),
        failures: row.int("failures")?.unwrap_or(0).max(0) as u64,
        last_failure: row.text("last_failure")?.map(String::from),
        databases: row.text("databases")?.map(String::from),
    })
}

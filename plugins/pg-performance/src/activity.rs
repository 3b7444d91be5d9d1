//! Load and hygiene numbers from the statistics views, one part each so
//! that one that cannot be read leaves the others reporting: connections
//! in use, the oldest open transaction (prepared ones included),
//! transaction-ID age, and the buffer cache hit ratio.

use watchpost_probe::{Result, sql};

/// Client sessions and `max_connections`. Every session's row is visible
/// to any role (only its details are hidden), so this needs no privilege.
pub fn connections(target: &str) -> Result<(f64, f64)> {
    let rows = sql::query(
        target,
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8 \
                  AS connections, \
                current_setting('max_connections')::int8 AS max_connections",
        &[],
    )?;
    let row = rows.first()?;
    Ok((
        row.float("connections")?.unwrap_or(0.0),
        row.float("max_connections")?.unwrap_or(0.0),
    ))
}

/// Seconds the oldest open transaction has been running (0 if none),
/// prepared transactions included. Other roles' `xact_start` is NULL to a
/// role without `pg_monitor`: then this part cannot be read at all (a
/// hidden 15 s transaction must not read as "0 s").
pub fn oldest_transaction(target: &str) -> Result<f64> {
    if !sql::sees_all_stats(target)? {
        return Err(sql::needs_pg_monitor(target, "other roles' transactions"));
    }
    let rows = sql::query(
        target,
        "SELECT greatest( \
           (SELECT max(extract(epoch FROM now() - xact_start)) FROM pg_stat_activity \
             WHERE xact_start IS NOT NULL AND backend_type = 'client backend' \
               AND pid <> pg_backend_pid()), \
           (SELECT max(extract(epoch FROM now() - prepared)) FROM pg_prepared_xacts), \
           0)::float8 AS oldest_transaction",
        &[],
    )?;
    Ok(rows.first()?.float("oldest_transaction")?.unwrap_or(0.0))
}

/// Transactions since the oldest database was last frozen.
pub fn xid_age(target: &str) -> Result<f64> {
    let rows = sql::query(
        target,
        "SELECT max(age(datfrozenxid))::int8 AS xid_age FROM pg_database",
        &[],
    )?;
    Ok(rows.first()?.float("xid_age")?.unwrap_or(0.0))
}

/// Block reads served from shared buffers, 0 to 1 (`None` before any).
pub fn cache_hit_ratio(target: &str) -> Result<Option<f64>> {
    let rows = sql::query(
        target,
        "SELECT sum(blks_hit)::float8 / nullif(sum(blks_hit) + sum(blks_read), 0) \
           AS cache_hit_ratio FROM pg_stat_database",
        &[],
    )?;
    rows.first()?.float("cache_hit_ratio")
}

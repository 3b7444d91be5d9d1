//! Load and hygiene numbers from the statistics views, in one statement:
//! connections in use, the oldest open transaction (prepared ones
//! included), transaction-ID age, and the buffer cache hit ratio.

use watchpost_probe::{Result, sql};

const ACTIVITY: &str = "\
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8 \
         AS connections, \
       current_setting('max_connections')::int8 AS max_connections, \
       greatest( \
         (SELECT max(extract(epoch FROM now() - xact_start)) FROM pg_stat_activity \
           WHERE xact_start IS NOT NULL AND backend_type = 'client backend' \
             AND pid <> pg_backend_pid()), \
         (SELECT max(extract(epoch FROM now() - prepared)) FROM pg_prepared_xacts), \
         0)::float8 AS oldest_transaction, \
       (SELECT max(age(datfrozenxid)) FROM pg_database)::int8 AS xid_age, \
       (SELECT sum(blks_hit)::float8 / nullif(sum(blks_hit) + sum(blks_read), 0) \
          FROM pg_stat_database) AS cache_hit_ratio";

pub struct Activity {
    pub connections: f64,
    pub max_connections: f64,
    /// Seconds the oldest open transaction has been running (0 if none).
    pub oldest_transaction: f64,
    /// Transactions since the oldest database was last frozen.
    pub xid_age: f64,
    /// Block reads served from shared buffers, 0 to 1 (`None` before any).
    pub cache_hit_ratio: Option<f64>,
}

pub fn read(target: &str) -> Result<Activity> {
    let rows = sql::query(target, ACTIVITY, &[])?;
    let row = rows.first()?;
    Ok(Activity {
        connections: row.float("connections")?.unwrap_or(0.0),
        max_connections: row.float("max_connections")?.unwrap_or(0.0),
        oldest_transaction: row.float("oldest_transaction")?.unwrap_or(0.0),
        xid_age: row.float("xid_age")?.unwrap_or(0.0),
        cache_hit_ratio: row.float("cache_hit_ratio")?,
    })
}

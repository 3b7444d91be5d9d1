//! Load and hygiene numbers from the statistics views, one part each so
//! that one that cannot be read leaves the others reporting: connections
//! in use against the slots ordinary clients can get, the oldest open transaction (prepared ones included),
//! transaction-ID age, and the buffer cache hit ratio.

use watchpost_probe::{Result, sql};

/// Connection slots as clients see them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slots {
    /// Client sessions connected (superusers' included).
    pub used: f64,
    /// `max_connections`.
    pub max: f64,
    /// Slots only superusers (`superuser_reserved_connections`) or roles
    /// with `pg_use_reserved_connections` (`reserved_connections`,
    /// PostgreSQL 16+) may take.
    pub reserved: f64,
}

impl Slots {
    /// Slots an ordinary role can ever get: `max_connections` less the
    /// reserved ones (at least 1, so that a ratio stays finite).
    pub fn ordinary(&self) -> f64 {
        (self.max - self.reserved).max(1.0)
    }

    /// Slots an ordinary role can still get now: PostgreSQL refuses it
    /// once no more than the reserved slots are free.
    pub fn ordinary_left(&self) -> f64 {
        (self.max - self.reserved - self.used).max(0.0)
    }

    /// Sessions over the slots ordinary roles can get: 1 means the next
    /// ordinary client is refused (above 1: superusers hold reserved ones).
    pub fn used_ratio(&self) -> f64 {
        self.used / self.ordinary()
    }
}

/// Client sessions, `max_connections` and the reserved slots. Every
/// session's row is visible to any role (only its details are hidden),
/// so this needs no privilege; `reserved_connections` is read where the
/// server has it (16+).
pub fn connections(target: &str) -> Result<Slots> {
    let rows = sql::query(
        target,
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8 \
                  AS connections, \
                current_setting('max_connections')::int8 AS max_connections, \
                (SELECT coalesce(sum(setting::int8), 0) FROM pg_settings \
                  WHERE name IN ('superuser_reserved_connections', 'reserved_connections'))::int8 \
                  AS reserved",
        &[],
    )?;
    let row = rows.first()?;
    Ok(Slots {
        used: row.float("connections")?.unwrap_or(0.0),
        max: row.float("max_connections")?.unwrap_or(0.0),
        reserved: row.float("reserved")?.unwrap_or(0.0),
    })
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

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn reserved_slots_are_not_capacity_for_ordinary_clients() {
        // max_connections 20, 3 reserved for superusers: 17 ordinary
        // sessions and the probe's own take every slot applications get.
        let full = Slots {
            used: 18.0,
            max: 20.0,
            reserved: 3.0,
        };
        assert_eq!(full.ordinary(), 17.0);
        assert_eq!(full.ordinary_left(), 0.0);
        assert!(full.used_ratio() > 1.0);
        let half = Slots {
            used: 8.0,
            max: 20.0,
            reserved: 4.0,
        };
        assert_eq!((half.ordinary_left(), half.used_ratio()), (8.0, 0.5));
        let none_left = Slots {
            used: 0.0,
            max: 3.0,
            reserved: 3.0,
        };
        assert_eq!(none_left.ordinary(), 1.0);
    }
}

//! `mysql-replication`: is MariaDB/MySQL replication healthy, seen from the
//! replica and from the primary?
//!
//! On the replica (`SHOW REPLICA STATUS`, or `SHOW SLAVE STATUS` and its
//! `Slave_*`/`Master_*` columns where the server predates the new
//! spelling; every source of a multi-source replica): the IO and SQL
//! threads and their last errors by number, `Seconds_Behind_Source`, the
//! delay by a heartbeat row the primary writes, transactions received but
//! not applied, errant GTIDs (transactions the primary never had; needs
//! the primary granted) and semi-sync. On the primary: the replicas it
//! sends its binlog to, whether its heartbeat writer runs, and semi-sync.
//! The replica's side runs first (a frozen primary can take the run's time
//! but not the replica's report). Each side and each part stands alone: one
//! that cannot be read is `unknown` with the reason (a missing grant is
//! named), the others keep reporting.
//!
//! Statuses: a thread not running (error number and text named), a replica
//! without a source, errant GTIDs and fewer replicas than `min_replicas`
//! are `critical`; semi-sync enabled but not in effect (fallen back to
//! asynchronous) is `warning`; delays and transactions not applied follow
//! their limits.
//!
//! Config (defaults in brackets):
//! - `primary` / `replica`: the targets [`primary` / `replica`, each used
//!   when granted].
//! - `heartbeat_table`: the table a heartbeat writer updates on the
//!   primary every second, as `database.table` (`pt-heartbeat --update
//!   --utc` makes and fills one) [unset: the delay is the server's
//!   `Seconds_Behind_Source`].
//! - `heartbeat_column`: its timestamp column [`ts`]; `heartbeat_utc`:
//!   whether it holds UTC (`pt-heartbeat --utc`) or the server's local
//!   time [true].
//! - `delay_warning` / `delay_critical`: seconds behind [30 / 300].
//! - `not_applied_warning` / `not_applied_critical`: transactions received
//!   but not applied [unset: measured only].
//! - `min_replicas`: replicas the primary must send its binlog to [1].
//!
//! Grants: `REPLICATION CLIENT` (MySQL; MariaDB 10.5+: `SLAVE MONITOR`,
//! `BINLOG MONITOR`), `PROCESS`, and `SELECT` on the heartbeat table.

mod gtid;
mod primary;
mod replica;

use watchpost_probe::sql;
use watchpost_probe::{
    Findings, Info, Kind, Probe, Report, Result, Status, Threshold, bail, config,
};

struct MysqlReplication;

/// The limits both sides apply.
pub(crate) struct Limits {
    pub delay: Threshold,
    pub not_applied: Option<Threshold>,
    pub min_replicas: u32,
}

/// The heartbeat table: what to read and how to name it.
pub(crate) struct Heartbeat {
    /// `db`.`table`, quoted.
    table: String,
    column: String,
    utc: bool,
    /// As the config wrote it, for messages.
    pub display: String,
}

impl Heartbeat {
    fn from_config() -> Result<Option<Heartbeat>> {
        let Some(name) = config::get::<String>("heartbeat_table")? else {
            return Ok(None);
        };
        let (db, table) = mysql_common::table_name(&name)
            .map_err(|e| watchpost_probe::Error::msg(format!("config `heartbeat_table`: {e}")))?;
        let column: String = config::get_or("heartbeat_column", "ts".to_string())?;
        Ok(Some(Heartbeat {
            table: format!(
                "{}.{}",
                mysql_common::quote(&db),
                mysql_common::quote(&table)
            ),
            column: mysql_common::quote(&column),
            utc: config::get_or("heartbeat_utc", true)?,
            display: name,
        }))
    }

    /// Seconds since the newest heartbeat, by `target`'s clock; `None`
    /// when the table has no row.
    pub fn age(&self, target: &str) -> Result<Option<f64>> {
        let now = if self.utc {
            "UTC_TIMESTAMP(6)"
        } else {
            "NOW(6)"
        };
        let statement = format!(
            "SELECT TIMESTAMPDIFF(MICROSECOND, CAST(MAX({}) AS DATETIME(6)), {now}) / 1000000 \
             AS age FROM {}",
            self.column, self.table
        );
        let rows = sql::query(target, &statement, &[])?;
        Ok(rows.first()?.float("age")?)
    }
}

/// Semi-sync on one side: when `enabled` (a variable, under either
/// spelling) is on, `status` (a status counter) must be on too.
pub(crate) fn semi_sync(
    target: &str,
    enabled: &[&str],
    status: &[&str],
    side: &str,
    f: &mut Findings,
) -> Result<()> {
    let mut on = None;
    for name in enabled {
        if let Some(value) = mysql_common::variable(target, name)? {
            on = mysql_common::number(&value);
            break;
        }
    }
    // No such variable (plugin not loaded) or off: nothing to check.
    if on.unwrap_or(0.0) == 0.0 {
        return Ok(());
    }
    let counters = mysql_common::status(target, status)?;
    let active = counters
        .values()
        .next()
        .and_then(mysql_common::number)
        .unwrap_or(0.0);
    f.push(watchpost_probe::measurement("mysql.semi_sync.active", active, "1").attr("side", side));
    if active == 0.0 {
        f.problem(
            Status::Warning,
            format!(
                "semi-sync is enabled on the {side} {target} but not in effect: it fell back to \
                 asynchronous replication (no replica acknowledged in time), so a failover now \
                 can lose committed transactions"
            ),
        );
    }
    Ok(())
}

impl Probe for MysqlReplication {
    fn describe() -> Info {
        Info::new(
            "mysql-replication",
            Kind::Availability,
            "MariaDB/MySQL replication: threads, errors, delay, GTIDs, semi-sync, replicas",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "mysql.replica.io_running",
            "1",
            "1 when the IO thread receives, per source",
        )
        .measures(
            "mysql.replica.sql_running",
            "1",
            "1 when the SQL thread applies, per source",
        )
        .measures(
            "mysql.replica.last_error_number",
            "1",
            "the last error number of the io or sql thread (0: none), per source",
        )
        .measures(
            "mysql.replica.time_behind_source",
            "s",
            "Seconds_Behind_Source as the server reports it (0 while the primary is frozen)",
        )
        .measures(
            "mysql.replica.sql_delay",
            "s",
            "configured delayed replication",
        )
        .measures(
            "mysql.replica.heartbeat_delay",
            "s",
            "age of the newest heartbeat row on the replica",
        )
        .measures(
            "mysql.replica.transactions_not_applied",
            "{transaction}",
            "transactions received from the source but not applied",
        )
        .measures(
            "mysql.replica.errant_gtids",
            "1",
            "GTIDs on the replica its primary never had",
        )
        .measures(
            "mysql.replication.replicas",
            "1",
            "replicas the primary sends its binlog to",
        )
        .measures(
            "mysql.heartbeat.age",
            "s",
            "age of the newest heartbeat row on the primary",
        )
        .measures(
            "mysql.semi_sync.active",
            "1",
            "1 when enabled semi-sync is in effect, per side",
        )
    }

    fn check() -> Result<Report> {
        let limits = Limits {
            delay: Threshold::above(30.0, 300.0).configured("delay_warning", "delay_critical")?,
            not_applied: Threshold::optional_above("not_applied_warning", "not_applied_critical")?,
            min_replicas: config::get_or("min_replicas", 1)?,
        };
        let heartbeat = Heartbeat::from_config()?;
        let primary = sql::optional_target("primary", "primary")?;
        let replica = sql::optional_target("replica", "replica")?;
        if primary.is_none() && replica.is_none() {
            bail!(
                "no target to check: grant the probe a target named `primary` and/or `replica`, \
                 or name them with `primary = \"...\"` / `replica = \"...\"` in its config"
            );
        }
        let mut findings = Findings::new();
        if let Some(target) = &replica {
            findings.part(&format!("replica `{target}`"), |f| {
                replica::check(target, primary.as_deref(), &limits, heartbeat.as_ref(), f)
            });
        }
        if let Some(target) = &primary {
            findings.part(&format!("primary `{target}`"), |f| {
                primary::check(target, &limits, heartbeat.as_ref(), f)
            });
        }
        Ok(findings.into_report())
    }
}

watchpost_probe::export_probe!(MysqlReplication);

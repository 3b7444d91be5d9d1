//! `mysql-performance`: how fast and how loaded is the MariaDB/MySQL
//! server?
//!
//! - A canary statement run `tries` times on a pooled session, timed as a
//!   client sees it: each try as one `db.client.operation.duration` (s)
//!   {db.system.name = `mariadb` | `mysql`} sample, and
//!   `mysql.canary.duration` (s) {statistic = `p50` | `max`}; the limits
//!   apply to the median.
//! - `mysql.connections.used_ratio`: `Threads_connected` over
//!   `max_connections` (1: the next ordinary client is refused with 1040),
//!   and `mysql.threads` {kind = `connected` | `running`}.
//! - `mysql.transaction.oldest_age` (s): the oldest open InnoDB
//!   transaction (`SHOW ENGINE INNODB STATUS`, needs `PROCESS`; not
//!   `INNODB_TRX`, whose cached snapshot goes stale while others read it
//!   often: see `transactions`), its session id and statement named when
//!   past a limit.
//! - `mysql.innodb.history_list_length`: undo records not purged yet
//!   (grows behind a long transaction; `Innodb_history_list_length` on
//!   MariaDB, `INNODB_METRICS` on MySQL).
//! - `mysql.buffer_pool.hit_ratio`: page reads served from the buffer pool
//!   since the server started.
//! - `mysql.query.slow.count`: statements past `long_query_time` since
//!   the server started (`Slow_queries`; the OpenTelemetry receiver's name).
//! - With `performance_schema` on: the `slow_statements` statement digests
//!   with the highest mean time, `mysql.statement.mean_duration` (s)
//!   {statement = digest, db.query.text}.
//!
//! Limits are upper limits unless noted.
//!
//! Config (defaults in brackets):
//! - `target`: the target to check [`primary`].
//! - `canary`: the statement to time [`SELECT 1`]; `tries` [5].
//! - `latency_warning` / `latency_critical`: median canary seconds [0.1 / 1].
//! - `connections_warning` / `connections_critical`: used ratio [0.8 / 0.95].
//! - `transaction_warning` / `transaction_critical`: oldest transaction
//!   seconds [600 / 3600].
//! - `history_warning` / `history_critical`: history list length
//!   [1000000 / 10000000].
//! - `hit_ratio_warning` / `hit_ratio_critical`: lower limits of the
//!   buffer pool hit ratio [off].
//! - `slow_statements`: digests reported [5; 0 turns it off];
//!   `statement_warning` / `statement_critical`: mean seconds [off].
//!
//! Every part stands alone: one that cannot be read (a missing privilege
//! or setting) is `unknown` naming it, the others keep reporting.

mod activity;
mod transactions;

use watchpost_probe::{
    Findings, Info, Kind, Probe, Report, Result, Status, Threshold, bail, config, measurement, sql,
};

struct MysqlPerformance;

/// Every limit the probe applies.
pub(crate) struct Limits {
    latency: Threshold,
    connections: Threshold,
    pub transaction: Threshold,
    history: Threshold,
    hit_ratio: Option<Threshold>,
    pub statement: Option<Threshold>,
}

impl Limits {
    fn from_config() -> Result<Limits> {
        Ok(Limits {
            latency: Threshold::above(0.1, 1.0)
                .configured("latency_warning", "latency_critical")?,
            connections: Threshold::above(0.8, 0.95)
                .configured("connections_warning", "connections_critical")?,
            transaction: Threshold::above(600.0, 3600.0)
                .configured("transaction_warning", "transaction_critical")?,
            history: Threshold::above(1.0e6, 1.0e7)
                .configured("history_warning", "history_critical")?,
            hit_ratio: Threshold::optional_below("hit_ratio_warning", "hit_ratio_critical")?,
            statement: Threshold::optional_above("statement_warning", "statement_critical")?,
        })
    }
}

/// Record `value` against `limit`: a problem past it, a note within.
pub(crate) fn judge(findings: &mut Findings, limit: &Threshold, value: f64, text: String) {
    let status = limit.status(value);
    if status == Status::Ok {
        findings.note(text);
    } else {
        findings.problem(
            status,
            format!("{text} (limits {} / {})", limit.warning, limit.critical),
        );
    }
}

impl Probe for MysqlPerformance {
    fn describe() -> Info {
        Info::new(
            "mysql-performance",
            Kind::Performance,
            "MariaDB/MySQL latency, connections, long transactions, purge, buffer pool, slow statements",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures("db.client.operation.duration", "s", "duration of each canary try")
        .measures("mysql.canary.duration", "s", "canary statement latency, p50 and max")
        .measures("mysql.connections.used_ratio", "1", "Threads_connected over max_connections")
        .measures("mysql.threads", "{thread}", "threads by kind (connected, running)")
        .measures("mysql.transaction.oldest_age", "s", "age of the oldest open InnoDB transaction")
        .measures("mysql.innodb.history_list_length", "1", "undo records not purged yet")
        .measures("mysql.buffer_pool.hit_ratio", "1", "page reads served from the buffer pool")
        .measures("mysql.query.slow.count", "{query}", "statements past long_query_time since start")
        .measures(
            "mysql.statement.mean_duration",
            "s",
            "mean time of the slowest statement digests (performance_schema)",
        )
    }

    fn check() -> Result<Report> {
        let target = sql::target_from_config("target", "primary")?;
        let canary: String = config::get_or("canary", "SELECT 1".to_string())?;
        let tries: usize = config::get_or("tries", 5)?;
        if !(1..=100).contains(&tries) {
            bail!("config `tries` = {tries} must be between 1 and 100");
        }
        let slow_statements: i64 = config::get_or("slow_statements", 5)?;
        if slow_statements < 0 {
            bail!("config `slow_statements` = {slow_statements} must be 0 or more");
        }
        let limits = Limits::from_config()?;
        let mut findings = Findings::new();

        // The canary opens the pooled session the other parts reuse; a
        // server that cannot be reached ends the run here with its status.
        let engine = sql::engine(&target)?;
        match sql::canary::measure(&target, &canary, tries) {
            Ok(latency) => {
                for took in &latency.tries {
                    findings.push(
                        measurement("db.client.operation.duration", took.as_secs_f64(), "s")
                            .attr("db.system.name", engine.as_str()),
                    );
                }
                let p50 = latency.median.as_secs_f64();
                let max = latency.max.as_secs_f64();
                findings
                    .push(measurement("mysql.canary.duration", p50, "s").attr("statistic", "p50"));
                findings
                    .push(measurement("mysql.canary.duration", max, "s").attr("statistic", "max"));
                judge(
                    &mut findings,
                    &limits.latency,
                    p50,
                    format!(
                        "canary p50 {:.2} ms, max {:.2} ms over {tries} tries",
                        p50 * 1000.0,
                        max * 1000.0
                    ),
                );
            }
            Err(error) if error.status().is_some() => return Err(error),
            Err(error) => findings.problem(
                Status::Unknown,
                format!("canary: cannot be checked: {error}"),
            ),
        }
        findings.part("connections", |f| {
            let (connected, running, max) = activity::connections(&target)?;
            f.push(measurement("mysql.threads", connected, "{thread}").attr("kind", "connected"));
            f.push(measurement("mysql.threads", running, "{thread}").attr("kind", "running"));
            if max > 0.0 {
                let ratio = connected / max;
                f.push(measurement("mysql.connections.used_ratio", ratio, "1"));
                judge(
                    f,
                    &limits.connections,
                    ratio,
                    format!("{connected:.0} of max_connections {max:.0} used"),
                );
            }
            Ok(())
        });
        findings.part("oldest transaction", |f| {
            activity::oldest_transaction(&target, &limits, f)
        });
        findings.part("history list length", |f| {
            let length = activity::history_list_length(&target)?;
            f.push(measurement("mysql.innodb.history_list_length", length, "1"));
            judge(
                f,
                &limits.history,
                length,
                format!("history list length {length:.0}"),
            );
            Ok(())
        });
        findings.part("buffer pool", |f| {
            let (hit_ratio, slow) = activity::buffer_pool_and_slow(&target)?;
            if let Some(ratio) = hit_ratio {
                f.push(measurement("mysql.buffer_pool.hit_ratio", ratio, "1"));
                let text = format!("buffer pool hit ratio {ratio:.4}");
                match &limits.hit_ratio {
                    Some(limit) => judge(f, limit, ratio, text),
                    None => f.note(text),
                }
            }
            if let Some(slow) = slow {
                f.push(measurement("mysql.query.slow.count", slow, "{query}"));
            }
            Ok(())
        });
        if slow_statements > 0 {
            findings.part("statements", |f| {
                activity::statements(&target, slow_statements, &limits, f)
            });
        }
        Ok(findings.into_report())
    }
}

watchpost_probe::export_probe!(MysqlPerformance);

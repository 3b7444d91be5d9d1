//! `pg-performance`: how fast and how loaded is the PostgreSQL server?
//!
//! - A canary statement run `tries` times on a pooled session, timed as a
//!   client sees it: each try as one `db.client.operation.duration` (s)
//!   {db.system.name = `postgresql`} sample (the stable semantic
//!   convention's histogram; the agent exports it as a histogram), and
//!   `postgresql.canary.duration` (s) {statistic = `p50` | `max`}; the
//!   limits apply to the median.
//! - `postgresql.connections.used_ratio`: client sessions over the slots
//!   ordinary clients can get (`max_connections` less
//!   `superuser_reserved_connections` and, on 16+, `reserved_connections`):
//!   1 means the next ordinary client is refused.
//! - `postgresql.transaction.oldest_age` (s): the oldest open transaction,
//!   prepared transactions included (they hold back vacuum).
//! - `postgresql.xid.age`: transactions since the oldest database was
//!   frozen (autovacuum forces a freeze at 200 million; the server stops
//!   at about 2.1 billion).
//! - `postgresql.cache.hit_ratio`: block reads served from shared buffers.
//! - With `pg_stat_statements` loaded: the `slow_statements` statements with
//!   the highest mean execution time, `postgresql.statement.mean_duration`
//!   (s) {statement = queryid, db.query.text}.
//!
//! Config (defaults in brackets; limits are upper limits unless noted):
//! - `target`: the target to check [`primary`].
//! - `canary`: the statement to time [`SELECT 1`]; `tries` [5].
//! - `latency_warning` / `latency_critical`: median canary seconds [0.1 / 1].
//! - `connections_warning` / `connections_critical`: used ratio [0.8 / 0.95].
//! - `transaction_warning` / `transaction_critical`: oldest transaction
//!   seconds [600 / 3600].
//! - `xid_warning` / `xid_critical`: XID age [1000000000 / 1500000000].
//! - `cache_hit_warning` / `cache_hit_critical`: lower limits of the cache
//!   hit ratio [off].
//! - `slow_statements`: statements reported [5; 0 turns it off];
//!   `statement_warning` / `statement_critical`: mean seconds [off].
//!
//! Every part stands alone: one that cannot be read (a missing column or
//! extension, a missing privilege) is `unknown` with its reason, and the
//! others keep reporting. The role needs `pg_monitor` to see other roles'
//! transactions (without it that part is `unknown`, naming the privilege,
//! never "0 s") and statements.

mod activity;
mod statements;

use statements::Slowest;
use watchpost_probe::{
    Findings, Info, Kind, Measurement, Probe, Report, Result, Status, Threshold, bail, config,
    measurement, sql,
};

struct PgPerformance;

/// Every limit the probe applies.
struct Limits {
    latency: Threshold,
    connections: Threshold,
    transaction: Threshold,
    xid: Threshold,
    cache_hit: Option<Threshold>,
    statement: Option<Threshold>,
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
            xid: Threshold::above(1.0e9, 1.5e9).configured("xid_warning", "xid_critical")?,
            cache_hit: Threshold::optional_below("cache_hit_warning", "cache_hit_critical")?,
            statement: Threshold::optional_above("statement_warning", "statement_critical")?,
        })
    }
}

/// Record `value` against `limit`: a problem past it, a note within.
fn judge(findings: &mut Findings, limit: &Threshold, value: f64, text: String) {
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

fn canary_series(statistic: &str, seconds: f64) -> Measurement {
    measurement("postgresql.canary.duration", seconds, "s").attr("statistic", statistic)
}

/// One canary try, as a sample of the semantic convention's histogram.
fn operation(seconds: f64) -> Measurement {
    measurement("db.client.operation.duration", seconds, "s").attr("db.system.name", "postgresql")
}

impl Probe for PgPerformance {
    fn describe() -> Info {
        Info::new(
            "pg-performance",
            Kind::Performance,
            "PostgreSQL latency, connections, long transactions, wraparound, cache and slow statements",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures("db.client.operation.duration", "s", "duration of each canary try")
        .measures("postgresql.canary.duration", "s", "canary statement latency, p50 and max")
        .measures("postgresql.connections.used_ratio", "1", "client sessions over the slots ordinary clients can get (max_connections less reserved)")
        .measures("postgresql.transaction.oldest_age", "s", "age of the oldest open transaction")
        .measures("postgresql.xid.age", "1", "transactions since the oldest database was frozen")
        .measures("postgresql.cache.hit_ratio", "1", "block reads served from shared buffers")
        .measures(
            "postgresql.statement.mean_duration",
            "s",
            "mean execution time of the slowest statements (pg_stat_statements)",
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
        let limits = Limits::from_config()?;
        let mut findings = Findings::new();

        // The canary opens the pooled session the other parts reuse; a
        // server that cannot be reached ends the run here with its status.
        match sql::canary::measure(&target, &canary, tries) {
            Ok(latency) => report_canary(&latency, tries, &limits, &mut findings),
            Err(error) if error.status().is_some() => return Err(error),
            Err(error) => findings.problem(
                Status::Unknown,
                format!("canary: cannot be checked: {error}"),
            ),
        }
        // Each part stands alone: one that cannot be read is `unknown`
        // with its reason, the others keep reporting.
        findings.part("connections", |f| {
            let slots = activity::connections(&target)?;
            if slots.max > 0.0 {
                let ratio = slots.used_ratio();
                f.push(measurement("postgresql.connections.used_ratio", ratio, "1"));
                judge(
                    f,
                    &limits.connections,
                    ratio,
                    format!(
                        "{:.0} of {:.0} connections used, {:.0} of them reserved: \
                         ordinary clients have {:.0} of {:.0} left",
                        slots.used,
                        slots.max,
                        slots.reserved,
                        slots.ordinary_left(),
                        slots.ordinary()
                    ),
                );
            }
            Ok(())
        });
        findings.part("oldest transaction", |f| {
            let oldest = activity::oldest_transaction(&target)?;
            f.push(measurement(
                "postgresql.transaction.oldest_age",
                oldest,
                "s",
            ));
            judge(
                f,
                &limits.transaction,
                oldest,
                format!("oldest transaction {oldest:.0} s"),
            );
            Ok(())
        });
        findings.part("XID age", |f| {
            let age = activity::xid_age(&target)?;
            f.push(measurement("postgresql.xid.age", age, "1"));
            judge(f, &limits.xid, age, format!("XID age {age:.0}"));
            Ok(())
        });
        findings.part("cache hit ratio", |f| {
            if let Some(ratio) = activity::cache_hit_ratio(&target)? {
                f.push(measurement("postgresql.cache.hit_ratio", ratio, "1"));
                let text = format!("cache hit ratio {ratio:.3}");
                match &limits.cache_hit {
                    Some(limit) => judge(f, limit, ratio, text),
                    None => f.note(text),
                }
            }
            Ok(())
        });
        if slow_statements > 0 {
            findings.part("statements", |f| {
                report_statements(&target, slow_statements, &limits, f)
            });
        }
        Ok(findings.into_report())
    }
}

fn report_canary(
    latency: &sql::canary::Latency,
    tries: usize,
    limits: &Limits,
    findings: &mut Findings,
) {
    let p50 = latency.median.as_secs_f64();
    for try_ in &latency.tries {
        findings.push(operation(try_.as_secs_f64()));
    }
    findings.push(canary_series("p50", p50));
    findings.push(canary_series("max", latency.max.as_secs_f64()));
    judge(
        findings,
        &limits.latency,
        p50,
        format!(
            "canary p50 {:.2} ms, max {:.2} ms over {tries} tries",
            p50 * 1000.0,
            latency.max.as_secs_f64() * 1000.0
        ),
    );
}

fn report_statements(
    target: &str,
    limit: i64,
    limits: &Limits,
    findings: &mut Findings,
) -> Result<()> {
    let (statements, notes) = match statements::slowest(target, limit)? {
        Slowest::Found(statements, notes) => (statements, notes),
        Slowest::Unavailable(reason) => {
            findings.note(format!("no statement statistics: {reason}"));
            return Ok(());
        }
    };
    for note in notes {
        findings.note(note);
    }
    for statement in &statements {
        findings.push(
            measurement(
                "postgresql.statement.mean_duration",
                statement.mean_seconds,
                "s",
            )
            .attr("statement", statement.queryid.as_str())
            .attr("db.query.text", statement.text.as_str()),
        );
        if let Some(limit) = &limits.statement {
            let status = limit.status(statement.mean_seconds);
            if status != Status::Ok {
                findings.problem(
                    status,
                    format!(
                        "statement {} takes {:.3} s on average over {} calls: {}",
                        statement.queryid, statement.mean_seconds, statement.calls, statement.text
                    ),
                );
            }
        }
    }
    if let Some(slowest) = statements.first() {
        findings.note(format!(
            "slowest statement {:.1} ms on average",
            slowest.mean_seconds * 1000.0
        ));
    }
    Ok(())
}

watchpost_probe::export_probe!(PgPerformance);

//! The replica's side: per replication source, whether the IO thread
//! (receiving) and the SQL thread (applying) run and the last error of
//! each by number; the server's own `Seconds_Behind_Source`; then, on
//! their own, the delay from the heartbeat row, the GTIDs received but not
//! applied, errant GTIDs (with the primary granted) and semi-sync.
//!
//! `Seconds_Behind_Source` is the server's guess from the timestamps of
//! the events it applies: it reads 0 while the primary is frozen (no
//! events come, nothing is behind), and NULL when a thread is stopped. The
//! heartbeat row, written on the primary by `pt-heartbeat` or the like
//! every second, is the authority: its age on the replica grows with any
//! delay, frozen primary included. Both are reported.

use crate::gtid;
use crate::{Heartbeat, Limits};
use mysql_common::ReplicaRow;
use watchpost_probe::sql::{self, Value};
use watchpost_probe::{Findings, Result, Status, measurement};

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

pub fn check(
    target: &str,
    primary: Option<&str>,
    limits: &Limits,
    heartbeat: Option<&Heartbeat>,
    f: &mut Findings,
) -> Result<()> {
    let rows = mysql_common::replica_status(target)?;
    if rows.is_empty() {
        f.problem(
            Status::Critical,
            format!("{target} replicates from no source (no replica status): not a replica"),
        );
        return Ok(());
    }
    let mut behind: Option<f64> = None;
    for row in &rows {
        threads(target, row, f);
        if let Some(seconds) = row.number(&["Seconds_Behind_Source", "Seconds_Behind_Master"]) {
            behind = Some(behind.map_or(seconds, |b: f64| b.max(seconds)));
        }
    }
    let mariadb = sql::engine(target)? == "mariadb";
    match heartbeat {
        Some(heartbeat) => {
            f.part("heartbeat", |f| delay(target, heartbeat, limits, behind, f));
        }
        None => {
            // Without a heartbeat the server's own figure is all there is.
            if let Some(seconds) = behind {
                let status = limits.delay.status(seconds);
                f.problem(
                    status,
                    format!(
                        "{target} is {seconds:.0} s behind its source by Seconds_Behind_Source \
                         (limits {} / {} s; name a `heartbeat_table` for a delay that also sees \
                         a frozen primary)",
                        limits.delay.warning, limits.delay.critical
                    ),
                );
            }
        }
    }
    f.part("transactions not applied", |f| {
        not_applied(target, mariadb, &rows, limits, f)
    });
    match primary {
        Some(primary) => {
            f.part("errant GTIDs", |f| errant(target, primary, mariadb, f));
        }
        None => f.note(format!(
            "errant GTIDs not checked on {target}: grant the probe the `primary` target"
        )),
    }
    f.part("semi-sync (replica)", |f| {
        crate::semi_sync(
            target,
            &[
                "rpl_semi_sync_replica_enabled",
                "rpl_semi_sync_slave_enabled",
            ],
            &["Rpl_semi_sync_replica_status", "Rpl_semi_sync_slave_status"],
            "replica",
            f,
        )
    });
    Ok(())
}

/// The IO and SQL threads of one source, with their last errors.
fn threads(target: &str, row: &ReplicaRow, f: &mut Findings) {
    let source = row.source_name();
    let io = row
        .text(&["Replica_IO_Running", "Slave_IO_Running"])
        .unwrap_or_else(|| "unknown".into());
    let applying = row.yes(&["Replica_SQL_Running", "Slave_SQL_Running"]);
    let io_yes = io.eq_ignore_ascii_case("yes");
    f.push(measurement("mysql.replica.io_running", flag(io_yes), "1").attr("source", &source));
    f.push(measurement("mysql.replica.sql_running", flag(applying), "1").attr("source", &source));
    for (thread, number, text) in [
        ("io", "Last_IO_Errno", "Last_IO_Error"),
        ("sql", "Last_SQL_Errno", "Last_SQL_Error"),
    ] {
        let n = row.number(&[number]).unwrap_or(0.0);
        f.push(
            measurement("mysql.replica.last_error_number", n, "1")
                .attr("source", &source)
                .attr("thread", thread),
        );
        let running = if thread == "io" { io_yes } else { applying };
        if !running {
            let why = if n > 0.0 {
                format!(": error {n:.0}: {}", row.text(&[text]).unwrap_or_default())
            } else {
                String::new()
            };
            let state = if thread == "io" {
                format!("is {io} (not receiving)")
            } else {
                "is stopped (not applying)".to_string()
            };
            f.problem(
                Status::Critical,
                format!(
                    "{target}: the {} thread for source {source} {state}{why}",
                    thread.to_uppercase()
                ),
            );
        }
    }
    if let Some(seconds) = row.number(&["Seconds_Behind_Source", "Seconds_Behind_Master"]) {
        f.push(
            measurement("mysql.replica.time_behind_source", seconds, "s").attr("source", &source),
        );
    }
    if let Some(seconds) = row.number(&["SQL_Delay"]).filter(|s| *s > 0.0) {
        f.push(measurement("mysql.replica.sql_delay", seconds, "s").attr("source", &source));
    }
}

/// The heartbeat row's age on the replica, against the delay limits.
fn delay(
    target: &str,
    heartbeat: &Heartbeat,
    limits: &Limits,
    behind: Option<f64>,
    f: &mut Findings,
) -> Result<()> {
    let Some(age) = heartbeat.age(target)? else {
        f.problem(
            Status::Warning,
            format!(
                "{target}: the heartbeat table {} has no row: is its writer (pt-heartbeat \
                 --update) running on the primary?",
                heartbeat.display
            ),
        );
        return Ok(());
    };
    f.push(measurement("mysql.replica.heartbeat_delay", age, "s"));
    let status = limits.delay.status(age);
    let server_says = behind.map_or("NULL (a thread is stopped)".to_string(), |s| {
        format!("{s:.0} s")
    });
    f.problem(
        status,
        format!(
            "{target} is {age:.1} s behind by its heartbeat row (limits {} / {} s; \
             Seconds_Behind_Source says {server_says})",
            limits.delay.warning, limits.delay.critical
        ),
    );
    Ok(())
}

/// Transactions received from the source but not applied yet.
fn not_applied(
    target: &str,
    mariadb: bool,
    rows: &[ReplicaRow],
    limits: &Limits,
    f: &mut Findings,
) -> Result<()> {
    let count = if mariadb {
        let mut received = Vec::new();
        for row in rows {
            if let Some(text) = row.text(&["Gtid_IO_Pos"]) {
                received.extend(gtid::parse_mariadb(&text).map_err(watchpost_probe::Error::msg)?);
            }
        }
        let applied = text_variable(target, "gtid_slave_pos")?;
        let applied = gtid::parse_mariadb(&applied).map_err(watchpost_probe::Error::msg)?;
        gtid::mariadb_not_applied(&received, &applied)
    } else {
        let mut total = 0;
        for row in rows {
            let retrieved = row.text(&["Retrieved_Gtid_Set"]).unwrap_or_default();
            let executed = row.text(&["Executed_Gtid_Set"]).unwrap_or_default();
            let rest = sql::query(
                target,
                "SELECT GTID_SUBTRACT(?, ?) AS rest",
                &[
                    Value::from(mysql_common::gtid_text(&retrieved)),
                    Value::from(mysql_common::gtid_text(&executed)),
                ],
            )?;
            let rest = rest.first()?.text("rest")?.unwrap_or_default().to_string();
            total += gtid::mysql_count(&rest).map_err(watchpost_probe::Error::msg)?;
        }
        total
    };
    f.push(measurement(
        "mysql.replica.transactions_not_applied",
        count as f64,
        "{transaction}",
    ));
    if let Some(limit) = limits.not_applied {
        f.problem(
            limit.status(count as f64),
            format!(
                "{target} received {count} transactions it has not applied (limits {} / {})",
                limit.warning, limit.critical
            ),
        );
    }
    Ok(())
}

/// Transactions the replica has that its primary never had: a write on
/// the replica. Such a replica cannot be promoted without losing them or
/// rejoined without conflicts.
fn errant(target: &str, primary: &str, mariadb: bool, f: &mut Findings) -> Result<()> {
    let errant: Vec<String> = if mariadb {
        let replica_state = text_variable(target, "gtid_binlog_state")?;
        let primary_state = text_variable(primary, "gtid_binlog_state")?;
        let parse = |t: &str| gtid::parse_mariadb(t).map_err(watchpost_probe::Error::msg);
        gtid::mariadb_errant(&parse(&replica_state)?, &parse(&primary_state)?)
            .iter()
            .map(ToString::to_string)
            .collect()
    } else {
        let replica = text_variable(target, "gtid_executed")?;
        let primary_set = text_variable(primary, "gtid_executed")?;
        let rest = sql::query(
            target,
            "SELECT GTID_SUBTRACT(?, ?) AS rest",
            &[
                Value::from(mysql_common::gtid_text(&replica)),
                Value::from(mysql_common::gtid_text(&primary_set)),
            ],
        )?;
        let rest = rest.first()?.text("rest")?.unwrap_or_default().to_string();
        rest.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    f.push(measurement(
        "mysql.replica.errant_gtids",
        errant.len() as f64,
        "1",
    ));
    if !errant.is_empty() {
        f.problem(
            Status::Critical,
            format!(
                "{target} has transactions its primary {primary} never had (errant GTIDs {}): \
                 a write on the replica; it cannot be promoted or rejoined safely until they \
                 are reconciled",
                errant.join(",")
            ),
        );
    }
    Ok(())
}

/// A global variable as text (`''` when NULL or absent).
pub fn text_variable(target: &str, name: &str) -> Result<String> {
    Ok(match mysql_common::variable(target, name)? {
        Some(Value::Text(t)) => t,
        Some(Value::Bytes(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    })
}

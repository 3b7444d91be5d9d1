//! What the server's counters and InnoDB's tables say about load: client
//! threads, the oldest transaction, the purge backlog, buffer pool reads,
//! slow statements and the slowest statement digests.

use crate::{Limits, judge, transactions};
use mysql_common::{is_access_denied, needs_grant, number, status, variable};
use watchpost_probe::sql::{self, Value};
use watchpost_probe::{Error, Findings, Result, measurement};

/// MySQL's history list length (MariaDB has a status counter).
const HISTORY_METRIC: &str = "\
SELECT `COUNT` AS n FROM information_schema.INNODB_METRICS WHERE NAME = 'trx_rseg_history_len'";

const DIGESTS: &str = "\
SELECT DIGEST AS digest, LEFT(COALESCE(DIGEST_TEXT, ''), 200) AS text, COUNT_STAR AS calls, \
       AVG_TIMER_WAIT / 1000000000000 AS mean \
FROM performance_schema.events_statements_summary_by_digest \
WHERE DIGEST IS NOT NULL ORDER BY AVG_TIMER_WAIT DESC LIMIT ?";

fn counter(found: &std::collections::BTreeMap<String, Value>, name: &str) -> Option<f64> {
    found.get(name).and_then(number)
}

/// (threads connected, threads running, max_connections).
pub fn connections(target: &str) -> Result<(f64, f64, f64)> {
    let found = status(target, &["Threads_connected", "Threads_running"])?;
    let max = variable(target, "max_connections")?
        .as_ref()
        .and_then(number)
        .unwrap_or(0.0);
    Ok((
        counter(&found, "Threads_connected").unwrap_or(0.0),
        counter(&found, "Threads_running").unwrap_or(0.0),
        max,
    ))
}

/// The oldest open transaction's age, judged; its session and statement
/// named when past a limit. Read from `SHOW ENGINE INNODB STATUS` (see
/// [`crate::transactions`] for why not `INNODB_TRX`).
pub fn oldest_transaction(target: &str, limits: &Limits, f: &mut Findings) -> Result<()> {
    let rows = match sql::query(target, "SHOW ENGINE INNODB STATUS", &[]) {
        Ok(rows) => rows,
        Err(error) if is_access_denied(&error) => {
            return Err(needs_grant(
                target,
                "other sessions' transactions",
                "PROCESS",
                &error,
            ));
        }
        Err(error) => return Err(error.into()),
    };
    let status = match rows.first()?.get("Status")? {
        Value::Text(text) => text.clone(),
        Value::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    };
    let open = transactions::parse(&status);
    let Some(oldest) = transactions::oldest(&open) else {
        f.push(measurement("mysql.transaction.oldest_age", 0.0, "s"));
        f.note("no open transaction");
        return Ok(());
    };
    let age = oldest.age as f64;
    f.push(measurement("mysql.transaction.oldest_age", age, "s"));
    let session = oldest.session.map_or_else(
        || "no session: recovered or XA prepared".to_string(),
        |s| format!("session {s}"),
    );
    let doing = if oldest.statement.is_empty() {
        "idle in transaction".to_string()
    } else {
        format!("running `{}`", oldest.statement)
    };
    let state = if oldest.state.is_empty() {
        String::new()
    } else {
        format!(", {}", oldest.state)
    };
    judge(
        f,
        &limits.transaction,
        age,
        format!(
            "oldest transaction {age:.0} s ({session}{state}, {doing}; {} open)",
            open.len()
        ),
    );
    Ok(())
}

/// Undo log records not purged yet.
pub fn history_list_length(target: &str) -> Result<f64> {
    let found = status(target, &["Innodb_history_list_length"])?;
    if let Some(length) = counter(&found, "Innodb_history_list_length") {
        return Ok(length);
    }
    match sql::query(target, HISTORY_METRIC, &[]) {
        Ok(rows) => rows.first()?.float("n")?.ok_or_else(|| {
            Error::msg(
                "INNODB_METRICS has no trx_rseg_history_len: enable it with \
                        SET GLOBAL innodb_monitor_enable = 'trx_rseg_history_len'",
            )
        }),
        Err(error) if is_access_denied(&error) => {
            Err(needs_grant(target, "InnoDB's metrics", "PROCESS", &error))
        }
        Err(error) => Err(error.into()),
    }
}

/// (buffer pool hit ratio, slow queries), each when the server counts it.
pub fn buffer_pool_and_slow(target: &str) -> Result<(Option<f64>, Option<f64>)> {
    let found = status(
        target,
        &[
            "Innodb_buffer_pool_reads",
            "Innodb_buffer_pool_read_requests",
            "Slow_queries",
        ],
    )?;
    let from_disk = counter(&found, "Innodb_buffer_pool_reads");
    let requests = counter(&found, "Innodb_buffer_pool_read_requests");
    let ratio = match (from_disk, requests) {
        (Some(disk), Some(requests)) if requests > 0.0 => Some(1.0 - (disk / requests).min(1.0)),
        _ => None,
    };
    Ok((ratio, counter(&found, "Slow_queries")))
}

/// The slowest statement digests by mean time, when performance_schema is on.
pub fn statements(target: &str, limit: i64, limits: &Limits, f: &mut Findings) -> Result<()> {
    let on = variable(target, "performance_schema")?
        .as_ref()
        .and_then(number)
        .unwrap_or(0.0);
    if on == 0.0 {
        f.note(
            "no statement digests: performance_schema is off (performance_schema = ON in the \
                server's config turns them on)",
        );
        return Ok(());
    }
    let rows = match sql::query(target, DIGESTS, &[Value::Int(limit)]) {
        Ok(rows) => rows,
        Err(error) if is_access_denied(&error) => {
            return Err(needs_grant(
                target,
                "statement digests",
                "SELECT ON performance_schema.*",
                &error,
            ));
        }
        Err(error) => return Err(error.into()),
    };
    for row in rows.iter() {
        let digest = row.text("digest")?.unwrap_or("").to_string();
        let text = row.text("text")?.unwrap_or("").to_string();
        let mean = row.float("mean")?.unwrap_or(0.0);
        let calls = row.int("calls")?.unwrap_or(0);
        f.push(
            measurement("mysql.statement.mean_duration", mean, "s")
                .attr("statement", digest.as_str())
                .attr("db.query.text", text.as_str()),
        );
        if let Some(limit) = &limits.statement {
            let status = limit.status(mean);
            if status != watchpost_probe::Status::Ok {
                f.problem(
                    status,
                    format!(
                        "statement {digest} takes {mean:.3} s on average over {calls} calls: {text}"
                    ),
                );
            }
        }
    }
    Ok(())
}

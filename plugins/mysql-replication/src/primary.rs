//! The primary's side: how many replicas are connected to it (sessions
//! sending them the binlog, `Binlog Dump` and `Binlog Dump GTID` in the
//! process list), whether its heartbeat writer runs (the newest heartbeat
//! row is fresh on the primary itself) and whether semi-sync, when
//! enabled, is in effect or has fallen back to asynchronous replication.
//!
//! The process list shows other accounts' sessions only with `PROCESS`:
//! without it the count would read 0, so the part is `unknown` naming the
//! grant instead.

use crate::{Heartbeat, Limits};
use watchpost_probe::{Findings, Result, Status, measurement, sql};

const REPLICAS: &str = "\
SELECT COUNT(*) AS replicas FROM information_schema.PROCESSLIST \
WHERE COMMAND IN ('Binlog Dump', 'Binlog Dump GTID')";

/// 1 when the current account holds `PROCESS` globally.
const HAS_PROCESS: &str = "\
SELECT COUNT(*) AS granted FROM information_schema.USER_PRIVILEGES \
WHERE PRIVILEGE_TYPE = 'PROCESS' AND GRANTEE = CONCAT('''', \
  SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')";

pub fn check(
    target: &str,
    limits: &Limits,
    heartbeat: Option<&Heartbeat>,
    f: &mut Findings,
) -> Result<()> {
    f.part("replicas", |f| {
        let granted = sql::query(target, HAS_PROCESS, &[])?;
        if granted.first()?.int("granted")?.unwrap_or(0) == 0 {
            watchpost_probe::bail!(
                "cannot see the replicas' sessions on `{target}`: grant PROCESS to the probes' \
                 account (GRANT PROCESS ON *.* TO ...)"
            );
        }
        let rows = sql::query(target, REPLICAS, &[])?;
        let replicas = rows.first()?.int("replicas")?.unwrap_or(0);
        f.push(measurement(
            "mysql.replication.replicas",
            replicas as f64,
            "1",
        ));
        let status = if replicas < i64::from(limits.min_replicas) {
            Status::Critical
        } else {
            Status::Ok
        };
        f.problem(
            status,
            format!(
                "{target} sends its binlog to {replicas} replica(s) (min_replicas {})",
                limits.min_replicas
            ),
        );
        Ok(())
    });
    if let Some(heartbeat) = heartbeat {
        f.part("heartbeat writer", |f| {
            match heartbeat.age(target)? {
                Some(age) => {
                    f.push(measurement("mysql.heartbeat.age", age, "s"));
                    if age > limits.delay.warning {
                        f.problem(
                            Status::Warning,
                            format!(
                                "the newest heartbeat row on the primary {target} is {age:.1} s \
                                 old: its writer (pt-heartbeat --update) is not running, so \
                                 replica delays read high"
                            ),
                        );
                    }
                }
                None => f.problem(
                    Status::Warning,
                    format!(
                        "the heartbeat table {} on the primary {target} has no row: start its \
                         writer (pt-heartbeat --update)",
                        heartbeat.display
                    ),
                ),
            }
            Ok(())
        });
    }
    f.part("semi-sync (primary)", |f| {
        crate::semi_sync(
            target,
            &[
                "rpl_semi_sync_source_enabled",
                "rpl_semi_sync_master_enabled",
            ],
            &["Rpl_semi_sync_source_status", "Rpl_semi_sync_master_status"],
            "primary",
            f,
        )
    });
    Ok(())
}

//! `mysql-integrity`: are the MariaDB/MySQL tables intact?
//!
//! `CHECK TABLE` over every base table outside the system schemas, within
//! a time budget per run, cycling so that every table is checked within
//! `check_cycle`: the tables, in a fixed order (schema, name) and weighed
//! by their size, form one sequence, and a run at time `t` starts at the
//! fraction `(t mod check_cycle) / check_cycle` of it, then checks tables
//! in order until `check_time` is spent. The position is reported
//! (`mysql.integrity.scan.position`, 0 to 1) with the tables and bytes
//! checked. A corrupt table (an `error` line from `CHECK TABLE`, or the
//! storage engine refusing to read it) is `critical`, named with the
//! server's words; a table the account may not check is `unknown` naming
//! the grant (`SELECT`).
//!
//! Also: `innodb_checksum_algorithm` (a note; `none` is a warning, as
//! page corruption then goes unseen until a read fails); and, when a
//! directory holding the server's error log is granted, the corruption
//! lines InnoDB wrote there (a failed page read, a checksum mismatch, a
//! page LSN in the future) within `error_log_window`: `critical`, naming
//! the table (see `errorlog.rs`).
//!
//! Config (defaults in brackets):
//! - `target`: the target to check [`primary`].
//! - `check_time`: seconds a run spends checking [5].
//! - `check_cycle`: seconds within which every table is checked [86400].
//! - `schemas`: only these schemas (comma-separated) [all but the system
//!   schemas].
//! - `error_log_dir`: the name of the granted directory holding the error
//!   log (`dirs = { error-log = "/var/log/mysql" }`) [`error-log`]; not
//!   granted: that part is skipped with a note.
//! - `error_log_window`: seconds back from the server's clock within which
//!   a corruption line counts [86400].
//! - `error_log_tail`: bytes read from the end of each log file [1048576].
//!
//! Measurements: `mysql.integrity.tables_checked`,
//! `mysql.integrity.bytes_checked` (By), `mysql.integrity.corrupt_tables`,
//! `mysql.integrity.scan.position` (1),
//! `mysql.integrity.error_log.corruption_lines` (when the log is read).

mod corruption;
mod errorlog;
mod scan;

use watchpost_probe::{Findings, Info, Kind, Probe, Report, Result, Status, bail, config, sql};

struct MysqlIntegrity;

impl Probe for MysqlIntegrity {
    fn describe() -> Info {
        Info::new(
            "mysql-integrity",
            Kind::Integrity,
            "MariaDB/MySQL tables checked with CHECK TABLE, cycling within a budget per run",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "mysql.integrity.tables_checked",
            "{table}",
            "tables checked this run",
        )
        .measures(
            "mysql.integrity.bytes_checked",
            "By",
            "data and index bytes of those tables",
        )
        .measures(
            "mysql.integrity.corrupt_tables",
            "{table}",
            "tables found corrupt this run",
        )
        .measures(
            "mysql.integrity.scan.position",
            "1",
            "where in the cycle over all tables this run started (0 to 1)",
        )
        .measures(
            "mysql.integrity.error_log.corruption_lines",
            "{line}",
            "corruption lines in the granted error log within `error_log_window`",
        )
    }

    fn check() -> Result<Report> {
        let target = sql::target_from_config("target", "primary")?;
        let check_time: f64 = config::get_or("check_time", 5.0)?;
        let cycle: f64 = config::get_or("check_cycle", 86_400.0)?;
        if !(check_time.is_finite() && check_time > 0.0) {
            bail!("config `check_time` = {check_time} must be a number of seconds above 0");
        }
        if !(cycle.is_finite() && cycle >= 1.0) {
            bail!("config `check_cycle` = {cycle} must be a number of seconds, 1 or more");
        }
        let schemas = config::list("schemas");
        let log_settings = errorlog::Settings::from_config()?;
        let mut findings = Findings::new();
        findings.part("checksum algorithm", |f| {
            let algorithm = mysql_common::variable(&target, "innodb_checksum_algorithm")?
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let status = if algorithm.to_ascii_lowercase().ends_with("none") {
                Status::Warning
            } else {
                Status::Ok
            };
            f.problem(status, format!("innodb_checksum_algorithm = {algorithm}"));
            Ok(())
        });
        findings.part("tables", |f| {
            scan::run(&target, &schemas, check_time, cycle, f)
        });
        findings.part("error log", |f| errorlog::run(&target, &log_settings, f));
        Ok(findings.into_report())
    }
}

watchpost_probe::export_probe!(MysqlIntegrity);

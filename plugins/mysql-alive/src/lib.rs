//! `mysql-alive`: is the MariaDB or MySQL server up, does it accept new
//! sessions, is it writable, and in which role (primary or replica)?
//!
//! It opens a fresh session the way a new client would (`sql::ping`, never
//! a pooled one, so that a server refusing new clients is seen), then asks
//! `@@read_only` (and MySQL's `@@super_read_only`) and whether a
//! replication source is configured (`SHOW REPLICA STATUS`, or `SHOW SLAVE
//! STATUS` on servers that predate the new spelling) on a pooled session.
//!
//! - `critical`: no server answered (down, unreachable, no answer in
//!   time), or the role is not the one configured (a `primary` that is
//!   read-only or replicates from a source; a `replica` without a source).
//! - `warning`: a server answered but refused the session (`too many
//!   connections` 1040, bad password 1045, host blocked, shutting down):
//!   alive but unhealthy, never reported down. Also a server that does not
//!   answer while its process (config `process`) started less than
//!   `starting_grace` seconds ago: it is starting, not down. A replica that
//!   is writable (`read_only` off) is a warning too.
//! - The role and the read-only flags stand alone: without the grant to see
//!   replication state (`REPLICATION CLIENT`, or `SLAVE MONITOR` on MariaDB
//!   10.5+), the role is `unknown` naming the grant, the rest reports.
//!
//! Config (defaults in brackets):
//! - `target`: the target to check [`primary`].
//! - `connect_warning` / `connect_critical`: seconds to open a session
//!   [1 / 5].
//! - `role`: `primary`, `replica` or `any` [`any`].
//! - `process`: the server's process name (`mariadbd`, `mysqld`) for
//!   telling "starting" from "down" on a node with one server [unset: an
//!   unanswered server is down].
//! - `starting_grace`: seconds after the process started during which an
//!   unanswered server counts as starting [300].
//!
//! Measurements: `mysql.up` (1 when a server answered, refusing or not),
//! `mysql.accepting_connections` (1 when it accepted the new session),
//! `mysql.connect.duration` (s), `mysql.read_only` and
//! `mysql.super_read_only` (1 when on; the latter only on MySQL),
//! `mysql.is_replica` (1 when a replication source is configured).

mod role;

use watchpost_probe::config::{self, FromConfig};
use watchpost_probe::sql::{self, SqlError};
use watchpost_probe::{
    Findings, Info, Kind, Probe, Report, Result, Status, Threshold, host, measurement,
};

use role::Flags;

struct MysqlAlive;

/// The role the config requires.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Any,
    Primary,
    Replica,
}

impl FromConfig for Role {
    const EXPECTED: &'static str = "\"primary\", \"replica\" or \"any\"";
    fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "any" => Some(Role::Any),
            "primary" => Some(Role::Primary),
            "replica" => Some(Role::Replica),
            _ => None,
        }
    }
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

impl Probe for MysqlAlive {
    fn describe() -> Info {
        Info::new(
            "mysql-alive",
            Kind::Availability,
            "MariaDB/MySQL is up, accepts new sessions, and has the expected role",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "mysql.up",
            "1",
            "1 when a server answered (even refusing), 0 when none did",
        )
        .measures(
            "mysql.accepting_connections",
            "1",
            "1 when the server accepted a new session",
        )
        .measures("mysql.connect.duration", "s", "time to open a new session")
        .measures("mysql.read_only", "1", "1 when read_only is on")
        .measures(
            "mysql.super_read_only",
            "1",
            "1 when super_read_only is on (MySQL only)",
        )
        .measures(
            "mysql.is_replica",
            "1",
            "1 when a replication source is configured",
        )
    }

    fn check() -> Result<Report> {
        let target = sql::target_from_config("target", "primary")?;
        let connect_limit =
            Threshold::above(1.0, 5.0).configured("connect_warning", "connect_critical")?;
        let required: Role = config::get_or("role", Role::Any)?;
        let process: Option<String> = config::get("process")?;
        let grace: f64 = config::get_or("starting_grace", 300.0)?;
        if !(grace.is_finite() && grace >= 0.0) {
            watchpost_probe::bail!(
                "config `starting_grace` = {grace} must be a number of seconds, 0 or more"
            );
        }

        let mut findings = Findings::new();
        let connected = match sql::ping(&target) {
            Ok(took) => took,
            Err(error @ SqlError::Refused(_)) => {
                findings.problem(
                    Status::Warning,
                    format!(
                        "{target} is up but refuses new sessions: {}",
                        error.describe()
                    ),
                );
                findings.push(measurement("mysql.up", 1.0, "1"));
                findings.push(measurement("mysql.accepting_connections", 0.0, "1"));
                // The pooled session may still answer: report what it can.
                if let Ok(flags) = Flags::read(&target) {
                    flags.measure(&mut findings);
                }
                return Ok(findings.into_report());
            }
            Err(error @ (SqlError::Unreachable(_) | SqlError::Timeout(_))) => {
                return Ok(unanswered(&target, &error, process.as_deref(), grace));
            }
            Err(other) => return Err(other.into()),
        };
        let seconds = connected.as_secs_f64();
        findings.push(measurement("mysql.up", 1.0, "1"));
        findings.push(measurement("mysql.accepting_connections", 1.0, "1"));
        findings.push(measurement("mysql.connect.duration", seconds, "s"));
        let connect_status = connect_limit.status(seconds);
        if connect_status != Status::Ok {
            findings.problem(
                connect_status,
                format!(
                    "opening a session to {target} took {seconds:.3} s (limits {} / {} s)",
                    connect_limit.warning, connect_limit.critical
                ),
            );
        }

        let mut said = format!("{target} is up");
        findings.part("read-only flags", |f| {
            let flags = Flags::read(&target)?;
            flags.measure(f);
            let writable = !flags.read_only && flags.super_read_only != Some(true);
            said.push_str(if writable {
                ", writable"
            } else {
                ", read-only"
            });
            if required == Role::Primary && !writable {
                f.problem(
                    Status::Critical,
                    format!("{target} is read-only, but `role` requires a writable primary"),
                );
            }
            if required == Role::Replica && writable {
                f.problem(
                    Status::Warning,
                    format!("{target} is a replica that accepts writes (read_only is off)"),
                );
            }
            Ok(())
        });
        findings.part("role", |f| {
            let replica = role::is_replica(&target)?;
            f.push(measurement("mysql.is_replica", flag(replica), "1"));
            said.push_str(if replica {
                ", a replica"
            } else {
                ", a primary (no replication source)"
            });
            match (required, replica) {
                (Role::Primary, true) => f.problem(
                    Status::Critical,
                    format!("{target} replicates from a source, but `role` requires a primary"),
                ),
                (Role::Replica, false) => f.problem(
                    Status::Critical,
                    format!("{target} has no replication source, but `role` requires a replica"),
                ),
                _ => {}
            }
            Ok(())
        });
        findings.note(format!(
            "{said}; a new session took {:.1} ms",
            seconds * 1000.0
        ));
        Ok(findings.into_report())
    }
}

/// The report for a server that did not answer: down, unless its process
/// (config `process`) started within the grace period.
fn unanswered(target: &str, error: &SqlError, process: Option<&str>, grace: f64) -> Report {
    let down = |status: Status, text: String| {
        Report::new(status, text)
            .with(measurement("mysql.up", 0.0, "1"))
            .with(measurement("mysql.accepting_connections", 0.0, "1"))
    };
    if let Some(name) = process {
        let young = host::processes(name)
            .into_iter()
            .map(|p| p.run_time_seconds)
            .min();
        if let Some(age) = young.filter(|&age| (age as f64) < grace) {
            return down(
                Status::Warning,
                format!(
                    "{target} does not answer yet but `{name}` started {age} s ago \
                     (starting_grace {grace} s): starting, not down ({})",
                    error.describe()
                ),
            );
        }
    }
    down(
        Status::Critical,
        format!("{target} is down: {}", error.describe()),
    )
}

watchpost_probe::export_probe!(MysqlAlive);

//! `pg-alive`: is the PostgreSQL server up, does it accept new sessions,
//! and in which role (primary or standby)?
//!
//! It opens a fresh session the way a new client would (`sql::ping`, never
//! a pooled one, so that a server refusing new clients is seen), then asks
//! `pg_is_in_recovery()` on a pooled session.
//!
//! - `critical`: no server answered (down, unreachable, no answer in time),
//!   or the role is not the one configured.
//! - `warning`: a server answered but refused the session (`too many
//!   connections`, bad password, starting up or shutting down): alive but
//!   unhealthy. Such a server is never reported down.
//!
//! Config (defaults in brackets):
//! - `target`: the target to check [`primary`].
//! - `connect_warning` / `connect_critical`: seconds to open a session
//!   [1 / 5].
//! - `role`: `primary`, `standby` or `any`: the role the server must have
//!   [`any`].
//!
//! Measurements: `postgresql.up` (1 when a server answered, refusing or
//! not), `postgresql.accepting_connections` (1 when it accepted the new
//! session), `postgresql.connect.duration` (s), `postgresql.is_in_recovery`
//! (1 on a standby, 0 on a primary; absent when it could not be asked).

use watchpost_probe::config::{self, FromConfig};
use watchpost_probe::sql::{self, SqlError};
use watchpost_probe::{Info, Kind, Probe, Report, Result, Status, Threshold, measurement};

struct PgAlive;

/// The role the config requires.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Any,
    Primary,
    Standby,
}

impl FromConfig for Role {
    const EXPECTED: &'static str = "\"primary\", \"standby\" or \"any\"";
    fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "any" => Some(Role::Any),
            "primary" => Some(Role::Primary),
            "standby" => Some(Role::Standby),
            _ => None,
        }
    }
}

fn role_name(in_recovery: bool) -> &'static str {
    if in_recovery { "standby" } else { "primary" }
}

impl Probe for PgAlive {
    fn describe() -> Info {
        Info::new(
            "pg-alive",
            Kind::Availability,
            "PostgreSQL is up, accepts new sessions, and has the expected role",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "postgresql.up",
            "1",
            "1 when a server answered (even refusing), 0 when none did",
        )
        .measures(
            "postgresql.accepting_connections",
            "1",
            "1 when the server accepted a new session",
        )
        .measures(
            "postgresql.connect.duration",
            "s",
            "time to open a new session",
        )
        .measures(
            "postgresql.is_in_recovery",
            "1",
            "1 on a standby, 0 on a primary",
        )
    }

    fn check() -> Result<Report> {
        let target = sql::target_from_config("target", "primary")?;
        let connect_limit =
            Threshold::above(1.0, 5.0).configured("connect_warning", "connect_critical")?;
        let required: Role = config::get_or("role", Role::Any)?;

        let connected = match sql::ping(&target) {
            Ok(took) => took,
            Err(error @ SqlError::Refused(_)) => return Ok(refusing(&target, &error)),
            Err(error @ (SqlError::Unreachable(_) | SqlError::Timeout(_))) => {
                return Ok(
                    Report::critical(format!("{target} is down: {}", error.describe()))
                        .with(measurement("postgresql.up", 0.0, "1"))
                        .with(measurement("postgresql.accepting_connections", 0.0, "1")),
                );
            }
            Err(other) => return Err(other.into()),
        };
        let seconds = connected.as_secs_f64();
        let in_recovery = in_recovery(&target)?;

        let mut report = Report::ok("")
            .with(measurement("postgresql.up", 1.0, "1"))
            .with(measurement("postgresql.accepting_connections", 1.0, "1"))
            .with(measurement("postgresql.connect.duration", seconds, "s"))
            .with(measurement(
                "postgresql.is_in_recovery",
                if in_recovery { 1.0 } else { 0.0 },
                "1",
            ));
        let mut problems = Vec::new();
        let connect_status = connect_limit.status(seconds);
        if connect_status != Status::Ok {
            problems.push(format!(
                "opening a session took {:.3} s (limits {} / {} s)",
                seconds, connect_limit.warning, connect_limit.critical
            ));
            report.worsen(connect_status);
        }
        let role = role_name(in_recovery);
        let wrong_role = match required {
            Role::Any => false,
            Role::Primary => in_recovery,
            Role::Standby => !in_recovery,
        };
        if wrong_role {
            problems.push(format!(
                "it is a {role}, but `role` requires a {}",
                role_name(!in_recovery)
            ));
            report.worsen(Status::Critical);
        }
        report.message = if problems.is_empty() {
            format!(
                "{target} is up as a {role}, a new session took {:.1} ms",
                seconds * 1000.0
            )
        } else {
            format!("{target} is up as a {role}, but {}", problems.join("; "))
        };
        Ok(report)
    }
}

/// Whether the server is in recovery (a standby), on a pooled session.
fn in_recovery(target: &str) -> Result<bool> {
    let rows = sql::query(target, "SELECT pg_is_in_recovery() AS in_recovery", &[])?;
    Ok(rows.first()?.bool("in_recovery")?.unwrap_or(false))
}

/// The report for a server that answered but refused a new session. Its
/// role is still reported when a pooled session can ask.
fn refusing(target: &str, error: &SqlError) -> Report {
    let mut report = Report::warning(format!(
        "{target} is up but refuses new sessions: {}",
        error.describe()
    ))
    .with(measurement("postgresql.up", 1.0, "1"))
    .with(measurement("postgresql.accepting_connections", 0.0, "1"));
    if let Ok(in_recovery) = in_recovery(target) {
        report.push(measurement(
            "postgresql.is_in_recovery",
            if in_recovery { 1.0 } else { 0.0 },
            "1",
        ));
    }
    report
}

watchpost_probe::export_probe!(PgAlive);

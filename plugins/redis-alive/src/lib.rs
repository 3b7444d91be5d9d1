//! `redis-alive`: is the Redis (or Valkey) server up, does it accept new
//! clients, and in which role?
//!
//! It opens a fresh connection the way a new client would (`redis::ping`,
//! never the pooled one, so that a server refusing new clients is seen),
//! then reads the fields it reports from the `server`, `clients` and
//! `replication` sections of `INFO` on the pooled connection (one `INFO
//! server clients replication`, or `INFO all` on a server older than Redis
//! 7, which takes one section per `INFO`; `redis::info_fields`, which
//! keeps those fields only).
//!
//! - `critical`: no server answered (down, unreachable), or it did not
//!   answer in time (a frozen process: a timeout, never "refused"), or the
//!   role is not the one configured.
//! - `warning`: a server answered but refused: `LOADING` (loading its
//!   dataset), `BUSY` (a script running), max number of clients reached,
//!   a bad password. Alive but unhealthy; never reported down.
//!
//! Config (defaults in brackets):
//! - `target`: the target to check [`primary`].
//! - `connect_warning` / `connect_critical`: seconds to connect and PING
//!   [1 / 5].
//! - `role`: `primary`, `replica` or `any` [`any`].
//!
//! Measurements (after OpenTelemetry's Redis receiver where it has one):
//! `redis.up` (1 when a server answered, refusing or not),
//! `redis.accepting_connections`, `redis.connect.duration` (s),
//! `redis.role.primary` (1 on a primary, 0 on a replica),
//! `redis.clients.connected`, `redis.uptime` (s). The engine (`redis` or
//! `valkey`, from `INFO server`) and version are in the message.

use watchpost_probe::config::{self, FromConfig};
use watchpost_probe::redis::{self, Info, RedisError};
use watchpost_probe::{
    Info as ProbeInfo, Kind, Probe, Report, Result, Status, Threshold, measurement,
};

struct RedisAlive;

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
            "primary" | "master" => Some(Role::Primary),
            "replica" | "slave" => Some(Role::Replica),
            _ => None,
        }
    }
}

impl Probe for RedisAlive {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "redis-alive",
            Kind::Availability,
            "Redis or Valkey is up, accepts new clients, and has the expected role",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "redis.up",
            "1",
            "1 when a server answered (even refusing), 0 when none did",
        )
        .measures(
            "redis.accepting_connections",
            "1",
            "1 when the server accepted a new client and answered PING",
        )
        .measures(
            "redis.connect.duration",
            "s",
            "time to connect, log in and PING",
        )
        .measures("redis.role.primary", "1", "1 on a primary, 0 on a replica")
        .measures(
            "redis.clients.connected",
            "{client}",
            "client connections (replicas excluded)",
        )
        .measures("redis.uptime", "s", "time since the server started")
    }

    fn check() -> Result<Report> {
        let target = config::get_or("target", "primary".to_string())?;
        let connect_limit =
            Threshold::above(1.0, 5.0).configured("connect_warning", "connect_critical")?;
        let required: Role = config::get_or("role", Role::Any)?;

        let took = match redis::ping(&target) {
            Ok(took) => took,
            Err(RedisError::Refused(why)) => {
                return Ok(Report::warning(format!(
                    "{target} is up but refusing new clients: {why}"
                ))
                .with(measurement("redis.up", 1.0, "1"))
                .with(measurement("redis.accepting_connections", 0.0, "1")));
            }
            Err(error @ RedisError::Timeout(_)) => {
                return Ok(Report::critical(format!(
                    "{target} did not answer in time (frozen or overloaded): {}",
                    error.describe()
                ))
                .with(measurement("redis.up", 0.0, "1"))
                .with(measurement("redis.accepting_connections", 0.0, "1")));
            }
            Err(error @ RedisError::Unreachable(_)) => {
                return Ok(
                    Report::critical(format!("{target} is down: {}", error.describe()))
                        .with(measurement("redis.up", 0.0, "1"))
                        .with(measurement("redis.accepting_connections", 0.0, "1")),
                );
            }
            Err(other) => return Err(other.into()),
        };
        let seconds = took.as_secs_f64();
        let mut report = Report::ok("")
            .with(measurement("redis.up", 1.0, "1"))
            .with(measurement("redis.accepting_connections", 1.0, "1"))
            .with(measurement("redis.connect.duration", seconds, "s"));
        let mut problems = Vec::new();
        let connect_status = connect_limit.status(seconds);
        if connect_status != Status::Ok {
            problems.push(format!(
                "connecting took {seconds:.3} s (limits {} / {} s)",
                connect_limit.warning, connect_limit.critical
            ));
            report.worsen(connect_status);
        }

        let info = match redis::info_fields(&target, SECTIONS, FIELDS) {
            Ok(info) => info,
            // Answered a fresh PING but not INFO on the pooled connection:
            // a busy script started in between, say, or INFO not allowed
            // to the probe's ACL user. Up, but what it is is unknown.
            Err(error) => {
                report.worsen(error.status().unwrap_or(Status::Warning));
                report.message =
                    format!("{target} answered PING but not INFO: {}", error.describe());
                return Ok(report);
            }
        };
        let primary = is_primary(&info);
        if let Some(primary) = primary {
            report.push(measurement(
                "redis.role.primary",
                if primary { 1.0 } else { 0.0 },
                "1",
            ));
        }
        if let Some(clients) = info.number("connected_clients") {
            report.push(measurement("redis.clients.connected", clients, "{client}"));
        }
        if let Some(uptime) = info.number("uptime_in_seconds") {
            report.push(measurement("redis.uptime", uptime, "s"));
        }
        let role = match primary {
            Some(true) => "primary",
            Some(false) => "replica",
            None => "server of unknown role",
        };
        let wrong = match (required, primary) {
            (Role::Any, _) => None,
            (Role::Primary, Some(true)) | (Role::Replica, Some(false)) => None,
            (Role::Primary, _) => Some("primary"),
            (Role::Replica, _) => Some("replica"),
        };
        if let Some(wanted) = wrong {
            problems.push(format!("it is a {role}, but `role` requires a {wanted}"));
            report.worsen(Status::Critical);
        }
        let (engine, version) = info.engine();
        let what = format!("{target} ({engine} {version}) is up as a {role}");
        report.message = if problems.is_empty() {
            format!("{what}, a new connection took {:.1} ms", seconds * 1000.0)
        } else {
            format!("{what}, but {}", problems.join("; "))
        };
        Ok(report)
    }
}

/// The `INFO` sections the probe reads, and the fields it reports.
const SECTIONS: &[&str] = &["server", "clients", "replication"];
const FIELDS: &[&str] = &[
    "role",
    "connected_clients",
    "uptime_in_seconds",
    "redis_version",
    "valkey_version",
];

/// Whether `INFO replication` says primary (`role:master`).
fn is_primary(info: &Info) -> Option<bool> {
    match info.get("role")? {
        "master" => Some(true),
        "slave" => Some(false),
        _ => None,
    }
}

watchpost_probe::export_probe!(RedisAlive);

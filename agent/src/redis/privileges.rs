//! Whether the ACL user probes log in as may do more than monitor.
//!
//! The allowlist ([`super::allow`]) already keeps every write from the
//! server; this check is the second fence, for a bug in it: a probe user
//! should not be able to write keys, `CONFIG SET`, `FLUSHALL`, `SHUTDOWN`
//! or run scripts. The agent asks the server itself, with `ACL WHOAMI`
//! and then `ACL DRYRUN` (Redis 7.0 and later) for each of those, on a new
//! pooled connection. Nothing is run: DRYRUN only says whether the user
//! could. A user that may not run `ACL DRYRUN` (the right setup: it is an
//! admin command) cannot be checked this way, which is said once at info
//! level and never counts as a danger.

use ::redis::Value;
use ::redis::aio::MultiplexedConnection;

/// What a probe user must not be able to run: (what it means, command).
const DANGERS: &[(&str, &[&str])] = &[
    ("write keys", &["SET", "watchpost:privilege-check", "1"]),
    ("CONFIG SET", &["CONFIG", "SET", "maxmemory", "0"]),
    ("FLUSHALL", &["FLUSHALL"]),
    ("SHUTDOWN", &["SHUTDOWN"]),
    ("run scripts (EVAL)", &["EVAL", "return 0", "0"]),
];

/// The outcome of the check.
#[derive(Debug, PartialEq, Eq)]
pub enum Privileges {
    /// The user may do none of [`DANGERS`].
    MonitorOnly,
    /// What the user may do beyond monitoring.
    Dangerous(Vec<String>),
    /// The server would not say (why).
    CannotTell(String),
}

/// Ask the server what the connection's user may do. `user` is the login
/// the target uses (when `ACL WHOAMI` is not allowed either).
pub async fn check(connection: &mut MultiplexedConnection, user: &str) -> Privileges {
    let user = match ::redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async::<String>(connection)
        .await
    {
        Ok(name) => name,
        Err(_) => user.to_string(),
    };
    let mut dangers = Vec::new();
    for (what, command) in DANGERS {
        let reply = ::redis::cmd("ACL")
            .arg("DRYRUN")
            .arg(&user)
            .arg(*command)
            .query_async::<Value>(connection)
            .await;
        match reply {
            Ok(Value::Okay) => dangers.push(what.to_string()),
            Ok(Value::SimpleString(s)) if s == "OK" => dangers.push(what.to_string()),
            // A bulk string: why the user may not.
            Ok(_) => {}
            Err(e) => {
                return Privileges::CannotTell(format!(
                    "user `{user}` may not run ACL DRYRUN ({e}), so the agent cannot ask the \
                     server what it may do; that is the recommended setup"
                ));
            }
        }
    }
    if dangers.is_empty() {
        Privileges::MonitorOnly
    } else {
        Privileges::Dangerous(dangers)
    }
}

/// The warning (or, with `strict`, the refusal) for a dangerous user.
pub fn describe(target: &str, user: &str, dangers: &[String], strict: bool) -> String {
    let consequence = if strict {
        "refused because the target sets strict_privileges = true"
    } else {
        "allowed, but a probe should not be able to (set strict_privileges = true to refuse it)"
    };
    format!(
        "target `{target}`: the probes' ACL user `{user}` may {}; {consequence}. Give probes a \
         user such as `ACL SETUSER watchpost on >PASSWORD -@all +@read +info +ping +role \
         +scan +config|get +latency|latest +latency|history +slowlog|get +slowlog|len \
         +memory|usage +debug|digest-value +cluster|info +cluster|nodes +client|info \
         +acl|whoami ~*` (docs/src/engines/redis.md)",
        dangers.join(", ")
    )
}

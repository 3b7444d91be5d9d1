//! One Redis target: its pooled connection, and running a command, an
//! `INFO` or a ping against it within a run's deadline and memory.
//!
//! A target keeps one connection, used by one command at a time (a lock
//! waited for within the caller's deadline), so that each reply is bounded
//! by the caller's own allowance. A connection that timed out, broke or
//! was sent an oversized reply is dropped; a command on a pooled
//! connection found dead (the server restarted) is retried once on a new
//! one. A new pooled connection is first checked for its user's
//! privileges ([`super::privileges`]).

use super::allow;
use super::conn::{Allowance, CONNECT_TIMEOUT, Endpoint, driven};
use super::privileges::{self, Privileges};
use super::reply::{self, Node};
use super::tls::TlsFiles;
use super::{Error, RedisSpec};
use ::redis::Value;
use ::redis::aio::MultiplexedConnection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Pooled {
    connection: MultiplexedConnection,
    allowance: Arc<Allowance>,
}

pub struct RedisTarget {
    name: String,
    pub spec: RedisSpec,
    endpoint: Endpoint,
    pooled: tokio::sync::Mutex<Option<Pooled>>,
    /// The privilege finding was logged (once per target).
    logged: AtomicBool,
}

impl RedisTarget {
    /// A target from its spec; errors name the target and what to fix.
    pub fn new(name: &str, spec: &RedisSpec) -> Result<Self, String> {
        let files = TlsFiles {
            ca: spec.tls_ca_file.clone(),
            cert: spec.tls_cert_file.clone(),
            key: spec.tls_key_file.clone(),
        };
        let endpoint = Endpoint::new(&spec.url, spec.password.as_deref(), &files)
            .map_err(|e| format!("target `{name}`: {e}"))?;
        Ok(RedisTarget {
            name: name.to_string(),
            spec: spec.clone(),
            endpoint,
            pooled: tokio::sync::Mutex::new(None),
            logged: AtomicBool::new(false),
        })
    }

    /// Open, PING and close a new connection; the time it took.
    pub async fn ping(&self, deadline: Instant) -> Result<Duration, Error> {
        let until = tokio::time::Instant::now() + self.remaining(deadline)?.min(CONNECT_TIMEOUT);
        let work = async {
            let started = Instant::now();
            let (mut connection, driver, allowance) = self
                .endpoint
                .open_undriven(until)
                .await
                .map_err(|e| self.named(e))?;
            allowance.reset(1024);
            // One command on a connection dropped after it: its driver is
            // polled here, beside the PING, rather than spawned.
            let ping = ::redis::cmd("PING");
            driven(driver, ping.query_async::<Value>(&mut connection))
                .await
                .map_err(|e| self.named(allowance.classify(e, true)))?;
            Ok(started.elapsed())
        };
        tokio::time::timeout_at(until, work)
            .await
            .map_err(|_| self.timed_out("PING on a new connection"))?
    }

    /// `INFO section` as key/value pairs.
    pub async fn info(
        &self,
        section: &str,
        deadline: Instant,
        budget: usize,
    ) -> Result<Vec<(String, String)>, Error> {
        if section.is_empty()
            || section.len() > 32
            || !section
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(Error::NotAllowed(format!(
                "INFO section {section:?} is not a section name (letters, digits and `_`, \
                 e.g. server, replication, all)"
            )));
        }
        let args = vec![b"INFO".to_vec(), section.as_bytes().to_vec()];
        let nodes = self.call(&args, deadline, budget).await?;
        let text = match nodes.first() {
            Some(Node::Bulk(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Node::Simple(s)) => s.clone(),
            other => {
                return Err(Error::Server(format!(
                    "target `{}`: INFO replied {other:?}, not text",
                    self.name
                )));
            }
        };
        Ok(reply::info_pairs(&text))
    }

    /// Send one allowed command on the pooled connection; its reply,
    /// flattened, holding at most `budget` bytes.
    pub async fn call(
        &self,
        args: &[Vec<u8>],
        deadline: Instant,
        budget: usize,
    ) -> Result<Vec<Node>, Error> {
        allow::check(args, self.spec.heartbeat_key.as_deref())
            .map_err(|e| Error::NotAllowed(format!("target `{}`: {e}", self.name)))?;
        let mut cmd = ::redis::Cmd::new();
        for arg in args {
            cmd.arg(arg.as_slice());
        }
        let mut slot = tokio::time::timeout(self.remaining(deadline)?, self.pooled.lock())
            .await
            .map_err(|_| self.timed_out("waiting for the target's connection"))?;
        let mut retried = false;
        loop {
            let reused = slot.is_some();
            if slot.is_none() {
                let until = tokio::time::Instant::now() + self.remaining(deadline)?;
                let opened = tokio::time::timeout_at(until, self.open_pooled(until)).await;
                *slot = Some(opened.map_err(|_| self.timed_out("connecting"))??);
            }
            let pooled = slot.as_mut().expect("opened above");
            // The wire bytes: the client's buffer holds them while the
            // reply is parsed, so half the budget each.
            pooled.allowance.reset((budget / 2) as i64);
            let sent = pooled.connection.send_packed_command(&cmd);
            let outcome = match tokio::time::timeout(self.remaining(deadline)?, sent).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    *slot = None;
                    return Err(self.timed_out(&format!("`{}`", command_name(args))));
                }
            };
            let error = match outcome {
                Ok(Value::ServerError(e)) => {
                    return Err(Error::Server(reply::server_error_text(&e)));
                }
                Ok(value) => {
                    return reply::flatten(value, budget)
                        .map(|(nodes, _)| nodes)
                        .map_err(|asked| self.too_large(asked as u64, budget));
                }
                Err(error) => error,
            };
            if pooled.allowance.exceeded() {
                *slot = None;
                return Err(self.too_large(budget as u64 / 2 + 1, budget));
            }
            let allowance = pooled.allowance.clone();
            if error.code().is_some() {
                return Err(self.named(allowance.classify(error, false)));
            }
            *slot = None;
            if reused && !retried {
                retried = true;
                continue;
            }
            return Err(self.named(allowance.classify(error, !reused)));
        }
    }

    /// A new pooled connection, its user's privileges checked; opened by
    /// `until`.
    async fn open_pooled(&self, until: tokio::time::Instant) -> Result<Pooled, Error> {
        let (mut connection, allowance) =
            self.endpoint.open(until).await.map_err(|e| self.named(e))?;
        allowance.reset(64 << 10);
        let user = self.endpoint.user().to_string();
        match privileges::check(&mut connection, &user).await {
            Privileges::MonitorOnly => {}
            Privileges::Dangerous(dangers) => {
                let message =
                    privileges::describe(&self.name, &user, &dangers, self.spec.strict_privileges);
                if self.spec.strict_privileges {
                    return Err(Error::Refused(message));
                }
                if !self.logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(target = %self.name, "{message}");
                }
            }
            Privileges::CannotTell(why) => {
                if !self.logged.swap(true, Ordering::Relaxed) {
                    tracing::info!(target = %self.name, "privileges not checked: {why}");
                }
            }
        }
        Ok(Pooled {
            connection,
            allowance,
        })
    }

    /// The error of the connection layer ([`conn`], whose messages never
    /// name a target) with this target's name in front.
    fn named(&self, error: Error) -> Error {
        let name = &self.name;
        match error {
            Error::Unreachable(m) => Error::Unreachable(format!("target `{name}`: {m}")),
            Error::Refused(m) => Error::Refused(format!("target `{name}`: {m}")),
            Error::Timeout(m) => Error::Timeout(format!("target `{name}`: {m}")),
            other => other,
        }
    }

    fn too_large(&self, asked: u64, budget: usize) -> Error {
        Error::TooLarge {
            asked,
            message: format!(
                "target `{}`: the reply is larger than the {budget} bytes the probe may still \
                 receive (its memory cap, at most {} bytes per reply); ask for less (SCAN with \
                 a COUNT, LRANGE with bounds)",
                self.name,
                super::MAX_REPLY_BYTES
            ),
        }
    }

    fn remaining(&self, deadline: Instant) -> Result<Duration, Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(Error::Timeout(format!(
                "target `{}`: the run's deadline has passed",
                self.name
            )));
        }
        Ok(left)
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::Timeout(format!(
            "target `{}`: {what} did not finish before the run's deadline",
            self.name
        ))
    }
}

fn command_name(args: &[Vec<u8>]) -> String {
    args.first()
        .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;

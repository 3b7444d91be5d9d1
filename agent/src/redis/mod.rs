//! Redis (and Valkey) targets: the service behind the `redis` capability.
//!
//! A target is a `[targets.NAME]` table with `kind = "redis"`: a URL
//! (`redis://`, `rediss://` for TLS, `unix://`), the ACL user's password
//! from a file, TLS files. Probes name targets; the URL and password never
//! leave this module. Redis has no read-only session, so every command a
//! probe sends is checked against a read-only allowlist ([`allow`]) before
//! it is sent; a target's `heartbeat_key` allows writes to that one key.
//! Every call is bounded by the run's deadline and by the probe's memory
//! (the reply is cut off on the wire past it, [`conn`]); the probes' user
//! is checked for privileges beyond monitoring ([`privileges`]).
//!
//! Valkey speaks the same protocol and is told apart by `INFO server`
//! (`valkey_version`), in the probes.
//!
//! Files: [`target`] runs commands on one target, [`conn`] opens
//! connections (URL, login, bounded reads), [`tls`] its TLS and what a
//! TLS failure says, [`reply`] flattens
//! replies for the probe world, [`allow`] is the allowlist.

pub mod allow;
pub mod conn;
pub mod privileges;
pub mod reply;
mod target;
pub mod tls;

pub use reply::Node;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use target::RedisTarget;

/// Largest reply a probe may receive, in host bytes, whatever its memory.
pub const MAX_REPLY_BYTES: usize = 16 << 20;

/// How a Redis target is configured.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSpec {
    /// `redis://[user[:password]@]host[:port][/db]`, `rediss://...` or
    /// `unix:///path`.
    pub url: String,
    /// The ACL user's password when the URL has none (the config's
    /// `password_file` or `password_env`).
    pub password: Option<String>,
    /// `tls_ca_file`: the CA the server's certificate must chain to (None:
    /// the OS trust store).
    pub tls_ca_file: Option<PathBuf>,
    /// `tls_cert_file` and `tls_key_file`: a client certificate.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// `heartbeat_key`: the one key probes may write (SET, PEXPIRE, DEL).
    pub heartbeat_key: Option<String>,
    /// Refuse connections whose ACL user may write, CONFIG SET, FLUSHALL,
    /// SHUTDOWN or run scripts; false: log it once.
    pub strict_privileges: bool,
}

impl RedisSpec {
    /// A target at `url` with nothing else set.
    pub fn new(url: impl Into<String>) -> Self {
        RedisSpec {
            url: url.into(),
            password: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            heartbeat_key: None,
            strict_privileges: false,
        }
    }
}

/// The password is never printed.
impl std::fmt::Debug for RedisSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSpec")
            .field("url", &conn::redact(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("heartbeat_key", &self.heartbeat_key)
            .field("strict_privileges", &self.strict_privileges)
            .finish()
    }
}

/// Why a command did not run or did not finish (the WIT's `error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The caller is not granted the target (or no such target exists).
    NotGranted(String),
    /// The allowlist refused the command; it was not sent.
    NotAllowed(String),
    /// No server answered.
    Unreachable(String),
    /// A server answered but would not serve (LOADING, BUSY, max clients,
    /// bad password).
    Refused(String),
    /// The call ran out of time.
    Timeout(String),
    /// The server's error reply, as it wrote it (`WRONGTYPE ...`).
    Server(String),
    /// The reply was larger than the caller may hold; `asked` is the size
    /// reached, in bytes, when it was stopped.
    TooLarge { asked: u64, message: String },
    /// The agent itself could not do it (out of descriptors or memory).
    Agent(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotGranted(m)
            | Error::NotAllowed(m)
            | Error::Unreachable(m)
            | Error::Refused(m)
            | Error::Timeout(m)
            | Error::Server(m)
            | Error::Agent(m)
            | Error::TooLarge { message: m, .. } => f.write_str(m),
        }
    }
}

/// All configured Redis targets, by name. Cheap to clone; immutable (a
/// config reload builds a new set with [`RedisTargets::rebuild`]).
#[derive(Clone, Default)]
pub struct RedisTargets {
    targets: Arc<BTreeMap<String, Arc<RedisTarget>>>,
}

impl RedisTargets {
    /// Targets from specs. Errors name the target whose URL or TLS files
    /// are not usable. Must be called within a tokio runtime only when
    /// connections are used (building opens none).
    pub fn new(specs: &BTreeMap<String, RedisSpec>) -> Result<Self, String> {
        RedisTargets::default().rebuild(specs)
    }

    /// A new set for `specs` that keeps the connections of targets whose
    /// spec did not change.
    pub fn rebuild(&self, specs: &BTreeMap<String, RedisSpec>) -> Result<Self, String> {
        let mut targets = BTreeMap::new();
        for (name, spec) in specs {
            let target = match self.targets.get(name) {
                Some(existing) if existing.spec == *spec => existing.clone(),
                _ => Arc::new(RedisTarget::new(name, spec)?),
            };
            targets.insert(name.clone(), target);
        }
        Ok(RedisTargets {
            targets: Arc::new(targets),
        })
    }

    /// Every target's name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }

    /// Whether `name` is a Redis target.
    pub fn contains(&self, name: &str) -> bool {
        self.targets.contains_key(name)
    }

    fn get(&self, name: &str) -> Result<&Arc<RedisTarget>, Error> {
        self.targets.get(name).ok_or_else(|| {
            Error::NotGranted(format!(
                "no target named `{name}` of kind \"redis\" is configured"
            ))
        })
    }

    /// Open, PING and close a new connection to `target`; the time it took.
    pub async fn ping(&self, target: &str, deadline: Instant) -> Result<Duration, Error> {
        self.get(target)?.ping(deadline).await
    }

    /// `INFO section` on `target`, as key/value pairs.
    pub async fn info(
        &self,
        target: &str,
        section: &str,
        deadline: Instant,
        budget: usize,
    ) -> Result<Vec<(String, String)>, Error> {
        self.get(target)?.info(section, deadline, budget).await
    }

    /// One allowed command on `target`: its reply flattened in pre-order,
    /// at most `budget` bytes ([`Error::TooLarge`] past it).
    pub async fn call(
        &self,
        target: &str,
        args: &[Vec<u8>],
        deadline: Instant,
        budget: usize,
    ) -> Result<Vec<Node>, Error> {
        self.get(target)?.call(args, deadline, budget).await
    }
}

//! The Redis failover's own connections: each server's `admin_dsn` (a
//! read-write ACL user of the agent's actions, never a probe's, and never
//! passed through the probes' allowlist), its address as the other
//! servers reach it (for `REPLICAOF` and `FAILOVER TO`), and reading
//! `INFO replication` as the decision wants it ([`super::choose::Seen`]).

use super::choose::{Primary, Replica, Seen};
use crate::config::{Config, TargetKind};
use crate::redis::Error;
use crate::redis::conn::{self, Allowance, Endpoint};
use crate::redis::tls::TlsFiles;
use ::redis::aio::MultiplexedConnection;
use ::redis::{ConnectionAddr, IntoConnectionInfo, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Most bytes a reply to the failover's commands may take (INFO).
const REPLY_BYTES: i64 = 1 << 20;

/// One server's admin login and address.
struct Admin {
    endpoint: Endpoint,
    host: String,
    port: u16,
}

/// The admin logins of every Redis target of a config, by target name.
#[derive(Default)]
pub struct Admins {
    servers: BTreeMap<String, Result<Admin, String>>,
}

impl Admins {
    /// The `admin_dsn` of each `kind = "redis"` target that has one (with
    /// its admin password and TLS files); a target whose URL cannot be
    /// used keeps the reason, given when it is asked for.
    pub fn from_config(config: &Config) -> Admins {
        let mut servers = BTreeMap::new();
        for (name, target) in &config.targets {
            if target.kind != TargetKind::Redis {
                continue;
            }
            let Some(url) = &target.admin_dsn else {
                continue;
            };
            let options = target.redis.clone().unwrap_or_default();
            let files = TlsFiles {
                ca: options.tls_ca_file,
                cert: options.tls_cert_file,
                key: options.tls_key_file,
            };
            let password = target.admin_password.as_ref().map(|p| p.expose());
            let admin = Endpoint::new(url, password, &files).and_then(|endpoint| {
                let (host, port) = address(url)?;
                Ok(Admin {
                    endpoint,
                    host,
                    port,
                })
            });
            servers.insert(
                name.clone(),
                admin.map_err(|e| format!("target `{name}`: admin_dsn: {e}")),
            );
        }
        Admins { servers }
    }

    fn get(&self, name: &str) -> Result<&Admin, Error> {
        match self.servers.get(name) {
            Some(Ok(admin)) => Ok(admin),
            Some(Err(why)) => Err(Error::NotGranted(why.clone())),
            None => Err(Error::NotGranted(format!(
                "target `{name}` is not a Redis target with an `admin_dsn`"
            ))),
        }
    }

    /// Where the other servers reach `name`: its `admin_dsn`'s host and
    /// port.
    pub fn address(&self, name: &str) -> Result<(String, u16), Error> {
        let admin = self.get(name)?;
        Ok((admin.host.clone(), admin.port))
    }

    /// A new admin connection to `name`, logged in, within `within`.
    pub async fn connect(&self, name: &str, within: Duration) -> Result<Server, Error> {
        let admin = self.get(name)?;
        let until = tokio::time::Instant::now() + within;
        let opened = tokio::time::timeout_at(until, admin.endpoint.open(until)).await;
        let (connection, allowance) = opened
            .map_err(|_| Error::Timeout(format!("target `{name}`: no session within {within:?}")))?
            .map_err(|e| named(name, e))?;
        Ok(Server {
            name: name.to_string(),
            connection,
            allowance,
        })
    }

    /// Whether the old primary `name` is gone (see
    /// [`super::choose::Primary`]): first whether it accepts a connection
    /// at all within `within`, then whether it answers `PING` within
    /// `within`.
    pub async fn primary_state(&self, name: &str, within: Duration) -> Primary {
        let (host, port) = match self.address(name) {
            Ok(address) => address,
            Err(e) => return Primary::CannotTell(e.to_string()),
        };
        // Resolved apart from the connect: a name that does not resolve,
        // or a resolver that does not answer in time, is the agent's
        // trouble and says nothing about the primary.
        let resolved =
            tokio::time::timeout(within, tokio::net::lookup_host((host.as_str(), port))).await;
        let addresses: Vec<std::net::SocketAddr> = match resolved {
            Err(_) => {
                return Primary::CannotTell(format!(
                    "the name `{host}` did not resolve within {within:?}: that says nothing about the primary"
                ));
            }
            Ok(Err(e)) => {
                return Primary::CannotTell(format!(
                    "the name `{host}` does not resolve ({e}): that says nothing about the primary"
                ));
            }
            Ok(Ok(addresses)) => addresses.collect(),
        };
        if addresses.is_empty() {
            return Primary::CannotTell(format!("the name `{host}` resolves to no address"));
        }
        let accepted =
            tokio::time::timeout(within, tokio::net::TcpStream::connect(addresses.as_slice()))
                .await;
        match accepted {
            Err(_) => {
                return Primary::Gone(format!(
                    "{host}:{port} did not accept a connection within {within:?}"
                ));
            }
            Ok(Err(e)) => return connect_failure(&host, port, &e),
            Ok(Ok(_)) => {}
        }
        let ping = async {
            let mut server = self.connect(name, within).await?;
            server.call(&["PING"], within).await
        };
        match tokio::time::timeout(within, ping).await {
            Err(_) | Ok(Err(Error::Timeout(_))) => Primary::CannotTell(format!(
                "{host}:{port} accepted a connection but did not answer PING within {within:?} (frozen or swamped)"
            )),
            Ok(Ok(_)) => Primary::Alive("it answers PING".into()),
            Ok(Err(Error::Refused(why))) => Primary::Alive(format!("it refuses: {why}")),
            Ok(Err(Error::Server(why))) => {
                Primary::Alive(format!("it answers with an error: {why}"))
            }
            Ok(Err(e)) => Primary::CannotTell(e.to_string()),
        }
    }

    /// `INFO replication` of each of `names`, or why it cannot be read.
    pub async fn replicas(&self, names: &[String], within: Duration) -> Vec<Replica> {
        let mut out = Vec::new();
        for name in names {
            let read = async {
                let mut server = self.connect(name, within).await?;
                server.seen(within).await
            };
            out.push(match read.await {
                Ok(seen) => Replica::Read(seen),
                Err(e) => Replica::Unreadable {
                    name: name.clone(),
                    why: e.to_string(),
                },
            });
        }
        out
    }
}

/// An admin connection to one server.
pub struct Server {
    pub name: String,
    connection: MultiplexedConnection,
    allowance: Arc<Allowance>,
}

impl Server {
    /// Run one command within `within`; its reply (an error reply is
    /// [`Error::Server`] or, for LOADING/BUSY and the like,
    /// [`Error::Refused`]).
    pub async fn call(&mut self, args: &[&str], within: Duration) -> Result<Value, Error> {
        self.allowance.reset(REPLY_BYTES);
        let mut cmd = ::redis::Cmd::new();
        for arg in args {
            cmd.arg(*arg);
        }
        let name = self.name.clone();
        let what = args.first().copied().unwrap_or_default();
        match tokio::time::timeout(within, cmd.query_async::<Value>(&mut self.connection)).await {
            Err(_) => Err(Error::Timeout(format!(
                "target `{name}`: {what} got no reply within {within:?}"
            ))),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(named(&name, self.allowance.classify(e, false))),
        }
    }

    /// `INFO section` as key/values.
    pub async fn info(
        &mut self,
        section: &str,
        within: Duration,
    ) -> Result<BTreeMap<String, String>, Error> {
        let value = self.call(&["INFO", section], within).await?;
        let text: String = ::redis::from_redis_value(value)
            .map_err(|e| Error::Server(format!("target `{}`: INFO is not text: {e}", self.name)))?;
        Ok(crate::redis::reply::info_pairs(&text).into_iter().collect())
    }

    /// Its replication state as the decision wants it.
    pub async fn seen(&mut self, within: Duration) -> Result<Seen, Error> {
        let info = self.info("replication", within).await?;
        Ok(seen_from(&self.name, &info))
    }
}

/// What a failed connect to the old primary at `host:port` says of it:
/// only a refusal (nothing listens), no route to it, or the kernel's own
/// connect timeout are [`Primary::Gone`]; every other failure (out of
/// descriptors, memory or buffers, no local address, an error without an
/// OS code) is the agent's own and [`Primary::CannotTell`].
pub fn connect_failure(host: &str, port: u16, e: &std::io::Error) -> Primary {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::ETIMEDOUT) => {
            Primary::Gone(format!("{host}:{port}: {e}"))
        }
        _ => Primary::CannotTell(format!(
            "the agent could not connect to {host}:{port} for a reason of its own ({e}): that says nothing about the primary"
        )),
    }
}

/// [`Seen`] from `INFO replication`'s fields.
pub fn seen_from(name: &str, info: &BTreeMap<String, String>) -> Seen {
    let field = |k: &str| info.get(k).cloned().unwrap_or_default();
    let replica = field("role") == "slave";
    let source = replica
        .then(|| {
            let port = field("master_port").parse().ok()?;
            Some((field("master_host"), port))
        })
        .flatten();
    Seen {
        name: name.to_string(),
        replica,
        source,
        link_up: field("master_link_status") == "up",
        replid: field("master_replid"),
        offset: field("master_repl_offset").parse().unwrap_or(0),
    }
}

/// The host and port of a `redis://` or `rediss://` URL.
fn address(url: &str) -> Result<(String, u16), String> {
    let plain = match url.strip_prefix("rediss://") {
        Some(rest) => format!("redis://{rest}"),
        None => url.to_string(),
    };
    let info = plain
        .as_str()
        .into_connection_info()
        .map_err(|e| format!("{:?} is not a usable Redis URL: {e}", conn::redact(url)))?;
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => Ok((host.clone(), *port)),
        _ => Err(format!(
            "{:?} is not a host and port the other servers can replicate from",
            conn::redact(url)
        )),
    }
}

fn named(name: &str, error: Error) -> Error {
    match error {
        Error::Unreachable(m) => Error::Unreachable(format!("target `{name}`: {m}")),
        Error::Refused(m) => Error::Refused(format!("target `{name}`: {m}")),
        Error::Timeout(m) => Error::Timeout(format!("target `{name}`: {m}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_replication_is_read_as_the_decision_wants_it() {
        let text = "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6379\r\n\
                    master_link_status:down\r\nmaster_replid:abc\r\nmaster_repl_offset:1234\r\n";
        let info: BTreeMap<String, String> =
            crate::redis::reply::info_pairs(text).into_iter().collect();
        let seen = seen_from("r1", &info);
        assert!(seen.replica && !seen.link_up);
        assert_eq!(seen.source, Some(("10.0.0.1".into(), 6379)));
        assert_eq!((seen.replid.as_str(), seen.offset), ("abc", 1234));
        assert_eq!(
            address("rediss://u@db.example:6380/0"),
            Ok(("db.example".into(), 6380))
        );
        assert!(address("unix:///run/redis.sock").is_err());
    }

    #[test]
    fn only_the_primary_s_silence_counts_as_gone() {
        use std::io::Error as Io;
        // (errno or none, gone?)
        let cases: Vec<(Io, bool)> = vec![
            (Io::from_raw_os_error(libc::ECONNREFUSED), true),
            (Io::from_raw_os_error(libc::EHOSTUNREACH), true),
            (Io::from_raw_os_error(libc::ENETUNREACH), true),
            (Io::from_raw_os_error(libc::ETIMEDOUT), true),
            (Io::from_raw_os_error(libc::EADDRNOTAVAIL), false),
            (Io::from_raw_os_error(libc::ENOBUFS), false),
            (Io::from_raw_os_error(libc::EMFILE), false),
            (Io::from_raw_os_error(libc::ENFILE), false),
            (Io::from_raw_os_error(libc::ENOMEM), false),
            (Io::from_raw_os_error(libc::EACCES), false),
            (Io::other("failed to lookup address"), false),
        ];
        for (e, gone) in cases {
            let state = connect_failure("10.0.0.1", 6379, &e);
            assert_eq!(matches!(state, Primary::Gone(_)), gone, "{e}: {state:?}");
            assert!(!matches!(state, Primary::Alive(_)), "{e}");
        }
    }
}

//! Whether a target's server accepts a TCP connection at all, apart from
//! any session: what tells a dead or unreachable server ("gone": refused,
//! no route, no accept within the bound) from one that accepted the
//! connection and then said nothing (frozen by SIGSTOP, an I/O stall, a
//! full backlog being drained): a session's timeout alone covers the whole
//! handshake and cannot tell the two apart.

use super::SqlTargets;
use super::errors::is_agent_side;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

/// What a bounded connect to a target's address said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accept {
    /// The connection was accepted (the kernel, at least, is alive and the
    /// port is open). Where, for messages.
    Accepted(String),
    /// Refused, no route or host, reset, or not accepted within the bound.
    /// Why, for messages.
    NotAccepted(String),
    /// The agent cannot tell (its own failure, a name that does not
    /// resolve, no address configured). Why, for messages.
    CannotTell(String),
}

/// Where a target's server listens.
enum Address {
    Tcp(String, u16),
    Unix(PathBuf),
}

impl SqlTargets {
    /// Whether `target`'s admin address (PostgreSQL: the admin DSN's first
    /// host and port, or its unix socket; MariaDB/MySQL: the admin DSN's
    /// host and port) accepts a connection within `within`. Nothing is
    /// sent on it; it is closed at once.
    pub async fn tcp_accepts(&self, target: &str, within: Duration) -> Accept {
        let address = match self.admin_address(target) {
            Ok(address) => address,
            Err(why) => return Accept::CannotTell(why),
        };
        let (shown, result) = match &address {
            Address::Tcp(host, port) => {
                let connect = tokio::net::TcpStream::connect((host.as_str(), *port));
                let result = tokio::time::timeout(within, connect).await;
                (format!("{host}:{port}"), result.map(|r| r.map(drop)))
            }
            Address::Unix(path) => {
                let result =
                    tokio::time::timeout(within, tokio::net::UnixStream::connect(path)).await;
                (path.display().to_string(), result.map(|r| r.map(drop)))
            }
        };
        match result {
            Ok(result) => accept_of(target, &shown, result),
            Err(_) => Accept::NotAccepted(format!(
                "target `{target}`: {shown} accepted no connection within {within:?}"
            )),
        }
    }

    fn admin_address(&self, target: &str) -> Result<Address, String> {
        if let Some(mysql) = self.get_mysql(target) {
            let spec = &mysql.spec;
            let parsed = match &spec.admin_dsn {
                Some(admin) => super::mysql::dsn::parse(admin, spec.admin_password.as_deref()),
                None => super::mysql::dsn::parse(&spec.dsn, spec.password.as_deref()),
            }
            .map_err(|e| format!("target `{target}`: invalid admin dsn: {e}"))?;
            return Ok(Address::Tcp(
                parsed.opts.ip_or_hostname().to_string(),
                parsed.opts.tcp_port(),
            ));
        }
        let config = &self.get(target).map_err(|e| format!("{e:?}"))?.admin;
        let port = config.get_ports().first().copied().unwrap_or(5432);
        match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => Ok(Address::Tcp(host.clone(), port)),
            Some(tokio_postgres::config::Host::Unix(dir)) => {
                Ok(Address::Unix(dir.join(format!(".s.PGSQL.{port}"))))
            }
            None => Err(format!("target `{target}`: its admin dsn names no host")),
        }
    }
}

/// What a finished connect to `shown` says ([`Accept`]).
fn accept_of(target: &str, shown: &str, result: std::io::Result<()>) -> Accept {
    let error = match result {
        Ok(()) => return Accept::Accepted(format!("target `{target}`: {shown}")),
        Err(error) => error,
    };
    let message = format!("target `{target}`: connecting to {shown}: {error}");
    if is_agent_side(&error) {
        return Accept::CannotTell(message);
    }
    let no_accept = matches!(
        error.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::TimedOut
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::NotFound
    ) || matches!(
        error.raw_os_error(),
        Some(libc::EHOSTDOWN | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::ENETDOWN)
    );
    if no_accept {
        Accept::NotAccepted(message)
    } else {
        Accept::CannotTell(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connect_the_server_side_did_not_accept_is_not_accepted() {
        let kind = |result: std::io::Result<()>| match accept_of("db1", "h:1", result) {
            Accept::Accepted(_) => "accepted",
            Accept::NotAccepted(_) => "not accepted",
            Accept::CannotTell(_) => "cannot tell",
        };
        let os = std::io::Error::from_raw_os_error;
        assert_eq!(kind(Ok(())), "accepted");
        assert_eq!(kind(Err(os(libc::ECONNREFUSED))), "not accepted");
        assert_eq!(kind(Err(os(libc::EHOSTUNREACH))), "not accepted");
        assert_eq!(kind(Err(os(libc::ENETUNREACH))), "not accepted");
        assert_eq!(kind(Err(os(libc::ETIMEDOUT))), "not accepted");
        assert_eq!(kind(Err(os(libc::ENOENT))), "not accepted");
        assert_eq!(kind(Err(os(libc::EMFILE))), "cannot tell");
        assert_eq!(kind(Err(os(libc::ENOMEM))), "cannot tell");
        assert_eq!(kind(Err(os(libc::EACCES))), "cannot tell");
    }

    /// Real sockets: a listener that never accepts in user space (the
    /// kernel completes the handshake, as for a frozen server) is
    /// accepted; a closed port is not.
    #[tokio::test]
    async fn a_silent_listener_is_accepted_and_a_closed_port_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = accept_of(
            "db1",
            "open",
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(drop),
        );
        assert!(matches!(open, Accept::Accepted(_)), "{open:?}");
        drop(listener);
        let closed = accept_of(
            "db1",
            "closed",
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(drop),
        );
        assert!(matches!(closed, Accept::NotAccepted(_)), "{closed:?}");
    }
}

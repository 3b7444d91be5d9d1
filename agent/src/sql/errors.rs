//! Sorting database failures into typed errors ([`Error`](super::Error)),
//! so that probes can tell "down" (unreachable) from "alive but unhealthy"
//! (refused).

use super::guard::GUARD_ROUTINE;
use super::types::{Error, QueryError};
use tokio_postgres::error::SqlState;

/// SQLSTATE for value conversion problems between the agent and a probe.
pub const DATA_EXCEPTION: &str = "22000";
/// SQLSTATE for a result over the agent's size limits.
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";

/// The message of an error and of its sources, joined.
fn full_message(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = inner.source();
    }
    message
}

/// The io error behind an error, if any.
fn io_error(error: &dyn std::error::Error) -> Option<&std::io::Error> {
    let mut source = error.source();
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = inner.source();
    }
    None
}

fn io_kind(error: &tokio_postgres::Error) -> Option<std::io::ErrorKind> {
    io_error(error).map(std::io::Error::kind)
}

/// True for failures of the agent's own process or host rather than of
/// the server or the network: out of file descriptors (EMFILE, ENFILE),
/// memory (ENOMEM, ENOBUFS) or local ports (EADDRNOTAVAIL). Such a failure says nothing about the
/// database, so it must never read as "the database is down".
pub fn is_agent_side(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS | libc::EADDRNOTAVAIL)
    ) || error.kind() == std::io::ErrorKind::OutOfMemory
}

/// The agent-side or size-limit failure behind `error`, if it is one.
fn own_failure(target: &str, error: &tokio_postgres::Error) -> Option<Error> {
    if let Some(db) = error.as_db_error()
        && db.routine() == Some(GUARD_ROUTINE)
    {
        return Some(Error::TooLarge {
            asked: db.detail().and_then(|d| d.parse().ok()).unwrap_or(u64::MAX),
            message: format!(
                "target `{target}`: {}: add a LIMIT, select fewer columns or aggregate in SQL",
                db.message()
            ),
        });
    }
    let io = io_error(error)?;
    is_agent_side(io).then(|| {
        Error::Agent(format!(
            "target `{target}`: the agent could not open or use a session: {io} (this is the \
             agent's own resource limit, not the database's)"
        ))
    })
}

/// The innermost message of an error (a conversion error's own words).
pub fn source_message(error: &tokio_postgres::Error) -> String {
    std::error::Error::source(error)
        .map(|s| s.to_string())
        .unwrap_or_else(|| error.to_string())
}

/// True when a statement may have failed only because the session's
/// cached prepared statement is stale: the schema changed under it
/// (`0A000`, "cached plan must not change result type"), or a pooler in
/// between discarded it (`26000`). Preparing it again fixes it; the caller
/// tries once. Any `0A000` counts: the message that would tell the stale
/// plan from another unsupported feature is translated by the server's
/// `lc_messages`, so a genuine `0A000` costs one more try, then fails.
pub fn is_stale_statement(code: &str) -> bool {
    code == SqlState::INVALID_SQL_STATEMENT_NAME.code()
        || code == SqlState::FEATURE_NOT_SUPPORTED.code()
}

/// The TLS failure behind an error, if it is one, with what to check.
/// The TLS library's error is found inside an `io::Error` too (a TLS
/// stream's read reports it so, and `io::Error::source` skips it): a
/// client certificate the server refuses after a TLS 1.3 handshake
/// arrives as an alert at the first read, or, when the connection closed
/// before the alert was read, as [`super::guard::ClosedBeforeAnswering`].
fn tls_failure(error: &tokio_postgres::Error) -> Option<String> {
    const CHECK: &str = "check the DSN's sslmode, sslrootcert, sslcert and sslkey";
    const CLIENT_CERT: &str = "the server refused the client's certificate (or its absence): \
        `sslcert` and `sslkey` must name a certificate signed by a CA in the server's \
        ssl_ca_file, for the user it logs in as";
    let mut source = std::error::Error::source(error);
    let mut plain_io = false;
    while let Some(inner) = source {
        let io = inner.downcast_ref::<std::io::Error>();
        plain_io |= io.is_some();
        let tls = inner
            .downcast_ref::<rustls::Error>()
            .or_else(|| io.and_then(super::tls_alert::rustls_error));
        match tls {
            Some(rustls::Error::AlertReceived(alert))
                if super::tls_alert::certificate_alert(*alert) =>
            {
                return Some(format!("received fatal alert: {alert:?}: {CLIENT_CERT}"));
            }
            Some(tls) => return Some(format!("{tls} ({CHECK})")),
            None => {}
        }
        if let Some(closed) = io
            .and_then(|io| io.get_ref())
            .and_then(|e| e.downcast_ref::<super::guard::ClosedBeforeAnswering>())
        {
            return Some(format!(
                "{closed}; a server that refuses the client's certificate after a TLS 1.3 \
                 handshake does so: {CLIENT_CERT}"
            ));
        }
        source = inner.source();
    }
    // A connection closed, reset or timed out during the handshake, with
    // no TLS error inside: no TLS server refused anything (a dead server
    // behind a TLS proxy, another service): left to the I/O kinds.
    if plain_io {
        return None;
    }
    // The driver's own TLS words ("server does not support TLS").
    let text = error.to_string();
    (text.contains("TLS") || text.contains("tls"))
        .then(|| format!("{} ({CHECK})", full_message(error)))
}

/// An error met while opening a session.
pub fn connect_error(target: &str, error: &tokio_postgres::Error) -> Error {
    if let Some(own) = own_failure(target, error) {
        // No PostgreSQL server announces a message of megabytes while a
        // session opens: another service answers on that port (an HTTP
        // server's "HTTP/1.1 400" reads as a 1.4 GB message). No
        // PostgreSQL server answered, so it is down, not the probe's
        // memory exceeded.
        if let Error::TooLarge { asked, .. } = own {
            return Error::Unreachable(format!(
                "target `{target}`: the reply is not PostgreSQL's protocol (a message of {asked} bytes announced while the session opened): is this port a PostgreSQL server?"
            ));
        }
        return own;
    }
    if let Some(tls) = tls_failure(error) {
        // The server answered but the TLS handshake failed: a wrong CA,
        // host name or client certificate, or a server without TLS.
        return Error::Refused(format!("target `{target}`: tls: {tls}"));
    }
    let message = format!("target `{target}`: {}", full_message(error));
    if let Some(db) = error.as_db_error() {
        // The server answered: it is alive, but would not serve us
        // (bad password, too many connections, starting up, no such database).
        let detail = format!("target `{target}`: {} ({})", db.message(), db.code().code());
        return if *db.code() == SqlState::QUERY_CANCELED {
            Error::Timeout(detail)
        } else {
            Error::Refused(detail)
        };
    }
    // Decided on the driver's error alone, never on `message`, which
    // begins with the target's name (the user's words). Before the I/O
    // kinds: a SCRAM exchange that failed carries an I/O error, yet the
    // server answered it.
    match driver_says(error) {
        Some(Said::Authentication) => return Error::Refused(message),
        Some(Said::Timeout) => return Error::Timeout(message),
        None => {}
    }
    match io_kind(error) {
        Some(std::io::ErrorKind::TimedOut) => Error::Timeout(message),
        _ => Error::Unreachable(message),
    }
}

/// What the driver said of a failure it has no typed form for.
#[derive(Debug, PartialEq, Eq)]
enum Said {
    /// The server answered the startup with an authentication request the
    /// agent cannot meet (a password the DSN does not give, a method the
    /// driver does not speak), or the exchange failed: it is alive.
    Authentication,
    /// The driver's own timeout.
    Timeout,
}

/// The case of `error` in the driver's own words. `tokio_postgres::Error`
/// keeps its kind private; its `Display` prints the kind alone (never its
/// cause, nor anything of the DSN), and a missing password is a
/// configuration error whose cause is the driver's constant text.
fn driver_says(error: &tokio_postgres::Error) -> Option<Said> {
    let cause = std::error::Error::source(error).map(ToString::to_string);
    match error.to_string().as_str() {
        "authentication error" => Some(Said::Authentication),
        "invalid configuration" if cause.as_deref() == Some("password missing") => {
            Some(Said::Authentication)
        }
        "timeout waiting for server" => Some(Said::Timeout),
        _ => None,
    }
}

/// An error met while opening an admin session (the agent's own, whose
/// outcome tells whether a primary is gone): as [`connect_error`], but
/// every error the server itself sent, a cancelled statement included,
/// is `Refused`: the server answered, so it is alive.
pub fn admin_connect_error(target: &str, error: &tokio_postgres::Error) -> Error {
    match error.as_db_error() {
        Some(db) if own_failure(target, error).is_none() => Error::Refused(format!(
            "target `{target}`: {} ({})",
            db.message(),
            db.code().code()
        )),
        _ => connect_error(target, error),
    }
}

/// An error met while running a statement on an open session.
pub fn query_error(target: &str, error: &tokio_postgres::Error) -> Error {
    if let Some(own) = own_failure(target, error) {
        return own;
    }
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        if *code == SqlState::QUERY_CANCELED {
            return Error::Timeout(format!(
                "target `{target}`: statement cancelled: {}",
                db.message()
            ));
        }
        if [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code)
        {
            return Error::Unreachable(format!("target `{target}`: {}", db.message()));
        }
        let mut message = db.message().to_string();
        if let Some(detail) = db.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        return Error::Query(QueryError {
            code: code.code().to_string(),
            message,
            number: None,
        });
    }
    if error.is_closed() || io_kind(error).is_some() {
        return Error::Unreachable(format!("target `{target}`: {}", full_message(error)));
    }
    // Conversion errors raised by our own FromSql/ToSql code.
    Error::Query(QueryError {
        code: DATA_EXCEPTION.to_string(),
        message: full_message(error),
        number: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_or_memory_is_the_agents_own_failure() {
        for errno in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOMEM,
            libc::ENOBUFS,
            libc::EADDRNOTAVAIL,
        ] {
            assert!(is_agent_side(&std::io::Error::from_raw_os_error(errno)));
        }
        for errno in [libc::ECONNREFUSED, libc::EHOSTUNREACH, libc::ETIMEDOUT] {
            assert!(!is_agent_side(&std::io::Error::from_raw_os_error(errno)));
        }
    }

    /// What the agent's connector meets opening a plain session with `dsn`.
    async fn connect(dsn: &str) -> tokio_postgres::Error {
        let connector = super::super::tls::Connector::new(
            super::super::tls::SslMode::Disable,
            &super::super::tls::TlsFiles::default(),
        )
        .unwrap();
        let config: tokio_postgres::Config = dsn.parse().unwrap();
        match connector.connect(&config).await {
            Ok(_) => panic!("{dsn}: connected"),
            Err(e) => e,
        }
    }

    /// A loopback server that reads the startup message, answers `reply`
    /// (nothing: it closes at once) and closes; its port.
    fn server(reply: &'static [u8]) -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut startup = [0u8; 512];
            let _ = stream.read(&mut startup);
            let _ = stream.write_all(reply);
        });
        port
    }

    /// The words in a target's name (or host) never decide the kind: a
    /// target named for passwords and timeouts whose server is gone is
    /// unreachable, as any other.
    #[tokio::test]
    async fn the_targets_name_and_host_never_decide_the_kind() {
        let name = "password-timeout-authentication-tls-db";
        // A closed port.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let closed = connect(&format!("host=127.0.0.1 port={port} user=u dbname=d")).await;
        let kind = connect_error(name, &closed);
        assert!(matches!(kind, Error::Unreachable(_)), "{kind:?}");
        // A host name that does not resolve, itself full of such words.
        let nowhere = connect("host=password-timeout.invalid port=5432 user=u dbname=d").await;
        let kind = connect_error(name, &nowhere);
        assert!(matches!(kind, Error::Unreachable(_)), "{kind:?}");
        // A server that accepts the connection and closes it without a
        // word (the driver's "connection closed", no I/O error inside).
        let port = server(b"");
        let silent = connect(&format!("host=127.0.0.1 port={port} user=u dbname=d")).await;
        for name in [name, "timeout-replica", "auth-db", "db1"] {
            let kind = connect_error(name, &silent);
            assert!(matches!(kind, Error::Unreachable(_)), "{name}: {kind:?}");
            let kind = admin_connect_error(name, &silent);
            assert!(matches!(kind, Error::Unreachable(_)), "{name}: {kind:?}");
        }
    }

    /// A server that asks for a password the DSN does not give, or for an
    /// authentication method the driver does not speak, answered: it is
    /// alive and refusing, whatever the target is called.
    #[tokio::test]
    async fn an_authentication_request_the_agent_cannot_meet_is_a_refusal() {
        // AuthenticationCleartextPassword (3), AuthenticationKerberosV5 (2).
        for reply in [b"R\0\0\0\x08\0\0\0\x03", b"R\0\0\0\x08\0\0\0\x02"] {
            let port = server(reply);
            let error = connect(&format!("host=127.0.0.1 port={port} user=u dbname=d")).await;
            let kind = connect_error("db1", &error);
            assert!(matches!(kind, Error::Refused(_)), "{reply:?}: {kind:?}");
        }
    }
}

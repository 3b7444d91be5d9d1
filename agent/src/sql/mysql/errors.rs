//! Sorting MariaDB/MySQL failures into the typed errors probes see
//! ([`Error`]), as `super::super::errors` does for PostgreSQL: no answer
//! is `unreachable` (down), an answer that refuses the session is
//! `refused` (alive but unhealthy: too many connections, bad password,
//! host blocked, shutting down), and the server's error number is kept
//! on query errors ([`QueryError::number`]).

use super::super::errors::is_agent_side;
use super::super::types::{Error, QueryError};
use mysql_async::{DriverError, IoError};

/// ER_QUERY_TIMEOUT (MariaDB's `max_statement_time`).
const MARIADB_STATEMENT_TIMEOUT: u16 = 1969;
/// ER_QUERY_TIMEOUT (MySQL's `max_execution_time`).
const MYSQL_EXECUTION_TIMEOUT: u16 = 3024;
/// ER_SERVER_SHUTDOWN: the server is shutting down.
const SERVER_SHUTDOWN: u16 = 1053;
/// ER_CONNECTION_KILLED (MariaDB) and ER_QUERY_INTERRUPTED.
const CONNECTION_KILLED: [u16; 2] = [1927, 1317];

/// Server errors that refuse a new session: too many connections (1040),
/// access denied (1044, 1045, 1698), unknown database (1049), host
/// blocked or not allowed (1129, 1130), user over its limits (1203,
/// 1226), server shutting down (1053), account locked (3118, 4151),
/// password expired (1820, 1862), auth plugin problems (1251, 1524).
fn refuses_sessions(code: u16) -> bool {
    matches!(
        code,
        1040 | 1044
            | 1045
            | 1698
            | 1049
            | 1129
            | 1130
            | 1203
            | 1226
            | SERVER_SHUTDOWN
            | 3118
            | 4151
            | 1820
            | 1862
            | 1251
            | 1524
    )
}

/// An error met while opening a session with `opts`: as [`connect_error`],
/// and when the agent presented a client certificate, a connection closed
/// or reset before the login's answer is the server refusing that
/// certificate after a TLS 1.3 handshake, its alert lost to the reset
/// (the server already answered with its greeting: alive, refusing).
pub fn session_error(target: &str, error: &mysql_async::Error, opts: &mysql_async::Opts) -> Error {
    let client_cert = opts
        .ssl_opts()
        .is_some_and(|ssl| ssl.client_identity().is_some());
    if client_cert
        && let mysql_async::Error::Io(IoError::Io(io)) = error
        && super::super::tls_alert::rustls_error(io).is_none()
        && matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
        )
    {
        return Error::Refused(format!(
            "target `{target}`: the server closed the TLS connection before answering the \
             login ({io}); a server that refuses the client's certificate after a TLS 1.3 \
             handshake does so: {CLIENT_CERT}"
        ));
    }
    connect_error(target, error)
}

/// What to check after a TLS failure that names no cause of its own.
const CHECK_TLS: &str = "check the DSN's ssl-mode, ssl-ca, ssl-cert and ssl-key";

/// What to fix when a server refuses the client's certificate.
const CLIENT_CERT: &str = "the server refused the client's certificate (or its absence): \
    `ssl-cert` and `ssl-key` must name a certificate signed by a CA in the server's ssl_ca, as \
    the account requires (REQUIRE X509, SUBJECT or ISSUER)";

/// An error met while opening a session.
pub fn connect_error(target: &str, error: &mysql_async::Error) -> Error {
    if let mysql_async::Error::Io(IoError::Io(io)) = error
        && let Some(tls) = super::super::tls_alert::rustls_error(io)
    {
        return tls_refusal(target, tls);
    }
    match error {
        mysql_async::Error::Server(e) if refuses_sessions(e.code) => Error::Refused(format!(
            "target `{target}`: {} (error {}, SQLSTATE {})",
            e.message, e.code, e.state
        )),
        mysql_async::Error::Io(IoError::Tls(e)) => {
            Error::Refused(format!("target `{target}`: tls: {e} ({CHECK_TLS})"))
        }
        _ => query_error(target, error),
    }
}

/// A TLS failure the driver reports as an I/O error (the rustls stream's
/// own error inside): a server certificate the agent does not trust, or
/// the server's alert refusing the client's certificate, which under TLS
/// 1.3 arrives after the handshake, at the client's first read. The
/// server answered TLS: alive, refusing.
fn tls_refusal(target: &str, tls: &rustls::Error) -> Error {
    let fix = match tls {
        rustls::Error::AlertReceived(alert)
            if super::super::tls_alert::certificate_alert(*alert) =>
        {
            CLIENT_CERT
        }
        rustls::Error::InvalidCertificate(_) => {
            "the server's certificate is not what the DSN trusts: check ssl-ca, and for \
             VERIFY_IDENTITY that the certificate names the DSN's host"
        }
        _ => CHECK_TLS,
    };
    Error::Refused(format!("target `{target}`: tls: {tls}: {fix}"))
}

/// An error met while opening an admin session (the agent's own, whose
/// outcome tells whether a primary is gone), its first statement
/// included: as [`connect_error`], but every error the server itself
/// sent (a statement timeout 1969/3024, shutting down, killed) is
/// `Refused`: the server answered, so it is alive.
pub fn admin_session_error(target: &str, error: &mysql_async::Error) -> Error {
    match error {
        mysql_async::Error::Server(e) => Error::Refused(format!(
            "target `{target}`: {} (error {}, SQLSTATE {})",
            e.message, e.code, e.state
        )),
        _ => connect_error(target, error),
    }
}

/// An error met while running a statement on an open session.
pub fn query_error(target: &str, error: &mysql_async::Error) -> Error {
    match error {
        mysql_async::Error::Server(e) => {
            if e.code == MARIADB_STATEMENT_TIMEOUT || e.code == MYSQL_EXECUTION_TIMEOUT {
                Error::Timeout(format!(
                    "target `{target}`: statement stopped by the server: {}",
                    e.message
                ))
            } else if e.code == SERVER_SHUTDOWN || CONNECTION_KILLED.contains(&e.code) {
                Error::Unreachable(format!(
                    "target `{target}`: {} (error {})",
                    e.message, e.code
                ))
            } else {
                Error::Query(QueryError {
                    code: e.state.clone(),
                    message: e.message.clone(),
                    number: Some(u32::from(e.code)),
                })
            }
        }
        mysql_async::Error::Io(IoError::Io(io)) if is_agent_side(io) => {
            Error::Agent(format!("target `{target}`: {io}"))
        }
        mysql_async::Error::Io(IoError::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut => {
            Error::Timeout(format!("target `{target}`: {io}"))
        }
        mysql_async::Error::Io(IoError::Tls(e)) => {
            Error::Refused(format!("target `{target}`: tls: {e}"))
        }
        mysql_async::Error::Driver(
            DriverError::FromValue { .. } | DriverError::FromRow { .. } | DriverError::Params(_),
        ) => Error::Query(QueryError {
            code: super::super::errors::DATA_EXCEPTION.to_string(),
            message: format!("target `{target}`: {error}"),
            number: None,
        }),
        _ => Error::Unreachable(format!("target `{target}`: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::ServerError;

    fn server(code: u16, state: &str) -> mysql_async::Error {
        mysql_async::Error::Server(ServerError {
            code,
            message: "m".into(),
            state: state.into(),
        })
    }

    #[test]
    fn an_admin_session_counts_every_server_error_as_an_answer() {
        for (code, state) in [
            (1969, "70100"),
            (3024, "HY000"),
            (1053, "08S01"),
            (1927, "70100"),
        ] {
            assert!(
                matches!(
                    admin_session_error("t", &server(code, state)),
                    Error::Refused(_)
                ),
                "{code}"
            );
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            admin_session_error("t", &mysql_async::Error::Io(IoError::Io(refused))),
            Error::Unreachable(_)
        ));
    }

    #[test]
    fn tls_failures_inside_io_errors_are_refusals_and_a_reset_only_with_a_certificate() {
        let io = |kind: std::io::ErrorKind| mysql_async::Error::Io(IoError::Io(kind.into()));
        // rustls's error inside the I/O error: an untrusted server
        // certificate, a refused client certificate.
        let untrusted = mysql_async::Error::Io(IoError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        )));
        assert!(
            matches!(connect_error("t", &untrusted), Error::Refused(m) if m.contains("ssl-ca"))
        );
        let alert = mysql_async::Error::Io(IoError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
        )));
        assert!(matches!(connect_error("t", &alert), Error::Refused(m) if m.contains("ssl-cert")));
        // A reset before the login's answer: a refused certificate only
        // when one was presented.
        let plain: mysql_async::Opts = mysql_async::OptsBuilder::default().into();
        let with_cert: mysql_async::Opts = mysql_async::OptsBuilder::default()
            .ssl_opts(Some(mysql_async::SslOpts::default().with_client_identity(
                Some(mysql_async::ClientIdentity::new(
                    Vec::new().into(),
                    Vec::new().into(),
                )),
            )))
            .into();
        let reset = io(std::io::ErrorKind::ConnectionReset);
        assert!(matches!(
            session_error("t", &reset, &plain),
            Error::Unreachable(_)
        ));
        assert!(matches!(
            session_error("t", &reset, &with_cert),
            Error::Refused(m) if m.contains("ssl-cert")
        ));
        // A refused connection is no answer, certificate or not.
        assert!(matches!(
            session_error("t", &io(std::io::ErrorKind::ConnectionRefused), &with_cert),
            Error::Unreachable(_)
        ));
    }

    #[test]
    fn refusals_timeouts_and_numbers() {
        for code in [1040, 1045, 1129, 1053] {
            assert!(
                matches!(
                    connect_error("t", &server(code, "HY000")),
                    Error::Refused(_)
                ),
                "{code}"
            );
        }
        assert!(matches!(
            query_error("t", &server(1969, "70100")),
            Error::Timeout(_)
        ));
        let duplicate = query_error("t", &server(1062, "23000"));
        assert_eq!(duplicate.number(), Some(1062));
        assert!(matches!(&duplicate, Error::Query(q) if q.code == "23000"));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            connect_error("t", &mysql_async::Error::Io(IoError::Io(refused))),
            Error::Unreachable(_)
        ));
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        assert!(matches!(
            query_error("t", &mysql_async::Error::Io(IoError::Io(emfile))),
            Error::Agent(_)
        ));
    }
}

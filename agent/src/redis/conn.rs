//! Opening a connection to a Redis target: its URL, TLS, the ACL login,
//! and a socket whose reads are bounded per command ([`Allowance`]), so
//! that a reply larger than the probe may hold is cut off on the wire
//! instead of being read whole by the client.

use super::Error;
use super::tls::{TlsFiles, client_config, handshake_error, refused_client_cert};
use crate::sql::tls_alert::{certificate_alert, rustls_error};
use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// Bytes the server may send while a connection is set up (AUTH, HELLO).
const SETUP_BYTES: i64 = 64 << 10;

/// Where and how to connect, parsed from the target's URL once.
#[derive(Clone)]
pub struct Endpoint {
    addr: ConnectionAddr,
    login: RedisConnectionInfo,
    /// TLS settings when the URL is `rediss://`.
    tls: Option<Tls>,
}

/// How a `rediss://` endpoint speaks TLS.
#[derive(Clone)]
struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
    /// Whether a client certificate (`tls_cert_file`) is presented.
    client_cert: bool,
}

/// Check a target URL: `redis://[user[:password]@]host[:port][/db]`,
/// `rediss://...` (TLS) or `unix:///path/to/socket`. Returns whether it
/// uses TLS, and whether it holds a password.
pub fn check_url(url: &str) -> Result<(bool, bool), String> {
    let (plain, tls) = match url.strip_prefix("rediss://") {
        Some(rest) => (format!("redis://{rest}"), true),
        None => (url.to_string(), false),
    };
    if !(plain.starts_with("redis://") || plain.starts_with("unix://")) {
        return Err(format!(
            "{:?} is not a Redis URL: write redis://[user@]host[:port][/db], rediss://... for \
             TLS, or unix:///path/to/redis.sock",
            redact(url)
        ));
    }
    let info = plain
        .as_str()
        .into_connection_info()
        .map_err(|e| format!("{:?} is not a usable Redis URL: {e}", redact(url)))?;
    if tls && matches!(info.addr(), ConnectionAddr::Unix(_)) {
        return Err("a Unix socket URL cannot use TLS".into());
    }
    Ok((tls, info.redis_settings().password().is_some()))
}

/// The URL with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Endpoint {
    /// The endpoint of `url`, logging in with `password` when the URL has
    /// none. Errors name what to fix.
    pub fn new(url: &str, password: Option<&str>, files: &TlsFiles) -> Result<Self, String> {
        let (tls, _) = check_url(url)?;
        let plain = match url.strip_prefix("rediss://") {
            Some(rest) => format!("redis://{rest}"),
            None => url.to_string(),
        };
        let info = plain
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("{:?} is not a usable Redis URL: {e}", redact(url)))?;
        let mut login = info.redis_settings().clone().set_skip_set_lib_name();
        if login.password().is_none()
            && let Some(password) = password
        {
            login = login.set_password(password);
        }
        let addr = info.addr().clone();
        let tls = if tls {
            let ConnectionAddr::Tcp(host, _) = &addr else {
                return Err("a Unix socket URL cannot use TLS".into());
            };
            let name = ServerName::try_from(host.clone())
                .map_err(|e| format!("{host:?} is not a host name TLS can check: {e}"))?;
            Some(Tls {
                connector: TlsConnector::from(Arc::new(client_config(files)?)),
                name,
                client_cert: files.cert.is_some(),
            })
        } else {
            if files != &TlsFiles::default() {
                return Err(
                    "TLS files are given but the URL is not rediss://; write rediss:// or \
                     remove them"
                        .into(),
                );
            }
            None
        };
        Ok(Endpoint { addr, login, tls })
    }

    /// The ACL user this endpoint logs in as (`default` when none is
    /// given).
    pub fn user(&self) -> &str {
        self.login.username().unwrap_or("default")
    }

    /// Open and set up a connection (AUTH), its reads bounded by the
    /// returned [`Allowance`], all by `deadline`. A caller that bounds
    /// more work by the same instant gets this function's error when the
    /// time runs out here (the inner timeout is polled first).
    ///
    /// Errors: [`Error::Timeout`] names the step that ran out of time
    /// (connecting, the TLS handshake, the login): a TLS handshake with a
    /// server that does not speak TLS hangs, as the server waits for the
    /// rest of what it takes for a command.
    pub async fn open(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<(MultiplexedConnection, Arc<Allowance>), Error> {
        let (connection, driver, allowance) = self.open_undriven(deadline).await?;
        tokio::spawn(driver);
        Ok((connection, allowance))
    }

    /// [`Endpoint::open`], with the connection's [`Driver`] returned
    /// instead of spawned: the caller polls it beside its commands
    /// ([`driven`]). For a connection opened for one command and dropped
    /// (the fresh connection's PING) that saves spawning a task and its
    /// wake-ups.
    pub async fn open_undriven(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<(MultiplexedConnection, Driver, Arc<Allowance>), Error> {
        let within = deadline.saturating_duration_since(tokio::time::Instant::now());
        let late =
            |step: String| Error::Timeout(format!("{step} did not finish within {within:?}"));
        let stream: Box<dyn Io> = match &self.addr {
            ConnectionAddr::Tcp(host, port) => {
                let to = format!("{host}:{port}");
                let tcp =
                    tokio::time::timeout_at(deadline, TcpStream::connect((host.as_str(), *port)))
                        .await
                        .map_err(|_| late(format!("connecting to {to}")))?
                        .map_err(|e| connect_error(&to, e))?;
                let _ = tcp.set_nodelay(true);
                match &self.tls {
                    Some(tls) => Box::new(
                        tokio::time::timeout_at(
                            deadline,
                            tls.connector.connect(tls.name.clone(), tcp),
                        )
                        .await
                        .map_err(|_| {
                            late(format!(
                                "the TLS handshake with {to} (a frozen server, or not the \
                                     server's TLS port, tls-port: a server that does not speak \
                                     TLS waits for more bytes)"
                            ))
                        })?
                        .map_err(|e| handshake_error(e, tls.client_cert))?,
                    ),
                    None => Box::new(tcp),
                }
            }
            ConnectionAddr::Unix(path) => Box::new(
                tokio::time::timeout_at(deadline, UnixStream::connect(path))
                    .await
                    .map_err(|_| late(format!("connecting to {}", path.display())))?
                    .map_err(|e| connect_error(&path.display().to_string(), e))?,
            ),
            other => {
                return Err(Error::Agent(format!(
                    "unsupported address {other}; use redis://, rediss:// or unix://"
                )));
            }
        };
        let allowance = Arc::new(Allowance::new(self.tls.as_ref().map(|t| t.client_cert)));
        allowance.reset(SETUP_BYTES);
        let guarded = Bounded {
            inner: stream,
            allowance: allowance.clone(),
        };
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(None);
        let (connection, driver) = tokio::time::timeout_at(
            deadline,
            MultiplexedConnection::new_with_config(&self.login, guarded, config),
        )
        .await
        .map_err(|_| late("the login (AUTH)".to_string()))?
        .map_err(|e| allowance.classify(e, true))?;
        Ok((connection, Box::pin(driver), allowance))
    }
}

/// The future that writes a connection's commands and reads its replies;
/// a command on the connection makes progress only while it is polled.
pub type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Run `work` (commands on the connection of `driver`) with the driver
/// polled beside it. A driver that ends first (the connection closed or
/// broke) is dropped with what it held, so that `work` ends with the
/// error its commands were sent.
pub async fn driven<T>(driver: Driver, work: impl Future<Output = T>) -> T {
    use futures_util::future::{Either, select};
    match select(std::pin::pin!(work), driver).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(((), work)) => work.await,
    }
}

/// A failed connect: the agent's own limits (out of descriptors, memory,
/// buffers or local ports) are not the server's fault.
fn connect_error(to: &str, error: io::Error) -> Error {
    match error.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS | libc::EADDRNOTAVAIL) => {
            Error::Agent(format!("cannot open a socket to {to}: {error}"))
        }
        _ => Error::Unreachable(format!("cannot connect to {to}: {error}")),
    }
}

/// Server error codes that mean "alive, but not serving now".
const REFUSING: &[&str] = &[
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "NOAUTH",
    "WRONGPASS",
    "MISCONF",
];

/// Sort a client error into the kinds of [`Error`]. `fresh`: on a
/// connection just opened, so that a server that closes it before
/// answering is refusing (it accepted the TCP connection: it is alive).
pub fn classify(error: ::redis::RedisError, fresh: bool) -> Error {
    let text = error.to_string();
    match error.kind() {
        // The server answered the login, and refused it: alive, refusing
        // us (as WRONGPASS), said as what it is.
        ::redis::ErrorKind::AuthenticationFailed => {
            return Error::Refused(format!(
                "authentication failed: the server refused the target's user and password \
                 (check the DSN's user and its `password_file`) ({text})"
            ));
        }
        // Bytes that are not RESP: another service listens there. No
        // Redis server answered, so it is down (as PostgreSQL's and
        // MySQL's drivers say of a port that does not speak their
        // protocol), never "refusing", which says a Redis server is alive.
        ::redis::ErrorKind::Parse => {
            return Error::Unreachable(format!(
                "the reply is not Redis's protocol (RESP): is this port a Redis server? ({text})"
            ));
        }
        _ => {}
    }
    if let Some(code) = error.code() {
        let detail = error.detail().unwrap_or_default();
        let line = format!("{code} {detail}").trim().to_string();
        if REFUSING.contains(&code)
            || detail.contains("max number of clients")
            || detail.contains("invalid password")
            || detail.contains("invalid username-password")
        {
            return Error::Refused(line);
        }
        return Error::Server(line);
    }
    if error.is_timeout() {
        return Error::Timeout(text);
    }
    if error.is_io_error() || error.is_unrecoverable_error() {
        if fresh {
            return Error::Refused(format!(
                "the server accepted the connection but closed it without answering ({text})"
            ));
        }
        return Error::Unreachable(text);
    }
    Error::Server(text)
}

/// How many more bytes the current command's reply may take on the wire;
/// reset before each command.
pub struct Allowance {
    left: AtomicI64,
    exceeded: AtomicBool,
    /// The first byte the server sent on the connection (0: none yet).
    first: AtomicU8,
    /// Over TLS: whether a client certificate is presented.
    tls_client_cert: Option<bool>,
    /// Over TLS: the alert about the client's certificate
    /// ([`certificate_alert`]) the server sent on a read, as its TLS code
    /// (0: none). Kept here because the client's connection driver
    /// swallows that error and reports only a broken pipe to the command.
    certificate_alert: AtomicU8,
}

/// The bytes a RESP2 or RESP3 reply begins with (its type).
const RESP_TYPES: &[u8] = b"+-:$*_#,(!=%~>|";

impl Allowance {
    fn new(tls_client_cert: Option<bool>) -> Self {
        Allowance {
            left: AtomicI64::new(0),
            exceeded: AtomicBool::new(false),
            first: AtomicU8::new(0),
            tls_client_cert,
            certificate_alert: AtomicU8::new(0),
        }
    }

    /// Whether the server's first byte on this connection begins no RESP
    /// reply: another service answered (an HTTP server's `H`), whatever
    /// error the client then met (a write after that service closed the
    /// connection is a broken pipe).
    pub fn not_resp(&self) -> bool {
        let first = self.first.load(Ordering::SeqCst);
        first != 0 && !RESP_TYPES.contains(&first)
    }

    /// [`classify`] an error met on this connection, unless the server
    /// answered in another protocol: then no Redis server answered, and
    /// the error says so (down, never "refusing").
    ///
    /// Over TLS, before the server's first reply byte: a TLS 1.3 server
    /// checks the client certificate after the handshake, so the client
    /// meets its refusal only at the first read, as a certificate alert
    /// (refusing, the key to fix named) or, when the connection closed
    /// before the alert was read, as a connection that closed without
    /// answering (refusing on a fresh connection, as without TLS, with
    /// the certificate named as a possible cause).
    pub fn classify(&self, error: ::redis::RedisError, fresh: bool) -> Error {
        if self.not_resp() {
            return Error::Unreachable(format!(
                "the reply is not Redis's protocol (RESP): is this port a Redis server? ({error})"
            ));
        }
        if let Some(client_cert) = self.tls_client_cert
            && self.first.load(Ordering::SeqCst) == 0
            && error.is_io_error()
        {
            let alert = self.certificate_alert.load(Ordering::SeqCst);
            if alert != 0 {
                return Error::Refused(format!(
                    "the server refused the TLS session after the handshake with the alert {:?}: \
                     {} ({error})",
                    rustls::AlertDescription::from(alert),
                    refused_client_cert(client_cert)
                ));
            }
            if fresh {
                return Error::Refused(format!(
                    "the server accepted the TLS connection but closed it without answering \
                     ({error}); if it refused the client certificate (a TLS 1.3 server does so \
                     after the handshake): {}",
                    refused_client_cert(client_cert)
                ));
            }
        }
        classify(error, fresh)
    }

    /// Allow `bytes` more bytes for the next reply.
    pub fn reset(&self, bytes: i64) {
        self.left.store(bytes, Ordering::SeqCst);
    }

    /// Whether a read went past the allowance (the connection is then
    /// broken and must be dropped).
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::SeqCst)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A stream that fails reads past its [`Allowance`].
struct Bounded {
    inner: Box<dyn Io>,
    allowance: Arc<Allowance>,
}

impl AsyncRead for Bounded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Err(e)) = &polled
            && let Some(rustls::Error::AlertReceived(alert)) = rustls_error(e)
            && certificate_alert(*alert)
        {
            self.allowance
                .certificate_alert
                .store(u8::from(*alert), Ordering::SeqCst);
        }
        if let Poll::Ready(Ok(())) = &polled {
            if let Some(&first) = buf.filled().get(before) {
                let _ = self.allowance.first.compare_exchange(
                    0,
                    first.max(1),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
            }
            let read = (buf.filled().len() - before) as i64;
            if self.allowance.left.fetch_sub(read, Ordering::SeqCst) - read < 0 {
                self.allowance.exceeded.store(true, Ordering::SeqCst);
                return Poll::Ready(Err(io::Error::other(
                    "the reply is larger than the probe may receive",
                )));
            }
        }
        polled
    }
}

impl AsyncWrite for Bounded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Upper bound on connecting, whatever the run's deadline.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_s_own_socket_failures_are_not_the_server_s() {
        // (errno, the agent's own?)
        let cases = [
            (libc::EMFILE, true),
            (libc::ENFILE, true),
            (libc::ENOMEM, true),
            (libc::ENOBUFS, true),
            (libc::EADDRNOTAVAIL, true),
            (libc::ECONNREFUSED, false),
            (libc::EHOSTUNREACH, false),
        ];
        for (errno, own) in cases {
            let error = connect_error("h:1", io::Error::from_raw_os_error(errno));
            assert_eq!(matches!(error, Error::Agent(_)), own, "{errno}: {error:?}");
        }
    }

    /// A new user's finding: a wrong password read "accepted the
    /// connection but closed it without answering", and a port where
    /// another service answers read the same with parser bytes.
    #[test]
    fn a_refused_login_and_a_reply_that_is_not_resp_say_what_they_are() {
        use ::redis::{ErrorKind, RedisError};
        let login = classify(
            RedisError::from((
                ErrorKind::AuthenticationFailed,
                "Password authentication failed",
            )),
            true,
        );
        assert!(
            matches!(&login, Error::Refused(m) if m.contains("authentication failed") && m.contains("password_file")),
            "{login:?}"
        );
        let other = classify(
            RedisError::from((ErrorKind::Parse, "Parse error at 1")),
            true,
        );
        assert!(
            matches!(&other, Error::Unreachable(m) if m.contains("not Redis's protocol")),
            "{other:?}"
        );
    }

    #[test]
    fn urls_are_checked_and_passwords_redacted() {
        assert_eq!(check_url("redis://127.0.0.1:6379/0"), Ok((false, false)));
        assert_eq!(check_url("rediss://u:p@db.example:6380"), Ok((true, true)));
        assert_eq!(check_url("unix:///run/redis.sock"), Ok((false, false)));
        let error = check_url("http://x").unwrap_err();
        assert!(error.contains("not a Redis URL"), "{error}");
        assert_eq!(
            redact("redis://probe:secret@h:1/0"),
            "redis://probe:***@h:1/0"
        );
        assert!(
            !check_url("mysql://u:secret@h/")
                .unwrap_err()
                .contains("secret")
        );
    }
}

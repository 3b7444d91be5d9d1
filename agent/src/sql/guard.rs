//! The socket under every database session, with a bound on what the
//! server may make the agent hold.
//!
//! `tokio-postgres` reserves a whole protocol message as soon as it reads
//! its length, so one row with a 900 MB value (`SELECT repeat('x',
//! 900000000)`) would make the agent allocate 900 MB before any limit of
//! ours could look at it. [`Guard`] reads the server's stream (above TLS,
//! where the messages are) and replaces a message that announces more than
//! [`MAX_MESSAGE`] bytes by an error response of its own (SQLSTATE
//! `54000`, routine [`GUARD_ROUTINE`], the announced size as its detail),
//! dropping the message's bytes as they arrive instead of holding them:
//! the statement fails with [`Error::TooLarge`](super::Error) and its
//! session is closed. [`connect_socket`] opens the TCP or Unix socket
//! itself (as `tokio-postgres` would: every host of the DSN in turn, its
//! connect timeout, keepalives and TCP user timeout) so that the guard
//! sits under the plain sessions too.

use super::types::MAX_RESULT_BYTES;
use socket2::{SockRef, TcpKeepalive};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::Host;
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

/// Largest protocol message (a row, mostly) the agent accepts, in bytes:
/// a row larger than a probe may ever receive cannot be worth reading.
pub const MAX_MESSAGE: usize = MAX_RESULT_BYTES + (64 << 10);

/// The `routine` field of the error a [`Guard`] puts in place of an
/// oversized message (no server sends it).
pub const GUARD_ROUTINE: &str = "watchpost-guard";

/// Bytes read from the server at a time.
const CHUNK: usize = 16 << 10;

/// A stream whose incoming protocol messages are bounded in size.
pub struct Guard<S> {
    inner: S,
    /// Header bytes of the message being read (tag and length).
    header: [u8; 5],
    /// How many of `header` are filled.
    filled: usize,
    /// Body bytes of the current message still to come.
    remaining: u64,
    /// The current message is oversized: its bytes are dropped.
    skipping: bool,
    /// Bytes to hand on before reading more.
    pending: Vec<u8>,
    /// Over TLS with a client certificate, and the server has sent nothing
    /// yet: a connection that is closed or reset now is
    /// [`ClosedBeforeAnswering`].
    tls_unanswered: bool,
}

/// A TLS connection, on which the agent presented a client certificate,
/// closed or reset by the server before its first protocol message: what
/// a client meets when the server refuses its certificate after a TLS 1.3
/// handshake and the alert was lost to the reset. (A PostgreSQL server
/// refuses a missing certificate with a message, from pg_hba.conf; a
/// backend killed while it starts also closes without one, which is why
/// this is armed only when a certificate is presented.)
#[derive(Debug)]
pub struct ClosedBeforeAnswering(String);

impl std::fmt::Display for ClosedBeforeAnswering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server closed the TLS connection before its first message ({})",
            self.0
        )
    }
}

impl std::error::Error for ClosedBeforeAnswering {}

/// The error a read over TLS met before the server's first message: a
/// close or a reset is [`ClosedBeforeAnswering`]; anything else (an alert,
/// which names itself, a timeout, an unreachable host, the agent's own
/// limits) stays as it is.
fn before_answering(error: Option<io::Error>) -> io::Error {
    match error {
        Some(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ) && super::tls_alert::rustls_error(&e).is_none() =>
        {
            io::Error::new(e.kind(), ClosedBeforeAnswering(e.to_string()))
        }
        Some(e) => e,
        None => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            ClosedBeforeAnswering("end of stream".into()),
        ),
    }
}

/// The error response that takes the place of a message of `announced`
/// bytes.
fn refusal(announced: u64) -> Vec<u8> {
    let message = format!(
        "the server sent a row of {announced} bytes; the agent reads at most {MAX_MESSAGE} \
         bytes per row"
    );
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', "54000"),
        (b'M', message.as_str()),
        (b'D', &announced.to_string()),
        (b'R', GUARD_ROUTINE),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

impl<S> Guard<S> {
    pub fn new(inner: S) -> Self {
        Guard {
            inner,
            header: [0; 5],
            filled: 0,
            remaining: 0,
            skipping: false,
            pending: Vec::new(),
            tls_unanswered: false,
        }
    }

    /// A guard over a TLS stream whose handshake just ended, on which a
    /// client certificate was presented if `client_cert`.
    pub fn over_tls(inner: S, client_cert: bool) -> Self {
        Guard {
            tls_unanswered: client_cert,
            ..Guard::new(inner)
        }
    }

    /// Follow the message framing over `bytes`, just read: what may pass
    /// goes to `pending`.
    fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let take = (self.remaining as usize).min(bytes.len());
                if !self.skipping {
                    self.pending.extend_from_slice(&bytes[..take]);
                }
                self.remaining -= take as u64;
                bytes = &bytes[take..];
                continue;
            }
            let take = (5 - self.filled).min(bytes.len());
            self.header[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled == 5 {
                self.filled = 0;
                let length = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]) as u64;
                let body = length.saturating_sub(4);
                self.remaining = body;
                self.skipping = body > MAX_MESSAGE as u64;
                if self.skipping {
                    self.pending.extend_from_slice(&refusal(body));
                } else {
                    self.pending.extend_from_slice(&self.header);
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.drain(..n);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            let polled = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read));
            match polled {
                Err(e) if this.tls_unanswered => {
                    return Poll::Ready(Err(before_answering(Some(e))));
                }
                Err(e) => return Poll::Ready(Err(e)),
                Ok(()) if read.filled().is_empty() && this.tls_unanswered => {
                    return Poll::Ready(Err(before_answering(None)));
                }
                Ok(()) if read.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => this.tls_unanswered = false,
            }
            this.scan(read.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guard<S> {
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

impl<S: TlsStream + Unpin> TlsStream for Guard<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// A TLS connector whose streams are guarded; whether a client
/// certificate is presented ([`Guard::over_tls`]).
pub struct GuardedTls<T>(pub T, pub bool);

impl<S, T> TlsConnect<S> for GuardedTls<T>
where
    T: TlsConnect<S>,
    T::Stream: Unpin,
    T::Future: Send + 'static,
{
    type Stream = Guard<T::Stream>;
    type Error = T::Error;
    type Future = futures_util::future::MapOk<T::Future, fn(T::Stream) -> Guard<T::Stream>>;

    fn connect(self, stream: S) -> Self::Future {
        use futures_util::TryFutureExt;
        let wrap: fn(T::Stream) -> Guard<T::Stream> = if self.1 {
            |stream| Guard::over_tls(stream, true)
        } else {
            |stream| Guard::over_tls(stream, false)
        };
        self.0.connect(stream).map_ok(wrap)
    }
}

/// An open TCP or Unix socket to a server.
pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Opening failed: the first use reports the error (so that the
    /// failure reaches the caller as a `tokio_postgres::Error`).
    Failed(Option<io::Error>),
}

impl Socket {
    fn failed(&mut self) -> io::Error {
        match self {
            Socket::Failed(error) => error
                .take()
                .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected")),
            _ => unreachable!("only called on a failed socket"),
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut *self {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Failed(_) => Poll::Ready(Err(self.failed())),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut *self {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Failed(_) => Poll::Ready(Err(self.failed())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
            Socket::Failed(_) => Poll::Ready(Err(self.failed())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Failed(_) => Poll::Ready(Ok(())),
        }
    }
}

/// Open a socket to the first host of `config` that accepts one, as
/// libpq would: each host (or its `hostaddr`) with its port, within the
/// connect timeout, with the DSN's keepalives and TCP user timeout.
/// Returns the socket and the host name (for TLS); a failure is returned
/// as a [`Socket::Failed`] carrying the last error.
pub async fn connect_socket(config: &tokio_postgres::Config) -> (Socket, String) {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let ports = config.get_ports();
    let count = hosts.len().max(addrs.len());
    let mut last = io::Error::new(
        io::ErrorKind::InvalidInput,
        "the DSN names no host (give `host=`)",
    );
    for i in 0..count {
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432);
        let host = hosts.get(i);
        let name = match host {
            Some(Host::Tcp(name)) => name.clone(),
            _ => addrs.get(i).map(|a| a.to_string()).unwrap_or_default(),
        };
        let attempt = async {
            match (addrs.get(i), host) {
                (Some(ip), _) => tcp(config, &[std::net::SocketAddr::new(*ip, port)]).await,
                (None, Some(Host::Tcp(name))) => {
                    let resolved: Vec<_> = tokio::net::lookup_host((name.as_str(), port))
                        .await?
                        .collect();
                    tcp(config, &resolved).await
                }
                (None, Some(Host::Unix(dir))) => {
                    let path = dir.join(format!(".s.PGSQL.{port}"));
                    Ok(Socket::Unix(UnixStream::connect(path).await?))
                }
                (None, None) => Err(io::Error::new(io::ErrorKind::InvalidInput, "no host")),
            }
        };
        let outcome = match config.get_connect_timeout() {
            Some(limit) => tokio::time::timeout(*limit, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection timed out",
                    ))
                }),
            None => attempt.await,
        };
        match outcome {
            Ok(socket) => return (socket, name),
            Err(error) => last = error,
        }
    }
    (Socket::Failed(Some(last)), String::new())
}

async fn tcp(
    config: &tokio_postgres::Config,
    addrs: &[std::net::SocketAddr],
) -> io::Result<Socket> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                let sock = SockRef::from(&stream);
                if let Some(limit) = config.get_tcp_user_timeout() {
                    sock.set_tcp_user_timeout(Some(*limit))?;
                }
                if config.get_keepalives() {
                    let mut keepalive = TcpKeepalive::new().with_time(config.get_keepalives_idle());
                    if let Some(interval) = config.get_keepalives_interval() {
                        keepalive = keepalive.with_interval(interval);
                    }
                    if let Some(retries) = config.get_keepalives_retries() {
                        keepalive = keepalive.with_retries(retries);
                    }
                    sock.set_tcp_keepalive(&keepalive)?;
                }
                return Ok(Socket::Tcp(stream));
            }
            Err(error) => last = error,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, body: usize) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&((body + 4) as u32).to_be_bytes());
        m.extend(std::iter::repeat_n(b'x', body));
        m
    }

    /// What the first read on a guard over `stream` meets.
    async fn first_read(stream: tokio::io::DuplexStream, client_cert: bool) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        let mut guard = Guard::over_tls(stream, client_cert);
        let mut buf = [0u8; 64];
        guard.read(&mut buf).await
    }

    fn closed_before_answering(e: &io::Error) -> bool {
        e.get_ref()
            .is_some_and(|inner| inner.is::<ClosedBeforeAnswering>())
    }

    #[tokio::test]
    async fn a_tls_session_closed_before_the_first_message_is_told_only_with_a_certificate() {
        // The server end closes at once.
        let (client, server) = tokio::io::duplex(64);
        drop(server);
        let e = first_read(client, true).await.unwrap_err();
        assert!(closed_before_answering(&e), "{e}");
        assert!(e.to_string().contains("before its first message"), "{e}");
        // Without a client certificate, no server refuses one: the end of
        // the stream is only that.
        let (client, server) = tokio::io::duplex(64);
        drop(server);
        assert_eq!(first_read(client, false).await.unwrap(), 0);
        // After the server's first byte, the end is an ordinary end.
        let (client, mut server) = tokio::io::duplex(64);
        {
            use tokio::io::AsyncWriteExt;
            server.write_all(&message(b'R', 4)).await.unwrap();
        }
        drop(server);
        let mut guard = Guard::over_tls(client, true);
        let mut buf = [0u8; 64];
        use tokio::io::AsyncReadExt;
        assert!(guard.read(&mut buf).await.unwrap() > 0);
        assert_eq!(guard.read(&mut buf).await.unwrap(), 0);
    }

    #[test]
    fn only_a_close_or_reset_before_the_first_message_is_wrapped() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
        ] {
            let e = before_answering(Some(io::Error::from(kind)));
            assert!(closed_before_answering(&e), "{kind:?}");
            assert_eq!(e.kind(), kind);
        }
        for kind in [io::ErrorKind::TimedOut, io::ErrorKind::HostUnreachable] {
            let e = before_answering(Some(io::Error::from(kind)));
            assert!(!closed_before_answering(&e), "{kind:?}");
        }
        // The agent's own limits keep their errno (is_agent_side).
        let e = before_answering(Some(io::Error::from_raw_os_error(libc::ENOBUFS)));
        assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS));
    }

    #[test]
    fn small_messages_pass_in_any_split() {
        let mut stream = message(b'D', 10);
        stream.extend(message(b'C', 3));
        stream.extend(message(b'Z', 1));
        for split in 1..stream.len() {
            let mut guard = Guard::new(());
            for chunk in stream.chunks(split) {
                guard.scan(chunk);
            }
            assert_eq!(guard.pending, stream);
        }
    }

    #[test]
    fn a_message_over_the_limit_becomes_an_error_and_its_bytes_are_dropped() {
        let mut guard = Guard::new(());
        let mut header = vec![b'D'];
        header.extend_from_slice(&((MAX_MESSAGE + 5) as u32).to_be_bytes());
        guard.scan(&header);
        guard.scan(&vec![b'x'; MAX_MESSAGE + 1]);
        let ready = message(b'Z', 1);
        guard.scan(&ready);
        let mut expected = refusal(MAX_MESSAGE as u64 + 1);
        expected.extend(ready);
        assert_eq!(guard.pending, expected);
    }
}

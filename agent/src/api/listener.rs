//! The status API's accept loop, built so that no client can take the
//! agent's file descriptors or threads: at most [`MAX_CONNECTIONS`] open
//! connections (a new one closes the oldest connection that has no request
//! in progress, so idle or half-sent connections cannot crowd out a health
//! check; if every one is busy, the new one is closed), the request head
//! must arrive within [`HEADER_TIMEOUT`] (also between requests on a
//! kept-alive connection), heads are at most [`MAX_HEAD`] bytes and 64
//! headers, and a request is answered within [`REQUEST_TIMEOUT`] (a
//! connection still busy past that may be closed for a new one). HTTP/1.1
//! only.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Open connections at most.
pub const MAX_CONNECTIONS: usize = 256;
/// Time for a client to send a request's head (line and headers).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to answer one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head (the read buffer), bytes.
pub const MAX_HEAD: usize = 16 * 1024;

/// One open connection.
struct Conn {
    /// Requests in progress (until their response body is sent).
    busy: AtomicUsize,
    /// When the current request started, ms since the listener's start.
    since_ms: AtomicU64,
    /// Closes the connection at once.
    close: CancellationToken,
}

struct Registry {
    started: Instant,
    next: u64,
    open: BTreeMap<u64, Arc<Conn>>,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Room for a new connection: its id and handle, or `None` when every
    /// open connection is busy with a request that is still in time.
    fn admit(&mut self) -> Option<(u64, Arc<Conn>)> {
        if self.open.len() >= MAX_CONNECTIONS {
            let now = self.now_ms();
            let stuck = REQUEST_TIMEOUT.as_millis() as u64 * 2;
            let victim = self.open.iter().find_map(|(id, c)| {
                let busy = c.busy.load(Ordering::Acquire);
                let since = c.since_ms.load(Ordering::Acquire);
                (busy == 0 || now.saturating_sub(since) > stuck).then_some(*id)
            })?;
            if let Some(conn) = self.open.remove(&victim) {
                conn.close.cancel();
            }
        }
        let id = self.next;
        self.next += 1;
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            since_ms: AtomicU64::new(0),
            close: CancellationToken::new(),
        });
        self.open.insert(id, conn.clone());
        Some((id, conn))
    }
}

/// A request in progress on a connection, until its response is sent.
struct Busy(Arc<Conn>);

impl Busy {
    fn enter(conn: &Arc<Conn>, now_ms: u64) -> Busy {
        conn.since_ms.store(now_ms, Ordering::Release);
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection marked busy until sent.
struct Guarded {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serve `router` on `listener` until `shutdown` fires; then stop
/// accepting and give open requests up to 5 s.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, shutdown: CancellationToken) {
    let registry = Arc::new(Mutex::new(Registry {
        started: Instant::now(),
        next: 0,
        open: BTreeMap::new(),
    }));
    let tracker = TaskTracker::new();
    let mut last_error: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or memory: wait instead of spinning,
                // and say so at most once a minute.
                if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!("the status API cannot accept a connection: {e}");
                    last_error = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let admitted = registry.lock().admit();
        let Some((id, conn)) = admitted else {
            // Every slot busy in time: this one is closed (dropped).
            continue;
        };
        tracker.spawn(connection(
            stream,
            router.clone(),
            id,
            conn,
            registry.clone(),
            shutdown.clone(),
        ));
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
}

async fn connection(
    stream: tokio::net::TcpStream,
    router: Router,
    id: u64,
    conn: Arc<Conn>,
    registry: Arc<Mutex<Registry>>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let clock = {
        let r = registry.lock();
        r.started
    };
    let handle = conn.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let busy = Busy::enter(&handle, clock.elapsed().as_millis() as u64);
        let router = router.clone();
        async move {
            let answer =
                tokio::time::timeout(REQUEST_TIMEOUT, router.oneshot(request.map(Body::new)));
            let response = match answer.await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("no answer within {} s\n", REQUEST_TIMEOUT.as_secs()),
                )
                    .into_response(),
            };
            Ok::<Response<Guarded>, Infallible>(
                response.map(|inner| Guarded { inner, _busy: busy }),
            )
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .max_headers(64);
    let serving = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(serving);
    tokio::select! {
        _ = serving.as_mut() => {}
        // Closed for a newer connection: dropping it closes the socket.
        _ = conn.close.cancelled() => {}
        _ = shutdown.cancelled() => {
            serving.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
        }
    }
    registry.lock().open.remove(&id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_listener_closes_the_oldest_idle_connection() {
        let mut r = Registry {
            started: Instant::now(),
            next: 0,
            open: BTreeMap::new(),
        };
        let mut conns = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            conns.push(r.admit().unwrap());
        }
        // The first one is busy: the second (oldest idle) goes.
        let _busy = Busy::enter(&conns[0].1, r.now_ms());
        let (id, _) = r.admit().unwrap();
        assert_eq!(id, MAX_CONNECTIONS as u64);
        assert!(conns[1].1.close.is_cancelled());
        assert!(!conns[0].1.close.is_cancelled());
        assert_eq!(r.open.len(), MAX_CONNECTIONS);
        // Every one busy: no room.
        let all: Vec<Busy> = r
            .open
            .values()
            .map(|c| Busy::enter(c, r.now_ms()))
            .collect();
        assert!(r.admit().is_none());
        drop(all);
    }
}

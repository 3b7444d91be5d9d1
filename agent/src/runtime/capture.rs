//! Capture of a probe's stdout and stderr: the last few KiB of each run.
//!
//! A probe that prints is not an error, and a chatty one must not fill the
//! agent's memory, so writes always succeed and only the tail is kept. The
//! tail of stderr is what explains a trap (a Rust panic prints its message
//! there before it aborts).

use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of output kept per stream and run.
const TAIL_BYTES: usize = 4096;

/// A stream whose last [`TAIL_BYTES`] bytes are kept. Clones share the buffer.
#[derive(Clone, Default)]
pub struct OutputTail {
    buffer: Arc<Mutex<Tail>>,
}

#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    dropped: u64,
}

impl OutputTail {
    fn append(&self, data: &[u8]) {
        let mut tail = self.buffer.lock();
        tail.bytes.extend_from_slice(data);
        if tail.bytes.len() > TAIL_BYTES {
            let excess = tail.bytes.len() - TAIL_BYTES;
            tail.bytes.drain(..excess);
            tail.dropped += excess as u64;
        }
    }

    /// What was kept, as text (invalid UTF-8 replaced), trimmed.
    pub fn text(&self) -> String {
        let tail = self.buffer.lock();
        let text = String::from_utf8_lossy(&tail.bytes);
        let text = text.trim();
        if tail.dropped > 0 {
            format!("[{} bytes dropped] {text}", tail.dropped)
        } else {
            text.to_string()
        }
    }
}

impl IsTerminal for OutputTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputTail {
    async fn ready(&mut self) {}
}

impl OutputStream for OutputTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for OutputTail {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_tail() {
        let tail = OutputTail::default();
        tail.append(&vec![b'a'; TAIL_BYTES]);
        tail.append(b"the end");
        let text = tail.text();
        assert!(text.starts_with("[7 bytes dropped]"), "{text}");
        assert!(text.ends_with("the end"));
    }
}

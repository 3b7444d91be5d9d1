//! A proxy in front of etcd's JSON gateway that loses the answers to the
//! transactions taking the leader key, for issue 30's late-answer test.
//! It forwards requests and answers on 127.0.0.1 (one listener per etcd
//! member), reading HTTP/1.1 on both sides of each keep-alive connection
//! (a body by its `Content-Length`, chunked, or up to the close) so that
//! it knows which answer belongs to which request: answers come in the
//! order of their requests. While the test's switch is on
//! ([`LateAnswerProxy::hold`]), a `POST /v3/kv/txn` whose body puts the
//! key it watches (a `request_put` of that key among its `success`
//! operations: taking the key, never a renewal or a member's write) goes
//! to etcd at once — etcd applies it — and its ANSWER is held for the
//! test's delay, then delivered late ([`Late::Deliver`]) or replaced by
//! closing the connection ([`Late::Close`]). The agent, whose request
//! timeout is shorter than the delay, never hears whether it took the key.

use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What becomes of a held answer once the delay is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Late {
    /// Sent, late (to a client that has given up on it, usually).
    Deliver,
    /// Never sent: the connection is closed instead.
    Close,
}

struct Shared {
    holding: AtomicBool,
    stop: AtomicBool,
    /// The watched key, base64 as the gateway's bodies carry it.
    key: String,
    delay: Duration,
    late: Late,
    /// When each held answer came from etcd.
    held: Mutex<Vec<Instant>>,
    /// The open connections (client side, etcd side), shut down on drop.
    open: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    next: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

pub struct LateAnswerProxy {
    /// One local port per upstream, in the same order.
    pub ports: Vec<u16>,
    shared: Arc<Shared>,
    accepting: Vec<JoinHandle<()>>,
}

impl LateAnswerProxy {
    /// Forward a new local port to each of `upstreams` (host, port),
    /// watching the transactions that put `key`; held answers wait `delay`.
    pub fn start(upstreams: &[(String, u16)], key: &str, delay: Duration, late: Late) -> Self {
        let shared = Arc::new(Shared {
            holding: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            key: crate::etcd::b64(key),
            delay,
            late,
            held: Mutex::new(Vec::new()),
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let mut ports = Vec::new();
        let mut accepting = Vec::new();
        for (host, port) in upstreams.iter().cloned() {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            ports.push(listener.local_addr().unwrap().port());
            let shared = shared.clone();
            accepting.push(std::thread::spawn(move || {
                for client in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    match TcpStream::connect((host.as_str(), port)) {
                        Ok(server) => connect(&shared, client, server),
                        Err(_) => {
                            let _ = client.shutdown(Shutdown::Both);
                        }
                    }
                }
            }));
        }
        LateAnswerProxy {
            ports,
            shared,
            accepting,
        }
    }

    /// Hold (or stop holding) the answers of the transactions that put
    /// the key, for requests sent from now on.
    pub fn hold(&self, on: bool) {
        self.shared.holding.store(on, Ordering::SeqCst);
    }

    /// When each answer held so far came from etcd.
    pub fn held(&self) -> Vec<Instant> {
        self.shared.held.lock().unwrap().clone()
    }

    /// The proxy's URLs, as the items of a TOML array (`[cluster] etcd`).
    pub fn endpoints_toml(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("\"http://127.0.0.1:{p}\""))
            .collect();
        urls.join(", ")
    }
}

impl Drop for LateAnswerProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for port in &self.ports {
            // Wake the accept loop so it sees the flag.
            let _ = TcpStream::connect(("127.0.0.1", *port));
        }
        for t in self.accepting.drain(..) {
            let _ = t.join();
        }
        for (client, server) in self.shared.open.lock().unwrap().values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap());
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Serve one connection: requests up, answers down, each in a thread;
/// what each request asked for (hold its answer or not) queued between.
fn connect(shared: &Arc<Shared>, client: TcpStream, server: TcpStream) {
    let id = shared.next.fetch_add(1, Ordering::SeqCst);
    let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    shared.open.lock().unwrap().insert(id, (c, s));
    let queue = Arc::new(Mutex::new(VecDeque::new()));
    let up = {
        let (shared, queue) = (shared.clone(), queue.clone());
        let (from, to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || requests(&shared, from, to, &queue))
    };
    let down = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            answers(&shared, server, client, &queue);
            shared.open.lock().unwrap().remove(&id);
        })
    };
    shared.threads.lock().unwrap().extend([up, down]);
}

/// Forward each request, queueing whether its answer is to be held.
fn requests(shared: &Shared, from: TcpStream, mut to: TcpStream, queue: &Mutex<VecDeque<bool>>) {
    let mut from = BufReader::new(from);
    while let Ok(Some(request)) = read_message(&mut from, false) {
        let hold = shared.holding.load(Ordering::SeqCst)
            && request.first_line.split(' ').nth(1) == Some("/v3/kv/txn")
            && puts_key(&request.body, &shared.key);
        queue.lock().unwrap().push_back(hold);
        if to.write_all(&request.raw).is_err() {
            break;
        }
    }
    // The client is gone (it gave up on an answer, say): etcd hears so.
    let _ = to.shutdown(Shutdown::Write);
}

/// Forward each answer, holding those of the requests queued so.
fn answers(shared: &Shared, from: TcpStream, mut to: TcpStream, queue: &Mutex<VecDeque<bool>>) {
    let mut from = BufReader::new(from);
    while let Ok(Some(answer)) = read_message(&mut from, true) {
        // An interim answer (1xx) comes before its request's own.
        let interim = answer
            .first_line
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .starts_with('1');
        let hold = !interim && queue.lock().unwrap().pop_front().unwrap_or(false);
        if hold {
            shared.held.lock().unwrap().push(Instant::now());
            let until = Instant::now() + shared.delay;
            while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if shared.late == Late::Close {
                break;
            }
        }
        if to.write_all(&answer.raw).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.get_ref().shutdown(Shutdown::Both);
}

/// Whether a transaction's JSON body puts `key` (base64) on success.
fn puts_key(body: &[u8], key: &str) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|txn| {
        txn["success"]
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op["request_put"]["key"] == key))
    })
}

/// One HTTP/1.1 message: its bytes as sent, its first line, its body
/// (de-chunked).
struct Message {
    raw: Vec<u8>,
    first_line: String,
    body: Vec<u8>,
}

/// Read one message (`None`: the connection closed between messages). An
/// answer's body has no length when it is a 1xx, 204 or 304, and runs to
/// the close when neither a length nor chunks are given; a request's
/// is then empty.
fn read_message(from: &mut BufReader<TcpStream>, answer: bool) -> std::io::Result<Option<Message>> {
    let mut raw = Vec::new();
    let mut line = Vec::new();
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if from.read_until(b'\n', &mut line)? == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                _ => {}
            }
        }
    }
    let first_line = String::from_utf8_lossy(raw.split(|b| *b == b'\n').next().unwrap_or(&[]))
        .trim_end()
        .to_string();
    let status = first_line.split(' ').nth(1).unwrap_or("");
    let bodyless = answer && (status.starts_with('1') || status == "204" || status == "304");
    let mut body = Vec::new();
    if chunked && !bodyless {
        read_chunks(from, &mut raw, &mut body)?;
    } else if let (Some(n), false) = (length, bodyless) {
        body.resize(n, 0);
        from.read_exact(&mut body)?;
        raw.extend_from_slice(&body);
    } else if answer && !bodyless {
        from.read_to_end(&mut body)?;
        raw.extend_from_slice(&body);
    }
    Ok(Some(Message {
        raw,
        first_line,
        body,
    }))
}

/// A chunked body: its bytes as sent to `raw`, its data to `body`.
fn read_chunks(
    from: &mut BufReader<TcpStream>,
    raw: &mut Vec<u8>,
    body: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        from.read_until(b'\n', &mut line)?;
        raw.extend_from_slice(&line);
        let size = String::from_utf8_lossy(&line);
        let size = size.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
        if size == 0 {
            // The trailer, up to its empty line (or the close).
            loop {
                line.clear();
                let n = from.read_until(b'\n', &mut line)?;
                raw.extend_from_slice(&line);
                if n == 0 || line.trim_ascii().is_empty() {
                    return Ok(());
                }
            }
        }
        let mut chunk = vec![0; size + 2];
        from.read_exact(&mut chunk)?;
        raw.extend_from_slice(&chunk);
        body.extend_from_slice(&chunk[..size]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer by its length, a chunked one and a 204 on one
    /// connection, read one by one with their bodies.
    #[test]
    fn messages_are_told_apart_on_a_kept_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let writer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
                  HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
                  HTTP/1.1 204 No Content\r\n\r\n",
            )
            .unwrap();
        });
        let mut from = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
        let bodies: Vec<Vec<u8>> = std::iter::from_fn(|| read_message(&mut from, true).unwrap())
            .map(|m| m.body)
            .collect();
        writer.join().unwrap();
        assert_eq!(bodies, [b"hello".to_vec(), b"abcde".to_vec(), Vec::new()]);
    }

    #[test]
    fn only_a_transaction_putting_the_key_is_watched() {
        let key = crate::etcd::b64("/watchpost/test/leader");
        let take = format!(
            r#"{{"compare":[{{"key":"{key}","target":"CREATE"}}],"success":[{{"request_put":{{"key":"{key}","value":"bm9kZTI=","lease":"7"}}}}]}}"#
        );
        let compare_only = format!(
            r#"{{"compare":[{{"key":"{key}","target":"LEASE"}}],"success":[{{"request_put":{{"key":"b3RoZXI=","value":"eA=="}}}}]}}"#
        );
        assert!(puts_key(take.as_bytes(), &key));
        assert!(!puts_key(compare_only.as_bytes(), &key));
        assert!(!puts_key(b"not json", &key));
    }
}

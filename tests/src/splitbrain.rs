//! The split-brain detector of the cluster tests: one writer thread per
//! address (each node directly, or a load balancer), every `every`, tries
//! `INSERT INTO sb_writes` with a sequence number unique across threads,
//! over a kept session (reconnected after an error), and records every
//! acknowledged write with the address, the times it was sent and
//! acknowledged, and its number.
//!
//! A split brain is two nodes acknowledging writes in time intervals that
//! overlap ([`Report::overlaps`]); data loss is an acknowledged write
//! missing from the new primary afterwards ([`Report::missing`]).
//! PostgreSQL servers, or MariaDB ones ([`mysql`], `app.sb_writes`).

pub mod mysql;

use postgres::{Client, NoTls};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The table every write goes to (create it on the primary first).
pub const TABLE: &str = "CREATE TABLE IF NOT EXISTS sb_writes (seq bigint PRIMARY KEY, via text NOT NULL, server_port int)";

/// One acknowledged write.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The writer's label (a node's name, or `haproxy`).
    pub via: String,
    /// The port of the server that acknowledged it (through a load
    /// balancer: the server behind it).
    pub server: u16,
    pub seq: i64,
    pub sent: Instant,
    pub acked: Instant,
}

/// One writer's kept session: insert row `seq` labelled `via`; the port
/// of the server that acknowledged it.
pub trait Session: Send {
    fn insert(&mut self, seq: i64, via: &str) -> Result<u16, String>;
}

/// Opens a writer's session (`None`: not now).
pub type Connect = Box<dyn FnMut() -> Option<Box<dyn Session>> + Send>;

impl Session for Client {
    fn insert(&mut self, n: i64, label: &str) -> Result<u16, String> {
        let sql = format!(
            "INSERT INTO sb_writes VALUES ({n}, '{label}', current_setting('port')::int) RETURNING server_port"
        );
        let rows = self.simple_query(&sql).map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
                _ => None,
            })
            .unwrap_or(0))
    }
}

pub struct Writer {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    threads: Vec<JoinHandle<()>>,
}

/// What the writers saw.
#[derive(Debug)]
pub struct Report {
    pub acks: Vec<Ack>,
}

impl Writer {
    /// Start one writer per `(label, dsn)` (PostgreSQL).
    pub fn start(targets: &[(String, String)], every: Duration) -> Writer {
        let sessions = targets
            .iter()
            .cloned()
            .map(|(label, dsn)| {
                let connect = move || -> Option<Box<dyn Session>> {
                    Some(Box::new(Client::connect(&dsn, NoTls).ok()?))
                };
                (label, Box::new(connect) as Connect)
            })
            .collect();
        Writer::start_with(sessions, every)
    }

    /// Start one writer per `(label, port)` on MariaDB servers on
    /// loopback, as `user` (no password), into `app.sb_writes`.
    pub fn start_mysql(targets: &[(String, u16)], user: &str, every: Duration) -> Writer {
        let targets: Vec<(String, String, u16)> = targets
            .iter()
            .map(|(label, port)| (label.clone(), "127.0.0.1".to_string(), *port))
            .collect();
        Writer::start_mysql_at(&targets, user, every)
    }

    /// [`Writer::start_mysql`] on servers at `(label, host, port)`.
    pub fn start_mysql_at(
        targets: &[(String, String, u16)],
        user: &str,
        every: Duration,
    ) -> Writer {
        let sessions = targets
            .iter()
            .cloned()
            .map(|(label, host, port)| {
                let user = user.to_string();
                let connect = move || -> Option<Box<dyn Session>> {
                    Some(Box::new(mysql::MysqlSession::connect_at(
                        &host, &user, port,
                    )?))
                };
                (label, Box::new(connect) as Connect)
            })
            .collect();
        Writer::start_with(sessions, every)
    }

    /// Start one writer per `(label, connect)`: each keeps the session
    /// `connect` opens (a new one after an error).
    pub fn start_with(targets: Vec<(String, Connect)>, every: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let seq = Arc::new(AtomicU64::new(1));
        let threads = targets
            .into_iter()
            .map(|(label, mut connect)| {
                let (stop, acks, seq) = (stop.clone(), acks.clone(), seq.clone());
                std::thread::spawn(move || {
                    let mut client: Option<Box<dyn Session>> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let n = seq.fetch_add(1, Ordering::Relaxed) as i64;
                        if client.is_none() {
                            client = connect();
                        }
                        if let Some(c) = client.as_mut() {
                            match c.insert(n, &label) {
                                Ok(server) => {
                                    acks.lock().unwrap().push(Ack {
                                        via: label.clone(),
                                        server,
                                        seq: n,
                                        sent: started,
                                        acked: Instant::now(),
                                    });
                                }
                                Err(_) => client = None,
                            }
                        }
                        std::thread::sleep(every.saturating_sub(started.elapsed()));
                    }
                })
            })
            .collect();
        Writer {
            stop,
            acks,
            threads,
        }
    }

    /// Acknowledged writes so far.
    pub fn count(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Acknowledged writes so far through the writer named `via`.
    pub fn count_via(&self, via: &str) -> usize {
        self.acks
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.via == via)
            .count()
    }

    pub fn stop(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut acks = std::mem::take(&mut *self.acks.lock().unwrap());
        acks.sort_by_key(|a| a.sent);
        Report { acks }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Report {
    /// Pairs of servers whose acknowledgment spans (first write sent to
    /// last write acknowledged, from `since`) overlap: each is
    /// `(server a, server b)`. Empty: no split brain.
    pub fn overlaps(&self, since: Instant) -> Vec<(u16, u16)> {
        let mut spans: std::collections::BTreeMap<u16, (Instant, Instant)> = Default::default();
        for a in self.acks.iter().filter(|a| a.sent >= since) {
            let span = spans.entry(a.server).or_insert((a.sent, a.acked));
            span.0 = span.0.min(a.sent);
            span.1 = span.1.max(a.acked);
        }
        let spans: Vec<_> = spans.into_iter().collect();
        let mut found = Vec::new();
        for (i, (a, (a0, a1))) in spans.iter().enumerate() {
            for (b, (b0, b1)) in &spans[i + 1..] {
                if a0 <= b1 && b0 <= a1 {
                    found.push((*a, *b));
                }
            }
        }
        found
    }

    /// Acknowledged sequence numbers missing from `present` (the rows the
    /// new primary holds).
    pub fn missing(&self, present: &[i64]) -> Vec<i64> {
        let have: std::collections::HashSet<i64> = present.iter().copied().collect();
        self.acks
            .iter()
            .map(|a| a.seq)
            .filter(|s| !have.contains(s))
            .collect()
    }

    /// The longest time without an acknowledged write, over the writes
    /// acknowledged through `via` (`None`: any writer), between `from`
    /// and `to`.
    pub fn longest_gap(&self, via: Option<&str>, from: Instant, to: Instant) -> Duration {
        let mut times: Vec<Instant> = self
            .acks
            .iter()
            .filter(|a| via.is_none_or(|v| a.via == v))
            .map(|a| a.acked)
            .filter(|t| *t >= from && *t <= to)
            .collect();
        times.sort();
        let mut last = from;
        let mut gap = Duration::ZERO;
        for t in times.into_iter().chain(std::iter::once(to)) {
            gap = gap.max(t.saturating_duration_since(last));
            last = t;
        }
        gap
    }
}

/// The sequence numbers the server at `dsn` holds.
pub fn present(dsn: &str) -> Vec<i64> {
    let mut client = Client::connect(dsn, NoTls).expect("connect to read sb_writes");
    client
        .query("SELECT seq FROM sb_writes", &[])
        .expect("read sb_writes")
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect()
}

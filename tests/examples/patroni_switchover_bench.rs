//! The peer of `cluster_bench`'s planned switchover: Patroni's, measured
//! with the same clock, the same writer and the same HAProxy (the peers'
//! method, `../shared/peers`). Two PostgreSQL nodes managed by Patroni
//! (Debian's `patroni`, its defaults: `ttl` 30 s, `loop_wait` 10 s,
//! `retry_timeout` 10 s, `use_pg_rewind`, slots) on a one-member etcd;
//! the servers with the test clusters' settings (`fsync = off`, 16 MB of
//! shared buffers). HAProxy routes on Patroni's `GET /primary` with the
//! settings our own benchmark gives it (checked every 100 ms, `fall 1 rise
//! 1`, sessions cut when a server is marked down). A writer every 50 ms
//! through HAProxy; `patronictl switchover --leader node1 --candidate
//! node2 --force`; the figure is the longest time the client went without
//! an acknowledged write, from the command to 20 writes after node2 leads.
//! Each round also counts acknowledged writes missing on the new leader.
//!
//! ```sh
//! cargo run --release -p watchpost-e2e --example patroni_switchover_bench -- 3
//! ```
//!
//! The argument is the number of rounds (default 3). Prints one JSON line
//! per round and a summary line; `cargo xtask bench --only peers` runs it
//! (and installs `patroni` first). Everything listens on 127.0.0.1 and is
//! stopped, and its directory removed, when a round ends or panics.

use postgres::{Client, NoTls};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::etcd::EtcdCluster;
use watchpost_e2e::haproxy::{Backend, HaProxy};
use watchpost_e2e::port::free_port;
use watchpost_e2e::splitbrain::{self, Writer};

/// Patroni's default HA loop (`loop_wait`): the settling wait after both
/// members are up is two loops and a second, as the peers' scripts wait.
const LOOP_WAIT: Duration = Duration::from_secs(10);

/// Where Debian's PostgreSQL 15 server programs live.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program args...` as the `postgres` user when we are root (PostgreSQL
/// refuses to run as root); `setpriv` execs, so the child is the program.
fn as_postgres(program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            program,
        ]);
        command
    } else {
        Command::new(program)
    }
}

/// One Patroni member: its ports, its config file, its process.
struct Member {
    name: String,
    pg_port: u16,
    api_port: u16,
    config: PathBuf,
    data_dir: PathBuf,
    child: Child,
}

impl Member {
    fn start(dir: &Path, n: usize, etcd: (String, u16)) -> Member {
        let name = format!("node{n}");
        let (pg_port, api_port) = (free_port(), free_port());
        let data_dir = dir.join(&name);
        let config = dir.join(format!("{name}.yml"));
        let text = format!(
            "scope: watchpost-peer
namespace: /watchpost-peer/
name: {name}
restapi:
  listen: 127.0.0.1:{api_port}
  connect_address: 127.0.0.1:{api_port}
etcd3:
  hosts: {host}:{etcd_port}
# Never the host's /dev/watchdog (Patroni's default mode is automatic): a
# leader killed by the benchmark would leave it counting to a reset.
watchdog:
  mode: 'off'
bootstrap:
  dcs:
    ttl: 30
    loop_wait: {loop_wait}
    retry_timeout: 10
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 64MB
        fsync: 'off'
        shared_buffers: 16MB
  initdb:
    - data-checksums
    - auth: trust
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {data}
  bin_dir: {PG_BIN}
  pgpass: {pgpass}
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
    rewind:
      username: postgres
  parameters:
    unix_socket_directories: '{socket}'
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
",
            host = etcd.0,
            etcd_port = etcd.1,
            loop_wait = LOOP_WAIT.as_secs(),
            data = data_dir.display(),
            pgpass = dir.join(format!("pgpass-{name}")).display(),
            socket = dir.display(),
        );
        std::fs::write(&config, text).expect("write the Patroni config");
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("a log file");
        let child = as_postgres("patroni")
            .arg(&config)
            .env("HOME", dir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .expect("start patroni (apt-get install patroni)");
        Member {
            name,
            pg_port,
            api_port,
            config,
            data_dir,
            child,
        }
    }

    /// Whether Patroni's REST API answers 200 on `path` (`/primary`,
    /// `/replica`).
    fn answers(&self, path: &str) -> bool {
        ureq::get(&format!("http://127.0.0.1:{}{path}", self.api_port))
            .call()
            .is_ok()
    }

    fn dsn(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=2",
            self.pg_port
        )
    }

    fn backend(&self) -> Backend {
        Backend {
            name: self.name.clone(),
            pg_port: self.pg_port,
            api_port: self.api_port,
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // SIGTERM: Patroni stops its server (fast) and leaves.
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.data_dir.join("postmaster.pid").exists() {
            let _ = as_postgres(&format!("{PG_BIN}/pg_ctl"))
                .args(["stop", "-m", "immediate", "-w", "-D"])
                .arg(&self.data_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A directory the `postgres` user may write in, removed at drop.
fn work_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("watchpost-peer-patroni-")
        .tempdir()
        .expect("a temporary directory");
    if is_root() {
        let status = Command::new("chown")
            .arg("postgres:")
            .arg(dir.path())
            .status()
            .expect("run chown");
        assert!(status.success(), "chown postgres: {}", dir.path().display());
    }
    dir
}

/// One round: (longest gap, acknowledged writes missing on the new
/// leader).
fn switchover() -> (Duration, usize) {
    // Dropped in reverse order: HAProxy, the members, etcd, the directory.
    let dir = work_dir();
    let etcd = EtcdCluster::start(1);
    let node1 = Member::start(dir.path(), 1, etcd.client(0));
    wait_for("node1 to lead", Duration::from_secs(90), || {
        node1.answers("/primary").then_some(())
    });
    let node2 = Member::start(dir.path(), 2, etcd.client(0));
    wait_for("node2 to replicate", Duration::from_secs(120), || {
        node2.answers("/replica").then_some(())
    });
    let mut client = Client::connect(&node1.dsn(), NoTls).expect("connect to node1");
    wait_for("node2 to stream", Duration::from_secs(60), || {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                &[],
            )
            .ok()?;
        (row.get::<_, i64>(0) == 1).then_some(())
    });
    // A couple of HA loops with both members up.
    std::thread::sleep(LOOP_WAIT * 2 + Duration::from_secs(1));
    client
        .batch_execute(splitbrain::TABLE)
        .expect("create the writes' table");
    drop(client);
    let proxy = HaProxy::start_checking(&[node1.backend(), node2.backend()], "/primary");
    let writer = Writer::start(
        &[("haproxy".to_string(), proxy.dsn("postgres"))],
        Duration::from_millis(50),
    );
    wait_for("writes through HAProxy", PATIENCE, || {
        (writer.count() >= 20).then_some(())
    });
    let asked = Instant::now();
    let outcome = Command::new("patronictl")
        .arg("-c")
        .arg(&node1.config)
        .args([
            "switchover",
            "--leader",
            "node1",
            "--candidate",
            "node2",
            "--force",
        ])
        .output()
        .expect("run patronictl");
    assert!(
        outcome.status.success(),
        "patronictl switchover failed: {}{}",
        String::from_utf8_lossy(&outcome.stdout),
        String::from_utf8_lossy(&outcome.stderr)
    );
    wait_for("node2 to lead", PATIENCE, || {
        node2.answers("/primary").then_some(())
    });
    let before = writer.count();
    wait_for("writes after the switchover", PATIENCE, || {
        (writer.count() >= before + 20).then_some(())
    });
    let ended = Instant::now();
    let report = writer.stop();
    let lost = report.missing(&splitbrain::present(&node2.dsn())).len();
    (report.longest_gap(Some("haproxy"), asked, ended), lost)
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("rounds: a number"))
        .unwrap_or(3);
    let name = "patroni-switchover";
    let mut ms = Vec::new();
    for round in 0..rounds {
        let (gap, lost) = switchover();
        let took = gap.as_secs_f64() * 1000.0;
        println!("{{\"benchmark\":\"{name}\",\"round\":{round},\"ms\":{took:.3},\"lost\":{lost}}}");
        ms.push(took);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "{{\"benchmark\":\"{name}\",\"rounds\":{},\"median_ms\":{:.0},\"min_ms\":{:.0},\"max_ms\":{:.0}}}",
        ms.len(),
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1]
    );
}

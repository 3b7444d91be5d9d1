//! The Redis (and Valkey) server backend of the HA core: the leader key
//! means "this node's `redis-server` is the primary". The loop
//! ([`super::ha::Ha`]) is the same as PostgreSQL's; what it asks of a
//! server is answered here in Redis's terms:
//!
//! - **process** ([`Server::postmaster`]): `redis.pid` in the data
//!   directory, three-valued as PostgreSQL's (unreadable is unknown,
//!   never stopped; the server is then looked for by working directory);
//! - **observation**: `INFO replication` and the term key, mapped onto
//!   the core's positions and timeline in [`info`] (the term is an
//!   ordered number kept in the replicated data, so that "a candidate is
//!   on the last leader's history" holds with replication ids);
//! - **start**: `redis-server DATA_DIR/redis.conf`, whose `replicaof`
//!   line the agent keeps ([`conf`]): written right before every start the
//!   agent makes, and checked at each loop (`CONFIG REWRITE` on a primary
//!   drops it), so every start, by anyone, comes up as a read-only
//!   replica; only the key holder runs `REPLICAOF NO ONE`. A server the
//!   agent promoted is not restarted in place unless its files bring back
//!   every write it acknowledged (`appendfsync always`), nor promoted
//!   again if it came back without its term ([`info::term_of`]): the
//!   leader key moves to a replica that holds the data instead;
//! - **promotion**: `REPLICAOF NO ONE`, then the verifying write, which
//!   is the term's: `INCR` of the term key;
//! - **following**: `REPLICAOF HOST PORT` (and the file's line). A
//!   replica that cannot partial-sync is fully resynchronised by Redis
//!   itself: nothing to rewind;
//! - **stopping**: every stop stops, and is read back (the process gone).
//!   `stop("immediate")` (lease lost, a stray primary, a release):
//!   `SHUTDOWN NOSAVE NOW`, then SIGKILL by the pid file (checked and
//!   pinned as the watchdog does) when the server does not answer or is
//!   not gone within a bound. A clean stop (`"fast"`: switchover, rolling
//!   restart, agent stop) pauses writes, reads where the stream ends and
//!   runs `SHUTDOWN`, which waits for the replicas;
//! - **fence**: the same out-of-process watchdog as PostgreSQL's, given
//!   `redis.pid` and SIGKILL.
//!
//! Not supported: `synchronous = true` (refused by `validate`); Redis
//! Cluster's own sharded failover is out of scope.

pub mod conf;
pub mod distro;
pub mod info;
mod keyspace;
mod observe;
mod process;
mod session;

use super::local::{Observation, ShutDown};
use super::server::{Replication, Server};
use crate::config::{ClusterSpec, Target};
use crate::pgserver::postmaster::{Postmaster, Probe, probe_server};
use info::{NOWHERE, TERM_KEY};
use parking_lot::Mutex;
use session::{Local, text};
use std::future::Future;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

/// How long one admin command may take.
const CALL: Duration = Duration::from_secs(5);

/// The local Redis server of a cluster member.
pub struct RedisServer {
    spec: ClusterSpec,
    local: Local,
    /// `bin_dir/redis-server`.
    program: PathBuf,
    /// Where the stream ended at the last clean stop (for a switchover).
    stopped_at: Mutex<Option<ShutDown>>,
    /// The term last read on this server (put back on a primary whose
    /// key was removed).
    last_term: Mutex<Option<u64>>,
    /// What the agent last chose for the `replicaof` line: the leader it
    /// follows, or [`NOWHERE`] (written right before every start).
    pointed: Mutex<(String, u16)>,
    /// Faults that last over loops, logged once.
    faults: Mutex<super::quiet::Faults>,
    /// When the keyspace was last checked ([`keyspace`]).
    keyspace_checked: Mutex<Option<std::time::Instant>>,
}

/// Check that cluster mode can drive the Redis server of `spec` safely
/// (fail closed): its configuration file as [`conf::check`] wants it,
/// its state readable, its process one the agent may signal, the
/// program present, the admin login usable. The backend, or an error
/// naming the fault and the fix.
pub fn check_at_start(spec: &ClusterSpec, target: Option<&Target>) -> anyhow::Result<RedisServer> {
    let refuse = |why: String| {
        anyhow::anyhow!(
            "cluster mode refuses to start for the Redis server of {}: {why}",
            spec.data_dir.display()
        )
    };
    if spec.synchronous {
        return Err(refuse("`synchronous = true` is not supported for Redis (it has no synchronous replication the leader could keep); remove it".into()));
    }
    let target = target.ok_or_else(|| refuse(format!("no [targets.{}]", spec.target)))?;
    let local = Local::new(&spec.target, target).map_err(refuse)?;
    let text = conf::read(&spec.data_dir).map_err(|e| {
        refuse(format!("{e}. Fix: write the server's configuration there (see examples/cluster/redis-node1.toml)"))
    })?;
    conf::check(&text, &spec.data_dir)
        .map_err(|e| refuse(format!("{}: {e}", conf::CONFIG_FILE)))?;
    for warning in distro::warnings(spec, &text) {
        tracing::warn!("cluster: {warning}");
    }
    let seen = probe_server(&spec.data_dir, &process::server_process());
    let fault = match (&seen.fault, &seen.state) {
        (Some(fault), _) => Some(fault.clone()),
        (None, Postmaster::Unknown(why)) => Some(why.clone()),
        _ => None,
    };
    if let Some(fault) = fault {
        return Err(refuse(format!(
            "whether it runs cannot be told ({fault}). Fix: let the agent read the data directory and {} (run the agent as root or as the directory's owner; the pid file must be the server's own: one link, owned by the directory's owner)",
            conf::PID_FILE
        )));
    }
    crate::pgserver::postmaster::may_signal(&spec.data_dir).map_err(refuse)?;
    let program = spec.bin_dir.join("redis-server");
    if !program.is_file() {
        return Err(refuse(format!(
            "{} does not exist. Fix: set [cluster] `bin_dir` to the directory of redis-server",
            program.display()
        )));
    }
    // The line the file has (a replica's leader), else nowhere; written
    // now, so that a start by anyone from here on is a replica's.
    let pointed = conf::directive(&text, "replicaof")
        .filter(|_| conf::starts_as_replica(&text))
        .and_then(|line| {
            let (host, port) = line.split_once(char::is_whitespace)?;
            Some((host.to_string(), port.trim().parse::<u16>().ok()?))
        })
        .unwrap_or_else(|| (NOWHERE.0.to_string(), NOWHERE.1));
    conf::mark_replica(&spec.data_dir).map_err(refuse)?;
    Ok(RedisServer {
        spec: spec.clone(),
        local,
        program,
        stopped_at: Mutex::new(None),
        last_term: Mutex::new(None),
        pointed: Mutex::new(pointed),
        faults: Mutex::default(),
        keyspace_checked: Mutex::new(None),
    })
}

impl RedisServer {
    async fn start_now(&self) -> Result<(), String> {
        let dir = &self.spec.data_dir;
        let text = conf::read(dir).map_err(|e| e.to_string())?;
        conf::check(&text, dir).map_err(|e| format!("not started: {}: {e}", conf::CONFIG_FILE))?;
        let (host, port) = self.pointed.lock().clone();
        let promoted = conf::promoted_term(&text);
        if let Some(term) = promoted
            && (host.as_str(), port) == NOWHERE
            && let Err(why) = conf::restores_everything(&text)
        {
            return Err(format!(
                "not restarted in place: the agent promoted this server (term {term}), and a restart would not bring back every write it acknowledged ({why}) while its replicas hold them; promoted again it would replace their data by a full resync. The leader key moves to the most advanced replica (after restart_timeout) and this server then starts as its replica. To have a crashed primary restarted in place instead, set `appendonly yes` and `appendfsync always`"
            ));
        }
        // Right before the start, whatever the file says now (`CONFIG
        // REWRITE`, an operator): the line the agent chose.
        conf::write_replicaof(dir, &host, port, promoted)?;
        process::launch(&self.program, &self.spec.data_dir).await?;
        let started = std::time::Instant::now();
        let mut last = String::new();
        while started.elapsed() < process::START_WAIT {
            match self.local.call(&["PING"], CALL).await {
                Ok(_) | Err(crate::redis::Error::Refused(_)) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            if self.postmaster().state.stopped() && started.elapsed() > Duration::from_secs(2) {
                return Err(format!(
                    "redis-server exited after its start (see its log): {last}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "redis-server did not answer within {:?}: {last}",
            process::START_WAIT
        ))
    }

    async fn stop_now(&self, mode: &str) -> Result<(), String> {
        if self.postmaster().state.stopped() {
            return Ok(());
        }
        if mode != "fast" {
            // A restart by anyone after this stop is a replica's.
            if let Err(e) = conf::mark_replica(&self.spec.data_dir) {
                tracing::error!("cluster: {e}");
            }
            let how = process::stop_immediate(&self.local, &self.spec.data_dir).await?;
            tracing::info!("cluster: stopped the local Redis server at once: {how}");
            return Ok(());
        }
        // Clean: no more writes, where the stream ends, then SHUTDOWN
        // (which waits for lagging replicas, and saves if configured).
        let paused = self
            .local
            .call(&["CLIENT", "PAUSE", "60000", "WRITE"], CALL)
            .await;
        let end = match paused {
            Ok(_) => self.local.replication(TERM_KEY, CALL).await.ok(),
            Err(_) => None,
        };
        *self.stopped_at.lock() = end.and_then(|(fields, value)| {
            let state = info::replication(&fields);
            Some(ShutDown {
                // A replica whose offset reached the primary's has every
                // byte of the stream (0 when the primary wrote nothing since
                // its first replica attached).
                reach: state.offset?,
                timeline: info::term(value.flatten().as_deref())?,
            })
        });
        // The server closes the connection as it exits: its answer is lost.
        let _ = self.local.call(&["SHUTDOWN"], process::STOP_WAIT).await;
        match process::wait_stopped(&self.spec.data_dir, process::STOP_WAIT).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.local.call(&["CLIENT", "UNPAUSE"], CALL).await;
                Err(format!("SHUTDOWN did not stop it: {e}"))
            }
        }
    }

    /// Point the file (and [`RedisServer::pointed`]) at the leader
    /// `host:port`: the [`conf::PROMOTED`] line goes.
    fn point(&self, host: &str, port: u16) -> Result<(), String> {
        conf::point_at(&self.spec.data_dir, host, port)?;
        *self.pointed.lock() = (host.to_string(), port);
        Ok(())
    }

    async fn replicaof(&self, host: &str, port: u16) -> Result<(), String> {
        self.point(host, port)?;
        let port = port.to_string();
        self.local
            .run(&[&["REPLICAOF", host, &port], &["CLIENT", "UNPAUSE"]], CALL)
            .await
            .map(|_| ())
            .map_err(|e| format!("REPLICAOF {host} {port}: {e}"))
    }
}

impl Server for RedisServer {
    type Fence = super::watchdog::Watchdog;

    /// The term key, replicated with the data.
    fn term_is_replicated(&self) -> bool {
        true
    }

    fn spec(&self) -> &ClusterSpec {
        &self.spec
    }
    fn fence(&self, record: PathBuf) -> Self::Fence {
        super::watchdog::Watchdog::for_server(
            self.spec.data_dir.clone(),
            process::server_process(),
            record,
        )
    }
    fn postmaster(&self) -> Probe {
        probe_server(&self.spec.data_dir, &process::server_process())
    }
    fn observe(&self, budget: Duration) -> impl Future<Output = Observation> + Send {
        self.observe_now(budget)
    }
    async fn rewind_precondition(&self) -> Option<String> {
        None
    }
    fn start(&self) -> impl Future<Output = Result<(), String>> + Send {
        self.start_now()
    }
    fn stop(&self, mode: &str) -> impl Future<Output = Result<(), String>> + Send {
        let mode = mode.to_string();
        async move { self.stop_now(&mode).await }
    }
    /// `redis.conf` is pointed nowhere first, with the term the server
    /// holds ([`conf::PROMOTED`]): a promoted server that restarts (crash,
    /// operator, service manager) comes back a replica of nowhere holding
    /// its own data, never a replica of the leader it followed before,
    /// whose full resync would replace its data. A server the agent
    /// promoted here before that came back holding less than that term
    /// (restarted without its data) is never promoted again: it is stopped,
    /// so that its leader lets the key go to a replica that holds the data.
    async fn start_promotion(&self) -> Result<(), String> {
        self.start_promotion_now().await
    }
    /// The verifying write is the term's: the key set to 1 if absent,
    /// then raised by one (the number the core published with the key).
    async fn confirm_promotion(&self) -> Result<(), String> {
        let replies = self
            .local
            .run(&[&["SET", TERM_KEY, "1", "NX"], &["INCR", TERM_KEY]], CALL)
            .await
            .map_err(|e| format!("the promoted server did not accept a write: {e}"))?;
        let term = replies.get(1).map(text).and_then(|t| t.parse::<u64>().ok());
        *self.last_term.lock() = term;
        if let Some(term) = term
            && let Err(e) = conf::mark_promoted(&self.spec.data_dir, term)
        {
            tracing::error!("cluster: the promotion's term {term} is not in the file: {e}");
        }
        tracing::info!("cluster: promoted; term {term:?} written ({TERM_KEY})");
        Ok(())
    }
    fn mark_standby(&self) -> std::io::Result<()> {
        conf::mark_replica(&self.spec.data_dir).map_err(std::io::Error::other)
    }
    fn point_at(&self, host: &str, port: u16) -> Result<(), String> {
        self.point(host, port)
    }
    fn follow(&self, host: &str, port: u16) -> impl Future<Output = Result<(), String>> + Send {
        let host = host.to_string();
        async move { self.replicaof(&host, port).await }
    }
    fn conninfo(&self, host: &str, port: u16) -> String {
        format!("{host}:{port}")
    }
    fn rewind_and_follow(
        &self,
        host: &str,
        port: u16,
        _source: &str,
    ) -> impl Future<Output = Result<String, String>> + Send {
        let host = host.to_string();
        async move {
            self.point(&host, port)?;
            if self.postmaster().state.stopped() {
                self.start_now().await?;
            } else {
                // A primary stops taking writes first.
                let _ = self
                    .local
                    .call(&["CLIENT", "PAUSE", "10000", "WRITE"], CALL)
                    .await;
                self.replicaof(&host, port).await?;
            }
            Ok(format!(
                "REPLICAOF {host} {port}: nothing to rewind, Redis resynchronises by itself (a partial sync when its replication id and offset are in the leader's history, else a full resync of the leader's data)"
            ))
        }
    }
    async fn setting(&self, name: &str) -> Result<String, String> {
        let reply = self
            .local
            .call(&["CONFIG", "GET", name], CALL)
            .await
            .map_err(|e| e.to_string())?;
        Ok(text(&reply)
            .split_once(' ')
            .map(|(_, v)| v.to_string())
            .unwrap_or_default())
    }
    async fn alter_system(&self, name: &str, value: &str) -> Result<(), String> {
        self.local
            .call(&["CONFIG", "SET", name, value], CALL)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    /// Redis has no checkpoint: the clean stop that follows pauses writes.
    async fn checkpoint(&self) -> Result<(), String> {
        Ok(())
    }
    async fn shut_down_at(&self) -> Result<ShutDown, String> {
        self.stopped_at.lock().take().ok_or_else(|| {
            "where the replication stream ended was not read before the shutdown".into()
        })
    }
    async fn pending_restart(&self) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
    async fn receiving_timeline(&self) -> Option<u64> {
        let seen = self.observe_now(CALL).await;
        seen.streaming_from.and(seen.timeline)
    }
    async fn replication(&self) -> Result<Replication, String> {
        Err("synchronous replication is not supported for Redis".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(data_dir: &std::path::Path, cluster: &str) -> Result<crate::config::Config, String> {
        let text = format!(
            "[targets.local]\nkind = \"redis\"\ndsn = \"redis://127.0.0.1:6379/0\"\ndata_dir = \"{}\"\n\n[cluster]\nscope = \"cache\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.0.0.1:6379\"\n{cluster}\n",
            data_dir.display()
        );
        crate::config::parse_str("w.toml", &text, std::path::Path::new("/"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_redis_cluster_target_parses_and_synchronous_mode_is_refused_by_key() {
        let spec = config(Path::new("/var/lib/redis"), "")
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(spec.engine, crate::config::TargetKind::Redis);
        assert_eq!(spec.bin_dir, Path::new("/usr/bin"));
        assert_eq!(spec.data_dir, Path::new("/var/lib/redis"));
        assert!(spec.server_target.is_some());
        let refused = config(Path::new("/var/lib/redis"), "synchronous = true").unwrap_err();
        assert!(
            refused.contains("`synchronous = true` is not supported"),
            "{refused}"
        );
        let relative = config(Path::new("redis"), "").unwrap_err();
        assert!(relative.contains("absolute path"), "{relative}");
    }

    #[test]
    fn cluster_mode_refuses_a_server_it_cannot_drive_and_names_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = config(tmp.path(), "bin_dir = \"/nonexistent\"")
            .unwrap()
            .cluster
            .unwrap();
        let target = spec.server_target.clone();
        let refused = |spec: &ClusterSpec| {
            check_at_start(spec, target.as_deref())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let missing = refused(&spec);
        assert!(
            missing.contains("redis.conf does not exist") && missing.contains("Fix:"),
            "{missing}"
        );
        std::fs::write(tmp.path().join(conf::CONFIG_FILE), "port 6379\n").unwrap();
        let bad = refused(&spec);
        assert!(
            bad.contains("`daemonize yes`") && bad.contains("pidfile"),
            "{bad}"
        );
        let dir = tmp.path().display();
        std::fs::write(
            tmp.path().join(conf::CONFIG_FILE),
            format!("dir {dir}\npidfile {dir}/redis.pid\ndaemonize yes\n"),
        )
        .unwrap();
        let program = refused(&spec);
        assert!(program.contains("`bin_dir`"), "{program}");
        // The pid file is a second link: whether the server runs cannot be
        // told from it, and the agent says so.
        std::fs::write(tmp.path().join(conf::PID_FILE), "1\n").unwrap();
        std::fs::hard_link(tmp.path().join(conf::PID_FILE), tmp.path().join("x")).unwrap();
        let linked = refused(&spec);
        assert!(
            linked.contains("cannot be told") && linked.contains("one link"),
            "{linked}"
        );
        let mut sync = spec.clone();
        sync.synchronous = true;
        assert!(refused(&sync).contains("synchronous"));
    }
}

//! Three PostgreSQL nodes (one primary, two streaming standbys), a
//! 3-member etcd, and one Watchpost agent per node in cluster mode, each
//! with its own state directory and API port: the harness of the cluster
//! failover tests and benchmark. The agents run as on a host whose
//! messages are German ([`TRANSLATED`]), so that every test on this
//! harness also shows the agent reading PostgreSQL's programs
//! untranslated (the harness checks first that they do translate here).

use crate::agent::{Agent, PATIENCE};
use crate::etcd::EtcdCluster;
use crate::pg::{Cluster, PgNodes, SUPERUSER};
use std::time::{Duration, Instant};

/// The environment of the cluster's agents: a UTF-8 locale and German
/// messages. PostgreSQL's programs the agents run then translate what they
/// print (`pg_controldata`'s `Latest checkpoint location:` reads
/// `Position des letzten Checkpoints:`) unless the agent runs them
/// untranslated: a switchover's clean-stop check and a rejoin's state
/// check read that text. `LC_ALL`, not `LANG`: an `LC_ALL` or
/// `LC_MESSAGES` the tests inherit would override `LANG` (and `C` makes
/// gettext ignore `LANGUAGE`).
pub const TRANSLATED: [(&str, &str); 2] = [("LC_ALL", "C.UTF-8"), ("LANGUAGE", "de")];

/// Panic unless `pg_controldata` prints German under [`TRANSLATED`] on
/// this machine: without PostgreSQL's translations (`/usr/share/locale/de`)
/// the cluster tests would pass without showing anything of the locale.
fn assert_translated(node: &Cluster) {
    let out = std::process::Command::new(format!("{}/pg_controldata", crate::pg::BIN_DIR))
        .arg("-D")
        .arg(node.data_dir())
        .envs(TRANSLATED)
        .output()
        .expect("run pg_controldata");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Position des letzten Checkpoints"),
        "pg_controldata does not print German under {TRANSLATED:?} here (are PostgreSQL's translations in /usr/share/locale/de installed?):\n{text}"
    );
}

/// Pids of `watchpost watchdog` processes for `data_dir`.
pub fn watchdogs(data_dir: &std::path::Path) -> Vec<u32> {
    let wanted = data_dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let line = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = line
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.iter().any(|a| a == "watchdog") && args.contains(&wanted)
        })
        .collect()
}

pub struct HaCluster {
    /// Agents first: they stop before the servers and etcd go.
    pub agents: Vec<Agent>,
    pub pg: PgNodes,
    pub etcd: EtcdCluster,
    pub scope: String,
}

/// The config of node `i` (0-based); `extra` goes into `[cluster]`.
pub fn node_config(etcd: &EtcdCluster, node: &Cluster, i: usize, extra: &str) -> String {
    node_config_via(&etcd.endpoints_toml(), node, i, extra)
}

/// [`node_config`] with `endpoints` (a TOML array's items) as the etcd
/// the agent is given: a proxy in front of it, say.
pub fn node_config_via(endpoints: &str, node: &Cluster, i: usize, extra: &str) -> String {
    format!(
        "[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\nnode = \"node{n}\"\n\n\
         [targets.local]\ndsn = \"host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres connect_timeout=2\"\ndata_dir = \"{data}\"\n\n\
         [cluster]\nscope = \"test\"\netcd = [{endpoints}]\ntarget = \"local\"\nconnect = \"127.0.0.1:{port}\"\nreplication_user = \"{SUPERUSER}\"\n{extra}\n",
        n = i + 1,
        port = node.port(),
        data = node.data_dir().display(),
    )
}

impl HaCluster {
    /// Everything started, node1 the leader, the others following it.
    pub fn start(extra: &str) -> HaCluster {
        HaCluster::start_on(EtcdCluster::start(3), extra)
    }

    /// [`HaCluster::start`] on an etcd already running (closed, say).
    pub fn start_on(etcd: EtcdCluster, extra: &str) -> HaCluster {
        HaCluster::start_via(etcd, extra, |_| None)
    }

    /// [`HaCluster::start_on`], node `i`'s agent reaching etcd at
    /// `endpoints(i)` (a TOML array's items: a proxy in front of etcd, say;
    /// `None`: etcd's own client URLs).
    pub fn start_via(
        etcd: EtcdCluster,
        extra: &str,
        endpoints: impl Fn(usize) -> Option<String>,
    ) -> HaCluster {
        let pg = PgNodes::start(3);
        assert_translated(&pg.nodes[0]);
        let config = |etcd: &EtcdCluster, pg: &PgNodes, i: usize| {
            let urls = endpoints(i).unwrap_or_else(|| etcd.endpoints_toml());
            node_config_via(&urls, &pg.nodes[i], i, extra)
        };
        // node1's agent first, and leading, before the others start: on a
        // loaded machine a later agent's first loop could otherwise take
        // the key before node1's first loop ends.
        let first = Agent::start_with_env(&config(&etcd, &pg, 0), &TRANSLATED);
        let mut ha = HaCluster {
            agents: vec![first],
            pg,
            etcd,
            scope: "test".into(),
        };
        ha.wait_leader("node1");
        for i in 1..ha.pg.nodes.len() {
            let config = config(&ha.etcd, &ha.pg, i);
            ha.agents.push(Agent::start_with_env(&config, &TRANSLATED));
        }
        for i in 1..3 {
            let deadline = Instant::now() + PATIENCE * 2;
            while ha.agents[i]
                .get("/v1/role/replica")
                .map(|(c, _)| c)
                .unwrap_or(0)
                != 200
            {
                assert!(
                    Instant::now() < deadline,
                    "node{} is not a replica: {:?}\n{}\n{:#}",
                    i + 1,
                    ha.agents[i].get("/v1/role/replica"),
                    ha.agents[i].log(),
                    ha.view(i)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        ha
    }

    /// Wait until `name` holds the key and serves as the primary.
    pub fn wait_leader(&self, name: &str) -> usize {
        let i: usize = name.trim_start_matches("node").parse::<usize>().unwrap() - 1;
        // Generous: etcd, three servers and three agents start on a busy
        // 2-core machine.
        let deadline = Instant::now() + PATIENCE * 2;
        loop {
            let answer = self.agents[i].get("/v1/role/primary");
            if answer.as_ref().is_ok_and(|(code, _)| *code == 200) {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "{name} does not lead: {answer:?}\n{}\netcd: {}",
                self.agents[i].log(),
                self.etcd
                    .log(0)
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A superuser DSN over TCP for node `i`'s server.
    pub fn tcp_dsn(&self, i: usize) -> String {
        format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname=postgres connect_timeout=1",
            self.pg.nodes[i].port()
        )
    }

    /// The split-brain detector writing every 50 ms to every node directly
    /// and, with `proxy`, through HAProxy (as `haproxy`), as an
    /// application would connect.
    pub fn writers(&self, proxy: Option<&crate::haproxy::HaProxy>) -> crate::splitbrain::Writer {
        let mut targets: Vec<(String, String)> = (0..self.pg.nodes.len())
            .map(|i| (format!("node{}", i + 1), self.tcp_dsn(i)))
            .collect();
        if let Some(proxy) = proxy {
            targets.push(("haproxy".into(), proxy.dsn(SUPERUSER)));
        }
        crate::splitbrain::Writer::start(&targets, Duration::from_millis(50))
    }

    /// Every node as an HAProxy backend: its server, checked on its
    /// agent's role endpoint.
    pub fn backends(&self) -> Vec<crate::haproxy::Backend> {
        (0..self.agents.len())
            .map(|i| crate::haproxy::Backend {
                name: format!("node{}", i + 1),
                pg_port: self.pg.nodes[i].port(),
                api_port: self.agents[i].port,
            })
            .collect()
    }

    /// The config file of node `i`'s agent (for `watchpost cluster ...`).
    pub fn config(&self, i: usize) -> std::path::PathBuf {
        self.agents[i].config_path()
    }

    /// The cluster as one agent sees it (`/v1/cluster`).
    pub fn view(&self, i: usize) -> serde_json::Value {
        self.agents[i].json("/v1/cluster")
    }

    /// Audit records of the cluster mode with `decision`, across agents:
    /// (node index, record).
    pub fn records(&self, decision: &str) -> Vec<(usize, serde_json::Value)> {
        crate::agent::cluster_records(&self.agents, decision)
    }

    /// Poll `node` every 100 ms with `CREATE TABLE ...; INSERT` (the peers'
    /// clock) until one succeeds: the time from `since`.
    pub fn first_write(&self, node: usize, since: Instant, within: Duration) -> Option<Duration> {
        while since.elapsed() < within {
            let ok = self.pg.nodes[node]
                .try_value("CREATE TABLE IF NOT EXISTS failover_clock (x int); INSERT INTO failover_clock VALUES (1); SELECT 1")
                .is_ok();
            if ok {
                return Some(since.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

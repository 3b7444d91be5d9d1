//! The cluster of [`crate::ha`] in network namespaces ([`crate::netns`]),
//! for the partition tests: each node's PostgreSQL and agent in the node's
//! namespace, the 3-member etcd in the hub, and each agent reaching etcd
//! through delaying proxies of its own in the hub (latency between one
//! node and etcd is set there; with no delay they only forward). Servers
//! stream from each other over the cluster links, so a cut node loses its
//! standbys, its peers and etcd; the test reaches every server and agent
//! on the node's own link to it, which a cut leaves up (the split-brain
//! detector's writers stand for clients on the node's side). The network
//! and etcd part ([`NetEtcd`]) serves the MariaDB cluster's partition
//! test too ([`crate::mariadb::partition`]).

use crate::agent::{Agent, PATIENCE, wait_for};
use crate::etcd::EtcdCluster;
use crate::netns::{self, DelayProxy, Net};
use crate::pg::{PgNodes, SUPERUSER};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The API token of the agents (their API listens beyond loopback).
pub const TOKEN: (&str, &str) = ("WATCHPOST_TEST_TOKEN", "partition-test-token");

/// What every engine's partition test runs on: the namespaces, the
/// 3-member etcd in the hub and each node's delaying proxies to it.
/// Dropped after the servers: etcd, then the proxies, then the network.
pub struct NetEtcd {
    pub etcd: EtcdCluster,
    /// Node i's proxies, one per etcd member.
    pub proxies: Vec<Vec<DelayProxy>>,
    pub net: Net,
}

impl NetEtcd {
    /// `n` node namespaces, etcd in the hub, proxies for every node.
    pub fn start(n: usize) -> NetEtcd {
        let net = Net::create(n);
        let hosts: Vec<String> = (0..3).map(netns::etcd_addr).collect();
        let etcd = EtcdCluster::start_in(&hosts, Some(&net.hub));
        let proxies = (0..n)
            .map(|_| {
                (0..3)
                    .map(|k| {
                        let (host, port) = etcd.client(k);
                        let upstream: SocketAddr = format!("{host}:{port}").parse().unwrap();
                        let listen: SocketAddr =
                            format!("{}:0", netns::PROXY_ADDR).parse().unwrap();
                        DelayProxy::start(&net.hub, listen, upstream)
                    })
                    .collect()
            })
            .collect();
        NetEtcd { etcd, proxies, net }
    }

    /// Node `i`'s etcd endpoints (its proxies), as a TOML array's items.
    pub fn endpoints(&self, i: usize) -> String {
        self.proxies[i]
            .iter()
            .map(|p| format!("\"http://{}\"", p.addr))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Latency added to each direction between node `i` and etcd.
    pub fn delay_to_etcd(&self, i: usize, delay: Duration) {
        for proxy in &self.proxies[i] {
            proxy.set_delay(delay);
        }
    }
}

pub struct NetCluster {
    /// Agents first: they stop before the servers, etcd and the network go.
    pub agents: Vec<Agent>,
    pub pg: PgNodes,
    /// The network and etcd (`net`, `etcd`, `proxies` through it).
    pub base: NetEtcd,
}

impl std::ops::Deref for NetCluster {
    type Target = NetEtcd;
    fn deref(&self) -> &NetEtcd {
        &self.base
    }
}

fn config(cluster: &NetCluster, i: usize, extra: &str) -> String {
    let node = &cluster.pg.nodes[i];
    let endpoints = cluster.endpoints(i);
    format!(
        "[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\nnode = \"node{n}\"\napi_token_env = \"{token}\"\n\n\
         [targets.local]\ndsn = \"host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres connect_timeout=2\"\ndata_dir = \"{data}\"\n\n\
         [cluster]\nscope = \"test\"\netcd = [{endpoints}]\ntarget = \"local\"\nconnect = \"{addr}:{port}\"\nreplication_user = \"{SUPERUSER}\"\n{extra}\n",
        n = i + 1,
        token = TOKEN.0,
        port = node.port(),
        data = node.data_dir().display(),
        addr = netns::node_addr(i),
    )
}

impl NetCluster {
    /// Everything started, node1 the leader, the others following it.
    pub fn start(extra: &str) -> NetCluster {
        let base = NetEtcd::start(3);
        let net = &base.net;
        // Made in the test's namespace (over unix sockets), then moved.
        let mut pg = PgNodes::start(3);
        let primary = pg.nodes[0].port();
        for (i, node) in pg.nodes.iter().enumerate().skip(1) {
            node.execute(&format!(
                "ALTER SYSTEM SET primary_conninfo = 'host={} port={primary} user={SUPERUSER} application_name=node{}'",
                netns::node_addr(0),
                i + 1
            ));
        }
        for i in (0..3).rev() {
            pg.nodes[i].stop();
            pg.nodes[i].move_to_netns(&net.nodes[i], "198.18.0.0/15");
        }
        for node in pg.nodes.iter_mut() {
            node.start();
        }
        let mut cluster = NetCluster {
            agents: Vec::new(),
            pg,
            base,
        };
        for i in 0..3 {
            let text = config(&cluster, i, extra);
            let agent = Agent::start_in(
                &text,
                &[TOKEN],
                &cluster.net.nodes[i],
                &netns::client_addr(i),
            );
            cluster.agents.push(agent);
            // node1's agent first, and leading, before the others start
            // (as the other cluster harnesses): on a loaded machine a later
            // agent's first loop could otherwise find no leader and no
            // member ahead of it and take the key (seen in a full run).
            if i == 0 {
                cluster.wait_leader(0);
            }
        }
        for i in 1..3 {
            cluster.wait_replica(i, PATIENCE * 2);
        }
        cluster
    }

    /// The status code of `path` on agent `i` (0: no answer).
    pub fn code(&self, i: usize, path: &str) -> u16 {
        self.agents[i].get(path).map(|(c, _)| c).unwrap_or(0)
    }

    /// Wait until node `i` holds the key and serves as the primary.
    pub fn wait_leader(&self, i: usize) {
        let deadline = Instant::now() + PATIENCE * 2;
        while self.code(i, "/v1/role/primary") != 200 {
            assert!(
                Instant::now() < deadline,
                "node{} does not lead:\n{}",
                i + 1,
                self.agents[i].log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until node `i` streams from the leader.
    pub fn wait_replica(&self, i: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.code(i, "/v1/role/replica") != 200 {
            assert!(
                Instant::now() < deadline,
                "node{} is not a replica:\n{}\n{:#}",
                i + 1,
                self.agents[i].log(),
                self.agents[i].json("/v1/cluster")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Which node serves as the primary with the key now, if one does.
    pub fn leader(&self) -> Option<usize> {
        (0..3).find(|i| self.code(*i, "/v1/role/primary") == 200)
    }

    /// Wait until some node other than `not` leads; its index.
    pub fn wait_new_leader(&self, not: usize, within: Duration) -> usize {
        wait_for("a new leader", within, || {
            (0..3)
                .filter(|i| *i != not)
                .find(|i| self.code(*i, "/v1/role/primary") == 200)
        })
    }

    /// A superuser DSN for node `i`'s server over the node's own link (a
    /// client next to it: a cut does not stop it).
    pub fn dsn(&self, i: usize) -> String {
        format!(
            "host={} port={} user={SUPERUSER} dbname=postgres connect_timeout=1",
            netns::client_addr(i),
            self.pg.nodes[i].port()
        )
    }

    /// The split-brain detector's targets: every node directly.
    pub fn writer_targets(&self) -> Vec<(String, String)> {
        (0..3)
            .map(|i| (format!("node{}", i + 1), self.dsn(i)))
            .collect()
    }

    /// Audit records of the cluster mode with `decision`, across agents.
    pub fn records(&self, decision: &str) -> Vec<(usize, serde_json::Value)> {
        crate::agent::cluster_records(&self.agents, decision)
    }

    /// Tell the harness which servers run now (the agents start and stop
    /// them), so that dropping it stops every one.
    pub fn note_running(&mut self) {
        for node in &mut self.pg.nodes {
            node.set_running(true);
        }
    }
}

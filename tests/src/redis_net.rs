//! The Redis cluster of [`crate::redis_ha`] in network namespaces, for the
//! partition test and the partition benchmark: the network, etcd and
//! proxies of [`crate::partition::NetEtcd`] (shared with PostgreSQL's and
//! MariaDB's partition tests), each node's agent in the node's namespace
//! (it starts its `redis-server` there), the servers replicating over the
//! cluster links; the test and the split-brain writers reach every server
//! on the node's own link, which a cut leaves up (clients on the node's
//! side of the partition).

use crate::agent::{Agent, PATIENCE, wait_for};
use crate::netns;
use crate::partition::{NetEtcd, TOKEN};
use crate::redis_ha::{RedisNode, Writer};
use std::time::{Duration, Instant};

/// The `bind` addresses of a server in node `i`'s namespace: loopback
/// (its agent), the cluster link (its replicas) and the node's own link
/// (the test). Such a server also needs `protected-mode no`: the test
/// servers have no password and are reached beyond loopback, inside the
/// namespaces only.
pub fn listen_on(i: usize) -> String {
    format!(
        "127.0.0.1 {} {}",
        netns::node_addr(i),
        netns::client_addr(i)
    )
}

/// Three Redis nodes in cluster mode, each `redis-server` and agent in
/// its own namespace; dropped in the order of its fields.
pub struct RedisNetCluster {
    /// Agents first: they stop before the servers, etcd and the network go.
    pub agents: Vec<Agent>,
    pub nodes: Vec<RedisNode>,
    pub base: NetEtcd,
}

impl std::ops::Deref for RedisNetCluster {
    type Target = NetEtcd;
    fn deref(&self) -> &NetEtcd {
        &self.base
    }
}

impl RedisNetCluster {
    /// Everything started: node1's agent first (it starts its server and
    /// leads), then the others' (which follow it); `extra` lines in every
    /// agent's `[cluster]`.
    pub fn start(extra: &str) -> RedisNetCluster {
        let base = NetEtcd::start(3);
        let nodes: Vec<RedisNode> = (0..3)
            .map(|i| RedisNode::at(&netns::client_addr(i), &listen_on(i), "protected-mode no\n"))
            .collect();
        let mut cluster = RedisNetCluster {
            agents: Vec::new(),
            nodes,
            base,
        };
        for i in 0..3 {
            let agent = Agent::start_in(
                &cluster.config(i, extra),
                &[TOKEN],
                &cluster.net.nodes[i],
                &netns::client_addr(i),
            );
            cluster.agents.push(agent);
            if i == 0 {
                cluster.wait_code(0, "/v1/role/primary");
            }
        }
        for i in 1..3 {
            cluster.wait_code(i, "/v1/role/replica");
        }
        cluster
    }

    /// The agent config of node `i`: etcd through its proxies, its server
    /// reached by the others on its cluster address.
    fn config(&self, i: usize, extra: &str) -> String {
        let node = &self.nodes[i];
        format!(
            "[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\nnode = \"node{n}\"\napi_token_env = \"{token}\"\n\n\
             [targets.local]\nkind = \"redis\"\ndsn = \"redis://127.0.0.1:{port}/0\"\ndata_dir = \"{dir}\"\n\n\
             [cluster]\nscope = \"redis\"\netcd = [{endpoints}]\ntarget = \"local\"\n\
             connect = \"{addr}:{port}\"\n{extra}",
            n = i + 1,
            token = TOKEN.0,
            port = node.port,
            dir = node.data_dir().display(),
            endpoints = self.endpoints(i),
            addr = netns::node_addr(i),
        )
    }

    /// The status code of `path` on agent `i` (0: no answer).
    pub fn code(&self, i: usize, path: &str) -> u16 {
        self.agents[i].get(path).map(|(c, _)| c).unwrap_or(0)
    }

    /// Wait (up to twice [`PATIENCE`]) until agent `i` answers `path` with 200.
    pub fn wait_code(&self, i: usize, path: &str) {
        let deadline = Instant::now() + PATIENCE * 2;
        while self.code(i, path) != 200 {
            assert!(
                Instant::now() < deadline,
                "node{}: {path} is not 200\n{}\n{}",
                i + 1,
                self.agents[i].log(),
                self.nodes[i].log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until some node other than `not` leads; its index.
    pub fn wait_new_leader(&self, not: usize, within: Duration) -> usize {
        wait_for("a new leader", within, || {
            (0..3)
                .filter(|i| *i != not)
                .find(|i| self.code(*i, "/v1/role/primary") == 200)
        })
    }

    /// The split-brain detector on every server, on the nodes' own links.
    pub fn writers(&self) -> Writer {
        crate::redis_ha::writers(&self.nodes)
    }
}

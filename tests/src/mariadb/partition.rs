//! The MariaDB cluster of [`super::cluster`] in network namespaces, for
//! the partition test: the network, etcd and proxies of
//! [`crate::partition::NetEtcd`] (shared with PostgreSQL's partition
//! tests), each node's `mariadbd` and agent in the node's namespace,
//! replicating over the cluster links; the test and the split-brain
//! writers reach every server on the node's own link, which a cut leaves
//! up.

use super::cluster::{APP_USER, MariadbNode, REPLICATION_PASSWORD, REPLICATION_USER, accounts};
use super::command::program;
use crate::agent::{Agent, PATIENCE, wait_for};
use crate::netns;
use crate::partition::{NetEtcd, TOKEN};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub struct MariadbNetCluster {
    /// Agents first: they stop before the servers, etcd and the network go.
    pub agents: Vec<Agent>,
    pub nodes: Vec<MariadbNode>,
    secrets: TempDir,
    pub base: NetEtcd,
}

impl std::ops::Deref for MariadbNetCluster {
    type Target = NetEtcd;
    fn deref(&self) -> &NetEtcd {
        &self.base
    }
}

impl MariadbNetCluster {
    /// Everything started: the servers by hand in their namespaces
    /// (read-only), node1's agent first and leading, the others following.
    pub fn start() -> MariadbNetCluster {
        let base = NetEtcd::start(3);
        let nodes: Vec<MariadbNode> = (0..3)
            .map(|i| {
                MariadbNode::new_in(
                    201 + i as u32,
                    Some(&base.net.nodes[i]),
                    &netns::client_addr(i),
                )
            })
            .collect();
        for node in &nodes {
            node.start_by_hand();
            node.try_execute(&accounts())
                .unwrap_or_else(|e| panic!("create the accounts: {e}"));
        }
        let secrets = tempfile::tempdir().expect("a directory for the password file");
        let password = secrets.path().join("replication.password");
        std::fs::write(&password, format!("{REPLICATION_PASSWORD}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut cluster = MariadbNetCluster {
            agents: Vec::new(),
            nodes,
            secrets,
            base,
        };
        for i in 0..3 {
            let agent = Agent::start_in(
                &cluster.config(i),
                &[TOKEN],
                &cluster.net.nodes[i],
                &netns::client_addr(i),
            );
            cluster.agents.push(agent);
            if i == 0 {
                cluster.wait_leader(0);
            }
        }
        for i in 1..3 {
            cluster.wait_replica(i);
        }
        cluster
    }

    /// The agent config of node `i`: etcd through its proxies, its server
    /// reached by the others on its cluster address.
    fn config(&self, i: usize) -> String {
        let node = &self.nodes[i];
        format!(
            "[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\nnode = \"node{n}\"\napi_token_env = \"{token}\"\n\n\
             [targets.local]\nkind = \"mysql\"\ndsn = \"mysql://watchpost@127.0.0.1:{port}/\"\n\
             admin_dsn = \"mysql://root@127.0.0.1:{port}/\"\n\
             replication_dsn = \"mysql://{REPLICATION_USER}@127.0.0.1:{port}/\"\n\
             replication_password_file = \"{password}\"\ndata_dir = \"{data}\"\n\n\
             [cluster]\nscope = \"mariadb\"\netcd = [{endpoints}]\ntarget = \"local\"\n\
             connect = \"{addr}:{port}\"\ndefaults_file = \"{cnf}\"\nbin_dir = \"{bin}\"\n",
            n = i + 1,
            token = TOKEN.0,
            port = node.port,
            password = self.secrets.path().join("replication.password").display(),
            data = node.data_dir().display(),
            cnf = node.cnf().display(),
            bin = program("mariadbd").parent().unwrap().display(),
            endpoints = self.endpoints(i),
            addr = netns::node_addr(i),
        )
    }

    fn code(&self, i: usize, path: &str) -> u16 {
        self.agents[i].get(path).map(|(c, _)| c).unwrap_or(0)
    }

    /// Wait until node `i` holds the key and serves as the primary.
    pub fn wait_leader(&self, i: usize) {
        let deadline = Instant::now() + PATIENCE * 2;
        while self.code(i, "/v1/role/primary") != 200 {
            assert!(
                Instant::now() < deadline,
                "node{} does not lead:\n{}\n{}",
                i + 1,
                self.agents[i].log(),
                self.nodes[i].log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until node `i` is a replica of the leader.
    pub fn wait_replica(&self, i: usize) {
        let deadline = Instant::now() + PATIENCE * 2;
        while self.code(i, "/v1/role/replica") != 200 {
            assert!(
                Instant::now() < deadline,
                "node{} is not a replica:\n{}",
                i + 1,
                self.agents[i].log()
            );
            std::thread::sleep(Duration::from_millis(200));
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

    /// The split-brain detector writing every 50 ms to every node as the
    /// application, on the nodes' own links.
    pub fn writers(&self) -> crate::splitbrain::Writer {
        let targets: Vec<(String, String, u16)> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("node{}", i + 1), n.host.clone(), n.port))
            .collect();
        crate::splitbrain::Writer::start_mysql_at(&targets, APP_USER, Duration::from_millis(50))
    }
}

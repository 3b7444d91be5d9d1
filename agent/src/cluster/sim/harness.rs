//! The table tests' harness: member `m0`'s agent ([`Ha`]) over the
//! in-memory store and a fake server, the scope set up as each row needs
//! (other members, the leader key, the leader's position), and the agents
//! of other members over the same store.

use super::fake::{FakeServer, Node};
use super::world::spec;
use crate::cluster::Keys;
use crate::cluster::dcs::memory::{Call, Fault, Memory, Store};
use crate::cluster::did::Did;
use crate::cluster::ha::Ha;
use crate::cluster::member::Member;
use parking_lot::Mutex;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The agent of member `spec` over `client`, its server `node` among
/// `peers`, its state directory `dir`: every harness's agents are built
/// here.
fn built(
    client: Memory,
    spec: crate::config::ClusterSpec,
    node: &Arc<Mutex<Node>>,
    peers: &super::fake::Peers,
    keys: &Keys,
    dir: &Path,
) -> Ha<Memory, FakeServer> {
    let api = format!("http://{}:8080", spec.host);
    Ha::new(
        client,
        FakeServer {
            spec,
            node: node.clone(),
            peers: peers.clone(),
            watch: None,
        },
        keys.clone(),
        None,
        Arc::default(),
        api,
        dir.join("cluster-leader"),
    )
}

/// Member `m0` (this agent) and its scope.
pub(super) struct Harness {
    pub(super) store: Arc<Mutex<Store>>,
    pub(super) node: Arc<Mutex<Node>>,
    pub(super) keys: Keys,
    pub(super) ha: Ha<Memory, FakeServer>,
    pub(super) peers: super::fake::Peers,
    pub(super) _dir: tempfile::TempDir,
}

/// The switch of a [`Harness::cuttable`] store.
pub(super) struct StoreCut(Arc<std::sync::atomic::AtomicBool>);

impl StoreCut {
    /// Cut the store off `after` from now (of the paused clock), while the
    /// test's pass runs.
    pub(super) fn after(&self, after: Duration) {
        let flag = self.0.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

/// Another member's agent over the same store (member `i`).
pub(super) struct Agent {
    pub(super) node: Arc<Mutex<Node>>,
    pub(super) ha: Ha<Memory, FakeServer>,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub(super) fn new(node: Node) -> Harness {
        Harness::with(node, Memory::client)
    }

    pub(super) fn with(node: Node, client: impl FnOnce(Arc<Mutex<Store>>) -> Memory) -> Harness {
        Harness::configured(node, client, |_| {})
    }

    /// [`Harness::with`] whose store faults see the member's server:
    /// `choose(call, server)` decides each call's fault and may change the
    /// server meanwhile (WAL received while the key is being taken).
    pub(super) fn with_server_faults(
        node: Node,
        mut choose: impl FnMut(&Call, &Arc<Mutex<Node>>) -> Fault + Send + 'static,
    ) -> Harness {
        // The server exists once the harness does; the faults start then.
        let slot: Arc<Mutex<Option<Arc<Mutex<Node>>>>> = Arc::default();
        let reached = slot.clone();
        let h = Harness::with(node, |store| {
            Memory::client(store).with_faults(Box::new(move |call: &Call| {
                match reached.lock().clone() {
                    Some(server) => choose(call, &server),
                    None => Fault::None,
                }
            }))
        });
        *slot.lock() = Some(h.node.clone());
        h
    }

    /// [`Harness::new`] over a store that can be cut off: once the
    /// returned [`StoreCut`] is cut, every call goes unanswered (100 ms
    /// each, never sent), as with etcd out of reach.
    pub(super) fn cuttable(node: Node) -> (Harness, StoreCut) {
        let cut = StoreCut(Arc::default());
        let flag = cut.0.clone();
        let h = Harness::with(node, |store| {
            Memory::client(store).with_faults(Box::new(move |_| {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    Fault::Unsent(Duration::from_millis(100))
                } else {
                    Fault::None
                }
            }))
        });
        (h, cut)
    }

    pub(super) fn configured(
        node: Node,
        client: impl FnOnce(Arc<Mutex<Store>>) -> Memory,
        settings: impl FnOnce(&mut crate::config::ClusterSpec),
    ) -> Harness {
        let store = Arc::new(Mutex::new(Store::default()));
        let node = Arc::new(Mutex::new(node));
        let dir = tempfile::tempdir().unwrap();
        let mut me = spec(0);
        settings(&mut me);
        let peers: super::fake::Peers = Arc::new(Mutex::new(vec![(
            format!("{}:{}", me.host, me.port),
            node.clone(),
        )]));
        let keys = Keys::new(&me.scope);
        let ha = built(client(store.clone()), me, &node, &peers, &keys, dir.path());
        Harness {
            store,
            node,
            keys,
            ha,
            peers,
            _dir: dir,
        }
    }

    /// A new run of this member's agent over the same store, server and
    /// state directory (the earlier run's task is gone: killed).
    pub(super) fn restart(&mut self) {
        let client = Memory::client(self.store.clone());
        let me = self.ha.local.spec.clone();
        self.ha = built(
            client,
            me,
            &self.node,
            &self.peers,
            &self.keys,
            self._dir.path(),
        );
    }

    /// The agent of member `i` over the same store, its server `node`.
    pub(super) fn agent(&self, i: usize, node: Node) -> Agent {
        let s = spec(i);
        let node = Arc::new(Mutex::new(node));
        self.peers
            .lock()
            .push((format!("{}:{}", s.host, s.port), node.clone()));
        let dir = tempfile::tempdir().unwrap();
        let client = Memory::client(self.store.clone());
        let ha = built(client, s, &node, &self.peers, &self.keys, dir.path());
        Agent {
            node,
            ha,
            _dir: dir,
        }
    }

    /// Member `i` (not this one) published as `role` at `lsn`.
    pub(super) fn other(&self, i: usize, role: &str, lsn: u64) {
        let s = spec(i);
        let member = Member {
            name: s.name.clone(),
            role: role.into(),
            healthy: role == "standby",
            lsn: Some(lsn),
            timeline: Some(1),
            host: s.host.clone(),
            port: s.port,
            ..Member::default()
        };
        let mut store = self.store.lock();
        let lease = store.grant(Duration::from_secs(30));
        store
            .put(
                &self.keys.member(&s.name),
                &serde_json::to_string(&member).unwrap(),
                lease,
            )
            .unwrap();
    }

    /// The leader key held by `name` under a new lease of `ttl`.
    pub(super) fn leader(&self, name: &str, ttl: Duration) -> i64 {
        let mut store = self.store.lock();
        let lease = store.grant(ttl);
        store.put(&self.keys.leader, name, lease).unwrap();
        lease
    }

    pub(super) fn optime(&self, lsn: u64) {
        let mut store = self.store.lock();
        store.put(&self.keys.optime, &lsn.to_string(), 0).unwrap();
    }

    /// The `timeline` key's value.
    pub(super) fn timeline(&self) -> Option<String> {
        self.store
            .lock()
            .get(&self.keys.timeline)
            .map(|kv| kv.value.clone())
    }

    pub(super) fn holder(&self) -> Option<String> {
        self.store
            .lock()
            .get(&self.keys.leader)
            .map(|kv| kv.value.clone())
    }

    pub(super) async fn tick(&mut self) -> Vec<Did> {
        self.ha.tick().await
    }

    /// Ticks until one did something matching `want` (at most `n`).
    pub(super) async fn until(&mut self, n: usize, want: impl Fn(&Did) -> bool) -> Vec<Did> {
        let mut all = Vec::new();
        for _ in 0..n {
            let did = self.tick().await;
            let hit = did.iter().any(&want);
            all.extend(did);
            if hit {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("not done in {n} passes: {all:?}");
    }
}

impl Harness {
    /// Member m1's agent over a standby `target` streaming from m0,
    /// after four passes of both (m0 leading, m1 following).
    pub(super) async fn streaming_target(&mut self, mut target: Node) -> Agent {
        let me = spec(0);
        target.upstream = Some(format!("{}:{}", me.host, me.port));
        target.streaming = true;
        let mut target = self.agent(1, target);
        for _ in 0..4 {
            self.tick().await;
            target.ha.tick().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        target
    }

    /// Ask for a switchover to m1 (`target`) and run m0's hand-over pass
    /// beside m1's passes (every 200 ms, at most `passes`) until m1 holds
    /// the key: what m0's pass did.
    pub(super) async fn switch_over_to(&mut self, target: &mut Agent, passes: usize) -> Vec<Did> {
        let client = Memory::client(self.store.clone());
        crate::cluster::switchover::ask(&client, &self.keys, u64::MAX, "m1", None)
            .await
            .expect("the switchover is asked");
        let store = self.store.clone();
        let leader_key = self.keys.leader.clone();
        let holder = move || store.lock().get(&leader_key).map(|kv| kv.value.clone());
        let target_side = async {
            for _ in 0..passes {
                target.ha.tick().await;
                if holder().as_deref() == Some("m1") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        let (did, ()) = tokio::join!(self.ha.tick(), target_side);
        did
    }
}

/// Whether `call` is a transaction that puts the leader key for `name`
/// (an election's or a switchover's take): what a fault hook waits for.
pub(super) fn takes_the_key_for(call: &crate::cluster::dcs::memory::Call, name: &str) -> bool {
    use crate::cluster::etcd::Op;
    matches!(call, crate::cluster::dcs::memory::Call::Txn(_, _, ops)
        if ops.iter().any(|op| matches!(op, Op::Put { value, .. } if value == name)))
}

//! One seeded episode of the simulation: N members, each an agent ([`Ha`]
//! over an in-memory store client and a fake server) running its loop as
//! a task on a paused tokio clock, and a world that steps every
//! [`STEP`]: it replicates, lets primaries take writes, fires fences,
//! injects faults (lost, late and resent answers, agent crashes between
//! any two operations, unreadable pid files, failed stops and rewinds,
//! fences that cannot start or cannot signal, crashed servers, partitions
//! from the store), asks for switchovers as an operator would (to random
//! members, at random times), kills or cuts off the leader once, and checks
//! the invariants ([`Invariants`]) at every change of a server's role and
//! after every step; after the faults are healed a leader with a primary
//! must exist within [`SETTLE`]. Everything random comes from the seed, so
//! a seed replays exactly.

#[path = "world_faults.rs"]
mod injected;

use super::fake::{FakeServer, Node, Peers, Watch};
use super::faults::{Faults, Rng};
use super::invariants::Invariants;
use crate::cluster::Keys;
use crate::cluster::dcs::memory::{Call, Fault, Memory, Store};
use crate::cluster::ha::Ha;
use crate::config::ClusterSpec;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;

/// How often the world steps (replication, writes, fences, checks).
pub const STEP: Duration = Duration::from_millis(50);

/// Once every fault is healed, a leader with a primary within this (the
/// old leader's lease expires within `ttl`, 3 s, and a restarted agent
/// comes back within 5 s).
pub const SETTLE: Duration = Duration::from_secs(10);

/// What an episode did (to show the simulation exercised failovers).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// The leader key moved to another member.
    pub handovers: usize,
    /// Switchovers asked for (accepted by the request's checks).
    pub switchovers_asked: usize,
    /// Switchovers whose outcome says they completed.
    pub switchovers_done: usize,
    /// From the heal to a leader with a primary.
    pub settled_in: Option<Duration>,
}

/// What a member's faults are right now (shared with its store client).
#[derive(Debug, Default)]
struct Cut {
    /// Cut off from the store until then.
    partitioned_until: Option<Instant>,
    /// The agent stopped mid-call: the world kills its task.
    crashed: bool,
    /// No crash of the agent now (its fence cannot signal the server: a
    /// crash too would leave a primary no software fence can stop).
    steady: bool,
}

struct Member {
    name: String,
    node: Arc<Mutex<Node>>,
    cut: Arc<Mutex<Cut>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// When a crashed agent comes back.
    back_at: Option<Instant>,
    /// Until when a fault set on its server lasts.
    heal_at: Option<Instant>,
    dir: tempfile::TempDir,
}

/// One episode.
pub struct World {
    rng: Arc<Mutex<Rng>>,
    faults: Faults,
    store: Arc<Mutex<Store>>,
    members: Vec<Member>,
    peers: Peers,
    keys: Keys,
    /// What happened, for a failing seed's report.
    pub log: Arc<Mutex<Vec<String>>>,
    start: Instant,
    invariants: Arc<Invariants>,
    /// The leader key's holder as last seen.
    last_holder: Option<String>,
    /// The revision of the switchover outcome last counted.
    last_outcome: i64,
    /// The step at which the leader is killed or cut off.
    kill_at: usize,
    /// `[cluster] synchronous = true` on every member.
    synchronous: bool,
    pub stats: Stats,
}

fn template() -> &'static ClusterSpec {
    static SPEC: OnceLock<ClusterSpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = "[targets.local]\ndsn = \"host=127.0.0.1 user=postgres\"\ndata_dir = \"/nonexistent/sim\"\n\n[cluster]\nscope = \"sim\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.0.0.1:5432\"\n";
        crate::config::parse_str("sim.toml", text, std::path::Path::new("/"))
            .expect("the simulation's configuration parses")
            .cluster
            .expect("it has a [cluster] section")
    })
}

/// The cluster settings of member `i`.
pub fn spec(i: usize) -> ClusterSpec {
    let mut spec = template().clone();
    spec.name = format!("m{i}");
    spec.host = format!("10.0.0.{}", i + 1);
    spec.port = 5432;
    spec
}

impl World {
    /// `n` members; member 0 runs the primary and holds the key (from an
    /// earlier run of its agent), the others are standbys of it.
    pub fn new(seed: u64, n: usize, faults: Faults) -> World {
        World::with_mode(seed, n, faults, false)
    }

    /// [`World::new`], every member in synchronous mode or not
    /// (`synchronous`): then the servers acknowledge a commit only once
    /// the standbys their leader named flushed it, and no acknowledged
    /// commit may be missing from a server that is promoted.
    pub fn with_mode(seed: u64, n: usize, faults: Faults, synchronous: bool) -> World {
        // The faults' generator, seeded apart from the one that drew them.
        let store = Arc::new(Mutex::new(Store::default()));
        let keys = Keys::new(&template().scope);
        let peers = Arc::new(Mutex::new(Vec::new()));
        let mut members = Vec::new();
        for i in 0..n {
            let first = spec(0);
            let mine = spec(i);
            let mut node = Node::new(i == 0, 1000);
            node.name = mine.name.clone();
            node.acked = 1000;
            node.slow = faults.slow;
            if i > 0 {
                node.upstream = Some(format!("{}:{}", first.host, first.port));
            }
            let node = Arc::new(Mutex::new(node));
            peers
                .lock()
                .push((format!("{}:{}", mine.host, mine.port), node.clone()));
            members.push(Member {
                name: mine.name.clone(),
                node,
                cut: Arc::new(Mutex::new(Cut::default())),
                task: None,
                back_at: None,
                heal_at: None,
                dir: tempfile::tempdir().expect("a temporary directory"),
            });
        }
        let invariants = Arc::new(Invariants::new(
            store.clone(),
            keys.leader.clone(),
            members
                .iter()
                .map(|m| (m.name.clone(), m.node.clone()))
                .collect(),
            synchronous,
        ));
        let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(17));
        let kill_at = 80 + rng.below(240) as usize;
        let mut world = World {
            rng: Arc::new(Mutex::new(rng)),
            faults,
            store,
            members,
            peers,
            keys,
            log: Arc::new(Mutex::new(Vec::new())),
            start: Instant::now(),
            invariants,
            last_holder: None,
            last_outcome: 0,
            kill_at,
            synchronous,
            stats: Stats::default(),
        };
        world.bootstrap_key();
        for i in 0..n {
            world.start_agent(i);
        }
        world
    }

    fn bootstrap_key(&mut self) {
        let leader = self.keys.leader.clone();
        let name = self.members[0].name.clone();
        let mut store = self.store.lock();
        let lease = store.grant(template().ttl);
        store
            .put(&leader, &name, lease)
            .expect("the bootstrap key is written");
        // And the fence that earlier run armed (its deadline: the lease's
        // grant plus ttl minus a third, plus a sixth).
        let ttl = template().ttl;
        self.members[0]
            .node
            .lock()
            .arm_left_over(Instant::now() + ttl - ttl / 3 + ttl / 6);
        if self.synchronous {
            // That run's synchronous set, in etcd and in the server's
            // setting (which outlives the agent: `ALTER SYSTEM`).
            let standbys: Vec<String> = self.members[1..].iter().map(|m| m.name.clone()).collect();
            let quorum = template().synchronous_node_count;
            let set = crate::cluster::sync::SyncSet::new(&name, quorum, standbys.clone());
            store
                .put(
                    &self.keys.sync,
                    &serde_json::to_string(&set).expect("a set serializes"),
                    0,
                )
                .expect("the bootstrap set is written");
            self.members[0].node.lock().sync_names =
                crate::cluster::sync::standby_names(quorum, &standbys);
        }
    }

    fn now(&self) -> Duration {
        Instant::now() - self.start
    }

    fn note(&self, what: String) {
        let at = self.now();
        self.log
            .lock()
            .push(format!("{:>7.3}s {what}", at.as_secs_f64()));
    }

    fn start_agent(&mut self, i: usize) {
        let faults = self.faults;
        let rng = self.rng.clone();
        let cut = self.members[i].cut.clone();
        cut.lock().crashed = false;
        let chooser = Box::new(move |call: &Call| {
            let mut rng = rng.lock();
            let mut cut = cut.lock();
            if cut
                .partitioned_until
                .is_some_and(|until| Instant::now() < until)
            {
                return Fault::Unsent(Duration::from_millis(500));
            }
            if !cut.steady && rng.chance(faults.crash_mid) {
                cut.crashed = true;
                return Fault::Hang;
            }
            if rng.chance(faults.unsent) {
                return Fault::Unsent(rng.millis(500));
            }
            if rng.chance(faults.answer_lost) {
                return Fault::AnswerLost(rng.millis(500));
            }
            if rng.chance(faults.late) {
                return Fault::Late(rng.millis(2500));
            }
            if !call.idempotent() && rng.chance(faults.resent) {
                return Fault::Resent;
            }
            Fault::None
        });
        let dcs = Memory::client(self.store.clone()).with_faults(chooser);
        let invariants = self.invariants.clone();
        let watch: Watch = Arc::new(move || invariants.look());
        let mut mine = spec(i);
        mine.synchronous = self.synchronous;
        let server = FakeServer {
            spec: mine,
            node: self.members[i].node.clone(),
            peers: self.peers.clone(),
            watch: Some(watch),
        };
        let member = &self.members[i];
        let mut ha = Ha::new(
            dcs,
            server,
            self.keys.clone(),
            None,
            Arc::new(Mutex::new(Default::default())),
            format!("http://{}:8080", spec(i).host),
            member.dir.path().join("cluster-leader"),
        );
        let log = self.log.clone();
        let name = member.name.clone();
        let start = self.start;
        let every = template().loop_wait;
        self.members[i].task = Some(tokio::spawn(async move {
            loop {
                for did in ha.tick().await {
                    use crate::cluster::did::Did;
                    if !matches!(did, Did::Renewed | Did::Following | Did::Waiting) {
                        let at = (Instant::now() - start).as_secs_f64();
                        log.lock().push(format!("{at:>7.3}s {name}: {did:?}"));
                    }
                }
                tokio::time::sleep(every).await;
            }
        }));
        self.note(format!("{}: agent started", self.members[i].name));
    }

    fn crash_agent(&mut self, i: usize, why: &str) {
        if let Some(task) = self.members[i].task.take() {
            task.abort();
            let back = self.rng.lock().millis(5000);
            self.members[i].back_at = Some(Instant::now() + back);
            self.note(format!("{}: agent crashed ({why})", self.members[i].name));
        }
    }

    /// Run for `steps` steps with faults, then `calm` without; `Err` with
    /// the first invariant broken.
    pub async fn run(&mut self, steps: usize, calm: usize) -> Result<(), String> {
        for step in 0..steps {
            tokio::time::sleep(STEP).await;
            self.physics();
            self.check()?;
            self.inject();
            self.operator().await;
            if step == self.kill_at {
                self.kill_leader();
            }
        }
        self.heal();
        let healed = Instant::now();
        // Slow servers lengthen the calm twice over: the failover
        // ([`Self::slack`]), then a switchover asked before the heal, which
        // runs once a leader has a primary (its checkpoint, then the
        // target's synchronous setting and promotion).
        let calm = calm + (2 * self.slack().as_millis() / STEP.as_millis()) as usize;
        for _ in 0..calm {
            tokio::time::sleep(STEP).await;
            self.physics();
            self.check()?;
            self.restart_agents();
            if self.stats.settled_in.is_none() && self.leads().is_ok() {
                self.stats.settled_in = Some(Instant::now() - healed);
            }
        }
        self.check_failover()
    }

    /// As an operator: now and then ask for a switchover to a random
    /// member (through the same checks as `watchpost cluster switchover`),
    /// or cancel the pending one.
    async fn operator(&mut self) {
        let f = self.faults;
        if self.chance(f.switchover) {
            let to = {
                let at = self.rng.lock().below(self.members.len() as u64) as usize;
                self.members[at].name.clone()
            };
            let client = Memory::client(self.store.clone());
            let max_lag = template().max_lag_bytes;
            match crate::cluster::switchover::ask(&client, &self.keys, max_lag, &to, None).await {
                Ok(request) => {
                    self.stats.switchovers_asked += 1;
                    self.note(format!(
                        "operator: switchover {} from {} to {to} asked",
                        request.id, request.from
                    ));
                }
                Err(why) => self.note(format!("operator: switchover to {to}: {why}")),
            }
        }
        if self.chance(f.switchover / 4.0) {
            let client = Memory::client(self.store.clone());
            match crate::cluster::switchover::cancel(&client, &self.keys).await {
                Ok(request) => self.note(format!("operator: switchover {} cancelled", request.id)),
                Err(why) => self.note(format!("operator: cancel: {why}")),
            }
        }
    }

    /// Kill the leader's node (agent and server) or cut it off from the
    /// store, once per episode: a failover (or its own return) must follow.
    fn kill_leader(&mut self) {
        let holder = self
            .store
            .lock()
            .get(&self.keys.leader)
            .map(|kv| kv.value.clone());
        let Some(i) = holder.and_then(|h| self.members.iter().position(|m| m.name == h)) else {
            self.note("no leader to kill".into());
            return;
        };
        let now = Instant::now();
        let steady = self.members[i].cut.lock().steady;
        if steady || self.rng.lock().chance(0.5) {
            let cut = Duration::from_millis(2000) + self.rng.lock().millis(4000);
            self.members[i].cut.lock().partitioned_until = Some(now + cut);
            self.note(format!(
                "{}: the leader is cut from the store for {cut:?}",
                self.members[i].name
            ));
        } else {
            self.crash_agent(i, "the leader's node is killed");
            let mut node = self.members[i].node.lock();
            if node.running && !node.unknown {
                node.running = false;
                node.primary = false;
                node.streaming = false;
            }
            drop(node);
            self.invariants.look();
            self.note(format!(
                "{}: the leader's server is killed",
                self.members[i].name
            ));
        }
    }

    fn restart_agents(&mut self) {
        let now = Instant::now();
        for i in 0..self.members.len() {
            if self.members[i].task.is_none() && self.members[i].back_at.is_none_or(|at| now >= at)
            {
                self.members[i].back_at = None;
                self.start_agent(i);
            }
        }
    }

    /// Replication, writes, fences.
    fn physics(&mut self) {
        let now = Instant::now();
        self.store.lock().expire(now);
        let nodes: Vec<(String, Node)> = self
            .peers
            .lock()
            .iter()
            .map(|(a, n)| (a.clone(), n.lock().clone()))
            .collect();
        for (_, node) in self.peers.lock().iter() {
            let mut node = node.lock();
            node.fire_fences(now);
            if node.running && node.primary {
                node.lsn += 1;
            }
            if node.running && !node.primary {
                let upstream = node
                    .upstream
                    .as_ref()
                    .and_then(|u| nodes.iter().find(|(a, _)| a == u))
                    .map(|(_, n)| n.clone());
                node.streaming = false;
                if let Some(up) = upstream
                    && up.running
                    && node.on(&up)
                {
                    node.streaming = true;
                    node.lsn = up.lsn;
                    node.timeline = up.timeline;
                    node.history = up.history.clone();
                }
            }
        }
        // What each primary acknowledges now, by what its standbys hold.
        let peers: Vec<(String, Arc<Mutex<Node>>)> = self.peers.lock().clone();
        for (address, node) in &peers {
            if !node.lock().primary {
                continue;
            }
            let standbys = super::fake::streaming_from(&self.peers, address);
            let mut node = node.lock();
            if node.running && node.primary {
                node.acknowledge(&standbys);
            }
        }
    }

    /// The invariants, after a step (also looked at on every change of a
    /// role), and what the step shows (hand-overs, completed switchovers).
    fn check(&mut self) -> Result<(), String> {
        self.invariants.look();
        if let Some(broken) = self.invariants.broken() {
            return Err(broken);
        }
        let (holder, outcome) = {
            let store = self.store.lock();
            (
                store.get(&self.keys.leader).map(|kv| kv.value.clone()),
                store
                    .get(&self.keys.switchover_result)
                    .map(|kv| (kv.revision, kv.value.clone())),
            )
        };
        if let Some(h) = &holder
            && self.last_holder.as_ref().is_some_and(|last| last != h)
        {
            self.stats.handovers += 1;
        }
        if holder.is_some() {
            self.last_holder = holder;
        }
        if let Some((revision, value)) = outcome
            && revision != self.last_outcome
        {
            self.last_outcome = revision;
            let done = serde_json::from_str::<crate::cluster::switchover::Outcome>(&value)
                .is_ok_and(|o| o.ok);
            if done {
                self.stats.switchovers_done += 1;
            }
            self.note(format!("switchover outcome: {value}"));
        }
        Ok(())
    }

    fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().chance(p)
    }

    /// What slow servers add to the time a failover may take after the
    /// heal: a member's start as a standby (inside its pass: a follower
    /// holds no lease) and, once elected, its synchronous setting's write
    /// and its promotion's confirmation (or, the leader's own server, its
    /// recovery).
    fn slack(&self) -> Duration {
        let slowest = self.members.iter().map(|m| m.node.lock().slow).max();
        slowest.unwrap_or_default() * 3
    }

    /// After the calm: a leader with a primary, and one came within
    /// [`SETTLE`] (plus [`Self::slack`]) of the heal.
    fn check_failover(&self) -> Result<(), String> {
        self.leads()?;
        let bound = SETTLE + self.slack();
        match self.stats.settled_in {
            Some(took) if took <= bound => Ok(()),
            took => Err(format!(
                "a leader with a primary only {took:?} after the faults were healed (bound {bound:?})"
            )),
        }
    }

    /// Whether a member holds the key and its server is the primary.
    fn leads(&self) -> Result<(), String> {
        let store = self.store.lock();
        let holder = store.get(&self.keys.leader).map(|kv| kv.value.clone());
        let term = store.get(&self.keys.timeline).map(|kv| kv.value.clone());
        drop(store);
        let primary = self
            .members
            .iter()
            .find(|m| {
                let node = m.node.lock();
                node.running && node.primary
            })
            .map(|m| m.name.clone());
        match (&holder, &primary) {
            (Some(h), Some(p)) if h == p => Ok(()),
            _ => {
                let servers: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| format!("{}: {:?}", m.name, m.node.lock()))
                    .collect();
                Err(format!(
                    "no failover after the faults were healed: key held by {holder:?}, primary {primary:?}, timeline key {term:?}; servers {servers:#?}"
                ))
            }
        }
    }

    /// Stop every agent.
    pub fn shutdown(&mut self) {
        for m in &mut self.members {
            if let Some(task) = m.task.take() {
                task.abort();
            }
        }
    }
}

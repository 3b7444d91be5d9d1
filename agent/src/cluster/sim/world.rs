//! One seeded episode of the simulation: N members, each an agent ([`Ha`]
//! over an in-memory store client and a fake server) running its loop as
//! a task on a paused tokio clock, and a world that steps every
//! [`STEP`]: it replicates, lets primaries take writes, fires fences,
//! injects faults (lost, late and resent answers, agent crashes between
//! any two operations, unreadable pid files, failed stops and rewinds,
//! fences that cannot start, crashed servers, partitions from the store)
//! and checks the invariants after every step. Everything random comes
//! from the seed, so a seed replays exactly.

use super::fake::{FakeServer, Node, Peers};
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

/// A small deterministic generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max + 1))
    }
}

/// How faulty an episode is (probabilities per store call or per step).
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub unsent: f64,
    pub answer_lost: f64,
    pub late: f64,
    pub resent: f64,
    /// A store call on which the agent crashes (stops mid-operation).
    pub crash_mid: f64,
    /// Per step and member: the agent crashes between ticks.
    pub crash: f64,
    pub server_crash: f64,
    pub unknown: f64,
    pub stop_fails: f64,
    pub rewind_fails: f64,
    pub fence_broken: f64,
    pub partition: f64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        unsent: 0.0,
        answer_lost: 0.0,
        late: 0.0,
        resent: 0.0,
        crash_mid: 0.0,
        crash: 0.0,
        server_crash: 0.0,
        unknown: 0.0,
        stop_fails: 0.0,
        rewind_fails: 0.0,
        fence_broken: 0.0,
        partition: 0.0,
    };

    /// A mix drawn from the seed: each kind on or off, at a rate that
    /// leaves time between faults.
    pub fn drawn(rng: &mut Rng) -> Faults {
        let mut on = |p: f64| if rng.chance(0.5) { p } else { 0.0 };
        Faults {
            unsent: on(0.02),
            answer_lost: on(0.02),
            late: on(0.02),
            resent: on(0.05),
            crash_mid: on(0.003),
            crash: on(0.001),
            server_crash: on(0.001),
            unknown: on(0.001),
            stop_fails: on(0.001),
            rewind_fails: on(0.002),
            fence_broken: on(0.001),
            partition: on(0.001),
        }
    }
}

/// What a member's faults are right now (shared with its store client).
#[derive(Debug, Default)]
struct Cut {
    /// Cut off from the store until then.
    partitioned_until: Option<Instant>,
    /// The agent stopped mid-call: the world kills its task.
    crashed: bool,
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
    /// The expiry of the last lease under which it held the leader key.
    held_until: Option<Instant>,
    was_primary: bool,
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
    /// The last primary's state as last seen.
    last_primary: Option<(String, Node)>,
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
        // The faults' generator, seeded apart from the one that drew them.
        let store = Arc::new(Mutex::new(Store::default()));
        let keys = Keys::new(&template().scope);
        let peers = Arc::new(Mutex::new(Vec::new()));
        let mut members = Vec::new();
        for i in 0..n {
            let first = spec(0);
            let mine = spec(i);
            let mut node = Node::new(i == 0, 1000);
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
                held_until: None,
                was_primary: i == 0,
            });
        }
        let mut world = World {
            rng: Arc::new(Mutex::new(Rng::new(seed.wrapping_mul(31).wrapping_add(17)))),
            faults,
            store,
            members,
            peers,
            keys,
            log: Arc::new(Mutex::new(Vec::new())),
            start: Instant::now(),
            last_primary: None,
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
        self.members[0].held_until = store.lease_expiry(lease);
        // And the fence that earlier run armed (its deadline: the lease's
        // grant plus ttl minus a third, plus a sixth).
        let ttl = template().ttl;
        self.members[0]
            .node
            .lock()
            .arm_left_over(Instant::now() + ttl - ttl / 3 + ttl / 6);
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
            if rng.chance(faults.crash_mid) {
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
        let server = FakeServer {
            spec: spec(i),
            node: self.members[i].node.clone(),
            peers: self.peers.clone(),
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
        for _ in 0..steps {
            tokio::time::sleep(STEP).await;
            self.physics();
            self.check()?;
            self.inject();
        }
        self.heal();
        for _ in 0..calm {
            tokio::time::sleep(STEP).await;
            self.physics();
            self.check()?;
            self.restart_agents();
        }
        self.check_failover()
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
                    && up.contains(node.timeline, node.lsn)
                {
                    node.streaming = true;
                    node.lsn = up.lsn;
                    node.timeline = up.timeline;
                    node.history = up.history.clone();
                }
            }
        }
    }

    /// The invariants, after a step.
    fn check(&mut self) -> Result<(), String> {
        let now = Instant::now();
        let store = self.store.lock();
        let holder = store
            .get(&self.keys.leader)
            .map(|kv| (kv.value.clone(), store.lease_expiry(kv.lease)));
        drop(store);
        let mut primaries = Vec::new();
        for m in self.members.iter_mut() {
            if let Some((name, until)) = &holder
                && *name == m.name
            {
                m.held_until = *until;
            }
            let node = m.node.lock().clone();
            let primary = node.running && node.primary;
            if primary {
                primaries.push(m.name.clone());
                if m.held_until.is_none_or(|until| now > until) {
                    return Err(format!(
                        "{} accepts writes without the leader key (held until {:?}, now {:?})",
                        m.name,
                        m.held_until.map(|u| u - self.start),
                        now - self.start
                    ));
                }
                if !m.was_primary {
                    // Just promoted: it must have been on the last
                    // primary's history where it left its timeline.
                    if let (Some((last, seen)), Some((timeline, at))) =
                        (&self.last_primary, node.history.last())
                        && *last != m.name
                        && !on_history(&node, seen)
                    {
                        return Err(format!(
                            "{} was promoted from timeline {timeline} at {at}, which is not on the history of the last primary {last} (timeline {}, at {}, history {:?})",
                            m.name, seen.timeline, seen.lsn, seen.history
                        ));
                    }
                }
                self.last_primary = Some((m.name.clone(), node.clone()));
            }
            m.was_primary = primary;
        }
        if primaries.len() > 1 {
            return Err(format!("two primaries accept writes: {primaries:?}"));
        }
        Ok(())
    }

    fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().chance(p)
    }

    fn inject(&mut self) {
        let now = Instant::now();
        let f = self.faults;
        for i in 0..self.members.len() {
            let crashed_mid = self.members[i].cut.lock().crashed;
            if crashed_mid {
                self.crash_agent(i, "stopped mid-operation");
            }
            self.restart_agents_one(i, now);
            if self.chance(f.crash) {
                self.crash_agent(i, "between ticks");
            }
            let mut what = Vec::new();
            if self.members[i].heal_at.is_some_and(|at| now >= at) {
                self.members[i].heal_at = None;
                let mut node = self.members[i].node.lock();
                node.unknown = false;
                node.stop_fails = false;
                node.rewind_fails = false;
                node.fence_broken = false;
                what.push("server faults healed".to_string());
            }
            let hits = [
                self.chance(f.unknown),
                self.chance(f.stop_fails),
                self.chance(f.rewind_fails),
                self.chance(f.fence_broken),
            ];
            if hits.iter().any(|h| *h) {
                let mut node = self.members[i].node.lock();
                let [unknown, stop_fails, rewind_fails, fence_broken] = hits;
                node.unknown |= unknown;
                node.stop_fails |= stop_fails;
                node.rewind_fails |= rewind_fails;
                node.fence_broken |= fence_broken;
                let labels = [
                    "pid file unreadable",
                    "stops fail",
                    "rewinds fail",
                    "fence cannot start",
                ];
                for (hit, label) in hits.iter().zip(labels) {
                    if *hit {
                        what.push(label.to_string());
                    }
                }
                drop(node);
                let heal = self.rng.lock().millis(8000);
                self.members[i].heal_at = Some(now + heal);
            }
            if self.chance(f.server_crash) {
                let mut node = self.members[i].node.lock();
                if node.running && !node.unknown {
                    node.running = false;
                    node.primary = false;
                    node.streaming = false;
                    what.push("server crashed".into());
                }
            }
            if self.chance(f.partition) {
                let cut = self.rng.lock().millis(8000);
                self.members[i].cut.lock().partitioned_until = Some(now + cut);
                what.push(format!("cut from the store for {cut:?}"));
            }
            let name = self.members[i].name.clone();
            for w in what {
                self.note(format!("{name}: {w}"));
            }
        }
    }

    fn restart_agents_one(&mut self, i: usize, now: Instant) {
        if self.members[i].task.is_none() && self.members[i].back_at.is_some_and(|at| now >= at) {
            self.members[i].back_at = None;
            self.start_agent(i);
        }
    }

    /// Every fault lifted: servers readable, stoppable, fences working,
    /// the store reachable, answers on time.
    fn heal(&mut self) {
        self.faults = Faults::NONE;
        for m in &mut self.members {
            m.heal_at = None;
            let mut node = m.node.lock();
            node.unknown = false;
            node.stop_fails = false;
            node.rewind_fails = false;
            node.fence_broken = false;
            m.cut.lock().partitioned_until = None;
            m.back_at = Some(Instant::now());
        }
        // The agents' clients keep their choosers: restart them all with
        // fault-free ones.
        for i in 0..self.members.len() {
            if let Some(task) = self.members[i].task.take() {
                task.abort();
            }
        }
        self.note("all faults healed; every agent restarted".into());
        self.restart_agents();
    }

    /// After the calm: a leader with a primary, when a member qualifies.
    fn check_failover(&self) -> Result<(), String> {
        let store = self.store.lock();
        let holder = store.get(&self.keys.leader).map(|kv| kv.value.clone());
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
                    "no failover after the faults were healed: key held by {holder:?}, primary {primary:?}; servers {servers:#?}"
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

/// Whether the WAL `node` held before its promotion is on `primary`'s
/// history: each timeline it left ended within the primary's part of it,
/// and on timelines the primary never saw it wrote nothing.
fn on_history(node: &Node, primary: &Node) -> bool {
    let mut start = 0;
    for (timeline, end) in &node.history {
        let fine = match timeline.cmp(&primary.timeline) {
            std::cmp::Ordering::Less => primary.contains(*timeline, *end),
            std::cmp::Ordering::Equal => *end <= primary.lsn,
            std::cmp::Ordering::Greater => *end <= start,
        };
        if !fine {
            return false;
        }
        start = *end;
    }
    true
}

//! The faults a [`World`] injects at each step, drawn from its seed
//! (agent crashes, unreadable pid files, failed stops and rewinds, fences
//! that cannot start or cannot signal, crashed servers, partitions from
//! the store), the agents restarted after a crash, and the healing of
//! every fault before the episode's settling check.

use super::World;
use crate::cluster::sim::faults::Faults;
use tokio::time::Instant;

impl World {
    pub(super) fn inject(&mut self) {
        let now = Instant::now();
        let f = self.faults;
        for i in 0..self.members.len() {
            let crashed_mid = self.members[i].cut.lock().crashed;
            if crashed_mid {
                self.crash_agent(i, "stopped mid-operation");
            }
            self.restart_agents_one(i, now);
            let steady = self.members[i].cut.lock().steady;
            if self.chance(f.crash) && !steady {
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
                node.fence_fails = false;
                self.members[i].cut.lock().steady = false;
                what.push("server faults healed".to_string());
            }
            // A fence that cannot signal the server, only beside an agent
            // that runs and can stop the server itself (with a crash or a
            // failed stop too, no software fence can stop a primary).
            let alive = self.members[i].task.is_some() && !self.members[i].cut.lock().crashed;
            let unfenceable = {
                let node = self.members[i].node.lock();
                node.unknown || node.stop_fails
            };
            if self.chance(f.fence_fails) && alive && !unfenceable {
                self.members[i].node.lock().fence_fails = true;
                self.members[i].cut.lock().steady = true;
                let heal = self.rng.lock().millis(8000);
                let until = self.members[i]
                    .heal_at
                    .map_or(now + heal, |at| at.max(now + heal));
                self.members[i].heal_at = Some(until);
                what.push("fence cannot signal the server".to_string());
            }
            let fenceless = self.members[i].node.lock().fence_fails;
            let hits = [
                self.chance(f.unknown) && !fenceless,
                self.chance(f.stop_fails) && !fenceless,
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
    pub(super) fn heal(&mut self) {
        self.faults = Faults::NONE;
        for m in &mut self.members {
            m.heal_at = None;
            let mut node = m.node.lock();
            node.unknown = false;
            node.stop_fails = false;
            node.rewind_fails = false;
            node.fence_broken = false;
            node.fence_fails = false;
            m.cut.lock().partitioned_until = None;
            m.cut.lock().steady = false;
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
}

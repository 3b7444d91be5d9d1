//! The fence of a fake server ([`super::fake`]): one fence process per
//! agent run, started on first arm, that the world fires at its deadline;
//! as the real watchdog, a disarmed one exits with its agent and an armed
//! one stays (a crashed agent's fence still fires).

use super::node::Node;
use crate::cluster::server::Fence;
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::time::Instant;

/// The fence of a fake server: one fence process, started on first arm.
pub struct FakeFence {
    pub(super) node: Arc<Mutex<Node>>,
    pub(super) id: Option<u64>,
    pub(super) sent: Option<Instant>,
}

impl Fence for FakeFence {
    fn sync(&mut self, until: Option<Instant>) -> Option<(bool, String)> {
        let mut node = self.node.lock();
        let mut fired = self.id.and_then(|id| {
            let at = node.fired.iter().position(|(f, _)| *f == id)?;
            let (_, stopped) = node.fired.remove(at);
            self.id = None;
            self.sent = None;
            Some((stopped, "the fence fired".to_string()))
        });
        if node.fence_fails
            && let Some(id) = self.id.take()
        {
            // It found it cannot signal the server, and exited.
            node.fences.retain(|(f, _)| *f != id);
            self.sent = None;
            fired = Some((
                false,
                "the fence cannot signal the server: it exited".into(),
            ));
        }
        if until == self.sent {
            return fired;
        }
        match (self.id, until) {
            (None, None) => self.sent = None,
            (None, Some(_)) if node.fence_broken || node.fence_fails => {}
            (None, Some(at)) => {
                node.next_fence += 1;
                let id = node.next_fence;
                node.fences.push((id, Some(at)));
                self.id = Some(id);
                self.sent = until;
            }
            (Some(id), until) => {
                for fence in node.fences.iter_mut().filter(|(f, _)| *f == id) {
                    fence.1 = until;
                }
                self.sent = until;
            }
        }
        fired
    }

    fn armed(&self) -> bool {
        self.id.is_some() && self.sent.is_some()
    }
}

impl Drop for FakeFence {
    fn drop(&mut self) {
        // As the real one: a disarmed fence exits with its agent, an armed
        // one stays and fires at its deadline.
        if let Some(id) = self.id
            && self.sent.is_none()
        {
            self.node.lock().fences.retain(|(f, _)| *f != id);
        }
    }
}

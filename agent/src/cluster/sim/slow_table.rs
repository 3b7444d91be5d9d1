//! A leader's long local actions (issue 30): a crash recovery and a
//! switchover's checkpoint that take longer than the lease's deadline
//! (2 s of a 3 s `ttl`) keep the lease renewed and the watchdog's deadline
//! ahead of the clock all along, and complete. Before, both were awaited
//! inside the pass that renews the lease: the deadline passed unrenewed
//! and the leader's own watchdog stopped the server mid-action.

use super::fake::Node;
use super::harness::Harness;
use crate::cluster::did::Did;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Watches `node`'s armed fences every 50 ms (of the paused clock) and
/// keeps the first moment one was past its deadline: when the real
/// watchdog would have stopped the server.
pub(super) fn fence_watch(node: Arc<Mutex<Node>>) -> Arc<Mutex<Option<Instant>>> {
    let fired: Arc<Mutex<Option<Instant>>> = Arc::default();
    let seen = fired.clone();
    tokio::spawn(async move {
        loop {
            let now = Instant::now();
            let past = node
                .lock()
                .fences
                .iter()
                .any(|(_, until)| until.is_some_and(|t| t <= now));
            if past && seen.lock().is_none() {
                *seen.lock() = Some(now);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    fired
}

/// Member m0's primary, whose start (crash recovery) and checkpoint take
/// `slow`.
fn slow_primary(slow: Duration) -> Node {
    let mut node = Node::new(true, 1000);
    node.slow = slow;
    node
}

/// `h`'s member leading with its primary, which then crashes.
async fn leading_then_crashed(h: &mut Harness) {
    h.leader("m0", Duration::from_secs(3));
    h.tick().await;
    let mut node = h.node.lock();
    node.running = false;
    node.primary = false;
}

#[tokio::test(start_paused = true)]
async fn a_crash_recovery_longer_than_the_lease_keeps_the_lease_and_is_promoted_after_it() {
    let mut h = Harness::new(slow_primary(Duration::from_secs(8)));
    leading_then_crashed(&mut h).await;
    let fired = fence_watch(h.node.clone());
    let began = Instant::now();
    let did = h.tick().await;
    assert!(
        began.elapsed() >= Duration::from_secs(8),
        "the restart waited for the recovery"
    );
    assert!(matches!(&did[0], Did::Restarted(_)), "{did:?}");
    assert!(
        !did.iter()
            .any(|d| matches!(d, Did::LostLease(_) | Did::Demoted(_))),
        "{did:?}"
    );
    assert_eq!(*fired.lock(), None, "the watchdog's deadline passed");
    assert_eq!(h.holder().as_deref(), Some("m0"));
    h.until(3, |d| matches!(d, Did::Promoted(_))).await;
    assert!(h.node.lock().primary);
    assert_eq!(*fired.lock(), None, "the watchdog's deadline passed");
}

#[tokio::test(start_paused = true)]
async fn a_switchover_whose_checkpoint_outlasts_the_lease_completes_without_the_watchdog() {
    let mut h = Harness::new(slow_primary(Duration::from_secs(8)));
    let mut target = h.streaming_target(Node::new(false, 1000)).await;
    assert_eq!(h.holder().as_deref(), Some("m0"));
    let fired = fence_watch(h.node.clone());
    let did = h.switch_over_to(&mut target, 80).await;
    assert!(
        !did.iter().any(|d| matches!(d, Did::LostLease(_))),
        "{did:?}"
    );
    assert_eq!(*fired.lock(), None, "the watchdog's deadline passed");
    assert_eq!(h.holder().as_deref(), Some("m1"));
    assert!(target.node.lock().primary);
    assert!(!h.node.lock().running, "the old leader stopped cleanly");
}

/// `restart_timeout` (30 s in the template) bounds the wait: a recovery
/// still running then is stopped, and the key released once the server
/// is known stopped, with the lease kept (and the watchdog quiet) until
/// the release.
#[tokio::test(start_paused = true)]
async fn a_crash_recovery_past_restart_timeout_is_stopped_and_the_key_handed_over() {
    let mut h = Harness::new(slow_primary(Duration::from_secs(300)));
    leading_then_crashed(&mut h).await;
    let fired = fence_watch(h.node.clone());
    let crashed = Instant::now();
    let did = h.until(10, |d| matches!(d, Did::Released(_))).await;
    let took = crashed.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(35),
        "{took:?} {did:?}"
    );
    assert!(
        !did.iter()
            .any(|d| matches!(d, Did::LostLease(_) | Did::Promoted(_))),
        "{did:?}"
    );
    assert_eq!(*fired.lock(), None, "the watchdog's deadline passed");
    assert!(!h.node.lock().running, "released only once stopped");
    assert_eq!(h.holder(), None);
}

/// Once the restarted server answers, the crash is over: a primary that
/// later stops answering for a while (busy, clients reconnecting) is not
/// stopped when `restart_timeout` from the crash runs out.
#[tokio::test(start_paused = true)]
async fn a_restarted_primary_that_stops_answering_later_is_not_stopped_for_the_old_crash() {
    let mut h = Harness::new(slow_primary(Duration::from_secs(20)));
    leading_then_crashed(&mut h).await;
    h.until(3, |d| matches!(d, Did::Promoted(_))).await;
    // Busy for 20 s: running, no answer, past 30 s from the crash.
    h.node.lock().recovering_until = Some(Instant::now() + Duration::from_secs(20));
    let mut did = Vec::new();
    for _ in 0..30 {
        did.extend(h.tick().await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let node = h.node.lock().clone();
    assert!(node.running && node.primary, "{did:?} {node:?}");
    assert!(
        !did.iter()
            .any(|d| matches!(d, Did::Released(_) | Did::Demoted(_))),
        "{did:?}"
    );
    assert_eq!(h.holder().as_deref(), Some("m0"));
}

/// The store out of reach during a long restart: the action is dropped
/// at the lease's deadline (not when the recovery ends) and the server
/// stopped by the lease's path; nothing is recorded as restarted.
#[tokio::test(start_paused = true)]
async fn the_store_lost_during_a_long_restart_drops_it_and_stops_the_server_at_the_deadline() {
    let (mut h, cut) = Harness::cuttable(slow_primary(Duration::from_secs(20)));
    leading_then_crashed(&mut h).await;
    cut.after(Duration::from_secs(1));
    let began = Instant::now();
    let did = h.tick().await;
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the restart was not dropped at the deadline: {:?}",
        began.elapsed()
    );
    assert!(matches!(&did[0], Did::LostLease(_)), "{did:?}");
    assert!(
        !did.iter().any(|d| matches!(d, Did::Restarted(_))),
        "{did:?}"
    );
    assert!(!h.node.lock().running, "the recovering server is stopped");
}

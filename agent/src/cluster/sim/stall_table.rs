//! A leader's writes behind a stalled disk (issue 30, the kind of the
//! long local actions): an elected standby's `synchronous_standby_names`
//! and its promotion's confirmation, and a leader's later change of the
//! synchronous set, each waiting longer than the lease's deadline (2 s of
//! a 3 s `ttl`). They keep the lease renewed and the watchdog's deadline
//! ahead of the clock, and complete; with the store out of reach, the
//! wait is dropped at the deadline and the server stopped. Before, each
//! was awaited inside the pass that renews the lease (up to 10 s): the
//! deadline passed unrenewed and the leader's own watchdog stopped the
//! server it had just promoted.

use super::fake::Node;
use super::harness::Harness;
use super::slow_table::fence_watch;
use crate::cluster::dcs::memory::Memory;
use crate::cluster::did::Did;
use parking_lot::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Member m0's running standby at 1000 whose writes take `slow`.
fn stalled_standby(slow: Duration) -> Node {
    let mut node = Node::new(false, 1000);
    node.slow = slow;
    node
}

/// m0's standby at 1000, its writes stalling 8 s each, under synchronous
/// replication, with no leader and m1 a standby behind it: m0 is the one
/// to be elected.
fn to_be_elected_synchronous() -> Harness {
    let h = Harness::configured(
        stalled_standby(Duration::from_secs(8)),
        Memory::client,
        |spec| spec.synchronous = true,
    );
    h.other(1, "standby", 900);
    h.optime(1000);
    h
}

/// m0 leads with its primary, m1 among its synchronous standbys: the lease
/// never lost nor the watchdog's deadline passed (`fired`), whatever `did`.
fn leads_synchronously(h: &Harness, did: &[Did], fired: &Mutex<Option<Instant>>) {
    assert!(
        did.iter()
            .all(|d| !matches!(d, Did::LostLease(_) | Did::Demoted(_) | Did::Released(_))),
        "{did:?}"
    );
    assert_eq!(*fired.lock(), None, "the watchdog's deadline passed");
    assert_eq!(h.holder().as_deref(), Some("m0"));
    let node = h.node.lock().clone();
    assert!(node.running && node.primary, "{node:?}");
    assert!(node.sync_names.contains("\"m1\""), "{:?}", node.sync_names);
}

/// m0 elected (m1 a standby behind it) under synchronous replication,
/// its disk stalling each write for 8 s: made synchronous, promoted and
/// confirmed, the watchdog never past its deadline.
#[tokio::test(start_paused = true)]
async fn an_election_whose_writes_stall_past_the_lease_keeps_it_and_promotes() {
    let mut h = to_be_elected_synchronous();
    let fired = fence_watch(h.node.clone());
    let began = Instant::now();
    let did = h.tick().await;
    assert!(
        began.elapsed() >= Duration::from_secs(16),
        "the writes stalled: {:?}",
        began.elapsed()
    );
    assert!(did.iter().any(|d| matches!(d, Did::Promoted(_))), "{did:?}");
    leads_synchronously(&h, &did, &fired);
    assert_eq!(h.tick().await, vec![Did::Renewed]);
}

/// A leader whose synchronous set grows (a standby began to stream) while
/// its disk stalls each write for 8 s: the set is written, the lease kept.
#[tokio::test(start_paused = true)]
async fn a_leader_whose_synchronous_set_write_stalls_keeps_its_lease() {
    let mut node = Node::new(true, 1000);
    node.slow = Duration::from_secs(8);
    let mut h = Harness::configured(node, Memory::client, |spec| spec.synchronous = true);
    h.leader("m0", Duration::from_secs(3));
    let fired = fence_watch(h.node.clone());
    let mut standby = Node::new(false, 1000);
    standby.name = "m1".into();
    let mut target = h.streaming_target(standby).await;
    let mut did = Vec::new();
    for _ in 0..4 {
        did.extend(h.tick().await);
        target.ha.tick().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    leads_synchronously(&h, &did, &fired);
}

/// The store out of reach while an elected standby's promotion waits on
/// its stalled disk: the wait is dropped at the lease's deadline (not
/// when the disk comes back), the server stopped, nothing recorded as
/// promoted, and the key never released by a node that still may lead.
#[tokio::test(start_paused = true)]
async fn the_store_lost_during_a_stalled_promotion_drops_it_and_stops_the_server() {
    let (mut h, cut) = Harness::cuttable(stalled_standby(Duration::from_secs(20)));
    h.other(1, "standby", 900);
    h.optime(1000);
    cut.after(Duration::from_secs(1));
    let began = Instant::now();
    let did = h.tick().await;
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the promotion was not dropped at the deadline: {:?}",
        began.elapsed()
    );
    assert!(
        did.iter().any(|d| matches!(d, Did::LostLease(_))),
        "{did:?}"
    );
    assert!(
        !did.iter().any(|d| matches!(d, Did::Promoted(_))),
        "{did:?}"
    );
    assert!(
        !h.node.lock().running,
        "the half-promoted server is stopped"
    );
}

/// The reviewer's case: the fence stops being able to signal the server
/// while an elected standby's synchronous setting waits on its stalled
/// disk, before the promotion is asked. The loop's path gives the key up
/// without a stop (never made writable), and the failed step does not give
/// it up a second time: before, the second give-up took the promotion for
/// asked (the first had settled the term) and stopped the standby.
#[tokio::test(start_paused = true)]
async fn a_fence_lost_during_a_stalled_write_before_the_promotion_gives_the_key_up_once() {
    let mut h = to_be_elected_synchronous();
    let node = h.node.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        node.lock().fence_fails = true;
    });
    let did = h.tick().await;
    assert!(
        !did.iter().any(|d| matches!(d, Did::Promoted(_))),
        "{did:?}"
    );
    let failed = did.iter().filter(|d| matches!(d, Did::Failed(_))).count();
    assert_eq!(failed, 1, "given up once: {did:?}");
    assert_eq!(h.holder(), None, "{did:?}");
    let node = h.node.lock().clone();
    assert!(
        node.running && !node.primary,
        "the standby it never asked to promote is left running: {node:?} {did:?}"
    );
}

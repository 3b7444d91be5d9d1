//! Table tests of etcd at its quota (the NOSPACE alarm: writes and lease
//! grants refused, reads and keep-alives served). A refused write must
//! not blind the loop: the leader keeps its key and its primary by the
//! usual lease rule, a member that cannot publish still reads the scope
//! and follows the leader, and once the alarm is cleared every member
//! publishes again. Only an etcd that answers nothing spares the loop's
//! read of the scope.

use super::fake::Node;
use super::harness::Harness;
use crate::cluster::dcs::memory::{Call, Fault, Memory};
use crate::cluster::did::Did;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn at_nospace_a_member_that_cannot_publish_still_follows_the_leader() {
    let mut node = Node::new(false, 500);
    node.running = false;
    let mut h = Harness::new(node);
    h.other(1, "primary", 1000);
    h.leader("m1", Duration::from_secs(30));
    h.store.lock().nospace = true;
    let did = h.tick().await;
    let node = h.node.lock().clone();
    assert!(node.running && !node.primary, "{did:?} {node:?}");
    assert_eq!(
        node.upstream.as_deref(),
        Some("10.0.0.2:5432"),
        "it follows the leader it read: {did:?}"
    );
    assert!(
        h.store.lock().get(&h.keys.member("m0")).is_none(),
        "nothing was written while etcd refuses writes"
    );
    h.store.lock().nospace = false;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.tick().await;
    }
    assert!(
        h.store.lock().get(&h.keys.member("m0")).is_some(),
        "the member publishes again once the alarm is cleared"
    );
}

#[tokio::test(start_paused = true)]
async fn at_nospace_the_leader_keeps_its_key_and_primary_by_its_lease() {
    let mut h = Harness::new(Node::new(true, 1000));
    h.leader("m0", Duration::from_secs(3));
    h.tick().await;
    h.store.lock().nospace = true;
    for _ in 0..12 {
        // The position moves: the optime cannot be written.
        h.node.lock().lsn += 100;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let did = h.tick().await;
        assert!(
            !did.iter()
                .any(|d| matches!(d, Did::LostLease(_) | Did::Demoted(_) | Did::Released(_))),
            "{did:?}"
        );
    }
    assert_eq!(h.holder().as_deref(), Some("m0"));
    let node = h.node.lock().clone();
    assert!(node.running && node.primary, "{node:?}");
}

#[tokio::test(start_paused = true)]
async fn only_a_publish_no_endpoint_answered_spares_the_scope_read() {
    // (the publish's fault, NOSPACE, whether the scope is read after it)
    let rows = [
        (Fault::Unsent(Duration::from_millis(5)), false, false),
        (Fault::AnswerLost(Duration::from_millis(5)), false, true),
        (Fault::None, true, true),
    ];
    for (fault, nospace, read) in rows {
        let put_fault = Arc::new(Mutex::new(Fault::None));
        let reads = Arc::new(AtomicUsize::new(0));
        let (chosen, counted) = (put_fault.clone(), reads.clone());
        let mut h = Harness::with(Node::new(false, 500), |store| {
            Memory::client(store).with_faults(Box::new(move |call: &Call| match call {
                Call::Put(..) => *chosen.lock(),
                Call::Scope(_) => {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Fault::None
                }
                _ => Fault::None,
            }))
        });
        h.other(1, "primary", 1000);
        h.leader("m1", Duration::from_secs(30));
        h.tick().await;
        *put_fault.lock() = fault;
        h.store.lock().nospace = nospace;
        reads.store(0, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let did = h.tick().await;
        assert_eq!(
            reads.load(Ordering::SeqCst) > 0,
            read,
            "{fault:?} nospace={nospace}: {did:?}"
        );
    }
}

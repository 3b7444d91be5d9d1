//! Table tests of decisions made on answers that came late or not at
//! all: a key found this node's a pass after the answer to taking it was
//! lost is checked against the last leader's history before its
//! promotion, as an election's is; a key taken on a stale read of the
//! scope is refused by the store, since the transaction compares the
//! term the decision read.

use super::fake::Node;
use super::harness::Harness;
use crate::cluster::dcs::memory::{Call, Fault, Memory};
use crate::cluster::did::Did;
use std::time::Duration;

fn standby(lsn: u64) -> Node {
    Node::new(false, lsn)
}

/// The same as seed 3239, through a lost answer: the transaction that
/// takes the key is applied but answers "not taken" (resent to another
/// endpoint), and while the key is found this node's only at the next
/// loop, the standby receives WAL past (or up to exactly) the last
/// leader's switch point. The key found ours leads to the same check as
/// an election's right before its promotion: not promoted, the key given
/// up without a stop (never asked), the last leader's term put back.
#[tokio::test(start_paused = true)]
async fn a_key_found_ours_after_a_lost_answer_is_checked_against_the_history_too() {
    for received in [1001, 1000] {
        let mut once = true;
        let mut h = Harness::with_server_faults(standby(999), move |call, node| {
            if super::harness::takes_the_key_for(call, "m0") && std::mem::take(&mut once) {
                node.lock().lsn = received;
                return Fault::Resent;
            }
            Fault::None
        });
        h.store
            .lock()
            .put(&h.keys.timeline, "2:1000:m1", 0)
            .unwrap();
        let did = h.tick().await;
        assert!(
            !did.iter().any(|d| matches!(d, Did::Acquired(_))),
            "{received}: the answer said not taken: {did:?}"
        );
        assert_eq!(h.holder().as_deref(), Some("m0"), "{received}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let did = h.tick().await;
        assert!(
            did.iter().any(|d| matches!(d, Did::Acquired(_))),
            "{received}: {did:?}"
        );
        assert!(
            did.iter().any(
                |d| matches!(d, Did::Failed(why) if why.contains("not promoted: since it was elected"))
            ),
            "{received}: {did:?}"
        );
        assert!(
            !did.iter().any(|d| matches!(d, Did::Promoted(_))),
            "{received}: {did:?}"
        );
        {
            let node = h.node.lock();
            assert!(node.running && !node.primary, "{received}: left a standby");
        }
        assert_eq!(h.holder(), None, "{received}");
        assert_eq!(h.timeline().as_deref(), Some("2:1000:m1"), "{received}");
    }
}

/// Seed 104: an election decided on a stale read of the scope (a late
/// answer) must not take the key: a later term was written meanwhile, and
/// the candidate, on the timeline before at 1001, is past where that term
/// began. The transaction that takes the key compares the `timeline` key
/// with the value the decision was made on, so it fails, and the next
/// pass, on a fresh read, finds this member no candidate. Before, it took
/// the key on the stale term, and a failed promotion then put back the
/// term before the later one.
#[tokio::test(start_paused = true)]
async fn a_key_taken_on_a_stale_read_of_the_term_is_refused_by_the_store() {
    let mut once = true;
    let mut h = Harness::with(standby(1001), |store| {
        let written = store.clone();
        Memory::client(store).with_faults(Box::new(move |call: &Call| {
            if super::harness::takes_the_key_for(call, "m0") && std::mem::take(&mut once) {
                // Another member's term, written after this pass's read.
                // (The harness's `timeline` key, asserted below.)
                written
                    .lock()
                    .put("/watchpost/sim/timeline", "2:1000:m1", 0)
                    .unwrap();
            }
            Fault::None
        }))
    });
    h.store.lock().put(&h.keys.timeline, "1:0:m1", 0).unwrap();
    assert_eq!(h.keys.timeline, "/watchpost/sim/timeline");
    let did = h.tick().await;
    assert!(
        !did.iter().any(|d| matches!(d, Did::Acquired(_))),
        "{did:?}"
    );
    assert_eq!(h.holder(), None);
    assert!(!h.node.lock().primary);
    assert_eq!(h.timeline().as_deref(), Some("2:1000:m1"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let did = h.tick().await;
    assert!(
        did.iter()
            .any(|d| matches!(d, Did::NoCandidate(why) if why.contains("not on the last leader's history"))),
        "{did:?}"
    );
    assert_eq!(h.holder(), None);
    assert_eq!(h.timeline().as_deref(), Some("2:1000:m1"));
}

/// The reviewer's variant: an agent killed after taking the key (its term
/// written, its promotion never asked, in synchronous mode) comes back,
/// takes its key over from that run and promotes. Its server is made
/// synchronous first, as an elected standby's is: before, it was promoted
/// with no standby names, and its first commits waited for no one.
#[tokio::test(start_paused = true)]
async fn a_key_taken_over_from_an_earlier_run_is_made_synchronous_before_its_promotion() {
    use crate::cluster::pending_term::{FILE, PendingTerm};
    let mut h = Harness::configured(standby(1000), Memory::client, |spec| {
        spec.synchronous = true
    });
    h.store
        .lock()
        .put(&h.keys.timeline, "2:1000:m0", 0)
        .unwrap();
    h.other(1, "standby", 1000);
    // The earlier run's key and record: its term taken, never asked.
    h.leader("m0", Duration::from_secs(30));
    let pending = PendingTerm {
        before: crate::cluster::member::LeaderTimeline::parse("1:0:m1"),
        ours: crate::cluster::member::LeaderTimeline::parse("2:1000:m0"),
        asked: false,
    };
    std::fs::write(h._dir.path().join(FILE), pending.text()).unwrap();
    h.restart();
    let did = h.until(4, |d| matches!(d, Did::Promoted(_))).await;
    assert!(h.node.lock().primary, "{did:?}");
    let names = h.node.lock().sync_names.clone();
    assert!(names.contains("\"m1\""), "promoted with {names:?}: {did:?}");
}

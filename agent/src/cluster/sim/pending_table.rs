//! Table tests of a term that never opened ([`crate::cluster::pending`]):
//! a member takes the leader key and writes its term (`T+1:LSN:NAME`) in
//! one transaction, then its node is killed before it promotes, and every
//! server is past `LSN` on timeline `T` by the time its agent is back.
//! The restarted agent reads the record its earlier run left: a promotion
//! never asked proves the term never opened, and its timeline is put back
//! (seeds 7676 and 10327: before, no member was ever a candidate again);
//! a promotion asked may have opened it, and "cannot tell" never counts
//! as "did not open": the term stays.

use super::fake::Node;
use super::harness::Harness;
use crate::cluster::dcs::memory::{Call, Fault, Memory};
use crate::cluster::did::Did;
use crate::cluster::pending_term::{FILE, PendingTerm};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

fn timeline(h: &Harness) -> Option<String> {
    h.store
        .lock()
        .get(&h.keys.timeline)
        .map(|kv| kv.value.clone())
}

#[tokio::test(start_paused = true)]
async fn a_term_whose_node_was_killed_before_its_promotion_is_put_back_by_its_restarted_agent() {
    for asked in [false, true] {
        // The answer to taking the key is lost for longer than the agent
        // lives: applied, then the node is killed mid-call.
        let once = Arc::new(Mutex::new(true));
        let mut h = Harness::with(Node::new(false, 1000), |store| {
            Memory::client(store).with_faults(Box::new(move |call: &Call| match call {
                Call::Txn(when, _, _)
                    if when
                        .iter()
                        .any(|(k, v)| k.ends_with("/leader") && v.is_none())
                        && std::mem::take(&mut *once.lock()) =>
                {
                    Fault::AnswerLost(Duration::from_secs(60))
                }
                _ => Fault::None,
            }))
        });
        h.store.lock().put(&h.keys.timeline, "1:0:m1", 0).unwrap();
        h.other(1, "standby", 900);
        let killed = tokio::time::timeout(Duration::from_secs(1), h.tick()).await;
        assert!(killed.is_err(), "{asked}: the pass was to be cut short");
        assert_eq!(timeline(&h).as_deref(), Some("2:1000:m0"), "{asked}");
        assert_eq!(h.holder().as_deref(), Some("m0"), "{asked}");
        assert!(!h.node.lock().primary, "{asked}: never promoted");
        if asked {
            // Killed right after asking for the promotion instead: the
            // record says so (the fake's promotion never came).
            let dir = h._dir.path();
            let mut pending = PendingTerm::load(dir).unwrap().expect("a record");
            pending.asked = true;
            std::fs::write(dir.join(FILE), pending.text()).unwrap();
        }
        // The node is killed; its lease expires; its server comes back
        // read-only and streams from `m1`'s (the former primary, restarted
        // read-only too) past the switch point the term named.
        {
            let mut node = h.node.lock();
            node.running = false;
        }
        tokio::time::sleep(Duration::from_secs(40)).await;
        {
            let mut node = h.node.lock();
            node.running = true;
            node.lsn = 1100;
        }
        h.other(1, "standby", 1100);
        h.restart();
        let did = h.tick().await;
        let promoted = did.iter().any(|d| matches!(d, Did::Promoted(_)));
        if asked {
            // Whether the term opened cannot be told: it stays, and no
            // member past its switch point is a candidate.
            assert!(!promoted, "{did:?}");
            assert_eq!(timeline(&h).as_deref(), Some("2:1000:m0"));
            assert!(
                did.iter().any(|d| matches!(d, Did::NoCandidate(_))),
                "{did:?}"
            );
        } else {
            // Put back, then the most advanced standby (m0, by name on a
            // tie) takes the key and promotes from 1100.
            assert!(promoted, "{did:?}");
            assert_eq!(timeline(&h).as_deref(), Some("2:1100:m0"));
            assert!(h.node.lock().primary);
            assert_eq!(PendingTerm::load(h._dir.path()), Ok(None));
        }
    }
}

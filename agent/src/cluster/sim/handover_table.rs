//! Table tests of a switchover racing a crash of the old leader's agent:
//! the old leader (`m0`) stopped its server for the hand-over and marked
//! the request `stopped`, then its agent restarted (a new lease) while the
//! key still names it under the old one; the target (`m1`) has replayed
//! past the old leader's end. Whatever the order of their passes, at most
//! one of them makes its server writable.

use super::fake::Node;
use super::harness::Harness;
use crate::cluster::did::Did;
use crate::cluster::switchover::{Outcome, Request, Stage};
use std::time::Duration;

/// Where the old leader's WAL ended (its shutdown checkpoint).
const END: u64 = 1000;

/// Both members as the crash left them: the request `stopped` under the
/// old leader's lease (`leader_lease` in the request as written, or
/// `None` as an older agent wrote it); the old leader's server started
/// again read-only by its restarted agent; the target streaming past END.
fn crashed_during_hand_over(leader_lease: bool) -> (Harness, super::harness::Agent, i64, String) {
    let mut old = Node::new(false, END + 1);
    old.standby_marked = true;
    let h = Harness::new(old);
    let lease = h.leader("m0", Duration::from_secs(30));
    let request = Request {
        id: "r1".into(),
        from: "m0".into(),
        to: "m1".into(),
        at: None,
        stage: Stage::Stopped,
        lsn: Some(END),
        reach: None,
        timeline: Some(1),
        leader_lease: leader_lease.then_some(lease),
    };
    let raw = serde_json::to_string(&request).unwrap();
    h.store
        .lock()
        .put(&h.keys.switchover, &raw, 0)
        .expect("the request is written");
    let mut target = Node::new(false, END + 1);
    target.upstream = Some("10.0.0.1:5432".into());
    target.streaming = true;
    let agent = h.agent(1, target);
    (h, agent, lease, raw)
}

/// The switchover's outcome as written in the store.
fn outcome(h: &Harness) -> Outcome {
    let written = h
        .store
        .lock()
        .get(&h.keys.switchover_result)
        .expect("an outcome")
        .value
        .clone();
    serde_json::from_str(&written).expect("an outcome's JSON")
}

fn primaries(h: &Harness, target: &super::harness::Agent) -> Vec<&'static str> {
    let mut writable = Vec::new();
    for (name, node) in [("m0", &h.node), ("m1", &target.node)] {
        let node = node.lock();
        if node.running && node.primary {
            writable.push(name);
        }
    }
    writable
}

#[tokio::test(start_paused = true)]
async fn the_restarted_old_leader_first_withdraws_the_hand_over_then_leads_alone() {
    let (mut h, mut target, _, _) = crashed_during_hand_over(true);
    let did = h.tick().await;
    target.ha.tick().await;
    assert!(
        primaries(&h, &target).len() <= 1,
        "{:?}",
        primaries(&h, &target)
    );
    assert!(matches!(&did[0], Did::Acquired(_)), "{did:?}");
    assert!(
        did.iter()
            .any(|d| matches!(d, Did::Failed(why) if why.contains("withdrew it"))),
        "{did:?}"
    );
    assert!(h.store.lock().get(&h.keys.switchover).is_none());
    let outcome = outcome(&h);
    assert!(
        !outcome.ok && outcome.message.contains("restarted"),
        "{outcome:?}"
    );
    for _ in 0..4 {
        target.ha.tick().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.tick().await;
        assert!(
            primaries(&h, &target).len() <= 1,
            "{:?}",
            primaries(&h, &target)
        );
    }
    assert_eq!(primaries(&h, &target), ["m0"]);
    assert_eq!(h.holder().as_deref(), Some("m0"));
}

#[tokio::test(start_paused = true)]
async fn the_target_first_takes_over_and_the_restarted_old_leader_follows() {
    let (mut h, mut target, _, _) = crashed_during_hand_over(true);
    let did = target.ha.tick().await;
    assert!(did.iter().any(|d| matches!(d, Did::Promoted(_))), "{did:?}");
    for _ in 0..4 {
        h.tick().await;
        assert!(
            primaries(&h, &target).len() <= 1,
            "{:?}",
            primaries(&h, &target)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        target.ha.tick().await;
    }
    assert_eq!(primaries(&h, &target), ["m1"]);
    assert_eq!(h.holder().as_deref(), Some("m1"));
}

#[tokio::test(start_paused = true)]
async fn a_key_taken_back_under_another_lease_fails_the_targets_take_over() {
    for written_lease in [true, false] {
        let (h, mut target, _, _) = crashed_during_hand_over(written_lease);
        // The target reads the request (and, for an older agent's request,
        // the key's lease) and waits for its replay, while the old
        // leader's key is put under a new lease without the request being
        // withdrawn (an agent of the old code), then the replay passes.
        target.node.lock().lsn = END;
        let (store, node, key) = (h.store.clone(), target.node.clone(), h.keys.leader.clone());
        let meanwhile = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut store = store.lock();
            let fresh = store.grant(Duration::from_secs(30));
            store.put(&key, "m0", fresh).unwrap();
            node.lock().lsn = END + 1;
        });
        let did = target.ha.tick().await;
        meanwhile.await.unwrap();
        assert!(
            !did.iter().any(|d| matches!(d, Did::Promoted(_))),
            "{written_lease}: {did:?}"
        );
        assert_eq!(h.holder().as_deref(), Some("m0"), "{written_lease}");
        assert!(!target.node.lock().primary, "{written_lease}");
    }
}

/// A rolling upgrade: an older agent's request has no `leader_lease`.
/// When the key changed after the old leader stopped (taken back under a
/// new lease by an agent of the old code, the request not withdrawn), the
/// lease it stopped under cannot be known: the target does not take
/// over, and says which agent to upgrade.
#[tokio::test(start_paused = true)]
async fn an_older_agents_request_is_refused_when_the_lease_at_the_stop_cannot_be_read_back() {
    let (h, mut target, _, _) = crashed_during_hand_over(false);
    {
        let mut store = h.store.lock();
        let fresh = store.grant(Duration::from_secs(30));
        store.put(&h.keys.leader, "m0", fresh).unwrap();
    }
    let did = target.ha.tick().await;
    assert!(
        !did.iter().any(|d| matches!(d, Did::Promoted(_))),
        "{did:?}"
    );
    assert!(
        did.iter().any(|d| d.why().contains("upgrade `m0`'s agent")),
        "{did:?}"
    );
    assert_eq!(h.holder().as_deref(), Some("m0"));
    assert!(!target.node.lock().primary);
}

/// A leader whose stream ended at 0 and writes nothing when it stops (a
/// Redis primary with no write since its replicas attached): its request
/// says "replayed up to 0" (`reach`), which its replica at offset 0 has;
/// "past the position before it" could not be said (the `lsn` of older
/// agents, saturated at 0, asked for more than 0, and the hand-over could
/// never complete). Asked, handed over and taken over by both agents.
#[tokio::test(start_paused = true)]
async fn a_switchover_from_a_leader_whose_stream_ended_at_zero_completes() {
    let mut leader = Node::new(true, 0);
    leader.no_shutdown_record = true;
    leader.term_replicated = true;
    let mut h = Harness::new(leader);
    let mut target = Node::new(false, 0);
    target.term_replicated = true;
    let mut target = h.streaming_target(target).await;
    assert_eq!(h.holder().as_deref(), Some("m0"));
    h.switch_over_to(&mut target, 40).await;
    assert_eq!(h.holder().as_deref(), Some("m1"));
    assert_eq!(primaries(&h, &target), ["m1"]);
    let outcome = outcome(&h);
    assert!(outcome.ok, "{outcome:?}");
}

/// The target's last checks before it takes the key, by row: the look
/// that saw its replay reach the old leader's end must show a standby,
/// fit to lead, with a readable term on no newer timeline; where the term
/// is replicated data, exactly the old leader's.
#[test]
fn the_target_takes_over_only_as_a_fit_standby_on_the_old_leaders_term() {
    use crate::cluster::local::Observation;
    use crate::cluster::takeover::unfit_to_take_over;
    let request = Request {
        id: "r".into(),
        from: "m0".into(),
        to: "m1".into(),
        at: None,
        stage: Stage::Stopped,
        lsn: None,
        reach: Some(0),
        timeline: Some(5),
        leader_lease: None,
    };
    let standby = |timeline: Option<u64>, unfit: Option<&str>| Observation {
        answering: true,
        in_recovery: true,
        lsn: Some(0),
        replayed: Some(1),
        timeline,
        unfit: unfit.map(String::from),
        ..Observation::default()
    };
    let primary = Observation {
        in_recovery: false,
        ..standby(Some(5), None)
    };
    // (look, term replicated, refused because)
    let rows: [(Observation, bool, Option<&str>); 8] = [
        (standby(Some(5), None), false, None),
        (standby(Some(5), None), true, None),
        (standby(Some(4), None), false, None),
        // A Redis replica that came back empty: offset 1, the first term.
        (standby(Some(1), None), true, Some("holds term 1")),
        (standby(Some(6), None), false, Some("newer")),
        (standby(None, None), false, Some("cannot be read")),
        (
            standby(Some(5), Some("errant GTIDs 0-7-12")),
            true,
            Some("errant"),
        ),
        (primary, false, Some("not a standby")),
    ];
    for (i, (seen, replicated, refused)) in rows.into_iter().enumerate() {
        let why = unfit_to_take_over(&seen, &request, replicated);
        match refused {
            None => assert_eq!(why, None, "row {i}"),
            Some(word) => assert!(
                why.as_deref().is_some_and(|w| w.contains(word)),
                "row {i}: {why:?}"
            ),
        }
    }
}

//! Table tests of the follower's side ([`crate::cluster::elect`]'s
//! `follow`): a standby that does not stream is rewound only when its
//! WAL may have diverged from the leader's. One shown to be on the
//! leader's timeline (the same number, begun at the same point) is left
//! running, and why it does not stream is recorded once (patroni#2412: a
//! missing `pg_hba.conf` line restarted such a standby every 10 s).

use super::fake::Node;
use super::harness::Harness;
use crate::cluster::did::Did;
use std::time::Duration;

/// m0, a standby of `m1` (the leader, whose term is `term`), that does
/// not stream: what its agent did within 30 passes (15 s), up to the
/// first failure recorded.
async fn not_streaming(timeline: u64, history: Vec<(u64, u64)>, lsn: u64, term: &str) -> Vec<Did> {
    let mut node = Node::new(false, lsn);
    node.timeline = timeline;
    node.history = history;
    let mut h = Harness::new(node);
    h.store.lock().put(&h.keys.timeline, term, 0).unwrap();
    h.other(1, "primary", 2000);
    h.leader("m1", Duration::from_secs(60));
    let did = h.until(30, |d| matches!(d, Did::Failed(_))).await;
    // Nothing the agent does makes the fake stream: it stays a standby.
    let node = h.node.lock();
    assert!(node.running && !node.primary, "{did:?}");
    did
}

#[tokio::test(start_paused = true)]
async fn a_standby_on_the_leaders_timeline_that_does_not_stream_is_not_rewound() {
    // On the leader's timeline 2, begun where the leader's term began.
    let did = not_streaming(2, vec![(1, 900)], 1000, "2:900:m1").await;
    assert!(
        did.iter()
            .any(|d| matches!(d, Did::Failed(why) if why.contains("not rewound nor restarted"))),
        "{did:?}"
    );
    assert!(!did.iter().any(|d| matches!(d, Did::Rewound(_))), "{did:?}");
    // Recorded once, not every pass.
    let failed = did.iter().filter(|d| matches!(d, Did::Failed(_))).count();
    assert_eq!(failed, 1, "{did:?}");
}

#[tokio::test(start_paused = true)]
async fn a_standby_whose_wal_may_have_diverged_is_rewound() {
    // Rows: on timeline 1 past where the leader's term began (diverged);
    // on the leader's number begun elsewhere (another promotion's); the
    // term's start unknown (an older key: not shown).
    type Row<'a> = (u64, Vec<(u64, u64)>, u64, &'a str);
    let rows: [Row; 3] = [
        (1, vec![], 1100, "2:1000:m1"),
        (2, vec![(1, 950)], 1100, "2:1000:m1"),
        (2, vec![(1, 1000)], 1100, "2::m1"),
    ];
    for (timeline, history, lsn, term) in rows {
        let did = not_streaming(timeline, history, lsn, term).await;
        // The fake's rewind finds no server `m1` to rewind from: tried.
        assert!(
            did.iter()
                .any(|d| matches!(d, Did::Failed(why) if why.contains("cannot rejoin"))),
            "{term}: {did:?}"
        );
    }
}

/// A stopped standby of `m1` whose start (its recovery) takes 20 s, well
/// past the lease under which its member key lives (3 s): the member stays
/// published all along, as starting and no candidate (before, the pass
/// blocked in the start and the key vanished with the lease), and once
/// it answers it is published as the healthy standby it is.
#[tokio::test(start_paused = true)]
async fn a_standby_whose_start_outlasts_the_lease_stays_published_as_starting() {
    use crate::cluster::member::Member;
    use parking_lot::Mutex;
    use std::sync::Arc;
    let mut node = Node::new(false, 1000);
    node.running = false;
    node.slow = Duration::from_secs(20);
    let mut h = Harness::new(node);
    h.other(1, "primary", 1000);
    h.leader("m1", Duration::from_secs(60));
    // Every 100 ms of the paused clock: m0's member as published.
    let seen: Arc<Mutex<Vec<Option<Member>>>> = Arc::default();
    let (store, key, log) = (h.store.clone(), h.keys.member("m0"), seen.clone());
    let watch = tokio::spawn(async move {
        loop {
            let member = store
                .lock()
                .get(&key)
                .and_then(|kv| serde_json::from_str::<Member>(&kv.value).ok());
            log.lock().push(member);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    h.tick().await;
    assert!(h.node.lock().running, "the standby was started");
    watch.abort();
    let during = seen.lock().clone();
    assert!(during.len() >= 190, "watched for {} samples", during.len());
    // The first sample may come before the pass published anything.
    for member in &during[1..] {
        let member = member
            .as_ref()
            .expect("m0's member vanished during its start");
        assert_eq!(member.role, "starting");
        assert!(!member.healthy, "published as a candidate while starting");
    }
    h.tick().await;
    let after = h
        .store
        .lock()
        .get(&h.keys.member("m0"))
        .map(|kv| kv.value.clone());
    let after: Member = serde_json::from_str(&after.unwrap()).unwrap();
    assert_eq!(after.role, "standby");
}

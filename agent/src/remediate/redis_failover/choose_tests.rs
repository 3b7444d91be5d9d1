//! Table tests of [`super::choose`]: which replica a Redis failover
//! promotes, and every refusal, by the facts each case gives.

use super::*;

fn seen(name: &str, link_up: bool, replid: &str, offset: u64) -> Replica {
    Replica::Read(Seen {
        name: name.into(),
        replica: true,
        source: Some(("10.0.0.1".into(), 6379)),
        link_up,
        replid: replid.into(),
        offset,
    })
}

fn input(primary: Primary, replicas: Vec<Replica>) -> Input<'static> {
    Input {
        primary,
        primary_address: ("10.0.0.1", 6379),
        preferred: "r1",
        replicas,
        max_lag_bytes: 100,
    }
}

fn gone() -> Primary {
    Primary::Gone("connection refused".into())
}

/// (case, primary, replicas, the chosen one or the refusal's words)
type Case = (
    &'static str,
    Primary,
    Vec<Replica>,
    Result<&'static str, &'static str>,
);

#[test]
fn the_decision_as_a_table() {
    let elsewhere = Replica::Read(Seen {
        name: "r3".into(),
        replica: true,
        source: Some(("10.0.0.9".into(), 6379)),
        link_up: true,
        replid: "B".into(),
        offset: 900,
    });
    let promoted_by_hand = Replica::Read(Seen {
        name: "r3".into(),
        replica: false,
        source: None,
        link_up: false,
        replid: "C".into(),
        offset: 5000,
    });
    let unreadable = Replica::Unreadable {
        name: "r2".into(),
        why: "connection refused".into(),
    };
    // (case, primary, replicas, chosen or the refusal's words)
    let cases: Vec<Case> = vec![
        (
            "highest offset wins",
            gone(),
            vec![seen("r1", false, "A", 10), seen("r2", false, "A", 50)],
            Ok("r2"),
        ),
        (
            "ties go to the configured one",
            gone(),
            vec![seen("r2", false, "A", 50), seen("r1", false, "A", 50)],
            Ok("r1"),
        ),
        (
            "an alive primary",
            Primary::Alive("BUSY".into()),
            vec![seen("r1", false, "A", 10)],
            Err("alive (BUSY)"),
        ),
        (
            "cannot tell is not down",
            Primary::CannotTell("no reply".into()),
            vec![seen("r1", false, "A", 10)],
            Err("cannot be told"),
        ),
        (
            "a replica still linked",
            gone(),
            vec![seen("r1", false, "A", 10), seen("r2", true, "A", 10)],
            Err("still linked"),
        ),
        (
            "replids disagree",
            gone(),
            vec![seen("r1", false, "A", 10), seen("r2", false, "B", 90)],
            Err("different replication ids"),
        ),
        (
            "over the lag limit",
            gone(),
            vec![
                seen("r1", false, "A", 10),
                Replica::Read(Seen {
                    source: Some(("10.0.0.7".into(), 1)),
                    ..match seen("r2", false, "A", 500) {
                        Replica::Read(s) => s,
                        _ => unreachable!(),
                    }
                }),
            ],
            Err("490 bytes behind"),
        ),
        (
            "none readable",
            gone(),
            vec![unreadable.clone()],
            Err("`r2` cannot be read"),
        ),
        (
            "an unreadable one is cannot tell, never skipped (a split: it may be linked)",
            gone(),
            vec![seen("r1", false, "A", 10), unreadable.clone()],
            Err("`r2` cannot be read"),
        ),
        (
            "an unreadable one refuses whatever its place",
            gone(),
            vec![
                unreadable,
                seen("r1", false, "A", 10),
                seen("r3", false, "A", 10),
            ],
            Err("`r2` cannot be read"),
        ),
        (
            "an earlier promotion whose reply was lost",
            gone(),
            vec![
                seen("r1", false, "A", 10),
                Replica::Read(Seen {
                    name: "r2".into(),
                    replica: false,
                    source: None,
                    link_up: false,
                    replid: "A2".into(),
                    offset: 10,
                }),
            ],
            Err("`r2` already claims to be a primary"),
        ),
        (
            "a replica of another primary is not a candidate",
            gone(),
            vec![seen("r1", false, "A", 10), elsewhere],
            Ok("r1"),
        ),
        (
            "a server promoted by hand refuses",
            gone(),
            vec![promoted_by_hand.clone()],
            Err("`r3` already claims to be a primary"),
        ),
        (
            "a server promoted by hand refuses beside a candidate",
            gone(),
            vec![seen("r1", false, "A", 10), promoted_by_hand],
            Err("`r3` already claims to be a primary"),
        ),
        (
            "no replicas at all",
            gone(),
            vec![],
            Err("none is configured"),
        ),
    ];
    for (case, primary, replicas, expected) in cases {
        let got = choose(&input(primary, replicas));
        match (expected, got) {
            (Ok(name), Ok(choice)) => assert_eq!(choice.name, name, "{case}"),
            (Err(words), Err(refusal)) => {
                let text = refusal.to_string();
                assert!(text.contains(words), "{case}: {text}");
            }
            (expected, got) => panic!("{case}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[test]
fn loopback_names_are_one_host() {
    let mut i = input(gone(), vec![]);
    i.primary_address = ("127.0.0.1", 6379);
    i.replicas = vec![Replica::Read(Seen {
        name: "r1".into(),
        replica: true,
        source: Some(("localhost".into(), 6379)),
        link_up: false,
        replid: "A".into(),
        offset: 1,
    })];
    assert_eq!(choose(&i).unwrap().name, "r1");
}

/// splitmix64: a small deterministic generator for the simulation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A primary with three replicas takes writes that reach each replica
/// with random delays; then a fault: the primary is killed, frozen,
/// busy, partitioned from the agent only, or one replica is cut off
/// early, reset by hand, or unreadable. Whatever happens, the decision
/// never promotes beside a primary that answers or cannot be told,
/// never promotes a replica of another history, and the one it
/// promotes holds every write any candidate holds.
#[test]
fn a_seeded_simulation_with_injected_faults() {
    let mut promoted = 0;
    for seed in 0..5000u64 {
        let mut rng = Rng(seed);
        let writes = rng.below(2000);
        let mut offsets = [0u64; 3];
        for offset in &mut offsets {
            *offset = writes - rng.below(writes.min(200) + 1);
        }
        let mut replids = ["A"; 3];
        let mut sources = [true; 3];
        let mut unreadable = [false; 3];
        let mut linked = [false; 3];
        let fault = rng.below(7);
        let primary = match fault {
            0 | 5 | 6 => gone(),
            1 => Primary::CannotTell("accepted, no reply (SIGSTOP)".into()),
            2 => Primary::Alive("BUSY".into()),
            3 => {
                // The agent is cut off from the primary; a replica is not.
                linked[rng.below(3) as usize] = true;
                gone()
            }
            _ => Primary::Alive("max number of clients reached".into()),
        };
        let victim = rng.below(3) as usize;
        match fault {
            5 => {
                // Reset by hand: a primary of its own, a new history.
                replids[victim] = "Z";
                sources[victim] = false;
                offsets[victim] += rng.below(10_000);
            }
            6 => {
                // Unreadable to the agent; on the far side of a split
                // it may still be linked to the primary.
                unreadable[victim] = true;
                linked[victim] = rng.below(2) == 0;
            }
            _ => {}
        }
        let replicas: Vec<Replica> = (0..3)
            .map(|i| {
                let name = format!("r{}", i + 1);
                if unreadable[i] {
                    return Replica::Unreadable {
                        name,
                        why: "timeout".into(),
                    };
                }
                Replica::Read(Seen {
                    name,
                    replica: sources[i],
                    source: sources[i].then(|| ("10.0.0.1".to_string(), 6379)),
                    link_up: linked[i],
                    replid: replids[i].into(),
                    offset: offsets[i],
                })
            })
            .collect();
        let mut i = input(primary.clone(), replicas.clone());
        i.max_lag_bytes = 1 << 20;
        match choose(&i) {
            Ok(choice) => {
                promoted += 1;
                assert!(
                    matches!(primary, Primary::Gone(_)),
                    "seed {seed}: {primary:?}"
                );
                assert!(!linked.contains(&true), "seed {seed}");
                assert!(!unreadable.contains(&true), "seed {seed}");
                assert!(sources.iter().all(|s| *s), "seed {seed}");
                assert_eq!(choice.replid, "A", "seed {seed}");
                for r in &replicas {
                    if let Replica::Read(s) = r
                        && s.replid == "A"
                    {
                        assert!(choice.offset >= s.offset, "seed {seed}: {choice:?} {s:?}");
                    }
                }
                // A second firing (the promote's reply lost, or the
                // block over) sees the promoted one as a primary.
                let mut again = replicas.clone();
                for r in &mut again {
                    if let Replica::Read(s) = r
                        && s.name == choice.name
                    {
                        s.replica = false;
                        s.source = None;
                    }
                }
                let mut i = input(primary.clone(), again);
                i.max_lag_bytes = 1 << 20;
                assert_eq!(
                    choose(&i),
                    Err(Refusal::AnotherPrimary(choice.name.clone())),
                    "seed {seed}"
                );
            }
            Err(refusal) => assert!(
                fault != 0,
                "seed {seed}: refused a clean failover: {refusal}"
            ),
        }
    }
    assert!(
        promoted > 500,
        "the simulation promoted only {promoted} times"
    );
}

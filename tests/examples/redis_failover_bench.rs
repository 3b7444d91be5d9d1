//! The Redis failover benchmark, side by side with Redis Sentinel on the
//! same machine: a primary and two replicas (`redis-server`, `--save ''`,
//! `--repl-diskless-sync-delay 0`), `kill -9` of the primary, and the time
//! to the first successful `SET` on a new primary, polled every 100 ms by
//! the benchmark itself on every replica (the peers' clock).
//!
//! - Watchpost: the timings of `examples/redis-failover.toml`
//!   (`redis-alive` every 250 ms, 400 ms deadline, `for = 3`);
//! - Sentinel: three sentinels, quorum 2, at its tuned minimum
//!   (`down-after-milliseconds 1000`) and with its defaults (30 s).
//!
//! ```sh
//! cargo run --release -p watchpost-e2e --example redis_failover_bench -- 3
//! ```
//!
//! The argument is the number of rounds (default 3; Sentinel's defaults
//! get one round less, at least one: each takes over 30 s). Prints one
//! JSON line per round and a summary line per contender; `cargo xtask
//! bench --only redis-failover` runs it. Sentinel is Debian's
//! `redis-sentinel`, or `redis-server --sentinel` when that is missing.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for};
use watchpost_e2e::redis::Redis;
use watchpost_e2e::sentinel::{Place, Sentinel};

/// The longest a failover may take before the round is called failed
/// (Sentinel's defaults: 30 s to notice, then the election).
const LIMIT: Duration = Duration::from_secs(120);

fn agent_config(primary: &Redis, replicas: &[&Redis]) -> String {
    let target = |name: &str, server: &Redis| {
        format!(
            "[targets.{name}]\nkind = \"redis\"\ndsn = \"{url}\"\nadmin_dsn = \"{url}\"\n\n",
            url = server.url()
        )
    };
    target("primary", primary)
        + &target("replica", replicas[0])
        + &target("replica2", replicas[1])
        + "[[probe]]\nname = \"alive-primary\"\nwasm = \"builtin:redis-alive\"\nevery = \"250ms\"\n\
           timeout = \"400ms\"\ntargets = [\"primary\"]\nfor = 3\nflapping = { enabled = false }\n\n\
           [[remediation]]\nname = \"failover\"\non = { probe = \"alive-primary\", status = \"critical\" }\n\
           action = { failover = \"replica\", primary = \"primary\", replicas = [\"replica2\"], fence = \"none\", \
           max_lag_bytes = 1048576, write_within = \"10s\", block_for = \"1h\", rejoin_within = \"0s\" }\n\
           cooldown = \"1m\"\n"
}

/// A primary and two linked replicas.
fn servers() -> (Redis, Redis, Redis) {
    let primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    let replica2 = Redis::replica_of(&primary);
    primary.cli(&["SET", "bench", "0"]);
    (primary, replica, replica2)
}

/// Kill the primary; the time until one of `replicas` acknowledges a SET.
fn kill_and_time(primary: &mut Redis, replicas: &[&Redis]) -> Duration {
    let killed = Instant::now();
    primary.kill9();
    loop {
        for replica in replicas {
            if replica.try_cli(&["SET", "bench", "1"]).as_deref() == Some("OK") {
                return killed.elapsed();
            }
        }
        assert!(killed.elapsed() < LIMIT, "no write within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn watchpost_round() -> Duration {
    let (mut primary, replica, replica2) = servers();
    let agent = Agent::start(&agent_config(&primary, &[&replica, &replica2]));
    wait_for("alive-primary to be ok", PATIENCE, || {
        agent
            .probe("alive-primary")
            .filter(|p| p["hard_status"] == "ok" && p["counters"]["runs"].as_u64() >= Some(4))
    });
    let took = kill_and_time(&mut primary, &[&replica, &replica2]);
    wait_for("the failover record", PATIENCE, || {
        agent.audit_of("failover", "succeeded").into_iter().next()
    });
    took
}

fn sentinel_round(down_after_ms: Option<u64>) -> Duration {
    let (mut primary, replica, replica2) = servers();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| {
            Sentinel::start(
                dir.path(),
                &Place {
                    netns: None,
                    bind: "127.0.0.1",
                    primary: &format!("127.0.0.1 {}", primary.port()),
                    down_after_ms,
                },
            )
        })
        .collect();
    wait_for("the sentinels to see the set", PATIENCE * 2, || {
        sentinels.iter().all(Sentinel::ready).then_some(())
    });
    kill_and_time(&mut primary, &[&replica, &replica2])
}

fn summary(name: &str, mut all: Vec<f64>) {
    all.sort_by(f64::total_cmp);
    println!(
        "{{\"benchmark\":\"{name}\",\"rounds\":{},\"median_ms\":{:.0},\"min_ms\":{:.0},\"max_ms\":{:.0}}}",
        all.len(),
        all[all.len() / 2],
        all[0],
        all[all.len() - 1]
    );
}

/// (benchmark name, rounds, one round)
type Contender = (&'static str, usize, Box<dyn Fn() -> Duration>);

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("rounds: a number"))
        .unwrap_or(3);
    let contenders: [Contender; 3] = [
        ("redis-failover", rounds, Box::new(watchpost_round)),
        (
            "redis-sentinel-1s",
            rounds,
            Box::new(|| sentinel_round(Some(1000))),
        ),
        (
            "redis-sentinel-defaults",
            rounds.saturating_sub(1).max(1),
            Box::new(|| sentinel_round(None)),
        ),
    ];
    for (name, n, round) in contenders {
        let mut all = Vec::new();
        for i in 0..n {
            let took = round();
            println!(
                "{{\"benchmark\":\"{name}\",\"round\":{i},\"ms\":{}}}",
                took.as_millis()
            );
            all.push(took.as_secs_f64() * 1000.0);
        }
        summary(name, all);
    }
}

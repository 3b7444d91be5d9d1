//! The MariaDB pair failover benchmark, on real `mariadbd` servers: the
//! time from `kill -9` of the primary to the first successful write on
//! the promoted replica, polled every 100 ms by the benchmark itself (the
//! peers' clock), with the timings of `examples/mariadb-failover.toml`
//! (a `SELECT 1` probe every 250 ms, 400 ms deadline, `for = 3`).
//!
//! ```sh
//! cargo run --release -p watchpost-e2e --example mysql_failover_bench -- 5
//! ```
//!
//! The argument is the number of rounds (default 3). Prints one JSON line
//! per round and a summary line; `cargo xtask bench --only mysql-failover`
//! runs it.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for, wasm};
use watchpost_e2e::mariadb::pair::{Pair, slave_status};

fn config(pair: &Pair) -> String {
    let target = |name: &str, server: &watchpost_e2e::mariadb::Server| {
        format!(
            "[targets.{name}]\nkind = \"mysql\"\ndsn = \"{}\"\nadmin_dsn = \"{}\"\n\n",
            server.dsn(),
            server.dsn_as("root")
        )
    };
    target("primary", &pair.primary)
        + &target("replica", &pair.replica)
        + &format!(
            "[[probe]]\nname = \"alive-primary\"\nwasm = \"{}\"\nevery = \"250ms\"\ntimeout = \"400ms\"\n\
             targets = [\"primary\"]\nfor = 3\nflapping = {{ enabled = false }}\n\
             config = {{ sql = \"SELECT 1\", target = \"primary\" }}\n\n\
             [[remediation]]\nname = \"failover\"\non = {{ probe = \"alive-primary\", status = \"critical\" }}\n\
             action = {{ failover = \"replica\", primary = \"primary\", fence = \"none\", max_lag_bytes = 1048576, \
             apply_within = \"30s\", write_within = \"10s\", block_for = \"1h\", rejoin_within = \"0s\" }}\n\
             cooldown = \"1m\"\n",
            wasm("sqlrun")
        )
}

fn round() -> Duration {
    let mut pair = Pair::start();
    pair.primary
        .execute("CREATE TABLE app.bench (id int PRIMARY KEY AUTO_INCREMENT, at datetime(6))");
    pair.wait_caught_up(&pair.replica);
    let agent = Agent::start(&config(&pair));
    wait_for("alive-primary to be ok", PATIENCE, || {
        agent
            .probe("alive-primary")
            .filter(|p| p["hard_status"] == "ok" && p["counters"]["runs"].as_u64() >= Some(4))
    });
    let killed = Instant::now();
    pair.primary.kill();
    // The test servers' root may write on a replica too (SUPER is exempt
    // from read_only): a write counts once the replica was promoted (it
    // replicates from no one: RESET SLAVE ALL ran).
    loop {
        let promoted = slave_status(&pair.replica).is_empty()
            && pair
                .replica
                .try_execute("INSERT INTO app.bench (at) VALUES (NOW(6))")
                .is_ok();
        if promoted {
            break;
        }
        assert!(killed.elapsed() < PATIENCE, "no write within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = killed.elapsed();
    wait_for("the failover record", PATIENCE, || {
        agent.audit_of("failover", "succeeded").into_iter().next()
    });
    took
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("rounds: a number"))
        .unwrap_or(3);
    let mut all = Vec::new();
    for i in 0..rounds {
        let took = round();
        println!(
            "{{\"benchmark\":\"mysql-failover\",\"round\":{i},\"ms\":{}}}",
            took.as_millis()
        );
        all.push(took.as_secs_f64() * 1000.0);
    }
    all.sort_by(f64::total_cmp);
    println!(
        "{{\"benchmark\":\"mysql-failover\",\"rounds\":{},\"median_ms\":{:.0},\"min_ms\":{:.0},\"max_ms\":{:.0}}}",
        all.len(),
        all[all.len() / 2],
        all[0],
        all[all.len() - 1]
    );
}

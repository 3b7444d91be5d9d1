//! The failover and restart benchmark, on a real primary + streaming
//! standby pair with the settings shipped in `examples/postgres-failover.toml`
//! (read from that file, so that what is measured is what ships):
//!
//! 1. failover: the time from `pg_ctl stop -m immediate` of the primary to
//!    the first successful `CREATE TABLE ...; INSERT` on the promoted
//!    standby, polled every 100 ms;
//! 2. restart: the time from SIGKILL of the primary's postmaster to the
//!    server accepting connections again after the agent's restart action,
//!    polled every 100 ms.
//!
//! ```sh
//! cargo run --release -p watchpost-e2e --example failover_bench -- 5
//! ```
//!
//! The argument is the number of rounds of each (default 3). Prints one
//! JSON line per round and a summary line; `cargo xtask bench` runs it.

use std::path::Path;
use std::time::{Duration, Instant};
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for};
use watchpost_e2e::pg::{PgPair, SUPERUSER};

const PG_CTL: &str = "/usr/lib/postgresql/15/bin/pg_ctl";

/// The shipped example with its DSNs and data directory pointed at `pair`.
fn shipped_config(pair: &PgPair) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/postgres-failover.toml");
    let text = std::fs::read_to_string(&path).expect("read examples/postgres-failover.toml");
    let mut out = String::new();
    let mut section = String::new();
    for line in text.lines() {
        if line.starts_with('[') {
            section = line.to_string();
        }
        let replaced = match (section.as_str(), line.split_once(" = ")) {
            ("[agent]", Some(("listen", _))) => {
                "listen = \"{LISTEN}\"\nstate_dir = \"{STATE}\"".to_string()
            }
            ("[targets.primary]", Some(("dsn", _))) => format!("dsn = \"{}\"", pair.primary.dsn()),
            ("[targets.primary]", Some(("data_dir", _))) => {
                format!("data_dir = \"{}\"", pair.primary.data_dir().display())
            }
            ("[targets.standby]", Some(("dsn", _))) => {
                format!("dsn = \"{}\"", pair.standby.dsn_as(SUPERUSER, None))
            }
            _ => line.to_string(),
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    out
}

/// Poll `attempt` every 100 ms from `since`; the elapsed time at success.
fn poll(since: Instant, what: &str, mut attempt: impl FnMut() -> bool) -> Duration {
    loop {
        if attempt() {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < PATIENCE,
            "{what} did not happen within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_alive(agent: &Agent) {
    wait_for("alive-primary to be ok", PATIENCE, || {
        agent
            .probe("alive-primary")
            .filter(|p| p["hard_status"] == "ok" && p["counters"]["runs"].as_u64() >= Some(4))
    });
}

fn failover_round() -> Duration {
    let mut pair = PgPair::start();
    let agent = Agent::start(&shipped_config(&pair));
    wait_alive(&agent);
    let stopped = Instant::now();
    pair.primary.kill();
    let took = poll(stopped, "a write on the promoted standby", || {
        pair.standby
            .try_value("CREATE TABLE IF NOT EXISTS after_failover (id int); INSERT INTO after_failover VALUES (1); SELECT 1")
            .is_ok()
    });
    wait_for("the failover record", PATIENCE, || {
        agent.audit_of("failover", "succeeded").into_iter().next()
    });
    pair.standby.set_running(true);
    took
}

fn restart_round() -> Duration {
    let mut pair = PgPair::start();
    let shipped = shipped_config(&pair);
    // The shipped probe, with a restart action instead of the failover.
    let probe_and_targets = shipped
        .split("[[remediation]]")
        .next()
        .expect("the example has a probe")
        .to_string();
    let config = format!(
        "{probe_and_targets}[[remediation]]\nname = \"restart\"\non = {{ probe = \"alive-primary\", status = \"critical\" }}\naction = {{ restart = \"pg_ctl\", pg_ctl = \"{PG_CTL}\", target = \"primary\", timeout = \"60s\" }}\ncooldown = \"5m\"\n"
    );
    let agent = Agent::start(&config);
    wait_alive(&agent);
    let pid = pair.primary.postmaster_pid().expect("the primary runs");
    let killed = Instant::now();
    // SAFETY: kill(2) on the benchmark's own PostgreSQL postmaster.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let took = poll(
        killed,
        "the restarted primary to accept connections",
        || pair.primary.postmaster_pid() != Some(pid) && pair.primary.try_value("SELECT 1").is_ok(),
    );
    pair.primary.set_running(true);
    took
}

fn summary(name: &str, rounds: &[Duration]) -> String {
    let mut ms: Vec<f64> = rounds.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    format!(
        "{{\"benchmark\":\"{name}\",\"rounds\":{},\"median_ms\":{median:.0},\"min_ms\":{:.0},\"max_ms\":{:.0}}}",
        ms.len(),
        ms[0],
        ms[ms.len() - 1]
    )
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("rounds: a number"))
        .unwrap_or(3);
    let mut failovers = Vec::new();
    let mut restarts = Vec::new();
    for round in 0..rounds {
        let took = failover_round();
        println!(
            "{{\"benchmark\":\"failover\",\"round\":{round},\"ms\":{}}}",
            took.as_millis()
        );
        failovers.push(took);
        let took = restart_round();
        println!(
            "{{\"benchmark\":\"restart\",\"round\":{round},\"ms\":{}}}",
            took.as_millis()
        );
        restarts.push(took);
    }
    println!("{}", summary("failover", &failovers));
    println!("{}", summary("restart", &restarts));
}

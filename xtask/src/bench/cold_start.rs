//! Cold start: from spawning the agent to every one of 10 probes having
//! reported once (its status API polled every 2 ms), with an empty compile
//! cache and then with the cache the first start left.

use super::agent::{RunningAgent, fresh_state};
use super::stats::median_range;
use super::{Built, Options, Row};
use std::time::{Duration, Instant};

const PROBES: usize = 10;

pub fn run(built: &Built, options: &Options) -> Result<Vec<Row>, String> {
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for round in 0..options.rounds {
        eprintln!("xtask: cold start, round {}", round + 1);
        let state = fresh_state(built, "cold-start-state")?;
        for times in [&mut cold, &mut warm] {
            let started = Instant::now();
            let agent = RunningAgent::start(built, "cold-start", PROBES, "1h", &state)?;
            let took = agent.wait_all_run(PROBES, started, Duration::from_millis(2))?;
            times.push(took.as_secs_f64() * 1000.0);
            agent.stop();
        }
    }
    Ok(vec![
        Row::new(
            "cold start to first report, 10 probes, empty cache",
            median_range(&cold, "ms", 0),
            "",
        ),
        Row::new(
            "cold start to first report, 10 probes, warm cache",
            median_range(&warm, "ms", 0),
            "goal < 200 ms",
        ),
    ])
}

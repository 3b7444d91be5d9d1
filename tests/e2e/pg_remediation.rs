//! Remediation against real PostgreSQL: restarting a killed server,
//! failing over to a standby in recorded steps, refusing to fail over when
//! the standby lags, no failover for a short freeze or a full server, and
//! no split brain when the old primary is started by hand.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for};
use watchpost_e2e::pg::{PgPair, SUPERUSER};

const PG_CTL: &str = "/usr/lib/postgresql/15/bin/pg_ctl";

/// Targets for a pair seen from the primary's node. The standby target
/// connects as superuser: promoting needs it.
fn targets(pair: &PgPair) -> String {
    format!(
        "[targets.primary]\ndsn = \"{}\"\ndata_dir = \"{}\"\n\n[targets.standby]\ndsn = \"{}\"\n\n",
        pair.primary.dsn(),
        pair.primary.data_dir().display(),
        pair.standby.dsn_as(SUPERUSER, None)
    )
}

/// The failover settings shipped in examples/postgres-failover.toml: a
/// check every 250 ms, three failures in a row before acting.
fn alive_probe() -> &'static str {
    "[[probe]]\nname = \"alive-primary\"\nwasm = \"builtin:pg-alive\"\nevery = \"250ms\"\ntimeout = \"400ms\"\ntargets = [\"primary\"]\nfor = 3\nflapping = { enabled = false }\n\n"
}

fn failover_remediation() -> String {
    format!(
        "[[remediation]]\nname = \"failover\"\non = {{ probe = \"alive-primary\", status = \"critical\" }}\naction = {{ failover = \"standby\", primary = \"primary\", fence = \"pg_ctl\", pg_ctl = \"{PG_CTL}\", max_lag_bytes = 1048576, write_within = \"10s\", block_for = \"1h\" }}\ncooldown = \"1s\"\n"
    )
}

/// An agent watching `pair` with the failover remediation, once it has
/// seen the primary alive.
fn start_failover_agent(pair: &PgPair) -> Agent {
    let agent = Agent::start(&format!(
        "{}{}{}",
        targets(pair),
        alive_probe(),
        failover_remediation()
    ));
    wait_alive_ok(&agent);
    agent
}

fn wait_alive_ok(agent: &Agent) {
    wait_for("alive-primary to be ok", PATIENCE, || {
        agent
            .probe("alive-primary")
            .filter(|p| p["hard_status"] == "ok" && p["counters"]["runs"].as_u64() >= Some(2))
    });
}

#[test]
fn a_killed_primary_is_restarted_and_verified_with_one_record_pair() {
    let mut pair = PgPair::start();
    let config = format!(
        "{}{}[[remediation]]\nname = \"restart\"\non = {{ probe = \"alive-primary\", status = \"critical\" }}\naction = {{ restart = \"pg_ctl\", pg_ctl = \"{PG_CTL}\", target = \"primary\", timeout = \"60s\" }}\nverify = {{ probe = \"alive-primary\", within = \"30s\" }}\ncooldown = \"5m\"\n",
        targets(&pair),
        alive_probe()
    );
    let agent = Agent::start(&config);
    wait_alive_ok(&agent);
    let pid = pair.primary.postmaster_pid().expect("the primary runs");
    // SAFETY: kill(2) on the test's own PostgreSQL postmaster.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let started = Instant::now();
    let done = loop {
        if let Some(done) = agent.audit_of("restart", "succeeded").into_iter().next() {
            break done;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the restart was not verified: {:#?}\n{}\n{}",
            agent.audit(),
            agent.log(),
            pair.primary.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["detail"]["verified"], true, "{done:#}");
    assert_eq!(pair.primary.try_value("SELECT 1").as_deref(), Ok("1"));
    assert_ne!(
        pair.primary.postmaster_pid(),
        Some(pid),
        "a new postmaster runs"
    );
    std::thread::sleep(Duration::from_secs(1));
    let records: Vec<_> = agent
        .audit()
        .into_iter()
        .filter(|r| r["remediation"] == "restart")
        .collect();
    let decisions: Vec<&str> = records
        .iter()
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, vec!["fired", "succeeded"], "{records:#?}");
    assert_eq!(records[0]["id"], records[1]["id"]);
    pair.primary.set_running(true);
}

#[test]
fn a_stopped_primary_fails_over_in_recorded_steps_once() {
    let mut pair = PgPair::start();
    let agent = start_failover_agent(&pair);
    pair.primary.execute(
        "CREATE TABLE before_failover (id int PRIMARY KEY); INSERT INTO before_failover VALUES (1)",
    );
    pair.wait_for_replay();
    let stopped = Instant::now();
    pair.primary.kill();
    // The promoted standby takes a write.
    let took = loop {
        let write = pair.standby.try_value("CREATE TABLE IF NOT EXISTS after_failover (id int); INSERT INTO after_failover VALUES (1); SELECT 1");
        if write.is_ok() {
            break stopped.elapsed();
        }
        assert!(
            stopped.elapsed() < PATIENCE,
            "no write on the standby: {write:?}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let done = wait_for("the failover to finish", PATIENCE, || {
        agent.audit_of("failover", "succeeded").into_iter().next()
    });
    let steps: Vec<(String, bool)> = agent
        .audit_of("failover", "step")
        .iter()
        .map(|s| {
            (
                s["reason"].as_str().unwrap().to_string(),
                s["detail"]["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec!["pre-check", "fence", "promote", "verify-write"],
        "{steps:?}"
    );
    assert!(steps.iter().all(|(_, ok)| *ok), "{steps:?}");
    assert!(
        done["message"]
            .as_str()
            .unwrap()
            .contains("promoted `standby`"),
        "{done:#}"
    );
    assert_eq!(
        pair.standby.value("SELECT count(*) FROM before_failover"),
        "1",
        "no data lost"
    );
    eprintln!("failover: write accepted {took:?} after the primary stopped");

    // No split brain: the old primary, started by hand, comes back in
    // recovery (or not at all), never read-write.
    if pair.primary.try_start() {
        let recovery = pair.primary.try_value("SELECT pg_is_in_recovery()");
        assert_eq!(
            recovery.as_deref(),
            Ok("t"),
            "the old primary came back read-write"
        );
        let write = pair.primary.try_value("CREATE TABLE split_brain (id int)");
        assert!(write.is_err(), "the old primary accepted a write");
        // It is seen alive again; then it fails a second time within
        // block_for: no second failover.
        wait_for("alive-primary to recover", PATIENCE, || {
            agent
                .probe("alive-primary")
                .filter(|p| p["hard_status"] == "ok")
        });
        pair.primary.kill();
        let blocked = wait_for("a blocked failover", PATIENCE, || {
            agent
                .audit_of("failover", "skipped")
                .into_iter()
                .find(|r| r["reason"] == "blocked")
        });
        assert!(
            blocked["message"]
                .as_str()
                .unwrap()
                .contains("failovers are blocked"),
            "{blocked:#}"
        );
    }
    assert_eq!(agent.audit_of("failover", "fired").len(), 1);
    let view = agent.json("/v1/remediations");
    assert!(
        view["remediations"][0]["failover_blocked_until"].is_string(),
        "{view:#}"
    );
    pair.standby.set_running(true);
}

#[test]
fn a_lagging_standby_is_not_promoted() {
    let mut pair = PgPair::start();
    let agent = start_failover_agent(&pair);
    pair.standby.pause_replay();
    pair.primary.execute("CREATE TABLE bulk AS SELECT g AS id, repeat('x', 500) AS pad FROM generate_series(1, 10000) g");
    watchpost_e2e::pg::wait_until(
        Duration::from_secs(30),
        "the standby to receive but not replay",
        || {
            pair.standby
                .value(
                    "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())",
                )
                .parse::<f64>()
                .unwrap_or(0.0)
                > 1048576.0
        },
    );
    pair.primary.kill();
    let failed = wait_for("a refused failover", PATIENCE, || {
        agent.audit_of("failover", "failed").into_iter().next()
    });
    assert!(
        failed["message"].as_str().unwrap().contains("bytes behind"),
        "{failed:#}"
    );
    let pre_check = &agent.audit_of("failover", "step")[0];
    assert_eq!(
        (
            pre_check["reason"].as_str(),
            pre_check["detail"]["ok"].as_bool()
        ),
        (Some("pre-check"), Some(false))
    );
    assert_eq!(
        pair.standby.value("SELECT pg_is_in_recovery()"),
        "t",
        "the standby was not promoted"
    );
}

#[test]
fn a_short_freeze_of_the_primary_causes_no_failover() {
    let pair = PgPair::start();
    let agent = start_failover_agent(&pair);
    let pid = pair.primary.postmaster_pid().unwrap();
    // Frozen for 700 ms: at most two failed checks of the three needed.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(700));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    wait_for("alive-primary to be ok again", PATIENCE, || {
        agent
            .probe("alive-primary")
            .filter(|p| p["status"] == "ok" && p["hard_status"] == "ok")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        agent.audit_of("failover", "fired").is_empty(),
        "{:#?}",
        agent.audit()
    );
    assert_eq!(pair.standby.value("SELECT pg_is_in_recovery()"), "t");
}

#[test]
fn a_primary_refusing_connections_causes_no_failover() {
    let pair = PgPair::start();
    let agent = start_failover_agent(&pair);
    let mut held = Vec::new();
    while let Ok(client) = pair.primary.connect_as(watchpost_e2e::pg::MONITOR_USER) {
        held.push(client);
        assert!(held.len() <= 20);
    }
    wait_for("alive-primary to warn", PATIENCE, || {
        agent
            .probe("alive-primary")
            .filter(|p| p["hard_status"] == "warning")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        agent.audit_of("failover", "fired").is_empty(),
        "{:#?}",
        agent.audit()
    );
    drop(held);
    assert_eq!(pair.standby.value("SELECT pg_is_in_recovery()"), "t");
}

#[test]
fn load_balancer_endpoints_follow_the_roles() {
    let pair = PgPair::start();
    let replication = "[[probe]]\nname = \"replication\"\nwasm = \"builtin:pg-replication\"\nevery = \"250ms\"\ntimeout = \"2s\"\ntargets = [\"primary\", \"standby\"]\n\n";
    // The primary's node.
    let primary_node = Agent::start(&format!(
        "[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\nlocal_target = \"primary\"\n\n{}{}",
        targets(&pair),
        alive_probe()
    ));
    // The standby's node: its local server is the standby.
    let standby_alive = "[[probe]]\nname = \"alive-standby\"\nwasm = \"builtin:pg-alive\"\nevery = \"250ms\"\ntimeout = \"1s\"\ntargets = [\"standby\"]\nconfig = { target = \"standby\" }\n\n";
    let standby_node = Agent::start(&format!(
        "[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\nlocal_target = \"standby\"\n\n{}{}{}",
        targets(&pair),
        standby_alive,
        replication
    ));
    let code = |agent: &Agent, path: &str| agent.get(path).unwrap().0;
    wait_for("the primary's node to say primary", PATIENCE, || {
        (code(&primary_node, "/v1/role/primary") == 200).then_some(())
    });
    assert_eq!(code(&primary_node, "/v1/role/replica"), 503);
    wait_for("the standby's node to say replica", PATIENCE, || {
        (code(&standby_node, "/v1/role/replica?max_lag=1048576") == 200).then_some(())
    });
    assert_eq!(code(&standby_node, "/v1/role/primary"), 503);
    // Replay paused and writes going on: out of the pool for a tight lag.
    pair.standby.pause_replay();
    pair.primary.execute("CREATE TABLE lb AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 5000) g");
    wait_for("the replica check to fail", PATIENCE, || {
        (code(&standby_node, "/v1/role/replica?max_lag=1024") == 503).then_some(())
    });
    let (_, body) = standby_node.get("/v1/role/replica?max_lag=1024").unwrap();
    assert!(
        body.contains("paused") || body.contains("bytes behind"),
        "{body}"
    );
    pair.standby.resume_replay();
}

/// Targets whose standby is reached through `proxy`.
fn targets_via(pair: &PgPair, proxy: &watchpost_e2e::proxy::StallingProxy) -> String {
    targets(pair).replace(
        &format!("port={}", pair.standby.port()),
        &format!("port={}", proxy.port),
    )
}

/// Wait until the standby is a writable primary; how long it took.
fn wait_writable(pair: &PgPair, since: Instant, agent: &Agent) -> Duration {
    loop {
        let write = pair.standby.try_value(
            "CREATE TABLE IF NOT EXISTS after_failover (id int); INSERT INTO after_failover VALUES (1); SELECT 1",
        );
        if write.is_ok() {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < PATIENCE,
            "no write on the standby: {write:?}\n{:#?}\n{}",
            agent.audit(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_slow_action_elsewhere_does_not_delay_the_failover() {
    let mut pair = PgPair::start();
    let busy = format!(
        "[[probe]]\nname = \"other\"\nwasm = \"{}\"\nevery = \"100ms\"\nconfig = {{ status = \"critical\" }}\n\n[[remediation]]\nname = \"slow\"\non = {{ probe = \"other\", status = \"critical\" }}\naction = {{ exec = [\"sleep\", \"60\"], timeout = \"90s\" }}\n\n",
        watchpost_e2e::agent::wasm("flip")
    );
    let agent = Agent::start(&format!(
        "{}{}{busy}{}",
        targets(&pair),
        alive_probe(),
        failover_remediation()
    ));
    wait_alive_ok(&agent);
    wait_for("the slow action to start", PATIENCE, || {
        agent.audit_of("slow", "fired").into_iter().next()
    });
    let stopped = Instant::now();
    pair.primary.kill();
    let took = wait_writable(&pair, stopped, &agent);
    let done = wait_for("the failover to finish", PATIENCE, || {
        agent.audit_of("failover", "succeeded").into_iter().next()
    });
    assert!(
        agent.audit_of("slow", "succeeded").is_empty(),
        "the slow action is still running"
    );
    // The same bound as alone: three 250 ms checks, then the steps.
    assert!(took < Duration::from_secs(15), "{took:?}: {done:#}");
    eprintln!("failover beside a 60 s action: write accepted {took:?} after the primary stopped");
    pair.standby.set_running(true);
}

#[test]
fn a_standby_that_stops_answering_fails_the_failover_at_its_bounded_step() {
    let mut pair = PgPair::start();
    let proxy = watchpost_e2e::proxy::StallingProxy::start(pair.standby.port());
    let agent = Agent::start(&format!(
        "{}{}{}",
        targets_via(&pair, &proxy),
        alive_probe(),
        failover_remediation()
    ));
    wait_alive_ok(&agent);
    proxy.stall(true);
    let stopped = Instant::now();
    pair.primary.kill();
    let failed = wait_for("the failover to fail", Duration::from_secs(60), || {
        agent.audit_of("failover", "failed").into_iter().next()
    });
    let took = stopped.elapsed();
    let step = &agent.audit_of("failover", "step")[0];
    assert_eq!(step["reason"], "pre-check", "{step:#}");
    assert_eq!(step["detail"]["ok"], false, "{step:#}");
    // Three checks (~1 s), then the pre-check's limit (10 s).
    assert!(took < Duration::from_secs(20), "{took:?}: {failed:#}");
    // The agent goes on: probes run and the API answers.
    let runs = agent.probe("alive-primary").unwrap()["counters"]["runs"]
        .as_u64()
        .unwrap();
    agent.wait_for_runs("alive-primary", runs + 4);
    assert_eq!(pair.standby.value("SELECT pg_is_in_recovery()"), "t");
    pair.primary.set_running(false);
}

#[test]
fn sigterm_after_the_fence_is_reported_as_interrupted_at_the_next_start() {
    let mut pair = PgPair::start();
    // A post step that outlasts the shutdown grace (20 s), so the failover
    // is still running when the agent has to stop.
    let config = format!(
        "{}{}[[remediation]]\nname = \"failover\"\non = {{ probe = \"alive-primary\", status = \"critical\" }}\naction = {{ failover = \"standby\", primary = \"primary\", fence = \"pg_ctl\", pg_ctl = \"{PG_CTL}\", max_lag_bytes = 1048576, write_within = \"10s\", post = [{{ exec = [\"sleep\", \"60\"], timeout = \"90s\" }}] }}\n",
        targets(&pair),
        alive_probe(),
    );
    let mut agent = Agent::start(&config);
    wait_alive_ok(&agent);
    pair.primary.kill();
    let fired = wait_for("the fence step record", PATIENCE, || {
        agent
            .audit_of("failover", "step")
            .into_iter()
            .find(|r| r["reason"] == "fence")
    });
    let asked = Instant::now();
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(), 0, "{}", agent.log());
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(28), "stopping took {took:?}");
    assert!(agent.audit_of("failover", "succeeded").is_empty());
    assert!(agent.audit_of("failover", "failed").is_empty());
    agent.spawn();
    let interrupted = wait_for("an interrupted record", PATIENCE, || {
        agent.audit_of("failover", "interrupted").into_iter().next()
    });
    assert_eq!(interrupted["id"], fired["id"]);
    assert!(
        agent.log().contains("interrupted"),
        "logged as an error:\n{}",
        agent.log()
    );
    // Never re-run on its own: no second fire.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(agent.audit_of("failover", "fired").len(), 1);
    pair.standby.set_running(true);
}

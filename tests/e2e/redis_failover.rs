//! The Redis failover of a primary and its replicas (issue 28, item 3),
//! on real `redis-server` instances: a `kill -9` of the primary promotes
//! one replica once (the primary's replication id, the highest offset),
//! repoints the other and the new primary acknowledges a `SET`; a frozen
//! primary (`SIGSTOP`: it accepts connections and answers nothing) cannot
//! be told from a slow one and is never failed over by the agent, nor is
//! one that stalls a few seconds and resumes; a busy
//! script (`BUSY`) is a primary refusing, alive, never failed over; an
//! old primary restarted after a failover without `replicaof` is a second
//! primary (the split-brain count reads 2) until the agent makes it a
//! replica (1 again); an operator's switchover (`FAILOVER TO`) trades
//! the places; a replica the agent cannot read (it may be linked to the
//! primary across a split) is "cannot tell" and nothing is promoted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for};
use watchpost_e2e::redis::Redis;
use watchpost_e2e::report::check;

/// An agent watching `primary` with `redis-alive` every 250 ms, the
/// failover on three results at `status` (`critical`, or `warning` to
/// fire on a refusing primary too); `replicas[0]` is the configured
/// `failover` target, the others `replicas`.
fn start_agent(primary: &Redis, replicas: &[&Redis], status: &str) -> Agent {
    let target = |name: &str, server: &Redis| {
        format!(
            "[targets.{name}]\nkind = \"redis\"\ndsn = \"{url}\"\nadmin_dsn = \"{url}\"\n\n",
            url = server.url()
        )
    };
    let mut config = target("primary", primary);
    let mut others = Vec::new();
    for (i, replica) in replicas.iter().enumerate() {
        let name = if i == 0 {
            "replica".to_string()
        } else {
            format!("replica{}", i + 1)
        };
        config += &target(&name, replica);
        if i > 0 {
            others.push(format!("\"{name}\""));
        }
    }
    config += &format!(
        "[[probe]]\nname = \"alive-primary\"\nwasm = \"builtin:redis-alive\"\nevery = \"250ms\"\n\
         timeout = \"400ms\"\ntargets = [\"primary\"]\nfor = 3\nflapping = {{ enabled = false }}\n\n\
         [[remediation]]\nname = \"failover\"\non = {{ probe = \"alive-primary\", status = \"{status}\" }}\n\
         action = {{ failover = \"replica\", primary = \"primary\", replicas = [{}], fence = \"none\", \
         write_within = \"10s\", block_for = \"1h\", apply_within = \"10s\", rejoin_within = \"2m\" }}\n\
         cooldown = \"1s\"\n",
        others.join(", ")
    );
    let agent = Agent::start(&config);
    wait_for("the agent's first runs", PATIENCE, || {
        agent
            .probe("alive-primary")
            .filter(|p| p["counters"]["runs"].as_u64() >= Some(2))
    });
    agent
}

/// The first record of the failover with `decision`.
fn first(agent: &Agent, decision: &str) -> serde_json::Value {
    agent.first_record("failover", decision, PATIENCE * 2)
}

/// Step records named `name` (the record's `reason`).
fn steps(agent: &Agent, name: &str) -> Vec<serde_json::Value> {
    agent.steps("failover", name)
}

fn role(redis: &Redis) -> String {
    redis.info("replication", "role").unwrap_or_default()
}

/// How many of `servers` claim to be primary, as `redis-replication`
/// counts across its granted targets (the split-brain count).
fn primaries(servers: &[&Redis]) -> f64 {
    let mut args = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        // The probe reads its own `target` (default `primary`) in full.
        let name = if i == 0 {
            "primary".to_string()
        } else {
            format!("s{i}")
        };
        args.push("--target".to_string());
        args.push(format!("{name}={}", server.url()));
    }
    let checked = check(Path::new("builtin:redis-replication"), &args);
    checked.measurements("redis.replication.primaries")[0]["value"]
        .as_f64()
        .expect("the split-brain count")
}

#[test]
fn kill_9_promotes_one_replica_repoints_the_other_and_the_new_primary_takes_a_set() {
    let mut primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    let replica2 = Redis::replica_of(&primary);
    primary.cli(&["SET", "before", "1"]);
    wait_for("the replicas to have the write", PATIENCE, || {
        (replica.try_cli(&["GET", "before"]).as_deref() == Some("1")
            && replica2.try_cli(&["GET", "before"]).as_deref() == Some("1"))
        .then_some(())
    });
    let agent = start_agent(&primary, &[&replica, &replica2], "critical");
    primary.kill9();
    let done = first(&agent, "succeeded");
    let promotions = steps(&agent, "promote");
    assert_eq!(promotions.len(), 1, "{promotions:#?}");
    let chosen = done["detail"]["new_primary"].as_str().unwrap().to_string();
    let (new, other) = if chosen == "replica" {
        (&replica, &replica2)
    } else {
        assert_eq!(chosen, "replica2", "{done:#}");
        (&replica2, &replica)
    };
    assert_eq!(role(new), "master");
    let check = &steps(&agent, "pre-check")[0];
    assert_eq!(
        check["detail"]["detail"]["replid"].as_str(),
        new.info("replication", "master_replid2").as_deref(),
        "the chosen one's history is the old primary's: {check:#}"
    );
    // The other follows the new primary.
    assert_eq!(steps(&agent, "repoint")[0]["detail"]["ok"], true);
    assert_eq!(role(other), "slave");
    assert_eq!(
        other.info("replication", "master_port"),
        Some(new.port().to_string())
    );
    // An acknowledged write on the new primary reaches the other replica.
    assert_eq!(new.cli(&["SET", "after", "2"]), "OK");
    wait_for("the other replica to have the write", PATIENCE, || {
        (other.try_cli(&["GET", "after"]).as_deref() == Some("2")).then_some(())
    });
    assert_eq!(new.cli(&["GET", "before"]), "1");
    assert!(
        new.cli(&["GET", "watchpost:failover_check"])
            .contains(&chosen)
    );
    // Still one promotion: the block holds while the old primary is away.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(steps(&agent, "promote").len(), 1);
}

#[test]
fn a_replica_the_agent_cannot_read_is_cannot_tell_and_nothing_is_promoted() {
    let mut primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    let mut replica2 = Redis::replica_of(&primary);
    replica.wait_linked();
    replica2.wait_linked();
    let agent = start_agent(&primary, &[&replica, &replica2], "critical");
    // Out of the agent's reach, as on the far side of a split: it may
    // still be linked to the primary, which then keeps taking writes.
    replica2.kill9();
    primary.kill9();
    let refused = first(&agent, "failed");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("`replica2` cannot be read"), "{message}");
    assert!(message.contains("cannot tell"), "{message}");
    assert!(steps(&agent, "promote").is_empty());
    assert_eq!(role(&replica), "slave");
}

#[test]
fn a_frozen_primary_cannot_be_told_and_is_not_failed_over() {
    let primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    let agent = start_agent(&primary, &[&replica], "critical");
    primary.pause(true);
    let refused = first(&agent, "failed");
    primary.pause(false);
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("cannot be told"), "{message}");
    assert!(message.contains("did not answer PING"), "{message}");
    assert!(steps(&agent, "promote").is_empty());
    assert_eq!(role(&primary), "master");
    assert_eq!(role(&replica), "slave");
    replica.wait_linked();
}

/// A primary that only stalls (`SIGSTOP` for a few seconds, then
/// `SIGCONT`): its alive results turn critical by timeouts and may start
/// the failover, whose check finds the primary's address still accepting
/// (cannot be told from a slow primary) or its replica still linked, and
/// refuses; once it resumes the primary answers again as primary with its
/// replica linked, and nothing was promoted.
#[test]
fn a_primary_stalled_a_few_seconds_then_resumed_is_not_failed_over() {
    let primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    let agent = start_agent(&primary, &[&replica], "critical");
    let runs = |agent: &Agent| {
        agent
            .probe("alive-primary")
            .and_then(|p| p["counters"]["runs"].as_u64())
            .unwrap_or(0)
    };
    primary.pause(true);
    // The stall: seen by the probe (a timeout), then two seconds more,
    // several of its 400 ms timeouts, past its `for = 3`.
    wait_for("a critical result of the stalled primary", PATIENCE, || {
        agent
            .probe("alive-primary")
            .filter(|p| p["last_report"]["status"] == "critical")
    });
    std::thread::sleep(Duration::from_secs(2));
    primary.pause(false);
    let resumed_at = runs(&agent);
    wait_for("an ok result after the stall", PATIENCE, || {
        agent.probe("alive-primary").filter(|p| {
            p["counters"]["runs"].as_u64() > Some(resumed_at + 1)
                && p["last_report"]["status"] == "ok"
        })
    });
    // Whether the failover was started during the stall or not, it
    // refused: the primary was never found gone.
    for refused in agent.audit_of("failover", "failed") {
        let message = refused["message"].as_str().unwrap();
        assert!(message.contains("not failing over"), "{message}");
    }
    assert!(steps(&agent, "promote").is_empty());
    assert!(agent.audit_of("failover", "succeeded").is_empty());
    assert_eq!(role(&primary), "master");
    assert_eq!(role(&replica), "slave");
    replica.wait_linked();
    assert_eq!(primary.cli(&["SET", "after-the-stall", "1"]), "OK");
}

#[test]
fn a_busy_script_is_refusing_not_down_and_is_not_failed_over() {
    let primary = Redis::with_args(&["--busy-reply-threshold", "100"]);
    let replica = Redis::replica_of(&primary);
    let agent = start_agent(&primary, &[&replica], "warning");
    let mut script = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &primary.port().to_string()])
        .args(["EVAL", "while true do end", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-cli");
    let refused = first(&agent, "failed");
    let _ = primary.try_cli(&["SCRIPT", "KILL"]);
    let _ = script.kill();
    let _ = script.wait();
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("is alive"), "{message}");
    assert!(message.contains("BUSY"), "{message}");
    assert!(steps(&agent, "promote").is_empty());
    // `SCRIPT KILL` answers before the script stops (at its next hook):
    // until then the server still answers BUSY (seen in a loaded CI run).
    wait_for(
        "the primary to answer after its script is killed",
        PATIENCE,
        || (role(&primary) == "master").then_some(()),
    );
    assert_eq!(role(&replica), "slave");
}

#[test]
fn an_old_primary_restarted_without_replicaof_is_made_a_replica() {
    let mut primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    let agent = start_agent(&primary, &[&replica], "critical");
    primary.kill9();
    first(&agent, "succeeded");
    // The agent is frozen while the old primary comes back as a primary
    // of its own, as a server restarted by hand without `replicaof` does.
    agent.signal(libc::SIGSTOP);
    primary.launch();
    assert_eq!(role(&primary), "master");
    assert_eq!(primaries(&[&primary, &replica]), 2.0);
    agent.signal(libc::SIGCONT);
    let rejoin = wait_for("a rejoin record", PATIENCE * 2, || {
        agent.audit().into_iter().find(|r| r["reason"] == "rejoin")
    });
    assert_eq!(rejoin["decision"], "step", "{rejoin:#}");
    assert_eq!(role(&primary), "slave");
    assert_eq!(
        primary.info("replication", "master_port"),
        Some(replica.port().to_string())
    );
    assert_eq!(primaries(&[&primary, &replica]), 1.0);
    // Its writes are no longer paused: it is a replica that serves reads.
    replica.cli(&["SET", "k", "v"]);
    wait_for("the rejoined server to have the write", PATIENCE, || {
        (primary.try_cli(&["GET", "k"]).as_deref() == Some("v")).then_some(())
    });
}

#[test]
fn a_switchover_asked_by_an_operator_trades_the_places() {
    let primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    let replica2 = Redis::replica_of(&primary);
    primary.cli(&["SET", "before", "1"]);
    let agent = start_agent(&primary, &[&replica, &replica2], "critical");
    let (status, body) = agent.post("/v1/remediations/failover/switchover");
    assert_eq!(status, 202, "{body}");
    let done = wait_for("the switchover's outcome", PATIENCE * 2, || {
        agent.audit().into_iter().find(|r| {
            r["action"] == "switchover"
                && (r["decision"] == "succeeded" || r["decision"] == "failed")
        })
    });
    assert_eq!(done["decision"], "succeeded", "{:#?}", agent.audit());
    assert_eq!(role(&replica), "master");
    assert_eq!(role(&primary), "slave");
    assert_eq!(
        primary.info("replication", "master_port"),
        Some(replica.port().to_string())
    );
    assert_eq!(
        replica2.info("replication", "master_port"),
        Some(replica.port().to_string())
    );
    assert_eq!(replica.cli(&["GET", "before"]), "1");
    assert_eq!(replica.cli(&["SET", "after", "2"]), "OK");
    primary.wait_linked();
    wait_for("the old primary to have the write", PATIENCE, || {
        (primary.try_cli(&["GET", "after"]).as_deref() == Some("2")).then_some(())
    });
}

/// `examples/redis-failover.toml`, pointed at three real servers with the
/// example's ACL users: valid; `validate` checks each server's fencing
/// over the failover's own login and warns about the one without
/// `min-replicas-to-write`, and only about it.
#[test]
fn the_failover_example_is_valid_and_its_fencing_is_checked() {
    use std::os::unix::fs::PermissionsExt;
    let fenced = [
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "10",
    ];
    let primary = Redis::with_args(&fenced);
    let port = primary.port().to_string();
    let mut args = fenced.to_vec();
    args.extend(["--replicaof", "127.0.0.1", &port]);
    let replica = Redis::with_args(&args);
    replica.wait_linked();
    let replica2 = Redis::replica_of(&primary);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/redis-failover.toml");
    let example = std::fs::read_to_string(&path).expect("read the example");
    let acls: Vec<String> = example
        .lines()
        .filter_map(|l| {
            l.trim_start_matches('#')
                .trim()
                .strip_prefix("ACL SETUSER ")
        })
        .map(|l| l.replace(">PASSWORD", ">secret"))
        .collect();
    assert_eq!(acls.len(), 2, "the example's two ACL users");
    for server in [&primary, &replica, &replica2] {
        for acl in &acls {
            let mut command = vec!["ACL", "SETUSER"];
            command.extend(acl.split_whitespace());
            assert_eq!(server.cli(&command), "OK");
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = example.clone();
    for name in ["redis-password", "redis-admin-password"] {
        let file = dir.path().join(name);
        std::fs::write(&file, "secret\n").expect("write a password");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the password");
        config = config.replace(
            &format!("/etc/watchpost/{name}"),
            &file.display().to_string(),
        );
    }
    for (i, server) in [&primary, &replica, &replica2].iter().enumerate() {
        config = config.replace(
            &format!("10.0.0.{}:6379", i + 1),
            &format!("127.0.0.1:{}", server.port()),
        );
    }
    let file = dir.path().join("redis-failover.toml");
    std::fs::write(&file, config).expect("write the config");
    let outcome = watchpost_e2e::cli::watchpost_run(&[
        "validate".to_string(),
        "-c".to_string(),
        file.display().to_string(),
    ]);
    assert_eq!(outcome.code, 0, "{}\n{}", outcome.stdout, outcome.stderr);
    let warnings: Vec<&str> = outcome
        .stderr
        .lines()
        .filter(|l| l.contains("min-replicas"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", outcome.stderr);
    assert!(warnings[0].contains("target `replica2`"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("min-replicas-to-write is 0"),
        "{}",
        warnings[0]
    );
    for text in [
        "every = \"250ms\"",
        "timeout = \"400ms\"",
        "for = 3",
        "min-replicas-to-write 1",
    ] {
        assert!(example.contains(text), "{text} not in the example");
    }
}

//! Audit log rotation keeps the durability contract: 200,000 records
//! across many rotated files are each read exactly once, in order, by
//! `watchpost events --json` (through the running agent's `/v1/events`);
//! a writer killed with SIGKILL again and again while it rotates every
//! few records loses none of the records it had acknowledged.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use watchpost::events::Decision;
use watchpost::remediate::audit::{AuditLog, AuditRecord, Rotation, read_all};
use watchpost_e2e::agent::Agent;
use watchpost_e2e::cli::watchpost;

const RECORDS: usize = 200_000;

fn record(id: String) -> AuditRecord {
    AuditRecord {
        id,
        at: SystemTime::now(),
        node: "n".into(),
        remediation: "bulk".into(),
        probe: "p".into(),
        decision: Decision::DryRun,
        reason: None,
        action: "exec".into(),
        status: watchpost::report::Status::Critical,
        message: "would have run".into(),
        detail: serde_json::Value::Null,
    }
}

#[test]
fn two_hundred_thousand_records_across_rotations_are_each_read_once() {
    let mut agent = Agent::start("");
    agent.signal(libc::SIGTERM);
    agent.wait_exit();
    let rotation = Rotation {
        max_bytes: 4 << 20,
        keep: 1000,
    };
    {
        let log = AuditLog::open_with(&agent.state_dir(), rotation).unwrap();
        let all: Vec<AuditRecord> = (0..RECORDS).map(|i| record(format!("r{i}"))).collect();
        for chunk in all.chunks(20_000) {
            log.append_all(chunk).unwrap();
        }
    }
    let rotated = std::fs::read_dir(agent.state_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("audit.log.0"))
        .count();
    assert!(rotated >= 5, "only {rotated} rotated files");
    // The log's own reader: every record across the rotated files, once,
    // in order.
    let log = AuditLog::open_with(&agent.state_dir(), rotation).unwrap();
    let ids: Vec<String> = log
        .tail(RECORDS + 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids.len(), RECORDS);
    assert!(ids.iter().enumerate().all(|(i, id)| *id == format!("r{i}")));
    drop(log);

    // The command and the API serve the newest records, at most
    // MAX_EVENTS (1,000) per request (issue 14: a request cannot make the
    // agent read or hold the whole log).
    agent.spawn();
    let output = watchpost()
        .args(["events", "-n", "1000", "--json", "-c"])
        .arg(agent.config_path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1000);
    let first = RECORDS - 1000;
    assert!(
        ids.iter()
            .enumerate()
            .all(|(i, id)| *id == format!("r{}", first + i))
    );
    let events = agent.json_large(&format!("/v1/events?limit={}", RECORDS + 10));
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1000);
    assert_eq!(events[0]["id"], format!("r{first}"));
    assert_eq!(events[999]["id"], format!("r{}", RECORDS - 1));
}

/// Run by [`a_kill_during_rotation_loses_no_acknowledged_record`] in a
/// child process of this test binary: append records forever, rotating
/// every few records, printing each id once its append returned.
#[test]
fn writer_child() {
    let Ok(dir) = std::env::var("WATCHPOST_AUDIT_WRITER") else {
        return;
    };
    let round = std::env::var("WATCHPOST_AUDIT_ROUND").unwrap();
    let rotation = Rotation {
        max_bytes: 2048,
        keep: 1_000_000,
    };
    let log = AuditLog::open_with(Path::new(&dir), rotation).unwrap();
    let mut out = std::io::stdout().lock();
    for n in 0.. {
        let id = format!("w{round}-{n}");
        log.append(&record(id.clone())).unwrap();
        use std::io::Write;
        writeln!(out, "ack {id}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn a_kill_during_rotation_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = Vec::new();
    for (round, run_for) in [150u64, 400, 650, 900].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "audit_rotation::writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("WATCHPOST_AUDIT_WRITER", dir.path())
            .env("WATCHPOST_AUDIT_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ack ").map(String::from))
                .collect::<Vec<_>>()
        });
        let started = Instant::now();
        // Kill only once it has written (and so rotated) for a while.
        std::thread::sleep(Duration::from_millis(run_for));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        assert!(
            !acked.is_empty(),
            "round {round}: nothing written in {:?}",
            started.elapsed()
        );
        acknowledged.extend(acked);
    }
    // Opening repairs a torn last line, as the agent does at start.
    let log = AuditLog::open(dir.path()).unwrap();
    let records = read_all(log.path()).unwrap();
    let mut seen = HashSet::new();
    for record in &records {
        assert!(seen.insert(record.id.clone()), "{} read twice", record.id);
    }
    for id in &acknowledged {
        assert!(seen.contains(id), "acknowledged {id} was lost");
    }
    let rotated = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(rotated > 20, "only {rotated} files: too few rotations");
}

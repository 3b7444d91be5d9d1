//! The planned hand-over of a Redis primary to its replica, asked for by
//! an operator (`watchpost switchover NAME`, `POST
//! /v1/remediations/NAME/switchover`, as for MariaDB), by Redis's own
//! `FAILOVER TO HOST PORT TIMEOUT MS` (Redis ≥ 6.2, Valkey): the primary
//! pauses its writes, waits until the replica has its offset, and the two
//! trade places; past `apply_within` the primary aborts the hand-over and
//! goes on as the primary. The agent checks both first (the primary
//! answers, the replica is linked to it), waits for the trade, repoints
//! the other replicas and verifies a write on the new primary.

use super::choose::same_host;
use super::server::Admins;
use super::steps;
use super::{CONNECT, Promoted, failed, ok};
use crate::config::{FailoverAction, RedisFailover};
use crate::remediate::failover::Step;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Run the switchover's steps, each passed to `record` as it completes.
/// Ok when the replica took the primary's place and takes writes.
pub async fn run(
    admins: &Admins,
    action: &FailoverAction,
    redis: &RedisFailover,
    record: &mut (dyn FnMut(&Step) + Send),
) -> Result<Promoted, String> {
    let mut run = |step: Step| {
        record(&step);
        if step.ok { Ok(()) } else { Err(step.message) }
    };
    let limit = CONNECT * 4;
    let checked = tokio::time::timeout(limit, pre_check(admins, action)).await;
    let (step, target) = checked.unwrap_or_else(|_| {
        (
            failed(
                "pre-check",
                format!("did not finish within {limit:?}"),
                Value::Null,
            ),
            None,
        )
    });
    run(step)?;
    let (host, port) = target.ok_or("the pre-check found no replica entry")?;
    let limit = redis.apply_within + CONNECT * 4;
    let hand_over = tokio::time::timeout(limit, hand_over(admins, action, redis, &host, port));
    run(hand_over.await.unwrap_or_else(|_| {
        failed(
            "promote",
            format!("did not finish within {limit:?}"),
            Value::Null,
        )
    }))?;
    let mut failures = Vec::new();
    for replica in &redis.replicas {
        let step = steps::repoint(admins, replica, &action.standby).await;
        record(&step);
        if !step.ok {
            failures.push(step.message);
        }
    }
    let step = steps::verify_write(admins, &action.standby, action.write_within).await;
    record(&step);
    if !step.ok {
        return Err(format!(
            "`{}` took the primary's place but {}",
            action.standby, step.message
        ));
    }
    Ok(Promoted {
        new_primary: action.standby.clone(),
        failures,
    })
}

/// The primary answers and is one; the replica is linked to it, and the
/// primary lists it (`slaveN:ip=..,port=..`): that entry's address, which
/// `FAILOVER TO` must name as the primary sees it.
async fn pre_check(admins: &Admins, action: &FailoverAction) -> (Step, Option<(String, u16)>) {
    let (old, new) = (&action.primary, &action.standby);
    let fail = |message: String, detail: Value| (failed("pre-check", message, detail), None);
    let replica = async {
        let mut server = admins.connect(new, CONNECT).await?;
        server.seen(CONNECT).await
    };
    let seen = match replica.await {
        Ok(seen) => seen,
        Err(e) => {
            return fail(
                format!("the replica `{new}` cannot be read: {e}"),
                Value::Null,
            );
        }
    };
    if !seen.replica || !seen.link_up {
        return fail(
            format!(
                "the replica `{new}` is not linked to a primary (role {}, link {}): a switchover needs a healthy replica",
                if seen.replica { "replica" } else { "primary" },
                if seen.link_up { "up" } else { "down" }
            ),
            Value::Null,
        );
    }
    let primary = async {
        let mut server = admins.connect(old, CONNECT).await?;
        server.info("replication", CONNECT).await
    };
    let info = match primary.await {
        Ok(info) => info,
        Err(e) => {
            return fail(
                format!(
                    "the primary `{old}` cannot be read ({e}): that is a failover, not a switchover"
                ),
                Value::Null,
            );
        }
    };
    if info.get("role").map(String::as_str) != Some("master") {
        return fail(format!("`{old}` is not a primary"), Value::Null);
    }
    let (new_host, new_port) = match admins.address(new) {
        Ok(address) => address,
        Err(e) => return fail(e.to_string(), Value::Null),
    };
    // The primary lists its replicas by IP address: the configured name's
    // addresses, if it resolves in time (if not, only the name itself).
    let resolved: Vec<IpAddr> = tokio::time::timeout(
        CONNECT,
        tokio::net::lookup_host((new_host.as_str(), new_port)),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|found| found.map(|a| a.ip()).collect())
    .unwrap_or_default();
    let entries = replica_entries(&info);
    let detail = json!({"replicas_of_primary": entries.iter().map(|(h, p)| format!("{h}:{p}")).collect::<Vec<_>>(),
                        "replica_offset": seen.offset, "replid": seen.replid});
    match find_entry(entries, &new_host, new_port, &resolved) {
        Some(entry) => (
            ok(
                "pre-check",
                format!(
                    "`{old}` is the primary and lists `{new}` as {}:{}, which is linked to it",
                    entry.0, entry.1
                ),
                detail,
            ),
            Some(entry),
        ),
        None => fail(
            format!(
                "the primary `{old}` does not list `{new}` ({new_host}:{new_port}) among its replicas (host and port must both match)"
            ),
            detail,
        ),
    }
}

/// The entry of `entries` (a primary's replicas, `(ip, port)`) that is
/// the configured replica `host:port`: the same port and the same host,
/// by name (loopback names are one host) or by one of `resolved`, the
/// addresses `host` resolves to. A replica on another host with the same
/// port is not it.
fn find_entry(
    entries: Vec<(String, u16)>,
    host: &str,
    port: u16,
    resolved: &[IpAddr],
) -> Option<(String, u16)> {
    entries.into_iter().find(|(h, p)| {
        *p == port
            && (same_host(h, host) || h.parse::<IpAddr>().is_ok_and(|ip| resolved.contains(&ip)))
    })
}

/// `slaveN:ip=...,port=...` entries of a primary's `INFO replication`.
fn replica_entries(info: &BTreeMap<String, String>) -> Vec<(String, u16)> {
    info.iter()
        .filter(|(k, _)| k.starts_with("slave") && k[5..].chars().all(|c| c.is_ascii_digit()))
        .filter_map(|(_, v)| {
            let field = |name: &str| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
            };
            Some((field("ip")?, field("port")?.parse().ok()?))
        })
        .collect()
}

/// `FAILOVER TO host port TIMEOUT apply_within` on the primary, then wait
/// until the replica is the primary and the old primary its replica.
async fn hand_over(
    admins: &Admins,
    action: &FailoverAction,
    redis: &RedisFailover,
    host: &str,
    port: u16,
) -> Step {
    let (old, new) = (&action.primary, &action.standby);
    let started = Instant::now();
    let timeout_ms = redis.apply_within.as_millis().max(1).to_string();
    let port_text = port.to_string();
    let asked = async {
        let mut server = admins.connect(old, CONNECT).await?;
        server
            .call(
                &["FAILOVER", "TO", host, &port_text, "TIMEOUT", &timeout_ms],
                CONNECT,
            )
            .await
    };
    if let Err(e) = asked.await {
        return failed(
            "promote",
            format!(
                "FAILOVER TO {host} {port} on `{old}` was refused: {e} (Redis >= 6.2 is needed)"
            ),
            Value::Null,
        );
    }
    let deadline = started + redis.apply_within + CONNECT * 2;
    let mut last = String::new();
    while Instant::now() < deadline {
        let new_seen = async {
            let mut server = admins.connect(new, CONNECT).await?;
            server.seen(CONNECT).await
        };
        let old_info = async {
            let mut server = admins.connect(old, CONNECT).await?;
            server.info("replication", CONNECT).await
        };
        match (new_seen.await, old_info.await) {
            (Ok(seen), Ok(info)) if !seen.replica => {
                let old_is_replica = info.get("role").map(String::as_str) == Some("slave");
                return ok(
                    "promote",
                    format!(
                        "`{new}` took the primary's place from `{old}` (FAILOVER TO, {:.0} ms){}",
                        started.elapsed().as_secs_f64() * 1000.0,
                        if old_is_replica {
                            ", and `".to_string() + old + "` replicates from it"
                        } else {
                            String::new()
                        }
                    ),
                    json!({"duration_ms": started.elapsed().as_secs_f64() * 1000.0,
                           "offset": seen.offset, "old_primary_is_replica": old_is_replica}),
                );
            }
            (_, Ok(info))
                if info.get("role").map(String::as_str) == Some("master")
                    && info.get("master_failover_state").map(String::as_str)
                        == Some("no-failover")
                    && started.elapsed() > Duration::from_millis(500) =>
            {
                return failed(
                    "promote",
                    format!(
                        "`{old}` ended the FAILOVER and is still the primary: `{new}` did not reach its offset within apply_within = {}",
                        crate::config::units::format_duration(redis.apply_within)
                    ),
                    Value::Null,
                );
            }
            (a, b) => last = format!("{:?} / {:?}", a.err(), b.err()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    failed(
        "promote",
        format!("the hand-over from `{old}` to `{new}` did not end in time ({last})"),
        Value::Null,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_lists_its_replicas() {
        let info: BTreeMap<String, String> = [
            ("role", "master"),
            (
                "slave0",
                "ip=127.0.0.1,port=7001,state=online,offset=42,lag=0",
            ),
            (
                "slave1",
                "ip=10.0.0.3,port=6379,state=online,offset=42,lag=1",
            ),
            ("slave_read_repl_offset", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            replica_entries(&info),
            [
                ("127.0.0.1".to_string(), 7001),
                ("10.0.0.3".to_string(), 6379)
            ]
        );
    }

    #[test]
    fn the_replica_is_found_by_host_and_port() {
        let entries = vec![
            ("10.0.0.9".to_string(), 6379),
            ("10.0.0.3".to_string(), 6379),
            ("127.0.0.1".to_string(), 7001),
        ];
        let db3: IpAddr = "10.0.0.3".parse().unwrap();
        // (configured host, port, its addresses, the entry found)
        type Case = (&'static str, u16, Vec<IpAddr>, Option<(&'static str, u16)>);
        let cases: Vec<Case> = vec![
            ("10.0.0.3", 6379, vec![], Some(("10.0.0.3", 6379))),
            ("db3.example", 6379, vec![db3], Some(("10.0.0.3", 6379))),
            ("10.0.0.4", 6379, vec![], None),
            ("db4.example", 6379, vec![], None),
            ("10.0.0.3", 6380, vec![db3], None),
            ("localhost", 7001, vec![], Some(("127.0.0.1", 7001))),
        ];
        for (host, port, resolved, expected) in cases {
            let found = find_entry(entries.clone(), host, port, &resolved);
            let expected = expected.map(|(h, p)| (h.to_string(), p));
            assert_eq!(found, expected, "{host}:{port}");
        }
    }
}

//! `watchpost validate`'s check of a Redis failover's fencing: Redis has
//! no way to stop a primary that the agent cannot reach, so an old
//! primary cut off from its replicas must stop taking writes on its own:
//! `min-replicas-to-write` (at least 1) and `min-replicas-max-lag` (a few
//! seconds) in each server's config. Without them, the writes an isolated
//! old primary acknowledges are discarded when it rejoins. A warning,
//! not an error: the setting is the operator's choice.

use super::server::Admins;
use crate::config::{Action, Config};
use std::time::Duration;

/// How long each server may take to answer the check.
const CHECK_WITHIN: Duration = Duration::from_secs(3);

/// What a server's settings say about fencing.
#[derive(Debug, PartialEq, Eq)]
pub enum Fencing {
    /// `min-replicas-to-write` ≥ 1 and `min-replicas-max-lag` ≥ 1.
    Fenced { to_write: u64, max_lag: u64 },
    /// Not fenced: why, as a warning.
    Unfenced(String),
}

/// Judge a server's `min-replicas-to-write` and `min-replicas-max-lag`.
pub fn judge(to_write: u64, max_lag: u64) -> Fencing {
    if to_write == 0 {
        Fencing::Unfenced(
            "min-replicas-to-write is 0: cut off from its replicas, it goes on acknowledging writes that a failover then discards; set min-replicas-to-write 1 and min-replicas-max-lag 10"
                .into(),
        )
    } else if max_lag == 0 {
        Fencing::Unfenced(
            "min-replicas-max-lag is 0, which turns min-replicas-to-write off; set it to a few seconds (10)"
                .into(),
        )
    } else {
        Fencing::Fenced { to_write, max_lag }
    }
}

/// The warnings and notes for every Redis failover of `config`, reading
/// each server's settings over its `admin_dsn`.
pub async fn warnings(config: &Config) -> Vec<String> {
    let admins = Admins::from_config(config);
    let mut out = Vec::new();
    for remediation in &config.remediations {
        let Action::Failover(action) = &remediation.action else {
            continue;
        };
        let Some(redis) = &action.redis else {
            continue;
        };
        let servers: Vec<&String> = std::iter::once(&action.primary)
            .chain(std::iter::once(&action.standby))
            .chain(&redis.replicas)
            .collect();
        for name in &servers {
            let settings = async {
                let mut server = admins.connect(name, CHECK_WITHIN).await?;
                let mut values = Vec::new();
                for key in ["min-replicas-to-write", "min-replicas-max-lag"] {
                    let value = server.call(&["CONFIG", "GET", key], CHECK_WITHIN).await?;
                    let pair: Vec<String> = ::redis::from_redis_value(value).unwrap_or_default();
                    values.push(pair.get(1).and_then(|v| v.parse().ok()).unwrap_or(0u64));
                }
                Ok::<_, crate::redis::Error>((values[0], values[1]))
            };
            match settings.await {
                Ok((to_write, max_lag)) => {
                    if let Fencing::Unfenced(why) = judge(to_write, max_lag) {
                        out.push(format!(
                            "remediation `{}`: target `{name}`: {why} (in its redis.conf, so that a restart keeps it)",
                            remediation.name
                        ));
                    } else if servers.len() < 3 && *name == &action.primary {
                        out.push(format!(
                            "remediation `{}`: target `{name}` has min-replicas-to-write {to_write} but the set has {} servers: after a failover the new primary has no replica until the old one rejoins, and refuses writes meanwhile; add a replica",
                            remediation.name,
                            servers.len()
                        ));
                    }
                }
                Err(e) => out.push(format!(
                    "remediation `{}`: target `{name}`: its fencing (min-replicas-to-write) cannot be checked: {e}",
                    remediation.name
                )),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_needs_both_settings() {
        assert!(
            matches!(judge(0, 10), Fencing::Unfenced(w) if w.contains("min-replicas-to-write is 0"))
        );
        assert!(
            matches!(judge(1, 0), Fencing::Unfenced(w) if w.contains("min-replicas-max-lag is 0"))
        );
        assert_eq!(
            judge(1, 10),
            Fencing::Fenced {
                to_write: 1,
                max_lag: 10
            }
        );
    }
}

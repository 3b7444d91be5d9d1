//! `watchpost cluster list|pause|resume -c FILE`: the cluster as etcd
//! holds it, read straight from etcd with the config's `[cluster]` (like
//! `patronictl list`), and maintenance mode (no automatic failover) set or
//! lifted for every member at once. Each agent records the change.

use crate::cluster::Keys;
use crate::cluster::etcd::Etcd;
use crate::cluster::member::Member;
use crate::config::{self, ClusterSpec};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub action: ClusterAction,
    /// The config file with the `[cluster]` section.
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ClusterAction {
    /// Members, roles, state, timeline, lag and the leader.
    List,
    /// Maintenance mode: no automatic failover until `resume`.
    Pause,
    /// Lift maintenance mode.
    Resume,
}

fn spec(args: &ClusterArgs) -> anyhow::Result<ClusterSpec> {
    let path = args
        .config
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("name the config with the [cluster] section: -c FILE"))?;
    let config = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    config
        .cluster
        .ok_or_else(|| anyhow::anyhow!("{} has no [cluster] section", path.display()))
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    let spec = spec(&args)?;
    let etcd =
        Etcd::new(spec.etcd.clone(), Duration::from_secs(3)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let keys = Keys::new(&spec.scope);
    match args.action {
        ClusterAction::Pause => {
            etcd.put(&keys.pause, "paused by an operator", 0)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "cluster {:?}: maintenance mode on (no automatic failover)",
                spec.scope
            );
            Ok(ExitCode::SUCCESS)
        }
        ClusterAction::Resume => {
            etcd.delete(&keys.pause)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("cluster {:?}: maintenance mode off", spec.scope);
            Ok(ExitCode::SUCCESS)
        }
        ClusterAction::List => list(&etcd, &keys, &spec, args.json).await,
    }
}

async fn list(
    etcd: &Etcd,
    keys: &Keys,
    spec: &ClusterSpec,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let scope = etcd
        .prefix(&keys.root)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let leader = scope
        .iter()
        .find(|kv| kv.key == keys.leader)
        .map(|kv| kv.value.clone());
    let optime = scope
        .iter()
        .find(|kv| kv.key == keys.optime)
        .and_then(|kv| kv.value.parse::<u64>().ok());
    let paused = scope.iter().any(|kv| kv.key == keys.pause);
    let mut members: Vec<Member> = scope
        .iter()
        .filter(|kv| kv.key.starts_with(&keys.members))
        .filter_map(|kv| serde_json::from_str(&kv.value).ok())
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    if as_json {
        let out = serde_json::json!({"scope": spec.scope, "leader": leader, "leader_optime": optime, "paused": paused, "members": members});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "cluster {:?}  leader: {}{}",
        spec.scope,
        leader.as_deref().unwrap_or("none"),
        if paused { "  (maintenance mode)" } else { "" }
    );
    println!(
        "{:<16} {:<22} {:<8} {:<14} {:>4} {:>12}",
        "member", "host", "leader", "role", "tl", "lag (bytes)"
    );
    for m in &members {
        let lag = match (optime, m.role.as_str()) {
            (_, "primary") => "-".to_string(),
            (Some(o), _) => o
                .saturating_sub(m.replayed.or(m.lsn).unwrap_or(0))
                .to_string(),
            (None, _) => "?".to_string(),
        };
        println!(
            "{:<16} {:<22} {:<8} {:<14} {:>4} {:>12}",
            m.name,
            format!("{}:{}", m.host, m.port),
            if leader.as_deref() == Some(m.name.as_str()) {
                "*"
            } else {
                ""
            },
            m.role,
            m.timeline.map_or("?".to_string(), |t| t.to_string()),
            lag
        );
    }
    Ok(ExitCode::SUCCESS)
}

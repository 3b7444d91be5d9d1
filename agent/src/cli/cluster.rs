//! `watchpost cluster list|pause|resume|switchover|restart -c FILE`: the cluster
//! as etcd holds it, read straight from etcd with the config's `[cluster]`
//! (like `patronictl list`), maintenance mode (no automatic failover) set
//! or lifted for every member at once, and a planned switchover asked for
//! (checked, then carried out by the agents). Each agent records what it
//! does.

use super::ExitWith;
use crate::cluster::Keys;
use crate::cluster::etcd::{Etcd, EtcdError};
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
    /// Planned switchover: the leader stops cleanly, NODE replays all of
    /// its WAL, takes the key and promotes; the old leader follows it.
    #[command(after_help = SWITCHOVER_EXIT_CODES)]
    Switchover {
        /// The member to take over (a healthy standby streaming from the leader).
        #[arg(long, value_name = "NODE", required_unless_present = "cancel")]
        to: Option<String>,
        /// Not before this time (RFC 3339, e.g. 2026-12-01T03:00:00Z);
        /// the command returns once the switchover is scheduled.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Withdraw a switchover the leader has not started yet.
        #[arg(long, conflicts_with_all = ["to", "at"])]
        cancel: bool,
        /// How long to wait for the outcome (seconds).
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// Rolling restart: each standby in turn (back and streaming before
    /// the next), then the leader by a switchover to a standby.
    Restart {
        /// Only servers with a setting waiting for a restart
        /// (`pg_settings.pending_restart`).
        #[arg(long)]
        pending: bool,
        /// Switch back to the old leader once it streams again.
        #[arg(long)]
        switch_back: bool,
        /// How long each step may take (seconds).
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
}

/// `watchpost cluster switchover`'s exit code for a refusal: nothing was
/// written (or withdrawn), and the same command is refused again until
/// the cluster changes (or an operator fixes what etcd refused).
pub const REFUSED: u8 = 2;

/// `watchpost cluster switchover`'s exit code for "cannot tell": etcd was
/// out of reach or its answer was lost (the request, or the cancel, may
/// have been written), or no outcome came within `--wait`; running the
/// command again shows where it stands.
pub const CANNOT_TELL: u8 = 75;

/// The exit codes, as `--help` shows them (and docs/src/commands.md).
const SWITCHOVER_EXIT_CODES: &str = "Exit codes:
  0   done: switched over, scheduled (--at), or cancelled (--cancel)
  1   carried out and failed: the leader kept the lead (the reason is printed)
  2   refused, nothing written: the same command is refused again until the
      cluster changes (no leader, NODE unfit, one already pending, nothing to
      cancel, already under way) or an operator fixes what etcd refused
      (permission denied, a full store)
  3   any other error (the command line, the config, the agent's own)
  75  cannot tell: etcd was out of reach or its answer was lost, so the request
      (or the cancel) may have been written, or no outcome came within --wait;
      run the command again to see where it stands";

/// A switchover asked for or cancelled that was not done: its message
/// and exit code, from etcd's error (`None`: the cluster's refusal).
fn not_done(message: String, store: Option<&EtcdError>, again: &str) -> anyhow::Error {
    let (code, message) = match store {
        None | Some(EtcdError::Refused(_)) => (REFUSED, message),
        Some(EtcdError::Unreachable(_)) => (CANNOT_TELL, message),
        Some(EtcdError::AnswerLost(_)) => (CANNOT_TELL, format!("{message} ({again})")),
        Some(EtcdError::Local(_)) => (3, message),
    };
    ExitWith { code, message }.into()
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
        Etcd::for_cluster(&spec, Duration::from_secs(3)).map_err(|e| anyhow::anyhow!("{e}"))?;
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
        ClusterAction::Switchover {
            to,
            at,
            cancel,
            wait,
        } => switchover(&etcd, &keys, &spec, to, at, cancel, wait).await,
        ClusterAction::Restart {
            pending,
            switch_back,
            wait,
        } => super::cluster_restart::run(&etcd, &keys, &spec, pending, switch_back, wait).await,
    }
}

async fn switchover(
    etcd: &Etcd,
    keys: &Keys,
    spec: &ClusterSpec,
    to: Option<String>,
    at: Option<String>,
    cancel: bool,
    wait: u64,
) -> anyhow::Result<ExitCode> {
    use crate::cluster::switchover;
    if cancel {
        let request = switchover::cancel(etcd, keys).await.map_err(|e| {
            not_done(
                e.to_string(),
                e.store(),
                "the request may have been withdrawn: cancel again to see",
            )
        })?;
        println!("cancelled the switchover to `{}`", request.to);
        return Ok(ExitCode::SUCCESS);
    }
    let to = to.ok_or_else(|| anyhow::anyhow!("name the member to switch over to: --to NODE"))?;
    let at = at
        .map(|text| {
            humantime::parse_rfc3339_weak(&text).map_err(|e| {
                anyhow::anyhow!(
                    "--at {text:?}: {e}; write an RFC 3339 time, e.g. 2026-12-01T03:00:00Z"
                )
            })
        })
        .transpose()?;
    let request = switchover::ask(etcd, keys, spec.max_lag_bytes, &to, at)
        .await
        .map_err(|e| {
            not_done(
                e.to_string(),
                e.store(),
                "the request may have been written: ask again to see whether one is pending",
            )
        })?;
    if let Some(at) = &request.at {
        println!(
            "cluster {:?}: switchover from `{}` to `{}` scheduled at {at}",
            spec.scope, request.from, request.to
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "cluster {:?}: switchover from `{}` to `{}` asked for; waiting for it",
        spec.scope, request.from, request.to
    );
    let outcome = switchover::outcome(etcd, keys, &request.id, Duration::from_secs(wait))
        .await
        .map_err(|message| ExitWith {
            code: CANNOT_TELL,
            message,
        })?;
    if outcome.ok {
        println!("switchover done: {}", outcome.message);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("switchover failed: {}", outcome.message);
        Ok(ExitCode::FAILURE)
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
    let snapshot = keys.snapshot(&scope);
    let leader = snapshot.leader_name();
    let sync = snapshot
        .sync
        .and_then(|kv| crate::cluster::sync::SyncKey::read(kv).set.ok());
    let (optime, paused, members) = (snapshot.optime, snapshot.paused, snapshot.members);
    if as_json {
        let out = serde_json::json!({"scope": spec.scope, "leader": leader, "leader_optime": optime, "paused": paused, "synchronous": sync, "members": members});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "cluster {:?}  leader: {}{}",
        spec.scope,
        leader.as_deref().unwrap_or("none"),
        if paused { "  (maintenance mode)" } else { "" }
    );
    if let Some(set) = &sync {
        println!(
            "synchronous: every acknowledged commit is on {} of [{}]",
            set.quorum,
            set.members.join(", ")
        );
    }
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

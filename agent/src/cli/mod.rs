//! The `watchpost` command line: argument parsing and one module per
//! subcommand. Every subcommand returns its exit code; errors are printed
//! by `main` as one line naming what to fix, never as a panic.

mod backup_formats;
mod bench;
mod cache;
mod check;
mod cluster;
mod cluster_restart;
mod config_cmd;
mod describe;
mod format;
mod generate;
mod new;
mod operator;
mod probe_source;
mod run;
mod state_dir;
mod validate;

use crate::config::units::UnitError;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "watchpost",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("WATCHPOST_COMMIT"), ")"),
    about = "Health agent for database nodes: sandboxed WebAssembly probes, thresholds, remediation, OpenTelemetry"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the agent: probes on schedule, states, the status API.
    Run(run::RunArgs),
    /// Run one probe once and print its report (Nagios exit codes: 0 ok,
    /// 1 warning, 2 critical, 3 unknown).
    Check(check::CheckArgs),
    /// Measure the per-run cost of a probe (p50/p90/p99, runs per second).
    Bench(bench::BenchArgs),
    /// Print what a probe says about itself: its description and every
    /// measurement it may emit, with units.
    Describe(describe::DescribeArgs),
    /// Check a config file and load every probe it names.
    Validate(validate::ValidateArgs),
    /// About the config file: `watchpost config reference` prints every
    /// section and key with its type, default and allowed values.
    Config(config_cmd::ConfigArgs),
    /// Pause a remediation (or all) in the running agent.
    Pause(operator::PauseArgs),
    /// Resume a paused remediation (or all).
    Resume(operator::ResumeArgs),
    /// Close a remediation's breaker, clear its cooldown, lift a failover block.
    Reset(operator::ResetArgs),
    /// Planned switchover of a MariaDB or Redis failover remediation: the
    /// primary stops taking writes, the replica catches up and is promoted.
    Switchover(operator::SwitchoverArgs),
    /// Show the remediation audit log of the running agent.
    Events(operator::EventsArgs),
    /// Start a probe project (Rust, Python or JavaScript) that builds and
    /// passes `watchpost check` as it is.
    New(new::NewArgs),
    /// The cluster mode: list the members, pause or resume automatic
    /// failover, switch over, restart every server in turn.
    Cluster(cluster::ClusterArgs),
    /// Cluster mode's fence, started by the agent while it leads: stops
    /// the local server when the agent's heartbeat stops.
    #[command(hide = true)]
    Watchdog(crate::cluster::watchdog::WatchdogArgs),
    /// Write the man page and shell completions into a directory (for
    /// packagers).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

/// Output formats of `check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Nagios,
}

/// `-c FILE`, shared by the subcommands that read a config.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArg {
    /// Config file (TOML). Without it, the embedded default config.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Run the parsed command; its exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Describe(args) => describe::run(args).await,
        Command::Validate(args) => validate::run(args).await,
        Command::Config(args) => config_cmd::run(args).await,
        Command::Pause(args) => operator::pause(args).await,
        Command::Resume(args) => operator::resume(args).await,
        Command::Reset(args) => operator::reset(args).await,
        Command::Events(args) => operator::events(args).await,
        Command::Switchover(args) => operator::switchover(args).await,
        Command::New(args) => new::run(args).await,
        Command::Cluster(args) => cluster::run(args).await,
        Command::Generate(args) => generate::run(args).await,
        Command::Watchdog(args) => {
            let code = tokio::task::spawn_blocking(move || crate::cluster::watchdog::serve(args))
                .await
                .map_err(|e| anyhow::anyhow!("the watchdog stopped: {e}"))?;
            Ok(ExitCode::from(code as u8))
        }
    }
}

/// An error that exits with a code of its own instead of 3 (UNKNOWN, every
/// other error's): `main` prints it as it prints every error, and exits
/// with `code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExitWith {
    pub code: u8,
    pub message: String,
}

/// The exit code of a command that failed with `error`.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    error.downcast_ref::<ExitWith>().map_or(3, |e| e.code)
}

/// An argument that is not `KEY=VALUE` (the text as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected KEY=VALUE, got {0:?}")]
pub struct NotKeyValue(pub String);

/// Parse `KEY=VALUE`.
pub fn key_value(text: &str) -> Result<(String, String), NotKeyValue> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(NotKeyValue(text.to_string())),
    }
}

/// Parse a deadline argument such as `5s` (10ms to 30d, as a probe's
/// `timeout` in the config).
pub fn duration_arg(text: &str) -> Result<std::time::Duration, UnitError> {
    crate::config::units::SCHEDULE.parse(text)
}

/// Parse a pause argument such as `10m` (up to 365d, as a `cooldown`).
pub fn pause_arg(text: &str) -> Result<std::time::Duration, UnitError> {
    crate::config::units::HOLD.parse(text)
}

/// Parse a memory cap argument such as `64MiB` (64KiB to 1GiB, as a
/// probe's `memory` in the config).
pub fn size_arg(text: &str) -> Result<u64, UnitError> {
    crate::config::units::PROBE_MEMORY.parse(text)
}

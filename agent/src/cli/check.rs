//! `watchpost check PROBE`: run one probe once, print its report, exit
//! with the Nagios code of its status.

use super::Format;
use super::cache::CacheArg;
use super::format;
use super::probe_source::{ProbeArgs, ResolveError, read_config, resolve};
use crate::policy::thresholds;
use crate::report::{ErrorKind, Report, RunError, Status};
use crate::runtime::{Runtime, engine::PoolSize};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,
    #[command(flatten)]
    pub cache: CacheArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = read_config(&args.probe).map_err(anyhow::Error::msg)?;
    let runtime = Runtime::new(PoolSize { instances: 8 })?;
    let runtime = args.cache.apply(runtime, config.as_ref().map(|c| &c.agent));
    let resolved = match resolve(&args.probe, config.as_ref(), &runtime).await {
        Ok(resolved) => resolved,
        Err(ResolveError::Usage(message)) => anyhow::bail!(message),
        Err(ResolveError::Load(name, error)) => {
            // A file that is not a probe is the probe's failure: report it as
            // an unknown result, in the requested format.
            let report = Report::failed(
                RunError::new(ErrorKind::Load, error.message),
                Duration::ZERO,
                0,
            );
            print(args.format, &name, Status::Unknown, &report, &[]);
            return Ok(ExitCode::from(Status::Unknown.exit_code()));
        }
    };
    let report = runtime
        .run(
            &resolved.probe,
            &resolved.grants,
            &resolved.services,
            resolved.limits,
        )
        .await;
    let status = thresholds::overall(&resolved.thresholds, &report);
    print(
        args.format,
        &resolved.name,
        status,
        &report,
        &resolved.thresholds,
    );
    Ok(ExitCode::from(status.exit_code()))
}

fn print(
    format: Format,
    name: &str,
    status: Status,
    report: &Report,
    rules: &[crate::config::ThresholdRule],
) {
    let out = match format {
        Format::Text => format::text(name, status, report),
        Format::Json => format!("{}\n", format::json(name, status, report)),
        Format::Nagios => format::nagios(status, report, rules),
    };
    print!("{out}");
}

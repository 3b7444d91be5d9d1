//! `watchpost run [-c FILE]`: the agent. Without `-c`, the embedded default
//! config (the built-in host probes, the status API on 127.0.0.1:9464).

use crate::config;
use crate::daemon;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: super::ConfigArg,
    /// Evaluate and record every remediation without running any.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = match config::load_or_default(args.config.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            anyhow::bail!(
                "the config is not valid ({} error(s)); nothing was started",
                errors.0.len()
            );
        }
    };
    if args.dry_run {
        config.agent.dry_run = true;
    }
    let listen = config.agent.listen;
    // Bind first: a taken port is an error before anything runs.
    let listener = crate::api::bind(listen).await?;
    let shared = daemon::start(config, args.config.config.clone()).await?;
    shared
        .dry_run_flag
        .store(args.dry_run, std::sync::atomic::Ordering::Relaxed);
    tracing::info!("status API on http://{listen} (/healthz, /v1/probes, /metrics)");
    let api = tokio::spawn(crate::api::serve(listener, shared.clone()));
    daemon::signals::handle(shared.clone()).await?;
    daemon::stop(&shared).await;
    match api.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("the status API stopped with an error: {e}"),
        Err(e) => tracing::warn!("the status API task failed: {e}"),
    }
    Ok(ExitCode::SUCCESS)
}

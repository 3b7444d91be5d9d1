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
    // Before anything is written: a root run must not leave root's files
    // in the packaged service's state directory.
    super::state_dir::refuse_foreign(&config.agent.state_dir)?;
    let listen = config.agent.listen;
    // Bind first: a taken port is an error before anything runs.
    let listener = crate::api::bind(listen).await?;
    let token_env = config.agent.api_token_env.clone();
    let state_dir = config.agent.state_dir.clone();
    // The token before anything runs: a missing variable or a bad token
    // file is an error at start.
    let auth = crate::api::auth::ApiAuth::load(listen, token_env.as_deref(), &state_dir)?;
    let shared = daemon::start(config, args.config.config.clone()).await?;
    shared.set_dry_run(args.dry_run);
    tracing::info!("status API on http://{listen} (/healthz, /v1/probes, /metrics)");
    tracing::info!("the API token is in {}", auth.source);
    let api = tokio::spawn(crate::api::serve(
        listener,
        shared.clone(),
        std::sync::Arc::new(auth),
    ));
    daemon::signals::handle(shared.clone()).await?;
    daemon::stop(&shared).await;
    match api.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("the status API stopped with an error: {e}"),
        Err(e) => tracing::warn!("the status API task failed: {e}"),
    }
    Ok(ExitCode::SUCCESS)
}

//! `watchpost validate [-c FILE]`: check a config and load every probe it
//! names; print every error as `FILE:LINE:COL: message`.

use crate::config::{self, Diagnostic};
use crate::runtime::{Runtime, Services, engine::PoolSize};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: super::ConfigArg,
    #[command(flatten)]
    pub cache: super::cache::CacheArg,
}

pub async fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let config = match config::load_or_default(args.config.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s); the config is not valid", errors.0.len());
            return Ok(ExitCode::from(1));
        }
    };
    let runtime = Runtime::new(PoolSize { instances: 8 })?;
    let runtime = args.cache.apply(runtime, Some(&config.agent));
    let services = Arc::new(Services::default());
    let mut errors = Vec::new();
    for spec in &config.probes {
        if let config::WasmSource::Drill(name) = &spec.wasm {
            let every = config::units::format_duration(spec.every);
            println!("drill {name:?}: restore drill, every {every}");
            continue;
        }
        match runtime
            .load_source(&spec.wasm, spec.sha256.as_deref(), &services)
            .await
        {
            Ok(probe) => println!(
                "probe {:?}: {} {} ({}), every {}",
                spec.name,
                probe.info.name,
                probe.info.version,
                probe.info.kind,
                config::units::format_duration(spec.every)
            ),
            Err(e) => errors.push(Diagnostic {
                file: spec.place.file.clone(),
                line: spec.place.line,
                column: spec.place.column,
                message: format!("[[probe]] {:?}: cannot load: {}", spec.name, e.message),
            }),
        }
    }
    if errors.is_empty() {
        println!(
            "{}: valid ({} probes, {} targets, {} remediations)",
            config.file,
            config.probes.len(),
            config.targets.len(),
            config.remediations.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("{} error(s); the config is not valid", errors.len());
        Ok(ExitCode::from(1))
    }
}

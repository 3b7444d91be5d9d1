//! `watchpost describe PROBE`: what a probe says about itself through its
//! `describe` export: its name, version, kind, a line saying what it
//! checks, and every measurement it may emit with its unit and meaning.
//! The manual's page of each built-in probe is generated from it
//! (`cargo xtask docs`), so that the measurements listed there are those
//! of the code.

use super::cache::CacheArg;
use crate::config::WasmSource;
use crate::runtime::{Limits, ProbeInfo, Runtime, Services, engine::PoolSize};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// The probe: a .wasm file or `builtin:NAME`.
    pub probe: String,
    #[command(flatten)]
    pub cache: CacheArg,
    /// Print one JSON object (`name`, `version`, `kind`, `description`,
    /// `measurements`: each `name`, `unit`, `description`).
    #[arg(long)]
    pub json: bool,
}

/// Load the probe (which calls its `describe`) and print what it says;
/// a file that is not a probe is an error naming it.
pub async fn run(args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(PoolSize { instances: 1 })?;
    let runtime = args.cache.apply(runtime, None);
    let source = match args.probe.strip_prefix("builtin:") {
        Some(name) => WasmSource::Builtin(name.to_string()),
        None => WasmSource::File(PathBuf::from(&args.probe)),
    };
    let services = Arc::new(Services::default());
    let probe = runtime
        .load_source(&source, None, &services, Limits::default().memory)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&probe.info)?);
    } else {
        print!("{}", text(&probe.info));
    }
    Ok(ExitCode::SUCCESS)
}

/// `NAME VERSION (KIND): DESCRIPTION`, then one line per measurement.
fn text(info: &ProbeInfo) -> String {
    let mut out = format!(
        "{} {} ({}): {}\n",
        info.name, info.version, info.kind, info.description
    );
    for m in &info.measurements {
        out.push_str(&format!("  {} [{}]: {}\n", m.name, m.unit, m.description));
    }
    out
}

//! Resolving the PROBE argument of `check` and `bench`: a `.wasm` path, a
//! `builtin:NAME`, or the name of a probe in the `-c` config, together
//! with what that probe is granted.

use crate::config::{self, Config, ProbeSpec, ThresholdRule, WasmSource};
use crate::runtime::{Grants, Limits, LoadError, Probe, Runtime, Services};
use crate::sql::{SqlTargets, TargetSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options shared by `check` and `bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProbeArgs {
    /// The probe: a .wasm file, `builtin:NAME`, or a probe name from the -c config.
    pub probe: String,
    #[command(flatten)]
    pub config: super::ConfigArg,
    /// Define and grant a database target for this run (repeatable).
    #[arg(long = "target", value_name = "NAME=DSN", value_parser = super::key_value)]
    pub targets: Vec<(String, String)>,
    /// Grant a read-only directory, seen by the probe at /NAME (repeatable).
    #[arg(long = "dir", value_name = "NAME=PATH", value_parser = super::key_value)]
    pub dirs: Vec<(String, String)>,
    /// Set a probe config value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = super::key_value)]
    pub set: Vec<(String, String)>,
    /// Run deadline (default: the probe's `timeout`, or 10s).
    #[arg(long, value_parser = super::duration_arg)]
    pub timeout: Option<std::time::Duration>,
    /// Memory cap (default: the probe's `memory`, or 64MiB).
    #[arg(long, value_parser = super::size_arg)]
    pub memory: Option<u64>,
}

/// A probe ready to run, with everything it is given.
pub struct Resolved {
    /// The name reported (the config's name, else the probe's own).
    pub name: String,
    pub probe: Probe,
    pub grants: Arc<Grants>,
    pub services: Arc<Services>,
    pub limits: Limits,
    pub thresholds: Vec<ThresholdRule>,
}

/// Why the probe could not be made ready. `Load` errors are the probe's
/// fault (exit 3 as an `unknown` report); `Usage` errors are the user's.
pub enum ResolveError {
    Load(String, LoadError),
    Usage(String),
}

/// A name to report for a probe that failed to load.
pub fn fallback_name(probe: &str) -> String {
    let stem = Path::new(probe).file_stem().and_then(|s| s.to_str());
    stem.unwrap_or(probe)
        .trim_start_matches("builtin:")
        .to_string()
}

/// The `-c` config, if one is given; the error lists what is wrong in it.
pub fn read_config(args: &ProbeArgs) -> Result<Option<Config>, String> {
    match &args.config.config {
        Some(path) => config::load(path).map(Some).map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

/// Make the probe named by `args` ready to run; `config` is the `-c`
/// config ([`read_config`]).
pub async fn resolve(
    args: &ProbeArgs,
    config: Option<&Config>,
    runtime: &Runtime,
) -> Result<Resolved, ResolveError> {
    let spec: Option<&ProbeSpec> =
        config.and_then(|c| c.probes.iter().find(|p| p.name == args.probe));

    let mut targets: BTreeMap<String, TargetSpec> =
        config.map(crate::daemon::target_specs).unwrap_or_default();
    let mut redis_specs = config.map(crate::daemon::redis_specs).unwrap_or_default();
    for (name, dsn) in &args.targets {
        // A `redis://`, `rediss://` or `unix://` URL is a Redis target.
        if ["redis://", "rediss://", "unix://"]
            .iter()
            .any(|p| dsn.starts_with(p))
        {
            crate::redis::conn::check_url(dsn).map_err(|e| {
                ResolveError::Usage(format!("--target {name}=...: not a usable Redis URL: {e}"))
            })?;
            targets.remove(name);
            redis_specs.insert(name.clone(), crate::redis::RedisSpec::new(dsn.clone()));
            continue;
        }
        redis_specs.remove(name);
        // A `mysql://` URL picks the MariaDB/MySQL driver;
        // anything else is a PostgreSQL connection string.
        let mysql = dsn.starts_with("mysql://");
        let checked = if mysql {
            crate::sql::mysql::dsn::parse(dsn, None).map(|_| ())
        } else {
            crate::config::validate_dsn(dsn)
        };
        checked.map_err(|e| {
            ResolveError::Usage(format!(
                "--target {name}=...: not a valid connection string: {e}"
            ))
        })?;
        let mut spec = TargetSpec::new(dsn.clone());
        if mysql {
            spec.kind = crate::sql::Kind::Mysql;
        }
        targets.insert(name.clone(), spec);
    }
    let sql = SqlTargets::new(&targets).map_err(ResolveError::Usage)?;
    let redis = crate::redis::RedisTargets::new(&redis_specs).map_err(ResolveError::Usage)?;
    let services = Arc::new(Services {
        sql,
        redis,
        ..Services::default()
    });

    let source = match spec {
        Some(spec) => spec.wasm.clone(),
        None => match args.probe.strip_prefix("builtin:") {
            Some(name) => WasmSource::Builtin(name.to_string()),
            None => WasmSource::File(PathBuf::from(&args.probe)),
        },
    };
    let drill = match &source {
        WasmSource::Drill(name) => config.and_then(|c| {
            let spec = c.drills.iter().find(|d| &d.name == name)?;
            Some(crate::drill::probe(spec, &c.agent.state_dir))
        }),
        WasmSource::Etcd => config.and_then(|c| c.cluster.as_ref()).and_then(|c| {
            crate::cluster::etcd::health::probe(c, std::time::Duration::from_secs(3)).ok()
        }),
        _ => None,
    };
    let loaded = match drill {
        Some(probe) => Ok(probe),
        None => {
            let pin = spec.and_then(|s| s.sha256.as_deref());
            let cap = args
                .memory
                .or(spec.map(|s| s.memory))
                .unwrap_or(Limits::default().memory)
                .min(crate::config::units::MAX_PROBE_MEMORY);
            runtime.load_source(&source, pin, &services, cap).await
        }
    };
    let probe = loaded.map_err(|e| {
        ResolveError::Load(
            spec.map_or_else(|| fallback_name(&args.probe), |s| s.name.clone()),
            e,
        )
    })?;

    let mut probe_config = spec.map(|s| s.config.clone()).unwrap_or_default();
    probe_config.extend(args.set.iter().cloned());
    // A configured probe gets its own targets; an ad-hoc one gets them all.
    let mut granted: Vec<String> = match spec {
        Some(spec) => spec.targets.clone(),
        None => targets.keys().chain(redis_specs.keys()).cloned().collect(),
    };
    for (name, _) in &args.targets {
        if !granted.contains(name) {
            granted.push(name.clone());
        }
    }
    let mut dirs = spec.map(|s| s.dirs.clone()).unwrap_or_default();
    for (dir, path) in &args.dirs {
        if !std::path::Path::new(path).is_dir() {
            return Err(ResolveError::Usage(format!(
                "--dir {dir}={path}: not a directory; grant an existing directory"
            )));
        }
        dirs.insert(dir.clone(), PathBuf::from(path));
    }
    let name = spec.map_or_else(|| probe.info.name.clone(), |s| s.name.clone());
    let defaults = Limits::default();
    let limits = Limits {
        timeout: args
            .timeout
            .or(spec.map(|s| s.timeout))
            .unwrap_or(defaults.timeout),
        memory: args
            .memory
            .or(spec.map(|s| s.memory))
            .unwrap_or(defaults.memory)
            .min(crate::config::units::MAX_PROBE_MEMORY),
    };
    Ok(Resolved {
        grants: Arc::new(Grants {
            name: name.clone(),
            config: probe_config,
            targets: granted,
            dirs,
        }),
        name,
        probe,
        services,
        limits,
        thresholds: spec.map(|s| s.thresholds.clone()).unwrap_or_default(),
    })
}

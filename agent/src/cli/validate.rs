//! `watchpost validate [-c FILE]`: check a config and load every probe it
//! names; print every error as `FILE:LINE:COL: message`. Each target that
//! a probe is granted and that answers has its probe role's privileges
//! checked: a role that may do more than monitor is a warning, an error
//! with `strict_privileges`. A `pg-backup` probe on a Barman repository
//! is an error (not supported), on WAL-G a warning (see `backup_formats`).
//! A Redis failover whose servers do not fence themselves
//! (`min-replicas-to-write`) is a warning.

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
        if spec.wasm == config::WasmSource::Etcd {
            let every = config::units::format_duration(spec.every);
            println!(
                "probe {:?}: etcd's health (built in), every {every}",
                spec.name
            );
            continue;
        }
        match runtime
            .load_source(&spec.wasm, spec.sha256.as_deref(), &services, spec.memory)
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
    errors.extend(super::backup_formats::unsupported(&config));
    errors.extend(check_privileges(&config).await);
    warn_admin_password_in_fence(&config);
    warn_drills_beside_data(&config);
    for warning in config
        .cluster
        .iter()
        .flat_map(crate::cluster::etcd::access::warnings)
        .chain(
            config
                .cluster
                .iter()
                .flat_map(crate::cluster::mariadb::warnings),
        )
        .chain(
            config
                .cluster
                .iter()
                .filter_map(crate::cluster::Cluster::start_refusal),
        )
        .chain(crate::cluster::least::warnings(&config))
        .chain(crate::cluster::redis::distro::for_config(&config))
        .chain(plaintext_to_remote(&config))
        .chain(crate::remediate::redis_failover::fencing::warnings(&config).await)
    {
        eprintln!("{}: warning: {warning}", config.file);
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

/// How long `validate` waits for each target's privilege check.
const PRIVILEGE_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Check the role of each target granted to a probe (see
/// [`crate::sql::privileges`]); print warnings and notes, return the
/// errors (dangerous roles of targets with `strict_privileges`).
async fn check_privileges(config: &config::Config) -> Vec<Diagnostic> {
    use crate::sql::privileges::Checked;
    let granted: std::collections::BTreeSet<&str> = config
        .probes
        .iter()
        .flat_map(|p| p.targets.iter().map(String::as_str))
        // Redis targets' users are checked on their first connection.
        .filter(|name| {
            config
                .targets
                .get(*name)
                .is_none_or(|t| t.kind != config::TargetKind::Redis)
        })
        .collect();
    let Ok(targets) = crate::sql::SqlTargets::new(&crate::daemon::target_specs(config)) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    for name in granted {
        match targets.privileges(name, PRIVILEGE_CHECK).await {
            Ok(Checked::Fine) => println!("target {name:?}: the probes' role may only monitor"),
            Ok(Checked::Dangerous { message, strict }) if strict => errors.push(Diagnostic {
                file: config.file.clone(),
                line: 0,
                column: 0,
                message,
            }),
            Ok(Checked::Dangerous { message, .. }) => {
                eprintln!("{}: warning: {message}", config.file)
            }
            Err(e) => eprintln!(
                "{}: note: target {name:?}: cannot check the privileges of the probes' role: {e}",
                config.file
            ),
        }
    }
    errors
}

/// Drills restore into `state_dir/drills`: warn when that is the
/// filesystem of a data directory the config names.
fn warn_drills_beside_data(config: &config::Config) {
    if config.drills.is_empty() {
        return;
    }
    let mut data_dirs: Vec<std::path::PathBuf> = config
        .targets
        .values()
        .filter_map(|t| t.data_dir.clone())
        .collect();
    data_dirs.extend(config.cluster.iter().map(|c| c.data_dir.clone()));
    for remediation in &config.remediations {
        match &remediation.action {
            config::Action::Reinit(r) => data_dirs.push(r.data_dir.clone()),
            config::Action::Restart(config::RestartAction {
                method: config::RestartMethod::PgCtl { data_dir, .. },
                ..
            }) => data_dirs.push(data_dir.clone()),
            _ => {}
        }
    }
    data_dirs.sort();
    data_dirs.dedup();
    let drills = config.agent.state_dir.join("drills");
    for warning in crate::drill::shared_filesystems(&drills, &data_dirs) {
        eprintln!("{}: warning: {warning}", config.file);
    }
}

/// The DSNs of PostgreSQL targets that reach another host with `sslmode`
/// `disable`, `allow` or `prefer` (libpq's default): a password and every
/// query may cross the network in clear, and `prefer` falls back to it
/// without a word when the server offers no TLS.
fn plaintext_to_remote(config: &config::Config) -> Vec<String> {
    use crate::sql::tls::SslMode;
    use tokio_postgres::config::Host;
    let mut out = Vec::new();
    for (name, target) in &config.targets {
        if target.kind != config::TargetKind::Postgres {
            continue;
        }
        let dsns = [
            ("dsn", Some(&target.dsn)),
            ("admin_dsn", target.admin_dsn.as_ref()),
            ("replication_dsn", target.replication_dsn.as_ref()),
        ];
        for (key, dsn) in dsns {
            let Some(info) = dsn.and_then(|d| crate::sql::conninfo::ConnInfo::parse(d).ok()) else {
                continue;
            };
            let mode = match info.ssl_mode {
                SslMode::Disable => "disable",
                SslMode::Allow => "allow",
                SslMode::Prefer => "prefer",
                _ => continue,
            };
            let remote: Vec<&str> = info
                .config
                .get_hosts()
                .iter()
                .filter_map(|h| match h {
                    Host::Tcp(host) if !is_local(host) => Some(host.as_str()),
                    _ => None,
                })
                .collect();
            if !remote.is_empty() {
                out.push(format!(
                    "target `{name}`: `{key}` reaches {} with sslmode={mode}{}: the password and \
                     every query may cross the network unencrypted; write `sslmode=verify-full` \
                     (with `sslrootcert`) or at least `sslmode=require`",
                    remote.join(", "),
                    if mode == "prefer" && !dsn.is_some_and(|d| d.contains("sslmode")) {
                        " (libpq's default)"
                    } else {
                        ""
                    },
                ));
            }
        }
    }
    out
}

/// A host name or address on this machine.
fn is_local(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A failover's fence writes the standby target's replication login into
/// the old primary's data directory (a passfile the postgres OS user can
/// read): without `replication_dsn` that is the admin role's password.
fn warn_admin_password_in_fence(config: &config::Config) {
    for remediation in &config.remediations {
        let config::Action::Failover(failover) = &remediation.action else {
            continue;
        };
        // MariaDB's and Redis's fences write no file: replicas are told over
        // their own protocol.
        if failover.mysql.is_some() || failover.redis.is_some() {
            continue;
        }
        let Some(target) = config.targets.get(&failover.standby) else {
            continue;
        };
        if target.replication_dsn.is_none() {
            let login = if target.admin_dsn.is_some() {
                "admin_dsn"
            } else {
                "dsn"
            };
            eprintln!(
                "{}: warning: target `{}`: the fence of remediation `{}` gives the old primary \
                 the {login}'s login to stream with, and its password (if any) lands in a file \
                 the postgres OS user reads; set `replication_dsn` (and \
                 `replication_password_file`) to a role with only REPLICATION",
                config.file, failover.standby, remediation.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(targets: &str) -> Vec<String> {
        let config = config::parse_str("w.toml", targets, std::path::Path::new("/")).unwrap();
        plaintext_to_remote(&config)
    }

    #[test]
    fn a_remote_target_without_tls_is_a_warning() {
        let found = warnings("[targets.a]\ndsn = \"host=10.0.0.2 user=w\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("`dsn` reaches 10.0.0.2 with sslmode=prefer (libpq's default)"));
        assert!(found[0].contains("sslmode=verify-full"));
        let found = warnings(
            "[targets.a]\ndsn = \"host=db.example.com sslmode=disable\"\nadmin_dsn = \"host=db.example.com sslmode=require\"\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("sslmode=disable:"), "{found:?}");
    }

    #[test]
    fn local_and_encrypted_targets_are_fine() {
        for dsn in [
            "host=127.0.0.1 sslmode=disable",
            "host=localhost",
            "host=/var/run/postgresql",
            "host=::1 sslmode=prefer",
            "host=10.0.0.2 sslmode=require",
            "postgresql://w@10.0.0.2/postgres?sslmode=require",
        ] {
            let found = warnings(&format!("[targets.a]\ndsn = \"{dsn}\"\n"));
            assert!(found.is_empty(), "{dsn}: {found:?}");
        }
    }
}

//! `pg-integrity`: is the stored data intact — pages, indexes, and the
//! invariants the data is supposed to keep?
//!
//! - Data checksums: whether the cluster has them
//!   (`postgresql.integrity.data_checksums`), and pages that failed
//!   verification in any database (`postgresql.integrity.checksum_failures`,
//!   from `pg_stat_database`): any failure is `critical`.
//! - Indexes: with the `amcheck` extension installed and `check_indexes`
//!   set, `bt_index_check` over those tables' B-tree indexes
//!   (`postgresql.integrity.index_corruptions`): any corruption is
//!   `critical`.
//! - An active, budgeted scan of every table's pages and indexes
//!   (`verify_heapam`, `bt_index_check` with `heapallindexed`), resumable
//!   across runs by the clock, over a cycle (a week unless configured): see the `scan`
//!   module. It finds a corrupt page that no query reads.
//! - Constraint audits declared in the config (uniqueness, not-null, value
//!   ranges, orphaned references; the syntax is in the `rules` module):
//!   `postgresql.integrity.constraint_violations` {rule} per rule, with the
//!   first violating values in the message.
//!
//! Config (defaults in brackets):
//! - `target`: the target to check [`primary`].
//! - `require_checksums`: `warning` when data checksums are off [false].
//! - `check_indexes`: comma-separated tables whose B-tree indexes amcheck
//!   verifies, or `*` for every table (it reads every index page) [none].
//! - `scan_cycle`: check every table page within this time, e.g. `24h`, or
//!   `off` [7d: on by default; without amcheck 1.3 and its grants that is
//!   a note, with `scan_cycle` set `unknown`]; `scan_every`: the probe's
//!   `every` (each run then checks exactly its share of the cycle) [unset: `scan_budget_blocks` from the
//!   cycle's position]; `scan_budget_blocks` [16384, 128 MiB];
//!   `scan_time` [2s]. Needs amcheck 1.3 (PostgreSQL 14+) and `EXECUTE` on
//!   `verify_heapam` and `bt_index_check(regclass, boolean)`.
//! - `violations_warning` / `violations_critical`: violations a rule may
//!   have [0 / 0: any violation is critical].
//! - `unique.NAME`, `not_null.NAME`, `range.NAME`, `orphans.NAME`: audits,
//!   e.g. `unique.order_numbers = "orders(customer_id, number)"`,
//!   `range.totals = "orders(total) 0..1000000"`,
//!   `orphans.lines = "order_lines(order_id) -> orders(id)"`.
//!
//! The audits read whole tables (each bounded by the run's deadline):
//! give them a probe of their own with a long `every` on large tables.
//! The role needs `pg_monitor`, `SELECT` on the audited tables, and
//! `EXECUTE` on `bt_index_check` for index checks.

mod amcheck;
mod audits;
mod checksums;
mod rules;
mod scan;

use amcheck::Scope;
use watchpost_probe::sql::ident::parse_names;
use watchpost_probe::{
    Error, Findings, Info, Kind, Probe, Report, Result, Status, Threshold, config, measurement, sql,
};

struct PgIntegrity;

impl Probe for PgIntegrity {
    fn describe() -> Info {
        Info::new(
            "pg-integrity",
            Kind::Integrity,
            "PostgreSQL data checksums, B-tree index checks and constraint audits",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "postgresql.integrity.data_checksums",
            "1",
            "1 when the cluster has data checksums",
        )
        .measures(
            "postgresql.integrity.checksum_failures",
            "1",
            "pages that failed checksum verification, all databases",
        )
        .measures(
            "postgresql.integrity.index_corruptions",
            "1",
            "B-tree indexes amcheck found corrupt",
        )
        .measures(
            "postgresql.integrity.indexes_checked",
            "1",
            "B-tree indexes amcheck verified",
        )
        .measures(
            "postgresql.integrity.scan.position",
            "1",
            "where in its cycle the active scan is, 0 to 1",
        )
        .measures(
            "postgresql.integrity.scan.blocks",
            "1",
            "table blocks the active scan checked this run",
        )
        .measures(
            "postgresql.integrity.scan.rate",
            "By/s",
            "bytes of table pages the active scan checked per second",
        )
        .measures(
            "postgresql.integrity.scan.corruptions",
            "1",
            "corrupt pages and indexes the active scan found this run",
        )
        .measures(
            "postgresql.integrity.constraint_violations",
            "1",
            "rows violating a configured constraint audit, per rule",
        )
    }

    fn check() -> Result<Report> {
        let target = sql::target_from_config("target", "primary")?;
        let require_checksums: bool = config::get_or("require_checksums", false)?;
        let scope = match config::raw("check_indexes") {
            None => None,
            Some(raw) if raw.trim() == "*" => Some(Scope::All),
            Some(raw) => {
                Some(Scope::Tables(parse_names(&raw).map_err(|e| {
                    Error::msg(format!("config `check_indexes`: {e}"))
                })?))
            }
        };
        let limit =
            Threshold::above(0.0, 0.0).configured("violations_warning", "violations_critical")?;
        let rules = rules::parse_all(&config::entries()).map_err(Error::msg)?;
        let scan = scan::Settings::from_config()?;

        let mut findings = Findings::new();
        // Each part stands alone; a server that cannot be reached ends the
        // run with its status at the first.
        if let Err(error) = check_checksums(&target, require_checksums, &mut findings) {
            if error.status().is_some() {
                return Err(error);
            }
            findings.problem(
                Status::Unknown,
                format!("checksums: cannot be checked: {error}"),
            );
        }
        if let Some(scope) = scope {
            findings.part("index checks", |f| check_indexes(&target, &scope, f));
        }
        if let Some(scan) = &scan {
            findings.part("integrity scan", |f| {
                let missing = match amcheck::installed(&target)? {
                    None => Some(
                        "the amcheck extension is not installed (CREATE EXTENSION amcheck)"
                            .to_string(),
                    ),
                    Some(schema) => match scan::missing_prerequisite(&target, &schema)? {
                        None => return scan::run(&target, &schema, scan, f),
                        missing => missing,
                    },
                };
                let missing = missing.unwrap_or_default();
                if scan.explicit {
                    return Err(Error::msg(format!("`scan_cycle` is set but {missing}")));
                }
                // The shipped default on a server not set up for it: said,
                // not alarmed; `scan_cycle = "off"` silences it.
                f.note(format!(
                    "integrity scan not running ({missing}): latent corruption in pages no \
                     query reads goes unseen; set scan_cycle = \"off\" to turn it off"
                ));
                Ok(())
            });
        }
        let mut passed = 0;
        for rule in &rules {
            match audits::run(&target, rule) {
                Ok(found) => {
                    findings.push(
                        measurement(
                            "postgresql.integrity.constraint_violations",
                            found.violations as f64,
                            "1",
                        )
                        .attr("rule", rule.key.as_str()),
                    );
                    let status = limit.status(found.violations as f64);
                    if found.violations == 0 {
                        passed += 1;
                    } else {
                        let examples = if found.examples.is_empty() {
                            String::new()
                        } else {
                            format!(", e.g. ({})", found.examples.join("), ("))
                        };
                        // Within limits that allow some, it is only a note.
                        findings.problem(
                            status,
                            format!("{}: {} violations{examples}", rule.key, found.violations),
                        );
                    }
                }
                Err(error) if error.status().is_some() => return Err(error),
                Err(error) => findings.problem(Status::Unknown, format!("{}: {error}", rule.key)),
            }
        }
        if !rules.is_empty() {
            findings.note(format!(
                "{passed} of {} constraint audits passed",
                rules.len()
            ));
        }
        Ok(findings.into_report())
    }
}

fn check_checksums(target: &str, required: bool, findings: &mut Findings) -> Result<()> {
    let checksums = checksums::read(target)?;
    findings.push(measurement(
        "postgresql.integrity.data_checksums",
        f64::from(u8::from(checksums.enabled)),
        "1",
    ));
    findings.push(measurement(
        "postgresql.integrity.checksum_failures",
        checksums.failures as f64,
        "1",
    ));
    if checksums.failures > 0 {
        findings.problem(
            Status::Critical,
            format!(
                "{} pages failed checksum verification ({}; last at {})",
                checksums.failures,
                checksums.databases.as_deref().unwrap_or("?"),
                checksums.last_failure.as_deref().unwrap_or("?")
            ),
        );
    } else if checksums.enabled {
        findings.note("data checksums on, no failures");
    } else if required {
        findings.problem(
            Status::Warning,
            "data checksums are off (`require_checksums` is set): corruption on disk goes unseen",
        );
    } else {
        findings.note("data checksums are off");
    }
    Ok(())
}

fn check_indexes(target: &str, scope: &Scope, findings: &mut Findings) -> Result<()> {
    let Some(schema) = amcheck::installed(target)? else {
        findings.problem(
            Status::Unknown,
            "`check_indexes` is set but the amcheck extension is not installed \
             (CREATE EXTENSION amcheck)",
        );
        return Ok(());
    };
    let verified = amcheck::verify(target, &schema, scope)?;
    findings.push(measurement(
        "postgresql.integrity.index_corruptions",
        verified.corrupt.len() as f64,
        "1",
    ));
    findings.push(measurement(
        "postgresql.integrity.indexes_checked",
        verified.indexes as f64,
        "1",
    ));
    if verified.corrupt.is_empty() {
        findings.note(format!("{} B-tree indexes verified", verified.indexes));
    } else {
        findings.problem(
            Status::Critical,
            format!(
                "{} of {} B-tree indexes are corrupt: {}",
                verified.corrupt.len(),
                verified.indexes,
                verified.corrupt.join("; ")
            ),
        );
    }
    Ok(())
}

watchpost_probe::export_probe!(PgIntegrity);

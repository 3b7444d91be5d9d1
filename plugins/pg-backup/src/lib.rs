//! `pg-backup`: is there a recent, complete backup, and does the WAL
//! archive continue it without gaps?
//!
//! Reads a repository through a `dirs` grant (read-only; the probe sees
//! nothing else of the filesystem):
//! - pgBackRest: `backup/STANZA/backup.info` lists the backups; the newest
//!   one's `backup.manifest` lists its files, which must all be in the
//!   repository with their recorded sizes.
//! - `pg_basebackup`: a directory with `backup_manifest` (the granted
//!   directory, or the newest of its subdirectories); the manifest must
//!   match its own checksum and, in plain format, every file it lists must
//!   exist with its size (with `verify_checksums`, its checksum too).
//! - WAL-G / wal-e: `basebackups_005/*_backup_stop_sentinel.json` (age
//!   and size only; `validate` warns that files and WAL are not checked).
//! - Barman: not supported (an error here and in `validate`).
//!
//! Measurements (attribute `repository`: the grant's name):
//! `postgresql.backup.age` (s since the newest backup finished),
//! `postgresql.backup.size` (By, the database size it holds),
//! `postgresql.backup.complete` (1/0), `postgresql.backup.count`, and with
//! an archive, `postgresql.backup.wal_missing_segments` (segments missing
//! between the backup's first WAL segment and the newest archived one) and
//! `postgresql.backup.wal_segments`. After a promotion the archive is
//! followed the way recovery follows it: the newest timeline's `.history`
//! file gives the switch points (see the `wal` module); a missing history
//! file is `critical` too.
//!
//! Statuses: no backup at all, an incomplete or corrupt backup, or a gap
//! in the archive are `critical`; age follows its limits.
//!
//! Config (defaults in brackets):
//! - `repo`: the name of the granted directory holding the backups, or
//!   several, comma-separated (pgBackRest's `repo1`, `repo2`, ...: each is
//!   checked and measured on its own, its messages prefixed with its
//!   name) [`repo`].
//! - `format`: `pgbackrest`, `pg_basebackup`, `wal-g` or `auto` (guess
//!   from the layout) [`auto`].
//! - `stanza`: the pgBackRest stanza [the only one in the repository].
//! - `archive`: the granted directory of a WAL archive (`archive_command`
//!   copies there) [`archive`, when granted; for pgBackRest, the
//!   repository's own `archive/STANZA`].
//! - `age_warning` / `age_critical`: seconds since the newest backup
//!   finished [93600 (26 h) / 180000 (50 h)].
//! - `verify_checksums`: read every file of a plain `pg_basebackup` and
//!   check its manifest checksum (CRC-32C or SHA-256) [false].
//! - `wal_segment_size`: bytes [16777216].

mod basebackup;
mod pgbackrest;
mod wal;

use std::path::Path;
use std::time::SystemTime;
use wal::Segment;
use watchpost_probe::{
    Findings, Info, Kind, Probe, Report, Result, Status, Threshold, bail, config, dirs, measurement,
};

/// One backup, as read from a repository.
pub struct Backup {
    pub format: &'static str,
    pub label: String,
    /// When it finished.
    pub finished: Option<SystemTime>,
    /// Bytes of the database it holds.
    pub size: u64,
    /// Its first WAL segment.
    pub start: Option<Segment>,
    /// Why it is not complete (empty: complete).
    pub problems: Vec<String>,
    /// Backups in the repository.
    pub count: usize,
    /// What else the reader found worth saying (the backup's type, where
    /// its files were read from, what could not be checked).
    pub notes: Vec<String>,
}

impl Backup {
    fn new(format: &'static str, label: &str) -> Self {
        Backup {
            format,
            label: label.to_string(),
            finished: None,
            size: 0,
            start: None,
            problems: Vec::new(),
            count: 1,
            notes: Vec::new(),
        }
    }
}

/// The segment holding `lsn` (`X/Y`) on `timeline`.
pub fn lsn_segment(lsn: &str, timeline: u32, segment_size: u64) -> Option<Segment> {
    let (high, low) = lsn.split_once('/')?;
    let lsn = (u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?;
    Some(Segment {
        timeline,
        number: lsn / segment_size.max(1),
    })
}

/// CRC-32C (Castagnoli), as `pg_basebackup` manifests use.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut crc = i as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
        *slot = crc;
    }
    !data.iter().fold(!0u32, |crc, &b| {
        table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

fn human(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// WAL-G / wal-e: the newest `*_backup_stop_sentinel.json`.
fn walg(repo: &Path) -> Option<Backup> {
    let dir = repo.join("basebackups_005");
    let mut sentinels: Vec<(SystemTime, std::path::PathBuf)> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with("_backup_stop_sentinel.json")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    sentinels.sort();
    let count = sentinels.len();
    let (finished, path) = sentinels.pop()?;
    let name = path
        .file_name()?
        .to_string_lossy()
        .replace("_backup_stop_sentinel.json", "");
    let mut backup = Backup::new("wal-g", &name);
    backup.count = count;
    backup.finished = Some(finished);
    if let Ok(json) = std::fs::read_to_string(&path)
        .map_err(|_| ())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|_| ()))
    {
        backup.size = json["UncompressedSize"].as_u64().unwrap_or(0);
    } else {
        backup
            .problems
            .push(format!("{name}: its stop sentinel is not valid JSON"));
    }
    Some(backup)
}

struct PgBackup;

impl Probe for PgBackup {
    fn describe() -> Info {
        Info::new(
            "pg-backup",
            Kind::Integrity,
            "PostgreSQL backups: the newest one's age, size and completeness, and the WAL archive's continuity",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures("postgresql.backup.age", "s", "time since the newest backup finished")
        .measures("postgresql.backup.size", "By", "size of the database in the newest backup")
        .measures("postgresql.backup.complete", "1", "1 when the newest backup has every file its manifest lists")
        .measures("postgresql.backup.count", "1", "backups in the repository")
        .measures("postgresql.backup.wal_missing_segments", "1", "WAL segments missing from the archive after the newest backup's start")
        .measures("postgresql.backup.wal_segments", "1", "WAL segments archived from the newest backup's start on")
    }

    fn check() -> Result<Report> {
        let names: String = config::get_or("repo", "repo".to_string())?;
        let names: Vec<&str> = names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            bail!(
                "config `repo` names no directory grant: write e.g. \"repo\" or \"repo1, repo2\""
            );
        }
        let settings = Settings::from_config()?;
        let mut findings = Findings::new();
        if let [only] = names.as_slice() {
            check_repository(only, &settings, &mut findings)?;
        } else {
            // Each repository stands alone: one that cannot be read is
            // `unknown` with its reason, the others are still checked.
            for name in names {
                let mut own = Findings::new();
                own.part(name, |f| check_repository(name, &settings, f));
                findings.absorb(own, &format!("{name}: "));
            }
        }
        Ok(findings.into_report())
    }
}

/// Settings shared by every repository the probe checks.
struct Settings {
    format: String,
    verify: bool,
    segment_size: u64,
    age_limit: Threshold,
    stanza: Option<String>,
    archive: String,
}

impl Settings {
    fn from_config() -> Result<Settings> {
        let segment_size: u64 = config::get_or("wal_segment_size", 16u64 << 20)?;
        if !segment_size.is_power_of_two() || segment_size < (1 << 20) {
            bail!(
                "config `wal_segment_size` = {segment_size} must be a power of two of at least 1048576"
            );
        }
        Ok(Settings {
            format: config::get_or("format", "auto".to_string())?,
            verify: config::get_or("verify_checksums", false)?,
            segment_size,
            age_limit: Threshold::above(93_600.0, 180_000.0)
                .configured("age_warning", "age_critical")?,
            stanza: config::get::<String>("stanza")?,
            archive: config::get_or("archive", "archive".to_string())?,
        })
    }
}

/// Check the repository granted as `repo_name`: its newest backup and the
/// WAL archive after it.
fn check_repository(repo_name: &str, settings: &Settings, findings: &mut Findings) -> Result<()> {
    let repo = dirs::require(repo_name)?;
    let (verify, segment_size, age_limit) =
        (settings.verify, settings.segment_size, &settings.age_limit);
    let format = settings.format.as_str();
    let barman = repo.join("wals").is_dir() && repo.join("base").is_dir();
    let format = match format {
        "barman" => bail!(
            "Barman repositories are not supported: use `barman check` and \
                 `barman verify-backup` from a command probe"
        ),
        "auto" if barman => bail!(
            "`{repo_name}` looks like a Barman repository (base/ and wals/), which is not \
                 supported: set `repo` to a pgBackRest, pg_basebackup or WAL-G repository"
        ),
        "auto" if !pgbackrest::stanzas(&repo).is_empty() => "pgbackrest",
        "auto" if repo.join("basebackups_005").is_dir() => "wal-g",
        "auto" => "pg_basebackup",
        f @ ("pgbackrest" | "pg_basebackup" | "wal-g") => f,
        other => bail!(
            "config `format` = {other:?} is not valid: write \"pgbackrest\", \"pg_basebackup\", \"wal-g\" or \"auto\""
        ),
    };
    let mut wal_dir = None;
    let backup = match format {
        "pgbackrest" => {
            let stanzas = pgbackrest::stanzas(&repo);
            let stanza = match settings.stanza.clone() {
                Some(s) => s,
                None if stanzas.len() == 1 => stanzas[0].clone(),
                None if stanzas.is_empty() => {
                    bail!("no pgBackRest stanza in `{repo_name}` (no backup/STANZA/backup.info)")
                }
                None => bail!(
                    "`{repo_name}` holds several stanzas ({}): set `stanza`",
                    stanzas.join(", ")
                ),
            };
            wal_dir = Some((repo.join("archive").join(&stanza), 2));
            match pgbackrest::newest(&repo, &stanza, segment_size) {
                Ok(b) => b,
                Err(e) => {
                    findings.problem(Status::Critical, e);
                    None
                }
            }
        }
        "wal-g" => walg(&repo),
        _ => basebackup::newest(&repo, segment_size, verify),
    };
    if let Some(dir) = dirs::optional(&settings.archive)? {
        wal_dir = Some((dir, 0));
    }
    let Some(backup) = backup else {
        findings
            .push(measurement("postgresql.backup.count", 0.0, "1").attr("repository", repo_name));
        findings.problem(
            Status::Critical,
            format!("no {format} backup found in `{repo_name}`"),
        );
        return Ok(());
    };
    let attr = |m: watchpost_probe::Measurement| m.attr("repository", repo_name);
    findings.push(attr(measurement(
        "postgresql.backup.count",
        backup.count as f64,
        "1",
    )));
    findings.push(attr(measurement(
        "postgresql.backup.size",
        backup.size as f64,
        "By",
    )));
    let complete = backup.problems.is_empty();
    findings.push(attr(measurement(
        "postgresql.backup.complete",
        if complete { 1.0 } else { 0.0 },
        "1",
    )));
    for note in &backup.notes {
        findings.note(format!("{} backup {}: {note}", backup.format, backup.label));
    }
    for problem in &backup.problems {
        findings.problem(
            Status::Critical,
            format!("{} backup {}: {problem}", backup.format, backup.label),
        );
    }
    match backup.finished {
        Some(finished) => {
            let age = SystemTime::now()
                .duration_since(finished)
                .unwrap_or_default()
                .as_secs_f64();
            findings.push(attr(measurement("postgresql.backup.age", age, "s")));
            let status = age_limit.status(age);
            let text = format!(
                "newest {} backup {} finished {:.1} h ago ({})",
                backup.format,
                backup.label,
                age / 3600.0,
                human(backup.size as f64)
            );
            if status == Status::Ok {
                findings.note(text);
            } else {
                findings.problem(
                    status,
                    format!(
                        "{text}: older than {:.1} h",
                        if status == Status::Critical {
                            age_limit.critical
                        } else {
                            age_limit.warning
                        } / 3600.0
                    ),
                );
            }
        }
        None => findings.problem(
            Status::Warning,
            format!("backup {}: its finish time is unknown", backup.label),
        ),
    }
    if let (Some((dir, depth)), Some(start)) = (wal_dir, backup.start) {
        let mut archive = wal::Archive::default();
        wal::collect(&dir, depth, segment_size, &mut archive);
        let c = wal::continuity(&archive, start, segment_size);
        let archived = archive
            .segments
            .iter()
            .filter(|s| s.timeline >= start.timeline && s.number >= start.number)
            .count();
        findings.push(attr(measurement(
            "postgresql.backup.wal_segments",
            archived as f64,
            "1",
        )));
        findings.push(attr(measurement(
            "postgresql.backup.wal_missing_segments",
            c.missing.len() as f64,
            "1",
        )));
        for problem in &c.history_problems {
            findings.problem(
                Status::Critical,
                format!("the WAL archive's timelines: {problem}"),
            );
        }
        let timelines = if c.path.len() > 1 {
            format!(
                " across timelines {}",
                c.path
                    .iter()
                    .map(|(t, _)| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" → ")
            )
        } else {
            String::new()
        };
        match (c.newest, c.missing.first()) {
                (None, _) => findings.problem(
                    Status::Critical,
                    format!("the WAL archive has no segment from the backup's start ({}) on: the backup cannot be restored", start.name(segment_size)),
                ),
                (Some(_), Some(first)) => findings.problem(
                    Status::Critical,
                    format!(
                        "the WAL archive has a gap{timelines}: {} segment(s) missing, the first {}",
                        c.missing.len(),
                        first.name(segment_size)
                    ),
                ),
                (Some(newest), None) => findings.note(format!(
                    "WAL archived without gaps from {} to {}{timelines}",
                    start.name(segment_size),
                    newest.name(segment_size)
                )),
            }
    }
    Ok(())
}

watchpost_probe::export_probe!(PgBackup);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn lsns_map_to_segments() {
        let s = lsn_segment("0/2000028", 1, 16 << 20).unwrap();
        assert_eq!(s.name(16 << 20), "000000010000000000000002");
        let s = lsn_segment("1/FF000000", 3, 16 << 20).unwrap();
        assert_eq!(s.name(16 << 20), "0000000300000001000000FF");
    }
}

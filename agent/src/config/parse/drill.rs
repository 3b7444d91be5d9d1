//! `[[drill]]` entries: scheduled restore drills. Each becomes a
//! [`DrillSpec`] and a [`ProbeSpec`] of the same name (with
//! [`WasmSource::Drill`]), so that its reports go through the probes'
//! states, thresholds, remediations and telemetry.
//!
//! ```toml
//! [[drill]]
//! name = "restore"
//! every = "24h"
//! timeout = "1h"
//! backup = "/srv/backups/base"        # or pgbackrest = "main", or command = [...]
//! archive = "/srv/wal-archive"
//! checks = [{ query = "SELECT count(*) FROM orders", database = "app", min = 1 }]
//! ```

use super::super::diagnostics::line_column;
use super::super::model::*;
use super::super::reader::{Section, type_name};
use super::super::units::{self, SizeRange};
use super::{Parser, confirm, flapping, valid_name};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use toml::de::DeValue;

/// Bounds of `reserve` (free space left after the restore).
const RESERVE: SizeRange = SizeRange::new(0, 1 << 50);

use super::super::keys::{Kind, Table, key};
use super::{FLAPPING, FOR, RECOVER};

/// `[[drill]]`'s keys.
pub(super) static DRILL: Table = Table {
    heading: "[[drill]]",
    doc: "A scheduled restore drill: restore the newest backup into a scratch directory, recover it, verify it and tear it down. Give exactly one of `backup`, `pgbackrest` or `command`; `method` picks the engine of a `backup` (PostgreSQL, MariaDB or Redis). A drill is also a probe of the same name, so its reports take the probes' path (thresholds, remediations, telemetry).",
    keys: &[
        key(
            "name",
            Kind::String,
            "required",
            "Unique name among probes and drills.",
        ),
        key(
            "every",
            Kind::Duration(units::SCHEDULE),
            "\"24h\"",
            "How often the drill runs.",
        ),
        key(
            "timeout",
            Kind::Duration(units::SCHEDULE),
            "\"1h\"",
            "Deadline of one drill, restore to teardown.",
        ),
        key(
            "reserve",
            Kind::Size(RESERVE),
            "\"1GiB\"",
            "Free space the restore must leave on the scratch filesystem.",
        ),
        key(
            "expected_size",
            Kind::Size(RESERVE),
            "none (required with `command`)",
            "Space the restore takes, checked before the drill and watched during it.",
        ),
        key(
            "superuser",
            Kind::String,
            "\"postgres\"",
            "The restored server's superuser, for the checks.",
        ),
        key(
            "amcheck",
            Kind::Bool,
            "true",
            "Verify B-tree indexes with amcheck.",
        ),
        key(
            "checksums",
            Kind::Bool,
            "true",
            "Verify data page checksums (pg_checksums) when the cluster has them.",
        ),
        key(
            "bin_dir",
            Kind::String,
            "\"/usr/lib/postgresql/15/bin\"",
            "Directory of the server's programs: PostgreSQL's (postgres, pg_ctl); mariadbd and mariadb-backup, or redis-server and redis-check-rdb/-aof (default for those: found in PATH, /usr/sbin and /usr/local/sbin).",
        ),
        key(
            "run_as_owner_of",
            Kind::String,
            "the backup directory",
            "A directory whose owner the restored server runs as (required with `command`).",
        ),
        key(
            "method",
            Kind::String,
            "\"pg_basebackup\"",
            "What `backup` holds: \"pg_basebackup\", \"mariadb-backup\" (a mariadb-backup/XtraBackup copy, prepared and started with mariadbd) or \"redis-rdb\" (an RDB file, or the newest *.rdb in a directory, loaded by redis-server).",
        ),
        key(
            "backup",
            Kind::String,
            "none",
            "The backup to restore (relative to the config's directory): a pg_basebackup directory, a mariadb-backup directory or an RDB file or directory, after `method`.",
        ),
        key(
            "aof",
            Kind::String,
            "none",
            "method = \"redis-rdb\": an append-only directory (appendonlydir) to check and load instead of the RDB.",
        ),
        key(
            "keys",
            Kind::Strings,
            "[]",
            "method = \"redis-rdb\": keys that must exist in the restored copy.",
        ),
        key(
            "archive",
            Kind::String,
            "none",
            "The WAL archive to recover from, with `backup`.",
        ),
        key(
            "pgbackrest",
            Kind::String,
            "none",
            "A pgBackRest stanza to restore.",
        ),
        key(
            "pgbackrest_config",
            Kind::String,
            "pgBackRest's default",
            "pgBackRest's config file, with `pgbackrest`.",
        ),
        key(
            "command",
            Kind::Strings,
            "none",
            "A program (and arguments) that fills $WATCHPOST_DRILL_DATA with a data directory.",
        ),
        key(
            "checks",
            Kind::Tables,
            "[]",
            "Queries whose first value must lie within bounds on the restored copy.",
        )
        .of(&CHECK),
        FOR,
        RECOVER,
        key(
            "flapping",
            Kind::Table,
            "[agent]'s",
            "Flap detection for this drill.",
        )
        .of(&FLAPPING),
        key(
            "thresholds",
            Kind::Table,
            "{}",
            "Ranges for the drill's measurements, as in [[probe]].",
        )
        .of(&super::thresholds::THRESHOLDS),
    ],
    entries: None,
};

/// One entry of a drill's `checks`.
static CHECK: Table = Table {
    heading: "[[drill]] checks",
    doc: "A query run on the restored copy; the drill fails if its first value is below `min` or above `max` (give one or both).",
    keys: &[
        key(
            "query",
            Kind::String,
            "required",
            "The SQL query, e.g. \"SELECT count(*) FROM orders\"; for a Redis drill a read command with an integer reply, e.g. \"DBSIZE\" or \"LLEN queue\".",
        ),
        key(
            "database",
            Kind::String,
            "\"postgres\" (MariaDB: none; Redis: \"0\")",
            "The database to run it in (Redis: the database number).",
        ),
        key("min", Kind::Number, "none", "Lowest acceptable value."),
        key("max", Kind::Number, "none", "Highest acceptable value."),
    ],
    entries: None,
};

impl Parser<'_, '_> {
    /// The drills, and the probe entries that schedule them.
    pub(super) fn drills(
        &mut self,
        top: &mut Section,
        probes: &[ProbeSpec],
    ) -> (Vec<DrillSpec>, Vec<ProbeSpec>) {
        let mut drills: Vec<DrillSpec> = Vec::new();
        let mut specs = Vec::new();
        for (table, span) in self.array_of_tables(
            top,
            "drill",
            "[[drill]] name = \"restore\" backup = \"/srv/backups/base\" archive = \"/srv/wal\"",
        ) {
            let mut s = Section::new(&DRILL, "[[drill]]", table, span.clone());
            let name = s.required_string(&mut self.d, "name", "\"restore\"");
            if let Some(name) = &name {
                s.path = format!("[[drill]] {:?}", name.value);
                let taken = probes.iter().any(|p| p.name == name.value)
                    || drills.iter().any(|d| d.name == name.value);
                if !valid_name(&name.value) || taken {
                    self.d.error(
                        name.span.clone(),
                        format!(
                            "{}: the name must be 1 to 64 letters, digits, `-`, `_` or `.` and not used by another probe or drill",
                            s.path
                        ),
                    );
                }
            }
            let body = self.drill_body(&mut s, name.as_ref().map_or("?", |n| n.value.as_str()));
            s.finish(&mut self.d);
            if let (Some(name), Some((drill, mut spec))) = (name, body) {
                let (line, column) = line_column(self.source.text, name.span.start);
                spec.place = Place {
                    file: self.source.file.to_string(),
                    line,
                    column,
                };
                drills.push(drill);
                specs.push(spec);
            }
        }
        (drills, specs)
    }

    fn absolute(&self, text: &str) -> PathBuf {
        let path = PathBuf::from(text);
        if path.is_absolute() {
            path
        } else {
            self.source.base_dir.join(path)
        }
    }

    fn drill_body(&mut self, s: &mut Section, name: &str) -> Option<(DrillSpec, ProbeSpec)> {
        let d = &mut self.d;
        let every = s
            .duration(d, "every", units::SCHEDULE)
            .map_or(Duration::from_secs(86_400), |v| v.value);
        let timeout = s
            .duration(d, "timeout", units::SCHEDULE)
            .map_or(Duration::from_secs(3600), |v| v.value);
        let reserve = s.size(d, "reserve", RESERVE).map_or(1 << 30, |v| v.value);
        let expected_size = s.size(d, "expected_size", RESERVE).map(|v| v.value);
        let superuser = s
            .string(d, "superuser")
            .map_or_else(|| "postgres".to_string(), |v| v.value);
        let amcheck = s.bool(d, "amcheck").unwrap_or(true);
        let checksums = s.bool(d, "checksums").unwrap_or(true);
        let bin_dir = s.string(d, "bin_dir").map(|b| PathBuf::from(b.value));
        let owner_of = s.string(d, "run_as_owner_of").map(|p| p.value);
        let backup = s.string(d, "backup").map(|p| p.value);
        let method_name = s.string(d, "method");
        let aof = s.string(d, "aof").map(|p| p.value);
        let keys: Vec<String> = s
            .string_list(d, "keys")
            .map(|l| l.into_iter().map(|k| k.value).collect())
            .unwrap_or_default();
        let archive = s.string(d, "archive").map(|p| p.value);
        let stanza = s.string(d, "pgbackrest").map(|p| p.value);
        let br_config = s.string(d, "pgbackrest_config").map(|p| p.value);
        let command = if s.has("command") {
            self.argv(&s.path.clone(), "command", s)
        } else {
            None
        };
        let engine = method_name
            .as_ref()
            .map_or("pg_basebackup", |m| m.value.as_str());
        let default_database = match engine {
            "mariadb-backup" => "",
            "redis-rdb" => "0",
            _ => "postgres",
        };
        let queries = self.drill_queries(s, default_database);
        let d = &mut self.d;
        let confirm = confirm(d, s, Confirm::default());
        let flapping = s
            .table(d, "flapping")
            .map_or(Flapping::default(), |f| flapping(d, f, Flapping::default()));
        let thresholds = self.thresholds(s);
        let given = [backup.is_some(), stanza.is_some(), command.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            self.d.error(
                s.span.clone(),
                format!("{}: give exactly one of `backup` (a pg_basebackup directory, with `archive`), `pgbackrest` (a stanza) or `command` (a program that fills $WATCHPOST_DRILL_DATA)", s.path),
            );
            return None;
        }
        let engine_keys = super::drill_engine::EngineKeys {
            method: method_name.as_ref(),
            archive: archive.is_some(),
            aof: aof.as_deref(),
            keys: !keys.is_empty(),
        };
        if !self.drill_engine_keys(s, &engine_keys, backup.is_some()) {
            return None;
        }
        if engine == "redis-rdb" && !self.redis_checks(s, &queries) {
            return None;
        }
        let method = if let (Some(backup), "mariadb-backup") = (&backup, engine) {
            DrillMethod::MariadbBackup {
                backup: self.absolute(backup),
            }
        } else if let (Some(backup), "redis-rdb") = (&backup, engine) {
            DrillMethod::RedisRdb {
                backup: self.absolute(backup),
                aof: aof.as_deref().map(|a| self.absolute(a)),
            }
        } else if let Some(backup) = &backup {
            DrillMethod::PgBasebackup {
                backup: self.absolute(backup),
                archive: archive.as_deref().map(|a| self.absolute(a)),
            }
        } else if let Some(stanza) = stanza {
            DrillMethod::PgBackRest {
                stanza,
                config: br_config.as_deref().map(|c| self.absolute(c)),
            }
        } else {
            if expected_size.is_none() {
                self.d.error(s.span.clone(), format!("{}: a `command` drill needs `expected_size` (e.g. \"50GiB\"): the space its restore takes, checked before the drill and watched during it", s.path));
                return None;
            }
            DrillMethod::Command(command?)
        };
        let owner_of = match (&owner_of, &method) {
            (Some(path), _) => self.absolute(path),
            (None, DrillMethod::PgBasebackup { backup, .. })
            | (None, DrillMethod::MariadbBackup { backup })
            | (None, DrillMethod::RedisRdb { backup, .. }) => backup.clone(),
            (None, DrillMethod::PgBackRest { .. }) => PathBuf::from("/var/lib/pgbackrest"),
            (None, DrillMethod::Command(_)) => {
                self.d.error(s.span.clone(), format!("{}: a `command` drill needs `run_as_owner_of`: a directory whose owner the restored server runs as (e.g. the backup's)", s.path));
                return None;
            }
        };
        if name == "?" {
            return None;
        }
        let drill = DrillSpec {
            name: name.to_string(),
            method,
            // Empty for MariaDB and Redis: their programs are found in PATH.
            bin_dir: bin_dir.unwrap_or_else(|| match engine {
                "mariadb-backup" | "redis-rdb" => PathBuf::new(),
                _ => PathBuf::from("/usr/lib/postgresql/15/bin"),
            }),
            owner_of,
            superuser,
            reserve,
            expected_size,
            queries,
            keys,
            amcheck,
            checksums,
            timeout,
        };
        let spec = ProbeSpec {
            name: name.to_string(),
            wasm: WasmSource::Drill(name.to_string()),
            sha256: None,
            every,
            timeout,
            memory: 64 << 20,
            targets: Vec::new(),
            dirs: BTreeMap::new(),
            config: BTreeMap::new(),
            thresholds,
            confirm,
            flapping,
            place: Place::default(),
        };
        Some((drill, spec))
    }

    fn drill_queries(&mut self, s: &mut Section, default_database: &str) -> Vec<DrillQuery> {
        let mut queries = Vec::new();
        let Some(raw) = s.raw("checks") else {
            return queries;
        };
        let DeValue::Array(items) = raw.get_ref() else {
            self.d.error(raw.span(), format!("{}: `checks` must be an array of tables, e.g. [{{ query = \"SELECT count(*) FROM t\", min = 1 }}]", s.path));
            return queries;
        };
        for item in items.iter() {
            let DeValue::Table(table) = item.get_ref() else {
                self.d.error(
                    item.span(),
                    format!(
                        "{}: each check must be a table, found {}",
                        s.path,
                        type_name(item.get_ref())
                    ),
                );
                continue;
            };
            let mut c = Section::new(&CHECK, format!("{} check", s.path), table, item.span());
            let d = &mut self.d;
            let query = c.required_string(d, "query", "\"SELECT count(*) FROM orders\"");
            let database = c
                .string(d, "database")
                .map_or_else(|| default_database.to_string(), |v| v.value);
            let min = c.number(d, "min").map(|v| v.value);
            let max = c.number(d, "max").map(|v| v.value);
            if min.is_none() && max.is_none() {
                d.error(
                    item.span(),
                    format!(
                        "{}: a check needs `min` and/or `max` (bounds on the query's first value)",
                        s.path
                    ),
                );
            }
            c.finish(d);
            if let Some(query) = query {
                queries.push(DrillQuery {
                    database,
                    query: query.value,
                    min,
                    max,
                });
            }
        }
        queries
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{DrillMethod, WasmSource, parse_str};
    use std::path::Path;

    #[test]
    fn a_drill_is_also_a_scheduled_probe() {
        let text = "[[drill]]\nname = \"restore\"\nevery = \"12h\"\nbackup = \"/srv/b\"\narchive = \"/srv/wal\"\n\
                    checks = [{ query = \"SELECT 1\", min = 1 }]\n\
                    [drill.thresholds.\"postgresql.restore.duration\"]\nwarning = \"~:60\"\n";
        let config = parse_str("w.toml", text, Path::new("/")).unwrap();
        assert_eq!(config.drills.len(), 1);
        let drill = &config.drills[0];
        assert!(
            matches!(&drill.method, DrillMethod::PgBasebackup { archive: Some(a), .. } if a == Path::new("/srv/wal"))
        );
        assert_eq!(drill.owner_of, Path::new("/srv/b"));
        let probe = config.probes.iter().find(|p| p.name == "restore").unwrap();
        assert_eq!(probe.wasm, WasmSource::Drill("restore".into()));
        assert_eq!(probe.every.as_secs(), 12 * 3600);
        assert_eq!(probe.thresholds.len(), 1);
    }

    #[test]
    fn a_drill_needs_exactly_one_source_and_bounds_on_checks() {
        let errors = parse_str(
            "w.toml",
            "[[drill]]\nname = \"r\"\nbackup = \"/b\"\npgbackrest = \"main\"\nchecks = [{ query = \"SELECT 1\" }]\n",
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(errors.contains("give exactly one of `backup`"), "{errors}");
        assert!(
            errors.contains("a check needs `min` and/or `max`"),
            "{errors}"
        );
    }

    #[test]
    fn a_command_drill_declares_its_size() {
        let base = "[[drill]]\nname = \"r\"\ncommand = [\"/usr/local/bin/restore\"]\nrun_as_owner_of = \"/srv\"\n";
        let errors = parse_str("w.toml", base, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(errors.contains("w.toml:1:1"), "{errors}");
        assert!(errors.contains("needs `expected_size`"), "{errors}");
        let config = parse_str(
            "w.toml",
            &format!("{base}expected_size = \"2GiB\"\n"),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(config.drills[0].expected_size, Some(2 << 30));
    }
}

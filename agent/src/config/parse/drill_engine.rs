//! The keys of `[[drill]]` that pick and shape the MariaDB and Redis
//! restore drills (`method = "mariadb-backup"` / `"redis-rdb"`): which
//! method, which keys go with which, and the commands a Redis drill's
//! `checks` may run. Kept apart from `drill`, which reads the keys every
//! drill shares.

use super::super::model::{DrillQuery, REDIS_DRILL_COMMANDS};
use super::super::reader::{At, Section};
use super::Parser;

/// The methods `method` may name.
const METHODS: [&str; 3] = ["pg_basebackup", "mariadb-backup", "redis-rdb"];

/// What a drill's entry said about its method, for [`Parser::drill_engine_keys`].
pub(super) struct EngineKeys<'a> {
    pub method: Option<&'a At<String>>,
    /// `archive` was given.
    pub archive: bool,
    pub aof: Option<&'a str>,
    /// `keys` was given and not empty.
    pub keys: bool,
}

/// The words of a Redis drill check (`"LLEN queue"`), or why it is not
/// one a drill runs.
pub fn redis_check_words(query: &str) -> Result<Vec<String>, String> {
    let words: Vec<String> = query.split_whitespace().map(String::from).collect();
    let Some(command) = words.first() else {
        return Err("an empty command".into());
    };
    if !REDIS_DRILL_COMMANDS
        .iter()
        .any(|c| c.eq_ignore_ascii_case(command))
    {
        return Err(format!(
            "{command:?} is not a command a Redis drill runs; use one of {}",
            REDIS_DRILL_COMMANDS.join(", ")
        ));
    }
    Ok(words)
}

impl Parser<'_, '_> {
    /// Errors for a `method` this drill cannot have or keys its method
    /// does not take; false when the drill cannot be built.
    pub(super) fn drill_engine_keys(
        &mut self,
        s: &Section,
        given: &EngineKeys,
        has_backup: bool,
    ) -> bool {
        let path = s.path.clone();
        let method = given.method.map_or("pg_basebackup", |m| m.value.as_str());
        if let Some(m) = given.method
            && !METHODS.contains(&m.value.as_str())
        {
            self.d.error(
                m.span.clone(),
                format!(
                    "{path}: `method` {:?} is not one the drill knows; use \"pg_basebackup\", \"mariadb-backup\" or \"redis-rdb\"",
                    m.value
                ),
            );
            return false;
        }
        let mut ok = true;
        if method != "pg_basebackup" && !has_backup {
            self.d.error(
                s.span.clone(),
                format!("{path}: method = {method:?} needs `backup` (the copy to restore), not `pgbackrest` or `command`"),
            );
            ok = false;
        }
        if method != "pg_basebackup" && given.archive {
            self.d.error(
                s.span.clone(),
                format!(
                    "{path}: `archive` (a WAL archive) is for PostgreSQL drills only; remove it"
                ),
            );
            ok = false;
        }
        if method != "redis-rdb" && (given.aof.is_some() || given.keys) {
            self.d.error(
                s.span.clone(),
                format!("{path}: `aof` and `keys` are for method = \"redis-rdb\" only"),
            );
            ok = false;
        }
        ok
    }

    /// Errors for Redis checks that are not integer reads.
    pub(super) fn redis_checks(&mut self, s: &Section, queries: &[DrillQuery]) -> bool {
        let mut ok = true;
        for q in queries {
            if let Err(why) = redis_check_words(&q.query) {
                self.d.error(
                    s.span.clone(),
                    format!("{}: check {:?}: {why}", s.path, q.query),
                );
                ok = false;
            }
            if q.database.parse::<u16>().is_err() {
                self.d.error(
                    s.span.clone(),
                    format!(
                        "{}: check {:?}: `database` is a Redis database number here, e.g. \"0\"",
                        s.path, q.query
                    ),
                );
                ok = false;
            }
        }
        ok
    }
}

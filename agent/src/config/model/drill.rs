//! The restore drills' part of the typed config (`[drills.NAME]`): how a
//! drill gets its backup, what it verifies on the restored copy, and its
//! bounds. Read by `drill/`; validated by `config/parse/drill.rs` and
//! `drill_engine.rs`.

use std::path::PathBuf;
use std::time::Duration;

/// How a drill gets the backup into its scratch directory.
#[derive(Clone, Debug, PartialEq)]
pub enum DrillMethod {
    /// A `pg_basebackup` backup directory (plain or tar format; or the
    /// newest subdirectory holding a `backup_manifest`), with WAL from
    /// `archive` through `restore_command`.
    PgBasebackup {
        backup: PathBuf,
        archive: Option<PathBuf>,
    },
    /// `pgbackrest restore` of the newest backup of `stanza`.
    PgBackRest {
        stanza: String,
        config: Option<PathBuf>,
    },
    /// Any command that fills `$WATCHPOST_DRILL_DATA` with a data
    /// directory ready to start (recovery settings included).
    Command(Vec<String>),
    /// `method = "mariadb-backup"`: a `mariadb-backup` (or XtraBackup)
    /// copy, `backup` itself or its newest subdirectory holding a
    /// checkpoints file; copied, prepared and started on a private socket.
    MariadbBackup { backup: PathBuf },
    /// `method = "redis-rdb"`: an RDB file (or the newest `*.rdb` under a
    /// directory), and an AOF directory (`appendonlydir`) to load instead
    /// when `aof` is given.
    RedisRdb {
        backup: PathBuf,
        aof: Option<PathBuf>,
    },
}

/// The commands a Redis drill's `checks` may run on the restored copy:
/// reads whose reply is an integer.
pub const REDIS_DRILL_COMMANDS: &[&str] = &[
    "DBSIZE", "EXISTS", "STRLEN", "LLEN", "HLEN", "SCARD", "ZCARD", "XLEN", "PFCOUNT",
];

impl DrillMethod {
    /// The engine whose restore this is, as the prefix of the drill's
    /// measurements: `postgresql`, `mysql` or `redis`.
    pub fn engine(&self) -> &'static str {
        match self {
            DrillMethod::MariadbBackup { .. } => "mysql",
            DrillMethod::RedisRdb { .. } => "redis",
            _ => "postgresql",
        }
    }
}

/// One verification query of a drill: its first value must be within the
/// bounds (e.g. `SELECT count(*) FROM orders` at least 1000).
#[derive(Clone, Debug, PartialEq)]
pub struct DrillQuery {
    pub database: String,
    pub query: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DrillSpec {
    pub name: String,
    pub method: DrillMethod,
    pub bin_dir: PathBuf,
    /// Run the restored server as the owner of this directory (the backup,
    /// the repository or, for `command`, `run_as_owner_of`).
    pub owner_of: PathBuf,
    /// The restored cluster's superuser, for verification.
    pub superuser: String,
    /// Free space that must remain after the restore, and while it runs
    /// (bytes; the drill aborts when the scratch filesystem falls below).
    pub reserve: u64,
    /// Bytes the restore takes (`expected_size`): required for a
    /// `command` drill, a lower bound on the measured size otherwise.
    pub expected_size: Option<u64>,
    pub queries: Vec<DrillQuery>,
    /// Redis keys that must exist in the restored copy (`keys`).
    pub keys: Vec<String>,
    pub amcheck: bool,
    pub checksums: bool,
    pub timeout: Duration,
}

//! `[cluster]`'s typed, validated form: the scope, the etcd endpoints and
//! how they are reached (TLS, authentication), the lease and the member's
//! own settings. Split from the rest of the model because cluster mode is
//! read only by `cluster` and its CLI.

use super::Secret;
use std::path::PathBuf;
use std::time::Duration;

/// `[cluster]`: how this node takes part in its replication cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    /// The cluster's name: its keys live under `/watchpost/SCOPE/`.
    pub scope: String,
    /// etcd client URLs (v3 API).
    pub etcd: Vec<String>,
    /// How the agent proves itself to etcd and checks etcd's certificate.
    pub etcd_access: EtcdAccess,
    /// `etcd_quota`: etcd's `--quota-backend-bytes` (default 2 GiB, etcd's
    /// default), which the database size is measured against when etcd
    /// does not report it.
    pub etcd_quota: u64,
    /// This member's name (default: `[agent] node`).
    pub name: String,
    /// The leader lease (default 3 s): a lost leader is replaced after at
    /// most this long, and demotes itself before it can be.
    pub ttl: Duration,
    /// How often the agent observes its server, renews its lease and
    /// decides (default `ttl / 6`).
    pub loop_wait: Duration,
    /// The target of the local server (a superuser or an admin role: it
    /// promotes, demotes and repoints replication).
    pub target: String,
    /// The engine of that target (its `kind`): which server backend the
    /// HA loop drives (PostgreSQL, MariaDB/MySQL, Redis/Valkey).
    pub engine: super::TargetKind,
    /// That target's own settings (URL, admin login, TLS files), for the
    /// backends that connect to their server by themselves (Redis).
    pub server_target: Option<Box<super::Target>>,
    pub data_dir: std::path::PathBuf,
    /// The server's programs: PostgreSQL's (`pg_ctl`, `pg_rewind`,
    /// `postgres`; default `/usr/lib/postgresql/15/bin`) or MariaDB's
    /// (`mariadbd`; default `/usr/sbin`).
    pub bin_dir: std::path::PathBuf,
    /// MariaDB only: the member's own option file, passed to `mariadbd`
    /// as `--defaults-file` (port, socket, `server_id`, `log_bin`,
    /// `log_slave_updates`, and `read_only = ON`, so that a restart not
    /// done by the agent comes back read-only).
    pub defaults_file: Option<std::path::PathBuf>,
    /// Where the other members reach this server (published in etcd).
    pub host: String,
    pub port: u16,
    /// The role followers stream as; its password comes from `passfile`
    /// (libpq format, readable by the postgres OS user), never from etcd.
    pub replication_user: String,
    pub passfile: Option<std::path::PathBuf>,
    /// `replication_sslmode`: libpq's `sslmode` of the streaming and
    /// `pg_rewind` connections to the leader (None: libpq's default,
    /// `prefer`, or `verify-full` when a CA is named).
    pub replication_sslmode: Option<String>,
    /// `replication_sslrootcert`: the CA file the leader's certificate is
    /// checked against (read by the postgres OS user).
    pub replication_sslrootcert: Option<PathBuf>,
    /// A standby further than this behind the leader's last published
    /// flush position is never promoted (Patroni's default: 1 MiB).
    pub max_lag_bytes: u64,
    /// When the leader's server crashes (its node alive), how long the
    /// agent restarts it in place before handing leadership over (0: hand
    /// over at once).
    pub restart_timeout: Duration,
    /// Never take the leader key (Patroni's `nofailover` tag).
    pub nofailover: bool,
    /// Among equally advanced standbys, the higher wins.
    pub failover_priority: u64,
    /// `synchronous`: quorum synchronous replication kept by the leader
    /// (Patroni's `synchronous_mode`, strict): a commit is acknowledged
    /// once `synchronous_node_count` standbys have flushed it, and only a
    /// standby proven to hold every acknowledged commit is promoted.
    pub synchronous: bool,
    /// `synchronous_node_count` (Patroni's name; default 1): how many
    /// standbys must flush a commit before it is acknowledged.
    pub synchronous_node_count: u32,
}

/// `[cluster]`'s `etcd_*` keys: TLS and authentication towards etcd.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EtcdAccess {
    /// `etcd_ca`: the CA that signed etcd's server certificates; `https`
    /// endpoints are verified against it alone (none: the OS trust store).
    pub ca: Option<PathBuf>,
    /// `etcd_cert` + `etcd_key`: the client certificate etcd's
    /// `--client-cert-auth` asks for (the key file private to the agent).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `etcd_user` + `etcd_password_file` (or `etcd_password_env`): etcd's
    /// `auth enable` user; the agent authenticates for a token.
    pub user: Option<String>,
    pub password: Option<Secret>,
}

impl ClusterSpec {
    /// The shipped leader lease.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3);

    /// The `sslmode` the replication and rewind connections use: the
    /// configured one, else `verify-full` with a CA, else libpq's `prefer`.
    pub fn sslmode(&self) -> &str {
        match (&self.replication_sslmode, &self.replication_sslrootcert) {
            (Some(mode), _) => mode,
            (None, Some(_)) => "verify-full",
            (None, None) => "prefer",
        }
    }
}

/// libpq's `sslmode` values, weakest first.
pub const SSLMODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

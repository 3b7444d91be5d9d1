//! The typed, validated config. Everything here has passed validation:
//! durations and sizes are within their ranges ([`super::units`]), ranges
//! parse, names are unique, every target a probe is granted exists, every
//! referenced probe exists.

mod cluster;
mod drill;

pub use cluster::{ClusterSpec, EtcdAccess, SSLMODES};
pub use drill::{DrillMethod, DrillQuery, DrillSpec, REDIS_DRILL_COMMANDS};

use super::range::Range;
use crate::report::Status;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A place in a config file, for messages about things that go wrong later
/// (a probe that fails to load after a reload, say).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Place {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it was read from (or `<embedded default>`), for messages.
    pub file: String,
    pub agent: Agent,
    pub targets: BTreeMap<String, Target>,
    pub probes: Vec<ProbeSpec>,
    pub remediations: Vec<Remediation>,
    /// Restore drills; each also appears in `probes` (with
    /// [`WasmSource::Drill`]) so that its reports go through the same
    /// states, thresholds, remediations and telemetry as a probe's.
    pub drills: Vec<DrillSpec>,
    pub telemetry: Telemetry,
    /// `[cluster]`: this node's part in a cluster sharing etcd (None: a
    /// single-node agent).
    pub cluster: Option<ClusterSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    /// This node's name in metrics and events (default: the host name).
    pub node: String,
    /// Persistent state, audit log and compile cache.
    pub state_dir: PathBuf,
    /// Status API and /metrics.
    pub listen: SocketAddr,
    /// Probe runs in flight at once (default: number of cores).
    pub concurrency: usize,
    /// `memory_budget`: the sum of the memory caps of the runs in flight
    /// (and of `describe` calls while probes load), in bytes; a run waits
    /// for room before it starts. Default 1 GiB.
    pub memory_budget: u64,
    /// Evaluate and record remediations without running them.
    pub dry_run: bool,
    /// Environment variable holding the token required by control
    /// endpoints (reload, pause, reset). Required when `listen` is not loopback.
    pub api_token_env: Option<String>,
    /// Default flap detection for every probe.
    pub flapping: Flapping,
    /// Upper bound on the compile cache in `state_dir/cache`.
    pub cache_size: u64,
    /// How often soft state (runs that changed nothing anything acts on)
    /// is written to the state journal: one write and one fsync for every
    /// changed probe (default 1 s).
    pub state_flush: std::time::Duration,
    /// The target whose server runs on this node: what the load-balancer
    /// endpoints (`/v1/role/...`) report on. Default: the one target with a
    /// `data_dir`, if there is exactly one.
    pub local_target: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flapping {
    pub enabled: bool,
    /// Percent state change at or above which flapping starts.
    pub high: f64,
    /// Percent state change at or below which flapping stops.
    pub low: f64,
}

impl Default for Flapping {
    fn default() -> Self {
        Flapping {
            enabled: true,
            high: 30.0,
            low: 25.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// PostgreSQL, the default.
    Postgres,
    /// MariaDB or MySQL (`kind = "mysql"`).
    Mysql,
    /// Redis or Valkey (`kind = "redis"`): `dsn` is its URL, the rest in
    /// [`Target::redis`].
    Redis,
}

/// What only a `kind = "redis"` target has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisOptions {
    /// `tls_ca_file`: the CA a `rediss://` server's certificate must chain
    /// to (None: the OS trust store).
    pub tls_ca_file: Option<PathBuf>,
    /// `tls_cert_file` / `tls_key_file`: a client certificate.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// `heartbeat_key`: the one key probes may write (SET, PEXPIRE, DEL).
    pub heartbeat_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub kind: TargetKind,
    pub dsn: String,
    pub read_only: bool,
    /// The password from `password_file` or `password_env`, when the DSN
    /// has none.
    pub password: Option<Secret>,
    /// The server's data directory, when it is on this node (used by the
    /// built-in PostgreSQL fence and restart).
    pub data_dir: Option<PathBuf>,
    /// `admin_dsn`: the connection string of the agent's own actions
    /// (failover, fence, terminate, recovery), never given to probes.
    /// None: they use `dsn`.
    pub admin_dsn: Option<String>,
    /// `admin_password_file` / `admin_password_env`: the password of
    /// `admin_dsn` when it has none.
    pub admin_password: Option<Secret>,
    /// `strict_privileges`: refuse probe sessions whose role may do more
    /// than monitor (superuser, server file or program roles,
    /// pg_signal_backend, pg_promote, ...) instead of logging a warning.
    pub strict_privileges: bool,
    /// `replication_dsn`: how another server streams from this one once
    /// it is fenced (the fence writes it into the old primary's
    /// `primary_conninfo`, its password into a passfile the postgres OS
    /// user can read): a `REPLICATION`-only role. None: the admin DSN's
    /// (or the DSN's) login.
    pub replication_dsn: Option<String>,
    /// `replication_password_file` / `replication_password_env`.
    pub replication_password: Option<Secret>,
    /// The options of a `kind = "redis"` target (None for the others).
    pub redis: Option<RedisOptions>,
}

/// Where a probe's component comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WasmSource {
    /// One of the probes embedded in the binary (`builtin:host-disk`).
    Builtin(String),
    /// A file (relative paths are resolved against the config file's directory).
    File(PathBuf),
    /// Not a component: the `[[drill]]` of this name, run by the agent.
    Drill(String),
    /// Not a component: the health of `[cluster]`'s etcd, checked by the
    /// agent's own etcd client (the probe `cluster-etcd`).
    Etcd,
}

impl std::fmt::Display for WasmSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WasmSource::Builtin(name) => write!(f, "builtin:{name}"),
            WasmSource::File(path) => write!(f, "{}", path.display()),
            WasmSource::Drill(name) => write!(f, "drill:{name}"),
            WasmSource::Etcd => f.write_str("cluster:etcd"),
        }
    }
}

/// How many consecutive results confirm a change of hard state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// Consecutive non-ok results before a problem state is hard.
    pub failures: u32,
    /// Consecutive ok results before the state is ok again.
    pub recoveries: u32,
}

impl Default for Confirm {
    fn default() -> Self {
        Confirm {
            failures: 1,
            recoveries: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSpec {
    pub name: String,
    pub wasm: WasmSource,
    pub sha256: Option<String>,
    pub every: Duration,
    pub timeout: Duration,
    pub memory: u64,
    pub targets: Vec<String>,
    /// Read-only directories granted by name (seen by the probe at `/NAME`).
    pub dirs: BTreeMap<String, PathBuf>,
    pub config: BTreeMap<String, String>,
    pub thresholds: Vec<ThresholdRule>,
    /// Soft/hard confirmation of the probe's own status.
    pub confirm: Confirm,
    pub flapping: Flapping,
    /// Where the probe is defined.
    pub place: Place,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdRule {
    /// The measurement name it applies to (every series of that name).
    pub measurement: String,
    pub warning: Option<Range>,
    pub critical: Option<Range>,
    pub confirm: Confirm,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Remediation {
    pub name: String,
    pub on: Trigger,
    /// Skip while any of these holds (e.g. do not restart while the disk is full).
    pub unless: Vec<Condition>,
    pub action: Action,
    pub cooldown: Duration,
    pub limit: Option<RateLimit>,
    pub verify: Option<Verify>,
    pub dry_run: bool,
    /// Run when the breaker opens (an exec or webhook action).
    pub alert: Option<Action>,
    pub place: Place,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    pub probe: String,
    pub status: Status,
    /// Fire on this measurement's threshold state rather than the probe's.
    pub measurement: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub probe: String,
    pub status: Status,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Verify {
    pub probe: String,
    pub within: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Exec(ExecAction),
    Restart(RestartAction),
    Failover(FailoverAction),
    Webhook(WebhookAction),
    /// Roll back stuck work: terminate matching sessions.
    Terminate(SessionAction),
    /// Cancel matching statements.
    Cancel(SessionAction),
    /// Redo: resume WAL replay on a standby whose replay is paused.
    ResumeReplay(ResumeReplayAction),
    /// Re-clone a standby from its primary (the old directory moved aside).
    Reinit(ReinitAction),
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Exec(_) => "exec",
            Action::Restart(_) => "restart",
            Action::Failover(_) => "failover",
            Action::Webhook(_) => "webhook",
            Action::Terminate(_) => "terminate",
            Action::Cancel(_) => "cancel",
            Action::ResumeReplay(_) => "resume-replay",
            Action::Reinit(_) => "reinit",
        }
    }
}

/// Which sessions a `terminate` or `cancel` acts on. Replication
/// connections, background workers and the agent's own sessions are never
/// matched; the filters below are and-ed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SessionFilter {
    /// Sessions idle in a transaction for longer than this.
    pub idle_in_transaction: Option<Duration>,
    /// Transactions open longer than this (with `blocking`, only those
    /// that block another session).
    pub transaction_older_than: Option<Duration>,
    pub blocking: bool,
    /// Statements running longer than this (`cancel`'s main filter).
    pub running_longer_than: Option<Duration>,
    /// Only these databases / users / application names (empty: any).
    pub databases: Vec<String>,
    pub users: Vec<String>,
    pub applications: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SessionAction {
    /// The target whose sessions are acted on (its role needs
    /// `pg_signal_backend` or superuser).
    pub target: String,
    pub filter: SessionFilter,
    /// At most this many sessions per run.
    pub max_sessions: u32,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResumeReplayAction {
    pub target: String,
    /// How long to wait for replay to be running again.
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReinitAction {
    /// The standby to re-clone (its data directory is on this node).
    pub standby: String,
    /// The primary to clone from.
    pub primary: String,
    pub data_dir: PathBuf,
    /// Where PostgreSQL's programs are (`pg_ctl`, `pg_basebackup`).
    pub bin_dir: PathBuf,
    /// Bound on the whole re-clone (stop, clone, start).
    pub timeout: Duration,
    /// How long the new standby has to stream after it starts.
    pub stream_within: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExecAction {
    pub argv: Vec<String>,
    pub timeout: Duration,
    pub env: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RestartMethod {
    /// `pg_ctl restart -D DATA_DIR -m fast` (run as the data directory's
    /// owner); `program`: the configured `pg_ctl`.
    PgCtl { program: PathBuf, data_dir: PathBuf },
    /// Debian's `pg_ctlcluster VERSION CLUSTER restart`.
    PgCtlCluster { version: String, cluster: String },
    /// `systemctl restart UNIT`.
    Systemctl { unit: String },
    /// Any command.
    Command(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct RestartAction {
    pub method: RestartMethod,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Fence {
    /// Built-in PostgreSQL fence: stop the old primary (`pg_ctl stop -m
    /// immediate`) if it runs, and make it come back only as a standby of
    /// the new primary (`standby.signal` + `primary_conninfo`);
    /// `program`: the configured `pg_ctl`.
    PgCtl { program: PathBuf, data_dir: PathBuf },
    /// Any command; non-zero exit is a failed fence.
    Command(Vec<String>),
    /// No fencing (not recommended).
    None,
}

impl Fence {
    /// The `fence` value that chooses the built-in PostgreSQL fence
    /// ([`Fence::PgCtl`]), for messages that quote it.
    pub const BUILT_IN: &'static str = "pg_ctl";
}

#[derive(Clone, Debug, PartialEq)]
pub struct FailoverAction {
    /// Target of the current primary.
    pub primary: String,
    /// Target of the standby to promote.
    pub standby: String,
    pub max_lag_bytes: u64,
    pub fence: Fence,
    /// Abort the failover if the fence fails (default true).
    pub fence_required: bool,
    /// Deadline for the promoted standby to accept a write.
    pub write_within: Duration,
    /// Refuse further failovers for this long.
    pub block_for: Duration,
    /// Steps after a successful promotion (repoint a proxy, notify).
    pub post: Vec<Action>,
    /// Set when the targets are MariaDB/MySQL (`kind = "mysql"`): the
    /// failover by GTID (`remediate::mysql_failover`).
    pub mysql: Option<MysqlFailover>,
    /// Set when the targets are Redis/Valkey (`kind = "redis"`): the
    /// failover of a primary and its replicas
    /// (`remediate::redis_failover`).
    pub redis: Option<RedisFailover>,
}

/// What a Redis failover needs beyond the shared keys.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisFailover {
    /// `replicas`: the primary's other replicas. The failover promotes
    /// the best of `failover` and these (the primary's replication id,
    /// the highest offset) and repoints the rest.
    pub replicas: Vec<String>,
    /// `apply_within`: how long a switchover's `FAILOVER` waits for the
    /// replica to reach the primary's offset (default 30 s).
    pub apply_within: Duration,
    /// `rejoin_within`: how long after a failover the agent waits for the
    /// old primary to come back and makes it a replica (default 1 h; 0:
    /// never).
    pub rejoin_within: Duration,
}

/// What a MariaDB/MySQL failover needs beyond PostgreSQL's keys.
#[derive(Clone, Debug, PartialEq)]
pub struct MysqlFailover {
    /// `replicas`: other replicas of the old primary, repointed to the
    /// new one (`MASTER_USE_GTID = slave_pos`).
    pub replicas: Vec<String>,
    /// `apply_within`: how long the replica may take to apply the relay
    /// log it received before promotion (default 30 s); past it, refused.
    pub apply_within: Duration,
    /// `rejoin_within`: how long after a failover the agent waits for the
    /// old primary to come back and rejoins it as a replica (default 1 h;
    /// 0: never).
    pub rejoin_within: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookAction {
    pub url: String,
    pub timeout: Duration,
    pub retries: u32,
    /// Environment variable holding a bearer token.
    pub bearer_env: Option<String>,
    /// The bearer token read from `bearer_file` at load.
    pub bearer: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Telemetry {
    pub otlp: Option<Otlp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The protocol a config or OTEL_EXPORTER_OTLP_PROTOCOL names.
    pub fn parse(name: &str) -> Option<OtlpProtocol> {
        match name {
            "grpc" => Some(OtlpProtocol::Grpc),
            "http/protobuf" | "http" => Some(OtlpProtocol::HttpProtobuf),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Otlp {
    /// Collector endpoint; `None` means the OTEL_EXPORTER_OTLP_* environment
    /// or the protocol's default.
    pub endpoint: Option<String>,
    /// `None`: OTEL_EXPORTER_OTLP_PROTOCOL, or gRPC.
    pub protocol: Option<OtlpProtocol>,
    pub interval: Duration,
    /// Headers (values may be `${ENV_VAR}` references, resolved at load).
    pub headers: BTreeMap<String, String>,
    /// `None`: OTEL_EXPORTER_OTLP_TIMEOUT, or 10 s.
    pub timeout: Option<Duration>,
    /// Headers read from `headers_file` at load (`Name: value` lines).
    pub secret_headers: BTreeMap<String, Secret>,
    /// TLS to the collector: a CA bundle and a client certificate
    /// (`None`: the OTEL_EXPORTER_OTLP_* variables, or the OS trust store).
    pub certificate: Option<PathBuf>,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// A secret read at load (a password, a token, a header value): printed
/// as `<secret>`, so that no `{:?}` of the config shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

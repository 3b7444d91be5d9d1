//! # Watchpost: the agent
//!
//! The agent runs health probes (WebAssembly components) in a sandbox on a
//! schedule, turns their reports into states, and acts and reports on them.
//! Data flows one way, and the modules follow it (an arrow: "is used by";
//! `tests/module_graph.rs` fails on an import against it):
//!
//! ```text
//!   report, util, safefs, process, builtin, hostinfo, store, sql  (leaves)
//!        │       sql ──► redis ──► config, runtime, remediate, cluster, daemon, cli
//!        │       safefs, process ──► pgserver ──► drill, remediate, cluster
//!   config ──► schedule ──► runtime ──► policy ──► events
//!                            └─► drill, cluster (etcd's health probe)
//!                                          │          │   (drill ──► daemon, cli)
//!                                          ├──► remediate ◄─┐ ports
//!                                          │     └──► cluster │ (daemon, api, cli)
//!                                          └──► telemetry ◄─┤ (traits)
//!                                                           │
//!                                     daemon ───────────────┘ ──► api ──► cli ──► logging
//! ```
//!
//! - [`config`]: the TOML config, validated with `FILE:LINE:COL` errors,
//!   with the Nagios range syntax and the bounded units (durations, sizes)
//!   it is written in. A leaf: it imports only [`report`], [`builtin`],
//!   [`hostinfo`], [`sql`] and [`redis`] (to read DSNs, URLs and secret
//!   files as the agent will use them).
//! - [`redis`]: Redis and Valkey targets: the read-only allowlist, replies
//!   bounded by the run's deadline and memory, the ACL privilege check
//!   (it borrows [`sql`]'s TLS file loading).
//! - [`schedule`]: when probes run (a timing loop per probe).
//! - [`runtime`]: the sandbox: loads probe components (through the compile
//!   cache in `state_dir/cache`), runs them with a deadline and a memory
//!   cap, and implements the world's imports on top of [`hostinfo`] (host
//!   metrics) and [`sql`] (database targets, with value and error types of
//!   its own that the runtime converts to and from the WIT's).
//! - [`report`]: what a run produced — the data passed between stages.
//! - [`policy`]: thresholds (Nagios ranges), soft/hard states confirmed per
//!   level, incident onsets, flapping.
//! - [`events`]: what the daemon tells listeners after each run and each
//!   remediation decision, and the typed [`events::Decision`] vocabulary.
//! - [`drill`]: restore drills, checks the agent runs itself (restore
//!   the newest backup into a scratch copy, recover, verify, tear down),
//!   handed to the runtime as [`runtime::NativeCheck`]s so that the daemon
//!   schedules them like probes and their reports take the same path.
//! - [`remediate`]: actions on hard states, one task per action, with
//!   guards, reconciliation and an audit log; it sees the agent only
//!   through [`remediate::port::AgentPort`] (and [`redis`]'s connections
//!   for the Redis failover's admin logins).
//! - [`pgserver`]: a PostgreSQL server as files, a process and programs:
//!   its data directory's files written safely, whether its postmaster
//!   runs (running, stopped or unknown — never "stopped" for "cannot
//!   read"), and its programs' command lines and output, spelled once
//!   (the layers above name PostgreSQL's programs only through it).
//! - [`cluster`]: the cluster mode: a leader lease in etcd, elections,
//!   demotion, rewind; decisions recorded through [`remediate`] (and
//!   [`redis`]'s connections for the Redis backend's admin login).
//! - [`telemetry`]: /metrics and OTLP, fed by events and by
//!   [`telemetry::CounterSource`]; the recent measurements kept in memory
//!   for the status page's charts ([`telemetry::recent`]).
//! - [`daemon`]: the running agent: its pipeline (schedule -> runtime ->
//!   policy -> store/events, waking remediation), reload, and the ports.
//! - [`store`]: persistent state (any serde value, by name; it imports
//!   nothing from the agent); [`api`]: the status API and the status
//!   page for browsers.
//! - [`builtin`]: the probes embedded in the binary.
//! - [`cli`]: the `watchpost` subcommands; [`logging`]: log setup.
//! - [`util`]: small shared helpers; [`safefs`]: file work, as root, in
//!   directories other users own (a data directory), never through a link;
//!   [`process`]: running a program (an argv, bounded, in its own process
//!   group, optionally as another user), for [`pgserver`], [`remediate`]
//!   and [`cluster`].
//!
//! `tests/module_graph.rs` also checks that this drawing names every
//! top-level module and that no folder's modules import each other in a
//! circle (what two need goes into a leaf file both import).
//!
//! ## Errors
//!
//! One policy, by who reads the error:
//!
//! - **A caller that decides on the kind** gets a typed error: an enum
//!   whose variants are the cases callers branch on (new ones derive
//!   `thiserror::Error`; [`sql::Error`]: timeout, refused, too large...;
//!   [`config::ConfigErrors`]: every diagnostic with its place). Never
//!   match on an error's text.
//! - **The command-line edge** ([`cli`], `main`) uses `anyhow`, adding
//!   context where it is known (`with_context(|| format!("cannot read
//!   {path}"))`); `main` prints the chain as one line naming what to fix.
//! - **A message shown as it is** (a probe's reason, an audit record's
//!   message, a config diagnostic's text) is a `String`: a
//!   `Result<_, String>` is right where every caller only shows the message
//!   or wraps it into its own, and wrong as soon as one caller needs to
//!   tell two failures apart — then it becomes a typed error. The signs: a
//!   caller reads the text (`contains`, `starts_with`, comparing messages),
//!   or its `Err(_)` arm is right for one failure and wrong for another
//!   ("no such probe" is not "its report is stale": `api::role`'s
//!   `NoReport`). Reading the text of another program's output (a
//!   server's error, [`pgserver::controldata`]) is parsing, not this.
//! - Bad input is an error naming what to fix, never a panic; "cannot
//!   tell" is a state of its own (unknown), never "stopped" or "down".
//!
//! Locks are `parking_lot`'s, which do not poison: no lock needs a
//! poisoning workaround.

pub mod api;
pub mod builtin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod drill;
pub mod events;
pub mod hostinfo;
pub mod logging;
pub mod pgserver;
pub mod policy;
pub mod process;
pub mod redis;
pub mod remediate;
pub mod report;
pub mod runtime;
pub mod safefs;
pub mod schedule;
pub mod sql;
pub mod store;
pub mod telemetry;
pub mod util;

//! Test harness for Watchpost's end-to-end tests.
//!
//! Everything here is real: the `watchpost` binary the workspace builds,
//! probe components built from source by `build.rs`, PostgreSQL clusters
//! made with `initdb` and `pg_basebackup`, and an OTLP receiver. Modules:
//! [`cli`] runs the binary once, [`probes`] finds the built components,
//! [`kits`] builds the Python and JavaScript probe kits, [`report`] reads
//! `check --format json` reports.

pub mod cli;
pub mod kits;
pub mod probes;
pub mod report;

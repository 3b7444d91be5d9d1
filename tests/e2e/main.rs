//! End-to-end tests of Watchpost, one module per area. They run the real
//! binary on real probe components built from source (see `tests/build.rs`)
//! and, for the PostgreSQL probes, on real clusters (see `watchpost_e2e::pg`).

mod api_security;
mod audit_rotation;
mod backup_kit;
mod check_host_probes;
mod check_output;
mod cluster;
mod cluster_partition;
mod cluster_switchover;
mod compile_cache;
mod daemon;
mod dashboard;
mod dirs;
mod host_hang;
mod host_security;
mod kit_c;
mod kit_js;
mod kit_python;
mod new_project;
mod not_probes;
mod otlp;
mod otlp_tls;
mod output_safety;
mod package;
mod pg_backup;
mod pg_consistency;
mod pg_drill;
mod pg_example;
mod pg_failover_safety;
mod pg_field_faults;
mod pg_integrity;
mod pg_performance;
mod pg_recovery;
mod pg_remediation;
mod pg_replication;
mod pg_tls;
mod postgres;
mod remediation;
mod remediation_engine;
mod sandbox;
mod secrets;
mod sql_capability;
mod sql_pool;
mod status_page;

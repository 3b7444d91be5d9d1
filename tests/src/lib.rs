//! Test harness for Watchpost's end-to-end tests.
//!
//! Everything here is real: the `watchpost` binary the workspace builds,
//! probe components built from source by `build.rs`, PostgreSQL clusters
//! made with `initdb` and `pg_basebackup`, and an OTLP receiver. Modules:
//! [`cli`] runs the binary once, [`agent`] runs it as a daemon, [`report`]
//! runs a probe and reads its JSON report, [`probes`] finds the built
//! components, [`kits`] builds the Python, JavaScript and C probe kits,
//! [`pg`] makes a primary and standby pair, [`backup`] archives, base
//! backups, pgBackRest stanzas and fingerprints for the backup tests,
//! [`mariadb`] starts MariaDB servers, [`redis`] starts Redis servers and
//! replicas, [`http_sink`] is an HTTP server
//! that records what it receives, [`otlp`] is an OTLP receiver (gRPC and
//! HTTP), [`port`] hands out ports no outgoing connection can take, [`proxy`] is a TCP proxy that can stall, [`late_answer`] a proxy in front
//! of etcd that answers the transactions taking the leader key late, [`pki`] makes a CA and
//! certificates, [`tls_proxy`] puts TLS in front of a test server, [`etcd`]
//! a real etcd cluster, [`ha`] three PostgreSQL nodes with an agent each in
//! cluster mode, [`haproxy`] HAProxy routing on the agents' role
//! endpoints, [`netns`] network namespaces that can be cut apart and
//! slowed, [`partition`] that cluster in them (and [`redis_net`] the Redis one of
//! [`redis_ha`]), [`sentinel`] Redis Sentinel for the benchmarks, [`splitbrain`] the writers
//! that detect split brain and
//! lost writes, [`browser`] is headless Chromium driven over WebDriver, and
//! [`prometheus`] is a Prometheus server scraping agents.

pub mod agent;
pub mod backup;
pub mod browser;
pub mod cli;
pub mod etcd;
pub mod frozen;
pub mod ha;
pub mod haproxy;
pub mod http_sink;
pub mod kits;
pub mod late_answer;
pub mod mariadb;
pub mod netns;
pub mod otlp;
pub mod partition;
pub mod pg;
pub mod pki;
pub mod port;
pub mod probes;
pub mod prometheus;
pub mod proxy;
pub mod redis;
pub mod redis_ha;
pub mod redis_net;
pub mod report;
pub mod sentinel;
pub mod splitbrain;
pub mod tls_proxy;

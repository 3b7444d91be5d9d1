//! Installing what the tests need on a fresh machine: the wasm32-wasip2
//! target, Debian packages for the tools the tests drive, and the
//! toolchains of the probe kits in `examples/probes/` (componentize-py in
//! a virtualenv of the Python kit, componentize-js in the JavaScript kit's
//! `node_modules`, clang and wit-bindgen for the C kit), at the versions
//! the kits pin, and Valkey from Debian's backports (see [`valkey`]).
//! Each step checks first
//! and does nothing when the tool is already there.

use super::apt::apt_install;
use super::kits;
use super::valkey;
use std::path::Path;

/// (a file that shows it is installed, the Debian package that provides it).
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    // Test clusters are made with the server's own initdb/pg_ctl/pg_basebackup.
    ("/usr/lib/postgresql/15/bin/initdb", "postgresql-15"),
    ("/usr/bin/psql", "postgresql-client-15"),
    // Backup repositories and restore drills (tests of pg-backup and drills).
    ("/usr/bin/pgbackrest", "pgbackrest"),
    // MariaDB test servers (mariadbd, mariadb-install-db, the mariadb
    // client), backups of them, and pt-table-checksum/pt-heartbeat.
    ("/usr/sbin/mariadbd", "mariadb-server"),
    ("/usr/bin/mariadb", "mariadb-client"),
    ("/usr/bin/mariadb-backup", "mariadb-backup"),
    ("/usr/bin/pt-table-checksum", "percona-toolkit"),
    // Redis test servers (redis-server, redis-cli), and Redis Sentinel,
    // the failover benchmark's peer.
    ("/usr/bin/redis-server", "redis-server"),
    ("/usr/bin/redis-sentinel", "redis-sentinel"),
    // The cluster-mode tests run a real 3-member etcd.
    ("/usr/bin/etcd", "etcd-server"),
    // The cluster tests route writes through HAProxy (role endpoints) and
    // give each node a network namespace of its own.
    ("/usr/sbin/haproxy", "haproxy"),
    ("/usr/sbin/ip", "iproute2"),
    // `promtool check metrics` validates /metrics; the dashboard test
    // runs the server itself.
    // The hung-filesystem test mounts a FUSE filesystem and stops its daemon.
    ("/usr/bin/bindfs", "bindfs"),
    // `promtool check metrics` validates /metrics.
    ("/usr/bin/promtool", "prometheus"),
    ("/usr/bin/prometheus", "prometheus"),
    // The status page tests drive headless Chromium over WebDriver.
    ("/usr/bin/chromium", "chromium"),
    ("/usr/bin/chromedriver", "chromium-driver"),
    // The package test: `systemd-analyze verify` on the unit, `adduser`
    // for the package's postinst, gzip for the man page.
    ("/usr/bin/systemd-analyze", "systemd"),
    ("/usr/sbin/adduser", "adduser"),
    ("/usr/bin/gzip", "gzip"),
    // The C probe kit: clang, wasm-ld, wasi-libc and compiler-rt for wasm32.
    ("/usr/bin/clang-19", "clang-19"),
    ("/usr/bin/wasm-ld-19", "lld-19"),
    ("/usr/lib/wasm32-wasi/libc.a", "wasi-libc"),
    (
        "/usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a",
        "libclang-rt-19-dev-wasm32",
    ),
];

fn have(path: &str) -> bool {
    Path::new(path).exists()
}

fn debian_packages() -> Result<(), String> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(file, _)| !have(file))
        .map(|(_, pkg)| *pkg)
        .collect();
    apt_install(&missing)
}

/// Install whatever is missing.
pub fn install() -> Result<(), String> {
    watchpost_probe_build::ensure_target()?;
    debian_packages()?;
    let root = super::root();
    valkey::install(&root.join("target/tools"))?;
    kits::python(&root.join("examples/probes/python"))?;
    kits::js(&root.join("examples/probes/js"))?;
    kits::wit_bindgen(&root.join("target/tools"))?;
    super::dist::install_cargo_deb(&root.join("target/tools"))
}

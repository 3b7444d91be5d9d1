//! Valkey for the tests, without touching the machine's apt sources:
//! Debian 12 (bookworm) ships no Valkey, its backports do
//! (`valkey-server` 8.0, linked against the same libraries as Debian's
//! `redis-server`). The two packages are fetched from `bookworm-backports`
//! with apt lists of our own under `target/tools/apt` and unpacked with
//! `dpkg -x` into `target/tools/valkey`, where the tests' harness finds
//! `usr/bin/valkey-server` (`watchpost_e2e::redis::valkey_program`). A
//! machine that already has `valkey-server` on its PATH (a newer Debian)
//! needs nothing.

use super::run;
use std::path::Path;
use std::process::Command;

/// The suite that has Valkey for Debian 12.
const SOURCE: &str = "deb http://deb.debian.org/debian bookworm-backports main";

/// The packages unpacked: the server is a link to a binary of the tools.
const PACKAGES: [&str; 2] = ["valkey-server", "valkey-tools"];

/// Unpack Valkey into `tools/valkey` unless it or a system one is there.
pub fn install(tools: &Path) -> Result<(), String> {
    let unpacked = tools.join("valkey");
    if unpacked.join("usr/bin/valkey-server").exists() || on_path("valkey-server") {
        return Ok(());
    }
    let apt = tools.join("apt");
    let lists = apt.join("lists");
    let cache = apt.join("cache");
    let downloads = apt.join("debs");
    for dir in [
        lists.join("partial"),
        cache.join("archives/partial"),
        downloads.clone(),
    ] {
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let sources = apt.join("sources.list");
    std::fs::write(&sources, format!("{SOURCE}\n"))
        .map_err(|e| format!("write {}: {e}", sources.display()))?;
    let options = [
        format!("Dir::Etc::sourcelist={}", sources.display()),
        "Dir::Etc::sourceparts=/dev/null".to_string(),
        format!("Dir::State::Lists={}", lists.display()),
        format!("Dir::Cache={}", cache.display()),
    ];
    let apt_get = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        for option in &options {
            command.arg("-o").arg(option);
        }
        command.args(args).current_dir(&downloads);
        command
    };
    run(&mut apt_get(&["update", "-q"]))?;
    let mut download = apt_get(&["download", "-q"]);
    download.args(PACKAGES);
    run(&mut download)?;
    let debs =
        std::fs::read_dir(&downloads).map_err(|e| format!("list {}: {e}", downloads.display()))?;
    for deb in debs.flatten() {
        let path = deb.path();
        if path.extension().is_some_and(|e| e == "deb") {
            run(Command::new("dpkg").arg("-x").arg(&path).arg(&unpacked))?;
        }
    }
    if unpacked.join("usr/bin/valkey-server").exists() {
        Ok(())
    } else {
        Err(format!(
            "no usr/bin/valkey-server in {} after unpacking {PACKAGES:?} from bookworm-backports",
            unpacked.display()
        ))
    }
}

/// True when `program` is found on the PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

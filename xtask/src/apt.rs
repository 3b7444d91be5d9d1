//! Installing Debian packages (`apt-get install`, with sudo unless root):
//! what `setup`, the probe kits and the benchmarks' peers share, in a file
//! of its own so that they import it and not each other.

use super::run;
use std::process::Command;

/// Whether xtask runs as root.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `apt-get install` `packages` (nothing when empty), with sudo unless root.
pub fn apt_install(packages: &[&str]) -> Result<(), String> {
    let missing = packages;
    if missing.is_empty() {
        return Ok(());
    }
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let apt = |args: &[&str]| {
        let mut command = Command::new(sudo.first().copied().unwrap_or("apt-get"));
        if !sudo.is_empty() {
            command.arg("apt-get");
        }
        command.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        command
    };
    run(&mut apt(&["update", "-q"]))?;
    let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(missing);
    run(&mut install)
}

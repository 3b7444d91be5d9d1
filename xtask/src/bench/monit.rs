//! Debian's Monit side by side with the agent, on equivalent checks:
//!
//! - the embedded default config's equivalent: `check system` (CPU,
//!   memory, load), `check filesystem` on `/`, a `check process` and a
//!   `check program` (`/bin/true`), a 10 s cycle; CPU over a 60 s window
//!   (Monit's own and its waited-for children's) and RSS;
//! - N program checks (`/bin/true`, the process-based equivalent of the
//!   trivial probe) with a 1 s cycle, N = 10 and 100.
//!
//! Monit runs in the foreground (`-I`) on a control file of its own, with
//! its state files in the bench directory.

use super::stats::median_range;
use super::{Built, Options, Row, proc_cpu_seconds};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MONIT: &str = "/usr/bin/monit";

/// Debian packages the monit and io sections need that are missing.
pub fn missing_tools() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !Path::new(MONIT).exists() {
        missing.push("monit");
    }
    if !Path::new("/usr/bin/strace").exists() {
        missing.push("strace");
    }
    missing
}

fn control(dir: &Path, cycle: u32, checks: &str) -> String {
    format!(
        "set daemon {cycle}\nset logfile {log}\nset pidfile {dir}/monit.pid\n\
         set idfile {dir}/monit.id\nset statefile {dir}/monit.state\n\n{checks}",
        log = dir.join("monit.log").display(),
        dir = dir.display()
    )
}

/// The embedded default config's checks, and one process and one program
/// check.
fn default_checks() -> String {
    "check system bench\n  if cpu usage > 95% for 3 cycles then alert\n  \
     if memory usage > 90% for 2 cycles then alert\n\n\
     check filesystem root with path /\n  if space usage > 90% then alert\n\n\
     check process init matching \"^/sbin/init|^init|^/bin/sh\"\n  if does not exist then alert\n\n\
     check program trivial with path \"/bin/true\"\n  if status != 0 then alert\n"
        .to_string()
}

fn program_checks(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!("check program p{i} with path \"/bin/true\"\n  if status != 0 then alert\n\n")
        })
        .collect()
}

struct RunningMonit {
    child: Child,
}

impl RunningMonit {
    fn start(dir: &Path, text: &str) -> Result<RunningMonit, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let rc: PathBuf = dir.join("monitrc");
        std::fs::write(&rc, text).map_err(|e| format!("write {}: {e}", rc.display()))?;
        // Monit refuses a control file others can read.
        std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", rc.display()))?;
        let child = Command::new(MONIT)
            .arg("-I")
            .arg("-c")
            .arg(&rc)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start monit: {e}"))?;
        Ok(RunningMonit { child })
    }

    fn cpu_seconds(&self) -> f64 {
        proc_cpu_seconds(&format!("/proc/{}/stat", self.child.id()), true)
    }

    fn rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }
}

impl Drop for RunningMonit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU % of one core and RSS of Monit on `text` over the window.
fn measure(built: &Built, text: &str, options: &Options) -> Result<(f64, f64), String> {
    let (warmup, window) = if options.quick { (3, 10) } else { (12, 60) };
    let dir = built.dir.join("monit");
    let monit = RunningMonit::start(&dir, text)?;
    std::thread::sleep(Duration::from_secs(warmup));
    let (a, at) = (monit.cpu_seconds(), Instant::now());
    std::thread::sleep(Duration::from_secs(window));
    let cpu = (monit.cpu_seconds() - a) / at.elapsed().as_secs_f64() * 100.0;
    Ok((cpu, monit.rss_mib()))
}

pub fn run(built: &Built, options: &Options) -> Result<Vec<Row>, String> {
    let dir = built.dir.join("monit");
    let mut rows = Vec::new();
    let mut cases = vec![(
        "Monit, the embedded default's equivalent (system, filesystem, process, program; 10 s cycle)"
            .to_string(),
        control(&dir, 10, &default_checks()),
    )];
    for count in [10, 100] {
        if options.counts.is_empty() || options.counts.contains(&count) {
            cases.push((
                format!("Monit, {count} program checks (/bin/true), 1 s cycle"),
                control(&dir, 1, &program_checks(count)),
            ));
        }
    }
    for (what, text) in cases {
        let (mut cpu, mut rss) = (Vec::new(), Vec::new());
        for round in 0..options.rounds {
            eprintln!("xtask: {what}, round {}", round + 1);
            let (c, r) = measure(built, &text, options)?;
            cpu.push(c);
            rss.push(r);
        }
        rows.push(Row::new(
            format!("{what}: CPU of one core"),
            median_range(&cpu, "%", 3),
            "Monit and its checks' processes",
        ));
        rows.push(Row::new(
            format!("{what}: RSS"),
            median_range(&rss, "MiB", 1),
            "",
        ));
    }
    Ok(rows)
}

//! The agent runs as root on a database node; the `postgres` OS user and
//! local users must not turn it against that node. Real servers: links
//! planted in a real data directory before a crash or a failover (aimed at
//! a scratch directory standing in for `/etc`, checked untouched), a
//! fence whose `primary_conninfo` holds no password while the old primary
//! still logs in through the passfile, a `state_dir` others can write
//! refused at start, private state files, a webhook that redirects.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for, wasm};
use watchpost_e2e::cli::watchpost;
use watchpost_e2e::pg::{PASSWORD_GROUP, PgPair, SUPERUSER};

const PG_CTL: &str = "/usr/lib/postgresql/15/bin/pg_ctl";

/// A scratch directory standing in for `/etc`: root's (the test's own
/// user's), mode 0755, with one file. Returns (dir, file).
fn fake_etc() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("watchpost-fake-etc-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("crontab");
    std::fs::write(&file, b"keep me\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, file)
}

/// (uid, gid, mode) of `path`, not following a link.
fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn alive_probe() -> &'static str {
    "[[probe]]\nname = \"alive-primary\"\nwasm = \"builtin:pg-alive\"\nevery = \"250ms\"\ntimeout = \"400ms\"\ntargets = [\"primary\"]\nfor = 3\nflapping = { enabled = false }\n\n"
}

fn wait_alive_ok(agent: &Agent) {
    wait_for("alive-primary to be ok", PATIENCE, || {
        agent
            .probe("alive-primary")
            .filter(|p| p["hard_status"] == "ok" && p["counters"]["runs"].as_u64() >= Some(2))
    });
}

fn kill_primary(pair: &PgPair) {
    let pid = pair.primary.postmaster_pid().expect("the primary runs");
    // SAFETY: kill(2) on the test's own PostgreSQL postmaster.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

#[test]
fn a_symlinked_log_directory_makes_the_restart_refuse_and_leaves_the_target_untouched() {
    let mut pair = PgPair::start();
    let (etc, file) = fake_etc();
    let before = (owner_and_mode(etc.path()), owner_and_mode(&file));
    let log = pair.primary.data_dir().join("log");
    let _ = std::fs::remove_dir_all(&log);
    // What the postgres user can do: `ln -s /etc/cron.d $PGDATA/log`.
    std::os::unix::fs::symlink(etc.path(), &log).unwrap();
    let config = format!(
        "[targets.primary]\ndsn = \"{}\"\ndata_dir = \"{}\"\n\n{}[[remediation]]\nname = \"restart\"\non = {{ probe = \"alive-primary\", status = \"critical\" }}\naction = {{ restart = \"pg_ctl\", pg_ctl = \"{PG_CTL}\", target = \"primary\", timeout = \"60s\" }}\ncooldown = \"1h\"\n",
        pair.primary.dsn(),
        pair.primary.data_dir().display(),
        alive_probe()
    );
    let agent = Agent::start(&config);
    wait_alive_ok(&agent);
    kill_primary(&pair);
    let failed = wait_for("the restart to be refused", PATIENCE, || {
        agent.audit_of("restart", "failed").into_iter().next()
    });
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{} is a symbolic link", log.display())),
        "{failed:#}"
    );
    assert!(agent.audit_of("restart", "succeeded").is_empty());
    assert_eq!(
        (owner_and_mode(etc.path()), owner_and_mode(&file)),
        before,
        "the link's target kept its owner and mode"
    );
    assert_eq!(names_in(etc.path()), ["crontab"], "nothing created there");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me\n");
    assert!(
        std::fs::symlink_metadata(&log)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    pair.primary.set_running(false);
}

/// Failover from `primary` to `standby` (reached with `standby_dsn`), the
/// `pg_ctl` fence on the primary's data directory.
fn failover_config(pair: &PgPair, standby_dsn: &str) -> String {
    format!(
        "[targets.primary]\ndsn = \"{}\"\ndata_dir = \"{}\"\n\n[targets.standby]\ndsn = \"{standby_dsn}\"\n\n{}[[remediation]]\nname = \"failover\"\non = {{ probe = \"alive-primary\", status = \"critical\" }}\naction = {{ failover = \"standby\", primary = \"primary\", fence = \"pg_ctl\", pg_ctl = \"{PG_CTL}\", max_lag_bytes = 1048576, write_within = \"10s\", block_for = \"1h\" }}\ncooldown = \"1s\"\n",
        pair.primary.dsn(),
        pair.primary.data_dir().display(),
        alive_probe()
    )
}

#[test]
fn a_planted_standby_signal_link_makes_the_fence_refuse_without_following_it() {
    let mut pair = PgPair::start();
    let (etc, file) = fake_etc();
    let before = owner_and_mode(&file);
    let signal = pair.primary.data_dir().join("standby.signal");
    std::os::unix::fs::symlink(&file, &signal).unwrap();
    let agent = Agent::start(&failover_config(
        &pair,
        &pair.standby.dsn_as(SUPERUSER, None),
    ));
    wait_alive_ok(&agent);
    pair.primary.kill();
    let failed = wait_for("the failover to be aborted at the fence", PATIENCE, || {
        agent.audit_of("failover", "failed").into_iter().next()
    });
    let fence: Vec<_> = agent
        .audit_of("failover", "step")
        .into_iter()
        .filter(|s| s["reason"] == "fence")
        .collect();
    assert_eq!(fence.len(), 1, "{:#?}", agent.audit());
    assert_eq!(fence[0]["detail"]["ok"], false, "{:#}", fence[0]);
    let message = fence[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{} is a symbolic link", signal.display())),
        "{message}"
    );
    assert!(
        failed["message"].as_str().unwrap().contains("fence"),
        "{failed:#}"
    );
    // Not promoted, and the link's target is as it was.
    assert_eq!(
        pair.standby.value("SELECT pg_is_in_recovery()"),
        "t",
        "the standby was promoted although the fence failed"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me\n");
    assert_eq!(owner_and_mode(&file), before);
    assert_eq!(names_in(etc.path()), ["crontab"]);
    let auto = std::fs::read_to_string(pair.primary.data_dir().join("postgresql.auto.conf"))
        .unwrap_or_default();
    assert!(!auto.contains("watchpost"), "{auto}");
}

#[test]
fn the_fence_writes_no_password_and_the_old_primary_logs_in_through_the_passfile() {
    let mut pair = PgPair::start();
    let password = "pw-Str3am:ing";
    pair.primary.execute(&format!(
        "CREATE ROLE rep LOGIN SUPERUSER REPLICATION PASSWORD '{password}' IN ROLE {PASSWORD_GROUP};"
    ));
    pair.wait_for_replay();
    // The future primary asks members of the group for a password on
    // replication connections too.
    let hba = pair.standby.data_dir().join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host replication +{PASSWORD_GROUP} 127.0.0.1/32 scram-sha-256\n{old}"),
    )
    .unwrap();
    // Replication logins show in its log.
    pair.standby
        .execute("ALTER SYSTEM SET log_connections = on");
    pair.standby.value("SELECT pg_reload_conf()");
    let agent = Agent::start(&failover_config(
        &pair,
        &pair.standby.dsn_as("rep", Some(password)),
    ));
    wait_alive_ok(&agent);
    pair.wait_for_replay();
    pair.primary.kill();
    wait_for("the failover to succeed", PATIENCE, || {
        agent.audit_of("failover", "succeeded").into_iter().next()
    });
    let data = pair.primary.data_dir();
    let auto = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
    assert!(
        !auto.contains("pw-"),
        "the password is in postgresql.auto.conf:\n{auto}"
    );
    assert!(!auto.contains("password"), "{auto}");
    let passfile = data.join("watchpost-replication.pgpass");
    assert!(
        auto.contains(&format!("passfile=''{}''", passfile.display())),
        "{auto}"
    );
    let (uid, gid, mode) = owner_and_mode(&passfile);
    let (data_uid, data_gid, _) = owner_and_mode(data);
    assert_eq!((uid, gid, mode), (data_uid, data_gid, 0o600));
    assert!(
        std::fs::read_to_string(&passfile)
            .unwrap()
            .contains("pw-Str3am\\:ing"),
        "the passfile holds the password, escaped"
    );
    // Started by hand, the old primary is a standby that logs in to the
    // new primary as `rep`, with the password from the passfile (scram is
    // required for it there).
    assert!(pair.primary.try_start(), "{}", pair.primary.log_tail());
    assert_eq!(
        pair.primary
            .try_value("SELECT pg_is_in_recovery()")
            .as_deref(),
        Ok("t")
    );
    let started = Instant::now();
    loop {
        let seen = pair
            .standby
            .value("SELECT count(*) FROM pg_stat_replication WHERE usename = 'rep'");
        if seen != "0"
            || pair
                .standby
                .log_tail()
                .contains("replication connection authorized: user=rep")
        {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the old primary never logged in to the new one:\n{}",
            pair.primary.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !pair
            .primary
            .log_tail()
            .contains("password authentication failed")
    );
    pair.standby.set_running(true);
}

/// Run `watchpost run -c CONFIG` and expect it to stop at once with an
/// error; its stderr.
fn refused_at_start(config: &Path) -> String {
    let mut child = watchpost()
        .arg("run")
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("the agent started with an unsafe state directory");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    stderr
}

#[test]
fn a_state_directory_or_cache_others_can_write_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let config = dir.path().join("watchpost.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n",
            state.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let stderr = refused_at_start(&config);
    assert!(
        stderr.contains(&format!(
            "{}: is writable by group or others (mode 0777)",
            state.display()
        )) && stderr.contains("chmod go-w"),
        "{stderr}"
    );
    // A private state directory whose cache others may write into.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let cache = state.join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let stderr = refused_at_start(&config);
    assert!(
        stderr.contains(&format!(
            "{}: is writable by group or others",
            cache.display()
        )),
        "{stderr}"
    );
    assert!(
        names_in(&cache).is_empty(),
        "nothing was loaded from or written to it"
    );
}

#[test]
fn state_files_are_created_private() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fired");
    let config = format!(
        "[[probe]]\nname = \"down\"\nwasm = \"{}\"\nevery = \"100ms\"\nconfig = {{ status = \"critical\" }}\n\n[[remediation]]\nname = \"note\"\non = {{ probe = \"down\" }}\naction = {{ exec = [\"touch\", \"{}\"] }}\ncooldown = \"1h\"\n",
        wasm("flip"),
        out.display()
    );
    let agent = Agent::start(&config);
    wait_for("the exec to succeed", PATIENCE, || {
        agent.audit_of("note", "succeeded").into_iter().next()
    });
    wait_for("the probe's state to be saved", PATIENCE, || {
        agent.state_file("down").exists().then_some(())
    });
    let state = agent.state_dir();
    for sub in ["", "probes", "cache"] {
        let path = state.join(sub);
        assert_eq!(owner_and_mode(&path).2, 0o700, "{}", path.display());
    }
    // The soft-state journal is written at the next flush (1 s).
    wait_for("the soft-state journal", PATIENCE, || {
        state.join("probes.journal").exists().then_some(())
    });
    for file in ["audit.log", "probes/down.json", "probes.journal"] {
        let path = state.join(file);
        assert_eq!(owner_and_mode(&path).2, 0o600, "{}", path.display());
    }
    // And every other file the agent made there.
    for dir in [state.to_path_buf(), state.join("probes")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                assert_eq!(owner_and_mode(&path).2 & 0o077, 0, "{}", path.display());
            }
        }
    }
    for entry in std::fs::read_dir(state.join("cache")).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(owner_and_mode(&path).2 & 0o077, 0, "{}", path.display());
    }
}

/// A server that answers every request with a redirect to `location`.
fn redirecting(location: String) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    port
}

#[test]
fn a_redirecting_webhook_is_not_followed_and_its_url_is_redacted() {
    let elsewhere = watchpost_e2e::http_sink::HttpSink::start(&[200]);
    let port = redirecting(elsewhere.url("/stolen"));
    let secret = "T0KEN-in-the-path-s3cret";
    let config = format!(
        "[[probe]]\nname = \"down\"\nwasm = \"{}\"\nevery = \"100ms\"\nconfig = {{ status = \"critical\" }}\n\n[[remediation]]\nname = \"notify\"\non = {{ probe = \"down\" }}\naction = {{ webhook = \"http://127.0.0.1:{port}/hooks/{secret}?key={secret}\", retries = 2, timeout = \"2s\" }}\ncooldown = \"1h\"\n",
        wasm("flip")
    );
    let agent = Agent::start(&config);
    let failed = wait_for("the webhook to fail", PATIENCE, || {
        agent.audit_of("notify", "failed").into_iter().next()
    });
    assert_eq!(failed["detail"]["delivery"]["status"], 307, "{failed:#}");
    assert_eq!(
        failed["detail"]["delivery"]["attempts"], 1,
        "a redirect is not retried: {failed:#}"
    );
    assert_eq!(
        failed["detail"]["delivery"]["url"],
        format!("http://127.0.0.1:{port}")
    );
    assert!(
        failed["message"].as_str().unwrap().contains("redirect"),
        "{failed:#}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect was followed: {:?}",
        elsewhere.requests()
    );
    let audit = std::fs::read_to_string(agent.state_dir().join("audit.log")).unwrap();
    assert!(!audit.contains(secret), "{audit}");
    let events = agent.json("/v1/events").to_string();
    assert!(events.contains("notify"), "{events}");
    assert!(!events.contains(secret), "{events}");
    assert!(!agent.log().contains(secret), "{}", agent.log());
}

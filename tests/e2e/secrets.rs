//! Secrets outside the config: a target's password from `password_file`
//! and from a libpq passfile, a webhook's bearer token from `bearer_file`.
//! Logins work; the secrets reach PostgreSQL and the webhook and nowhere
//! else (not `/v1/probes`, `/v1/events`, the log nor the audit log); a
//! secret file that others can read is refused with the `chmod` named.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for, wasm};
use watchpost_e2e::cli::watchpost_run;
use watchpost_e2e::http_sink::HttpSink;
use watchpost_e2e::pg::{PASSWORD_GROUP, PgPair};

const PASSWORD: &str = "pw-9f3Kq-only-in-a-file";
const TOKEN: &str = "tok-7Zr2x-only-in-a-file";

fn private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn passwords_and_tokens_from_files_work_and_show_nowhere() {
    let pair = PgPair::start();
    pair.primary.execute(&format!(
        "CREATE ROLE secret_user LOGIN PASSWORD '{PASSWORD}' IN ROLE {PASSWORD_GROUP}, pg_monitor;"
    ));
    pair.wait_for_replay();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("primary.password");
    private(&password_file, &format!("{PASSWORD}\n"));
    let passfile = dir.path().join("pgpass");
    private(
        &passfile,
        &format!(
            "# host:port:db:user:password\n127.0.0.1:{}:*:secret_user:{PASSWORD}\n",
            pair.standby.port()
        ),
    );
    let token_file = dir.path().join("webhook.token");
    private(&token_file, TOKEN);
    let sink = HttpSink::start(&[200]);
    let config = format!(
        "[targets.primary]\ndsn = \"{}\"\npassword_file = \"{}\"\n\
         [targets.standby]\ndsn = \"{} passfile={}\"\n\
         [[probe]]\nname = \"alive\"\nwasm = \"builtin:pg-alive\"\nevery = \"200ms\"\ntargets = [\"primary\"]\n\
         [[probe]]\nname = \"alive-standby\"\nwasm = \"builtin:pg-alive\"\nevery = \"200ms\"\ntargets = [\"standby\"]\nconfig = {{ target = \"standby\" }}\n\
         [[probe]]\nname = \"down\"\nwasm = \"{}\"\nevery = \"100ms\"\nconfig = {{ status = \"critical\" }}\n\
         [[remediation]]\nname = \"tell\"\non = {{ probe = \"down\", status = \"critical\" }}\n\
         action = {{ webhook = \"{}\", bearer_file = \"{}\" }}\ncooldown = \"1h\"\n",
        pair.primary.dsn_as("secret_user", None),
        password_file.display(),
        pair.standby.dsn_as("secret_user", None),
        passfile.display(),
        wasm("flip"),
        sink.url("/hook"),
        token_file.display(),
    );
    let agent = Agent::start_with_env(&config, &[("WATCHPOST_LOG", "debug")]);
    for probe in ["alive", "alive-standby"] {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let view = agent.probe(probe).unwrap_or_default();
            if view["status"] == "ok" && view.to_string().contains("is up as a") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{probe} is not ok: {view:#}\n{}",
                agent.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    wait_for("the webhook to succeed", PATIENCE, || {
        (!agent.audit_of("tell", "succeeded").is_empty()).then_some(())
    });
    let received = sink.received.lock().unwrap().clone();
    assert_eq!(
        received[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    let places = [
        ("/v1/probes", agent.json("/v1/probes").to_string()),
        ("/v1/events", agent.json("/v1/events").to_string()),
        ("the log", agent.log()),
        (
            "the audit log",
            std::fs::read_to_string(agent.state_dir().join("audit.log")).unwrap(),
        ),
    ];
    for (place, text) in places {
        assert!(!text.is_empty(), "{place} is empty");
        for secret in [PASSWORD, TOKEN] {
            assert!(!text.contains(secret), "{secret} shows in {place}");
        }
    }
}

#[test]
fn a_secret_file_others_can_read_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let passfile = dir.path().join("pgpass");
    std::fs::write(&passfile, format!("*:*:*:*:{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("watchpost.toml");
    std::fs::write(
        &config,
        format!(
            "[targets.primary]\ndsn = \"host=127.0.0.1 user=u\"\npassword_file = \"{}\"\n\
             [targets.standby]\ndsn = \"host=127.0.0.1 user=u passfile={}\"\n",
            password_file.display(),
            passfile.display()
        ),
    )
    .unwrap();
    let outcome = watchpost_run(["validate", "-c", config.to_str().unwrap()]);
    assert_ne!(outcome.code, 0);
    let text = outcome.all_output();
    let shown = config.display();
    assert!(
        text.contains(&format!("{shown}:3:17:"))
            && text.contains(&format!("chmod 0600 {}", password_file.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{shown}:5:7:"))
            && text.contains(&format!("chmod 0600 {}", passfile.display())),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
}

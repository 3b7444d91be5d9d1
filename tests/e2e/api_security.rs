//! The status API against local users and the network: a flood of idle
//! connections cannot take the agent's file descriptors (pg-alive against
//! a real PostgreSQL stays ok, `/healthz` answers), POSTs need the token
//! the agent generated (and the command line finds it with no flag), a
//! browser page elsewhere cannot POST, and a reload cannot weaken the
//! authentication of the socket already bound.

use std::net::TcpStream;
use std::time::{Duration, Instant};
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for, wasm};
use watchpost_e2e::cli::{watchpost, watchpost_run};
use watchpost_e2e::pg::PgNodes;

/// Make sure this test process may open `n` more files.
fn allow_open_files(n: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit(2) on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < n {
            assert!(
                limit.rlim_max >= n,
                "this test needs {n} open files; the hard limit is {}",
                limit.rlim_max
            );
            limit.rlim_cur = n;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

#[test]
fn a_thousand_idle_api_connections_do_not_make_pg_alive_critical() {
    allow_open_files(4096);
    let pg = PgNodes::start(1);
    let config = format!(
        "[targets.primary]\nkind = \"postgres\"\ndsn = \"{} connect_timeout=2\"\n\n\
         [[probe]]\nname = \"alive\"\nwasm = \"builtin:pg-alive\"\nevery = \"250ms\"\ntimeout = \"2s\"\n\
         targets = [\"primary\"]\nflapping = {{ enabled = false }}\n",
        pg.nodes[0].dsn()
    );
    // NOFILE 1024, as on a stock host: before the connection limit, 1,100
    // idle connections took every descriptor and pg-alive's next
    // connection failed with EMFILE ("unreachable": a failover).
    let agent = Agent::start_with_nofile(&config, 1024);
    wait_for("pg-alive to be ok", PATIENCE, || {
        agent
            .probe("alive")
            .filter(|p| p["status"] == "ok" && p["counters"]["runs"].as_u64() >= Some(2))
    });
    let address = format!("127.0.0.1:{}", agent.port);
    let mut idle = Vec::new();
    for _ in 0..1100 {
        // Connections the agent already closed still count here: the
        // client keeps its end open, sending nothing.
        if let Ok(stream) =
            TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(5))
        {
            idle.push(stream);
        }
    }
    assert!(idle.len() >= 1000, "only {} connections opened", idle.len());
    let runs_then = agent.probe("alive").unwrap()["counters"]["runs"]
        .as_u64()
        .unwrap();
    // /healthz still answers, on a new connection, while they are held.
    let started = Instant::now();
    let (code, _) = agent.get("/healthz").expect("/healthz answers");
    assert_eq!(code, 200);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "/healthz took {:?}",
        started.elapsed()
    );
    // pg-alive keeps running and stays ok while the connections are held.
    let view = wait_for("ten more runs of pg-alive", PATIENCE, || {
        agent
            .probe("alive")
            .filter(|p| p["counters"]["runs"].as_u64().unwrap_or(0) >= runs_then + 10)
    });
    assert_eq!(view["status"], "ok", "{view:#}");
    assert_eq!(view["hard_status"], "ok", "{view:#}");
    let history = view["history"].to_string();
    assert!(!history.contains("critical"), "{view:#}");
    assert!(
        !agent.log().contains("Too many open files"),
        "{}",
        agent.log()
    );
    drop(idle);
}

fn remediation_config() -> String {
    format!(
        "[[probe]]\nname = \"switch\"\nwasm = \"{}\"\nevery = \"1s\"\nconfig = {{ status = \"ok\" }}\n\n\
         [[remediation]]\nname = \"note\"\non = {{ probe = \"switch\" }}\naction = {{ exec = [\"true\"] }}\ndry_run = true\n",
        wasm("flip")
    )
}

fn post(agent: &Agent, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let client: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = client.post(&format!("http://127.0.0.1:{}{path}", agent.port));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut response = request.send_empty().unwrap();
    let code = response.status().as_u16();
    (code, response.body_mut().read_to_string().unwrap())
}

#[test]
fn a_post_needs_the_generated_token_which_the_command_line_finds() {
    let agent = Agent::start(&remediation_config());
    let token_file = agent.state_dir().join("api-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    let token = agent.token().unwrap();
    assert_eq!(token.len(), 64);
    // Reads stay open on loopback without a configured token.
    assert_eq!(agent.get_anonymous("/v1/probes").unwrap().0, 200);
    // No token, a wrong one: 401, and nothing changed.
    let (code, body) = post(&agent, "/v1/pause", &[]);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("api-token"), "{body}");
    assert_eq!(
        post(&agent, "/v1/pause", &[("Authorization", "Bearer nope")]).0,
        401
    );
    assert_eq!(post(&agent, "/v1/reload", &[]).0, 401);
    assert_eq!(agent.json("/v1/remediations")["paused_all"], false);
    // A form a browser could send: refused even with the token.
    let bearer = format!("Bearer {token}");
    let (code, _) = post(
        &agent,
        "/v1/pause",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
    );
    assert_eq!(code, 415);
    // A page elsewhere: refused even with the token.
    let (code, _) = post(
        &agent,
        "/v1/pause",
        &[
            ("Authorization", &bearer),
            ("Origin", "http://evil.example"),
        ],
    );
    assert_eq!(code, 403);
    // A rebound name (DNS rebinding) cannot read either.
    let client: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let rebound = client
        .get(&format!("http://127.0.0.1:{}/v1/probes", agent.port))
        .header("Host", "evil.example")
        .call()
        .unwrap();
    assert_eq!(rebound.status().as_u16(), 403);
    assert_eq!(agent.json("/v1/remediations")["paused_all"], false);

    // The command line, given the config (or only the state directory),
    // finds the token itself.
    let config = agent.config_path().display().to_string();
    let paused = watchpost_run(["pause", "--all", "-c", &config]);
    assert_eq!(paused.code, 0, "{}", paused.all_output());
    assert_eq!(agent.json("/v1/remediations")["paused_all"], true);
    let mut resume = watchpost();
    resume
        .env("WATCHPOST_STATE_DIR", agent.state_dir())
        .env_remove("WATCHPOST_TOKEN")
        .args([
            "resume",
            "--all",
            "--api",
            &format!("http://127.0.0.1:{}", agent.port),
        ]);
    let resumed = watchpost_e2e::cli::run(resume);
    assert_eq!(resumed.code, 0, "{}", resumed.all_output());
    assert_eq!(agent.json("/v1/remediations")["paused_all"], false);
    // Without it, the command says what the agent answered.
    let mut blind = watchpost();
    blind
        .env("WATCHPOST_STATE_DIR", agent.path("elsewhere"))
        .env_remove("WATCHPOST_TOKEN")
        .args([
            "pause",
            "--all",
            "--api",
            &format!("http://127.0.0.1:{}", agent.port),
        ]);
    let refused = watchpost_e2e::cli::run(blind);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("401"), "{}", refused.all_output());
}

#[test]
fn a_reload_cannot_weaken_the_authentication_of_the_bound_socket() {
    let token = "reload-test-token-0123456789";
    let with_token = |listen_extra: &str| {
        format!(
            "[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\n{listen_extra}\n{}",
            remediation_config()
        )
    };
    let agent = Agent::start_with_env(
        &with_token("api_token_env = \"WATCHPOST_RELOAD_TOKEN\""),
        &[("WATCHPOST_RELOAD_TOKEN", token)],
    );
    // With `api_token_env`, reads need the token too, but for health and
    // the load-balancer checks.
    for path in ["/", "/v1/probes", "/metrics", "/v1/events"] {
        assert_eq!(agent.get_anonymous(path).unwrap().0, 401, "{path}");
    }
    assert_eq!(agent.get_anonymous("/healthz").unwrap().0, 200);
    assert_eq!(agent.get_anonymous("/v1/role/primary").unwrap().0, 503);
    assert_eq!(agent.get("/metrics").unwrap().0, 200);
    let bearer = format!("Bearer {token}");
    // The token dropped from the config: refused, with the reason.
    agent.write_config(&with_token(""));
    let (code, body) = post(&agent, "/v1/reload", &[("Authorization", &bearer)]);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("api_token_env"), "{body}");
    assert!(body.contains("restart"), "{body}");
    // SIGHUP goes the same way.
    let before = agent.log().matches("config reload rejected").count();
    agent.signal(libc::SIGHUP);
    wait_for("the SIGHUP reload to be rejected", PATIENCE, || {
        (agent.log().matches("config reload rejected").count() > before).then_some(())
    });
    // The bound socket still needs the token.
    assert_eq!(agent.get_anonymous("/v1/probes").unwrap().0, 401);
    assert_eq!(post(&agent, "/v1/pause", &[]).0, 401);
    // Moving `listen`: refused too.
    let moved = with_token("api_token_env = \"WATCHPOST_RELOAD_TOKEN\"").replace(
        "listen = \"{LISTEN}\"",
        &format!("listen = \"127.0.0.2:{}\"", agent.port),
    );
    agent.write_config(&moved);
    let (code, body) = post(&agent, "/v1/reload", &[("Authorization", &bearer)]);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("`listen`"), "{body}");
    // The same address and token: the reload goes through.
    agent.write_config(&with_token("api_token_env = \"WATCHPOST_RELOAD_TOKEN\""));
    let (code, body) = post(&agent, "/v1/reload", &[("Authorization", &bearer)]);
    assert_eq!(code, 200, "{body}");
}

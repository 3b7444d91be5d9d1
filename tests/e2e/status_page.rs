//! The status page in a real browser: Debian's headless Chromium driven
//! over WebDriver against a running agent with host probes, a probe made
//! critical by its thresholds, a `flip` probe whose state the test changes,
//! and a probe whose message carries a `<script>`. Screenshots of every
//! page go to `target/screenshots/status-page/`.

use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use watchpost_e2e::agent::{Agent, PATIENCE, wasm};
use watchpost_e2e::browser::{Browser, screenshot};

const AREA: &str = "status-page";
/// What the hostile probe's message carries (the flip probe repeats an
/// unknown `status` in its error message).
const SCRIPT: &str = "<script>document.title='pwned'</script>";

fn config(switch: &str) -> String {
    let flip = wasm("flip");
    format!(
        r#"[agent]
state_dir = "{{STATE}}"
listen = "{{LISTEN}}"

[[probe]]
name = "cpu"
wasm = "builtin:host-cpu"
every = "1s"

[[probe]]
name = "memory"
wasm = "builtin:host-memory"
every = "1s"
  [probe.thresholds."system.memory.utilization"]
  critical = "~:0"

[[probe]]
name = "disk"
wasm = "builtin:host-disk"
every = "1s"

[[probe]]
name = "switch"
wasm = "{flip}"
every = "1s"
config = {{ status = "{switch}" }}

[[probe]]
name = "hostile"
wasm = "{flip}"
every = "1s"
config = {{ status = "{SCRIPT}" }}

[[remediation]]
name = "note-switch"
on = {{ probe = "switch", status = "critical" }}
action = {{ exec = ["true"] }}
dry_run = true
"#
    )
}

/// Run a script in the page and return what it returns.
async fn eval(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.expect("execute")
}

/// (probe, status, confirmed status) of every overview row, read at once
/// (the page swaps its content while it refreshes).
async fn rows_js(client: &Client) -> Vec<(String, String, String)> {
    let rows = eval(
        client,
        "return [...document.querySelectorAll('#probes tr[data-probe]')]\
         .map(r => [r.dataset.probe, r.dataset.status, r.dataset.hard]);",
    )
    .await;
    serde_json::from_value(rows).unwrap()
}

/// The same from the DOM, for a page that runs no script.
async fn rows_dom(client: &Client) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for row in client
        .find_all(Locator::Css("#probes tr[data-probe]"))
        .await
        .unwrap()
    {
        let attr = async |name: &str| row.attr(name).await.unwrap().unwrap_or_default();
        out.push((
            attr("data-probe").await,
            attr("data-status").await,
            attr("data-hard").await,
        ));
    }
    out
}

/// Wait (without blocking the runtime) until `check` holds.
async fn until<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn status_of(agent: &Agent, probe: &str) -> String {
    agent.probe(probe).unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The page's address.
fn base(agent: &Agent) -> String {
    format!("http://127.0.0.1:{}", agent.port)
}

async fn with_javascript(agent: &Agent, client: &Client) {
    let base = base(agent);
    client.goto(&format!("{base}/")).await.unwrap();
    // Every probe is listed with the status the API gives it (each one
    // compared on its own: host probes may change between two reads).
    let mut matched = std::collections::BTreeSet::new();
    until("the overview to match /v1/probes", async || {
        let rows = rows_js(client).await;
        let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(names, ["cpu", "disk", "hostile", "memory", "switch"]);
        for (probe, status, _) in &rows {
            if *status == status_of(agent, probe) {
                matched.insert(probe.clone());
            }
        }
        matched.len() == rows.len()
    })
    .await;
    let rows = rows_js(client).await;
    let status = |p: &str| rows.iter().find(|r| r.0 == p).unwrap().clone();
    assert_eq!(status("memory").1, "critical", "{rows:?}");
    assert_eq!(status("switch").1, "ok", "{rows:?}");
    assert_eq!(status("hostile").1, "unknown", "{rows:?}");
    // The script ran under the page's Content-Security-Policy.
    until("the page to refresh itself", async || {
        eval(
            client,
            "return document.getElementById('live').textContent;",
        )
        .await
            == "live"
    })
    .await;
    // The probe's <script> is text, not markup.
    let message = eval(
        client,
        "return document.querySelector('tr[data-probe=hostile] td.msg').textContent;",
    )
    .await;
    assert!(message.as_str().unwrap().contains(SCRIPT), "{message}");
    assert_eq!(
        eval(
            client,
            "return document.querySelectorAll('main script').length;"
        )
        .await,
        0
    );
    assert_ne!(eval(client, "return document.title;").await, "pwned");
    screenshot(client, AREA, "overview").await;

    // A state change shows without a reload, within two intervals (1 s).
    eval(client, "window.notReloaded = true; return 1;").await;
    agent.write_config(&config("critical"));
    agent.signal(libc::SIGHUP);
    let mut api_at = None;
    let page_at = loop {
        if api_at.is_none() && status_of(agent, "switch") == "critical" {
            api_at = Some(Instant::now());
        }
        let rows = rows_js(client).await;
        if rows.iter().any(|r| r.0 == "switch" && r.1 == "critical") {
            break Instant::now();
        }
        assert!(
            api_at.is_none_or(|at| at.elapsed() < PATIENCE),
            "the page never showed the change"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lag = page_at - api_at.unwrap_or(page_at);
    assert!(
        lag <= Duration::from_secs(2),
        "the page lagged the API by {lag:?}"
    );
    assert_eq!(
        eval(client, "return window.notReloaded === true;").await,
        true
    );

    // The probe page draws its history and its measurements.
    client.goto(&format!("{base}/probes/switch")).await.unwrap();
    until("the history to show both states", async || {
        let kinds = eval(
            client,
            "return [...document.querySelectorAll('svg#history rect')].map(r => r.getAttribute('class'));",
        )
        .await;
        let kinds = kinds.to_string();
        kinds.contains("s-ok") && kinds.contains("s-critical")
    })
    .await;
    until("a sparkline of flip.phase", async || {
        eval(
            client,
            "return document.querySelectorAll('#measurements svg.spark polyline').length;",
        )
        .await
        .as_u64()
            > Some(0)
    })
    .await;
    screenshot(client, AREA, "probe").await;
    client.goto(&format!("{base}/probes/memory")).await.unwrap();
    let thresholds = eval(
        client,
        "return document.getElementById('thresholds').textContent;",
    )
    .await;
    assert!(thresholds.to_string().contains("critical"), "{thresholds}");

    // Remediations: the guards, the audit timeline, and the buttons that
    // send the token typed into the page as a bearer token.
    client.goto(&format!("{base}/remediations")).await.unwrap();
    until("a dry-run record in the timeline", async || {
        eval(
            client,
            "return document.querySelectorAll('#timeline tr[data-decision=\"dry-run\"]').length;",
        )
        .await
        .as_u64()
            > Some(0)
    })
    .await;
    screenshot(client, AREA, "remediations").await;
    client
        .find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(&agent.token().expect("the generated token"))
        .await
        .unwrap();
    until("a pause through the page's button", async || {
        // Clicked from a script, in one step: the button may be swapped.
        eval(
            client,
            "document.querySelector('tr[data-remediation=\"note-switch\"] button[data-post$=\"/pause\"]').click(); return 1;",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        agent.json("/v1/remediations")["remediations"][0]["paused"] == json!(true)
    })
    .await;
    let said = eval(
        client,
        "return document.getElementById('said').textContent;",
    )
    .await;
    assert!(said.to_string().contains("paused"), "{said}");
}

async fn without_javascript(agent: &Agent, client: &Client) {
    let base = base(agent);
    client.goto(&format!("{base}/")).await.unwrap();
    let rows = rows_dom(client).await;
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["cpu", "disk", "hostile", "memory", "switch"]);
    let memory = rows.iter().find(|r| r.0 == "memory").unwrap();
    assert_eq!(memory.2, "critical", "{rows:?}");
    let message = client
        .find(Locator::Css("tr[data-probe=hostile] td.msg"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(message.contains(SCRIPT), "{message}");
    screenshot(client, AREA, "overview-without-javascript").await;
    // No script runs: the live marker stays empty past a refresh period.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let live = client
        .find(Locator::Id("live"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(live, "", "scripts ran although JavaScript is off");
    client.goto(&format!("{base}/probes/switch")).await.unwrap();
    let bars = client
        .find_all(Locator::Css("svg#history rect"))
        .await
        .unwrap();
    assert!(bars.len() >= 2, "{} history bars", bars.len());
    let lines = client
        .find_all(Locator::Css("#measurements svg.spark polyline"))
        .await
        .unwrap();
    assert!(!lines.is_empty());
    screenshot(client, AREA, "probe-without-javascript").await;
}

#[test]
fn the_status_page_in_a_browser_with_and_without_javascript() {
    let agent = Agent::start(&config("ok"));
    for probe in ["cpu", "memory", "disk", "switch", "hostile"] {
        agent.wait_for_runs(probe, 2);
    }
    let mut browser = Browser::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = browser.session(true).await;
        with_javascript(&agent, &client).await;
        client.close().await.unwrap();
        let client = browser.session(false).await;
        without_javascript(&agent, &client).await;
        client.close().await.unwrap();
    });
}

#[test]
fn with_the_generated_token_only_the_holder_can_drive_the_agent() {
    let agent = Agent::start(&format!(
        "[[probe]]\nname = \"switch\"\nwasm = \"{}\"\nevery = \"1s\"\nconfig = {{ status = \"critical\" }}\n\
         [[remediation]]\nname = \"note\"\non = {{ probe = \"switch\" }}\naction = {{ exec = [\"true\"] }}\ndry_run = true\n",
        wasm("flip")
    ));
    agent.wait_for_runs("switch", 1);
    let token = agent
        .token()
        .expect("the agent generated state_dir/api-token");
    // Without api_token_env the pages are readable without the token, and
    // carry the buttons and the token field (the token is needed to use them).
    for path in ["/", "/remediations", "/probes/switch"] {
        let (code, body) = agent.get_anonymous(path).unwrap();
        assert_eq!(code, 200, "{path}");
        assert!(body.contains("<main"), "{path}: {body}");
        assert!(body.contains("id=\"token\""), "{path}");
    }
    assert!(
        agent
            .get_anonymous("/remediations")
            .unwrap()
            .1
            .contains("<button")
    );
    assert_eq!(agent.get("/probes/nope").unwrap().0, 404);
    let port = agent.port;
    let own = format!("http://127.0.0.1:{port}");
    // No token: refused, whatever the origin.
    assert_eq!(post_from(&agent, "/v1/pause", None, None), 401);
    assert_eq!(post_from(&agent, "/v1/pause", Some(&own), None), 401);
    // A page elsewhere cannot post, even with the token.
    assert_eq!(
        post_from(
            &agent,
            "/v1/pause",
            Some("http://evil.example"),
            Some(&token)
        ),
        403
    );
    assert_eq!(
        post_from(&agent, "/v1/pause", Some("null"), Some(&token)),
        403
    );
    assert_eq!(agent.json("/v1/remediations")["paused_all"], false);
    // The page's own origin and command-line clients (no Origin) may.
    assert_eq!(
        post_from(&agent, "/v1/pause", Some(&own), Some(&token)),
        200
    );
    assert_eq!(post_from(&agent, "/v1/resume", None, Some(&token)), 200);
}

/// POST with an `Origin` header and a token: the status code.
fn post_from(agent: &Agent, path: &str, origin: Option<&str>, token: Option<&str>) -> u16 {
    let client: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = client.post(&format!("http://127.0.0.1:{}{path}", agent.port));
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    request.send_empty().unwrap().status().as_u16()
}

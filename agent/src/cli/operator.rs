//! Operator commands that talk to a running agent's status API:
//! `watchpost pause|resume|reset|switchover|events`. The agent is found from the `-c`
//! config's `listen` (default 127.0.0.1:9464) or `--api URL`; the token
//! from the variable the config's `api_token_env` names, else
//! `WATCHPOST_TOKEN`, else the file the agent generated,
//! `state_dir/api-token` (the `-c` config's `state_dir`, or the default
//! one): run as the agent's user, the commands need no flag.

use crate::config;
use crate::remediate::audit::AuditRecord;
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

/// Where the agent's API is.
#[derive(clap::Args, Debug, Clone)]
pub struct ApiArgs {
    #[command(flatten)]
    pub config: super::ConfigArg,
    /// The agent's API, e.g. http://127.0.0.1:9464 (default: from -c, else 127.0.0.1:9464).
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct PauseArgs {
    /// The remediation to pause.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub remediation: Option<String>,
    /// Pause every remediation.
    #[arg(long)]
    pub all: bool,
    /// For how long (default: until `watchpost resume`).
    #[arg(long = "for", value_name = "DURATION", value_parser = super::pause_arg)]
    pub duration: Option<Duration>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    /// The remediation to resume.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub remediation: Option<String>,
    /// Lift the pause of every remediation.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    /// The remediation whose breaker, cooldown (and failover block) to clear.
    pub remediation: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(clap::Args, Debug)]
pub struct SwitchoverArgs {
    /// The MariaDB or Redis failover remediation whose primary and replica trade places.
    pub remediation: String,
    /// Seconds to wait for the outcome (0: return once it started).
    #[arg(long, default_value_t = 120)]
    pub wait: u64,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Keep printing new records as they come.
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the last records to show first.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub lines: usize,
    /// Print raw JSON lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    fn new(args: &ApiArgs) -> anyhow::Result<Api> {
        let config = match &args.config.config {
            Some(path) => Some(config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?),
            None => None,
        };
        let base = match (&args.api, &config) {
            (Some(url), _) => url.trim_end_matches('/').to_string(),
            (None, Some(c)) => format!("http://{}", c.agent.listen),
            (None, None) => "http://127.0.0.1:9464".to_string(),
        };
        let token = token(config.as_ref());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Api { base, token, http })
    }

    async fn call(&self, post: bool, path: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let mut request = if post {
            self.http.post(&url)
        } else {
            self.http.get(&url)
        };
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the agent at {}: {e}; is `watchpost run` running there? (--api URL or -c FILE)", self.base))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or(serde_json::Value::String(text.trim().to_string()));
        if !status.is_success() {
            let message = body
                .get("error")
                .and_then(|e| e.as_str())
                .map(String::from)
                .unwrap_or_else(|| body.to_string());
            anyhow::bail!("the agent answered {status}: {message}");
        }
        Ok(body)
    }
}

/// The token to send: see the module's doc. A token file that cannot be
/// read is skipped here (the agent's 401 then says where it is).
fn token(config: Option<&config::Config>) -> Option<String> {
    let from_env = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    if let Some(name) = config.and_then(|c| c.agent.api_token_env.as_deref()) {
        return from_env(name);
    }
    if let Some(token) = from_env("WATCHPOST_TOKEN") {
        return Some(token);
    }
    let state_dir = match config {
        Some(c) => c.agent.state_dir.clone(),
        None => config::default_state_dir(),
    };
    let path = crate::api::auth::token_path(&state_dir);
    match crate::api::auth::read_token_file(&path, false) {
        Ok(token) => Some(token),
        Err(e) => {
            if path.exists() {
                eprintln!("watchpost: {e}");
            }
            None
        }
    }
}

fn message(body: &serde_json::Value) -> String {
    body.get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("done")
        .to_string()
}

pub async fn pause(args: PauseArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    let query = args
        .duration
        .map(|d| format!("?for={}", config::units::format_duration(d)))
        .unwrap_or_default();
    let path = match &args.remediation {
        Some(name) if !args.all => format!("/v1/remediations/{name}/pause{query}"),
        _ => format!("/v1/pause{query}"),
    };
    println!("{}", message(&api.call(true, &path).await?));
    Ok(ExitCode::SUCCESS)
}

pub async fn resume(args: ResumeArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    let path = match &args.remediation {
        Some(name) if !args.all => format!("/v1/remediations/{name}/resume"),
        _ => "/v1/resume".to_string(),
    };
    println!("{}", message(&api.call(true, &path).await?));
    Ok(ExitCode::SUCCESS)
}

pub async fn reset(args: ResetArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    let body = api
        .call(
            true,
            &format!("/v1/remediations/{}/reset", args.remediation),
        )
        .await?;
    println!("{}", message(&body));
    Ok(ExitCode::SUCCESS)
}

fn line(record: &AuditRecord) -> String {
    let at = humantime::format_rfc3339_millis(record.at);
    let reason = record
        .reason
        .as_ref()
        .map(|r| format!(" [{r}]"))
        .unwrap_or_default();
    format!(
        "{at} {:<12} {}{reason}: {}",
        record.decision, record.remediation, record.message
    )
}

pub async fn events(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    let mut seen = HashSet::new();
    let mut first = true;
    loop {
        let limit = if first { args.lines.max(1) } else { 1000 };
        let body = api
            .call(false, &format!("/v1/events?limit={limit}"))
            .await?;
        let records: Vec<AuditRecord> = serde_json::from_value(body["events"].clone())?;
        for record in records {
            let key = (record.id.clone(), record.decision, record.at);
            if !seen.insert(key) {
                continue;
            }
            if args.json {
                println!("{}", serde_json::to_string(&record)?);
            } else {
                println!("{}", line(&record));
            }
        }
        first = false;
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Start a switchover and, with `--wait`, print its steps and outcome;
/// exit 1 when it failed or did not end in time.
pub async fn switchover(args: SwitchoverArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    let path = format!("/v1/remediations/{}/switchover", args.remediation);
    let body = api.call(true, &path).await?;
    println!("{}", message(&body));
    let id = body["id"].as_str().unwrap_or_default().to_string();
    if args.wait == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(args.wait);
    let mut printed = HashSet::new();
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let body = api.call(false, "/v1/events?limit=1000").await?;
        let records: Vec<AuditRecord> = serde_json::from_value(body["events"].clone())?;
        for record in records.iter().filter(|r| r.id == id) {
            if printed.insert((record.decision, record.at)) {
                println!("{}", line(record));
            }
            if record.decision.is_outcome() {
                let ok = record.decision == crate::events::Decision::Succeeded;
                return Ok(if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
        }
    }
    eprintln!(
        "the switchover did not end within {} s; follow it with `watchpost events -f`",
        args.wait
    );
    Ok(ExitCode::FAILURE)
}

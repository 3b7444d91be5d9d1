//! The webhook action: an HTTP POST of a JSON event, with a timeout,
//! retries with exponential backoff on failures and 5xx answers, and an
//! optional bearer token read from the environment (never from the config).
//!
//! Bounded: the backoff doubles up to [`MAX_BACKOFF`], and the whole
//! delivery, retries included, ends by [`DELIVERY_DEADLINE`] (each attempt's
//! timeout is cut to what is left), so `retries = 20` cannot hold an
//! action task for days.
//!
//! A webhook URL often is the secret (a chat hook's token in its path):
//! records, logs and messages only ever show its scheme and host
//! ([`redacted`]). Redirects are not followed (the client is built with
//! none): a 3xx is a failed delivery, so the event and the bearer token
//! never go to another address.

use crate::config::WebhookAction;
use serde::Serialize;
use std::time::{Duration, Instant};

/// First wait before a retry; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The whole delivery, every attempt and wait included, ends by then.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(300);

/// What the delivery did.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    pub url: String,
    pub attempts: u32,
    /// HTTP status of the last answer, if any.
    pub status: Option<u16>,
    pub delivered: bool,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub duration_ms: f64,
}

/// `scheme://host[:port]` of `url`, for records and logs: its path, query,
/// user and password (where hook tokens live) are left out.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("");
            match parsed.port() {
                Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
                None => format!("{}://{host}", parsed.scheme()),
            }
        }
        Err(_) => "<invalid URL>".to_string(),
    }
}

/// POST `body` to the hook's URL.
pub async fn deliver(
    client: &reqwest::Client,
    hook: &WebhookAction,
    body: &serde_json::Value,
) -> Delivery {
    let started = Instant::now();
    let token = match &hook.bearer {
        Some(secret) => Some(secret.expose().to_string()),
        None => hook
            .bearer_env
            .as_ref()
            .and_then(|var| std::env::var(var).ok()),
    };
    let mut delivery = Delivery {
        url: redacted(&hook.url),
        attempts: 0,
        status: None,
        delivered: false,
        error: None,
        duration_ms: 0.0,
    };
    if let (Some(var), None) = (&hook.bearer_env, &token) {
        delivery.error = Some(format!(
            "the bearer token variable {var} is not set in the agent's environment"
        ));
        return delivery;
    }
    let mut backoff = FIRST_BACKOFF;
    let deadline = started + DELIVERY_DEADLINE;
    loop {
        delivery.attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let mut request = client
            .post(&hook.url)
            .timeout(hook.timeout.min(left))
            .json(body);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                delivery.status = Some(status.as_u16());
                if status.is_success() {
                    delivery.delivered = true;
                    delivery.error = None;
                    break;
                }
                delivery.error = Some(if status.is_redirection() {
                    format!(
                        "the hook answered {status} (a redirect, which is not followed: configure the final URL)"
                    )
                } else {
                    format!("the hook answered {status}")
                });
                // A 4xx or a redirect will not get better by retrying.
                if status.is_client_error() || status.is_redirection() {
                    break;
                }
            }
            // reqwest's message names the full URL: drop it.
            Err(e) => delivery.error = Some(error_text(&e.without_url())),
        }
        if delivery.attempts > hook.retries {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left <= backoff {
            delivery.error = Some(format!(
                "{}; gave up at the delivery deadline of {} s",
                delivery.error.take().unwrap_or_default(),
                DELIVERY_DEADLINE.as_secs()
            ));
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    delivery.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    delivery
}

fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_to_scheme_and_host() {
        assert_eq!(
            redacted("https://hooks.example.com/services/T0/B0/s3cr3t?x=1"),
            "https://hooks.example.com"
        );
        assert_eq!(
            redacted("http://user:pw@127.0.0.1:8080/hook/token"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(redacted("not a url"), "<invalid URL>");
    }
}

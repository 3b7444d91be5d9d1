//! The status page: server-rendered HTML (with `maud`, which escapes every
//! interpolated value, so whatever a probe writes shows as text) served on
//! the status API's listener.
//!
//! - `GET /`: the overview ([`overview`]), and the cluster section
//!   ([`cluster`]) when the cluster mode is configured;
//! - `GET /probes/{name}`: one probe ([`probe`]): history, recent
//!   measurements (from [`crate::telemetry::recent`]), thresholds, last
//!   error;
//! - `GET /remediations`: guards and the audit timeline ([`remediations`]).
//!
//! Everything is in the HTML, so the page works without JavaScript (and
//! then refreshes with a `<meta refresh>`). With JavaScript, a small inline
//! script ([`assets`]) re-fetches the same page every few seconds and
//! swaps its `<main>`, and sends the operator buttons' requests. The
//! API always has a token for its POSTs (see [`super::auth`]); the token is
//! typed into the page, kept in the tab's `sessionStorage` and sent as
//! `Authorization: Bearer`, never as a cookie, so another site cannot make
//! the browser send it. A Content-Security-Policy admits only the page's
//! own inline script and style (by hash), requests to the agent itself,
//! and no framing.

mod assets;
mod chart;
mod cluster;
mod overview;
mod probe;
mod remediations;

pub use overview::overview;
pub use probe::probe;
pub use remediations::remediations;

use crate::daemon::Shared;
use crate::report::Status;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::time::{Duration, SystemTime};

/// Which page is shown, for the navigation.
#[derive(Clone, Copy, PartialEq)]
enum Nav {
    Overview,
    Probe,
    Remediations,
}

/// How often the page refreshes itself: the shortest probe interval,
/// within 1 to 10 seconds.
fn refresh(shared: &Shared) -> Duration {
    shared
        .slots()
        .values()
        .map(|s| s.setup().spec.every)
        .min()
        .unwrap_or(Duration::from_secs(5))
        .clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// A whole page around `main`.
fn layout(shared: &Shared, title: &str, nav: Nav, main: Markup) -> Response {
    let node = shared.node();
    let every = refresh(shared);
    let link = |to: Nav, href: &str, text: &str| {
        html! { a href=(href) class=[(nav == to).then_some("here")] { (text) } }
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (node) " · Watchpost" }
                noscript { meta http-equiv="refresh" content=(every.as_secs().max(5)); }
                style { (PreEscaped(assets::CSS)) }
            }
            body {
                header {
                    strong { "Watchpost" }
                    span class="node" { "node " b { (node) } }
                    nav {
                        (link(Nav::Overview, "/", "Overview"))
                        (link(Nav::Remediations, "/remediations", "Remediations"))
                        a href="/v1/probes" { "JSON" }
                        a href="/metrics" { "Metrics" }
                    }
                    label class="token" {
                        "Operator token "
                        input id="token" type="password" autocomplete="off" placeholder="for pause, resume, reset";
                    }
                    span id="live" class="live" {}
                }
                main id="main" data-refresh=(every.as_millis()) { (main) }
                p id="said" class="said" role="status" {}
                footer {
                    "watchpost " (env!("CARGO_PKG_VERSION"))
                    " · refreshed every " (every.as_secs()) " s · rendered "
                    (humantime::format_rfc3339_seconds(SystemTime::now()))
                }
                script { (PreEscaped(assets::JS)) }
            }
        }
    };
    let mut response = page.into_string().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(csp) = HeaderValue::from_str(&assets::csp()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// A page that says what was not found.
fn not_found(shared: &Shared, what: String) -> Response {
    let main = html! {
        h1 { "Not found" }
        p { (what) }
        p { a href="/" { "Back to the overview" } }
    };
    let mut response = layout(shared, "Not found", Nav::Probe, main);
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// A status word in its colour.
fn badge(status: Status) -> Markup {
    html! { span class={ "badge s-" (status.as_str()) } { (status.as_str()) } }
}

/// `at` as a `<time>`: relative text ("4 s ago", "in 2 s"), the exact
/// time as its title.
fn when(at: Option<SystemTime>) -> Markup {
    let Some(at) = at else {
        return html! { span class="dim" { "never" } };
    };
    let exact = humantime::format_rfc3339_millis(at).to_string();
    let now = SystemTime::now();
    let text = match at.duration_since(now) {
        Ok(ahead) => format!("in {}", short(ahead)),
        Err(e) => format!("{} ago", short(e.duration())),
    };
    html! { time datetime=(exact) title=(exact) { (text) } }
}

/// A duration in one or two units: `850 ms`, `12 s`, `3 min 5 s`, `2 h 10 min`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{} ms", d.as_millis()),
        1..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// A number for people: up to 4 significant digits, no exponent below 1e15.
fn number(value: f64) -> String {
    if value.is_nan() {
        return "–".into();
    }
    if value == value.trunc() && value.abs() < 1e15 {
        return format!("{value}");
    }
    let digits = (4 - value.abs().log10().ceil() as i32).clamp(0, 6) as usize;
    let text = format!("{value:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A value with its unit for people: bytes in KiB/MiB/GiB, seconds in ms
/// below one, ratios (`1`) as they are.
fn quantity(value: f64, unit: &str) -> String {
    match unit {
        "By" if value.abs() >= 1024.0 => {
            let mut v = value;
            let mut prefix = "";
            for p in ["Ki", "Mi", "Gi", "Ti", "Pi"] {
                if v.abs() < 1024.0 {
                    break;
                }
                v /= 1024.0;
                prefix = p;
            }
            format!("{} {prefix}B", number(v))
        }
        "s" if value.abs() < 1.0 && value != 0.0 => format!("{} ms", number(value * 1000.0)),
        _ => number(value),
    }
}

/// `k=v, k=v`.
fn attributes(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Percent-encode a path segment (probe and remediation names).
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(number(1234.5678), "1235");
        assert_eq!(number(f64::NAN), "–");
        assert_eq!(short(Duration::from_millis(850)), "850 ms");
        assert_eq!(short(Duration::from_secs(185)), "3 min 5 s");
        assert_eq!(segment("a b/<c>"), "a%20b%2F%3Cc%3E");
        assert_eq!(quantity(2.5 * 1024.0 * 1024.0, "By"), "2.5 MiB");
        assert_eq!(quantity(0.0123, "s"), "12.3 ms");
    }

    #[test]
    fn what_a_probe_writes_is_escaped() {
        let m = html! { td { ("<script>alert(1)</script>") } };
        assert_eq!(
            m.into_string(),
            "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"
        );
    }
}

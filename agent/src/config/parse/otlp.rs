//! `[telemetry]` and `[telemetry.otlp]`: where and how often metrics and
//! events are exported, checked at load so a bad endpoint, header or
//! certificate is a config error, not a silent export failure. Secret
//! headers (an API key) come from `headers_file`, a private file.

use super::super::model::*;
use super::super::reader::Section;
use super::super::units;
use super::{Parser, resolve_env};
use crate::sql::tls::{load_certs, load_key};
use std::collections::BTreeMap;
use std::time::Duration;

use super::super::keys::{Kind, Table, key};

/// `[telemetry]`'s keys.
pub(super) static TELEMETRY: Table = Table {
    heading: "[telemetry]",
    doc: "Metric and event export. Prometheus needs no config: it scrapes /metrics on `[agent] listen`.",
    keys: &[key(
        "otlp",
        Kind::Table,
        "none (no export)",
        "Export metrics and events over OTLP.",
    )
    .of(&OTLP)],
    entries: None,
};

static OTLP: Table = Table {
    heading: "[telemetry.otlp]",
    doc: "An OpenTelemetry (OTLP) exporter; the standard OTEL_EXPORTER_OTLP_* variables fill what is not set here.",
    keys: &[
        key(
            "endpoint",
            Kind::String,
            "OTEL_EXPORTER_OTLP_ENDPOINT, else the protocol's default",
            "The collector's http:// or https:// URL, e.g. \"http://127.0.0.1:4317\".",
        ),
        key(
            "protocol",
            Kind::String,
            "\"grpc\"",
            "\"grpc\" or \"http/protobuf\".",
        ),
        key(
            "interval",
            Kind::Duration(units::SCHEDULE),
            "\"10s\"",
            "How often metrics are exported.",
        ),
        key(
            "timeout",
            Kind::Duration(units::SCHEDULE),
            "the exporter's default",
            "Deadline of one export.",
        ),
        key(
            "headers",
            Kind::Map,
            "{}",
            "Extra headers; `${NAME}` in a value is replaced by the environment variable NAME.",
        ),
        key(
            "headers_file",
            Kind::String,
            "none",
            "A private file of `Name: value` lines (secret headers such as an API key).",
        ),
        key(
            "certificate",
            Kind::String,
            "the system's roots",
            "PEM file of the CA certificates that sign the collector's certificate.",
        ),
        key(
            "client_certificate",
            Kind::String,
            "none",
            "PEM client certificate for mTLS (with `client_key`).",
        ),
        key(
            "client_key",
            Kind::String,
            "none",
            "PEM private key of `client_certificate`.",
        ),
    ],
    entries: None,
};

impl Parser<'_, '_> {
    pub(super) fn telemetry(&mut self, mut s: Section) -> Telemetry {
        let otlp = match s.table(&mut self.d, "otlp") {
            None => None,
            Some(mut o) => {
                let d = &mut self.d;
                let endpoint = o.string(d, "endpoint").map(|e| {
                    if let Err(problem) = check_endpoint(&e.value) {
                        d.error(
                            e.span,
                            format!("[telemetry.otlp]: `endpoint` = {:?} {problem}", e.value),
                        );
                    }
                    e.value
                });
                let protocol = o.string(d, "protocol").and_then(|p| match OtlpProtocol::parse(&p.value) {
                Some(protocol) => Some(protocol),
                None => {
                    d.error(p.span, format!("[telemetry.otlp]: `protocol` = {:?} is not supported; write \"grpc\" or \"http/protobuf\"", p.value));
                    None
                }
            });
                let interval = o
                    .duration(d, "interval", units::SCHEDULE)
                    .map_or(Duration::from_secs(10), |v| v.value);
                let timeout = o.duration(d, "timeout", units::SCHEDULE).map(|v| v.value);
                let mut headers = BTreeMap::new();
                for (key, value) in o.string_map(d, "headers").unwrap_or_default() {
                    match resolve_env(&value.value) {
                        Ok(resolved) => {
                            if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
                                d.error(value.span.clone(), format!("[telemetry.otlp]: {key:?} is not a valid header name (letters, digits and - only)"));
                            } else if http::HeaderValue::from_str(&resolved).is_err() {
                                d.error(value.span.clone(), format!("[telemetry.otlp]: the value of header `{key}` has characters a header cannot carry (control characters or non-ASCII)"));
                            }
                            headers.insert(key, resolved);
                        }
                        Err(unset) => d.error(
                            value.span,
                            format!("[telemetry.otlp]: header `{key}` {unset}"),
                        ),
                    }
                }
                let secret_headers = self.header_file(&mut o, "headers_file");
                let certificate = self.path_key(&mut o, "certificate");
                let client_certificate = self.path_key(&mut o, "client_certificate");
                let client_key = self.path_key(&mut o, "client_key");
                let d = &mut self.d;
                for cert in [&certificate, &client_certificate].into_iter().flatten() {
                    if let Err(e) = load_certs(&cert.value) {
                        d.error(cert.span.clone(), format!("[telemetry.otlp]: {e}"));
                    }
                }
                match (&client_certificate, &client_key) {
                (Some(_), Some(key)) => {
                    if let Err(e) = load_key(&key.value) {
                        d.error(key.span.clone(), format!("[telemetry.otlp]: `client_key`: {e}"));
                    }
                }
                (Some(one), None) | (None, Some(one)) => d.error(
                    one.span.clone(),
                    "[telemetry.otlp]: give both `client_certificate` and `client_key` for mTLS, or neither",
                ),
                (None, None) => {}
            }
                o.finish(d);
                Some(Otlp {
                    endpoint,
                    protocol,
                    interval,
                    headers,
                    timeout,
                    secret_headers,
                    certificate: certificate.map(|c| c.value),
                    client_certificate: client_certificate.map(|c| c.value),
                    client_key: client_key.map(|c| c.value),
                })
            }
        };
        let d = &mut self.d;
        s.finish(d);
        Telemetry { otlp }
    }
}

/// Why an OTLP endpoint cannot be used, if it cannot.
fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|_| "is not a URL; write e.g. \"http://127.0.0.1:4317\"")?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(()),
        _ => Err(
            "must be an http:// or https:// URL with a host, e.g. \"http://127.0.0.1:4317\" or \"https://otlp.example.com:4317\"",
        ),
    }
}

//! Where and how to export: `[telemetry.otlp]` merged with the standard
//! `OTEL_EXPORTER_OTLP_*` environment variables, the config winning.
//!
//! Export is on when the config has a `[telemetry.otlp]` table or the
//! environment names an endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or a
//! per-signal `..._METRICS_ENDPOINT` / `..._LOGS_ENDPOINT`). Values the
//! config leaves out are not set on the exporter builders, so that the
//! exporter crate reads them from the environment as other OpenTelemetry
//! software does (endpoints, headers, timeout, compression). TLS files
//! come from the config or `OTEL_EXPORTER_OTLP_CERTIFICATE`,
//! `..._CLIENT_CERTIFICATE` and `..._CLIENT_KEY` (the per-signal variants
//! too), which the exporter crate does not read itself.

use crate::config::{Otlp, OtlpProtocol, Secret};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Environment variables that turn export on without a config table.
const ENDPOINT_VARS: [&str; 3] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
];

/// The export settings in force.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSettings {
    pub protocol: OtlpProtocol,
    /// The metrics endpoint, when the config gives one.
    pub metrics_endpoint: Option<String>,
    /// The logs endpoint, when the config gives one.
    pub logs_endpoint: Option<String>,
    pub interval: Duration,
    pub headers: BTreeMap<String, String>,
    /// Headers from `headers_file` (never printed).
    pub secret_headers: BTreeMap<String, Secret>,
    pub timeout: Option<Duration>,
    /// Where the data goes, for log lines.
    pub describe: String,
    /// TLS for the metrics and the logs exporters.
    pub metrics_tls: TlsSettings,
    pub logs_tls: TlsSettings,
}

/// TLS to the collector for one signal.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsSettings {
    /// The endpoint (config or environment) is https://.
    pub https: bool,
    /// CA bundle (else the OS trust store).
    pub certificate: Option<PathBuf>,
    /// Client certificate and key for mTLS.
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// TLS settings for `signal` (`METRICS` or `LOGS`): the config's, else
/// the signal's variable, else the general one.
fn tls_settings(
    config: &Otlp,
    endpoint: Option<&str>,
    signal: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> TlsSettings {
    let var = |suffix: &str| {
        env(&format!("OTEL_EXPORTER_OTLP_{signal}_{suffix}"))
            .or_else(|| env(&format!("OTEL_EXPORTER_OTLP_{suffix}")))
            .filter(|v| !v.is_empty())
    };
    let path = |configured: &Option<PathBuf>, suffix: &str| {
        configured
            .clone()
            .or_else(|| var(suffix).map(PathBuf::from))
    };
    let endpoint = endpoint.map(String::from).or_else(|| var("ENDPOINT"));
    TlsSettings {
        https: endpoint.is_some_and(|e| e.starts_with("https://")),
        certificate: path(&config.certificate, "CERTIFICATE"),
        client_certificate: path(&config.client_certificate, "CLIENT_CERTIFICATE"),
        client_key: path(&config.client_key, "CLIENT_KEY"),
    }
}

/// The settings for `config`, or `None` when export is off. `env` reads
/// an environment variable (the process environment in the agent).
pub fn resolve(
    config: Option<&Otlp>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ExportSettings>, String> {
    let from_env = ENDPOINT_VARS
        .iter()
        .any(|v| env(v).is_some_and(|s| !s.is_empty()));
    let config = match config {
        Some(config) => config.clone(),
        None if from_env => Otlp {
            endpoint: None,
            protocol: None,
            interval: Duration::from_secs(10),
            headers: BTreeMap::new(),
            timeout: None,
            secret_headers: BTreeMap::new(),
            certificate: None,
            client_certificate: None,
            client_key: None,
        },
        None => return Ok(None),
    };
    let protocol = match config.protocol {
        Some(protocol) => protocol,
        None => match env("OTEL_EXPORTER_OTLP_PROTOCOL").filter(|s| !s.is_empty()) {
            None => OtlpProtocol::Grpc,
            Some(name) => OtlpProtocol::parse(&name).ok_or_else(|| {
                format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL = {name:?} is not supported; \
                     set it to \"grpc\" or \"http/protobuf\""
                )
            })?,
        },
    };
    let (metrics_endpoint, logs_endpoint) = match &config.endpoint {
        None => (None, None),
        Some(base) => match protocol {
            // gRPC routes by service, not by path.
            OtlpProtocol::Grpc => (Some(base.clone()), Some(base.clone())),
            // As for OTEL_EXPORTER_OTLP_ENDPOINT: a base URL gets the
            // signal's path; a URL with a path of its own is kept for both.
            OtlpProtocol::HttpProtobuf => (
                Some(signal_url(base, "v1/metrics")),
                Some(signal_url(base, "v1/logs")),
            ),
        },
    };
    let describe = match &config.endpoint {
        Some(endpoint) => endpoint.clone(),
        None => ENDPOINT_VARS
            .iter()
            .find_map(|v| env(v).filter(|s| !s.is_empty()))
            .unwrap_or_else(|| match protocol {
                OtlpProtocol::Grpc => "http://localhost:4317".into(),
                OtlpProtocol::HttpProtobuf => "http://localhost:4318".into(),
            }),
    };
    let metrics_tls = tls_settings(&config, metrics_endpoint.as_deref(), "METRICS", &env);
    let logs_tls = tls_settings(&config, logs_endpoint.as_deref(), "LOGS", &env);
    Ok(Some(ExportSettings {
        protocol,
        metrics_endpoint,
        logs_endpoint,
        interval: config.interval,
        headers: config.headers,
        secret_headers: config.secret_headers,
        timeout: config.timeout,
        describe,
        metrics_tls,
        logs_tls,
    }))
}

/// `base` with `path` appended when `base` has no path of its own.
fn signal_url(base: &str, path: &str) -> String {
    let after_scheme = base.split_once("://").map_or(base, |(_, rest)| rest);
    let has_path = after_scheme
        .split_once('/')
        .is_some_and(|(_, p)| !p.trim_matches('/').is_empty());
    if has_path {
        base.to_string()
    } else {
        format!("{}/{path}", base.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn table(endpoint: Option<&str>, protocol: Option<OtlpProtocol>) -> Otlp {
        Otlp {
            endpoint: endpoint.map(String::from),
            protocol,
            interval: Duration::from_secs(5),
            headers: BTreeMap::new(),
            timeout: None,
            secret_headers: BTreeMap::new(),
            certificate: None,
            client_certificate: None,
            client_key: None,
        }
    }

    #[test]
    fn tls_files_come_from_the_config_then_the_signal_then_the_general_variable() {
        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/general.pem"),
            ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "/logs.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/key.pem"),
        ]);
        let s = resolve(None, &env).unwrap().unwrap();
        assert!(s.metrics_tls.https);
        assert_eq!(
            s.metrics_tls.certificate,
            Some(PathBuf::from("/general.pem"))
        );
        assert_eq!(s.logs_tls.certificate, Some(PathBuf::from("/logs.pem")));
        assert_eq!(s.logs_tls.client_key, Some(PathBuf::from("/key.pem")));
        let mut config = table(Some("http://c:4317"), None);
        config.certificate = Some(PathBuf::from("/mine.pem"));
        let s = resolve(Some(&config), &env).unwrap().unwrap();
        assert!(!s.metrics_tls.https);
        assert_eq!(s.metrics_tls.certificate, Some(PathBuf::from("/mine.pem")));
    }

    #[test]
    fn export_is_off_without_a_table_or_an_endpoint_variable() {
        assert_eq!(resolve(None, env_of(&[])), Ok(None));
        let on = resolve(
            None,
            env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]),
        );
        let on = on.unwrap().expect("on");
        assert_eq!(
            (on.protocol, on.metrics_endpoint),
            (OtlpProtocol::Grpc, None)
        );
        assert_eq!(on.describe, "http://c:4317");
    }

    #[test]
    fn http_endpoints_get_the_signal_paths_unless_they_have_one() {
        let http = Some(OtlpProtocol::HttpProtobuf);
        let s = resolve(Some(&table(Some("http://c:4318/"), http)), env_of(&[]));
        let s = s.unwrap().unwrap();
        assert_eq!(
            s.metrics_endpoint.as_deref(),
            Some("http://c:4318/v1/metrics")
        );
        assert_eq!(s.logs_endpoint.as_deref(), Some("http://c:4318/v1/logs"));
        let s = resolve(Some(&table(Some("http://c/otlp/in"), http)), env_of(&[]));
        let s = s.unwrap().unwrap();
        assert_eq!(s.metrics_endpoint.as_deref(), Some("http://c/otlp/in"));
    }

    #[test]
    fn the_protocol_comes_from_the_config_then_the_environment() {
        let env = env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]);
        let s = resolve(Some(&table(None, None)), &env).unwrap().unwrap();
        assert_eq!(s.protocol, OtlpProtocol::HttpProtobuf);
        let s = resolve(Some(&table(None, Some(OtlpProtocol::Grpc))), &env);
        assert_eq!(s.unwrap().unwrap().protocol, OtlpProtocol::Grpc);
        let bad = env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        let error = resolve(Some(&table(None, None)), bad).unwrap_err();
        assert!(error.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{error}");
    }
}

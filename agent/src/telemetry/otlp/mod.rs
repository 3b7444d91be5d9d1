//! OTLP export: measurements, statuses, run durations and the agent's
//! counters as metrics; state changes and remediation decisions as log
//! records. Runs only when `[telemetry.otlp]` or the `OTEL_EXPORTER_OTLP_*`
//! environment asks for it.
//!
//! Flow: the pipeline publishes a run on the event bus; [`start`]'s task
//! records it into the SDK's instruments ([`instruments`]) and emits log
//! records ([`events`]); the SDK's periodic reader and batch log processor
//! export on their own tasks through exporters wrapped by [`guard`], so a
//! dead or slow collector costs the probes nothing.
//!
//! - [`settings`]: config and environment merged.
//! - [`resource`]: who is exporting (`service.*`, `host.name`, node).
//! - [`instruments`]: the metric names and how runs become data points.
//! - [`events`]: the log records.
//! - [`guard`]: drop counting and one log line per outage.
//! - [`tls`]: TLS to `https://` collectors (CA bundle, mTLS).

pub mod events;
pub mod guard;
pub mod instruments;
pub mod resource;
pub mod settings;
pub mod tls;

use crate::config::{Config, OtlpProtocol};
use crate::events::{AgentEvent, Bus};
use anyhow::Context;
use guard::{GuardedLogs, GuardedMetrics, Outage};
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::{
    LogExporter, MetricExporter, RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::logs::log_processor_with_async_runtime::BatchLogProcessor;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::runtime::Tokio;
use settings::{ExportSettings, TlsSettings};
use std::sync::Arc;
use std::time::Duration;

/// The running export; [`OtlpExport::shutdown`] sends what is pending.
pub struct OtlpExport {
    meters: SdkMeterProvider,
    loggers: SdkLoggerProvider,
    /// Metrics first, then logs.
    pub outages: Vec<Arc<Outage>>,
}

/// Retries within one export: a short outage costs nothing; a long one
/// is left to the next interval (metrics are cumulative).
fn retry_policy() -> RetryPolicy {
    RetryPolicy::recommended()
        .with_max_retries(2)
        .with_initial_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(2))
}

/// Start exporting if the config or the environment asks for it, before
/// the first run, so that no run and no event is missed: events from
/// `bus`, the agent's counters read from `counters` at each collection;
/// the instance id is kept in `state_dir`.
pub fn start(
    config: &Config,
    state_dir: &std::path::Path,
    bus: &Bus,
    counters: std::sync::Weak<dyn crate::telemetry::CounterSource>,
) -> anyhow::Result<Option<OtlpExport>> {
    let Some(settings) =
        settings::resolve(config.telemetry.otlp.as_ref(), |v| std::env::var(v).ok())
            .map_err(anyhow::Error::msg)?
    else {
        return Ok(None);
    };
    let resource = resource::resource(&config.agent.node, state_dir)?;
    let metrics_outage = Outage::new("metrics", &settings.describe);
    let logs_outage = Outage::new("logs", &settings.describe);
    let metric_exporter = GuardedMetrics {
        inner: metric_exporter(&settings)?,
        outage: metrics_outage.clone(),
    };
    let reader = PeriodicReader::builder(metric_exporter, Tokio)
        .with_interval(settings.interval)
        .build();
    let meters = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_reader(reader)
        .build();
    let log_exporter = GuardedLogs {
        inner: log_exporter(&settings)?,
        outage: logs_outage.clone(),
    };
    let loggers = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_log_processor(BatchLogProcessor::builder(log_exporter, Tokio).build())
        .build();
    let outages = vec![metrics_outage, logs_outage];
    let meter = meters.meter("watchpost");
    instruments::register_counters(&meter, counters, outages.clone());
    let recorder = instruments::Recorder::new(meter);
    let logger = loggers.logger("watchpost");
    let (events, _dropped) = bus.subscribe("otlp");
    tokio::spawn(forward(events, recorder, logger));
    tracing::info!(
        "exporting OTLP ({}) to {} every {}",
        match settings.protocol {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        },
        settings.describe,
        humantime::format_duration(settings.interval)
    );
    Ok(Some(OtlpExport {
        meters,
        loggers,
        outages,
    }))
}

/// Turn bus events into data points and log records until the bus closes.
/// Everything needed (node, target, descriptions) comes in the events.
async fn forward(
    mut events: tokio::sync::mpsc::Receiver<AgentEvent>,
    mut recorder: instruments::Recorder,
    logger: opentelemetry_sdk::logs::SdkLogger,
) {
    while let Some(event) = events.recv().await {
        match event {
            AgentEvent::Run(run) => {
                recorder.record(&run, &run.target, |name| {
                    run.descriptions.get(name).cloned().unwrap_or_default()
                });
                events::state_changes(&logger, &run, &run.target, &run.node);
            }
            AgentEvent::Remediation(decision) => {
                events::remediation(&logger, &decision, &decision.node)
            }
        }
    }
}

/// Headers for the exporters, checked.
fn header_map(settings: &ExportSettings) -> anyhow::Result<http::HeaderMap> {
    let mut map = http::HeaderMap::new();
    let secret = settings
        .secret_headers
        .iter()
        .map(|(name, value)| (name, value.expose()));
    for (name, value) in settings
        .headers
        .iter()
        .map(|(n, v)| (n, v.as_str()))
        .chain(secret)
    {
        let key = http::HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("[telemetry.otlp]: header name {name:?} is not valid"))?;
        let mut value = http::HeaderValue::from_str(value).with_context(|| {
            format!("[telemetry.otlp]: the value of header {name:?} is not valid")
        })?;
        value.set_sensitive(true);
        map.insert(key, value);
    }
    Ok(map)
}

/// The gRPC settings every exporter shares.
fn tonic_options<B: WithExportConfig + WithTonicConfig>(
    mut builder: B,
    settings: &ExportSettings,
    endpoint: &Option<String>,
    tls: &TlsSettings,
) -> anyhow::Result<B> {
    builder = builder.with_retry_policy(retry_policy());
    if !settings.headers.is_empty() || !settings.secret_headers.is_empty() {
        builder = builder.with_metadata(tonic_metadata(settings)?);
    }
    if let Some(config) = tls::grpc(tls)? {
        builder = builder.with_tls_config(config);
    }
    Ok(common_options(builder, settings, endpoint))
}

/// The http/protobuf settings every exporter shares.
fn http_options<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    settings: &ExportSettings,
    endpoint: &Option<String>,
    tls: &TlsSettings,
) -> anyhow::Result<B> {
    let headers = settings.headers.clone().into_iter().chain(
        settings
            .secret_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string())),
    );
    let mut builder = builder
        .with_retry_policy(retry_policy())
        .with_headers(headers.collect());
    let timeout = settings.timeout.unwrap_or_else(env_timeout);
    if let Some(client) = tls::http(tls, timeout)? {
        builder = builder.with_http_client(client);
    }
    Ok(common_options(builder, settings, endpoint))
}

/// OTEL_EXPORTER_OTLP_TIMEOUT (milliseconds), else 10 s.
fn env_timeout() -> Duration {
    std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT")
        .ok()
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// Endpoint and timeout, set only when the config gives them (else the
/// exporter reads OTEL_EXPORTER_OTLP_*).
fn common_options<B: WithExportConfig>(
    mut builder: B,
    settings: &ExportSettings,
    endpoint: &Option<String>,
) -> B {
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(timeout) = settings.timeout {
        builder = builder.with_timeout(timeout);
    }
    builder
}

const SEE: &str = "(see [telemetry.otlp] and OTEL_EXPORTER_OTLP_*)";

fn metric_exporter(settings: &ExportSettings) -> anyhow::Result<MetricExporter> {
    let endpoint = &settings.metrics_endpoint;
    let built = match settings.protocol {
        OtlpProtocol::Grpc => {
            let tls = &settings.metrics_tls;
            tonic_options(
                MetricExporter::builder().with_tonic(),
                settings,
                endpoint,
                tls,
            )?
            .build()
        }
        OtlpProtocol::HttpProtobuf => {
            let tls = &settings.metrics_tls;
            http_options(
                MetricExporter::builder().with_http(),
                settings,
                endpoint,
                tls,
            )?
            .build()
        }
    };
    built.with_context(|| format!("cannot set up the OTLP metrics exporter {SEE}"))
}

fn log_exporter(settings: &ExportSettings) -> anyhow::Result<LogExporter> {
    let endpoint = &settings.logs_endpoint;
    let built = match settings.protocol {
        OtlpProtocol::Grpc => {
            let tls = &settings.logs_tls;
            tonic_options(LogExporter::builder().with_tonic(), settings, endpoint, tls)?.build()
        }
        OtlpProtocol::HttpProtobuf => {
            let tls = &settings.logs_tls;
            http_options(LogExporter::builder().with_http(), settings, endpoint, tls)?.build()
        }
    };
    built.with_context(|| format!("cannot set up the OTLP logs exporter {SEE}"))
}

fn tonic_metadata(
    settings: &ExportSettings,
) -> anyhow::Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap> {
    Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(header_map(settings)?))
}

impl OtlpExport {
    /// Export what is pending and stop (at shutdown).
    pub async fn shutdown(self) {
        let OtlpExport {
            meters, loggers, ..
        } = self;
        // The SDK blocks while it flushes; keep that off the runtime.
        let done = tokio::task::spawn_blocking(move || {
            let _ = meters.shutdown_with_timeout(Duration::from_secs(5));
            let _ = loggers.shutdown_with_timeout(Duration::from_secs(5));
        });
        let _ = tokio::time::timeout(Duration::from_secs(12), done).await;
    }
}

//! Export that a dead collector cannot hurt: wrappers around the OTLP
//! exporters that count what a failed export dropped (the
//! `watchpost_telemetry_dropped_total{signal}` counter) and log one line
//! when an outage starts and one when it ends, never one per export.
//!
//! The exporters themselves retry with backoff and give up at their
//! timeout; they run on the SDK's own tasks (a periodic reader for metrics,
//! a bounded batch queue for logs), so probes and the scheduler never wait
//! on them. Metrics are cumulative, so what a failed export carried is
//! sent again, summed, by the next one that succeeds.

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Health of one signal's export.
#[derive(Debug)]
pub struct Outage {
    signal: &'static str,
    destination: String,
    down: AtomicBool,
    /// Data points (metrics) or records (logs) lost to failed exports.
    dropped: AtomicU64,
    exported: AtomicU64,
}

impl Outage {
    pub fn new(signal: &'static str, destination: &str) -> Arc<Outage> {
        Arc::new(Outage {
            signal,
            destination: destination.to_string(),
            down: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            exported: AtomicU64::new(0),
        })
    }

    pub fn signal(&self) -> &'static str {
        self.signal
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Successful exports so far.
    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    fn failed(&self, items: u64, error: &dyn fmt::Display) {
        self.dropped.fetch_add(items, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                signal = self.signal,
                "OTLP export of {} to {} failed: {error}; dropping {} until the collector \
                 answers (counted in watchpost_telemetry_dropped_total)",
                self.signal,
                self.destination,
                self.signal
            );
        }
    }

    fn succeeded(&self) {
        self.exported.fetch_add(1, Ordering::Relaxed);
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(
                signal = self.signal,
                "OTLP export of {} to {} works again ({} dropped in all)",
                self.signal,
                self.destination,
                self.dropped()
            );
        }
    }
}

/// A metric exporter that reports to an [`Outage`].
pub struct GuardedMetrics<E> {
    pub inner: E,
    pub outage: Arc<Outage>,
}

impl<E: PushMetricExporter> PushMetricExporter for GuardedMetrics<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        match self.inner.export(metrics).await {
            Ok(()) => self.outage.succeeded(),
            // Handled here: the SDK would only log it once more.
            Err(e) => self.outage.failed(data_points(metrics), &e),
        }
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// A log exporter that reports to an [`Outage`].
pub struct GuardedLogs<E> {
    pub inner: E,
    pub outage: Arc<Outage>,
}

impl<E> fmt::Debug for GuardedLogs<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedLogs").finish_non_exhaustive()
    }
}

impl<E: LogExporter> LogExporter for GuardedLogs<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let records = batch.iter().count() as u64;
        match self.inner.export(batch).await {
            Ok(()) => self.outage.succeeded(),
            Err(e) => self.outage.failed(records, &e),
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// How many data points an export carries.
fn data_points(metrics: &ResourceMetrics) -> u64 {
    metrics
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .map(|metric| match metric.data() {
            AggregatedMetrics::F64(data) => points(data),
            AggregatedMetrics::U64(data) => points(data),
            AggregatedMetrics::I64(data) => points(data),
        })
        .sum()
}

fn points<T>(data: &MetricData<T>) -> u64 {
    let n = match data {
        MetricData::Gauge(g) => g.data_points().count(),
        MetricData::Sum(s) => s.data_points().count(),
        MetricData::Histogram(h) => h.data_points().count(),
        MetricData::ExponentialHistogram(h) => h.data_points().count(),
    };
    n as u64
}

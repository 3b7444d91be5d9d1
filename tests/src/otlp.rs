//! A real OTLP receiver for the export tests: a gRPC server implementing
//! the collector's metrics and logs services (the `opentelemetry-proto`
//! crate's generated code) and an HTTP server taking `http/protobuf` posts
//! on `/v1/metrics` and `/v1/logs`. It keeps every request it gets; it can
//! be stopped and started again on the same ports, as a collector restarts.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use prost::Message;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Which wire the receiver got a request on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Grpc,
    Http,
}

/// Everything received, in arrival order.
#[derive(Default)]
pub struct Received {
    pub metrics: Vec<(Wire, ExportMetricsServiceRequest)>,
    pub logs: Vec<(Wire, ExportLogsServiceRequest)>,
    /// The `authorization` header of each request, if any.
    pub authorizations: Vec<Option<String>>,
}

type Shared = Arc<Mutex<Received>>;

struct Metrics(Shared);
struct Logs(Shared);

fn authorization<T>(request: &tonic::Request<T>) -> Option<String> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        received.authorizations.push(authorization(&request));
        received.metrics.push((Wire::Grpc, request.into_inner()));
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Logs {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        received.authorizations.push(authorization(&request));
        received.logs.push((Wire::Grpc, request.into_inner()));
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

pub struct Receiver {
    pub grpc_port: u16,
    pub http_port: u16,
    received: Shared,
    runtime: tokio::runtime::Runtime,
    stop: Option<(oneshot::Sender<()>, oneshot::Sender<()>)>,
}

impl Receiver {
    /// A receiver on free loopback ports.
    pub fn start() -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut receiver = Receiver {
            grpc_port: crate::port::free_port(),
            http_port: crate::port::free_port(),
            received: Shared::default(),
            runtime,
            stop: None,
        };
        receiver.resume();
        receiver
    }

    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Stop listening (connections are refused until [`Receiver::resume`]).
    pub fn stop(&mut self) {
        if let Some((grpc, http)) = self.stop.take() {
            let _ = grpc.send(());
            let _ = http.send(());
        }
        // Wait until the ports refuse connections.
        for port in [self.grpc_port, self.http_port] {
            crate::agent::wait_for("the receiver to stop", crate::agent::PATIENCE, || {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .is_err()
                    .then_some(())
            });
        }
    }

    /// Listen again on the same ports.
    pub fn resume(&mut self) {
        let (grpc_stop, grpc_stopped) = oneshot::channel::<()>();
        let (http_stop, http_stopped) = oneshot::channel::<()>();
        let received = self.received.clone();
        let grpc_port = self.grpc_port;
        let http_port = self.http_port;
        self.runtime.block_on(async move {
            let grpc = tokio::net::TcpListener::bind(("127.0.0.1", grpc_port))
                .await
                .unwrap();
            let http = tokio::net::TcpListener::bind(("127.0.0.1", http_port))
                .await
                .unwrap();
            let services = tonic::transport::Server::builder()
                .add_service(MetricsServiceServer::new(Metrics(received.clone())))
                .add_service(LogsServiceServer::new(Logs(received.clone())));
            tokio::spawn(services.serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(grpc),
                async move {
                    let _ = grpc_stopped.await;
                },
            ));
            let app = axum::Router::new()
                .route("/v1/metrics", axum::routing::post(http_metrics))
                .route("/v1/logs", axum::routing::post(http_logs))
                .with_state(received);
            tokio::spawn(async move {
                let _ = axum::serve(http, app)
                    .with_graceful_shutdown(async move {
                        let _ = http_stopped.await;
                    })
                    .await;
            });
        });
        self.stop = Some((grpc_stop, http_stop));
    }

    /// Look at what was received.
    pub fn with<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        f(&self.received.lock().unwrap())
    }

    /// How many export requests of each signal arrived so far.
    pub fn counts(&self) -> (usize, usize) {
        self.with(|r| (r.metrics.len(), r.logs.len()))
    }

    /// The latest data of metric `name`, with its resource attributes.
    pub fn metric(&self, name: &str) -> Option<(BTreeMap<String, String>, Metric)> {
        self.with(|r| {
            r.metrics.iter().rev().find_map(|(_, request)| {
                request.resource_metrics.iter().find_map(|rm| {
                    let metric = rm
                        .scope_metrics
                        .iter()
                        .flat_map(|s| &s.metrics)
                        .find(|m| m.name == name)?;
                    let resource = rm
                        .resource
                        .as_ref()
                        .map(|r| attributes(&r.attributes))
                        .unwrap_or_default();
                    Some((resource, metric.clone()))
                })
            })
        })
    }

    /// Every log record received, with its resource attributes.
    pub fn log_records(&self) -> Vec<(BTreeMap<String, String>, LogRecord)> {
        self.with(|r| {
            r.logs
                .iter()
                .flat_map(|(_, request)| &request.resource_logs)
                .flat_map(|rl| {
                    let resource = rl
                        .resource
                        .as_ref()
                        .map(|r| attributes(&r.attributes))
                        .unwrap_or_default();
                    rl.scope_logs
                        .iter()
                        .flat_map(|s| s.log_records.iter())
                        .map(move |record| (resource.clone(), record.clone()))
                })
                .collect()
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some((grpc, http)) = self.stop.take() {
            let _ = grpc.send(());
            let _ = http.send(());
        }
    }
}

async fn http_metrics(
    axum::extract::State(received): axum::extract::State<Shared>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let mut received = received.lock().unwrap();
    received.authorizations.push(header(&headers));
    received.metrics.push((Wire::Http, request));
    axum::http::StatusCode::OK
}

async fn http_logs(
    axum::extract::State(received): axum::extract::State<Shared>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let Ok(request) = ExportLogsServiceRequest::decode(body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let mut received = received.lock().unwrap();
    received.authorizations.push(header(&headers));
    received.logs.push((Wire::Http, request));
    axum::http::StatusCode::OK
}

fn header(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// Key/values as strings (ints, doubles and bools printed).
pub fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(text).unwrap_or_default(),
            )
        })
        .collect()
}

/// An attribute value as a string.
pub fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

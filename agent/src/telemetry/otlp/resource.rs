//! Who is exporting: the OpenTelemetry resource every metric and log
//! record carries. `service.name = watchpost`, `service.version`, a
//! `service.instance.id` kept in `state_dir` (stable across restarts, as
//! dashboards key on it), `host.name` and `watchpost.node`.
//! `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` override these, as
//! in other OpenTelemetry software.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{EnvResourceDetector, TelemetryResourceDetector};
use std::path::Path;

/// The file in `state_dir` holding the instance id.
const INSTANCE_ID_FILE: &str = "instance-id";

/// The resource of the agent on `node`, with state in `state_dir`.
pub fn resource(node: &str, state_dir: &Path) -> anyhow::Result<Resource> {
    let mut builder = Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "watchpost"),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", instance_id(state_dir)?),
            KeyValue::new("host.name", crate::hostinfo::hostname()),
            KeyValue::new("watchpost.node", node.to_string()),
        ])
        .with_detectors(&[
            Box::new(TelemetryResourceDetector),
            Box::new(EnvResourceDetector::new()),
        ]);
    if let Some(name) = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
    {
        builder = builder.with_service_name(name);
    }
    Ok(builder.build())
}

/// This agent's instance id: read from `state_dir`, or made (a random
/// UUID) and written there on first use.
pub fn instance_id(state_dir: &Path) -> anyhow::Result<String> {
    let path = state_dir.join(INSTANCE_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    crate::store::atomic::write(&path, format!("{id}\n").as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write the instance id to {}: {e}", path.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_id_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = instance_id(dir.path()).unwrap();
        assert_eq!(first.len(), 36, "{first}");
        assert_eq!(&first[14..15], "4", "{first}");
        assert_eq!(instance_id(dir.path()).unwrap(), first);
    }
}

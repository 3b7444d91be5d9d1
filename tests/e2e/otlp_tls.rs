//! OTLP over TLS: the agent exports to `https://` endpoints (gRPC and
//! http/protobuf) of the real OTLP receiver behind a TLS front serving a
//! certificate of a CA made by the test, verified with `certificate`;
//! with mTLS the front requires a client certificate, which the agent
//! presents from `client_certificate`/`client_key`; without one the
//! front refuses it and nothing arrives.

use std::sync::atomic::Ordering;
use std::time::Duration;
use watchpost_e2e::agent::{Agent, wait_for};
use watchpost_e2e::otlp::Receiver;
use watchpost_e2e::pki::Ca;
use watchpost_e2e::tls_proxy::TlsProxy;

const PROBE: &str = "[[probe]]\nname = \"disk\"\nwasm = \"builtin:host-disk\"\nevery = \"200ms\"\n";

/// Start an agent exporting over `protocol` through a TLS front (mTLS
/// when `client` is given to both); whether metrics arrived in time.
fn export(protocol: &str, mtls: bool, agent_has_client_cert: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "otlp-ca");
    let server = ca.server("collector", &["localhost"]);
    let client = ca.client("agent", "watchpost");
    let receiver = Receiver::start();
    let backend = if protocol == "grpc" {
        receiver.grpc_port
    } else {
        receiver.http_port
    };
    let front = TlsProxy::start(backend, &server, mtls.then_some(ca.cert.as_path()));
    let mut otlp = format!(
        "[telemetry.otlp]\nendpoint = \"https://localhost:{}\"\nprotocol = \"{protocol}\"\ninterval = \"200ms\"\ntimeout = \"2s\"\ncertificate = \"{}\"\n",
        front.port,
        ca.cert.display()
    );
    if agent_has_client_cert {
        otlp.push_str(&format!(
            "client_certificate = \"{}\"\nclient_key = \"{}\"\n",
            client.cert.display(),
            client.key.display()
        ));
    }
    let config =
        format!("[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\n\n{otlp}\n{PROBE}");
    let agent = Agent::start(&config);
    let refused = mtls && !agent_has_client_cert;
    let within = if refused {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(30)
    };
    let arrived = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("metrics over TLS", within, || {
            receiver.metric("system.filesystem.utilization").map(|_| ())
        })
    }))
    .is_ok();
    if !arrived && !refused {
        panic!(
            "{protocol} mtls={mtls}: nothing arrived; agent log:\n{}",
            agent.log()
        );
    }
    if refused {
        assert!(front.failed_handshakes.load(Ordering::SeqCst) > 0);
    }
    arrived
}

#[test]
fn grpc_over_tls_with_and_without_a_client_certificate() {
    assert!(export("grpc", false, false));
    assert!(export("grpc", true, true));
    assert!(!export("grpc", true, false));
}

#[test]
fn http_over_tls_with_and_without_a_client_certificate() {
    assert!(export("http/protobuf", false, false));
    assert!(export("http/protobuf", true, true));
}

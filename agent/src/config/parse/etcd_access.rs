//! `[cluster]`'s `etcd_*` keys: how the agent reaches a closed etcd — a
//! CA to verify `https` endpoints against, a client certificate and key
//! for etcd's `--client-cert-auth`, a user and password for etcd's `auth
//! enable`. Checked at load, so that `validate` names an unreadable
//! certificate, an exposed key or a missing password at its key.

use super::super::model::*;
use super::super::reader::Section;
use super::Parser;
use crate::sql::tls::{load_certs, load_key, root_store};

impl Parser<'_, '_> {
    pub(super) fn etcd_access(&mut self, s: &mut Section) -> EtcdAccess {
        let ca = self.path_key(s, "etcd_ca");
        let cert = self.path_key(s, "etcd_cert");
        let key = self.path_key(s, "etcd_key");
        let user = s.string(&mut self.d, "etcd_user");
        let password = self.secret(s, "etcd_password_file", "etcd_password_env");
        let d = &mut self.d;
        if let Some(ca) = &ca
            && let Err(e) = root_store(Some(&ca.value))
        {
            d.error(ca.span.clone(), format!("[cluster]: `etcd_ca`: {e}"));
        }
        match (&cert, &key) {
            (Some(cert), Some(key)) => {
                if let Err(e) = load_certs(&cert.value) {
                    d.error(cert.span.clone(), format!("[cluster]: `etcd_cert`: {e}"));
                }
                if let Err(e) = load_key(&key.value) {
                    d.error(key.span.clone(), format!("[cluster]: `etcd_key`: {e}"));
                }
            }
            (Some(one), None) | (None, Some(one)) => d.error(
                one.span.clone(),
                "[cluster]: give both `etcd_cert` and `etcd_key` (the client certificate etcd's --client-cert-auth asks for), or neither",
            ),
            (None, None) => {}
        }
        match (&user, &password) {
            (Some(u), None) => d.error(
                u.span.clone(),
                format!(
                    "[cluster]: `etcd_user` = {:?} needs its password: add `etcd_password_file` (a file only the agent's user can read) or `etcd_password_env`",
                    u.value
                ),
            ),
            (None, Some(p)) => d.error(
                p.span.clone(),
                "[cluster]: an etcd password without `etcd_user`: name the etcd user it belongs to",
            ),
            _ => {}
        }
        if let Some(u) = &user
            && (u.value.is_empty() || u.value.contains(char::is_control))
        {
            d.error(
                u.span.clone(),
                "[cluster]: `etcd_user` is empty or has control characters",
            );
        }
        EtcdAccess {
            ca: ca.map(|c| c.value),
            cert: cert.map(|c| c.value),
            key: key.map(|k| k.value),
            user: user.map(|u| u.value),
            password: password.map(|p| p.value),
        }
    }
}

/// The probe of etcd's health that `[cluster]` adds.
pub const ETCD_PROBE: &str = "cluster-etcd";

impl Parser<'_, '_> {
    /// The probe `cluster-etcd` ([`WasmSource::Etcd`]) every 10 s, with
    /// the default thresholds: the database at 80 % of the quota is a
    /// warning, any alarm is critical. None if a probe has its name.
    pub(super) fn etcd_probe(
        &mut self,
        cluster: &ClusterSpec,
        probes: &[ProbeSpec],
    ) -> Option<ProbeSpec> {
        if let Some(taken) = probes.iter().find(|p| p.name == ETCD_PROBE) {
            self.d.error(
                0..0,
                format!(
                    "[[probe]] {ETCD_PROBE:?} ({}): the name is taken by the probe of etcd's health that [cluster] adds; rename that probe",
                    taken.place
                ),
            );
            return None;
        }
        let rule =
            |measurement: &str, warning: Option<&str>, critical: Option<&str>| ThresholdRule {
                measurement: measurement.into(),
                warning: warning
                    .map(|r| super::super::range::Range::parse(r).expect("a valid range")),
                critical: critical
                    .map(|r| super::super::range::Range::parse(r).expect("a valid range")),
                confirm: Confirm::default(),
            };
        Some(ProbeSpec {
            name: ETCD_PROBE.into(),
            wasm: WasmSource::Etcd,
            sha256: None,
            every: std::time::Duration::from_secs(10),
            timeout: cluster.ttl.max(std::time::Duration::from_secs(3)),
            memory: 64 << 20,
            targets: Vec::new(),
            dirs: Default::default(),
            config: Default::default(),
            thresholds: vec![
                rule("etcd.db.quota_used", Some("~:0.8"), None),
                rule("etcd.alarms", None, Some("0")),
            ],
            confirm: Confirm::default(),
            flapping: Flapping::default(),
            place: Place::default(),
        })
    }
}

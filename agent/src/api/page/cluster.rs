//! The cluster section of the status page: the leader key's holder, and
//! every member as this node's loop last read it from etcd (role, timeline,
//! WAL position, lag behind the leader's last published position, whom it
//! streams from). Renders nothing when no `[cluster]` is configured.
//! Everything a member reports is escaped (maud does that for every
//! `(value)`).

use crate::daemon::Shared;
use maud::{Markup, html};

/// The cluster section of the overview; empty without a cluster.
pub fn section(shared: &Shared) -> Markup {
    let Some(cluster) = shared.cluster() else {
        return html! {};
    };
    let view = cluster.view();
    let leader = view.leader.clone().unwrap_or_else(|| "none".into());
    let mut members = view.members.clone();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    html! {
        section id="cluster" {
            h2 { "Cluster " (cluster.spec.scope) }
            p {
                "Leader: " strong { (leader) }
                @if view.paused { " — maintenance mode (no automatic failover)" }
                " · this node: " (cluster.spec.name)
                @if view.is_leader { " (holds the leader key)" }
            }
            table {
                thead { tr { th { "member" } th { "role" } th { "timeline" } th { "lag (bytes)" } th { "streams from" } th { "address" } } }
                tbody {
                    @for m in &members {
                        tr {
                            td { (m.name) @if view.leader.as_deref() == Some(m.name.as_str()) { " ★" } }
                            td { (m.role) }
                            td { (m.timeline.map_or("?".to_string(), |t| t.to_string())) }
                            td {
                                @if m.role == "primary" { "—" }
                                @else { (view.leader_optime.map_or("?".to_string(), |o| o.saturating_sub(m.replayed.or(m.lsn).unwrap_or(0)).to_string())) }
                            }
                            td { (m.streaming_from.clone().unwrap_or_default()) }
                            td { (m.host) ":" (m.port) }
                        }
                    }
                }
            }
        }
    }
}

//! CLUSTER SECTION — the place for the cluster mode on the status page:
//! members, roles, lag, the leader and the timeline. The cluster mode
//! (etcd membership and the leader key) is built separately; until it
//! exists, and whenever no cluster is configured, [`section`] renders
//! nothing, so the overview shows no cluster at all.
//!
//! To fill it in: read the cluster view from `Shared` here, return a
//! `<section id="cluster">` with a table of members (node, role, lag,
//! lease) and the leader key's holder, and keep everything a member
//! reports escaped (maud does that for every `(value)`).

use crate::daemon::Shared;
use maud::{Markup, html};

/// The cluster section of the overview; empty without a cluster.
pub fn section(_shared: &Shared) -> Markup {
    html! {}
}

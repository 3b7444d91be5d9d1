//! The `etcd` section: how many etcd revisions per second an idle
//! three-node cluster writes, and one under a steady write load (the
//! leader's optime moving), from `tests/examples/etcd_revisions.rs`. Every
//! revision stays in etcd's database until it is compacted, and etcd
//! refuses writes at its quota: the quieter, the longer to NOSPACE.

use super::{Options, Row};

pub fn run(options: &Options) -> Result<Vec<Row>, String> {
    let seconds = if options.quick { "10" } else { "30" };
    let mut rows = Vec::new();
    for value in super::example::json_lines("etcd revision", "etcd_revisions", &[seconds.into()])? {
        let (what, note) = match value["benchmark"].as_str() {
            Some("etcd-revisions-idle") => (
                "cluster: etcd revisions per second, three idle nodes (shipped defaults)",
                "goal <= 0.5; Patroni ~0.3 (10 s loop); before writes-on-change 8.0",
            ),
            Some("etcd-revisions-writes") => (
                "cluster: etcd revisions per second, three nodes, an INSERT every 100 ms on the leader",
                "the optime moves every loop",
            ),
            _ => continue,
        };
        rows.push(Row::new(
            what,
            format!(
                "{:.2} rev/s ({} revisions in {} s)",
                value["per_second"].as_f64().unwrap_or(f64::NAN),
                value["revisions"],
                value["seconds"]
            ),
            note,
        ));
    }
    Ok(rows)
}

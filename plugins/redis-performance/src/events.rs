//! What happened lately: latency spikes (`LATENCY LATEST`) and slow-log
//! entries (`SLOWLOG GET`), read from their replies. Both carry the
//! server's time of each event; "new" means within the probe's `window`
//! before the server's clock, since a probe keeps nothing between runs.

use watchpost_probe::redis::Reply;

/// One event of `LATENCY LATEST`: the latest spike of one kind.
#[derive(Debug, PartialEq)]
pub struct Spike {
    /// The event's name (`command`, `fast-command`, `fork`, `aof-fsync-always`, ...).
    pub event: String,
    /// When the latest spike happened, seconds since the epoch.
    pub at: i64,
    /// The latest spike, seconds.
    pub latest: f64,
    /// The largest spike since the server started (or `LATENCY RESET`), seconds.
    pub max: f64,
}

/// The events of a `LATENCY LATEST` reply; malformed entries are skipped.
pub fn spikes(reply: &Reply) -> Vec<Spike> {
    reply
        .items()
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| {
            let fields = entry.items()?;
            Some(Spike {
                event: fields.first()?.text()?,
                at: fields.get(1)?.int()?,
                latest: fields.get(2)?.int()? as f64 / 1000.0,
                max: fields.get(3)?.int()? as f64 / 1000.0,
            })
        })
        .collect()
}

/// One entry of `SLOWLOG GET`.
#[derive(Debug, PartialEq)]
pub struct Slow {
    /// The entry's id: it grows by one with every entry the server logs.
    pub id: i64,
    /// When it was logged, seconds since the epoch.
    pub at: i64,
    /// How long the command ran, seconds.
    pub took: f64,
    /// The command's name only (its arguments may hold data).
    pub command: String,
}

/// The entries of a `SLOWLOG GET` reply, newest first; malformed entries
/// are skipped.
pub fn slow_entries(reply: &Reply) -> Vec<Slow> {
    reply
        .items()
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| {
            let fields = entry.items()?;
            let command = fields
                .get(3)
                .and_then(Reply::items)
                .and_then(|args| args.first())
                .and_then(Reply::text)
                .unwrap_or_default();
            Some(Slow {
                id: fields.first()?.int()?,
                at: fields.get(1)?.int()?,
                took: fields.get(2)?.int()? as f64 / 1e6,
                command: command.chars().take(64).collect(),
            })
        })
        .collect()
}

/// Whether an event at `at` is within `window` seconds before `now`.
pub fn recent(at: i64, now: f64, window: f64) -> bool {
    now - at as f64 <= window
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn latency_latest_is_read_in_seconds() {
        let reply = Reply::Array(vec![
            Reply::Array(vec![
                bulk("command"),
                Reply::Int(1700000000),
                Reply::Int(500),
                Reply::Int(1200),
            ]),
            Reply::Array(vec![bulk("broken")]),
        ]);
        assert_eq!(
            spikes(&reply),
            vec![Spike {
                event: "command".into(),
                at: 1700000000,
                latest: 0.5,
                max: 1.2
            }]
        );
        assert!(spikes(&Reply::Array(vec![])).is_empty());
    }

    #[test]
    fn slow_log_entries_keep_the_command_name_only() {
        let reply = Reply::Array(vec![Reply::Array(vec![
            Reply::Int(7),
            Reply::Int(1700000000),
            Reply::Int(250000),
            Reply::Array(vec![bulk("SET"), bulk("secret-key"), bulk("secret-value")]),
            bulk("127.0.0.1:5000"),
            bulk(""),
        ])]);
        let entries = slow_entries(&reply);
        assert_eq!(
            entries,
            vec![Slow {
                id: 7,
                at: 1700000000,
                took: 0.25,
                command: "SET".into()
            }]
        );
    }

    #[test]
    fn recent_means_within_the_window() {
        assert!(recent(100, 160.0, 60.0));
        assert!(!recent(100, 160.5, 60.0));
        // A server clock behind the entry (it cannot be, but clocks step).
        assert!(recent(200, 160.0, 60.0));
    }
}

//! After a MariaDB failover: wait for the old primary to come back, and
//! make it a replica of the new one — or, when it cannot be (error 1236:
//! it holds transactions the new primary never received, so the new
//! primary's binary log has no place for it to start from), leave it
//! read-only and not replicating, and record its extra GTIDs and that it
//! must be rebuilt. Never silently: either outcome is an audit record.

use super::server::NOT_IN_PRIMARY_BINLOG;
use super::{CONNECT, PRIMARY_PROBE, connect, gtid};
use crate::config::{FailoverAction, MysqlFailover};
use crate::remediate::Remediator;
use crate::remediate::rejoin_watch::{self, Attempt, Try, Watch};
use crate::remediate::step::Step;
use crate::remediate::trigger::Incident;
use crate::sql::{Error, SqlTargets};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the old primary is tried while it is away.
const POLL: Duration = Duration::from_secs(1);
/// How long a rejoined server may take to start replicating.
const START_WITHIN: Duration = Duration::from_secs(10);

/// Watch for the old primary in a task of its own (for `rejoin_within`,
/// or until the agent stops), and rejoin it once it answers. Every
/// outcome is recorded under the failover's incident
/// ([`crate::remediate::rejoin_watch`]).
pub fn spawn_watch(
    core: &Arc<Remediator>,
    incident: Incident,
    action: FailoverAction,
    mysql: MysqlFailover,
) {
    let (primary, standby) = (action.primary.clone(), action.standby.clone());
    let within = mysql.rejoin_within;
    let watch = Watch {
        within,
        poll: POLL,
        gave_up: Box::new(move |_| {
            Step::failed(
                "rejoin",
                format!(
                    "the old primary `{primary}` did not come back within rejoin_within = {}; when it does, make it a replica of `{standby}` by hand (or rebuild it)",
                    crate::config::units::format_duration(within),
                ),
                Value::Null,
            )
        }),
    };
    let task_core = core.clone();
    let attempt: Try = Box::new(move || {
        let (core, action) = (task_core.clone(), action.clone());
        Box::pin(async move { attempt(&core, &action).await })
    });
    rejoin_watch::spawn(core, incident, watch, attempt);
}

/// One try: rejoin the old primary if it answers.
async fn attempt(core: &Remediator, action: &FailoverAction) -> Attempt {
    let sql = core.port().map(|p| p.sql()).unwrap_or_default();
    match sql
        .mysql_admin_session(&action.primary, PRIMARY_PROBE)
        .await
    {
        Ok(_) => Attempt::Done(rejoin(&sql, &action.primary, &action.standby).await),
        Err(Error::NotGranted(why)) => Attempt::Done(Step::failed("rejoin", why, Value::Null)),
        Err(_) => Attempt::NotYet(None),
    }
}

/// Fence `old` (read-only, sessions killed) and make it replicate from
/// `new` by GTID, starting after its own last transactions. Ok when it
/// replicates; failed with `rebuild_required` when the new primary lacks
/// some of its transactions (1236).
pub async fn rejoin(sql: &SqlTargets, old: &str, new: &str) -> Step {
    let fail = |message: String, detail: Value| Step::failed("rejoin", message, detail);
    let mut server = match connect(sql, old, CONNECT).await {
        Ok(server) => server,
        Err(e) => return fail(format!("cannot connect to `{old}`: {e:?}"), Value::Null),
    };
    let killed = match server.fence().await {
        Ok(killed) => killed,
        Err(e) => {
            return fail(
                format!("the old primary `{old}` is back but could not be made read-only: {e:?}"),
                Value::Null,
            );
        }
    };
    let login = match sql.mysql_replica_login(new) {
        Ok(login) => login,
        Err(e) => return fail(format!("{e:?}"), Value::Null),
    };
    let own = match server.position("gtid_binlog_pos").await {
        Ok(own) => own,
        Err(e) => return fail(format!("cannot read `{old}`'s GTIDs: {e:?}"), Value::Null),
    };
    // Its own transactions are where it stands: replicate from after them.
    let start = [
        "STOP SLAVE",
        "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos",
    ];
    if let Err(e) = server.run(&start).await {
        return fail(
            format!("cannot prepare `{old}` to replicate: {e:?}"),
            Value::Null,
        );
    }
    if let Err(e) = server.follow(&login).await {
        return fail(
            format!("cannot point `{old}` at `{new}`: {e:?}"),
            Value::Null,
        );
    }
    let mut detail = json!({"killed_sessions": killed.len(), "gtid_binlog_pos": own.to_string()});
    let started = Instant::now();
    while started.elapsed() < START_WITHIN {
        let status = match server.replica_status().await {
            Ok(Some(status)) => status,
            Ok(None) => return fail(format!("`{old}` lost its replication settings"), detail),
            Err(e) => return fail(format!("cannot read `{old}`'s state: {e:?}"), detail),
        };
        detail["replica"] = status.detail();
        if status.last_io_errno == NOT_IN_PRIMARY_BINLOG {
            let _ = server.run(&["STOP SLAVE"]).await;
            return rebuild_required(sql, old, new, &own, &status.last_io_error, detail).await;
        }
        if status.last_io_errno != 0 || status.last_sql_errno != 0 {
            let _ = server.run(&["STOP SLAVE"]).await;
            return fail(
                format!(
                    "`{old}` cannot replicate from `{new}`: IO error {} ({}), SQL error {} ({}); it stays read-only",
                    status.last_io_errno,
                    status.last_io_error,
                    status.last_sql_errno,
                    status.last_sql_error
                ),
                detail,
            );
        }
        if status.io_running == "Yes" && status.sql_running == "Yes" {
            return Step::ok(
                "rejoin",
                format!(
                    "the old primary `{old}` is back: read-only, {} session(s) killed, and replicating from `{new}` by GTID",
                    killed.len()
                ),
                detail,
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.run(&["STOP SLAVE"]).await;
    fail(
        format!(
            "`{old}` did not start replicating from `{new}` within {START_WITHIN:?}; it stays read-only"
        ),
        detail,
    )
}

/// The record of an old primary the new one cannot take back: its GTIDs
/// beyond the new primary's position, and that it must be rebuilt.
async fn rebuild_required(
    sql: &SqlTargets,
    old: &str,
    new: &str,
    own: &gtid::Position,
    error: &str,
    mut detail: Value,
) -> Step {
    // What the new primary applied from the old one before it was
    // promoted (RESET SLAVE ALL keeps gtid_slave_pos): the old primary's
    // transactions beyond it are the ones it lacks. Sequence numbers of
    // the new primary's own later writes say nothing about them.
    let theirs = match connect(sql, new, CONNECT).await {
        Ok(mut server) => {
            let applied = server.position("gtid_slave_pos").await.ok();
            let binlog = server.position("gtid_binlog_pos").await.ok();
            applied.zip(binlog)
        }
        Err(_) => None,
    };
    let extra = theirs.as_ref().map(|(applied, binlog)| {
        let lacking = gtid::beyond(own, &[applied]);
        // Never name one the new primary's own binary log holds.
        lacking
            .into_iter()
            .filter(|g| !binlog.to_string().split(',').any(|b| b == g))
            .collect::<Vec<_>>()
    });
    detail["rebuild_required"] = json!(true);
    detail["new_primary_gtid_slave_pos"] = json!(theirs.as_ref().map(|t| t.0.to_string()));
    detail["new_primary_gtid_binlog_pos"] = json!(theirs.as_ref().map(|t| t.1.to_string()));
    detail["extra_gtids"] = json!(extra);
    let extra_text = match (&extra, &theirs) {
        (Some(extra), Some((applied, _))) if !extra.is_empty() => {
            format!("{}, after {applied} that it applied", extra.join(","))
        }
        _ => "unknown: the new primary's positions could not be read".to_string(),
    };
    Step::failed(
        "rejoin",
        format!(
            "rebuild required: the old primary `{old}` has transactions the new primary `{new}` lacks (GTIDs {extra_text}; its gtid_binlog_pos {own}); `{new}` refused it (error {NOT_IN_PRIMARY_BINLOG}: {error}). It stays read-only and does not replicate: rebuild it from `{new}` (mariadb-backup), after saving what those transactions wrote if it matters"
        ),
        detail,
    )
}

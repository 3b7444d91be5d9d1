//! Checking a restored copy: on the running server, the configured
//! queries (their first value within bounds), amcheck's `bt_index_check`
//! (with `heapallindexed`) over every B-tree index of every database, and
//! the age of the last replayed commit (the recovery point); then, on the
//! stopped copy, `pg_checksums --check`.

use super::program;
use super::scratch::Scratch;
use crate::config::DrillSpec;
use std::time::Instant;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// What the checks found.
#[derive(Default)]
pub struct Findings {
    /// Failed checks, each naming the check.
    pub failures: Vec<String>,
    /// What passed, for the message.
    pub passed: Vec<String>,
    /// Seconds between the last replayed commit and now.
    pub data_age: Option<f64>,
}

async fn connect(
    spec: &DrillSpec,
    s: &Scratch,
    port: u16,
    database: &str,
) -> Result<Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(&s.dir)
        .port(port)
        .user(&spec.superuser)
        .dbname(database)
        .application_name("watchpost-drill")
        .connect_timeout(std::time::Duration::from_secs(5));
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        format!(
            "cannot connect to the restored copy (database {database}): {}",
            pg_error(&e)
        )
    })?;
    tokio::spawn(connection);
    Ok(client)
}

fn pg_error(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => error.to_string(),
    }
}

/// The first value of the first row, as text.
async fn first_value(client: &Client, query: &str) -> Result<Option<String>, String> {
    let messages = client.simple_query(query).await.map_err(|e| pg_error(&e))?;
    Ok(messages
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).map(String::from)),
            _ => None,
        })
        .flatten())
}

/// Wait until recovery has ended (the server promoted), within the deadline.
pub async fn wait_promoted(
    spec: &DrillSpec,
    s: &Scratch,
    port: u16,
    deadline: Instant,
) -> Result<(), String> {
    let mut last = String::new();
    while Instant::now() < deadline {
        match connect(spec, s, port, "postgres").await {
            Ok(client) => match first_value(&client, "SELECT pg_is_in_recovery()").await {
                Ok(Some(v)) if v == "f" => return Ok(()),
                Ok(_) => last = "still in recovery".into(),
                Err(e) => last = e,
            },
            Err(e) => last = e,
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(format!("recovery did not end in time ({last})"))
}

/// The checks on the running copy.
pub async fn online(
    spec: &DrillSpec,
    s: &Scratch,
    port: u16,
    found: &mut Findings,
) -> Result<(), String> {
    let client = connect(spec, s, port, "postgres").await?;
    // The last replayed commit; without one, when the backup started.
    let replayed = "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8";
    let started = "SELECT extract(epoch FROM now() - (regexp_match(pg_read_file('backup_label.old'), \
                   'START TIME: ([^\\n]+)'))[1]::timestamptz)::float8";
    for query in [replayed, started] {
        match first_value(&client, query).await {
            Ok(Some(v)) => {
                found.data_age = v.parse().ok();
                break;
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("drill: data age: {e}"),
        }
    }
    for check in &spec.queries {
        let label = format!("check {:?} on {}", check.query, check.database);
        let value = match connect(spec, s, port, &check.database).await {
            Ok(c) => first_value(&c, &check.query).await,
            Err(e) => Err(e),
        };
        match value {
            Err(e) => found.failures.push(format!("{label}: {e}")),
            Ok(None) => found.failures.push(format!("{label}: returned no value")),
            Ok(Some(text)) => match text.trim().parse::<f64>() {
                Err(_) => found
                    .failures
                    .push(format!("{label}: {text:?} is not a number")),
                Ok(v) if check.min.is_some_and(|m| v < m) || check.max.is_some_and(|m| v > m) => {
                    found.failures.push(format!(
                        "{label}: {v} is outside {}..{}",
                        check.min.map_or(String::new(), |m| m.to_string()),
                        check.max.map_or(String::new(), |m| m.to_string())
                    ))
                }
                Ok(_) => {}
            },
        }
    }
    if !spec.queries.is_empty() {
        found.passed.push(format!("{} queries", spec.queries.len()));
    }
    if spec.amcheck {
        amcheck(spec, s, port, &client, found).await;
    }
    Ok(())
}

async fn amcheck(
    spec: &DrillSpec,
    s: &Scratch,
    port: u16,
    postgres: &Client,
    found: &mut Findings,
) {
    let databases = match postgres
        .query("SELECT datname::text FROM pg_database WHERE datallowconn AND datname <> 'template1' ORDER BY 1", &[])
        .await
    {
        Ok(rows) => rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(),
        Err(e) => {
            found.failures.push(format!("amcheck: cannot list databases: {}", pg_error(&e)));
            return;
        }
    };
    let mut checked = 0;
    for database in databases {
        let client = match connect(spec, s, port, &database).await {
            Ok(c) => c,
            Err(e) => {
                found.failures.push(format!("amcheck: {e}"));
                continue;
            }
        };
        if let Err(e) = client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            .await
        {
            found.failures.push(format!(
                "amcheck: not available in {database}: {}",
                pg_error(&e)
            ));
            return;
        }
        let indexes = "SELECT c.oid, c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                       JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND i.indisvalid AND c.relpersistence <> 't'";
        let rows = match client.query(indexes, &[]).await {
            Ok(rows) => rows,
            Err(e) => {
                found
                    .failures
                    .push(format!("amcheck: {database}: {}", pg_error(&e)));
                continue;
            }
        };
        for row in rows {
            let oid: u32 = row.get(0);
            let name: String = row.get(1);
            checked += 1;
            if let Err(e) = client
                .execute("SELECT bt_index_check($1::oid::regclass, true)", &[&oid])
                .await
            {
                found.failures.push(format!(
                    "amcheck: index {name} in {database}: {}",
                    pg_error(&e)
                ));
            }
        }
    }
    found.passed.push(format!("amcheck over {checked} indexes"));
}

/// `pg_checksums --check` on the stopped copy (skipped when the cluster
/// has no data checksums).
pub async fn checksums(spec: &DrillSpec, s: &Scratch, deadline: Instant, found: &mut Findings) {
    let left = deadline.saturating_duration_since(Instant::now());
    let program = spec.bin_dir.join("pg_checksums").display().to_string();
    let argv = vec![
        program,
        "--check".into(),
        "-D".into(),
        s.data.display().to_string(),
    ];
    // Its messages are read: never translated.
    let (key, value) = crate::pgserver::UNTRANSLATED;
    let env = [(key.to_string(), value.to_string())];
    match program::run(&argv, s.owner, &s.dir, &env, left).await {
        Err(e) => found.failures.push(format!("pg_checksums: {e}")),
        Ok(ran) if ran.ok => found.passed.push("pg_checksums".into()),
        // Its own message, never a line naming the scratch directory (a
        // path of the user's) that holds the words.
        Ok(ran)
            if crate::pgserver::program_says(
                &ran.output,
                "pg_checksums",
                "data checksums are not enabled",
            )
            .is_some() =>
        {
            found.passed.push("no data checksums to check".into())
        }
        Ok(ran) => {
            let bad: Vec<&str> = ran
                .output
                .lines()
                .filter(|l| l.contains("checksum verification failed") || l.contains("could not"))
                .take(2)
                .collect();
            let detail = if bad.is_empty() {
                vec![ran.last_line()]
            } else {
                bad
            };
            found
                .failures
                .push(format!("pg_checksums --check: {}", detail.join("; ")))
        }
    }
}

//! Runs the statement in config `sql` (with `params`, `|`-separated typed
//! values such as `int:5|text:abc|float:1.5|bool:true|bytes:00ff|null`)
//! against `target` (default `primary`), `repeat` times (default 1). Every
//! cell becomes a measurement `sql.cell` {run, row, column, value}, where
//! value is `kind:text` (`int:1`, `text:abc`, `null`); a failure is a
//! critical report whose message starts with `error KIND:`. With `then`,
//! that statement runs after the last run of `sql` (whatever its outcome,
//! e.g. `BEGIN` then `SELECT 1/0`), and its failure is the report.

use watchpost_probe::sql::{self, Value};
use watchpost_probe::{Info, Kind, Probe, Report, Result, bail, config, measurement};

struct SqlRun;

fn param(raw: &str) -> Result<Value> {
    let (kind, text) = raw.split_once(':').unwrap_or((raw, ""));
    Ok(match kind {
        "null" => Value::Null,
        "int" => Value::Int(text.parse().map_err(|_| watchpost_probe::Error::msg(raw))?),
        "float" => Value::Float(text.parse().map_err(|_| watchpost_probe::Error::msg(raw))?),
        "bool" => Value::Boolean(text == "true"),
        "text" => Value::Text(text.to_string()),
        "bytes" => Value::Bytes(
            (0..text.len() / 2)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<std::result::Result<_, _>>()?,
        ),
        other => bail!("unknown parameter kind {other:?}"),
    })
}

fn render(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(b) => format!("bool:{b}"),
        Value::Int(i) => format!("int:{i}"),
        Value::Float(f) => format!("float:{f}"),
        Value::Text(t) => format!("text:{t}"),
        Value::Bytes(b) => format!(
            "bytes:{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

impl Probe for SqlRun {
    fn describe() -> Info {
        Info::new(
            "sqlrun",
            Kind::Availability,
            "runs one statement from its config",
        )
    }

    fn check() -> Result<Report> {
        let target = sql::target_from_config("target", "primary")?;
        let statement: String = config::require("sql")?;
        let params = match config::raw("params") {
            Some(raw) => raw.split('|').map(param).collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let repeat: u32 = config::get_or("repeat", 1)?;
        let mut report = Report::ok("ran");
        let then: Option<String> = config::get("then")?;
        for run in 0..repeat {
            let rows = match sql::query(&target, &statement, &params) {
                Ok(rows) => rows,
                Err(error) if then.is_none() => {
                    return Ok(Report::critical(format!(
                        "error {}: {}",
                        error.kind(),
                        error.describe()
                    )));
                }
                Err(_) => continue,
            };
            report.push(
                measurement("sql.affected", rows.affected as f64, "1").attr("run", run.to_string()),
            );
            for (r, row) in rows.rows.iter().enumerate() {
                for (c, value) in row.iter().enumerate() {
                    report.push(
                        measurement("sql.cell", 0.0, "")
                            .attr("run", run.to_string())
                            .attr("row", r.to_string())
                            .attr("column", rows.columns[c].as_str())
                            .attr("value", render(value)),
                    );
                }
            }
        }
        if let Some(then) = then
            && let Err(error) = sql::query(&target, &then, &[])
        {
            return Ok(Report::critical(format!(
                "error {}: {}",
                error.kind(),
                error.describe()
            )));
        }
        Ok(report)
    }
}

watchpost_probe::export_probe!(SqlRun);

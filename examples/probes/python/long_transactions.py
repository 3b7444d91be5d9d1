"""pg-long-transactions: the oldest open transaction on a PostgreSQL server.

A transaction left open (an application that forgot to commit, a session
"idle in transaction") holds back vacuum, bloats tables and can end in
transaction-ID wraparound. This probe reads `pg_stat_activity` through the
`sql` capability and alerts on the oldest open transaction's age.

Grant it a target (`targets = ["primary"]` in its `[[probe]]` entry, or
`watchpost check ... --target primary="host=... user=..."`).

Config (all optional):
  target    the database target to query (default "primary")
  warning   age in seconds at which the status is warning (default 300)
  critical  age in seconds at which the status is critical (default 3600)
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, sql
from wit_world.imports.types import (
    Info,
    Kind,
    Measurement,
    MeasurementInfo,
    Report,
    Status,
)

# Every open transaction but our own, oldest first.
OPEN_TRANSACTIONS = """
SELECT pid,
       coalesce(usename::text, ''),
       coalesce(datname::text, ''),
       coalesce(state, ''),
       extract(epoch FROM now() - xact_start)::float8
FROM pg_stat_activity
WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
ORDER BY xact_start
"""


def setting(key: str, default: float) -> float:
    text = config.get(key)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise Err(f"config `{key}` = {text!r} is not a number of seconds")


def describe_error(error: sql.Error) -> str:
    """One line for any `sql` error variant."""
    if isinstance(error, sql.Error_Query):
        return f"query failed ({error.value.code}): {error.value.message}"
    kind = type(error).__name__.removeprefix("Error_").lower()
    return f"{kind}: {error.value}"


def plain(value: sql.Value) -> object:
    """The Python value inside a `sql.Value`."""
    return None if isinstance(value, sql.Value_Null) else value.value


class WitWorld(wit_world.WitWorld):
    def describe(self) -> Info:
        return Info(
            name="pg-long-transactions",
            version="0.1.0",
            kind=Kind.PERFORMANCE,
            description="age of the oldest open transaction",
            measurements=[
                MeasurementInfo("postgresql.transaction.oldest_age", "s", "age of the oldest open transaction"),
                MeasurementInfo("postgresql.transaction.long", "{transaction}", "open transactions older than `warning`"),
            ],
        )

    def check(self) -> Report:
        target = config.get("target") or "primary"
        warning = setting("warning", 300)
        critical = setting("critical", 3600)
        try:
            rows = sql.query(target, OPEN_TRANSACTIONS, []).rows
        except Err as e:
            # The server is down or refuses us: this probe cannot tell how
            # old its transactions are. Another probe alerts on availability.
            return Report(Status.UNKNOWN, f"cannot query `{target}`: {describe_error(e.value)}", [])

        transactions = [[plain(v) for v in row] for row in rows]
        oldest = transactions[0] if transactions else None
        age = oldest[4] if oldest else 0.0
        long_count = sum(1 for t in transactions if t[4] >= warning)
        measurements = [
            Measurement("postgresql.transaction.oldest_age", age, "s", []),
            Measurement("postgresql.transaction.long", float(long_count), "{transaction}", []),
        ]
        if oldest is None:
            return Report(Status.OK, "no open transactions", measurements)

        pid, user, database, state, _ = oldest
        message = f"oldest transaction {age:.0f} s (pid {pid}, user {user or '?'}, database {database or '?'}, {state or 'no state'})"
        if age >= critical:
            status = Status.CRITICAL
        elif age >= warning:
            status = Status.WARNING
        else:
            status = Status.OK
        if long_count > 1:
            message += f"; {long_count} transactions older than {warning:g} s"
        return Report(status, message, measurements)

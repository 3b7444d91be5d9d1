"""{{name}}: a Watchpost probe.

It reports the host's memory use and goes warning or critical above the
`warning` and `critical` percentages of its config (90 and 95 unless set).
Replace `check` with what you want to watch; `wit/` is the contract it
implements (world `probe`); `componentize-py -d wit -w probe bindings .`
writes the Python bindings for your editor to read.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, host, log
from wit_world.imports.types import (
    Attribute,
    Info,
    Kind,
    Measurement,
    MeasurementInfo,
    Report,
    Status,
)


def percent(key: str, default: float) -> float:
    """A percentage from the probe's config, or `default`. Raising `Err`
    ends the run as `unknown` with that message."""
    text = config.get(key)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise Err(f"config `{key}` = {text!r} is not a number (a percentage)")


class WitWorld(wit_world.WitWorld):
    def describe(self) -> Info:
        return Info(
            name="{{name}}",
            version="0.1.0",
            kind=Kind.HOST,
            description="memory use of the host",
            measurements=[
                MeasurementInfo("system.memory.utilization", "1", "fraction of memory in use"),
            ],
        )

    def check(self) -> Report:
        warning = percent("warning", 90)
        critical = percent("critical", 95)
        memory = host.memory()
        used = memory.used_bytes / max(memory.total_bytes, 1)
        if used * 100 >= critical:
            status = Status.CRITICAL
        elif used * 100 >= warning:
            status = Status.WARNING
        else:
            status = Status.OK
        message = f"{used * 100:.1f}% of memory in use"
        if status != Status.OK:
            log.log(log.Level.WARN, message)
        return Report(
            status=status,
            message=message,
            measurements=[
                Measurement(
                    name="system.memory.utilization",
                    value=used,
                    unit="1",
                    attributes=[Attribute("host", host.hostname())],
                )
            ],
        )

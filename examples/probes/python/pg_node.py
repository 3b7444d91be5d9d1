"""pg-node: the host side of a PostgreSQL node, seen through the `host` capability.

Checks that the server processes run, that the filesystem holding the data
directory has room, and whether the host rebooted recently. It needs no
database target, so it keeps working when the server refuses connections.

Config (all optional):
  process        process name to look for (default "postgres")
  min_count      fewest such processes that count as running (default 1)
  data_dir       the data directory; its filesystem is checked
                 (default "/var/lib/postgresql")
  disk_warning   percent used at which the status is warning (default 85)
  disk_critical  percent used at which the status is critical (default 95)
  uptime_warning seconds of uptime under which a reboot is reported as a
                 warning (default 600; 0 turns it off)
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


def setting(key: str, default: float) -> float:
    """A numeric config value, or `default`; a value that is not a number
    ends the run as `unknown` with a message naming the key."""
    text = config.get(key)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise Err(f"config `{key}` = {text!r} is not a number")


def mount_of(path: str, filesystems: list) -> "host.Filesystem | None":
    """The filesystem that holds `path`: the longest mount point that is a
    prefix of it."""
    best = None
    for fs in filesystems:
        mount = fs.mount_point.rstrip("/") or "/"
        inside = path == mount or path.startswith(mount + "/") or mount == "/"
        if inside and (best is None or len(mount) > len(best.mount_point)):
            best = fs
    return best


def measurement(name: str, value: float, unit: str, **attributes: str) -> Measurement:
    return Measurement(
        name=name,
        value=float(value),
        unit=unit,
        attributes=[Attribute(key=k, value=v) for k, v in attributes.items()],
    )


class WitWorld(wit_world.WitWorld):
    def describe(self) -> Info:
        return Info(
            name="pg-node",
            version="0.1.0",
            kind=Kind.HOST,
            description="PostgreSQL processes, data directory disk space and recent reboots",
            measurements=[
                MeasurementInfo("process.up", "1", "1 if enough server processes run"),
                MeasurementInfo("process.count", "{process}", "server processes running"),
                MeasurementInfo("process.memory.usage", "By", "resident memory of the server processes"),
                MeasurementInfo("system.filesystem.utilization", "1", "used fraction of the data directory's filesystem"),
                MeasurementInfo("system.uptime", "s", "seconds since the host booted"),
            ],
        )

    def check(self) -> Report:
        name = config.get("process") or "postgres"
        min_count = setting("min_count", 1)
        data_dir = config.get("data_dir") or "/var/lib/postgresql"
        disk_warning = setting("disk_warning", 85)
        disk_critical = setting("disk_critical", 95)
        uptime_warning = setting("uptime_warning", 600)

        status = Status.OK
        problems = []
        measurements = []

        def worse(to: Status, problem: str) -> None:
            nonlocal status
            if to.value > status.value:
                status = to
            problems.append(problem)

        processes = host.processes(name)
        count = len(processes)
        up = count >= min_count
        measurements += [
            measurement("process.up", 1 if up else 0, "1", process=name),
            measurement("process.count", count, "{process}", process=name),
            measurement("process.memory.usage", sum(p.memory_bytes for p in processes), "By", process=name),
        ]
        if not up:
            worse(Status.CRITICAL, f"{count} `{name}` processes running, expected at least {min_count:g}")

        fs = mount_of(data_dir, host.filesystems())
        if fs is None:
            worse(Status.WARNING, f"no mounted filesystem holds {data_dir}")
        elif fs.total_bytes > 0:
            used = 1 - fs.available_bytes / fs.total_bytes
            measurements.append(
                measurement("system.filesystem.utilization", used, "1", mountpoint=fs.mount_point)
            )
            percent = used * 100
            if percent >= disk_critical:
                worse(Status.CRITICAL, f"{fs.mount_point} is {percent:.1f}% full")
            elif percent >= disk_warning:
                worse(Status.WARNING, f"{fs.mount_point} is {percent:.1f}% full")

        uptime = host.uptime_seconds()
        measurements.append(measurement("system.uptime", uptime, "s"))
        if uptime < uptime_warning:
            worse(Status.WARNING, f"the host rebooted {uptime} s ago")

        if problems:
            log.log(log.Level.INFO, "; ".join(problems))
            message = "; ".join(problems)
        else:
            message = f"{count} `{name}` processes, data directory on {fs.mount_point if fs else '?'}"
        return Report(status=status, message=message, measurements=measurements)

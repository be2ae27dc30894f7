"""Schedule start events: `every: <seconds>` or `cron: "0 6 * * MON-FRI"` (with an optional
IANA `timezone`, UTC by default). Pure: checked at publish, next firing computed from a time.

Cron expressions are parsed by `croniter` (five fields, names such as MON-FRI or JAN, and the
@hourly/@daily/@weekly/@monthly/@yearly aliases). Firings are computed in the schedule's time
zone, so "06:00 on weekdays in Europe/Paris" stays 06:00 across daylight-saving changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from plinth.errors import Fault

ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def zone(name: str | None) -> tzinfo:
    """The time zone named `name` (UTC when None); ValueError when unknown."""
    if not name or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'"
        ) from exc


def check(start: dict[str, Any], path: str) -> list[Fault]:
    """Faults of one schedule start event: exactly one of `every` or `cron`, a valid cron
    expression and time zone."""
    cron, every = start.get("cron"), start.get("every")
    if cron is None and every is None:
        return [
            Fault(
                f"{path}.cron",
                "a schedule needs `cron` (e.g. '0 6 * * MON-FRI') or `every` (seconds)",
                "required",
            )
        ]
    if cron is not None and every is not None:
        return [
            Fault(
                f"{path}.every", "a schedule takes either `cron` or `every`, not both", "conflict"
            )
        ]
    found: list[Fault] = []
    if start.get("timezone") is not None:
        if cron is None:
            found.append(
                Fault(
                    f"{path}.timezone", "a time zone applies to `cron` schedules only", "conflict"
                )
            )
        else:
            try:
                zone(start["timezone"])
            except ValueError as exc:
                found.append(Fault(f"{path}.timezone", str(exc), "unknown_timezone"))
    if cron is not None:
        problem = _cron_problem(cron)
        if problem:
            found.append(Fault(f"{path}.cron", problem, "cron"))
    return found


def _cron_problem(expr: Any) -> str | None:
    if not isinstance(expr, str) or not expr.strip():
        return "a cron expression is a string such as '0 6 * * MON-FRI'"
    text = expr.strip()
    if text.lower() not in ALIASES and len(text.split()) != 5:
        return (
            f"{text!r} has {len(text.split())} fields; a cron expression has five: "
            "minute hour day-of-month month day-of-week"
        )
    try:
        croniter(text)
    except (CroniterError, ValueError, KeyError) as exc:
        return f"{text!r} is not a valid cron expression: {exc}"
    return None


def next_fire(start: dict[str, Any], after: float) -> float:
    """The first firing strictly after `after` (epoch seconds)."""
    if start.get("cron") is None:
        return after + float(start["every"])
    tz = zone(start.get("timezone"))
    base = datetime.fromtimestamp(after, tz)
    following: datetime = croniter(start["cron"].strip(), base).get_next(datetime)
    return following.timestamp()

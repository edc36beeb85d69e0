"""Parsing the human units used on the command line and in sweep files: durations like `30s`, `100ms`, `1h`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?\s*$")


def parse_seconds(text: str | float | int) -> float:
    """`"30s"` -> 30.0, `"100ms"` -> 0.1, `"2m"` -> 120.0; a bare number means seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (write e.g. 30s, 100ms, 2m, 1h)")
    value, unit = match.groups()
    return float(value) * _UNITS[unit or "s"]


def parse_timedelta(text: str) -> timedelta:
    return timedelta(seconds=parse_seconds(text))


def duration(text: str) -> timedelta:
    """argparse type: a duration; argparse names it in its error message ("invalid duration value")."""
    return parse_timedelta(text)


def seconds(text: str) -> float:
    """argparse type: a duration in seconds."""
    return parse_seconds(text)


def positive_int(text: str) -> int:
    """argparse type: a whole number, 1 or more ("invalid positive integer value")."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


positive_int.__name__ = "positive integer"

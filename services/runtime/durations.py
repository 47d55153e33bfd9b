"""Human durations in config: ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m`` style text; raise ValueError saying what is accepted."""
    cleaned = text.strip().lower().replace(" ", "")
    pos, seconds = 0, 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned):
        raise ValueError(f"{text!r} is not a duration; use a number and a unit, e.g. 30s, 15m, 2h, 1d")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Shortest exact text for a duration (inverse of parse_duration for whole seconds)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)

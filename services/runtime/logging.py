"""Logging with stable action keys and personal data kept out of log lines."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def redact(text: str) -> str:
    """Mask email addresses: ``jane.doe@acme.com`` becomes ``j***@acme.com``."""
    return _EMAIL.sub(r"\1***@\2", text)


class RedactingFilter(logging.Filter):
    """Render each record once and mask emails in the result (arguments included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if not hasattr(record, "action"):
            record.action = "-"
        return True


class RepeatFilter(logging.Filter):
    """Let a client library's warning or error through once per ``window`` seconds: a lost
    broker makes aiokafka log the same line several times a second, which buries the one line
    that says what to do. The next one through says how many were held back."""

    def __init__(self, prefixes: tuple[str, ...] = ("aiokafka", "kafka", "faststream"),
                 window: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.msg)
        now = self.clock()
        first, held = self._seen.get(key, (float("-inf"), 0))
        if now - first < self.window:
            self._seen[key] = (first, held + 1)
            return False
        if len(self._seen) > 1000:  # bounded: drop what is long quiet
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {self.window:g}s)"
        return True


def setup_logging(level: str = "INFO", service: str = "leadflow") -> None:
    """Configure the root logger for a service process (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        if getattr(handler, "_leadflow", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._leadflow = True  # type: ignore[attr-defined]
    handler.addFilter(RepeatFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s %(levelname)-7s {service} %(name)s [%(action)s] %(message)s"))
    root.addHandler(handler)
    # Client libraries log every connection and rebalance at INFO; keep them at WARNING.
    for noisy in ("aiokafka", "faststream", "kafka", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

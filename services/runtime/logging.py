"""Logging with stable action keys and personal data kept out of log lines."""

from __future__ import annotations

import logging
import re
import sys

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


def setup_logging(level: str = "INFO", service: str = "leadflow") -> None:
    """Configure the root logger for a service process (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        if getattr(handler, "_leadflow", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._leadflow = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s %(levelname)-7s {service} %(name)s [%(action)s] %(message)s"))
    root.addHandler(handler)
    # Client libraries log every connection and rebalance at INFO; keep them at WARNING.
    for noisy in ("aiokafka", "faststream", "kafka", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

"""Process-wide settings for long-running services."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Collect young objects less often: a batch of 10,000 decoded events is garbage by design,
    and the default threshold (700) spends a quarter of a projector's time in the collector."""
    gc.freeze()  # everything imported so far lives for the whole process
    gc.set_threshold(100_000, 50, 100)

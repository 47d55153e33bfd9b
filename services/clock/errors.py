"""Errors of the clock service."""

from __future__ import annotations

from events.errors import LeadflowError


class ClockError(LeadflowError):
    """Base of the clock's errors."""


class LostLeadership(ClockError):
    """The advisory lock went away (its connection dropped): another clock may be active now."""


class BackfillRefused(ClockError):
    """A backfill that would do something unintended; the message says how to proceed."""

"""Errors of the replay package."""

from __future__ import annotations

from events import LeadflowError


class ReplayError(LeadflowError):
    """A replay cannot start or go on; the message says what to do next."""

"""Errors of the event contract. Every error leadflow raises on purpose derives from LeadflowError."""

from __future__ import annotations


class LeadflowError(Exception):
    """Base of every error leadflow raises on purpose."""


class EventDecodeError(LeadflowError):
    """Bytes that are not a valid event of the contract (the reason says which field and why)."""


class ImplausibleEvent(LeadflowError):
    """A well-formed event that cannot be a step of the log where it was found (a forgery, or a
    bug in another producer): the reason names the rule it breaks."""

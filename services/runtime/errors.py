"""Errors raised by the services. Driver errors are translated into these at the boundary."""

from __future__ import annotations

from events.errors import LeadflowError


class ConfigError(LeadflowError):
    """The config file or environment is invalid; the message names each bad key and the fix."""


class InfrastructureError(LeadflowError):
    """The broker or the database cannot be reached or refused an operation."""


class RunTimeout(LeadflowError):
    """A run reached its timeout_seconds before draining its budget."""

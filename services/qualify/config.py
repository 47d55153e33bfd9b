"""Qualify's config section, ``[qualify]``: the minimum score and the required fields, and any
tenant's own."""

from __future__ import annotations

from pydantic import Field, field_validator

from ..runtime.config import TenantRules


class QualifyConfig(TenantRules):
    """The rules a lead must pass; ``[qualify.tenants.<id>]`` replaces fields for one tenant."""

    min_score: int = Field(default=50, ge=0, le=100)
    required_fields: tuple[str, ...] = ("email", "company")
    suppressed_domains: tuple[str, ...] = ()

    @field_validator("required_fields")
    @classmethod
    def _known_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from events.lead import Lead

        unknown = [f for f in value if f not in Lead.model_fields]
        if unknown:
            raise ValueError(f"unknown lead fields {unknown}; choose from {sorted(Lead.model_fields)}")
        return value

    @field_validator("suppressed_domains")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.strip().lower() for d in value)

"""Contact's config section, ``[contact]``: sequences, quotas, limits, retries, the sender."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from ..runtime.config import Duration, Section, SmtpConfig


class SequenceStep(Section):
    name: str
    subject: str
    body: str


class SequenceConfig(Section):
    steps: tuple[SequenceStep, ...] = Field(min_length=1, max_length=10)
    cooldown: Duration = timedelta(hours=24)


def _default_sequences() -> dict[str, SequenceConfig]:
    def steps(tone: str) -> tuple[SequenceStep, ...]:
        return (
            SequenceStep(name="intro", subject="{company} and leadflow",
                         body=f"Hi {{first_name}},\n\n{tone}\n"),
            SequenceStep(name="followup1", subject="Re: {company} and leadflow",
                         body="Hi {first_name}, following up on my last note.\n"),
            SequenceStep(name="followup2", subject="Closing the loop, {first_name}",
                         body="Hi {first_name}, one last note from me.\n"),
        )

    return {
        "enterprise": SequenceConfig(steps=steps("Teams like {company} run outbound on a log.")),
        "standard": SequenceConfig(steps=steps("A quick idea for {company}.")),
    }


class QuotaConfig(Section):
    """Daily send quotas; a day is the tenant's local day (``timezones``, default UTC)."""

    daily_per_campaign: int | None = Field(default=None, ge=0)
    daily_per_tenant: int | None = Field(default=None, ge=0)
    campaigns: dict[str, int] = Field(default_factory=dict)  # per-campaign overrides
    tenants: dict[str, int] = Field(default_factory=dict)  # per-tenant overrides
    timezones: dict[str, str] = Field(default_factory=dict)  # tenant -> IANA timezone

    @field_validator("timezones")
    @classmethod
    def _valid_timezones(cls, value: dict[str, str]) -> dict[str, str]:
        for tenant, name in value.items():
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"tenant {tenant!r}: unknown timezone {name!r}; use an IANA "
                                 "name such as 'UTC' or 'Europe/Berlin'") from None
        return value


class DomainRateConfig(Section):
    """At most ``max_sends`` to one recipient domain per ``window`` (None: no limit)."""

    max_sends: int | None = Field(default=None, ge=0)
    window: Duration = timedelta(hours=1)


class RetryConfig(Section):
    """Transient send failures: next attempt after min(base * 2^attempt, cap)."""

    base: Duration = timedelta(seconds=300)
    cap: Duration = timedelta(hours=6)
    max_retries: int = Field(default=3, ge=0)


class BreakerConfig(Section):
    """Open after ``failures`` consecutive send failures; probe once every ``probe_after``."""

    failures: int = Field(default=5, ge=1)
    probe_after: Duration = timedelta(seconds=60)


class ContactConfig(Section):
    sender: Literal["proof", "smtp"] = "proof"
    sequences: dict[str, SequenceConfig] = Field(default_factory=_default_sequences)
    from_address: str = "outreach@leadflow.invalid"
    max_steps: int = Field(default=3, ge=1, le=10)
    #: List-Unsubscribe target; ``{lead_id}``, ``{email}``, ``{campaign_id}`` are filled in.
    list_unsubscribe: str = "mailto:unsubscribe@leadflow.invalid?subject=unsubscribe-{lead_id}"
    quotas: QuotaConfig = QuotaConfig()
    domain_rate: DomainRateConfig = DomainRateConfig()
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    smtp: SmtpConfig = SmtpConfig()
    #: A send claimed longer ago than this by an instance that is gone is reconciled.
    stale_claim_after: Duration = timedelta(minutes=15)
    #: How long a send waits for the control topic to be applied before failing the run.
    control_sync_timeout: Duration = timedelta(seconds=10)
    #: The control window: the control topic is read to its end, and the control tables
    #: read, once per this many sends and at least once per ``control_window``; a control
    #: published after that read can reach only the sends of that window (docs/outreach.md).
    control_window_sends: int = Field(default=50, ge=1, le=500)
    control_window: Duration = timedelta(seconds=1)
    #: Sends in flight at once (SMTP connections); the breaker and limits hold for each.
    send_concurrency: int = Field(default=8, ge=1, le=100)

    @model_validator(mode="after")
    def _steps_within_max(self) -> ContactConfig:
        long = sorted(name for name, s in self.sequences.items() if len(s.steps) > self.max_steps)
        if long:
            raise ValueError(f"sequences {long} have more than max_steps={self.max_steps} steps; "
                             "shorten them or raise contact.max_steps")
        return self

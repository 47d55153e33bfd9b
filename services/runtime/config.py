"""The config file's shared sections (TOML): schedules, topics, the clock, the dashboard,
retention, alerts; and the loader. Each stage's own section lives in its package
(``services/<stage>/config.py``) and ``services.pipeline.config.LeadflowConfig`` puts them together.

Every section has defaults that reproduce the nightly cron schedule users run today, so an
empty file is a valid config. ``load_config`` raises ConfigError naming each bad key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails

from events.names import LEAD_TOPICS, PIPELINE, JobName, Topic

from .cron import every_interval, is_cron, schedule_problem
from .durations import parse_duration
from .errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _detail(err: ErrorDetails) -> InitErrorDetails:
    detail = InitErrorDetails(type=err["type"], loc=err["loc"], input=err["input"])
    if "ctx" in err:
        detail["ctx"] = err["ctx"]
    return detail


def _under(tenant: str, title: str, errors: list[InitErrorDetails]) -> ValidationError:
    # Errors found in a tenant's rules, placed at its key: the message names the key in the file.
    return ValidationError.from_exception_data(title, [
        {**err, "loc": ("tenants", tenant, *err["loc"])} for err in errors])


class TenantRules(Section):
    """A section a tenant may override: ``[<section>.tenants.<id>]`` names fields that replace
    the section's for that tenant's leads (a table replaces the whole table); the fields it
    does not name stay the section's. Each tenant's rules are validated at start."""

    tenants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    _resolved: dict[str, Self] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _resolve_tenants(self) -> Self:
        base = self.model_dump(exclude={"tenants"})
        resolved: dict[str, Self] = {}
        for tenant, fields in self.tenants.items():
            if "tenants" in fields:
                raise _under(tenant, type(self).__name__, [InitErrorDetails(
                    type="extra_forbidden", loc=("tenants",), input=fields["tenants"])])
            try:
                resolved[tenant] = type(self).model_validate({**base, **fields})
            except ValidationError as exc:
                raise _under(tenant, type(self).__name__,
                             [_detail(err) for err in exc.errors()]) from None
        self._resolved = resolved
        return self

    def for_tenant(self, tenant_id: str) -> Self:
        """The rules for ``tenant_id``'s leads: its override over this section, or the section."""
        # Read from the private values' slot: ``self._resolved`` goes through pydantic's
        # __getattr__ (~2 us), and score and qualify ask once per lead.
        resolved: dict[str, Self] = self.__pydantic_private__["_resolved"]  # type: ignore[index]
        return resolved.get(tenant_id, self)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        # A copy with changes resolves its tenants again, against the changed fields.
        if not update:
            return super().model_copy(deep=deep)
        return type(self).model_validate({**self.model_dump(), **update})


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


# --- schedules ---------------------------------------------------------------------------


class Catchup(StrEnum):
    NONE = "none"
    LATEST = "latest"
    ALL = "all"


class Overlap(StrEnum):
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    ALLOW = "allow"


class ScheduleFields(Section):
    schedule: str = "0 2 * * *"
    timezone: str = "UTC"

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        text = value.strip()
        interval = every_interval(text)
        if interval is not None:
            if interval.total_seconds() < 1:
                raise ValueError("an 'every' interval must be at least 1s")
            return text
        if not is_cron(text):
            raise ValueError(
                f"{value!r} is neither a cron expression (5 fields, e.g. '0 2 * * *') "
                "nor 'every <duration>' (e.g. 'every 5m')"
            )
        return text

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
            ) from None
        return value


class ScopedSchedule(ScheduleFields):
    """A schedule for one tenant (and optionally one campaign) of a job."""

    tenant: str = Field(min_length=1)
    campaign: str | None = None
    enabled: bool = True
    max_leads_per_run: int | None = Field(default=None, ge=1)


class JobConfig(ScheduleFields):
    """How and when one job runs."""

    enabled: bool = True
    max_leads_per_run: int = Field(default=100, ge=1)
    timeout_seconds: float = Field(default=3600, gt=0)
    retry_on_failure: bool = True
    max_retries: int = Field(default=3, ge=0)
    retry_backoff_seconds: float = Field(default=60, ge=0)
    catchup: Catchup = Catchup.LATEST
    catchup_window: Duration = timedelta(days=1)
    overlap: Overlap = Overlap.SKIP
    jitter_seconds: float = Field(default=0, ge=0)
    pause_after_failures: int = Field(default=0, ge=0)
    scopes: tuple[ScopedSchedule, ...] = ()

    @model_validator(mode="after")
    def _schedules_fire(self) -> JobConfig:
        problems = [schedule_problem(self.schedule, self.timezone, self.jitter_seconds)]
        for i, scope in enumerate(self.scopes):
            problem = schedule_problem(scope.schedule, scope.timezone, self.jitter_seconds)
            problems.append(f"scopes[{i}]: {problem}" if problem else None)
        found = [p for p in problems if p]
        if found:
            raise ValueError("; ".join(found))
        return self


def _default_jobs() -> dict[JobName, JobConfig]:
    hours = {JobName.HARVEST: 2, JobName.SCORE: 3, JobName.QUALIFY: 4, JobName.ROUTE: 5,
             JobName.CONTACT: 6}
    jobs = {
        job: JobConfig(schedule=f"0 {hour} * * *",
                       max_leads_per_run=50 if job is JobName.CONTACT else 100)
        for job, hour in hours.items()
    }
    jobs[JobName.RETENTION] = JobConfig(schedule="30 1 * * *", max_leads_per_run=100_000)
    return jobs


# --- shared by the stages and the services -----------------------------------------------


class SmtpConfig(Section):
    """An SMTP relay (contact's sends, alert emails); credentials come from the environment
    variables named here."""

    host: str = "127.0.0.1"
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["none", "starttls", "tls"] = "starttls"
    validate_certs: bool = True
    timeout: Duration = timedelta(seconds=30)
    username_env: str = "LEADFLOW_SMTP_USERNAME"
    password_env: str = "LEADFLOW_SMTP_PASSWORD"


class StageConfig(Section):
    """How a stage drains its input within a run."""

    batch_size: int = Field(default=500, ge=1, le=10_000)
    max_attempts: int = Field(default=3, ge=1)
    retry_backoff: Duration = timedelta(milliseconds=50)
    idle_poll: Duration = timedelta(seconds=1)
    #: On SIGTERM a run ends after its batch in hand; past this it is abandoned (uncommitted).
    shutdown_grace: Duration = timedelta(seconds=10)


#: The name that stands for the shared lead topics in a tenant filter: the tenant ``default``
#: and every tenant without topics of its own use them.
SHARED_TENANT = "default"
#: A tenant id becomes part of its topics' names: Kafka allows letters, digits, '.', '_' and
#: '-'; '.' is kept out so a topic name parses back to its tenant.
_TENANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class TenantTopics(Section):
    """A tenant whose leads go through lead topics of its own (``[topics.tenants.<id>]``)."""

    partitions: int = Field(default=3, ge=1, le=1000)


class TopicsConfig(Section):
    """Topic names, partitions, replication and retention. ``tenants`` lists the tenants with
    lead topics of their own, ``<prefix>t.<tenant>.leads.new`` and so on; every other tenant's
    leads share the lead topics (docs/architecture.md, "Tenants")."""

    prefix: str = ""
    partitions: int = Field(default=12, ge=1, le=1000)
    # Copies of each partition, and how many must have a write before acks=all answers. The
    # defaults suit one broker; a cluster that survives losing a broker wants 3 and 2.
    replication_factor: int = Field(default=1, ge=1, le=32)
    min_insync_replicas: int | None = Field(default=None, ge=1, le=32)

    @model_validator(mode="after")
    def _isr_fits(self) -> TopicsConfig:
        if self.min_insync_replicas and self.min_insync_replicas > self.replication_factor:
            raise ValueError(f"min_insync_replicas ({self.min_insync_replicas}) exceeds "
                             f"replication_factor ({self.replication_factor}): no write could "
                             "ever be acknowledged; lower it or add replicas")
        return self
    overrides: dict[Topic, int] = Field(default_factory=lambda: {
        Topic.CLOCK_TICKS: 1, Topic.CONTROL: 1, Topic.JOBS_EVENTS: 1,
    })
    # How long the broker keeps messages (retention.ms). Replay and rebuilds read history, so
    # this bounds how far back they can go. Unset: the broker's default (7 days on Kafka).
    retention: Duration | None = None
    retention_overrides: dict[Topic, Duration] = Field(default_factory=dict)

    tenants: dict[str, TenantTopics] = Field(default_factory=dict)

    @field_validator("tenants")
    @classmethod
    def _topic_safe_ids(cls, value: dict[str, TenantTopics]) -> dict[str, TenantTopics]:
        for tenant in value:
            if tenant == SHARED_TENANT:
                raise ValueError(f"{SHARED_TENANT!r} names the shared lead topics; give the "
                                 "tenant another id or leave it on the shared topics")
            if not _TENANT_ID.match(tenant):
                raise ValueError(f"tenant id {tenant!r} cannot be part of a topic name: use "
                                 "letters, digits, '_' and '-' (at most 64)")
        return value

    def partitions_for(self, topic: Topic, tenant: str | None = None) -> int:
        """Partitions of ``topic`` (of ``tenant``'s own, when it has lead topics of its own)."""
        if self.isolated(tenant) and topic in LEAD_TOPICS:
            return self.tenants[tenant].partitions  # type: ignore[index]
        return self.overrides.get(topic, self.partitions)

    def isolated(self, tenant: str | None) -> bool:
        """Whether ``tenant``'s leads go through lead topics of its own."""
        return tenant is not None and tenant in self.tenants

    def name(self, topic: Topic, tenant: str | None = None) -> str:
        """The broker-side name of ``topic`` for ``tenant``'s events (None: the shared topic)."""
        if self.isolated(tenant) and topic in LEAD_TOPICS:
            return f"{self.prefix}t.{tenant}.{topic.value}"
        return topic.physical(self.prefix)

    def names(self, topic: Topic, tenants: Collection[str] | None = None) -> list[str]:
        """Every physical topic of ``topic``, the shared one first: for the tenants in
        ``tenants`` only (``SHARED_TENANT`` stands for the shared topic; None: all of them)."""
        if topic not in LEAD_TOPICS:
            return [topic.physical(self.prefix)]
        names = [topic.physical(self.prefix)] if tenants is None or SHARED_TENANT in tenants else []
        return names + [self.name(topic, t) for t in sorted(self.tenants)
                        if tenants is None or t in tenants]

    def partitions_of(self, topic: Topic, tenants: Collection[str] | None = None) -> int:
        """Partitions of every physical topic of ``topic`` (``names``) together."""
        return sum(self.partitions_for(topic, self.tenant_of(name))
                   for name in self.names(topic, tenants))

    def tenant_of(self, name: str) -> str | None:
        """The tenant whose own topic ``name`` is (None: a shared topic)."""
        rest = name[len(self.prefix):] if name.startswith(self.prefix) else ""
        if not rest.startswith("t."):
            return None
        tenant = rest[2:].split(".", 1)[0]
        return tenant if tenant in self.tenants else None

    def logical(self, name: str) -> Topic | None:
        """The logical topic a physical name stands for (None: not one of this deployment's)."""
        if not name.startswith(self.prefix):
            return None
        tenant = self.tenant_of(name)
        rest = name[len(self.prefix):].removeprefix(f"t.{tenant}." if tenant else "")
        try:
            topic = Topic(rest)
        except ValueError:
            return None
        return topic if tenant is None or topic in LEAD_TOPICS else None

    def retention_for(self, topic: Topic) -> timedelta | None:
        return self.retention_overrides.get(topic, self.retention)


# --- dashboard ---------------------------------------------------------------------------


class DashboardConfig(Section):
    """The dashboard's HTTP service. ``token`` opens the controls (and the reads);
    ``read_token`` opens the read API only. LEADFLOW_DASHBOARD_TOKEN and
    LEADFLOW_DASHBOARD_READ_TOKEN override them; without either, nothing with lead data is
    served."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    token: str | None = None
    read_token: str | None = None
    refresh_seconds: float = Field(default=5, ge=1, le=3600)
    readiness_max_lag: int = Field(default=10_000, ge=0)
    readiness_max_status_age: Duration = timedelta(seconds=60)


class RetentionConfig(Section):
    """How long job_runs and lead_events rows are kept (job_metrics keep their totals)."""

    max_age: Duration = timedelta(days=30)


class ProjectorConfig(Section):
    """The projector (services/projector). ``workers`` processes split the lead partitions
    between them (each lead's rows belong to one); worker 0 also folds ticks, job and control
    events. More than one pays where the projector has cores to spare (docs/performance.md)."""

    workers: int = Field(default=1, ge=1, le=16)


class ClockConfig(Section):
    """The clock service (services/clock): lateness, catch-up and backfill bounds."""

    #: A tick emitted up to this late still counts as on time (source=schedule); older missed
    #: ticks follow the job's catch-up policy. Covers a standby taking over.
    grace: Duration = timedelta(seconds=60)
    #: With catchup = "all", at most this many missed ticks per schedule (the most recent).
    max_catchup_ticks: int = Field(default=1000, ge=1)
    #: `leadflow backfill` refuses more ticks than this without --force.
    max_backfill_ticks: int = Field(default=100, ge=1)
    #: How often a standby clock tries to take the lock.
    standby_poll: Duration = timedelta(milliseconds=500)


# --- alerts (services/alerts, docs/alerts.md) --------------------------------------------

AlertChannel = Literal["webhook", "email"]


class AlertRule(Section):
    """What every alert rule has. ``channels`` unset: every configured channel; ``[]``: the
    log only. An incident fires once its condition has held for ``sustained``."""

    enabled: bool = True
    channels: tuple[AlertChannel, ...] | None = None
    sustained: Duration = timedelta(0)

    @field_validator("sustained")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value


class JobFailedRule(AlertRule):
    """A job's latest finished run failed: opens on the first failure, resolves on a success."""


class SuccessRateRule(AlertRule):
    """Fewer than ``threshold`` percent of a job's runs that finished within ``window``
    completed (counted once it has at least ``min_runs`` of them)."""

    threshold: float = Field(default=70, gt=0, le=100)
    window: Duration = timedelta(hours=24)
    min_runs: int = Field(default=3, ge=1)


class FailuresInARowRule(AlertRule):
    """A job failed ``threshold`` or more runs in a row."""

    threshold: int = Field(default=3, ge=1)


class ProjectorLagRule(AlertRule):
    """The projector is more than ``threshold`` messages behind the log, or has not reported
    for ``max_status_age`` (it reports every 5 s even when idle)."""

    threshold: int = Field(default=10_000, ge=0)
    max_status_age: Duration = timedelta(seconds=60)
    sustained: Duration = timedelta(minutes=5)


class DeadLettersRule(AlertRule):
    """At least ``threshold`` dead letters of one stage were recorded within ``window``."""

    threshold: int = Field(default=1, ge=1)
    window: Duration = timedelta(minutes=15)


class AlertRules(Section):
    job_failed: JobFailedRule = JobFailedRule()
    success_rate: SuccessRateRule = SuccessRateRule()
    failures_in_a_row: FailuresInARowRule = FailuresInARowRule()
    projector_lag: ProjectorLagRule = ProjectorLagRule()
    dead_letters: DeadLettersRule = DeadLettersRule()

    def items(self) -> list[tuple[str, AlertRule]]:
        """(name, rule) for every rule, in a fixed order."""
        return [(name, getattr(self, name)) for name in type(self).model_fields]


class WebhookConfig(Section):
    """A Slack-compatible incoming webhook (``{"text": ...}``). Its URL is a secret (the token
    is in it): the variable named by ``url_env`` wins over ``url``, and logs show its host only."""

    url: str | None = None
    url_env: str = "LEADFLOW_ALERTS_WEBHOOK_URL"
    timeout: Duration = timedelta(seconds=10)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http://)")
        return value


class AlertEmailConfig(Section):
    """Alert emails: one message per recipient, through ``smtp`` (credentials from the
    environment variables it names)."""

    to: tuple[str, ...] = ()
    from_address: str = "alerts@leadflow.invalid"
    smtp: SmtpConfig = SmtpConfig()

    @field_validator("to")
    @classmethod
    def _valid_recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from events.emails import email_problem, normalise_email

        addresses = tuple(normalise_email(a) for a in value)
        problems = [p for a in addresses if (p := email_problem(a))]
        if problems:
            raise ValueError("; ".join(problems))
        return addresses

    @field_validator("from_address")
    @classmethod
    def _valid_sender(cls, value: str) -> str:
        from events.emails import email_problem, normalise_email

        if problem := email_problem(normalise_email(value)):
            raise ValueError(problem)
        return value


class AlertsConfig(Section):
    """The built-in notifier (`leadflow run alerts`): every ``interval`` it reads the read
    models, opens an incident when a rule's condition holds and resolves it when it clears."""

    interval: Duration = timedelta(seconds=30)
    webhook: WebhookConfig = WebhookConfig()
    email: AlertEmailConfig = AlertEmailConfig()
    rules: AlertRules = AlertRules()

    @field_validator("interval")
    @classmethod
    def _at_least_a_second(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @model_validator(mode="after")
    def _email_has_recipients(self) -> AlertsConfig:
        naming = [name for name, rule in self.rules.items()
                  if rule.enabled and rule.channels and "email" in rule.channels]
        if naming and not self.email.to:
            raise ValueError(f"rules {naming} send to email but alerts.email.to is empty; add "
                             "recipients or remove email from their channels")
        return self


SectionT = TypeVar("SectionT", bound=Section)
ConfigT = TypeVar("ConfigT", bound="PlatformConfig")


class PlatformConfig(Section):
    """The sections every service shares. The whole config file adds each stage's own section
    (``services.pipeline.config.LeadflowConfig``); the runtime reaches those through ``section``."""

    topics: TopicsConfig = TopicsConfig()
    jobs: dict[JobName, JobConfig] = Field(default_factory=_default_jobs)
    clock: ClockConfig = ClockConfig()
    stage: StageConfig = StageConfig()
    dashboard: DashboardConfig = DashboardConfig()
    retention: RetentionConfig = RetentionConfig()
    projector: ProjectorConfig = ProjectorConfig()
    alerts: AlertsConfig = AlertsConfig()

    @field_validator("jobs", mode="before")
    @classmethod
    def _merge_defaults(cls, value: Any) -> Any:
        # A file that configures one job keeps the defaults of the others.
        if not isinstance(value, dict):
            return value
        merged: dict[Any, Any] = {k.value: v.model_dump() for k, v in _default_jobs().items()}
        for name, job in value.items():
            base = merged.get(name, {})
            merged[name] = {**base, **job} if isinstance(job, dict) else job
        return merged

    @model_validator(mode="after")
    def _success_rate_window_is_kept(self) -> Self:
        # The rule counts runs in job_runs, which retention prunes past max_age.
        window, kept = self.alerts.rules.success_rate.window, self.retention.max_age
        if window > kept:
            raise ValueError(f"alerts.rules.success_rate.window ({window}) is longer than "
                             f"retention.max_age ({kept}), which prunes the runs it counts; "
                             "shorten the window or keep runs longer")
        return self

    def job(self, job: JobName) -> JobConfig:
        return self.jobs.get(job) or _default_jobs()[job]

    def tenant_ids(self) -> set[str]:
        """The tenants the config names: with topics of their own or a schedule scoped to them."""
        return set(self.topics.tenants) | {s.tenant for j in self.jobs.values() for s in j.scopes}

    def section(self, key: str, model: type[SectionT]) -> SectionT:
        """A stage's own section, ``[key]``, as its package's model; ConfigError if this config
        has none (a runtime-only config where the whole file was expected)."""
        value = getattr(self, key, None)
        if not isinstance(value, model):
            raise ConfigError(f"the config has no [{key}] section of {model.__name__}; load it "
                              "with services.pipeline.load_config (or load_settings)")
        return value

    @property
    def pipeline_jobs(self) -> tuple[JobName, ...]:
        return PIPELINE


def load_config(path: Path | str | None, model: type[ConfigT]) -> ConfigT:
    """Read and validate the config file as ``model`` (None: the built-in defaults). Relative
    paths in it are taken from the file's folder (validation context ``base``)."""
    if path is None:
        return model()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; pass --config or set "
                          "LEADFLOW_CONFIG to an existing TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return model.model_validate(raw, context={"base": path.parent})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from exc


def describe_validation_error(exc: ValidationError, where: str) -> str:
    """One line per bad key: ``file: key.path: what is wrong``."""
    lines = [f"invalid configuration in {where}:"]
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-")) or "<root>"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against the config reference in README.md)"
        elif err["loc"] and err["loc"][-1] == "[key]":  # a dict key, e.g. [jobs.<name>]
            key = key.removesuffix(".[key]")
            message = f"unknown name; {message[0].lower()}{message[1:]}"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)

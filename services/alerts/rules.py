"""The alert rules as pure functions: readings of the read models -> one condition per rule
and subject (a job, a stage, the projector), active or not. Nothing here does I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from ..runtime.config import AlertRules
from ..runtime.durations import format_duration
from ..runtime.logging import redact

#: Severity of each rule (the same labels as prometheus-rules.yml).
SEVERITY = {
    "job_failed": "warning",
    "success_rate": "warning",
    "failures_in_a_row": "critical",
    "projector_lag": "critical",
    "dead_letters": "warning",
}

#: Longest error text quoted in a notification.
MAX_ERROR = 300


@dataclass(frozen=True, slots=True)
class JobReading:
    """One job, all tenants (job_metrics '*'), plus its runs that finished within the
    success-rate window."""

    job: str
    consecutive_failures: int = 0
    completed_in_window: int = 0
    failed_in_window: int = 0
    last_error: str | None = None  # of its latest failed run


@dataclass(frozen=True, slots=True)
class Readings:
    """What the rules look at, read in one snapshot."""

    jobs: dict[str, JobReading] = field(default_factory=dict)
    projector_lag: int | None = None  # None: the projector never reported
    projector_status_age: float | None = None  # seconds since its last report
    #: Every stage that ever dead-lettered -> letters recorded within the dead-letter window.
    dead_letters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule's verdict on one subject now."""

    rule: str
    subject: str
    active: bool
    value: float | None
    summary: str

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"

    @property
    def severity(self) -> str:
        return SEVERITY[self.rule]


def evaluate(rules: AlertRules, readings: Readings) -> list[Condition]:
    """One condition per enabled rule and subject it can judge from ``readings``."""
    out: list[Condition] = []
    for name, rule in rules.items():
        if rule.enabled:
            out.extend(_EVALUATORS[name](rules, readings))
    return out


def _job_failed(rules: AlertRules, r: Readings) -> list[Condition]:
    out = []
    for job, j in sorted(r.jobs.items()):
        failing = j.consecutive_failures > 0
        text = (f"{job}: its last run failed{_error(j)}" if failing
                else f"{job}: its last finished run completed")
        out.append(Condition("job_failed", job, failing, j.consecutive_failures, text))
    return out


def _failures_in_a_row(rules: AlertRules, r: Readings) -> list[Condition]:
    threshold = rules.failures_in_a_row.threshold
    out = []
    for job, j in sorted(r.jobs.items()):
        n = j.consecutive_failures
        active = n >= threshold
        text = (f"{job}: {n} failed runs in a row (threshold {threshold}){_error(j)}" if active
                else f"{job}: {n} failed runs in a row now (threshold {threshold})")
        out.append(Condition("failures_in_a_row", job, active, n, text))
    return out


def _success_rate(rules: AlertRules, r: Readings) -> list[Condition]:
    rule = rules.success_rate
    window = format_duration(rule.window)
    out = []
    for job, j in sorted(r.jobs.items()):
        decided = j.completed_in_window + j.failed_in_window
        if decided < rule.min_runs:
            out.append(Condition("success_rate", job, False, None,
                                 f"{job}: {decided} finished run(s) in the last {window}, fewer "
                                 f"than the {rule.min_runs} the rule needs"))
            continue
        rate = round(j.completed_in_window / decided * 100, 2)
        active = rate < rule.threshold
        out.append(Condition(
            "success_rate", job, active, rate,
            f"{job}: {_num(rate)}% of runs succeeded in the last {window} "
            f"({j.completed_in_window} of {decided}; threshold {_num(rule.threshold)}%)"))
    return out


def _projector_lag(rules: AlertRules, r: Readings) -> list[Condition]:
    rule = rules.projector_lag
    if r.projector_lag is None and r.projector_status_age is None:
        return []  # never reported: a deployment still starting, nothing to judge
    max_age = rule.max_status_age.total_seconds()
    behind = r.projector_lag is not None and r.projector_lag > rule.threshold
    silent = r.projector_status_age is not None and r.projector_status_age > max_age
    age = f"{r.projector_status_age:.0f}s" if r.projector_status_age is not None else "never"
    if silent:
        text = (f"the projector has not reported for {age} (max "
                f"{format_duration(rule.max_status_age)}): the read models are not moving")
    elif behind:
        text = (f"the projector is {r.projector_lag:,} messages behind the log "
                f"(threshold {rule.threshold:,})")
    else:
        text = f"the projector is {r.projector_lag or 0:,} messages behind, reported {age} ago"
    return [Condition("projector_lag", "projector", behind or silent,
                      r.projector_lag, text)]


def _dead_letters(rules: AlertRules, r: Readings) -> list[Condition]:
    rule = rules.dead_letters
    window = format_duration(rule.window)
    out = []
    for stage, n in sorted(r.dead_letters.items()):
        active = n >= rule.threshold
        text = (f"{stage}: {n} dead letter(s) in the last {window} (threshold {rule.threshold}); "
                f"see `leadflow dlq list --stage {stage}`" if active
                else f"{stage}: {n} dead letter(s) in the last {window}")
        out.append(Condition("dead_letters", stage, active, n, text))
    return out


_EVALUATORS = {
    "job_failed": _job_failed,
    "success_rate": _success_rate,
    "failures_in_a_row": _failures_in_a_row,
    "projector_lag": _projector_lag,
    "dead_letters": _dead_letters,
}


def _error(j: JobReading) -> str:
    if not j.last_error:
        return ""
    text = " ".join(j.last_error.split())
    if len(text) > MAX_ERROR:
        text = text[:MAX_ERROR - 1] + "…"
    return f"; last error: {redact(text)}"


def _num(value: float) -> str:
    return f"{value:g}"


def windows(rules: AlertRules) -> tuple[timedelta, timedelta]:
    """(success-rate window, dead-letter window): what the readings must be counted over."""
    return rules.success_rate.window, rules.dead_letters.window

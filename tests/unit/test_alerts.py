"""Alerts, pure parts: the rules' verdicts, incidents that fire once and resolve once whatever
the number of polls, destinations, channel checks at start, message shapes, and the Prometheus
rules file agreeing with the notifier's rules and defaults."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from services.alerts import rules as rules_module
from services.alerts.channels import configured_channels, safe_url, webhook_url
from services.alerts.incidents import Decision, Incident, decide, destinations
from services.alerts.messages import FIRE, RESOLVE, Notification, message_id, webhook_body
from services.alerts.rules import SEVERITY, Condition, JobReading, Readings, evaluate
from services.pipeline.config import LeadflowConfig
from services.runtime.config import (
    AlertEmailConfig,
    AlertRules,
    AlertsConfig,
    FailuresInARowRule,
    JobFailedRule,
    ProjectorLagRule,
    RetentionConfig,
    SuccessRateRule,
    WebhookConfig,
)
from services.runtime.durations import format_duration
from services.runtime.errors import ConfigError
from tests.harness.prometheus import Selector, prometheus_rules, promql_selectors

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
DEFAULTS = AlertRules()


def job(name: str = "harvest", failures: int = 0, completed: int = 0, failed: int = 0,
        error: str | None = None) -> JobReading:
    return JobReading(job=name, consecutive_failures=failures, completed_in_window=completed,
                      failed_in_window=failed, last_error=error)


def verdicts(readings: Readings, rules: AlertRules = DEFAULTS) -> dict[str, Condition]:
    return {c.key: c for c in evaluate(rules, readings)}


# --- the rules ---------------------------------------------------------------------------


def test_every_configured_rule_has_an_evaluator_and_a_severity() -> None:
    names = set(AlertRules.model_fields)
    assert names == set(rules_module._EVALUATORS) == set(SEVERITY)


def test_failures_in_a_row_fire_at_the_threshold_and_any_failure_is_a_job_failure() -> None:
    two = verdicts(Readings(jobs={"harvest": job(failures=2, error="boom")}))
    three = verdicts(Readings(jobs={"harvest": job(failures=3, error="boom")}))
    none = verdicts(Readings(jobs={"harvest": job(failures=0)}))
    assert not two["failures_in_a_row:harvest"].active
    assert three["failures_in_a_row:harvest"].active
    assert three["failures_in_a_row:harvest"].value == 3
    assert "3 failed runs in a row (threshold 3)" in three["failures_in_a_row:harvest"].summary
    assert two["job_failed:harvest"].active and three["job_failed:harvest"].active
    assert not none["job_failed:harvest"].active and not none["failures_in_a_row:harvest"].active


def test_a_quoted_error_is_one_short_line_without_email_addresses() -> None:
    error = "cannot read jane.doe@acme.com\n" + "x" * 1000
    summary = verdicts(Readings(jobs={"harvest": job(failures=1, error=error)}))[
        "job_failed:harvest"].summary
    assert "jane.doe@acme.com" not in summary and "j***@acme.com" in summary
    assert "\n" not in summary and len(summary) < rules_module.MAX_ERROR + 100


@pytest.mark.parametrize(("completed", "failed", "active", "value"), [
    (0, 2, False, None),        # two runs: fewer than min_runs, not judged
    (1, 2, True, 33.33),
    (2, 1, True, 66.67),        # below 70%
    (7, 3, False, 70.0),        # exactly the threshold is not below it
    (10, 0, False, 100.0),
])
def test_success_rate_is_judged_over_the_window_from_min_runs_on(
        completed: int, failed: int, active: bool, value: float | None) -> None:
    c = verdicts(Readings(jobs={"score": job("score", completed=completed, failed=failed)}))[
        "success_rate:score"]
    assert (c.active, c.value) == (active, value)


def test_the_projector_is_judged_by_lag_and_by_silence_and_not_before_it_reported() -> None:
    assert "projector_lag:projector" not in verdicts(Readings())
    fine = verdicts(Readings(projector_lag=10_000, projector_status_age=3))["projector_lag:projector"]
    behind = verdicts(Readings(projector_lag=10_001, projector_status_age=3))["projector_lag:projector"]
    silent = verdicts(Readings(projector_lag=0, projector_status_age=61))["projector_lag:projector"]
    assert not fine.active
    assert behind.active and "10,001 messages behind" in behind.summary
    assert silent.active and "not reported for 61s" in silent.summary


def test_dead_letters_are_judged_per_stage_and_a_quiet_stage_is_clear() -> None:
    found = verdicts(Readings(dead_letters={"score": 2, "harvest": 0}))
    assert found["dead_letters:score"].active and found["dead_letters:score"].value == 2
    assert not found["dead_letters:harvest"].active


def test_a_disabled_rule_judges_nothing() -> None:
    rules = AlertRules(failures_in_a_row=FailuresInARowRule(enabled=False))
    keys = verdicts(Readings(jobs={"harvest": job(failures=5)}), rules)
    assert "failures_in_a_row:harvest" not in keys and "job_failed:harvest" in keys


# --- incidents: once per incident, never per poll ------------------------------------------


@dataclass
class Notifier:
    """decide() plus what the store keeps: the open incidents, and every message sent."""

    rules: AlertRules = DEFAULTS
    open: dict[str, Incident] = field(default_factory=dict)
    sent: list[tuple[str, str]] = field(default_factory=list)  # (kind, key)
    quiet: list[str] = field(default_factory=list)  # closed without a message

    def poll(self, at: datetime, *conditions: Condition) -> Decision:
        decision = decide(self.open.values(), conditions, self.rules, at)
        for incident in decision.opened:
            self.open[incident.key] = incident
        for incident in decision.fired:
            self.open[incident.key] = incident
            self.sent.append((FIRE, incident.key))
        for r in decision.resolved:
            del self.open[r.incident.key]
            (self.sent.append((RESOLVE, r.incident.key)) if r.notify
             else self.quiet.append(r.incident.key))
        for incident in decision.dropped:
            del self.open[incident.key]
        return decision


def cond(active: bool, rule: str = "failures_in_a_row", subject: str = "harvest",
         value: float = 3) -> Condition:
    return Condition(rule, subject, active, value, f"{subject} {'bad' if active else 'fine'}")


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def test_an_incident_fires_once_however_many_polls_see_it_and_resolves_once() -> None:
    n = Notifier()
    for i in range(3):
        n.poll(minutes(i), cond(False))
    for i in range(3, 50):
        n.poll(minutes(i), cond(True, value=i))
    for i in range(50, 80):
        n.poll(minutes(i), cond(False))
    assert n.sent == [(FIRE, "failures_in_a_row:harvest"), (RESOLVE, "failures_in_a_row:harvest")]
    assert n.open == {}


def test_each_return_of_the_condition_is_a_new_incident() -> None:
    n = Notifier()
    ids = []
    for i, active in enumerate([True, True, False, False, True, False, True]):
        decision = n.poll(minutes(i), cond(active))
        ids += [inc.incident_id for inc in decision.fired]
    assert [k for k, _ in n.sent] == [FIRE, RESOLVE, FIRE, RESOLVE, FIRE]
    assert len(set(ids)) == 3


def test_a_restarted_notifier_continues_the_open_incidents_instead_of_firing_again() -> None:
    first = Notifier()
    first.poll(minutes(0), cond(True))
    persisted = list(first.open.values())  # what alert_incidents holds
    second = Notifier(open={i.key: i for i in persisted})
    for i in range(1, 10):
        second.poll(minutes(i), cond(True))
    second.poll(minutes(10), cond(False))
    assert first.sent == [(FIRE, "failures_in_a_row:harvest")]
    assert second.sent == [(RESOLVE, "failures_in_a_row:harvest")]


def test_sustained_holds_the_fire_back_and_a_blip_is_never_told() -> None:
    rules = AlertRules(projector_lag=ProjectorLagRule(sustained=timedelta(minutes=5)))
    n = Notifier(rules=rules)
    lag = "projector_lag"
    n.poll(minutes(0), cond(True, lag, "projector"))
    n.poll(minutes(3), cond(False, lag, "projector"))  # cleared within 5 minutes: dropped
    assert n.sent == [] and n.open == {}
    for i in range(10, 15):
        n.poll(minutes(i), cond(True, lag, "projector"))
    assert n.sent == []  # 4 minutes so far
    n.poll(minutes(15), cond(True, lag, "projector"))
    n.poll(minutes(16), cond(True, lag, "projector"))
    assert n.sent == [(FIRE, "projector_lag:projector")]
    assert n.open["projector_lag:projector"].since == minutes(10)


def test_subjects_are_independent() -> None:
    n = Notifier()
    n.poll(minutes(0), cond(True, subject="harvest"), cond(False, subject="score"))
    n.poll(minutes(1), cond(True, subject="harvest"), cond(True, subject="score"))
    n.poll(minutes(2), cond(False, subject="harvest"), cond(True, subject="score"))
    assert n.sent == [(FIRE, "failures_in_a_row:harvest"), (FIRE, "failures_in_a_row:score"),
                      (RESOLVE, "failures_in_a_row:harvest")]


def test_an_unjudged_subject_stays_open_and_a_rule_turned_off_closes_quietly() -> None:
    n = Notifier()
    n.poll(minutes(0), cond(True))
    n.poll(minutes(1))  # no reading of harvest this time (unknown is not recovered)
    assert "failures_in_a_row:harvest" in n.open and n.sent == [(FIRE, "failures_in_a_row:harvest")]
    n.rules = AlertRules(failures_in_a_row=FailuresInARowRule(enabled=False))
    n.poll(minutes(2))
    assert n.open == {} and n.quiet == ["failures_in_a_row:harvest"]
    assert n.sent == [(FIRE, "failures_in_a_row:harvest")]


def test_a_fired_incident_keeps_the_words_it_fired_with() -> None:
    n = Notifier()
    n.poll(minutes(0), replace(cond(True), summary="3 in a row"))
    n.poll(minutes(1), replace(cond(True), summary="4 in a row"))
    assert n.open["failures_in_a_row:harvest"].summary == "3 in a row"


# --- destinations and channels -------------------------------------------------------------


def test_destinations_follow_the_rule_and_what_is_configured() -> None:
    to = ("ops@example.com", "oncall@example.com")
    assert destinations(None, webhook=True, email_to=to) == [
        "webhook", "email:ops@example.com", "email:oncall@example.com"]
    assert destinations(None, webhook=False, email_to=()) == []
    assert destinations((), webhook=True, email_to=to) == []
    assert destinations(("email",), webhook=True, email_to=to[:1]) == ["email:ops@example.com"]


def test_a_rule_naming_an_unconfigured_channel_stops_the_service_at_start() -> None:
    config = AlertsConfig(rules=AlertRules(job_failed=JobFailedRule(channels=("webhook",))))
    with pytest.raises(ConfigError, match=r"\['job_failed'\].*LEADFLOW_ALERTS_WEBHOOK_URL"):
        configured_channels(config, env={})
    assert configured_channels(config, env={"LEADFLOW_ALERTS_WEBHOOK_URL": "https://h.test/x"}).webhook
    with pytest.raises(ValueError, match=r"alerts\.email\.to is empty"):
        AlertsConfig(rules=AlertRules(job_failed=JobFailedRule(channels=("email",))))
    with pytest.raises(ValueError, match="invalid domain"):
        AlertEmailConfig(to=("ops@",))


def test_the_environment_wins_over_the_file_for_the_webhook_url() -> None:
    config = WebhookConfig(url="https://file.test/hook")
    assert webhook_url(config, env={}) == "https://file.test/hook"
    assert webhook_url(config, env={config.url_env: "https://env.test/hook"}) == "https://env.test/hook"
    assert webhook_url(WebhookConfig(), env={}) is None
    with pytest.raises(ConfigError, match="https://"):
        webhook_url(config, env={config.url_env: "hooks.slack.com/T/B/x"})


def test_the_success_rate_window_must_be_within_what_retention_keeps() -> None:
    rules = AlertRules(success_rate=SuccessRateRule(window=timedelta(days=40)))
    with pytest.raises(ValueError, match=r"retention\.max_age"):
        LeadflowConfig(alerts=AlertsConfig(rules=rules))
    LeadflowConfig(alerts=AlertsConfig(rules=rules), retention=RetentionConfig(max_age=timedelta(days=40)))


def test_a_webhook_url_is_logged_as_its_host_only() -> None:
    where = safe_url("https://hooks.slack.com:8443/services/T000/B000/s3cr3tT0ken?x=1")
    assert where == "https://hooks.slack.com:8443/…"


# --- messages ----------------------------------------------------------------------------


def notification(kind: str = FIRE) -> Notification:
    return Notification(kind=kind, incident_id=str(uuid.UUID(int=7)), rule="failures_in_a_row",
                        subject="harvest", severity="critical",
                        summary="harvest: 3 failed runs in a row; last error: jane@acme.com",
                        since=T0, fired_at=T0,
                        resolved_at=T0 + timedelta(minutes=42) if kind == RESOLVE else None)


def test_the_webhook_payload_is_slack_compatible_text_without_personal_data() -> None:
    body = json.loads(webhook_body(notification()))
    assert list(body) == ["text"]
    assert body["text"].startswith("[leadflow] FIRING failures_in_a_row harvest (critical)\n")
    assert "jane@acme.com" not in body["text"] and "j***@acme.com" in body["text"]
    resolved = json.loads(webhook_body(notification(RESOLVE)))["text"]
    assert resolved.startswith("[leadflow] RESOLVED") and "after 42m" in resolved


def test_message_ids_differ_per_kind_and_repeat_per_incident() -> None:
    fire, resolve = notification(FIRE), notification(RESOLVE)
    assert message_id(fire, "a@ops.test") == message_id(fire, "a@ops.test")
    assert message_id(fire, "a@ops.test") != message_id(resolve, "a@ops.test")
    assert message_id(fire, "a@ops.test").endswith("@ops.test>")


# --- the Prometheus rules file -------------------------------------------------------------

def test_the_selector_parser_reads_what_the_rules_file_writes() -> None:
    selectors, grouping = promql_selectors(
        'max by (job) (increase(leadflow_runs_total{status=~"completed|failed"}[1d])) >= 3 '
        "and leadflow_dead_letters - leadflow_dead_letters offset 15m")
    assert selectors == [Selector("leadflow_runs_total", (("status", "=~", "completed|failed"),)),
                         Selector("leadflow_dead_letters", ()), Selector("leadflow_dead_letters", ())]
    assert grouping == {"job"}


def test_the_prometheus_rules_are_the_notifiers_rules_with_its_defaults() -> None:
    alerts = {rule["labels"]["leadflow_rule"]: rule for rule in prometheus_rules()}
    assert set(alerts) == set(AlertRules.model_fields)
    d = DEFAULTS
    expected_fragments = {
        "job_failed": ["leadflow_job_consecutive_failures > 0"],
        "success_rate": [f"* 100 < {d.success_rate.threshold:g}",
                         f"[{format_duration(d.success_rate.window)}]",
                         f">= {d.success_rate.min_runs}"],
        "failures_in_a_row": [f"leadflow_job_consecutive_failures >= {d.failures_in_a_row.threshold}"],
        "projector_lag": [f"leadflow_projector_lag_messages > {d.projector_lag.threshold}",
                          "leadflow_projector_status_age_seconds > "
                          f"{d.projector_lag.max_status_age.total_seconds():g}"],
        "dead_letters": [f"offset {format_duration(d.dead_letters.window)} >= "
                         f"{d.dead_letters.threshold}"],
    }
    for name, rule in alerts.items():
        expr = " ".join(rule["expr"].split())
        for fragment in expected_fragments[name]:
            assert fragment in expr, (name, fragment, expr)
        assert rule["labels"]["severity"] == SEVERITY[name], name
        sustained = getattr(d, name).sustained
        assert rule.get("for") == (format_duration(sustained) if sustained else None), name
        assert rule["alert"].startswith("Leadflow") and rule["annotations"]["summary"], name
        selectors, _ = promql_selectors(rule["expr"])
        assert selectors and all(s.metric.startswith("leadflow_") for s in selectors), name

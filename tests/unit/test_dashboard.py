"""Dashboard logic without servers: funnel, cursors, validation messages, metrics text, probes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from services.dashboard.app import describe_errors
from services.dashboard.health import projector_check
from services.dashboard.metrics import render
from services.dashboard.models import SuppressionRequest, TickRequest
from services.dashboard.resources import resolve_token
from services.dashboard.server import ListenEnv, dashboard_url, listen_config
from services.pipeline.config import LeadflowConfig
from services.pipeline.settings import Settings
from services.projector.queries import DurationHistogram, MetricsSnapshot, RunCursor, funnel_stages
from services.projector.rows import MetricsRow
from services.runtime.config import DashboardConfig

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def counts(**by_status: int) -> dict[str, int]:
    base = dict.fromkeys(("NEW", "SCORED", "QUALIFIED", "ROUTED", "CONTACTED", "REJECTED"), 0)
    base.update(by_status)
    return base


def test_funnel_counts_a_lead_at_every_stage_it_passed() -> None:
    stages = funnel_stages(counts(NEW=10, SCORED=5, QUALIFIED=5, ROUTED=10, CONTACTED=50, REJECTED=20))
    reached = {s["status"]: s["reached"] for s in stages}
    # Rejected leads were scored first; they stop before QUALIFIED.
    assert reached == {"NEW": 100, "SCORED": 90, "QUALIFIED": 65, "ROUTED": 60, "CONTACTED": 50}
    by = {s["status"]: s for s in stages}
    assert by["SCORED"]["conversion_pct"] == 90.0
    assert by["QUALIFIED"]["conversion_pct"] == round(65 / 90 * 100, 2)
    assert by["CONTACTED"]["overall_pct"] == 50.0
    assert by["NEW"]["current"] == 10


def test_funnel_of_an_empty_pipeline_has_no_percentages() -> None:
    stages = funnel_stages(counts())
    assert [s["reached"] for s in stages] == [0, 0, 0, 0, 0]
    assert all(s["conversion_pct"] is None and s["overall_pct"] is None for s in stages)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-20T09:00:00+00:00", RunCursor(NOW)),
    ("2026-11-20T09:00:00 00:00", RunCursor(NOW)),  # '+' decoded as a space in a query string
    ("2026-11-20 09:00:00+00:00", RunCursor(NOW)),
    ("2026-11-20T10:00:00 01:00", RunCursor(NOW)),
    (f"{NOW.isoformat()}~{UUID(int=7)}", RunCursor(NOW, UUID(int=7))),
])
def test_run_cursor_parses_times_and_its_own_encoding(text: str, expected: RunCursor) -> None:
    assert RunCursor.parse(text) == expected
    assert RunCursor.parse(expected.encode()) == expected


@pytest.mark.parametrize(("text", "hint"), [
    ("yesterday", "ISO 8601"),
    ("2026-11-20T09:00:00", "UTC offset"),
    ("2026-11-20T09:00:00+00:00~not-a-uuid", "ISO 8601"),
])
def test_run_cursor_rejects_bad_values_with_an_example(text: str, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        RunCursor.parse(text)


def test_suppression_needs_exactly_one_valid_target() -> None:
    assert SuppressionRequest(email=" Jane@Example.COM ").email == "jane@example.com"
    assert SuppressionRequest(domain="@Example.com").domain == "example.com"
    for bad, message in [({}, "exactly one"), ({"email": "a@b.co", "domain": "b.co"}, "exactly one"),
                         ({"email": "not-an-email"}, "exactly one @"),
                         ({"domain": "no spaces.com"}, "not a domain name")]:
        with pytest.raises(ValidationError, match=message):
            SuppressionRequest(**bad)


def test_validation_errors_read_as_one_sentence_per_problem() -> None:
    with pytest.raises(ValidationError) as info:
        TickRequest.model_validate({"job": "nope", "max_leads": 0})
    errors = [{"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
              for e in info.value.errors()]
    text = describe_errors(errors)
    assert "body.job: Input should be 'harvest'" in text
    assert "body.max_leads: Input should be greater than or equal to 1" in text
    assert describe_errors([{"loc": ("body",), "msg": "Field required", "type": "missing"}]) == \
        "body: a JSON body is required"


def test_metrics_text_parses_and_carries_the_read_model_numbers() -> None:
    snapshot = MetricsSnapshot(
        job_metrics={"score": MetricsRow(job="score", tenant_id="*", total_runs=4, successful_runs=3,
                                         failed_runs=1, total_leads_processed=120,
                                         total_leads_succeeded=118, total_leads_failed=2,
                                         consecutive_failures=1)},
        running={"score": 1},
        durations={"score": DurationHistogram(buckets={0.1: 1, 1.0: 3, 5.0: 4}, count=4, total=6.5)},
        leads_by_status=counts(NEW=3, CONTACTED=7),
        dead_letters_by_stage={"harvest": 2},
        last_clock_tick={"score": NOW - timedelta(seconds=90)},
        projector={"lag": 12, "events_applied": 900, "age_seconds": 1.5, "updated_at": NOW.isoformat()},
    )
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(render(snapshot, NOW).decode())
               for s in family.samples}
    assert samples[("leadflow_runs_total", (("job", "score"), ("status", "completed")))] == 3
    assert samples[("leadflow_runs_total", (("job", "score"), ("status", "failed")))] == 1
    assert samples[("leadflow_runs_total", (("job", "harvest"), ("status", "completed")))] == 0
    assert samples[("leadflow_runs_running", (("job", "score"),))] == 1
    assert samples[("leadflow_leads_processed_total", (("stage", "score"),))] == 120
    assert samples[("leadflow_leads_failed_total", (("stage", "score"),))] == 2
    assert samples[("leadflow_run_duration_seconds_bucket", (("job", "score"), ("le", "1.0")))] == 3
    assert samples[("leadflow_run_duration_seconds_bucket", (("job", "score"), ("le", "+Inf")))] == 4
    assert samples[("leadflow_run_duration_seconds_sum", (("job", "score"),))] == 6.5
    assert samples[("leadflow_leads", (("status", "CONTACTED"),))] == 7
    assert samples[("leadflow_dead_letters", (("stage", "harvest"),))] == 2
    assert samples[("leadflow_projector_lag_messages", ())] == 12
    assert samples[("leadflow_clock_last_tick_age_seconds", (("job", "score"),))] == 90
    assert samples[("leadflow_job_health", (("job", "score"),))] == 1  # degraded


@pytest.mark.parametrize(("status", "ok", "words"), [
    ({"lag": 0, "age_seconds": 2.0}, True, "lag 0"),
    ({"lag": 500, "age_seconds": 2.0}, False, "exceeds 100"),
    ({"lag": 0, "age_seconds": 300.0}, False, "last reported 300s ago"),
    ({"lag": None, "age_seconds": None}, False, "has not reported"),
    ({"lag": None, "age_seconds": 1.0}, False, "not measured"),
])
def test_readiness_of_the_projector(status: dict[str, object], ok: bool, words: str) -> None:
    check = projector_check(status, max_lag=100, max_age=60)
    assert check.ok is ok
    assert words in check.detail


def test_token_from_the_environment_wins_and_blank_means_none() -> None:
    config = LeadflowConfig(dashboard=DashboardConfig(token="from-config"))
    assert resolve_token(Settings(dashboard_token=None).using(config)) == "from-config"
    assert resolve_token(Settings(dashboard_token="from-env").using(config)) == "from-env"
    blank = LeadflowConfig(dashboard=DashboardConfig(token="  "))
    assert resolve_token(Settings(dashboard_token=None).using(blank)) is None


def test_dashboard_url_points_a_browser_at_a_local_address() -> None:
    settings = Settings().using(LeadflowConfig(dashboard=DashboardConfig(host="0.0.0.0", port=8123)))
    assert dashboard_url(settings, ListenEnv()) == "http://127.0.0.1:8123/"
    assert dashboard_url(settings, ListenEnv(port=9000)) == "http://127.0.0.1:9000/"
    assert listen_config(settings, ListenEnv(host="::1")).host == "::1"
    assert dashboard_url(settings, ListenEnv(host="::1")) == "http://[::1]:8123/"

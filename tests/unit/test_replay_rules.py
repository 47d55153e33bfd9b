"""Replay rules: which leads a replay re-decides, from which snapshot, and what counts as a change;
the transitions a replay needs are legal and keep versions growing by one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from events import (
    Assignment,
    IllegalTransition,
    JobName,
    LeadQualified,
    LeadRejected,
    LeadRouted,
    LeadScored,
    LeadStatus,
    Qualification,
    ScoreCard,
    apply,
    transition,
)
from services.cli.main import app
from services.clock.manual import manual_tick
from services.pipeline.config import LeadflowConfig
from services.replay.current import lead_from_row
from services.replay.errors import ReplayError
from services.replay.rules import (
    RULES,
    Verdict,
    changed,
    in_flight,
    preview,
    reentry,
    rules_for,
    verdict,
)
from services.replay.spec import ReplaySpec, parse_time
from services.runtime.drain import Inbound
from services.runtime.runs import RunContext
from services.score.config import ScoreConfig
from services.score.stage import ScoreLogic
from tests.factories import NOW, created_event, lead_factory

S = LeadStatus
CARD = ScoreCard(value=40, factors={"industry": 40}, model_version="v1")
ROUTE = Assignment(segment="smb", sequence_id="standard", owner="finn")


def at_status(status: LeadStatus, version: int = 3):
    """A lead snapshot in ``status`` with the fields that status carries."""
    fields: dict[str, object] = {"status": status, "version": version}
    if status is not S.NEW:
        fields["score"] = CARD
    if status in (S.QUALIFIED, S.ROUTED, S.CONTACTED):
        fields["qualification"] = Qualification(qualified=True)
    if status is S.REJECTED:
        fields["qualification"] = Qualification(qualified=False, reasons=("score_below_minimum",))
    if status in (S.ROUTED, S.CONTACTED):
        fields["route"] = ROUTE
    return lead_factory(email="rules@acme.com", **fields)


@pytest.mark.parametrize(("stage", "status", "expected"), [
    (JobName.SCORE, S.NEW, Verdict.REPLAY),
    (JobName.SCORE, S.SCORED, Verdict.REPLAY),
    (JobName.SCORE, S.QUALIFIED, Verdict.REPLAY),
    (JobName.SCORE, S.REJECTED, Verdict.REPLAY),
    (JobName.SCORE, S.ROUTED, Verdict.KEPT),
    (JobName.SCORE, S.CONTACTED, Verdict.KEPT),
    (JobName.QUALIFY, S.SCORED, Verdict.REPLAY),
    (JobName.QUALIFY, S.REJECTED, Verdict.REPLAY),
    (JobName.QUALIFY, S.QUALIFIED, Verdict.REPLAY),
    (JobName.QUALIFY, S.ROUTED, Verdict.KEPT),
    (JobName.QUALIFY, S.NEW, Verdict.KEPT),
    (JobName.ROUTE, S.QUALIFIED, Verdict.REPLAY),
    (JobName.ROUTE, S.ROUTED, Verdict.KEPT),
    (JobName.ROUTE, S.CONTACTED, Verdict.KEPT),
    (JobName.ROUTE, S.REJECTED, Verdict.KEPT),
])
def test_routed_and_contacted_leads_are_kept_everything_before_them_is_redecided(
        stage: JobName, status: LeadStatus, expected: Verdict) -> None:
    assert verdict(RULES[stage], at_status(status), waiting=False, decided=False) is expected


def test_missing_done_and_in_flight_take_precedence_in_that_order() -> None:
    rules = RULES[JobName.SCORE]
    assert verdict(rules, None, waiting=True, decided=True) is Verdict.MISSING
    assert verdict(rules, at_status(S.SCORED), waiting=True, decided=True) is Verdict.DONE
    assert verdict(rules, at_status(S.SCORED), waiting=True, decided=False) is Verdict.IN_FLIGHT
    # a kept lead stays kept even while its event waits (nothing would be published anyway)
    assert verdict(rules, at_status(S.ROUTED), waiting=True, decided=False) is Verdict.KEPT


@pytest.mark.parametrize(("last_offset", "committed", "expected"), [
    (10, None, True),    # the stage's group never committed this partition
    (10, 10, True),      # committed position 10 = offset 10 not consumed yet
    (10, 11, False),
    (10, 500, False),
    (None, None, False),  # the event was pruned by retention: long settled
])
def test_an_event_is_in_flight_until_its_stage_has_committed_past_it(
        last_offset: int | None, committed: int | None, expected: bool) -> None:
    assert in_flight(last_offset, committed) is expected


def test_contact_and_stages_without_input_refuse_with_what_to_do_instead() -> None:
    with pytest.raises(ReplayError, match=r"never repeated.*Replay score, qualify or route"):
        rules_for(JobName.CONTACT)
    with pytest.raises(ReplayError, match="replayable stages are score, qualify, route"):
        rules_for(JobName.HARVEST)


@pytest.mark.parametrize("status", [S.NEW, S.SCORED, S.QUALIFIED, S.REJECTED])
def test_rescoring_moves_from_the_current_snapshot_and_reenters_qualification(
        status: LeadStatus) -> None:
    """A replayed LeadCreated carries today's snapshot: the new LeadScored is version + 1 of it."""
    current = at_status(status, version=4)
    created = created_event(lead_factory(email="rules@acme.com"))
    start = reentry(JobName.SCORE, current)
    logic = ScoreLogic(ScoreConfig(model_version="v2"))
    tick = manual_tick(JobName.SCORE, requested_by="test", at=NOW)
    ctx = RunContext(run_id=tick.tick_id, tick=tick, job=JobName.SCORE, instance_id="t",
                     replay_id="r-1")
    item = Inbound(record=None, event=created.model_copy(update={"lead": start}))  # type: ignore[arg-type]
    [scored] = logic.decide(item, ctx)
    assert isinstance(scored, LeadScored)
    assert (scored.lead.version, scored.lead.status) == (5, S.SCORED)
    assert scored.lead.qualification is None  # the old verdict no longer holds
    assert scored.lead.score is not None and scored.lead.score.model_version == "v2"
    assert scored.replay_id == "r-1" and scored.causation_id == created.event_id
    assert apply(current, scored).version == 5


def test_requalifying_may_move_either_verdict_to_either_verdict_once_per_version() -> None:
    rejected = at_status(S.REJECTED, version=3)
    cause = created_event(rejected)
    qualified = transition(LeadQualified, cause, at=NOW, correlation_id=None, replay_id="r",
                           qualification=Qualification(qualified=True))
    assert apply(rejected, qualified).status is S.QUALIFIED
    again = transition(LeadRejected, cause.model_copy(update={"lead": qualified.lead}), at=NOW,
                       correlation_id=None, replay_id="r", reasons=("x",),
                       qualification=Qualification(qualified=False, reasons=("x",)))
    assert apply(qualified.lead, again).version == 5


def test_a_routed_lead_cannot_be_rescored_or_requalified() -> None:
    routed = at_status(S.ROUTED)
    cause = created_event(routed)
    with pytest.raises(IllegalTransition):
        transition(LeadScored, cause, at=NOW, correlation_id=None, score=CARD)
    with pytest.raises(IllegalTransition):
        transition(LeadQualified, cause, at=NOW, correlation_id=None,
                   qualification=Qualification(qualified=True))
    assert LeadRouted.model_fields["type"].default  # routing stays QUALIFIED -> ROUTED only


def test_a_change_is_a_different_decision_of_the_stage_not_a_different_snapshot() -> None:
    lead = at_status(S.SCORED)
    same = lead.evolve(version=9, updated_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert not changed(JobName.SCORE, lead, same)
    assert changed(JobName.SCORE, lead, lead.evolve(score=CARD.model_copy(update={"model_version": "v2"})))
    assert not changed(JobName.QUALIFY, at_status(S.QUALIFIED), at_status(S.QUALIFIED))
    assert changed(JobName.QUALIFY, at_status(S.SCORED), at_status(S.QUALIFIED))
    assert changed(JobName.ROUTE, at_status(S.QUALIFIED), at_status(S.ROUTED))


def test_preview_is_todays_decision_without_io() -> None:
    config = LeadflowConfig()
    lead = reentry(JobName.SCORE, at_status(S.REJECTED))
    assert preview(JobName.SCORE, lead, config).score.model_version == "icp-v1"
    assert preview(JobName.ROUTE, at_status(S.QUALIFIED), config).route is not None


def test_a_read_model_row_gives_back_the_snapshot_it_was_written_from() -> None:
    from services.projector.store import LEAD_COLUMNS, lead_row

    lead = at_status(S.REJECTED, version=3)
    event = transition(LeadRejected, created_event(lead.evolve(status=S.SCORED, version=2,
                                                               qualification=None)),
                       at=NOW, correlation_id=None, reasons=("score_below_minimum",),
                       qualification=lead.qualification)
    row = dict(zip(LEAD_COLUMNS, lead_row(event), strict=True))
    assert lead_from_row(row, source=event.lead.source) == event.lead


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T08:30:00", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
    ("2026-11-01T08:30:00+01:00", datetime(2026, 11, 1, 7, 30, tzinfo=UTC)),
    ("30d", datetime(2026, 10, 21, 9, 0, tzinfo=UTC)),
    ("12h", datetime(2026, 11, 19, 21, 0, tzinfo=UTC)),
    ("45m", datetime(2026, 11, 20, 8, 15, tzinfo=UTC)),
])
def test_times_are_iso_or_a_duration_ago(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


def test_a_bad_time_or_range_says_what_is_accepted() -> None:
    with pytest.raises(ReplayError, match="ISO 8601"):
        parse_time("last tuesday", now=NOW)
    with pytest.raises(ReplayError, match=r"--to .* must be later"):
        ReplaySpec(JobName.SCORE, from_at=NOW, to_at=NOW)
    with pytest.raises(ReplayError, match="--from is required"):
        ReplaySpec(JobName.SCORE, from_at=None)
    assert ReplaySpec(JobName.SCORE, from_at=None, replay_id="score-x").replay_id == "score-x"


def test_the_cli_refuses_to_replay_contact_and_says_what_to_do_instead() -> None:
    result = CliRunner().invoke(app, ["replay", "contact", "--from", "30d"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1
    assert said.startswith("error: contact cannot be replayed")
    assert "never repeated" in said and "Replay score, qualify or route" in said

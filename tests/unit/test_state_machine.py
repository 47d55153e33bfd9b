"""The lead state machine: legal transitions only, versions +1, typed errors, deterministic ids."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    IllegalTransition,
    LeadContacted,
    LeadEvent,
    LeadQualified,
    LeadRejected,
    LeadRouted,
    LeadScored,
    LeadStatus,
    Topic,
    apply,
    decode,
    encode,
    transition,
)
from events.state_machine import ALLOWED_FROM, implausibility
from tests.factories import CARD, NOW, created_event, happy_path, step


def test_the_happy_path_folds_to_contacted_step_two_with_version_six() -> None:
    state = None
    for event in happy_path():
        state = apply(state, event)
    assert state is not None
    assert (state.status, state.version, state.outreach.step) == (LeadStatus.CONTACTED, 6, 2)


def test_an_illegal_transition_names_the_lead_its_status_and_the_event() -> None:
    created = created_event()
    with pytest.raises(IllegalTransition) as info:
        step(LeadRouted, created)
    err = info.value
    assert (err.lead_id, err.status, err.attempted) == (created.lead.lead_id, LeadStatus.NEW,
                                                       "lead.routed")
    assert str(created.lead.lead_id) in str(err) and "NEW" in str(err)


def test_apply_rejects_a_skipped_version_and_a_step_out_of_order() -> None:
    events = happy_path()
    state = apply(apply(None, events[0]), events[1])
    with pytest.raises(IllegalTransition, match="version"):
        apply(state, events[1].model_copy(update={"lead": events[1].lead.evolve(version=5)}))
    contacted = apply(apply(apply(state, events[2]), events[3]), events[4])
    second = events[5]
    skipped = second.model_copy(update={"step": 3, "lead": second.lead.evolve(
        outreach=second.lead.outreach.model_copy(update={"step": 3}))})
    with pytest.raises(IllegalTransition, match="step 3 does not follow step 1"):
        apply(contacted, skipped)


def test_ids_are_deterministic_so_redelivery_yields_the_same_event() -> None:
    created = created_event()
    first, again = step(LeadScored, created), step(LeadScored, created)
    assert first.event_id == again.event_id
    replayed = transition(LeadScored, created, at=NOW, correlation_id=None, replay_id="r1",
                          score=CARD)
    assert replayed.event_id != first.event_id


def test_events_are_immutable_and_survive_the_codec() -> None:
    event = happy_path()[-1]
    with pytest.raises(Exception, match="frozen"):
        event.step = 9  # type: ignore[misc]
    assert decode(encode(event)) == event


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([LeadScored, LeadQualified, LeadRejected, LeadRouted,
                                 LeadContacted]), max_size=12))
def test_no_sequence_of_events_drives_a_lead_into_an_illegal_state(
        sequence: list[type[LeadEvent]]) -> None:
    cause: LeadEvent = created_event()
    state = apply(None, cause)
    for cls in sequence:
        try:
            event = step(cls, cause)
        except IllegalTransition:
            assert state.status not in ALLOWED_FROM[cls.model_fields["type"].default]
            continue
        previous = state
        state = apply(state, event)
        cause = event
        assert previous.status in ALLOWED_FROM[event.type]
        assert state.version == previous.version + 1
        # every status carries what it means
        assert state.status is not LeadStatus.SCORED or state.score is not None
        assert state.status is not LeadStatus.ROUTED or state.route is not None
        assert state.status is not LeadStatus.CONTACTED or state.outreach is not None
        assert state.status is not LeadStatus.REJECTED or not state.qualification.qualified


@settings(max_examples=200, deadline=None)
@given(st.permutations(range(6)))
def test_events_applied_out_of_order_are_refused_not_folded(order: list[int]) -> None:
    events = happy_path()
    state = None
    applied = 0
    for index in order:
        try:
            state = apply(state, events[index])
            applied += 1
        except IllegalTransition:
            pass
    # Whatever arrives early is refused; the state is always a prefix of the real history.
    if state is not None:
        assert state == events[state.version - 1].lead
    assert applied <= 6


# --- judged from the event itself (what the projector folds) ---------------------------------


def test_every_event_the_pipeline_writes_is_plausible_on_its_own_topic() -> None:
    for event in happy_path():
        assert implausibility(event, event.topic) is None, event.type
    rejected = step(LeadRejected, step(LeadScored, created_event()))
    assert implausibility(rejected, Topic.LEADS_REJECTED) is None


def forged(event: LeadEvent, **lead: object) -> LeadEvent:
    return event.model_copy(update={"lead": event.lead.model_copy(update=lead)})


@pytest.mark.parametrize(("make", "topic", "problem"), [
    # a type on another type's topic
    (lambda e: e[1], Topic.LEADS_CONTACTED, "lead.scored does not belong on leads.contacted"),
    # status against version: CONTACTED needs NEW, SCORED, QUALIFIED, ROUTED before it
    (lambda e: forged(e[4], version=2), Topic.LEADS_CONTACTED, "version 2"),
    (lambda e: forged(e[0], version=3), Topic.LEADS_NEW, "version 3"),
    (lambda e: forged(e[3], version=3), Topic.LEADS_ROUTED, "version 3"),
    # a second step cannot sit at the version of a first one
    (lambda e: forged(e[5], version=5), Topic.LEADS_CONTACTED, "step 2 at version 5"),
    # the snapshot's status is not the event's
    (lambda e: forged(e[1], status=LeadStatus.CONTACTED), Topic.LEADS_SCORED, "snapshot status"),
    # the fields a status requires
    (lambda e: forged(e[3], route=None), Topic.LEADS_ROUTED, "lacks the fields"),
    (lambda e: e[4].model_copy(update={"step": 2}), Topic.LEADS_CONTACTED, "step 2"),
])
def test_an_event_that_cannot_be_a_step_of_the_state_machine_says_why(
        make: object, topic: Topic, problem: str) -> None:
    event = make(happy_path())  # type: ignore[operator]
    found = implausibility(event, topic)
    assert found is not None and problem in found

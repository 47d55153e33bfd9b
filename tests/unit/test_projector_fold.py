"""Which event ids the projector must look up before folding a batch (pure)."""

from __future__ import annotations

from events import DeadLettered, utcnow
from services.projector.fold import Loaded, Positioned, event_ids_to_check, fold
from tests.factories import happy_path


def positioned(events: list) -> list[Positioned]:  # type: ignore[type-arg]
    return [Positioned("t", 0, i, e) for i, e in enumerate(events)]


def test_only_events_at_or_below_the_stored_version_can_already_be_folded() -> None:
    """The leads row holds the highest version folded, in the same transaction as its events:
    an event above it was never folded, so its id needs no lookup."""
    created, scored, qualified, *_ = happy_path()
    lead = created.lead.lead_id
    batch = positioned([created, scored, qualified])
    assert event_ids_to_check(batch, {}) == set()  # a lead the table does not hold
    assert event_ids_to_check(batch, {lead: 2}) == {created.event_id, scored.event_id}
    assert event_ids_to_check(batch, {lead: 3}) == {created.event_id, scored.event_id,
                                                     qualified.event_id}


def test_dead_letters_are_always_looked_up() -> None:
    now = utcnow()
    parked = DeadLettered(event_id=happy_path()[0].event_id, occurred_at=now, recorded_at=now,
                          tenant_id="acme", error_type="X", error="bad")
    assert event_ids_to_check(positioned([parked, None]), {}) == {parked.event_id}


def test_lead_counts_move_each_lead_from_its_stored_status_to_its_newest() -> None:
    """The batch's newest event of each lead adds one to its status; a lead the table held
    leaves its stored status; a stale event (at or below the stored version) moves nothing."""
    created, scored, qualified, *_ = happy_path()
    other = happy_path()
    lead, other_lead = created.lead, other[0].lead
    key = (lead.tenant_id, lead.campaign_id)
    batch = positioned([scored, qualified, other[0], other[1]])
    loaded = Loaded(lead_versions={lead.lead_id: 1, other_lead.lead_id: 2},
                    lead_statuses={lead.lead_id: (*key, "NEW"),
                                   other_lead.lead_id: (*key, "SCORED")})
    changes = fold(batch, loaded)
    # lead: NEW -> QUALIFIED; the other lead's events are stale (it is SCORED at version 2).
    assert changes.lead_counts == {(*key, "NEW"): -1, (*key, "QUALIFIED"): 1}
    fresh = fold(positioned([created, scored, *other[:3]]), Loaded())
    assert fresh.lead_counts == {(*key, "SCORED"): 1, (*key, "QUALIFIED"): 1}

"""Which event ids the projector must look up before folding a batch (pure)."""

from __future__ import annotations

from events import DeadLettered, utcnow
from services.projector.fold import Positioned, event_ids_to_check
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

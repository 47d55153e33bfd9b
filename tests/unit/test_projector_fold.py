"""Which events the projector must look up before folding a batch (pure)."""

from __future__ import annotations

from events import DeadLettered, utcnow
from services.projector.fold import Loaded, Positioned, fold, to_check
from tests.factories import happy_path


def positioned(events: list) -> list[Positioned]:  # type: ignore[type-arg]
    return [Positioned("t", 0, i, e) for i, e in enumerate(events)]


def test_only_events_at_or_below_the_stored_version_can_already_be_folded() -> None:
    """The leads row holds the highest version folded, in the same transaction as its events:
    an event above it was never folded, so it needs no lookup. The others are looked up by
    the key lead_events is stored under (lead, version, event)."""
    created, scored, qualified, *_ = happy_path()
    lead = created.lead.lead_id
    batch = positioned([created, scored, qualified])

    def keys(*events):  # type: ignore[no-untyped-def]
        return {(lead, e.lead.version, e.event_id) for e in events}

    assert to_check(batch, {}).lead_events == set()  # a lead the table does not hold
    assert to_check(batch, {lead: 2}).lead_events == keys(created, scored)
    assert to_check(batch, {lead: 3}).lead_events == keys(created, scored, qualified)
    assert to_check(batch, {lead: 3}).dead_letters == set()


def test_dead_letters_are_always_looked_up() -> None:
    now = utcnow()
    parked = DeadLettered(event_id=happy_path()[0].event_id, occurred_at=now, recorded_at=now,
                          tenant_id="acme", error_type="X", error="bad")
    suspects = to_check(positioned([parked, None]), {})
    assert suspects.dead_letters == {parked.event_id}
    assert suspects.lead_events == set()


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

"""Deterministic ids never change: the fast uuid5 equals the standard library's, and known ids
stay what they were (changing one would re-key every lead and event already on the log)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from events import ids


@given(st.text())
def test_uuid5_is_the_standard_librarys(name: str) -> None:
    assert ids.uuid5(name) == uuid.uuid5(ids.NAMESPACE, name)
    assert ids.uuid5(name).version == 5


def test_known_ids_are_unchanged() -> None:
    lead = ids.lead_id("acme", " Ada@Example.com ")
    assert str(lead) == "9a17d93d-198f-55ad-ba45-782b9faf53a7"
    assert str(ids.event_id(lead, "lead.scored")) == "979827ee-9777-517d-854e-a926b0f7bbe1"
    assert str(ids.event_id(lead, "lead.scored", "r1")) == "bbfa10eb-fb8f-57d4-ae64-519ee730a2d0"
    at = datetime(2026, 1, 1, 3, tzinfo=UTC)
    assert str(ids.tick_id("score", "*", at)) == "b8146fbd-560b-5433-94ca-a501d2dcac83"

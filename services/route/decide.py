"""Routing rules: the first matching segment gives the sequence; owners rotate within it. Pure."""

from __future__ import annotations

from events import Assignment, Lead

from ..runtime.config import Segment


def matches(lead: Lead, segment: Segment) -> bool:
    """True if the lead meets every condition the segment sets."""
    employees = lead.employees
    score = lead.score.value if lead.score else 0
    checks = (
        segment.industries is None or (lead.industry or "") in {i.lower() for i in segment.industries},
        segment.countries is None or (lead.country or "").upper() in {c.upper() for c in segment.countries},
        segment.min_employees is None or (employees is not None and employees >= segment.min_employees),
        segment.max_employees is None or (employees is not None and employees <= segment.max_employees),
        segment.min_score is None or score >= segment.min_score,
    )
    return all(checks)


def pick_segment(lead: Lead, segments: tuple[Segment, ...]) -> Segment:
    """The first segment the lead matches (config validation guarantees a catch-all last)."""
    return next(s for s in segments if matches(lead, s))


def owner_at(segment: Segment, seq: int) -> str:
    """The ``seq``-th lead of a segment goes to owner ``seq mod len(owners)``: round-robin."""
    return segment.owners[seq % len(segment.owners)]


def assign(segment: Segment, seq: int) -> Assignment:
    """The assignment of the ``seq``-th lead of a segment."""
    return Assignment(segment=segment.name, sequence_id=segment.sequence,
                      owner=owner_at(segment, seq))

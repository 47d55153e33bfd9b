"""Routing rules: the first matching segment gives the sequence; owners rotate within it. Pure."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from events import Assignment, Lead

from .config import Segment


def matches(lead: Lead, segment: Segment) -> bool:
    """True if the lead meets every condition the segment sets."""
    if segment.industries is not None and (
            (lead.industry or "") not in _folded(segment.industries, str.lower)):
        return False
    if segment.countries is not None and (
            (lead.country or "").upper() not in _folded(segment.countries, str.upper)):
        return False
    employees = lead.employees
    if segment.min_employees is not None and (employees is None or employees < segment.min_employees):
        return False
    if segment.max_employees is not None and (employees is None or employees > segment.max_employees):
        return False
    return segment.min_score is None or (lead.score.value if lead.score else 0) >= segment.min_score


@cache
def _folded(values: tuple[str, ...], fold: Callable[[str], str]) -> frozenset[str]:
    # Segments are few and fixed by config: each list is folded once, not once per lead.
    return frozenset(fold(v) for v in values)


def pick_segment(lead: Lead, segments: tuple[Segment, ...]) -> Segment:
    """The first segment the lead matches (config validation guarantees a catch-all last)."""
    return next(s for s in segments if matches(lead, s))


def owner_at(segment: Segment, seq: int) -> str:
    """The ``seq``-th lead of a segment goes to owner ``seq mod len(owners)``: round-robin."""
    return segment.owners[seq % len(segment.owners)]


def assign(segment: Segment, seq: int) -> Assignment:
    """The assignment of the ``seq``-th lead of a segment."""
    return _assignment(segment.name, segment.sequence, owner_at(segment, seq))


@cache
def _assignment(segment: str, sequence: str, owner: str) -> Assignment:
    # Frozen, and one per (segment, owner) of the config: shared by every lead they route.
    return Assignment(segment=segment, sequence_id=sequence, owner=owner)

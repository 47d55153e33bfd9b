"""Replay rules: which leads a replay re-decides, from which snapshot, and what counts as a
change. Pure (docs/state-machine.md explains each rule)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from events import Assignment, JobName, Lead, LeadStatus

from ..pipeline.config import LeadflowConfig
from ..pipeline.registry import STAGES
from ..qualify.decide import qualify_lead
from ..route.decide import pick_segment
from ..score.decide import score_lead
from .errors import ReplayError

S = LeadStatus


class Verdict(StrEnum):
    """What a replay does with one lead."""

    REPLAY = "replay"        # re-decide it from its current snapshot
    KEPT = "kept"            # its status is not one this stage decides from: left as it is
    IN_FLIGHT = "in_flight"  # its last event still waits for its stage: the live run decides it
    MISSING = "missing"      # the read models do not know it yet
    DONE = "done"            # this replay already decided it (a repeat or a resumed batch)


@dataclass(frozen=True, slots=True)
class StageRules:
    """A replayable stage: the statuses it re-decides a lead from."""

    stage: JobName
    redecide: frozenset[LeadStatus]


#: The replayable stages (those the registry gives a ``replay``).
RULES: dict[JobName, StageRules] = {
    spec.job: StageRules(spec.job, spec.replay.redecide) for spec in STAGES if spec.replay
}

#: Which stage consumes the event that put a lead in a status (None: nothing does).
NEXT_STAGE: dict[LeadStatus, JobName | None] = {
    S.NEW: JobName.SCORE, S.SCORED: JobName.QUALIFY, S.QUALIFIED: JobName.ROUTE,
    S.ROUTED: JobName.CONTACT, S.REJECTED: None, S.CONTACTED: None,
}


def rules_for(stage: JobName) -> StageRules:
    """The stage's rules; ReplayError for stages that cannot be replayed, saying why."""
    if stage is JobName.CONTACT:
        raise ReplayError(
            "contact cannot be replayed: its outputs are sends, and a send is never repeated. "
            "Replay score, qualify or route instead; leads they newly route are contacted by "
            "the next contact run, and follow-ups continue on their own")
    if stage not in RULES:
        raise ReplayError(f"{stage.value} has no input topic to replay; replayable stages are "
                          f"{', '.join(j.value for j in RULES)} (and `leadflow replay projector`)")
    return RULES[stage]


def in_flight(last_offset: int | None, committed: int | None) -> bool:
    """Whether the event at ``last_offset`` waits for its stage (committed: that stage's group
    position on the event's partition). A pruned event (None) is old enough to be settled."""
    if last_offset is None:
        return False
    return committed is None or committed <= last_offset


def verdict(rules: StageRules, current: Lead | None, *, waiting: bool, decided: bool) -> Verdict:
    """What to do with a lead whose input the replay read. ``waiting``: its last event is in
    flight; ``decided``: this replay already decided it."""
    if current is None:
        return Verdict.MISSING
    if decided:
        return Verdict.DONE
    if current.status not in rules.redecide:
        return Verdict.KEPT
    if waiting:
        return Verdict.IN_FLIGHT
    return Verdict.REPLAY


def reentry(stage: JobName, current: Lead) -> Lead:
    """The snapshot a replay moves from. Re-scoring clears the qualification that the old score
    led to: the lead re-enters qualification and gets a fresh verdict."""
    if stage is JobName.SCORE and current.qualification is not None:
        return current.evolve(qualification=None)
    return current


def decision(stage: JobName, lead: Lead) -> object:
    """The part of a snapshot that ``stage`` decides."""
    if stage is JobName.SCORE:
        return lead.score
    if stage is JobName.QUALIFY:
        return lead.qualification
    return (lead.route.segment, lead.route.sequence_id) if lead.route else None


def changed(stage: JobName, before: Lead, after: Lead) -> bool:
    """Whether today's logic decides differently; an unchanged lead is not published again."""
    return decision(stage, before) != decision(stage, after)


def preview(stage: JobName, lead: Lead, config: LeadflowConfig) -> Lead:
    """Today's decision for ``lead`` without any I/O (the dry run's; route shows the segment)."""
    if stage is JobName.SCORE:
        return lead.evolve(score=score_lead(lead, config.score))
    if stage is JobName.QUALIFY:
        return lead.evolve(qualification=qualify_lead(lead, config.qualify))
    segment = pick_segment(lead, config.route.segments)
    return lead.evolve(route=Assignment(segment=segment.name, sequence_id=segment.sequence,
                                        owner="(round-robin)"))


def describe(stage: JobName, lead: Lead) -> str:
    """The decision in a few words, for dry-run samples."""
    if stage is JobName.SCORE:
        return f"{lead.score.value} ({lead.score.model_version})" if lead.score else "unscored"
    if stage is JobName.QUALIFY:
        q = lead.qualification
        if q is None:
            return "not qualified yet"
        return "qualified" if q.qualified else f"rejected: {', '.join(q.reasons)}"
    return f"{lead.route.segment} / {lead.route.sequence_id}" if lead.route else "not routed"


def outlook(stage: JobName, lead: Lead, config: LeadflowConfig) -> str | None:
    """What the next stage would make of a re-scored lead (score only): its new verdict."""
    if stage is not JobName.SCORE:
        return None
    verdict_ = qualify_lead(lead, config.qualify)
    return "QUALIFIED" if verdict_.qualified else f"REJECTED ({', '.join(verdict_.reasons)})"

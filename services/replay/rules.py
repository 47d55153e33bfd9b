"""Replay rules: which leads a replay re-decides, from which snapshot, and what counts as a
change. Pure (docs/state-machine.md explains each rule)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from events import JobName, Lead, LeadStatus

from ..pipeline.registry import STAGE_SPECS, STAGES, load
from ..runtime.config import PlatformConfig
from ..runtime.replayable import ReplayableLogic
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


@cache
def logic_class(stage: JobName) -> type[ReplayableLogic]:
    """The stage's logic class, the registry's (the one its runs use), resolved once per stage;
    ReplayError for a stage that cannot be replayed."""
    replay = STAGE_SPECS[rules_for(stage).stage].replay
    assert replay is not None  # rules_for found its rules
    logic = load(replay.logic)
    if not (isinstance(logic, type) and issubclass(logic, ReplayableLogic)):
        raise TypeError(f"{replay.logic} is not a ReplayableLogic; the registry must name the "
                        f"logic class of {stage.value}")
    return logic


def reentry(stage: JobName, current: Lead) -> Lead:
    """The snapshot a replay moves from (re-scoring clears the old verdict)."""
    return logic_class(stage).reentry(current)


def changed(stage: JobName, before: Lead, after: Lead) -> bool:
    """Whether today's logic decides differently; an unchanged lead is not published again."""
    decision = logic_class(stage).decision
    return decision(before) != decision(after)


def preview(stage: JobName, lead: Lead, config: PlatformConfig) -> Lead:
    """Today's decision for ``lead`` without any I/O (the dry run's; route shows the segment)."""
    return logic_class(stage).preview(lead, config)


def describe(stage: JobName, lead: Lead) -> str:
    """The decision in a few words, for dry-run samples."""
    return logic_class(stage).describe(lead)


def outlook(stage: JobName, lead: Lead, config: PlatformConfig) -> str | None:
    """What qualification would make of a re-scored lead (score's dry run only): its verdict."""
    if stage is not JobName.SCORE:
        return None
    verdict_ = logic_class(JobName.QUALIFY).preview(lead, config).qualification
    assert verdict_ is not None
    return "QUALIFIED" if verdict_.qualified else f"REJECTED ({', '.join(verdict_.reasons)})"

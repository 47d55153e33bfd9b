"""Incidents as a pure decision: (open incidents, conditions now) -> what fires, what resolves.

An incident is one rule's condition holding for one subject, from the poll that first sees it
until the poll that sees it clear. It fires once (when it has held for the rule's
``sustained``) and resolves once; polls in between change nothing, whatever their number.
Open incidents are kept in Postgres, so a restarted notifier continues them instead of firing
them again. Nothing here does I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..runtime.config import AlertRules
from .rules import Condition


@dataclass(frozen=True, slots=True)
class Incident:
    incident_id: uuid.UUID
    rule: str
    subject: str
    severity: str
    since: datetime  # the poll that first saw the condition
    fired_at: datetime | None  # None while it has held for less than the rule's `sustained`
    value: float | None
    summary: str

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"

    @property
    def firing(self) -> bool:
        return self.fired_at is not None


@dataclass(frozen=True, slots=True)
class Resolution:
    """A fired incident that is over. ``notify`` False: its rule was turned off, so it is
    closed without a message (nothing recovered)."""

    incident: Incident
    at: datetime
    summary: str
    notify: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    opened: list[Incident] = field(default_factory=list)  # held too briefly yet: nobody told
    fired: list[Incident] = field(default_factory=list)  # to tell now (new or held long enough)
    resolved: list[Resolution] = field(default_factory=list)
    dropped: list[Incident] = field(default_factory=list)  # cleared before firing: forget

    @property
    def empty(self) -> bool:
        return not (self.opened or self.fired or self.resolved or self.dropped)


def decide(open_incidents: Iterable[Incident], conditions: Iterable[Condition],
           rules: AlertRules, now: datetime,
           new_id: Callable[[], uuid.UUID] = uuid.uuid4) -> Decision:
    """Compare this poll's conditions with the open incidents.

    - active, no incident: a new one; it fires now, or once it has held for ``sustained``;
    - active, incident already fired: nothing (never a message per poll);
    - clear, incident fired: it resolves; clear, incident not yet fired: it is dropped;
    - an open incident with no condition this poll: kept as it is when its rule is enabled
      (its subject could not be judged, which is not a recovery), closed quietly when the
      rule was turned off.
    """
    enabled = {name for name, rule in rules.items() if rule.enabled}
    incidents = {i.key: i for i in open_incidents}
    decision = Decision()
    judged: set[str] = set()
    for c in conditions:
        judged.add(c.key)
        incident = incidents.get(c.key)
        if c.active:
            hold: timedelta = getattr(rules, c.rule).sustained
            if incident is None:
                incident = Incident(new_id(), c.rule, c.subject, c.severity, since=now,
                                    fired_at=None, value=c.value, summary=c.summary)
                if hold <= timedelta(0):
                    decision.fired.append(replace(incident, fired_at=now))
                else:
                    decision.opened.append(incident)
            elif not incident.firing and now - incident.since >= hold:
                decision.fired.append(replace(incident, fired_at=now, value=c.value,
                                              summary=c.summary))
        elif incident is not None:
            if incident.firing:
                decision.resolved.append(Resolution(incident, now, c.summary))
            else:
                decision.dropped.append(incident)
    for key, incident in incidents.items():
        if key in judged or incident.rule in enabled:
            continue
        if incident.firing:
            decision.resolved.append(Resolution(
                incident, now, f"closed without recovery: rule {incident.rule} was turned off",
                notify=False))
        else:
            decision.dropped.append(incident)
    return decision


def destinations(channels: tuple[str, ...] | None, *, webhook: bool,
                 email_to: tuple[str, ...]) -> list[str]:
    """Where one rule's notifications go: ``webhook`` and ``email:<address>`` per recipient.
    ``channels`` None means every configured channel; ``()`` means the log only."""
    wanted = ("webhook", "email") if channels is None else channels
    out: list[str] = []
    if "webhook" in wanted and webhook:
        out.append("webhook")
    if "email" in wanted:
        out.extend(f"email:{address}" for address in email_to)
    return out

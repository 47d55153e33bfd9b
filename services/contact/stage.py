"""Contact stage: ROUTED leads get step 1 of their sequence; each send is claimed in the ledger
first, so a repeated delivery never sends twice and never emits a second LeadContacted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

import asyncpg

from events import JobName, Lead, LeadContacted, LeadEvent, LeadRouted, Outreach, transition

from ..runtime.config import ContactConfig, SequenceConfig
from ..runtime.drain import Inbound, Outcome
from ..runtime.errors import InfrastructureError
from ..runtime.runs import RunContext
from . import ledger
from .senders import Sender, SendError
from .templates import Message, compose


@dataclass(frozen=True, slots=True)
class Planned:
    """One send the run intends: the input, the ledger claim, the message."""

    item: Inbound
    claim: ledger.Claim
    message: Message
    sequence: SequenceConfig


def outreach_after(sequence_id: str, sequence: SequenceConfig, step: int, at: datetime) -> Outreach:
    """Progress after sending ``step``: the next action is due after the cooldown, if any."""
    more = step < len(sequence.steps)
    return Outreach(sequence_id=sequence_id, step=step, last_contacted_at=at,
                    next_action_at=at + sequence.cooldown if more else None,
                    stopped_reason=None if more else "completed")


class ContactLogic:
    job: ClassVar[JobName] = JobName.CONTACT
    accepts: ClassVar[tuple[type[LeadEvent], ...]] = (LeadRouted,)

    def __init__(self, config: ContactConfig, pool: asyncpg.Pool, sender: Sender) -> None:
        self.config = config
        self.pool = pool
        self.sender = sender

    def plan(self, item: Inbound, ctx: RunContext) -> Planned:
        event = item.event
        assert isinstance(event, LeadEvent)
        lead: Lead = event.lead
        if lead.route is None:
            raise ValueError(f"lead {lead.lead_id} has no route")
        sequence = self.config.sequences[lead.route.sequence_id]
        step = 1
        message = compose(sequence.steps[step - 1], lead)
        claim = ledger.Claim(
            key=ledger.idempotency_key(lead.campaign_id, lead.lead_id, step),
            tenant_id=lead.tenant_id, campaign_id=lead.campaign_id, lead_id=lead.lead_id,
            step=step, sequence_id=lead.route.sequence_id, sender=self.sender.name,
            email=lead.email, subject=message.subject, run_id=ctx.run_id,
            cause_event_id=event.event_id)
        return Planned(item, claim, message, sequence)

    def contacted(self, planned: Planned, ctx: RunContext) -> LeadContacted:
        event = planned.item.event
        assert isinstance(event, LeadEvent)
        claim = planned.claim
        outreach = outreach_after(claim.sequence_id, planned.sequence, claim.step, ctx.at)
        return transition(LeadContacted, event, at=ctx.at, correlation_id=ctx.run_id,
                          replay_id=None, cause_key=claim.key, outreach=outreach,
                          step=claim.step, idempotency_key=claim.key, sender=claim.sender,
                          subject=planned.message.subject)

    async def process(self, items: Sequence[Inbound], ctx: RunContext) -> list[Outcome]:
        outcomes: list[Outcome] = []
        plans: list[Planned] = []
        for item in items:
            try:
                plans.append(self.plan(item, ctx))
            except (ValueError, KeyError) as exc:
                outcomes.append(Outcome(item, error=exc))
        try:
            claimed = await ledger.claim(self.pool, [p.claim for p in plans])
            known = await ledger.entries(self.pool, [p.claim.key for p in plans
                                                     if p.claim.key not in claimed])
        except (OSError, asyncpg.PostgresError) as exc:
            raise InfrastructureError(f"contact ledger unavailable: {exc}") from exc
        sent: dict[str, str | None] = {}
        for planned in plans:
            key = planned.claim.key
            entry = known.get(key)
            if key in claimed or (entry is not None and entry.status == "claimed"):
                # A 'claimed' row left by a crash: proof sends have no outside effect, so
                # completing them is safe.
                try:
                    sent[key] = await self.sender.send(planned.message, idempotency_key=key)
                except SendError as exc:
                    outcomes.append(Outcome(planned.item, error=exc))
                    continue
                outcomes.append(Outcome(planned.item, [self.contacted(planned, ctx)]))
            elif entry is not None and entry.status == "sent" and not entry.event_published:
                outcomes.append(Outcome(planned.item, [self.contacted(planned, ctx)]))
            else:
                outcomes.append(Outcome(planned.item, []))  # already sent and reported
        await ledger.mark_sent(self.pool, sent)
        return outcomes

    async def published(self, outcomes: Sequence[Outcome], ctx: RunContext) -> None:
        keys = [e.idempotency_key for o in outcomes for e in o.events if isinstance(e, LeadContacted)]
        await ledger.mark_published(self.pool, keys)

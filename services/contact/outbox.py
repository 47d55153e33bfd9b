"""The one send path: claim -> re-check controls and limits -> send -> record.

Both step 1 (a newly routed lead) and follow-ups go through ``Outbox.attempt``. The ledger
claim comes first, so two runs can never send the same step; the checks come right before the
send, so a pause, kill switch or suppression published a moment ago still binds.

Interrupted sends (a 'claimed' row whose process is gone) are settled by ``reconcile``: if the
sender can tell whether the message left, its answer decides; otherwise (SMTP) the step is
marked failed with an unknown outcome and never sent again. A duplicate email costs more than
a missing follow-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID, uuid4

import asyncpg

from events import LeadContacted, LeadEvent, transition

from ..runtime.config import ContactConfig, SequenceConfig
from ..runtime.logging import redact
from . import controls, ledger, progress, usage
from .control_feed import ControlFeed
from .policy import (
    Breaker,
    Limit,
    backoff,
    blocked,
    breaker_admits,
    breaker_after,
    limits_for,
    next_step,
    outreach_after,
    retry_decision,
)
from .progress import Progress
from .senders import Sender, SendError
from .templates import Message, compose, message_id

log = logging.getLogger(__name__)

Kind = Literal["sent", "held", "stopped", "retry", "failed", "busy", "done"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt did. ``sent`` carries the LeadContacted to publish."""

    lead_id: UUID
    kind: Kind
    event: LeadContacted | None = None
    reason: str | None = None


def contacted_event(cause: LeadEvent, sequence_id: str, sequence: SequenceConfig, *, key: str,
                    step: int, sender: str, subject: str | None, at: datetime,
                    run_id: UUID | None) -> LeadContacted:
    """The LeadContacted for a send; its id follows from the key, so a rebuild is the same event."""
    return transition(LeadContacted, cause, at=at, correlation_id=run_id, replay_id=None,
                      cause_key=key, outreach=outreach_after(sequence_id, sequence, step, at),
                      step=step, idempotency_key=key, sender=sender, subject=subject)


class Outbox:
    """Sends one step to one lead at a time, safely; owns the sender's circuit breaker."""

    def __init__(self, config: ContactConfig, pool: asyncpg.Pool, sender: Sender,
                 feed: ControlFeed | None, instance_id: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.pool = pool
        self.sender = sender
        self.feed = feed
        self.instance_id = instance_id
        self.token = uuid4()  # this process's claims; a restart gets a new one
        self.breaker = Breaker()
        self.clock = clock  # monotonic seconds; the breaker's probe timing uses it

    # --- one attempt ---------------------------------------------------------------------

    async def attempt(self, p: Progress, run_id: UUID, at: datetime) -> Attempt:
        """Try to send the lead's next step now (or record why not)."""
        return await self._attempt(p, run_id, at, settle_own=True)

    async def _attempt(self, p: Progress, run_id: UUID, at: datetime, *, settle_own: bool) -> Attempt:
        cause = p.last_event
        lead = cause.lead
        route = lead.route
        sequence = self.config.sequences.get(route.sequence_id) if route else None
        if route is None or sequence is None:
            reason = (f"sequence {route.sequence_id!r} is not in [contact.sequences]; add it"
                      if route else "lead has no route")
            await progress.fail(self.pool, lead.lead_id, p.step + 1, reason)
            return Attempt(lead.lead_id, "failed", reason=reason)
        step = next_step(p.step, sequence)
        if step is None:  # the sequence was shortened after this lead's last step
            await progress.stop(self.pool, lead.lead_id, "completed")
            return Attempt(lead.lead_id, "done")
        key = ledger.idempotency_key(lead.campaign_id, lead.lead_id, step)
        try:
            message = compose(sequence.steps[step - 1], lead,
                              message_id=message_id(key, self.config.from_address),
                              list_unsubscribe=self.config.list_unsubscribe)
            template_error = None
        except ValueError as exc:
            message, template_error = Message(lead.email, "", ""), str(exc)
        claimed, entry = await ledger.claim(self.pool, ledger.Claim(
            key=key, tenant_id=lead.tenant_id, campaign_id=lead.campaign_id, lead_id=lead.lead_id,
            step=step, sequence_id=route.sequence_id, sender=self.sender.name, email=lead.email,
            subject=message.subject, message_id=message.message_id or "", run_id=run_id,
            cause_event_id=cause.event_id, decided_at=at, claimed_by=self.instance_id,
            claim_token=self.token))
        if not claimed:
            return await self._existing(entry, p, run_id, at, sequence, settle_own=settle_own)
        if template_error is not None:
            await self._give_up(key, lead.lead_id, step, template_error)
            return Attempt(lead.lead_id, "failed", reason=template_error)
        return await self._guarded_send(p, entry, message, sequence, run_id, at)

    async def _existing(self, entry: ledger.Entry, p: Progress, run_id: UUID, at: datetime,
                        sequence: SequenceConfig, *, settle_own: bool) -> Attempt:
        lead_id = p.lead_id
        if entry.status == "sent":
            if entry.event_published or p.step >= entry.step:
                return Attempt(lead_id, "done")
            return Attempt(lead_id, "sent", event=self._rebuild(p, entry, sequence))
        if entry.status == "failed":
            await progress.fail(self.pool, lead_id, entry.step, entry.error or "failed")
            return Attempt(lead_id, "failed", reason=entry.error)
        if entry.claim_token == self.token and settle_own:
            # Our own attempt, interrupted (e.g. the database went away after the send).
            await self._settle(entry)
            return await self._attempt(p, run_id, at, settle_own=False)
        await progress.touch(self.pool, lead_id, run_id)
        return Attempt(lead_id, "busy", reason="claimed by another instance")

    async def _guarded_send(self, p: Progress, entry: ledger.Entry, message: Message,
                            sequence: SequenceConfig, run_id: UUID, at: datetime) -> Attempt:
        lead = p.last_event.lead
        key, step = entry.key, entry.step
        if self.feed is not None:
            await self.feed.sync(self.config.control_sync_timeout.total_seconds())
        block = blocked(lead, await controls.state_for(self.pool, lead))
        if block is not None:
            await ledger.release(self.pool, key, self.token)
            if block.kind == "stop":
                await progress.stop(self.pool, lead.lead_id, block.reason)
                return Attempt(lead.lead_id, "stopped", reason=block.reason)
            return await self._hold(key, lead.lead_id, block.reason, run_id, None, release=False)
        limits = limits_for(lead, self.config, at)
        full = await usage.reserve(self.pool, limits)
        if full is not None:
            return await self._hold(key, lead.lead_id, full.reason, run_id, full.end)
        admitted, self.breaker = breaker_admits(self.breaker, self.clock(),
                                                self.config.breaker.probe_after)
        if not admitted:
            await usage.give_back(self.pool, limits)
            return await self._hold(key, lead.lead_id, "circuit_open", run_id, None)
        try:
            provider_id = await self.sender.send(message, idempotency_key=key)
        except SendError as exc:
            self.breaker = breaker_after(self.breaker, False, self.clock(),
                                         self.config.breaker.failures)
            return await self._failed_send(exc, entry, lead.lead_id, limits, run_id, at)
        self.breaker = breaker_after(self.breaker, True, self.clock(), self.config.breaker.failures)
        if not await ledger.mark_sent(self.pool, key, self.token, provider_id):
            # Our claim was settled by another instance meanwhile (it looked abandoned).
            log.warning("claim %s was settled elsewhere during its send", key,
                        extra={"action": "claim_lost"})
            return Attempt(lead.lead_id, "busy", reason="claim settled elsewhere")
        event = contacted_event(p.last_event, entry_sequence_id(p), sequence, key=key, step=step,
                                sender=self.sender.name, subject=message.subject, at=at,
                                run_id=run_id)
        return Attempt(lead.lead_id, "sent", event=event)

    async def _hold(self, key: str, lead_id: UUID, reason: str, run_id: UUID,
                    until: datetime | None, *, release: bool = True) -> Attempt:
        if release:
            await ledger.release(self.pool, key, self.token)
        await progress.hold(self.pool, lead_id, reason, run_id, until)
        return Attempt(lead_id, "held", reason=reason)

    async def _failed_send(self, exc: SendError, entry: ledger.Entry, lead_id: UUID,
                           limits: Sequence[Limit], run_id: UUID, at: datetime) -> Attempt:
        error = redact(str(exc))
        if exc.unknown:
            # The message may have left: keep its quota units and never send it again.
            reason = f"outcome unknown, not resent: {error}"
            await self._give_up(entry.key, lead_id, entry.step, reason)
            return Attempt(lead_id, "failed", reason=reason)
        await usage.give_back(self.pool, limits)
        retry = self.config.retry
        if exc.transient and retry_decision(entry.attempts, retry.max_retries) == "retry":
            await ledger.release(self.pool, entry.key, self.token, error=error)
            when = at + backoff(entry.attempts - 1, retry.base, retry.cap)
            await progress.retry_at(self.pool, lead_id, when, error, run_id)
            return Attempt(lead_id, "retry", reason=error)
        reason = (f"gave up after {entry.attempts} attempts: {error}" if exc.transient
                  else f"refused: {error}")
        await self._give_up(entry.key, lead_id, entry.step, reason)
        return Attempt(lead_id, "failed", reason=reason)

    async def _give_up(self, key: str, lead_id: UUID, step: int, reason: str) -> None:
        await ledger.mark_failed(self.pool, key, self.token, reason)
        await progress.fail(self.pool, lead_id, step, reason)
        log.warning("step %d of lead %s failed: %s", step, lead_id, reason,
                    extra={"action": "send_failed"})

    def _rebuild(self, p: Progress, entry: ledger.Entry, sequence: SequenceConfig) -> LeadContacted:
        """The LeadContacted of a recorded send, exactly as it was first built."""
        return contacted_event(p.last_event, entry_sequence_id(p), sequence, key=entry.key,
                               step=entry.step, sender=entry.sender, subject=entry.subject,
                               at=entry.decided_at or p.last_event.occurred_at,
                               run_id=entry.run_id)

    # --- after the broker acknowledged ---------------------------------------------------

    async def reported(self, events: Sequence[LeadContacted], run_id: UUID | None) -> None:
        """The events are in the log: mark them published and move each lead on, atomically."""
        if not events:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await ledger.mark_published(conn, [e.idempotency_key for e in events])
            for event in events:
                outreach = event.lead.outreach
                assert outreach is not None
                await progress.advance(conn, event, event.step, outreach.next_action_at,
                                       completed=outreach.next_action_at is None, run_id=run_id)

    # --- after a crash -------------------------------------------------------------------

    async def reconcile(self) -> list[LeadContacted]:
        """Settle claims left by processes that are gone; return sends still to be reported."""
        await self.settle_abandoned()
        return await self.unreported()

    async def settle_abandoned(self) -> None:
        """Settle every claim whose process is gone (see ``_settle`` for the policy)."""
        stale = self.config.stale_claim_after
        for entry in await ledger.abandoned(self.pool, self.instance_id, self.token, stale):
            await self._settle(entry)

    async def unreported(self) -> list[LeadContacted]:
        """LeadContacted events of recorded sends that a process now gone may not have published."""
        stale = self.config.stale_claim_after
        events: list[LeadContacted] = []
        entries = await ledger.unpublished(self.pool, self.instance_id, self.token, stale)
        known = await progress.fetch(self.pool, [e.lead_id for e in entries])
        for entry in entries:
            p = known.get(entry.lead_id)
            if p is None or p.step >= entry.step:
                await ledger.mark_published(self.pool, [entry.key])
                continue
            route = p.last_event.lead.route
            sequence = self.config.sequences.get(route.sequence_id) if route else None
            if sequence is not None:
                events.append(self._rebuild(p, entry, sequence))
        return events

    async def _settle(self, entry: ledger.Entry) -> None:
        verdict = None
        if entry.sender == self.sender.name:
            verdict = await self.sender.delivered(entry.message_id, idempotency_key=entry.key)
        if verdict is True:
            await ledger.resolve(self.pool, entry, "sent",
                                 f"{entry.sender}: delivery confirmed after an interruption")
        elif verdict is False:
            await ledger.resolve(self.pool, entry, "pending",
                                 f"{entry.sender}: not delivered; due again")
        else:
            reason = "outcome unknown after an interruption; not resent (policy)"
            if await ledger.resolve(self.pool, entry, "failed", reason, error=reason):
                await progress.fail(self.pool, entry.lead_id, entry.step, reason)
        log.warning("interrupted send %s settled (%s)", entry.key,
                    {True: "sent", False: "pending"}.get(verdict, "failed: unknown outcome"),
                    extra={"action": "claim_reconciled"})


def entry_sequence_id(p: Progress) -> str:
    route = p.last_event.lead.route
    assert route is not None
    return route.sequence_id

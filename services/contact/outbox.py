"""The one send path: controls -> limits -> claim -> re-check -> send -> record, in windows.

Both step 1 (a newly routed lead) and follow-ups go through ``Outbox.attempt_many``. Quota
units are reserved and ledger keys claimed in one statement each, for the whole batch when the
sender can confirm deliveries after a crash, else per window. Sends go a control window at a
time (``contact.control_window_sends``, at most ``control_window`` long): the control tables
are read once per batch (``_Controls``), the control topic to its end before each window; the
sends then go with bounded concurrency, each checked in memory right before it leaves against
the tables read plus every control event applied since. A send happens only under a ledger
claim, so two runs can never send the same step.

Interrupted sends (a 'claimed' row whose process is gone) are settled by ``reconcile``: if the
sender can tell whether the message left, its answer decides; otherwise (SMTP) the step is
marked failed with an unknown outcome and never sent again. A duplicate email costs more than
a missing follow-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID, uuid4

import asyncpg

from events import Lead, LeadContacted, LeadEvent, encode, transition

from ..runtime.db import CONNECTION_ERRORS
from ..runtime.logging import redact
from . import controls, ledger, progress, usage
from .config import ContactConfig, SequenceConfig
from .control_feed import ControlFeed
from .policy import (
    Block,
    Breaker,
    ControlSnapshot,
    ControlState,
    Limit,
    backoff,
    blocked,
    breaker_admits,
    breaker_after,
    limits_for,
    next_step,
    outreach_after,
    retry_decision,
    tightened,
)
from .progress import Progress
from .senders import Sender, SendError
from .templates import Message, compose, message_id
from .windows import OpenWindows

log = logging.getLogger(__name__)

#: "deferred": not attempted because the run is stopping; the lead stays due for the next run.
Kind = Literal["sent", "held", "stopped", "retry", "failed", "busy", "done", "deferred"]
STOPPING = "the run is stopping"


@dataclass(frozen=True, slots=True)
class _Sent:
    provider_id: str | None


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


@dataclass(frozen=True, slots=True)
class _Ready:
    """A claimable send, prepared: the step's key, message and the limits it must fit in."""

    p: Progress
    sequence: SequenceConfig
    claim: ledger.Claim
    message: Message
    limits: list[Limit]

    @property
    def lead(self) -> Lead:
        return self.p.last_event.lead


class _Controls:
    """A batch's view of the controls: the control tables read for all its leads, plus the
    events the feed applied since that read, held in memory. Each window starts by catching the
    feed up with the control topic's end; the tables are read again only when that alone would
    not do (see ``catch_up``)."""

    def __init__(self, outbox: Outbox, leads: Sequence[Lead]) -> None:
        self.outbox = outbox
        self.leads = leads
        self.snapshot = ControlSnapshot()
        self.mark = 0
        self.tables_at = 0.0
        self.synced_at = 0.0
        self.reads = 0  # a state computed from an earlier table read is stale
        self._lock = asyncio.Lock()

    def _old(self, at: float) -> bool:
        return time.monotonic() - at > self.outbox.config.control_window.total_seconds()

    async def catch_up(self) -> None:
        """Read the control topic to its end. The tables are read as well the first time,
        without a feed, once ``control_window`` has passed since their read (a control lifted
        shows only there), or once the feed no longer holds every event applied since it."""
        feed = self.outbox.feed
        if (feed is None or not self.reads or self._old(self.tables_at)
                or feed.lost(self.mark)):
            await self.read_tables()
        else:
            await feed.sync(self.outbox.config.control_sync_timeout.total_seconds())
            self.synced_at = time.monotonic()

    async def read_tables(self) -> None:
        """Read the control tables while the feed catches up with the control topic's end.

        The mark is taken first, so an event the table read missed (applied during it) is in
        ``feed.since(mark)``, which every check applies on top of the tables. One round trip to
        the broker and one to Postgres, at the same time instead of one after the other."""
        feed = self.outbox.feed
        if feed is None:
            mark, snapshot = 0, await controls.snapshot(self.outbox.pool, self.leads)
        else:
            mark = feed.mark()
            synced = asyncio.ensure_future(
                feed.sync(self.outbox.config.control_sync_timeout.total_seconds()))
            try:
                snapshot = await controls.snapshot(self.outbox.pool, self.leads)
            except BaseException:
                synced.cancel()
                await asyncio.gather(synced, return_exceptions=True)
                raise
            await synced
        self.mark, self.snapshot = mark, snapshot
        self.tables_at = self.synced_at = time.monotonic()
        self.reads += 1

    def state_for(self, lead: Lead) -> tuple[int, ControlState]:
        """``lead``'s state as the tables were read: (that read, the state)."""
        return self.reads, self.snapshot.state_for(lead)

    def now(self, lead: Lead, read: tuple[int, ControlState]) -> Block | None:
        """The latest known reason not to send to ``lead``, in memory: ``read`` (reused while
        its table read is current) plus every control event the feed applied since."""
        reads, state = read
        if reads != self.reads:
            state = self.snapshot.state_for(lead)
        feed = self.outbox.feed
        if feed is not None:
            state = tightened(state, lead, feed.since(self.mark))
        return blocked(lead, state)

    async def block(self, lead: Lead, read: tuple[int, ControlState]) -> Block | None:
        """``now``, right before a send: caught up first if the last catch-up is older than
        ``control_window``."""
        if self._old(self.synced_at):
            async with self._lock:  # one catch-up for every send that found it old
                if self._old(self.synced_at):
                    await self.catch_up()
        return self.now(lead, read)


@dataclass(slots=True)
class _Flush:
    """Writes a batch's sends leave behind, done in bulk when its claims are settled."""

    release: list[str] = field(default_factory=list)
    holds: list[progress.Hold] = field(default_factory=list)
    stops: list[tuple[UUID, str]] = field(default_factory=list)
    give_back: list[Sequence[Limit]] = field(default_factory=list)

    def unclaim(self, unsent: Sequence[tuple[_Ready, ledger.Entry]]) -> _Flush:
        """Also give back the keys and units of claims never sent."""
        self.release += [r.claim.key for r, _ in unsent]
        self.give_back += [r.limits for r, _ in unsent]
        return self


@dataclass(slots=True)
class _Opened:
    """Claimed sends (a batch's or a window's) with their controls caught up: ready to send."""

    controls: _Controls
    states: dict[str, tuple[int, ControlState]] = field(default_factory=dict)
    mine: list[tuple[_Ready, ledger.Entry]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    flush: _Flush = field(default_factory=_Flush)


class Outbox:
    """Sends the next step to leads, a control window at a time, safely; owns the sender's
    circuit breaker."""

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
        #: Routed leads being attempted before their row exists (see progress.Unwritten).
        self.unwritten = progress.Unwritten()
        #: Windows of sends recorded and not all reported yet (contact_windows rows).
        self.open_windows = OpenWindows()

    # --- attempts ------------------------------------------------------------------------

    async def attempt(self, p: Progress, run_id: UUID, at: datetime) -> Attempt:
        """Try to send the lead's next step now (or record why not)."""
        return (await self.attempt_many([p], run_id, at))[0]

    async def attempt_many(self, ps: Sequence[Progress], run_id: UUID, at: datetime, *,
                           settle_own: bool = True,
                           stop: asyncio.Event | None = None) -> list[Attempt]:
        """Try to send each lead's next step now (or record why not): one Attempt per lead, in
        order (a lead listed twice is attempted once; its repeat is 'done'). Once ``stop`` is
        set no further window opens: the leads left are 'deferred'."""
        first: dict[UUID, int] = {}
        results: dict[UUID, Attempt] = {}
        ready: list[_Ready] = []
        for i, p in enumerate(ps):
            if p.lead_id in first:
                continue
            first[p.lead_id] = i
            prepared = await self._prepare(p, run_id, at)
            if isinstance(prepared, Attempt):
                results[p.lead_id] = prepared
            else:
                ready.append(prepared)
        for attempt in await self._windows(ready, run_id, at, settle_own, stop):
            results[attempt.lead_id] = attempt
        return [results[p.lead_id] if first[p.lead_id] == i else Attempt(p.lead_id, "done")
                for i, p in enumerate(ps)]

    async def _prepare(self, p: Progress, run_id: UUID, at: datetime) -> _Ready | Attempt:
        """The send to make for ``p`` (pure but for the rare failures it records at once)."""
        cause = p.last_event
        lead = cause.lead
        route = lead.route
        sequence = self.config.sequences.get(route.sequence_id) if route else None
        if route is None or sequence is None:
            reason = (f"sequence {route.sequence_id!r} is not in [contact.sequences]; add it"
                      if route else "lead has no route")
            await self._rows([lead.lead_id])
            await progress.fail(self.pool, lead.lead_id, p.step + 1, reason)
            return Attempt(lead.lead_id, "failed", reason=reason)
        step = next_step(p.step, sequence)
        if step is None:  # the sequence was shortened after this lead's last step
            await self._rows([lead.lead_id])
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
        claim = ledger.Claim(
            key=key, tenant_id=lead.tenant_id, campaign_id=lead.campaign_id, lead_id=lead.lead_id,
            step=step, sequence_id=route.sequence_id, sender=self.sender.name, email=lead.email,
            subject=message.subject, message_id=message.message_id or "", run_id=run_id,
            cause_event_id=cause.event_id, decided_at=at, claimed_by=self.instance_id,
            claim_token=self.token)
        if template_error is None:
            return _Ready(p, sequence, claim, message, limits_for(lead, self.config, at))
        claimed, entry = await ledger.claim(self.pool, claim)
        if not claimed:
            return await self._existing(entry, p, run_id, at, sequence, settle_own=True)
        await self._give_up(key, lead.lead_id, step, template_error)
        return Attempt(lead.lead_id, "failed", reason=template_error)

    async def _windows(self, ready: Sequence[_Ready], run_id: UUID, at: datetime,
                       settle_own: bool, stop: asyncio.Event | None) -> list[Attempt]:
        """Claim the batch's sends, then send them a control window at a time. With a sender
        that can tell after a crash whether a message left, the whole batch is claimed (and
        its units reserved) in one statement each: a crash costs no email. Otherwise (SMTP) a
        crash leaves the claims in flight as unknown outcomes, never sent, so only one window
        is claimed at a time. A stop ends the batch after the window in flight (a batch may be
        10,000 sends long, and a shutdown must not wait for them all)."""
        ctl = _Controls(self, [r.lead for r in ready])
        span = (len(ready) if self.sender.confirms_delivery else 0) or self.config.control_window_sends
        attempts: list[Attempt] = []
        for start in range(0, len(ready), span):
            if stop is not None and stop.is_set():
                attempts += [Attempt(r.p.lead_id, "deferred", reason=STOPPING)
                             for r in ready[start:]]
                break
            opened = await self._open(ctl, ready[start:start + span], run_id, at, settle_own)
            attempts += await self._send_claimed(opened, run_id, at, stop)
        return attempts

    async def _send_claimed(self, opened: _Opened, run_id: UUID, at: datetime,
                            stop: asyncio.Event | None) -> list[Attempt]:
        """Send claimed steps a control window at a time, each window after the first caught
        up with the controls first: that catch-up follows the last send of the window before,
        so a control's reach stays one window. A window is recorded while the next one goes
        (the claims are what keeps a step from going twice); one that fails stops the batch
        before the window after next. Claims left unsent by a stop or a failure are let go."""
        size = self.config.control_window_sends
        mine, attempts = opened.mine, opened.attempts
        done = 0  # of ``mine``, the claims whose sends were attempted
        recording: list[asyncio.Future[list[Attempt]]] = []
        try:
            while done < len(mine):
                if done:
                    if stop is not None and stop.is_set():
                        break
                    if len(recording) > 1:
                        # One record at most behind the sends: a failed one stops the batch.
                        await recording[-2]
                    await opened.controls.catch_up()
                window = mine[done:done + size]
                done += len(window)  # from here on its claims are in flight: never let go
                sent = await self._send_window(opened, window, run_id, at)
                recording.append(asyncio.ensure_future(self._mark(sent, run_id, at)))
            for recorded in await asyncio.gather(*recording):
                attempts += recorded
        except BaseException:
            if recording:
                await asyncio.wait(recording)  # a window sent is recorded if it can be
                for record in recording:  # the failure raised below says what went wrong
                    if not record.cancelled():
                        record.exception()
            await self._let_go(opened, mine[done:], run_id)
            raise
        unsent = mine[done:]
        attempts += [Attempt(r.p.lead_id, "deferred", reason=STOPPING) for r, _ in unsent]
        await self._flush(opened.flush.unclaim(unsent), run_id)
        return attempts

    async def _let_go(self, opened: _Opened, unsent: Sequence[tuple[_Ready, ledger.Entry]],
                      run_id: UUID) -> None:
        """Give back the keys and units of claims not sent, and of sends blocked so far (a
        failure is being raised)."""
        flush = _Flush(release=list(opened.flush.release),
                       give_back=list(opened.flush.give_back)).unclaim(unsent)
        try:
            await self._flush(flush, run_id)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError):
            # The failure being raised says more; a restart settles these claims by asking.
            log.warning("could not release %d claims not sent", len(unsent),
                        extra={"action": "claims_kept"})

    async def _open(self, ctl: _Controls, ready: Sequence[_Ready], run_id: UUID, at: datetime,
                    settle_own: bool) -> _Opened:
        """Catch the controls up while the limits are reserved and the keys claimed of the
        sends that may go by what is known so far: the round trips overlap, and every send is
        checked again, caught up, right before it goes. The batch's first claims are decided
        from the tables, so they are read first."""
        if not ctl.reads:
            await ctl.catch_up()
            return await self._claim(ctl, ready, run_id, at, settle_own)
        caught_up = asyncio.ensure_future(ctl.catch_up())
        try:
            opened = await self._claim(ctl, ready, run_id, at, settle_own)
        except BaseException:
            caught_up.cancel()
            await asyncio.gather(caught_up, return_exceptions=True)
            raise
        try:
            await caught_up
        except BaseException:
            await self._let_go(opened, opened.mine, run_id)
            raise
        return opened

    async def _claim(self, ctl: _Controls, ready: Sequence[_Ready], run_id: UUID, at: datetime,
                     settle_own: bool) -> _Opened:
        """Reserve the limits and claim the keys of the sends the controls let go now."""
        opened = _Opened(ctl)
        go: list[_Ready] = []
        for r in ready:
            opened.states[r.claim.key] = read = ctl.state_for(r.lead)
            block = ctl.now(r.lead, read)
            if block is None:
                go.append(r)
            else:
                opened.attempts.append(self._blocked(r, block, opened.flush, reserved=False))
        fulls = await usage.reserve_many(self.pool, [r.limits for r in go])
        admitted: list[_Ready] = []
        for r, full in zip(go, fulls, strict=True):
            if full is None:
                admitted.append(r)
            else:
                opened.flush.holds.append(progress.Hold(r.p.lead_id, full.reason, full.end))
                opened.attempts.append(Attempt(r.p.lead_id, "held", reason=full.reason))
        claimed = await ledger.claim_many(self.pool, [r.claim for r in admitted])
        for r in admitted:
            ok, entry = claimed[r.claim.key]
            if ok:
                opened.mine.append((r, entry))
            else:
                opened.flush.give_back.append(r.limits)
                opened.attempts.append(await self._existing(entry, r.p, run_id, at, r.sequence,
                                                            settle_own=settle_own))
        return opened

    async def _send_window(self, opened: _Opened, window: Sequence[tuple[_Ready, ledger.Entry]],
                           run_id: UUID, at: datetime) -> list[tuple[_Ready, ledger.Entry, str | None]]:
        """Send a window's claimed steps, each re-checked in memory right before it goes."""
        gate = asyncio.Semaphore(self.config.send_concurrency)
        outcomes = await asyncio.gather(*(
            self._send(r, opened.controls, opened.states[r.claim.key], gate)
            for r, _ in window))
        sent: list[tuple[_Ready, ledger.Entry, str | None]] = []
        for (r, entry), outcome in zip(window, outcomes, strict=True):
            if isinstance(outcome, Block):
                opened.attempts.append(self._blocked(r, outcome, opened.flush, reserved=True))
            elif isinstance(outcome, SendError):
                opened.attempts.append(await self._failed_send(outcome, entry, r.p.lead_id,
                                                               r.limits, run_id, at))
            else:
                sent.append((r, entry, outcome.provider_id))
        return sent

    async def _mark(self, sent: list[tuple[_Ready, ledger.Entry, str | None]], run_id: UUID,
                    at: datetime) -> list[Attempt]:
        """Record a window's sends in one statement; their attempts, with the events to publish."""
        attempts: list[Attempt] = []
        window_id = uuid4()
        recorded = await ledger.mark_sent_many(
            self.pool, self.token, [(r.claim.key, provider) for r, _, provider in sent],
            window_id=window_id, claimed_by=self.instance_id)
        self.open_windows.opened(window_id, recorded)
        for r, entry, _ in sent:
            if entry.key not in recorded:
                # Our claim was settled by another instance meanwhile (it looked abandoned).
                log.warning("claim %s was settled elsewhere during its send", entry.key,
                            extra={"action": "claim_lost"})
                attempts.append(Attempt(r.p.lead_id, "busy", reason="claim settled elsewhere"))
                continue
            event = contacted_event(r.p.last_event, entry_sequence_id(r.p), r.sequence,
                                    key=entry.key, step=entry.step, sender=self.sender.name,
                                    subject=r.message.subject, at=at, run_id=run_id)
            attempts.append(Attempt(r.p.lead_id, "sent", event=event))
        return attempts

    async def _send(self, r: _Ready, ctl: _Controls, read: tuple[int, ControlState],
                    gate: asyncio.Semaphore) -> Block | SendError | _Sent:
        """One send, checked against the latest known controls and the breaker right before."""
        async with gate:
            block = await ctl.block(r.lead, read)
            if block is not None:
                return block
            admitted, self.breaker = breaker_admits(self.breaker, self.clock(),
                                                    self.config.breaker.probe_after)
            if not admitted:
                return Block("hold", "circuit_open")
            try:
                provider_id = await self.sender.send(r.message, idempotency_key=r.claim.key)
            except SendError as exc:
                self.breaker = breaker_after(self.breaker, False, self.clock(),
                                             self.config.breaker.failures)
                return exc
            self.breaker = breaker_after(self.breaker, True, self.clock(),
                                         self.config.breaker.failures)
            return _Sent(provider_id)

    def _blocked(self, r: _Ready, block: Block, flush: _Flush, *, reserved: bool) -> Attempt:
        lead_id = r.p.lead_id
        if reserved:
            flush.give_back.append(r.limits)
            flush.release.append(r.claim.key)
        if block.kind == "stop":
            flush.stops.append((lead_id, block.reason))
            return Attempt(lead_id, "stopped", reason=block.reason)
        flush.holds.append(progress.Hold(lead_id, block.reason))
        return Attempt(lead_id, "held", reason=block.reason)

    async def _flush(self, flush: _Flush, run_id: UUID) -> None:
        await ledger.release_many(self.pool, flush.release, self.token)
        await usage.give_back_many(self.pool, flush.give_back)
        await self._rows([h.lead_id for h in flush.holds] + [lead_id for lead_id, _ in flush.stops])
        await progress.hold(self.pool, flush.holds, run_id)
        for lead_id, reason in flush.stops:
            await progress.stop(self.pool, lead_id, reason)

    async def _existing(self, entry: ledger.Entry, p: Progress, run_id: UUID, at: datetime,
                        sequence: SequenceConfig, *, settle_own: bool) -> Attempt:
        lead_id = p.lead_id
        if entry.status == "sent":
            if p.step >= entry.step:  # its LeadContacted moved the lead on: it is in the log
                return Attempt(lead_id, "done")
            return Attempt(lead_id, "sent", event=self._rebuild(p, entry, sequence))
        await self._rows([lead_id])
        if entry.status == "failed":
            await progress.fail(self.pool, lead_id, entry.step, entry.error or "failed")
            return Attempt(lead_id, "failed", reason=entry.error)
        if entry.claim_token == self.token and settle_own:
            # Our own attempt, interrupted (e.g. the database went away after the send).
            await self._settle(entry)
            return (await self.attempt_many([p], run_id, at, settle_own=False))[0]
        await progress.touch(self.pool, [lead_id], run_id)
        return Attempt(lead_id, "busy", reason="claimed by another instance")

    async def _failed_send(self, exc: SendError, entry: ledger.Entry, lead_id: UUID,
                           limits: Sequence[Limit], run_id: UUID, at: datetime) -> Attempt:
        error = redact(str(exc))
        await self._rows([lead_id])
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
        await self._rows([lead_id])
        await ledger.mark_failed(self.pool, key, self.token, reason)
        await progress.fail(self.pool, lead_id, step, reason)
        log.warning("step %d of lead %s failed: %s", step, lead_id, reason,
                    extra={"action": "send_failed"})

    async def _rows(self, lead_ids: Sequence[UUID]) -> None:
        """Enrol any of these leads that has no row yet, before a write to its row."""
        await self.unwritten.write(self.pool, lead_ids)

    def _rebuild(self, p: Progress, entry: ledger.Entry, sequence: SequenceConfig) -> LeadContacted:
        """The LeadContacted of a recorded send, exactly as it was first built."""
        return contacted_event(p.last_event, entry_sequence_id(p), sequence, key=entry.key,
                               step=entry.step, sender=entry.sender, subject=entry.subject,
                               at=entry.decided_at or p.last_event.occurred_at,
                               run_id=entry.run_id)

    # --- after the broker acknowledged ---------------------------------------------------

    async def reported(self, events: Sequence[LeadContacted], run_id: UUID | None,
                       values: Sequence[bytes] | None = None) -> None:
        """The events are in the log: close their windows and move each lead on, atomically
        (a lead read from the log just now gets its row here, at the step sent).
        ``values``: the events' bytes as published (each is encoded again without them)."""
        if not events:
            return
        moves = []
        if values is None:
            values = [encode(e) for e in events]
        for event, value in zip(events, values, strict=True):
            outreach = event.lead.outreach
            assert outreach is not None
            moves.append(progress.Advance(event, value, event.step, outreach.next_action_at))
        first = self.unwritten.partitions([e.lead.lead_id for e in events])
        # A window recorded by another process is closed by recovery (``unreported``).
        closed = self.open_windows.reported([e.idempotency_key for e in events])
        async with self.pool.acquire() as conn, conn.transaction():
            await ledger.close_windows(conn, closed)
            await progress.advance(conn, moves, run_id, first)

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
        """LeadContacted events of recorded sends that a process now gone may not have
        published. A window is closed once every send of it has moved its lead on; until then
        each recovery looks at it again."""
        stale = self.config.stale_claim_after
        events: list[LeadContacted] = []
        windows = await ledger.unreported(self.pool, self.instance_id, self.token, stale)
        known = await progress.fetch(
            self.pool, [e.lead_id for entries in windows.values() for e in entries])
        done = []
        for window_id, entries in windows.items():
            left = [e for e in entries
                    if (p := known.get(e.lead_id)) is None or p.step < e.step]
            if not left:
                done.append(window_id)
            for entry in left:
                p = known.get(entry.lead_id)
                if p is None:
                    # Step 1 of a lead read from the log, sent, then the process died before
                    # the lead had a row: its offset was not committed, so the run that reads
                    # the lead again publishes it (the ledger knows the send), from the routed
                    # lead.
                    continue
                route = p.last_event.lead.route
                sequence = self.config.sequences.get(route.sequence_id) if route else None
                if sequence is not None:
                    events.append(self._rebuild(p, entry, sequence))
        await ledger.close_windows(self.pool, done)
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
                await self._rows([entry.lead_id])
                await progress.fail(self.pool, entry.lead_id, entry.step, reason)
        log.warning("interrupted send %s settled (%s)", entry.key,
                    {True: "sent", False: "pending", None: "failed: unknown outcome"}[verdict],
                    extra={"action": "claim_reconciled"})


def entry_sequence_id(p: Progress) -> str:
    route = p.last_event.lead.route
    assert route is not None
    return route.sequence_id

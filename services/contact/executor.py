"""A contact run: settle interrupted sends, send step 1 to newly routed leads (draining
leads.routed), then the follow-ups and retries that are due, all within one run budget."""

from __future__ import annotations

import asyncio

import asyncpg

from events import (
    STAGE_INPUTS,
    TENANT_NOT_SERVED,
    JobName,
    RunCounts,
    TickEmitted,
    merged_by_tenant,
    tenant_counts,
)

from ..runtime.budget import RunBudget
from ..runtime.db import translated
from ..runtime.drain import TopicDrainer
from ..runtime.runs import RunContext, RunResult
from ..runtime.service import JobService
from . import controls
from .config import ContactConfig
from .control_feed import ControlFeed
from .followups import FollowUps, Tally
from .outbox import Outbox
from .senders import Sender, close_sender
from .stage import ContactLogic


def run_counts(drained: RunCounts, followups: Tally) -> RunCounts:
    """The run's counts: routed leads consumed, plus follow-ups that used the budget."""
    return tenant_counts(merged_by_tenant(drained.by_tenant, dict(followups.by_tenant)),
                         merged_by_tenant(drained.failed_by_tenant,
                                          dict(followups.failed_by_tenant)))


class ContactExecutor:
    """The contact job's Executor; also owns the control feed, which runs between ticks too."""

    def __init__(self, service: JobService, config: ContactConfig, sender: Sender) -> None:
        self.service = service
        self.sender = sender
        self.config = config
        self._feed: ControlFeed | None = None
        self._outbox: Outbox | None = None
        self._drainer: TopicDrainer | None = None
        self._followups: FollowUps | None = None
        self._drainer_started: asyncio.Task[None] | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        return self.service.db

    @property
    def feed(self) -> ControlFeed:
        assert self._feed is not None, "ContactExecutor.start() was not called"
        return self._feed

    @property
    def outbox(self) -> Outbox:
        assert self._outbox is not None, "ContactExecutor.start() was not called"
        return self._outbox

    async def start(self) -> None:
        s = self.service
        self._feed = ControlFeed(self.pool, s.settings.kafka_bootstrap_servers, s.prefix,
                                 s.instance_id)
        await self._feed.start()
        self._outbox = Outbox(self.config, self.pool, self.sender, self._feed, s.instance_id)
        self._drainer = TopicDrainer(
            ContactLogic(self._outbox, self.pool), topics=STAGE_INPUTS[JobName.CONTACT],
            bootstrap_servers=s.settings.kafka_bootstrap_servers, topic_config=s.config.topics,
            tenants=s.settings.served_tenants, publisher=s.publisher, stage=s.config.stage,
            instance_id=s.instance_id)
        self._followups = FollowUps(self._outbox, self.pool, s.publisher, s.config.stage.batch_size,
                                    owned=self._drainer.assigned_partitions)
        # Join leads.routed's group in the background: after a crash both of the service's
        # groups wait out the dead member's session, and overlapping them halves a restart.
        self._drainer_started = asyncio.create_task(self._drainer.start(),
                                                    name="contact-drainer-start")
        # Settle what an earlier life of this instance left half done (the broker is not
        # connected yet: its unreported sends are published when the next run starts).
        with translated("contact ledger"):
            await self._outbox.settle_abandoned()

    async def stop(self) -> None:
        if self._drainer_started is not None and not self._drainer_started.done():
            self._drainer_started.cancel()
        if self._drainer_started is not None:
            await asyncio.gather(self._drainer_started, return_exceptions=True)
        if self._drainer is not None:
            await self._drainer.stop()
        if self._feed is not None:
            await self._feed.stop()

    def assigned_partitions(self) -> tuple[int, ...]:
        """The leads.routed partitions this instance owns (shown by `leadflow status`)."""
        return self._drainer.assigned_partitions() if self._drainer is not None else ()

    async def skip_reason(self, tick: TickEmitted) -> str | None:
        """A run is skipped while the kill switch is engaged or its campaign is paused, and
        for a tenant with topics of its own that this instance does not serve."""
        if self._drainer is not None and not self._drainer.run_topics(tick):
            return TENANT_NOT_SERVED
        await self.feed.sync(self.config.control_sync_timeout.total_seconds())
        return await controls.tick_block(self.pool, tick.tenant_id, tick.campaign_id)

    async def _recover(self) -> None:
        with translated("contact ledger"):
            events = await self.outbox.reconcile()
            sent = await self.service.publisher.publish(events)
            await self.outbox.reported(events, None, sent.values)

    async def execute(self, ctx: RunContext, budget: RunBudget, deadline: float) -> RunResult:
        assert self._drainer is not None and self._followups is not None
        assert self._drainer_started is not None
        await self._drainer_started  # raises what kept the drainer from joining its group
        await self.feed.sync(self.config.control_sync_timeout.total_seconds())
        await self._recover()
        try:
            drained = await self._drainer.execute(ctx, budget, deadline)
            if drained.timed_out:
                return drained
            followups, timed_out = await self._followups.run(ctx, budget, deadline)
        finally:
            await close_sender(self.sender)
        return RunResult(counts=run_counts(drained.counts, followups),
                         partitions=drained.partitions, partitions_total=drained.partitions_total,
                         backlog=drained.backlog, timed_out=timed_out)

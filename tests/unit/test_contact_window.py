"""A batch's controls: the tables are read while the feed catches up with the topic, so an
event applied during the table read still binds every send; later windows only catch the feed
up, and read the tables again when that alone would not do."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest

from events import CampaignPaused, CampaignResumed, ControlEvent, Lead
from services.contact import outbox as outbox_module
from services.contact.config import ContactConfig
from services.contact.outbox import _Controls
from services.contact.policy import Block, ControlSnapshot
from tests.factories import lead_factory

AT = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
LEAD = lead_factory(tenant_id="acme", campaign_id="q4")
PAUSE = CampaignPaused(event_id=uuid4(), occurred_at=AT, recorded_at=AT, tenant_id="acme",
                       requested_by="test", campaign_id="q4")
RESUME = CampaignResumed(event_id=uuid4(), occurred_at=AT, recorded_at=AT, tenant_id="acme",
                         requested_by="test", campaign_id="q4")


class Feed:
    """A control feed whose sync applies ``arriving`` once the table read has started."""

    def __init__(self, arriving: Sequence[ControlEvent], table_read: asyncio.Event) -> None:
        self.applied: list[ControlEvent] = []
        self.arriving = list(arriving)
        self.table_read = table_read
        self.syncs = 0
        self.dropped = 0

    def mark(self) -> int:
        return len(self.applied)

    def since(self, mark: int) -> Sequence[ControlEvent]:
        return self.applied[mark:]

    def lost(self, mark: int) -> bool:
        return mark < self.dropped

    async def sync(self, timeout: float) -> None:
        self.syncs += 1
        await self.table_read.wait()  # the tables were read before these events were applied
        self.applied.extend(self.arriving)
        self.arriving = []


def controls(feed: Feed | None, **config: Any) -> _Controls:
    owner: Any = SimpleNamespace(feed=feed, pool=None, config=ContactConfig(**config))
    return _Controls(owner, [LEAD])


class Tables:
    """controls.snapshot, counting its reads; each returns the next of ``snapshots``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *snapshots: ControlSnapshot,
                 read: asyncio.Event | None = None) -> None:
        self.snapshots = list(snapshots)
        self.reads = 0
        self.read = read or asyncio.Event()
        monkeypatch.setattr(outbox_module.controls, "snapshot", self)

    async def __call__(self, pool: object, leads: Sequence[Lead]) -> ControlSnapshot:
        self.read.set()
        await asyncio.sleep(0)
        self.reads += 1
        return self.snapshots[min(self.reads, len(self.snapshots)) - 1]


async def test_an_event_applied_during_the_table_read_blocks_the_sends(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tables = Tables(monkeypatch, ControlSnapshot())  # read before the pause reached the tables
    ctl = controls(Feed([PAUSE], tables.read))
    await asyncio.wait_for(ctl.catch_up(), 5)
    read = ctl.state_for(LEAD)
    assert not read[1].paused
    assert await ctl.block(LEAD, read) == Block("hold", "paused")


async def test_later_windows_catch_the_feed_up_without_reading_the_tables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tables = Tables(monkeypatch, ControlSnapshot())
    feed = Feed([], tables.read)
    ctl = controls(feed)
    await ctl.catch_up()
    read = ctl.state_for(LEAD)
    feed.arriving = [PAUSE]  # published after the batch's table read
    await ctl.catch_up()
    assert (tables.reads, feed.syncs) == (1, 2)
    assert ctl.now(LEAD, read) == Block("hold", "paused")


async def test_the_tables_are_read_again_once_the_feed_let_go_of_events_since_their_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    paused = ControlSnapshot(pauses=frozenset({("acme", "q4")}))
    tables = Tables(monkeypatch, ControlSnapshot(), paused)
    feed = Feed([], tables.read)
    ctl = controls(feed)
    await ctl.catch_up()
    read = ctl.state_for(LEAD)
    feed.dropped = 1  # the pause was applied, then dropped from memory before this window
    await ctl.catch_up()
    assert tables.reads == 2
    assert ctl.now(LEAD, read) == Block("hold", "paused")  # the stale read is not reused


async def test_a_control_lifted_shows_once_the_tables_are_older_than_the_window(
        monkeypatch: pytest.MonkeyPatch) -> None:
    paused = ControlSnapshot(pauses=frozenset({("acme", "q4")}))
    tables = Tables(monkeypatch, paused, ControlSnapshot())
    feed = Feed([], tables.read)
    ctl = controls(feed, control_window=timedelta(milliseconds=50))
    await ctl.catch_up()
    read = ctl.state_for(LEAD)
    feed.arriving = [RESUME]
    await ctl.catch_up()
    assert ctl.now(LEAD, read) == Block("hold", "paused")  # lifting waits for a table read
    await asyncio.sleep(0.06)
    assert await ctl.block(LEAD, read) is None
    assert tables.reads == 2


async def test_without_a_feed_every_window_reads_the_tables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tables = Tables(monkeypatch, ControlSnapshot(), ControlSnapshot(
        pauses=frozenset({("acme", "q4")})))
    ctl = controls(None)
    await ctl.catch_up()
    read = ctl.state_for(LEAD)
    await ctl.catch_up()
    assert tables.reads == 2
    assert ctl.now(LEAD, read) == Block("hold", "paused")


async def test_a_failed_table_read_does_not_leave_the_sync_running(
        monkeypatch: pytest.MonkeyPatch) -> None:
    never = asyncio.Event()
    feed = Feed([PAUSE], never)

    async def snapshot(pool: object, leads: Sequence[Lead]) -> ControlSnapshot:
        raise ConnectionError("postgres went away")

    monkeypatch.setattr(outbox_module.controls, "snapshot", snapshot)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(controls(feed).catch_up(), 5)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending == []

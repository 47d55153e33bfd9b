"""Where the pipeline's backlog sits while `leadflow bench pipeline` runs: every stage's unread
input, the projector's lag and the machine's idle CPU, sampled every second.

A run that leaves cores idle is waiting on something; the stage holding the largest backlog
most of the time is what the others wait behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import TopicPartition

from events import STAGE_INPUTS, stage_group

from ..pipeline.settings import Settings
from ..runtime import kafka_clients
from ..runtime.partitions import topic_partitions
from .procstat import machine_cpu
from .workspace import STAGE_JOBS

log = logging.getLogger(__name__)

PROJECTOR = "projector"
#: Seconds between samples: often enough to see a backlog move, rare enough to cost nothing.
EVERY = 1.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the pipeline: unread messages per stage (and the projector), idle CPU."""

    backlogs: dict[str, int]
    idle: float | None  # share of the machine's CPU time idle since the previous sample


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    """Per stage (and the projector): mean and peak backlog, and the share of the samples in
    which it held the largest one (of those where anything was waiting); the mean idle share."""
    names = list(dict.fromkeys(name for s in samples for name in s.backlogs))
    busy = [s for s in samples if any(s.backlogs.values())]
    largest = {name: 0 for name in names}
    for s in busy:
        largest[max(s.backlogs, key=lambda name: s.backlogs[name])] += 1
    idles = [s.idle for s in samples if s.idle is not None]
    return {
        "samples": len(samples),
        "idle_share": round(sum(idles) / len(idles), 3) if idles else None,
        "backlog": {name: {
            "mean": round(sum(s.backlogs.get(name, 0) for s in samples) / len(samples)),
            "peak": max(s.backlogs.get(name, 0) for s in samples),
            "largest_share": round(largest[name] / len(busy), 3) if busy else 0.0,
        } for name in names} if samples else {},
    }


@dataclass
class _Follower:
    settings: Settings
    pool: asyncpg.Pool
    samples: list[Sample] = field(default_factory=list)

    async def run(self, every: float) -> None:
        prefix, bootstrap = self.settings.prefix, self.settings.kafka_bootstrap_servers
        # One consumer per stage group reads what the group committed (OffsetFetch, which every
        # broker serves to consumers; Tansu lacks the admin API for it). Never subscribed, it
        # never joins the group, and with auto-commit off it never commits.
        groups = {job: kafka_clients.consumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                              group_id=stage_group(job, prefix))
                  for job in STAGE_JOBS}
        reader = kafka_clients.consumer(bootstrap_servers=bootstrap, group_id=None)
        try:
            for consumer in (reader, *groups.values()):
                await consumer.start()
            topics = {job: [f"{prefix}{topic.value}" for topic in STAGE_INPUTS[job]]
                      for job in STAGE_JOBS}
            found = await topic_partitions(reader, [t for ts in topics.values() for t in ts])
            inputs = {job: [TopicPartition(t, p) for t in ts for p in found[t]]
                      for job, ts in topics.items()}
            before = machine_cpu()
            while True:
                await asyncio.sleep(every)
                backlogs = {job.value: await _unread(reader, groups[job], tps)
                            for job, tps in inputs.items()}
                backlogs[PROJECTOR] = int(await self.pool.fetchval(
                    "SELECT lag FROM projector_progress") or 0)
                now = machine_cpu()
                elapsed = now[1] - before[1]
                idle = (now[0] - before[0]) / elapsed if elapsed > 0 else None
                before = now
                self.samples.append(Sample(backlogs, idle))
        finally:
            for consumer in (reader, *groups.values()):
                await consumer.stop()


async def _unread(reader: Any, group: Any, tps: list[TopicPartition]) -> int:
    # Committed first: the log's end read after it is never behind it, while a stage that
    # keeps up would commit past an end read before (a negative backlog).
    committed = {tp: await group.committed(tp) or 0 for tp in tps}
    ends = await reader.end_offsets(tps)
    # Never below zero: Tansu's memory storage can answer an end short of the last batch.
    return sum(max(ends[tp] - committed[tp], 0) for tp in tps)


@asynccontextmanager
async def followed(settings: Settings, pool: asyncpg.Pool,
                   every: float = EVERY) -> AsyncIterator[list[Sample]]:
    """Sample the backlogs in the background while the block runs; the samples are in the
    yielded list. A sampler that fails (a broker that cannot answer) leaves it shorter and
    logs why; it never fails the run."""
    follower = _Follower(settings, pool)
    task = asyncio.create_task(follower.run(every), name="bench-backlog")
    started = time.monotonic()
    try:
        yield follower.samples
    finally:
        task.cancel()
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
        if isinstance(outcome, Exception):
            log.warning("backlog samples stopped after %.0fs: %s", time.monotonic() - started,
                        outcome)

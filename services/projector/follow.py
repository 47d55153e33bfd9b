"""Following a run's job events until the run ends (for `leadflow tick --wait` and the demo)."""

from __future__ import annotations

import time
from uuid import UUID

from aiokafka import TopicPartition

from events import EventDecodeError, JobEvent, Topic, decode
from events.runs import PartRow, RunRow, derive_run, evolve_part, new_run

from ..runtime import kafka_clients
from ..runtime.errors import InfrastructureError
from ..runtime.partitions import topic_partitions


class RunFollower:
    """Reads jobs.events from the moment it starts; call start() before publishing the tick."""

    def __init__(self, bootstrap_servers: str, prefix: str) -> None:
        self.topic = Topic.JOBS_EVENTS.physical(prefix)
        self.consumer = kafka_clients.consumer(bootstrap_servers=bootstrap_servers, group_id=None,
                                         enable_auto_commit=False, fetch_max_wait_ms=100)
        self.parts: dict[UUID, dict[str, PartRow]] = {}
        self.runs: dict[UUID, RunRow] = {}

    async def start(self) -> None:
        await self.consumer.start()
        tps = [TopicPartition(self.topic, p)
               for p in (await topic_partitions(self.consumer, [self.topic]))[self.topic]]
        if not tps:
            raise InfrastructureError(f"topic {self.topic} does not exist; run `leadflow topics create`")
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve positions now, so nothing published after start() is missed
            await self.consumer.position(tp)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def wait(self, run_id: UUID, timeout: float, *, start_timeout: float = 60.0,
                   job: str = "<job>") -> RunRow:
        """The run's folded row once it is completed, failed or skipped; gives up (naming what
        to check) when no instance takes the tick within ``start_timeout`` or after ``timeout``."""
        began = time.monotonic()
        give_up = began + timeout
        while True:
            run = self.runs.get(run_id)
            if run is not None and run.terminal:
                return run
            now = time.monotonic()
            if run is None and now - began > min(start_timeout, timeout):
                raise InfrastructureError(
                    f"no {job} instance took tick {run_id} within {start_timeout:.0f}s: start one "
                    f"(leadflow run {job}) or see which are up (leadflow status)")
            if now >= give_up:
                raise InfrastructureError(
                    f"run {run_id} did not finish within {timeout:.0f}s; its parts so far: "
                    f"{self.describe(run_id)}. See `leadflow status` and the dashboard's runs")
            records = await self.consumer.getmany(timeout_ms=int(min(give_up - now, 0.5) * 1000))
            for record in (r for batch in records.values() for r in batch):
                try:
                    event = decode(record.value)
                except EventDecodeError:
                    continue  # not ours to judge here: the projector dead-letters it
                if isinstance(event, JobEvent):
                    self._fold(event)

    def describe(self, run_id: UUID) -> str:
        """The run's parts and their statuses, for a message."""
        parts = self.parts.get(run_id, {})
        return ", ".join(f"{name} {row.status}" for name, row in sorted(parts.items())) or "none"

    def _fold(self, event: JobEvent) -> None:
        parts = self.parts.setdefault(event.run_id, {})
        parts[event.part] = evolve_part(parts.get(event.part), event)
        base = self.runs.get(event.run_id) or new_run(event)
        self.runs[event.run_id] = derive_run(base, list(parts.values()))

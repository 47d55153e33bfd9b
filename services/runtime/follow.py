"""Following a run's job events until the run ends (for `leadflow tick --wait` and the demo)."""

from __future__ import annotations

import time
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition

from events import JobEvent, Topic, decode

from ..projector.fold import derive_run, evolve_part, new_run
from ..projector.rows import PartRow, RunRow
from .errors import InfrastructureError
from .partitions import topic_partitions


class RunFollower:
    """Reads jobs.events from the moment it starts; call start() before publishing the tick."""

    def __init__(self, bootstrap_servers: str, prefix: str) -> None:
        self.topic = Topic.JOBS_EVENTS.physical(prefix)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None,
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

    async def wait(self, run_id: UUID, timeout: float) -> RunRow:
        """The run's folded row once it is completed, failed or skipped."""
        give_up = time.monotonic() + timeout
        while True:
            run = self.runs.get(run_id)
            if run is not None and run.terminal:
                return run
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                raise InfrastructureError(f"run {run_id} did not finish within {timeout:.0f}s; is the "
                                   "job's service running? (leadflow run <job>)")
            records = await self.consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for record in (r for batch in records.values() for r in batch):
                event = decode(record.value)
                if isinstance(event, JobEvent):
                    self._fold(event)

    def _fold(self, event: JobEvent) -> None:
        parts = self.parts.setdefault(event.run_id, {})
        parts[event.part] = evolve_part(parts.get(event.part), event)
        base = self.runs.get(event.run_id) or new_run(event)
        self.runs[event.run_id] = derive_run(base, list(parts.values()))

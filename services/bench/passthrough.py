"""A raw aiokafka passthrough: what the broker and one Python process can move on this machine.

Run as its own process by `leadflow bench pipeline`:

    python -m services.bench.passthrough BOOTSTRAP SOURCE [TARGET] --count N --group G

It reads every partition of SOURCE from group G's position (the beginning for a new group) in
batches of 500, sends each batch to TARGET without awaiting each message (acks=all), awaits the
batch, commits, and exits after N messages. Without TARGET it is a sink that only consumes and
commits. No decode, no encode: the bytes, key and headers go through as they came.

It prints ``ready`` once its partitions are assigned and positioned, then one JSON line: count,
first (wall time the first message came in), last (the last batch acknowledged and committed),
cpu_seconds and peak_rss_mb of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiokafka import TopicPartition

from ..runtime import kafka_clients
from ..runtime.bus import make_producer
from ..runtime.partitions import topic_partitions
from . import procstat

BATCH = 500


async def passthrough(bootstrap: str, source: str, target: str | None, *, count: int,
                      group: str, idle_timeout: float) -> dict[str, Any]:
    """Move ``count`` messages from ``source`` to ``target`` (or only consume them)."""
    consumer = kafka_clients.consumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_poll_records=BATCH, client_id=group)
    producer = make_producer(bootstrap, client_id=group) if target else None
    await consumer.start()
    try:
        if producer is not None:
            await producer.start()
        # Assigned by hand: no group join to wait for, the group only keeps the offsets.
        tps = [TopicPartition(source, p)
               for p in (await topic_partitions(consumer, [source], wait=30))[source]]
        if not tps:
            raise SystemExit(f"topic {source} does not exist")
        consumer.assign(tps)
        for tp in tps:
            await consumer.position(tp)
        print("ready", flush=True)
        moved, first, quiet_since = 0, 0.0, time.monotonic()
        while moved < count:
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            records = [r for batch in batches.values() for r in batch]
            if not records:
                if time.monotonic() - quiet_since > idle_timeout:
                    raise SystemExit(f"{group}: {moved} of {count} messages after "
                                     f"{idle_timeout:.0f}s without one")
                continue
            first = first or time.time()
            quiet_since = time.monotonic()
            if producer is not None:
                sent = [await producer.send(target, r.value, key=r.key, headers=list(r.headers))
                        for r in records]
                await asyncio.gather(*sent)
            await consumer.commit()
            moved += len(records)
        return {"count": moved, "first": first, "last": time.time()}
    finally:
        if producer is not None:
            await producer.stop()
        await consumer.stop()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, move the messages, print the result as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m services.bench.passthrough")
    parser.add_argument("bootstrap")
    parser.add_argument("source")
    parser.add_argument("target", nargs="?")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--idle-timeout", type=float, default=300)
    args = parser.parse_args(argv)
    result = asyncio.run(passthrough(args.bootstrap, args.source, args.target, count=args.count,
                                     group=args.group, idle_timeout=args.idle_timeout))
    stat = procstat.read()
    result.update(cpu_seconds=stat.cpu_seconds, peak_rss_mb=stat.peak_rss_mb)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

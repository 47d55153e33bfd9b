"""Putting dead letters back on the topic they were read from, after a fix. The decision per
letter is pure; ``replay`` is the thin shell that publishes and records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from events import Topic
from events.routing import routing_key

from ..projector.fold import admit
from . import store


@dataclass(frozen=True, slots=True)
class Verdict:
    """What replay does with one letter: send it back to ``topic`` (with ``key``), or skip why."""

    letter: store.Letter
    topic: str | None = None
    key: bytes | None = None
    skip: str | None = None


def judge(letter: store.Letter, logical: dict[str, Topic], *, again: bool) -> Verdict:
    """Whether ``letter`` can go back now, and where. Pure."""
    if letter.replayed_at is not None and not again:
        return Verdict(letter, skip=f"already replayed at {letter.replayed_at.isoformat()} "
                                    "(--again to send it once more)")
    topic = letter.source_topic
    if topic is None:
        source = letter.payload.get("source_file") or letter.origin
        return Verdict(letter, skip=f"a bad row of {source}: fix the file and import it again "
                                    "(rows already imported are skipped)")
    if topic not in logical:
        return Verdict(letter, skip=f"{topic} is not a topic of this deployment (prefix?)")
    event, problem = admit(letter.original, logical[topic])
    if event is None:
        return Verdict(letter, skip=f"still invalid, so it would only come back: {problem}")
    return Verdict(letter, topic=topic, key=routing_key(event))


async def replay(pool: asyncpg.Pool, producer: AIOKafkaProducer, verdicts: Sequence[Verdict],
                 requested_by: str) -> int:
    """Send every letter judged sendable back (acks=all, awaited), then record it; returns how
    many went back. A crash between the two sends it again next time: what it causes downstream
    is idempotent (the original's event id and the ids derived from it are unchanged)."""
    sent = 0
    for verdict in verdicts:
        if verdict.topic is None:
            continue
        await producer.send_and_wait(verdict.topic, verdict.letter.original, key=verdict.key)
        await store.record_replayed(pool, verdict.letter.event_id, verdict.topic, requested_by)
        sent += 1
    return sent

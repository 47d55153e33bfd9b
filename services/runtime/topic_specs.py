"""What each topic should look like (from [topics]) and how the cluster's topics differ from it.

`leadflow topics create` creates what is missing with these settings and verifies what exists:
partitions, replication factor, min.insync.replicas and retention. Decisions are pure; the one
async function asks the cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from events import LEAD_TOPICS, Topic

from . import kafka_clients
from .config import TopicsConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as the config wants it."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


@dataclass(frozen=True, slots=True)
class FoundTopic:
    """One topic as the cluster has it. ``configs`` is None when the broker would not say."""

    partitions: int
    replication_factor: int
    configs: dict[str, str] | None


def topic_configs(topics: TopicsConfig, topic: Topic) -> dict[str, str]:
    """The topic-level settings leadflow sets: min.insync.replicas and retention.ms."""
    configs = {}
    if topics.min_insync_replicas:
        configs["min.insync.replicas"] = str(topics.min_insync_replicas)
    retention = topics.retention_for(topic)
    if retention is not None:
        configs["retention.ms"] = str(int(retention.total_seconds() * 1000))
    return configs


def wanted_specs(topics: TopicsConfig, which: Iterable[Topic] = tuple(Topic)) -> list[TopicSpec]:
    """Every physical topic of ``which``: a lead topic once shared and once per tenant with
    topics of its own."""
    return [TopicSpec(topics.name(t, tenant), topics.partitions_for(t, tenant),
                      topics.replication_factor, topic_configs(topics, t))
            for t in which
            for tenant in ((None, *sorted(topics.tenants)) if t in LEAD_TOPICS else (None,))]


def mismatches(wanted: Sequence[TopicSpec], found: dict[str, FoundTopic]) -> list[str]:
    """One line per difference between an existing topic and the config, with the fix. Pure."""
    problems = []
    for spec in wanted:
        have = found.get(spec.name)
        if have is None or have.partitions == 0:
            continue  # missing: created, not verified
        if have.partitions != spec.partitions:
            problems.append(f"{spec.name} has {have.partitions} partitions, the config says "
                            f"{spec.partitions} (set [topics] partitions or overrides to match, "
                            "or delete the topic on a broker you may empty)")
        if have.replication_factor != spec.replication_factor:
            problems.append(f"{spec.name} has replication factor {have.replication_factor}, the "
                            f"config says {spec.replication_factor} (change it with "
                            "kafka-reassign-partitions.sh, or set [topics] replication_factor)")
        for key, value in spec.configs.items():
            if have.configs is not None and have.configs.get(key) != value:
                problems.append(f"{spec.name} has {key}={have.configs.get(key)}, the config says "
                                f"{value} (kafka-configs.sh --alter --entity-type topics "
                                f"--entity-name {spec.name} --add-config {key}={value})")
    return problems


async def found_topics(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, FoundTopic]:
    """Partitions, replication factor and leadflow's topic configs of each existing topic."""
    found: dict[str, tuple[int, int]] = {}
    for entry in await admin.describe_topics(list(names)):
        name = entry.get("topic", entry.get("name"))
        partitions = entry.get("partitions") or []
        if name in names and partitions and not entry.get("error_code"):
            replicas = [len(p.get("replicas", p.get("replica_nodes", ()))) for p in partitions]
            found[name] = (len(partitions), min(replicas))
    configs = await _configs(admin, list(found))
    return {name: FoundTopic(n, rf, configs.get(name) if configs is not None else None)
            for name, (n, rf) in found.items()}


async def _configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]] | None:
    if not names:
        return {}
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
    except (KafkaError, NotImplementedError, ValueError) as exc:
        log.warning("the broker does not describe topic configs (%s); retention and "
                    "min.insync.replicas are not verified", exc,
                    extra={"action": "topic_configs_unverified"})
        return None
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in _resources(response):
            error, name, entries = resource[0], resource[3], resource[4]
            if error == 0:
                configs[name] = {e[0]: e[1] for e in entries if e[1] is not None}
    return configs


def _resources(response: Any) -> list[Any]:
    # DescribeConfigs v0-v4: (throttle_time_ms, resources), each resource
    # (error_code, error_message, resource_type, resource_name, config_entries).
    return list(getattr(response, "resources", ()) or ())


async def verify_topics(bootstrap_servers: str, topics: TopicsConfig
                        ) -> tuple[dict[str, FoundTopic], list[str]]:
    """Every leadflow topic as the cluster has it, and how it differs from the config."""
    wanted = wanted_specs(topics)
    admin = kafka_clients.admin(bootstrap_servers=bootstrap_servers, client_id="leadflow-admin")
    await kafka_clients.start(admin)
    try:
        found = await found_topics(admin, [spec.name for spec in wanted])
    finally:
        await admin.close()
    return found, mismatches(wanted, found)

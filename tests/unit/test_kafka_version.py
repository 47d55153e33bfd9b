"""One Apache Kafka version everywhere: the tests, `--broker kafka` and compose.yaml."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from services.runtime import apache_kafka
from services.runtime.apache_kafka import KAFKA_VERSION, POM, cluster_id

ROOT = Path(__file__).parents[2]


def test_compose_runs_the_kafka_version_the_tests_run() -> None:
    images = re.findall(r"image:\s*apache/kafka:(\S+)", (ROOT / "compose.yaml").read_text())
    assert images and set(images) == {KAFKA_VERSION}


def test_the_pom_takes_its_version_from_the_code() -> None:
    pom = POM.read_text()
    assert "<artifactId>kafka_2.13</artifactId>" in pom
    assert "<version>${kafka.version}</version>" in pom


def test_cluster_ids_have_kafkas_22_character_form() -> None:
    ids = {cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-storage reads `-t -Xyz...` as an option; Kafka's own Uuid.randomUuid() draws again
    for such ids, and so must we (one random id in 64 starts with '-')."""
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(apache_kafka.uuid, "uuid4", lambda: next(draws))
    assert not cluster_id().startswith("-")

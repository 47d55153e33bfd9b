"""Shared fixtures.

Integration tests talk to a real broker and a real Postgres, both started once per session on
free ports. The broker is Tansu, Apache Kafka, or each in turn (LEADFLOW_TEST_BROKER=tansu|kafka|
both): tests that take the ``broker`` fixture run once per broker chosen. Postgres is
DATABASE_URL when set, otherwise an embedded server. Each test gets its own database, cloned from
a template the session migrates once, and its own topic prefix (whose topics are deleted after
the test on Apache Kafka, which keeps them on disk).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.pipeline.settings import Settings
from services.runtime.apache_kafka import ApacheKafka
from services.runtime.db import connect, create_pool, quote_ident
from services.runtime.embedded import EmbeddedPostgres, TansuBroker
from services.runtime.migrations import migrate
from tests.harness import ARTIFACTS, dsn_for, kafka_or_skip, make_config

#: The suite's own server: enough connections for every service pool of the biggest test, and
#: no fsync (its data is thrown away at the end).
TEST_POSTGRES_SETTINGS = {
    "max_connections": "400",
    "shared_buffers": "256MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tier markers follow the folder: tests/unit, tests/integration, tests/e2e, tests/faults.
    A test marked ``any_broker`` runs on the first broker under test only."""
    first = brokers_under_test()[0]
    kept, dropped = [], []
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in ("unit", "integration", "e2e", "faults"):
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
        callspec = getattr(item, "callspec", None)
        broker = callspec.params.get("broker_server") if callspec is not None else None
        if item.get_closest_marker("any_broker") and broker not in (None, first):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


BROKER_CHOICES = {"tansu": ("tansu",), "kafka": ("kafka",), "both": ("tansu", "kafka")}


def brokers_under_test() -> tuple[str, ...]:
    """The brokers LEADFLOW_TEST_BROKER names (default: both)."""
    choice = os.environ.get("LEADFLOW_TEST_BROKER", "both").strip().lower()
    if choice not in BROKER_CHOICES:
        raise pytest.UsageError(f"LEADFLOW_TEST_BROKER={choice!r}: use one of {sorted(BROKER_CHOICES)}")
    return BROKER_CHOICES[choice]


@dataclass(frozen=True)
class BrokerServer:
    kind: str
    bootstrap: str


@pytest.fixture(scope="session", params=brokers_under_test())
def broker_server(request: pytest.FixtureRequest) -> Iterator[BrokerServer]:
    """A broker that lives for the session: Tansu (memory) or a one-node Apache Kafka."""
    ARTIFACTS.mkdir(exist_ok=True)
    if request.param == "tansu":
        tansu = TansuBroker(log_file=ARTIFACTS / "tansu.log")
        yield BrokerServer("tansu", tansu.start())
        tansu.stop()
        return
    kafka_or_skip()
    kafka = ApacheKafka(1, log_dir=ARTIFACTS)
    yield BrokerServer("kafka", kafka.start())
    kafka.stop()


@pytest.fixture(scope="session")
def broker(broker_server: BrokerServer) -> str:
    """Bootstrap address of the session's broker."""
    return broker_server.bootstrap


@pytest.fixture(scope="session")
def broker_kind(broker_server: BrokerServer) -> str:
    """'tansu' or 'kafka'."""
    return broker_server.kind


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """DSN of a Postgres the suite may create databases on: DATABASE_URL when set, otherwise an
    embedded server that lives for the session."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    ARTIFACTS.mkdir(exist_ok=True)
    server = EmbeddedPostgres(server_settings=TEST_POSTGRES_SETTINGS)
    server.start()
    try:
        yield server.uri("postgres")
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def template_db(admin_dsn: str) -> AsyncIterator[str]:
    """A migrated database that every test's database is cloned from."""
    name = f"leadflow_tpl_{os.getpid()}"
    async with connect(admin_dsn) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")
        await conn.execute(f"CREATE DATABASE {quote_ident(name)}")
    await migrate(dsn_for(admin_dsn, name))
    yield name
    async with connect(admin_dsn) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


@pytest.fixture
async def database(admin_dsn: str, template_db: str) -> AsyncIterator[str]:
    """DSN of a fresh database for one test (dropped afterwards)."""
    name = f"leadflow_t_{uuid.uuid4().hex[:12]}"
    async with connect(admin_dsn) as conn:
        await conn.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template_db)}")
    yield dsn_for(admin_dsn, name)
    async with connect(admin_dsn) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on this test's database (for tests of one table's owner module)."""
    pool = await create_pool(database)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def prefix(broker_server: BrokerServer) -> AsyncIterator[str]:
    """A topic prefix no other test uses."""
    name = f"t{uuid.uuid4().hex[:10]}."
    yield name
    if broker_server.kind == "kafka":
        await delete_topics(broker_server.bootstrap, name)


@pytest.fixture
def settings(broker: str, database: str, prefix: str) -> Settings:
    """Settings for one test: its own database, its own topics, the session broker."""
    return Settings(database_url=database, kafka_bootstrap_servers=broker,
                    instance_id="test").using(make_config(prefix))


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic named with ``prefix`` (a test's topics, once it is over)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-cleanup")
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()

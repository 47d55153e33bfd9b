"""Shared fixtures.

Integration tests talk to a real Tansu broker (launched once per session on a free port) and
a real Postgres (DATABASE_URL, default the local server). Each test gets its own database,
cloned from a template the session migrates once, and its own topic prefix.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.runtime.config import LeadflowConfig, StageConfig, TopicsConfig
from services.runtime.db import apply_schema, connect, quote_ident
from services.runtime.embedded import TansuBroker
from services.runtime.settings import Settings

ADMIN_DSN = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tier markers follow the folder: tests/unit, tests/integration, tests/e2e."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in ("unit", "integration", "e2e"):
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


def dsn_for(database: str) -> str:
    """``ADMIN_DSN`` pointed at another database on the same server."""
    base, _, query = ADMIN_DSN.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{database}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """Bootstrap address of a Tansu broker that lives for the whole session."""
    log = ARTIFACTS / "tansu.log"
    ARTIFACTS.mkdir(exist_ok=True)
    tansu = TansuBroker(log_file=log)
    bootstrap = tansu.start()
    yield bootstrap
    tansu.stop()


@pytest.fixture(scope="session")
async def template_db() -> AsyncIterator[str]:
    """A migrated database that every test's database is cloned from."""
    name = f"leadflow_tpl_{os.getpid()}"
    async with connect(ADMIN_DSN) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")
        await conn.execute(f"CREATE DATABASE {quote_ident(name)}")
    await apply_schema(dsn_for(name))
    yield name
    async with connect(ADMIN_DSN) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


@pytest.fixture
async def database(template_db: str) -> AsyncIterator[str]:
    """DSN of a fresh database for one test (dropped afterwards)."""
    name = f"leadflow_t_{uuid.uuid4().hex[:12]}"
    async with connect(ADMIN_DSN) as conn:
        await conn.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template_db)}")
    yield dsn_for(name)
    async with connect(ADMIN_DSN) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}."


def make_config(prefix: str, **sections: object) -> LeadflowConfig:
    """A config for tests: small partition counts and quick stage polling, plus ``sections``."""
    base: dict[str, object] = {
        "topics": TopicsConfig(prefix=prefix, partitions=3),
        "stage": StageConfig(batch_size=500),
    }
    base.update(sections)
    return LeadflowConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings(broker: str, database: str, prefix: str) -> Settings:
    """Settings for one test: its own database, its own topics, the session broker."""
    return Settings(database_url=database, kafka_bootstrap_servers=broker,
                    instance_id="test").using(make_config(prefix))

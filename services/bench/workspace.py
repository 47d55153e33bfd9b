"""Where one part of `leadflow bench pipeline` runs: its config file, its topic prefix, a scratch
database, and service processes started from them. Nothing a deployment uses is touched."""

from __future__ import annotations

import asyncio
import json
import os
import time
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from datetime import date, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from events import STAGE_INPUTS, TOPIC_STAGES, JobName

from ..pipeline.config import load_config
from ..pipeline.settings import Settings
from ..pipeline.stack import Stack
from ..runtime import instances
from ..runtime.db import connect, ensure_database, quote_ident
from ..runtime.errors import InfrastructureError
from ..runtime.migrations import migrate
from .clock import dsn_for

#: The stage jobs the benchmark runs, in pipeline order (harvest is replaced by the import).
STAGE_JOBS = TOPIC_STAGES


def postgres_settings(memory_bytes: int | None = None) -> dict[str, str]:
    """postgresql.conf for the embedded Postgres a benchmark starts: what a production server
    would be given (a quarter of the memory for buffers, up to 2 GB; checkpoints spaced so a
    long run is not dominated by full-page writes) instead of the 128 MB / 1 GB WAL defaults.
    Durability is untouched: fsync and synchronous commits stay on."""
    if memory_bytes is None:
        memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    buffers_mb = max(128, min(2048, memory_bytes // 4 // 2**20))
    return {"shared_buffers": f"{buffers_mb}MB", "max_wal_size": "8GB",
            "checkpoint_timeout": "30min"}


def bench_config(user: dict[str, Any], leads: int,
                 tenants: Collection[str] = ()) -> dict[str, Any]:
    """The user's config (parsed TOML) made fit for a benchmark: the stages tick every second
    with a cap that covers the import, contact sends in proof mode without quotas or domain
    limits (a throttled lead would never reach its final status), no harvest sources;
    ``tenants`` get lead topics of their own."""
    raw = {key: value for key, value in user.items() if key != "harvest"}
    if tenants:
        own = {**raw.get("topics", {}).get("tenants", {}), **{t: {} for t in tenants}}
        raw["topics"] = {**raw.get("topics", {}), "tenants": own}
    jobs = dict(raw.get("jobs", {}))
    for job in STAGE_JOBS:
        jobs[job.value] = {"schedule": "every 1s", "timezone": "UTC",
                           "max_leads_per_run": leads, "catchup": "none",
                           "timeout_seconds": 7200}
    contact = {key: value for key, value in raw.get("contact", {}).items()
               if key not in {"quotas", "domain_rate", "smtp"}}
    return {**raw, "jobs": jobs, "contact": {**contact, "sender": "proof"}}


def toml_text(raw: dict[str, Any]) -> str:
    """``raw`` as TOML, one top-level key per line (nested tables inline)."""
    return "".join(f"{json.dumps(key)} = {_toml_value(value)}\n" for key, value in raw.items())


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's string escapes are valid in TOML basic strings
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def write_config(path: Path, user_config: Path | None, leads: int,
                 tenants: Collection[str] = ()) -> Path:
    """Write the benchmark's config file beside the run's logs, validated; return its path."""
    user = tomllib.loads(user_config.read_text(encoding="utf-8")) if user_config else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(toml_text(bench_config(user, leads, tenants)), encoding="utf-8")
    load_config(path)  # a config error surfaces here, not in six service logs
    return path


def configured(settings: Settings, config: Path, prefix: str) -> Settings:
    """``settings`` running ``config`` under topic ``prefix``."""
    pipeline = load_config(config)
    topics = pipeline.topics.model_copy(update={"prefix": prefix})
    return settings.using(pipeline.model_copy(update={"topics": topics}), config=config,
                          topic_prefix=prefix)


@asynccontextmanager
async def scratch_database(settings: Settings, label: str) -> AsyncIterator[Settings]:
    """A fresh database with the schema applied, dropped on exit: every part of the benchmark
    starts from empty read models, ledgers and clock tables."""
    name = f"leadflow_bench_{uuid.uuid4().hex[:8]}_{label}"
    await ensure_database(settings.database_url, name)
    try:
        dsn = dsn_for(settings.database_url, name)
        await migrate(dsn)
        yield settings.using(settings.pipeline, database_url=dsn)
    finally:
        async with connect(settings.database_url) as conn:
            await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


def stack_for(settings: Settings, workdir: Path, services: tuple[str, ...] = ()) -> Stack:
    """Service processes of ``settings`` (its config, prefix and database), logging to workdir."""
    stack = Stack(config=settings.config, services=services, workdir=workdir,
                  database_url=settings.database_url, bootstrap=settings.kafka_bootstrap_servers,
                  extra_env={"LEADFLOW_TOPIC_PREFIX": settings.prefix,
                             "LEADFLOW_LOG_LEVEL": "WARNING"})
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    return stack


async def wait_owned(settings: Settings, jobs: Collection[JobName], pids: Collection[int],
                     check: Callable[[], None] = lambda: None, timeout: float = 120) -> None:
    """Until, for each of ``jobs``, the instances among ``pids`` own every input partition."""
    topics = settings.pipeline.topics
    wanted = {job: list(range(topics.partitions_of(STAGE_INPUTS[job][0]))) for job in jobs}
    give_up = time.monotonic() + timeout
    async with connect(settings.database_url) as conn:
        while True:
            check()
            live = [i for i in await instances.live(conn) if i.pid in pids]
            waiting = [job.value for job, partitions in wanted.items() if partitions != sorted(
                p for i in live if i.job == job.value for p in i.partitions)]
            if not waiting:
                return
            if time.monotonic() > give_up:
                raise InfrastructureError(f"{', '.join(waiting)} did not take every partition "
                                          f"within {timeout:.0f}s")
            await asyncio.sleep(0.25)

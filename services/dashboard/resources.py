"""What the dashboard's handlers share: a read-model pool and a publisher onto the log."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from events import Envelope

from ..runtime.bus import Publisher, make_broker
from ..runtime.config import DashboardConfig, PlatformConfig
from ..runtime.db import READ_SCHEMA, create_pool
from ..runtime.errors import ConfigError, InfrastructureError
from ..runtime.settings import Settings

log = logging.getLogger(__name__)

BROKER_PROBE_TIMEOUT = 10.0
PUBLISH_TIMEOUT = 15.0


def resolve_token(settings: Settings) -> str | None:
    """The control token: LEADFLOW_DASHBOARD_TOKEN, else [dashboard] token; blank means none."""
    token = settings.dashboard_token or settings.pipeline.dashboard.token or ""
    return token.strip() or None


def resolve_read_token(settings: Settings) -> str | None:
    """The read-only token: LEADFLOW_DASHBOARD_READ_TOKEN, else [dashboard] read_token; blank
    means none. It must differ from the control token, or "read-only" would mean nothing."""
    token = (settings.dashboard_read_token or settings.pipeline.dashboard.read_token or "").strip()
    if token and token == resolve_token(settings):
        raise ConfigError("dashboard read_token equals the control token; give the read-only "
                          "token its own value (LEADFLOW_DASHBOARD_READ_TOKEN or [dashboard] "
                          "read_token)")
    return token or None


class Resources:
    """Opened by the app's lifespan. The broker connects lazily, so the page and the read API
    work while Kafka is down; /readyz says so."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.token = resolve_token(settings)
        self.read_token = resolve_read_token(settings)
        self._pool: asyncpg.Pool | None = None
        self._broker: KafkaBroker | None = None
        self._connecting: asyncio.Task[KafkaBroker] | None = None

    @property
    def config(self) -> PlatformConfig:
        return self.settings.pipeline

    @property
    def dashboard(self) -> DashboardConfig:
        return self.settings.pipeline.dashboard

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "Resources.start() was not called"
        return self._pool

    async def start(self) -> None:
        self._pool = await create_pool(self.settings.database_url, search_path=READ_SCHEMA,
                                       max_size=4)
        self._connecting = asyncio.create_task(self._connect())  # warm up: first click is fast
        self._connecting.add_done_callback(_log_unreachable)

    async def stop(self) -> None:
        if self._connecting is not None:
            # Not cancelled: a start cut short leaves FastStream's producer open.
            with contextlib.suppress(Exception):
                self._broker = await self._connecting
        if self._broker is not None:
            await self._broker.stop()
            self._broker = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def broker(self) -> KafkaBroker:
        """The started broker, connecting now if needed; InfrastructureError if unreachable."""
        if self._broker is not None:
            return self._broker
        if self._connecting is None or (self._connecting.done() and self._connecting.exception()):
            self._connecting = asyncio.create_task(self._connect())
            self._connecting.add_done_callback(_log_unreachable)
        # Shielded: a request that goes away does not cut the shared connection attempt short.
        self._broker = await asyncio.shield(self._connecting)
        return self._broker

    async def _connect(self) -> KafkaBroker:
        bootstrap = self.settings.kafka_bootstrap_servers
        try:
            # FastStream leaks its producer when start() fails, so probe with a client we close.
            await asyncio.wait_for(_probe(bootstrap), BROKER_PROBE_TIMEOUT)
        except Exception as exc:  # whatever the client raised, it did not connect
            raise InfrastructureError(f"cannot reach the broker at {bootstrap} ({exc!r}); start it "
                                      "or set KAFKA_BOOTSTRAP_SERVERS") from exc
        broker = make_broker(bootstrap, client_id="leadflow-dashboard")
        try:
            await broker.start()
        except Exception as exc:  # the broker went away between the probe and the start
            raise InfrastructureError(f"cannot connect to the broker at {bootstrap} ({exc!r}); "
                                      "check that it is up") from exc
        return broker

    async def publish(self, event: Envelope) -> None:
        """Publish one event and wait for the broker's acknowledgement."""
        broker = await self.broker()
        try:
            await asyncio.wait_for(Publisher(broker, self.settings.pipeline.topics).publish_one(event),
                                   PUBLISH_TIMEOUT)
        except (TimeoutError, KafkaError) as exc:
            raise InfrastructureError(
                f"the broker did not accept the {event.type} event ({exc!r}); check the broker and "
                "that the topics exist (`leadflow topics create`)") from exc

    async def broker_reachable(self, timeout: float = 2.0) -> bool:
        try:
            broker = await self.broker()
        except InfrastructureError:
            return False
        return await broker.ping(timeout)


async def _probe(bootstrap_servers: str) -> None:
    """Raise unless the broker answers a metadata request."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, client_id="leadflow-dashboard-probe")
    try:
        await client.bootstrap()
    finally:
        await client.close()


def _log_unreachable(task: asyncio.Task[KafkaBroker]) -> None:
    if not task.cancelled() and isinstance(task.exception(), InfrastructureError):
        log.warning("%s", task.exception(), extra={"action": "broker_unreachable"})

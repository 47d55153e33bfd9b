"""`leadflow run dashboard`: the app under uvicorn until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..runtime.config import DashboardConfig, describe_validation_error
from ..runtime.errors import ConfigError, InfrastructureError
from ..runtime.settings import Settings
from .app import create_app

log = logging.getLogger(__name__)


class ListenEnv(BaseSettings):
    """LEADFLOW_DASHBOARD_HOST and LEADFLOW_DASHBOARD_PORT override [dashboard] host and port
    (`leadflow dev` sets them)."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_DASHBOARD_", extra="ignore", frozen=True)

    host: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=0, le=65535)


def listen_config(settings: Settings, env: ListenEnv | None = None) -> DashboardConfig:
    """The [dashboard] section with the environment's host and port applied."""
    try:
        env = env or ListenEnv()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "the environment")) from exc
    changes = {k: v for k, v in (("host", env.host), ("port", env.port)) if v is not None}
    return settings.pipeline.dashboard.model_copy(update=changes)


def dashboard_url(settings: Settings, env: ListenEnv | None = None) -> str:
    """Where a browser on this machine finds the page."""
    config = listen_config(settings, env)
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.port}/"


class Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``serve`` owns SIGINT/SIGTERM and returns
    normally after a graceful stop instead of re-raising the signal."""

    def __init__(self, config: uvicorn.Config,
                 on_started: Callable[[int], None] | None = None) -> None:
        super().__init__(config)
        self.on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_started is not None:
            self.on_started(self.port)

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the OS chose for port 0)."""
        return self.servers[0].sockets[0].getsockname()[1]


async def serve(settings: Settings) -> None:
    """Serve the dashboard until SIGINT or SIGTERM, then finish open requests and stop."""
    config = listen_config(settings)

    def announce(port: int) -> None:
        url = dashboard_url(settings, ListenEnv(host=config.host, port=port))
        log.info("dashboard on %s", url, extra={"action": "dashboard_started"})

    server = Server(uvicorn.Config(create_app(settings), host=config.host, port=config.port,
                                   log_config=None, access_log=False, lifespan="on"), announce)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)
    try:
        await server.serve()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if not server.started:
        raise InfrastructureError(
            "the dashboard did not start; the error above says why (commonly: Postgres is "
            "unreachable, check DATABASE_URL; or the port is taken, set [dashboard] port)")
    log.info("dashboard stopped", extra={"action": "dashboard_stopped"})

"""What every CLI command shares: the consoles, the config option, the error boundary."""

from __future__ import annotations

import asyncio
import getpass
import socket
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from aiokafka.errors import KafkaError
from rich.console import Console

from events import LeadflowError

from ..pipeline.settings import Settings, load_settings
from ..runtime import kafka_clients

console = Console(stderr=False)
err = Console(stderr=True)
T = TypeVar("T")

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", envvar="LEADFLOW_CONFIG", help="Config file (TOML).", show_envvar=True)]


class LocalBroker(StrEnum):
    """The broker `dev` and `demo` start when KAFKA_BOOTSTRAP_SERVERS is unset."""

    TANSU = "tansu"
    KAFKA = "kafka"


BrokerOption = Annotated[LocalBroker, typer.Option(
    "--broker", case_sensitive=False,
    help="tansu: pure pip, memory only. kafka: Apache Kafka from the Maven cache (needs Java "
         "and Maven), what production runs. Ignored when KAFKA_BOOTSTRAP_SERVERS is set.")]


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine under the error boundary: known errors print a cause and exit 1."""
    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except LeadflowError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    except KafkaError as exc:  # at start: the brokers cannot be reached, or refuse the login
        err.print(f"[bold red]error:[/] {kafka_clients.explain(exc)}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def settings_for(config: Path | None) -> Settings:
    try:
        return load_settings(config=config)
    except LeadflowError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"

"""`leadflow dev`: the product on one machine, with the demo data, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import tempfile
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from ..pipeline.registry import SERVICE_NAMES
from ..pipeline.settings import load_settings
from ..pipeline.stack import Stack
from ..runtime.embedded import free_port
from .demo import demo_config, pipeline_pass

SERVICES = SERVICE_NAMES


async def run_dev(config: Path | None, console: Console, *, broker: str = "tansu") -> None:
    config = config or demo_config()
    workdir = Path(tempfile.mkdtemp(prefix="leadflow-dev-"))
    port = int(os.environ.get("LEADFLOW_DASHBOARD_PORT") or free_port())
    token = os.environ.get("LEADFLOW_DASHBOARD_TOKEN") or secrets.token_urlsafe(16)
    read_token = os.environ.get("LEADFLOW_DASHBOARD_READ_TOKEN") or secrets.token_urlsafe(16)
    stack = Stack(config=config, services=SERVICES, workdir=workdir, extra_env={
        "LEADFLOW_DASHBOARD_PORT": str(port), "LEADFLOW_DASHBOARD_TOKEN": token,
        "LEADFLOW_DASHBOARD_READ_TOKEN": read_token, "LEADFLOW_DASHBOARD_HOST": "127.0.0.1"},
        broker_kind=broker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with console.status("starting Postgres, the broker and the services..."):
            await stack.start_servers(say=console.print)
            await stack.start_services()
        # One pass through every stage with the demo data, so the dashboard opens on a
        # pipeline that has run; the clock then ticks the stages on the config's schedules.
        await pipeline_pass(stack, load_settings(config=config), console, "leadflow dev")
        console.print(Panel.fit(
            # The fragment carries the read token to the page and never reaches the server.
            f"[bold]dashboard[/]  http://127.0.0.1:{port}/#token={read_token}\n"
            "           (the link carries the read token; the page keeps it in the tab)\n"
            f"[bold]token[/]      {token}  (for the dashboard's controls)\n"
            f"[bold]logs[/]       {stack.log_dir}\n"
            f"[bold]config[/]     {config}\n\n"
            "The demo leads went through every stage once (above); the clock now\n"
            "ticks each stage on the demo config's schedule. To run one now, from\n"
            "another terminal:\n"
            f"  export KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap}\n"
            f"  export DATABASE_URL='{stack.database_url}'\n"
            f"  export LEADFLOW_CONFIG={config}\n"
            "  leadflow tick score --wait\n\n"
            "Ctrl-C stops everything (the local broker and database keep nothing).",
            title="leadflow dev", border_style="green"))
        while not stop.is_set():
            stack.check_alive()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
        console.print("stopping...")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await asyncio.to_thread(stack.stop)
        shutil.rmtree(workdir, ignore_errors=True)

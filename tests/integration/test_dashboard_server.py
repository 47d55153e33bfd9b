"""`leadflow run dashboard` as a process: serves the page and the API, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx

from services.pipeline.settings import Settings

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until_up(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            assert process.returncode is None, "the dashboard exited during start-up"
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


async def test_run_dashboard_serves_the_page_and_stops_on_sigterm(settings: Settings,
                                                                   tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "leadflow.toml"
    config.write_text(f'[topics]\nprefix = "{settings.prefix}"\npartitions = 3\n\n'
                      f'[dashboard]\nport = {free_port()}\ntoken = "from-file"\n')
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers}
    for name in ("LEADFLOW_DASHBOARD_TOKEN", "LEADFLOW_DASHBOARD_HOST", "LEADFLOW_DASHBOARD_PORT"):
        env.pop(name, None)
    env["LEADFLOW_DASHBOARD_PORT"] = str(port)  # as `leadflow dev` does: wins over the file
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli.main", "run", "dashboard", "--config", str(config),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(f"{base}/healthz", process)
        async with httpx.AsyncClient(base_url=base) as client:
            page = await client.get("/")
            assert page.status_code == 200 and "<title>leadflow dashboard</title>" in page.text
            script = await client.get("/static/app.js")
            assert script.status_code == 200 and "api/dashboard" in script.text
            assert (await client.get("/static/app.css")).status_code == 200
            assert "//cdn" not in page.text + script.text  # everything is served from here
            ui = (await client.get("/api/ui")).json()
            assert ui["controls_enabled"] is True and ui["jobs"][0] == "harvest"
            assert (await client.get("/api/dashboard")).status_code == 401  # lead data: token
            assert (await client.get("/api/dashboard", headers={
                "Authorization": "Bearer from-file"})).status_code == 200
            assert (await client.get("/api/openapi.json")).json()["info"]["title"] == "leadflow dashboard"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    assert process.returncode == 0, log
    assert f"dashboard on http://127.0.0.1:{port}/" in log
    assert "dashboard stopped" in log

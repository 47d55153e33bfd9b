"""`leadflow topics create` makes topics as [topics] says (partitions, replication factor,
min.insync.replicas, retention) and fails naming each way existing topics differ, with the fix."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner, Result

from services.cli.main import app
from services.pipeline.settings import Settings


async def topics_create(settings: Settings, config: Path, extra: str) -> Result:
    text = f'[topics]\nprefix = "{settings.prefix}"\npartitions = 2\n{extra}'
    await asyncio.to_thread(config.write_text, text)
    env = {"DATABASE_URL": settings.database_url,
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "LEADFLOW_CONFIG": str(config)}
    return await asyncio.to_thread(CliRunner().invoke, app, ["topics", "create"], env=env)


async def test_topics_are_created_as_configured_and_verified_against_the_config(
        settings: Settings, broker_kind: str, tmp_path: Path) -> None:
    config = tmp_path / "topics.toml"
    first = await topics_create(settings, config, 'retention = "1d"\nmin_insync_replicas = 1\n')
    assert first.exit_code == 0, first.output
    leads_new = next(line for line in first.output.splitlines()
                     if line.startswith(f"{settings.prefix}leads.new "))
    assert "2 partitions, replication 1" in leads_new
    describes_configs = "retention.ms=" in leads_new
    if broker_kind == "kafka":  # a broker that cannot describe configs gets them unverified
        assert describes_configs
    if describes_configs:
        assert "retention.ms=86400000" in leads_new and "min.insync.replicas=1" in leads_new

    again = await topics_create(settings, config, 'retention = "1d"\nmin_insync_replicas = 1\n')
    assert again.exit_code == 0, again.output  # what exists and matches is fine

    longer = await topics_create(settings, config, 'retention = "2d"\n')
    if describes_configs:
        assert longer.exit_code == 1
        assert "retention.ms=86400000, the config says 172800000" in longer.output
        assert "kafka-configs.sh --alter" in longer.output
    else:
        assert longer.exit_code == 0, longer.output

    replicated = await topics_create(settings, config, "replication_factor = 2\n")
    assert replicated.exit_code == 1
    assert "has replication factor 1, the config says 2" in " ".join(replicated.output.split())

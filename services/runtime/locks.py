"""Postgres advisory-lock ids, from one place. Deployments may share a database (each with
its own topic prefix), so every key carries the deployment's prefix: two deployments never
block each other's clock, harvest, replay, projector, notifier or instances. The one
database-wide lock is the schema's (migrations.py): the tables are shared."""

from __future__ import annotations

import zlib


def advisory_key(name: str, prefix: str, *parts: str) -> int:
    """The lock id of ``name`` (e.g. "clock") for one deployment, narrowed by ``parts``."""
    return zlib.crc32(":".join((f"leadflow-{name}", prefix, *parts)).encode())

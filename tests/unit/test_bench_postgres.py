"""The embedded Postgres a benchmark starts is configured like a production server."""

from __future__ import annotations

from services.bench.workspace import postgres_settings

GIB = 2**30


def test_buffers_are_a_quarter_of_memory_within_bounds() -> None:
    assert postgres_settings(4 * GIB)["shared_buffers"] == "1024MB"
    assert postgres_settings(24 * GIB)["shared_buffers"] == "2048MB"  # capped
    assert postgres_settings(GIB // 4)["shared_buffers"] == "128MB"  # never below the default


def test_checkpoints_are_spaced_and_durability_is_untouched() -> None:
    settings = postgres_settings(8 * GIB)
    assert settings["max_wal_size"] == "8GB" and settings["checkpoint_timeout"] == "30min"
    assert not {"fsync", "synchronous_commit", "full_page_writes"} & set(settings)

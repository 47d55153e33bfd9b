"""The services registry: every entry point it names exists, and the stages are the pipeline's
jobs in order (so `leadflow run`, `leadflow dev` and the help text agree)."""

from __future__ import annotations

import importlib
import inspect

from events import PIPELINE
from services.cli.registry import SERVICE_NAMES, SERVICES, STAGE_NAMES


def test_every_entry_point_exists_and_takes_the_settings() -> None:
    for spec in SERVICES.values():
        module, _, function = spec.entry.partition(":")
        entry = getattr(importlib.import_module(module), function)
        params = list(inspect.signature(entry).parameters.values())
        assert params[0].name == "settings", spec
        assert all(p.default is not p.empty for p in params[1:]), spec  # called with settings only
        assert inspect.iscoroutinefunction(entry) is not spec.stage, spec  # build() is sync


def test_the_stages_are_the_pipeline_jobs_in_order_and_come_first() -> None:
    assert tuple(job.value for job in PIPELINE) == STAGE_NAMES
    assert SERVICE_NAMES[:len(STAGE_NAMES)] == STAGE_NAMES
    assert {"projector", "clock", "dashboard", "alerts"} <= set(SERVICE_NAMES)

"""The registry (services/pipeline/registry.py): every entry point it names exists, the stages
are the pipeline's jobs in order (so `leadflow run`, `leadflow dev`, replay, status and the help
text agree), and each stage's config section is its own package's."""

from __future__ import annotations

import importlib
import inspect

import pytest
from typer.testing import CliRunner

from events import PIPELINE, JobName
from services.cli.main import app
from services.pipeline.config import LeadflowConfig
from services.pipeline.registry import (
    SERVICE_NAMES,
    SERVICES,
    STAGE_NAMES,
    STAGE_SPECS,
    STAGES,
    load,
    scope_problem,
)
from services.runtime.config import PlatformConfig, Section
from services.runtime.errors import ConfigError
from services.runtime.replayable import ReplayableLogic
from services.score.config import ScoreConfig


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


def test_the_registry_lists_the_pipeline_jobs_in_order() -> None:
    assert tuple(spec.job for spec in STAGES) == PIPELINE
    assert tuple(STAGE_SPECS) == PIPELINE


def test_each_stage_has_its_own_config_section_on_the_whole_config() -> None:
    # The section sits beside its decide.py (services/<stage>/config.py); LeadflowConfig names
    # it after the job, which is how the stage's app finds it.
    config = LeadflowConfig()
    for spec in STAGES:
        package = spec.app.rpartition(".")[0]
        models = [v for v in vars(importlib.import_module(f"{package}.config")).values()
                  if isinstance(v, type) and issubclass(v, Section)
                  and v.__module__ == f"{package}.config"]
        section = config.section(spec.name, Section)
        assert type(section) in models, spec


def test_a_replayable_stage_names_the_logic_its_runs_use() -> None:
    replayable = {spec.job for spec in STAGES if spec.replay}
    assert replayable == {JobName.SCORE, JobName.QUALIFY, JobName.ROUTE}
    for spec in STAGES:
        if spec.replay is None:
            continue
        logic = load(spec.replay.logic)
        assert issubclass(logic, ReplayableLogic) and not inspect.isabstract(logic), spec
        assert logic.job is spec.job and logic.accepts, spec
        assert spec.replay.redecide, spec


def test_a_config_without_the_stage_sections_says_how_to_load_the_whole_file() -> None:
    with pytest.raises(ConfigError, match=r"no \[score\] section of ScoreConfig.*load_config"):
        PlatformConfig().section("score", ScoreConfig)


def test_the_cli_refuses_a_scoped_tick_a_stage_cannot_honour_before_publishing_it() -> None:
    # No broker is running here: the refusal comes before anything is published.
    result = CliRunner().invoke(app, ["tick", "qualify", "--tenant", "acme", "--max-leads", "3"])
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert said.startswith("error: qualify cannot run for one campaign, or for a tenant without")
    assert "leave out --tenant and --campaign" in said
    assert scope_problem(JobName.CONTACT, "acme", "q4") is None
    assert scope_problem(JobName.HARVEST, "acme", None) is None
    assert scope_problem(JobName.SCORE, "*", None) is None

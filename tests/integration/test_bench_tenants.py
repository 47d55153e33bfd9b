"""`leadflow bench tenants --quick` as a user runs it: a real process with its own embedded
Postgres and Tansu, both topic layouts, figures in JSON. Speeds are never asserted, only that
every tenant reached its target in both layouts and the SLA figure was measured."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from events import Topic
from services.bench.tenants import p90, tenant_plan
from services.bench.workspace import bench_config, toml_text
from services.pipeline.config import LeadflowConfig
from tests.harness.bench import run_bench


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_tenant_bench_measures_the_sla_in_both_layouts(tmp_path: Path) -> None:
    done, figures = run_bench(tmp_path, "tenants", "--quick")
    assert figures["tenants"] == 20 and figures["target"] == 50
    assert figures["leads"] == sum(figures["plan"].values())
    for layout in ("own_topics", "shared_topics"):
        run = figures["layouts"][layout]
        assert set(run["per_tenant"]) == set(figures["plan"]), layout
        for tenant, times in run["per_tenant"].items():
            assert 0 < times["target_s"] <= times["all_s"], (layout, tenant, times)
        assert run["target_seconds"]["p50"] <= run["target_seconds"]["p90"] <= (
            run["target_seconds"]["max"])
    assert math.isfinite(figures["sla_ratio"]) and figures["sla_ratio"] > 0
    assert "SLA figure" in done.stdout


@pytest.mark.unit
def test_the_tenants_are_uneven_and_the_largest_imports_first() -> None:
    plan = tenant_plan(20, 1000)
    assert plan[0] == ("t00", 8000) and plan[-1] == ("t19", 1000)
    sizes = [n for _, n in plan]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) > 5
    assert tenant_plan(2, 10) == [("t00", 80), ("t01", 10)]
    assert p90([1.0]) == 1.0
    assert p90([float(v) for v in range(1, 11)]) == pytest.approx(9.1)


@pytest.mark.unit
def test_the_bench_config_gives_each_tenant_its_own_lead_topics() -> None:
    written = tomllib.loads(toml_text(bench_config({}, leads=500, tenants=["t00", "t01"])))
    config = LeadflowConfig.model_validate(written)
    assert set(config.topics.tenants) == {"t00", "t01"}
    assert config.topics.name(Topic.LEADS_NEW, "t01") == "t.t01.leads.new"

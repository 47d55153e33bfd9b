"""`leadflow bench pipeline --quick` as a user runs it: a real process with its own embedded
Postgres and Tansu, writing its figures to JSON. Speeds are never asserted, only that every
figure was measured and that the pipeline moved every lead."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from events import JobName
from services.bench import procstat
from services.bench.workspace import bench_config, toml_text
from services.cli.demo import demo_config
from services.pipeline.config import LeadflowConfig
from tests.harness.bench import run_bench

SERVICES = ("score", "qualify", "route", "contact", "projector", "clock")
HEADLINE = ("passthrough_leads_per_s", "chain_leads_per_s", "baseline_leads_per_s",
            "pipeline_leads_per_s", "speedup_vs_baseline", "ratio_vs_chain")


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_bench_measures_every_figure_and_moves_every_lead(tmp_path: Path) -> None:
    done, figures = run_bench(tmp_path, "pipeline", "--quick")
    for key in HEADLINE:
        assert positive(figures[key]), (key, figures[key])
    assert set(figures["stages"]) == {"score", "qualify", "route", "contact"}
    for job, stage in figures["stages"].items():
        assert positive(stage["leads_per_s"]) and positive(stage["ratio"]), job
    for size in figures["rss_mb_by_size"].values():
        assert set(size) == set(SERVICES)
    assert all(positive(figures["rss_mb"][service]) for service in SERVICES)
    pipeline = figures["pipeline"]
    assert pipeline["leads"] == figures["sizes"]["leads"]
    assert pipeline["final"] == pipeline["leads"]
    assert pipeline["statuses"]["CONTACTED"] + pipeline["statuses"]["REJECTED"] == pipeline["leads"]
    assert pipeline["small"]["final"] == pipeline["small"]["leads"]
    # Where the backlog sat: every stage's unread input and the projector's lag, sampled.
    backlog = pipeline["backlog"]
    assert backlog["samples"] >= 1, backlog
    assert set(backlog["backlog"]) == {*figures["stages"], "projector"}
    assert 0 <= backlog["idle_share"] <= 1
    assert "where the backlog sat" in done.stdout
    assert figures["machine"]["broker"] == "tansu"
    # The embedded servers' CPU is measured too (Postgres with its backends).
    assert set(figures["server_cpu_us_per_lead"]) == {"postgres", "broker"}
    assert all(positive(v) for v in figures["server_cpu_us_per_lead"].values())
    assert "pipeline is" in done.stdout  # the table was printed


def test_bench_config_keeps_the_users_rules_and_makes_the_stages_tick_every_second() -> None:
    user = tomllib.loads(demo_config().read_text())
    user["contact"]["quotas"] = {"daily_per_tenant": 10}
    written = tomllib.loads(toml_text(bench_config(user, leads=5000)))
    config = LeadflowConfig.model_validate(written)
    assert config.qualify.min_score == 45 and config.qualify.suppressed_domains == ("ghost.example",)
    assert config.contact.sender == "proof" and config.contact.quotas.daily_per_tenant is None
    assert config.harvest.sources == ()
    score = config.job(JobName.SCORE)
    assert (score.schedule, score.max_leads_per_run) == ("every 1s", 5000)


def test_procstat_reads_this_process() -> None:
    stat = procstat.read(os.getpid())
    assert stat.peak_rss_mb > 1 and stat.cpu_seconds > 0
    with pytest.raises(ProcessLookupError):
        procstat.read(2**22 + 1)


def test_a_servers_cpu_counts_its_children_live_and_reaped() -> None:
    tick = os.sysconf("SC_CLK_TCK")

    def stat(pid: int, ppid: int, utime: int, stime: int, cutime: int = 0, cstime: int = 0) -> str:
        # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        # utime stime cutime cstime ...
        return (f"{pid} (post gres) S {ppid} 1 1 0 -1 0 0 0 0 0 {utime} {stime} {cutime} "
                f"{cstime} 20 0 1 0")

    stats = {
        100: stat(100, 1, 10 * tick, 5 * tick, cutime=2 * tick, cstime=tick),  # reaped: 3 s
        101: stat(101, 100, 4 * tick, 2 * tick),  # a live backend
        200: stat(200, 1, 50 * tick, 50 * tick),  # not ours
    }
    assert procstat.tree_cpu_seconds(100, stats) == 10 + 5 + 3 + 6


def test_server_cpu_of_this_process_includes_a_finished_child() -> None:
    before = procstat.server_cpu_seconds(os.getpid())
    subprocess.run([sys.executable, "-c", "sum(range(3_000_000))"], check=True)
    assert procstat.server_cpu_seconds(os.getpid()) > before
    with pytest.raises(ProcessLookupError):
        procstat.server_cpu_seconds(2**22 + 1)

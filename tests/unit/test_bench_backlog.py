"""Where the pipeline's backlog sat: the summary of the samples `leadflow bench pipeline` takes."""

from __future__ import annotations

from services.bench.backlog import Sample, summarize
from services.bench.procstat import cpu_times


def test_the_stage_holding_the_largest_backlog_most_often_is_named() -> None:
    samples = [
        Sample({"score": 900, "contact": 100, "projector": 0}, 0.10),
        Sample({"score": 0, "contact": 600, "projector": 50}, 0.20),
        Sample({"score": 0, "contact": 300, "projector": 400}, 0.30),
        Sample({"score": 0, "contact": 0, "projector": 0}, None),  # drained: nothing waits
    ]
    summary = summarize(samples)
    assert summary["samples"] == 4
    assert summary["idle_share"] == 0.2  # the samples that measured it
    assert summary["backlog"]["contact"] == {"mean": 250, "peak": 600, "largest_share": 0.333}
    assert summary["backlog"]["score"]["largest_share"] == 0.333
    assert summary["backlog"]["projector"] == {"mean": 112, "peak": 400, "largest_share": 0.333}


def test_no_samples_summarize_to_nothing_rather_than_fail() -> None:
    assert summarize([]) == {"samples": 0, "idle_share": None, "backlog": {}}


def test_idle_counts_iowait_and_total_counts_every_state() -> None:
    stat = "cpu  100 5 50 800 20 0 5 0 0 0\ncpu0 50 2 25 400 10 0 2 0 0 0\n"
    assert cpu_times(stat) == (820, 980)

"""A service's CPU and memory include the worker processes it spawned (Linux /proc)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from services.bench import procstat

BUSY = "x = 0\nfor i in range(20_000_000): x += i\nimport time; time.sleep(30)"


def test_a_process_tree_counts_its_live_children_cpu_and_their_largest_peak() -> None:
    child = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        give_up = time.monotonic() + 60
        while procstat.read(child.pid).cpu_seconds < 0.5:
            assert time.monotonic() < give_up, "the child never got busy"
            time.sleep(0.1)
        alone, tree = procstat.read(os.getpid()), procstat.read_tree(os.getpid())
        own = procstat.read(child.pid)
        assert tree.cpu_seconds >= alone.cpu_seconds + own.cpu_seconds - 0.05
        # peaks only grow: the tree's is at least its parent's and its child's of a moment ago
        assert tree.peak_rss_mb >= alone.peak_rss_mb and tree.peak_rss_mb >= own.peak_rss_mb - 1
    finally:
        child.kill()
        child.wait()

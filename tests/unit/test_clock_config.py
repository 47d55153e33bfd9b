"""Schedule config fails at start with the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.pipeline.config import load_config
from services.runtime.errors import ConfigError

BAD = [
    # (toml, key that must be named, words of the reason)
    ('[jobs.score]\nschedule = "61 3 * * *"\n', "jobs.score.schedule", "neither a cron expression"),
    ('[jobs.score]\nschedule = "every 0s"\n', "jobs.score.schedule", "at least 1s"),
    ('[jobs.score]\nschedule = "every soon"\n', "jobs.score.schedule", "not a duration"),
    ('[jobs.score]\ntimezone = "Mars/Olympus"\n', "jobs.score.timezone", "unknown timezone"),
    ('[jobs.scoer]\nschedule = "0 3 * * *"\n', "jobs.scoer", "unknown name"),
    ('[jobs.route]\nschedule = "0 0 30 2 *"\n', "jobs.route", "never fires"),
    ('[jobs.score]\nschedule = "every 10s"\njitter_seconds = 10\n', "jobs.score",
     "shorter than the shortest gap"),
    ('[jobs.contact]\njitter_seconds = 600\n'
     '[[jobs.contact.scopes]]\ntenant = "acme"\nschedule = "*/5 * * * *"\n',
     "jobs.contact", "scopes[0]: jitter_seconds (600)"),
    ('[jobs.score]\ncatchup = "some"\n', "jobs.score.catchup", "'none', 'latest' or 'all'"),
    ('[jobs.score]\noverlap = "queue"\n', "jobs.score.overlap", "'skip', 'buffer_one' or 'allow'"),
    ('[clock]\nmax_backfill_ticks = 0\n', "clock.max_backfill_ticks", "greater than or equal to 1"),
]


@pytest.mark.parametrize(("toml", "key", "reason"), BAD)
def test_bad_schedule_config_names_the_key_and_the_reason(tmp_path: Path, toml: str, key: str,
                                                         reason: str) -> None:
    path = tmp_path / "leadflow.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    line = next(line for line in str(caught.value).splitlines() if line.strip().startswith(key + ":"))
    assert reason in line


def test_a_good_schedule_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "leadflow.toml"
    path.write_text('[jobs.score]\nschedule = "*/10 * * * *"\ntimezone = "Europe/Berlin"\n'
                    'jitter_seconds = 120\ncatchup = "all"\ncatchup_window = "6h"\n'
                    'overlap = "buffer_one"\npause_after_failures = 3\n'
                    '[clock]\ngrace = "30s"\nmax_backfill_ticks = 500\n')
    config = load_config(path)
    assert (config.jobs["score"].jitter_seconds, config.clock.grace.total_seconds(),
            config.clock.max_backfill_ticks) == (120, 30, 500)
    assert config.jobs["harvest"].schedule == "0 2 * * *"  # the other jobs keep their defaults

"""The config file: defaults reproduce the nightly cron; a bad key fails fast, named, with a fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from events import JobName
from services.pipeline.config import load_config
from services.qualify.config import QualifyConfig
from services.runtime.config import Catchup
from services.runtime.durations import format_duration, parse_duration
from services.runtime.errors import ConfigError
from services.runtime.logging import redact


def test_defaults_reproduce_the_nightly_schedule() -> None:
    config = load_config(None)
    hours = {job: config.job(job).schedule for job in
             (JobName.HARVEST, JobName.SCORE, JobName.QUALIFY, JobName.ROUTE, JobName.CONTACT)}
    assert hours == {JobName.HARVEST: "0 2 * * *", JobName.SCORE: "0 3 * * *",
                     JobName.QUALIFY: "0 4 * * *", JobName.ROUTE: "0 5 * * *",
                     JobName.CONTACT: "0 6 * * *"}
    assert config.job(JobName.CONTACT).max_leads_per_run == 50
    assert config.job(JobName.SCORE).max_leads_per_run == 100
    assert config.job(JobName.SCORE).catchup is Catchup.LATEST


def test_a_partial_jobs_section_keeps_the_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[jobs.score]\nschedule = "every 5m"\n')
    config = load_config(path)
    assert config.job(JobName.SCORE).schedule == "every 5m"
    assert config.job(JobName.SCORE).max_leads_per_run == 100
    assert config.job(JobName.HARVEST).schedule == "0 2 * * *"


@pytest.mark.parametrize(("text", "key", "hint"), [
    ('[jobs.score]\nschedule = "at noon"\n', "jobs.score.schedule", "cron expression"),
    ('[jobs.score]\ntimezone = "Mars/Olympus"\n', "jobs.score.timezone", "IANA"),
    ('[jobs.bake]\nschedule = "0 1 * * *"\n', "jobs.bake", "harvest"),
    ('[qualify]\nmin_score = 120\n', "qualify.min_score", "less than or equal to 100"),
    ('[qualify]\nrequired_fields = ["emial"]\n', "qualify.required_fields", "unknown lead fields"),
    ('[score]\nmodel = "x"\n', "score.model", "unknown key"),
    ('[[route.segments]]\nname = "a"\nsequence = "nope"\nowners = ["o"]\n', "<root>", "nope"),
    ('[jobs.score]\ncatchup_window = "soon"\n', "jobs.score.catchup_window", "not a duration"),
    ('[qualify.tenants.acme]\nmin_score = 120\n', "qualify.tenants.acme.min_score",
     "less than or equal to 100"),
    ('[score.tenants.acme]\nindustri = { saas = 5 }\n', "score.tenants.acme.industri",
     "unknown key"),
    ('[score.tenants.acme]\nseniority_keywords = { wizard = ["mage"] }\n',
     "score.tenants.acme", "seniority_keywords names levels without points"),
    ('[score.tenants.acme.tenants.beta]\nmodel_version = "x"\n', "score.tenants.acme.tenants",
     "unknown key"),
    ('[[jobs.score.scopes]]\ntenant = "acme"\n', "jobs.score.scopes",
     "cannot run for one campaign, or for a tenant without lead topics of its own"),
])
def test_invalid_config_names_the_key_and_the_fix(tmp_path: Path, text: str, key: str,
                                                  hint: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and hint in message


def test_missing_or_unparseable_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; pass --config"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[jobs\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_harvest_source_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[harvest.sources]]\npath = "data/leads.jsonl"\n')
    source = load_config(path).harvest.sources[0]
    assert source.path == tmp_path / "data" / "leads.jsonl"
    assert source.resolved_format() == "jsonl"


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("250ms", 0.25)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_duration_errors_and_formatting() -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 30s"):
        parse_duration("5 minutes")
    assert format_duration(timedelta(seconds=5400)) == "1h30m"


def test_emails_are_redacted_in_log_text() -> None:
    assert redact("sent to jane.doe@acme.com and x@y.io") == "sent to j***@acme.com and x***@y.io"


def test_topic_specs_name_every_difference_with_its_fix() -> None:
    from events import Topic
    from services.runtime.config import TopicsConfig
    from services.runtime.topic_specs import FoundTopic, mismatches, wanted_specs

    topics = TopicsConfig(prefix="p.", partitions=3, replication_factor=3, min_insync_replicas=2,
                          retention="7d", retention_overrides={Topic.LEADS_DLQ: "30d"})
    specs = {s.name: s for s in wanted_specs(topics)}
    assert specs["p.leads.new"].configs == {"min.insync.replicas": "2", "retention.ms": "604800000"}
    assert specs["p.leads.dlq"].configs["retention.ms"] == str(30 * 86_400_000)
    assert specs["p.clock.ticks"].partitions == 1
    found = {
        "p.leads.new": FoundTopic(3, 3, {"min.insync.replicas": "2", "retention.ms": "604800000"}),
        "p.leads.scored": FoundTopic(4, 1, {"min.insync.replicas": "1", "retention.ms": "604800000"}),
        "p.leads.qualified": FoundTopic(3, 3, None),  # configs unknown: not judged
    }
    problems = mismatches(list(specs.values()), found)
    assert len(problems) == 3 and all(p.startswith("p.leads.scored ") for p in problems)
    assert "has 4 partitions, the config says 3" in problems[0]
    assert "replication factor 1, the config says 3" in problems[1]
    assert "min.insync.replicas=1, the config says 2" in problems[2]
    assert "--add-config min.insync.replicas=2" in problems[2]


def test_a_tenant_override_replaces_the_fields_it_names_for_that_tenant_only(
        tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[score]\nmodel_version = "icp-v3"\n'
                    '[score.tenants.globex]\nmodel_version = "globex-v1"\n'
                    'industry = { retail = 60 }\n'
                    '[qualify]\nmin_score = 40\n'
                    '[qualify.tenants.globex]\nmin_score = 70\n')
    config = load_config(path)
    globex, other = config.score.for_tenant("globex"), config.score.for_tenant("acme")
    assert (globex.model_version, globex.industry) == ("globex-v1", {"retail": 60})
    assert globex.country == config.score.country  # a field it does not name stays the base's
    assert other is config.score and other.model_version == "icp-v3"
    assert config.qualify.for_tenant("globex").min_score == 70
    assert config.qualify.for_tenant("initech").min_score == 40


def test_a_copy_with_changes_resolves_the_tenants_against_the_new_base() -> None:
    config = QualifyConfig(tenants={"globex": {"min_score": 70}})
    copy = config.model_copy(update={"required_fields": ("email",)})
    assert copy.for_tenant("globex").required_fields == ("email",)
    assert copy.for_tenant("globex").min_score == 70


def test_a_scope_is_refused_only_where_runs_cannot_honour_it(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[jobs.score.scopes]]\ntenant = "off"\nenabled = false\n'
                    '[[jobs.harvest.scopes]]\ntenant = "acme"\nschedule = "0 1 * * *"\n'
                    '[[jobs.contact.scopes]]\ntenant = "acme"\ncampaign = "q4"\n')
    config = load_config(path)  # a disabled scope skips runs, which any stage can
    assert [s.tenant for s in config.job(JobName.CONTACT).scopes] == ["acme"]

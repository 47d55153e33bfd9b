"""The lead-topic layout per tenant ([topics.tenants.<id>]), the tenant filter of a process
(LEADFLOW_TENANTS_INCLUDE / _EXCLUDE), and the tenant-fair order a capped run takes from."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from pydantic import ValidationError

from events import JobName, Topic
from services.pipeline.registry import scope_problem
from services.pipeline.settings import Settings
from services.runtime.config import StageConfig, TenantTopics, TopicsConfig
from services.runtime.drain import TopicDrainer, fair_order
from services.runtime.errors import ConfigError
from services.runtime.topic_specs import wanted_specs
from services.score.config import ScoreConfig
from services.score.stage import ScoreLogic

pytestmark = pytest.mark.unit

TOPICS = TopicsConfig(prefix="p.", partitions=6, tenants={"acme": TenantTopics(partitions=2),
                                                          "globex": TenantTopics()})


def test_a_listed_tenant_has_lead_topics_of_its_own_and_the_rest_share_them() -> None:
    assert TOPICS.name(Topic.LEADS_NEW, "acme") == "p.t.acme.leads.new"
    assert TOPICS.name(Topic.LEADS_NEW, "initech") == "p.leads.new"
    assert TOPICS.name(Topic.LEADS_NEW) == "p.leads.new"
    # Only lead topics are per tenant; ticks, job events, control and dead letters are shared.
    assert TOPICS.name(Topic.CLOCK_TICKS, "acme") == "p.clock.ticks"
    assert TOPICS.name(Topic.LEADS_DLQ, "acme") == "p.leads.dlq"
    assert TOPICS.names(Topic.LEADS_SCORED) == [
        "p.leads.scored", "p.t.acme.leads.scored", "p.t.globex.leads.scored"]
    assert TOPICS.names(Topic.LEADS_SCORED, {"globex"}) == ["p.t.globex.leads.scored"]
    assert TOPICS.names(Topic.LEADS_SCORED, {"default", "acme"}) == [
        "p.leads.scored", "p.t.acme.leads.scored"]
    assert TOPICS.names(Topic.JOBS_EVENTS, {"acme"}) == ["p.jobs.events"]


def test_a_topic_name_reads_back_as_its_tenant_and_logical_topic() -> None:
    assert TOPICS.tenant_of("p.t.acme.leads.routed") == "acme"
    assert TOPICS.tenant_of("p.leads.routed") is None
    assert TOPICS.tenant_of("p.t.unknown.leads.routed") is None
    assert TOPICS.logical("p.t.acme.leads.routed") is Topic.LEADS_ROUTED
    assert TOPICS.logical("p.leads.routed") is Topic.LEADS_ROUTED
    assert TOPICS.logical("p.control") is Topic.CONTROL
    assert TOPICS.logical("q.leads.routed") is None
    assert TOPICS.logical("p.t.acme.control") is None


def test_partitions_per_tenant_and_the_topics_to_create() -> None:
    assert TOPICS.partitions_for(Topic.LEADS_NEW, "acme") == 2
    assert TOPICS.partitions_for(Topic.LEADS_NEW, "globex") == 3  # the tenant default
    assert TOPICS.partitions_for(Topic.LEADS_NEW) == 6
    assert TOPICS.partitions_for(Topic.CLOCK_TICKS, "acme") == 1
    assert TOPICS.partitions_of(Topic.LEADS_NEW) == 6 + 2 + 3
    assert TOPICS.partitions_of(Topic.LEADS_NEW, {"acme"}) == 2
    specs = {spec.name: spec.partitions for spec in wanted_specs(TOPICS)}
    assert specs["p.t.acme.leads.contacted"] == 2 and specs["p.t.globex.leads.new"] == 3
    assert specs["p.leads.new"] == 6 and specs["p.clock.ticks"] == 1
    assert "p.t.acme.clock.ticks" not in specs
    assert len(specs) == len(Topic) + 2 * 6  # six lead topics per tenant


@pytest.mark.parametrize("tenant,hint", [
    ("default", "names the shared lead topics"),
    ("acme.eu", "cannot be part of a topic name"),
    ("*", "cannot be part of a topic name"),
])
def test_a_tenant_id_that_cannot_name_topics_is_refused(tenant: str, hint: str) -> None:
    with pytest.raises(ValidationError, match="tenants") as info:
        TopicsConfig(tenants={tenant: TenantTopics()})
    assert hint in str(info.value)


def test_the_tenant_filter_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with_tenants = Settings().using(Settings().pipeline.model_copy(update={"topics": TOPICS}))
    assert with_tenants.served_tenants is None  # no filter: every tenant
    monkeypatch.setenv("LEADFLOW_TENANTS_INCLUDE", "acme, default")
    settings = Settings()
    assert settings.tenants_include == ("acme", "default")
    served = settings.using(with_tenants.pipeline)
    assert served.served_tenants == {"acme", "default"}
    monkeypatch.delenv("LEADFLOW_TENANTS_INCLUDE")
    monkeypatch.setenv("LEADFLOW_TENANTS_EXCLUDE", "globex")
    assert Settings().using(with_tenants.pipeline).served_tenants == {"acme", "default"}


def test_a_tenant_filter_naming_an_unknown_tenant_fails_at_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_TENANTS_INCLUDE", "acme")
    with pytest.raises(ConfigError) as info:
        Settings.load()
    message = str(info.value)
    assert "LEADFLOW_TENANTS_INCLUDE names acme, which has no lead topics of its own" in message
    assert "[topics.tenants.<id>]" in message
    monkeypatch.setenv("LEADFLOW_TENANTS_INCLUDE", "default")
    monkeypatch.setenv("LEADFLOW_TENANTS_EXCLUDE", "default")
    with pytest.raises(ConfigError, match="leave no tenant to serve"):
        Settings.load()


def test_a_capped_run_takes_from_the_least_served_tenant_first() -> None:
    acme = [TopicPartition("p.t.acme.leads.new", p) for p in (0, 1)]
    globex = [TopicPartition("p.t.globex.leads.new", p) for p in (0, 1)]
    served = Counter({globex[0]: 40, globex[1]: 10, acme[0]: 20})
    order = fair_order([*globex, *acme], served, 0, TOPICS.tenant_of)
    # acme (20 taken) before globex (50), whatever each partition's own count
    assert order == [acme[1], acme[0], globex[1], globex[0]]
    # without owners, partitions alone decide, as before tenants had topics of their own
    assert fair_order([*globex, *acme], served, 0)[:2] == [acme[1], globex[1]]


def test_a_stage_runs_for_one_tenant_only_when_the_tenant_has_topics_of_its_own() -> None:
    isolated = TOPICS.tenants
    assert scope_problem(JobName.SCORE, "acme", None, isolated) is None
    assert scope_problem(JobName.ROUTE, "globex", None, isolated) is None
    assert "list the tenant under [topics.tenants.<id>]" in (
        scope_problem(JobName.SCORE, "initech", None, isolated) or "")
    assert scope_problem(JobName.QUALIFY, "acme", "q4", isolated) is not None  # a campaign
    assert scope_problem(JobName.CONTACT, "initech", "q4", isolated) is None


class BufferedConsumer:
    """What a drainer's poll sees of aiokafka: records fetched per partition, taken in order."""

    def __init__(self, buffered: dict[TopicPartition, int]) -> None:
        self.records = {tp: [SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=i)
                             for i in range(n)] for tp, n in buffered.items()}

    def assignment(self) -> set[TopicPartition]:
        return set(self.records)

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        got: dict[TopicPartition, list[Any]] = {}
        left = max_records if max_records is not None else 10**9
        for tp in partitions or tuple(self.records):  # dict order, as aiokafka's fetcher
            take, self.records[tp] = self.records[tp][:left], self.records[tp][left:]
            if take:
                got[tp], left = take, left - len(take)
        return got


async def test_a_full_batch_over_several_tenants_takes_a_fair_share_of_each() -> None:
    # globex's backlog was fetched first; acme's few leads still make the next batch.
    globex = [TopicPartition("p.t.globex.leads.new", p) for p in (0, 1)]
    acme = [TopicPartition("p.t.acme.leads.new", p) for p in (0, 1)]
    consumer = BufferedConsumer({globex[0]: 1000, globex[1]: 1000, acme[0]: 10, acme[1]: 10})
    drainer = TopicDrainer(ScoreLogic(ScoreConfig()), topics=[Topic.LEADS_NEW],
                           bootstrap_servers="unused:9092", topic_config=TOPICS,
                           publisher=None, stage=StageConfig(batch_size=50),  # type: ignore[arg-type]
                           instance_id="i")
    drainer._consumer = consumer  # type: ignore[assignment]
    drainer.running, drainer._run_topics = True, frozenset(tp.topic for tp in consumer.records)
    drainer._tenants_share_run = True
    batch = await drainer._poll(50, Counter())
    taken = Counter(TOPICS.tenant_of(r.topic) for r in batch)
    assert taken == {"acme": 20, "globex": 30}
    # one tenant's run keeps taking whatever is fetched, in one call
    drainer._tenants_share_run = False
    assert len(await drainer._poll(50, Counter())) == 50

"""Control endpoints: bearer token, clear 422s, and one event published per accepted request."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from events import (
    CampaignPaused,
    CampaignResumed,
    KillSwitchChanged,
    SuppressionAdded,
    TickEmitted,
    Topic,
)
from services.pipeline.settings import Settings
from services.runtime.bus import ensure_topics
from tests.harness.dashboard import TOKEN, client_for, published, with_token

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONTROLS: list[tuple[str, dict[str, Any]]] = [
    ("/api/ticks", {"job": "score"}),
    ("/api/campaigns/q4/pause", {}),
    ("/api/campaigns/q4/resume", {}),
    ("/api/kill-switch", {"engaged": True}),
    ("/api/suppressions", {"email": "jane@example.com"}),
]



@pytest.fixture
async def topics(settings: Settings) -> Settings:
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    return with_token(settings)


async def test_each_control_needs_the_bearer_token(topics: Settings) -> None:
    async with client_for(topics) as client:
        for path, body in CONTROLS:
            missing = await client.post(path, json=body)
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in missing.json()["detail"]
            wrong = await client.post(path, json=body, headers={"Authorization": "Bearer guess"})
            assert wrong.status_code == 401 and "wrong bearer token" in wrong.json()["detail"]
            basic = await client.post(path, json=body, headers={"Authorization": "Basic dXNlcjpwdw=="})
            assert basic.status_code == 401, path
        # Without the token, even a bad body learns nothing but 401.
        assert (await client.post("/api/ticks", json={"job": "nope"})).status_code == 401
        # Reads need a token too; the control token opens them.
        assert (await client.get("/api/dashboard")).status_code == 401
        assert (await client.get("/api/dashboard", headers=AUTH)).status_code == 200


async def test_controls_refuse_everyone_when_no_token_is_configured(settings: Settings) -> None:
    async with client_for(with_token(settings, None)) as client:
        for path, body in CONTROLS:
            refused = await client.post(path, json=body, headers={"Authorization": "Bearer anything"})
            assert refused.status_code == 403, path
            assert "no dashboard token is configured" in refused.json()["detail"]
        assert (await client.get("/api/ui")).json()["controls_enabled"] is False
    blank = with_token(settings, "   ")
    async with client_for(blank) as client:
        refused = await client.post("/api/ticks", json={"job": "score"}, headers={"Authorization": "Bearer "})
        assert refused.status_code == 403  # a blank token never opens the controls


BAD_INPUT: list[tuple[str, dict[str, Any] | None, str]] = [
    ("/api/ticks", {"job": "nightly"}, "body.job: Input should be 'harvest'"),
    ("/api/ticks", {"job": "score", "max_leads": 0},
     "body.max_leads: Input should be greater than or equal to 1"),
    ("/api/ticks", {"job": "score", "max_leads": "many"}, "body.max_leads: Input should be a valid integer"),
    ("/api/ticks", {"job": "score", "surprise": 1}, "body.surprise: Extra inputs are not permitted"),
    ("/api/ticks", {"job": "route", "tenant_id": "acme"},
     "route cannot run for one campaign, or for a tenant without lead topics of its own"),
    ("/api/ticks", None, "body: a JSON body is required"),
    ("/api/kill-switch", {}, "body.engaged: Field required"),
    ("/api/kill-switch", {"engaged": "perhaps"}, "body.engaged: Input should be a valid boolean"),
    ("/api/suppressions", {}, "give exactly one of email or domain"),
    ("/api/suppressions", {"email": "jane@"}, "has an invalid domain"),
    ("/api/suppressions", {"email": "a@b.co", "domain": "b.co"}, "give exactly one of email or domain"),
    ("/api/campaigns/q4/pause", {"tenant_id": ""}, "body.tenant_id: String should have at least 1 character"),
    # NUL and the other C0 controls never reach the log (a consumer could not fold them)
    ("/api/ticks", {"job": "score", "tenant_id": "a\u0000b"},
     "body.tenant_id: contains the control character U+0000"),
    ("/api/kill-switch", {"engaged": True, "reason": "x\u001by"}, "control character U+001B"),
    ("/api/campaigns/a%00b/pause", None, "path: contains the control character U+0000"),
    ("/api/campaigns/q4/pause?x=%01", None, "query: contains the control character U+0001"),
]


async def test_bad_input_gets_a_422_that_says_what_is_wrong(topics: Settings) -> None:
    async with client_for(topics) as client:
        for path, body, message in BAD_INPUT:
            response = await client.post(path, json=body, headers=AUTH)
            assert response.status_code == 422, (path, body)
            assert message in response.json()["message"], (path, body, response.json())
            assert isinstance(response.json()["detail"], list)
        response = await client.post("/api/ticks", content=b"{job:", headers={
            **AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["message"]


async def test_accepted_controls_publish_one_event_each(topics: Settings) -> None:
    async with client_for(topics) as client:
        answers = []
        for path, body in [
            ("/api/ticks", {"job": "contact", "max_leads": 25, "campaign_id": "q4",
                            "requested_by": "ops-ana"}),
            ("/api/campaigns/q4/pause", None),
            ("/api/campaigns/q4/resume", {"tenant_id": "acme"}),
            ("/api/kill-switch", {"engaged": True, "reason": "bad template"}),
            ("/api/suppressions", {"domain": "Competitor.COM", "reason": "competitor"}),
        ]:
            response = await client.post(path, json=body, headers=AUTH)
            assert response.status_code == 202, response.json()
            answers.append(response.json())

    tick = await published(topics, Topic.CLOCK_TICKS, answers[0]["event_id"])
    assert isinstance(tick, TickEmitted)
    assert (tick.job.value, tick.source.value, tick.max_leads, tick.campaign_id) == (
        "contact", "manual", 25, "q4")
    assert tick.requested_by is not None and tick.requested_by.startswith("http:ops-ana@")
    assert answers[0]["topic"] == Topic.CLOCK_TICKS.physical(topics.prefix)

    paused = await published(topics, Topic.CONTROL, answers[1]["event_id"])
    assert isinstance(paused, CampaignPaused)
    assert (paused.campaign_id, paused.tenant_id) == ("q4", "*")
    assert paused.requested_by is not None and paused.requested_by.startswith("http:")
    resumed = await published(topics, Topic.CONTROL, answers[2]["event_id"])
    assert isinstance(resumed, CampaignResumed) and resumed.tenant_id == "acme"
    kill = await published(topics, Topic.CONTROL, answers[3]["event_id"])
    assert isinstance(kill, KillSwitchChanged)
    assert (kill.engaged, kill.reason, kill.tenant_id) == (True, "bad template", "*")
    suppression = await published(topics, Topic.CONTROL, answers[4]["event_id"])
    assert isinstance(suppression, SuppressionAdded)
    assert (suppression.domain, suppression.email) == ("competitor.com", None)
    assert [a["type"] for a in answers] == ["tick.emitted", "campaign.paused", "campaign.resumed",
                                            "kill_switch.changed", "suppression.added"]
    assert len({a["event_id"] for a in answers}) == 5 and all(uuid.UUID(a["event_id"]) for a in answers)


async def test_env_token_overrides_the_config(settings: Settings) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    overridden = with_token(settings, "from-config").using(
        with_token(settings, "from-config").pipeline, dashboard_token="from-env")
    async with client_for(overridden) as client:
        assert (await client.post("/api/ticks", json={"job": "score"}, headers={
            "Authorization": "Bearer from-config"})).status_code == 401
        assert (await client.post("/api/ticks", json={"job": "score"}, headers={
            "Authorization": "Bearer from-env"})).status_code == 202


async def test_a_control_says_so_when_the_broker_is_down(settings: Settings) -> None:
    down = with_token(settings).using(with_token(settings).pipeline,
                                      kafka_bootstrap_servers="127.0.0.1:1")
    async with client_for(down) as client:
        response = await client.post("/api/kill-switch", json={"engaged": True}, headers=AUTH)
    assert response.status_code == 503
    assert "cannot reach the broker" in response.json()["detail"]
    assert "KAFKA_BOOTSTRAP_SERVERS" in response.json()["detail"]

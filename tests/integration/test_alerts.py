"""Alerts against real read models: job events folded by the projector, a local HTTP sink as the
webhook and an aiosmtpd server as the mail relay. A job failing three times in a row gives one
notification per incident on each channel and one resolve after recovery, across polls and a
restart; the service loop with a standby sends nothing twice; and every metric and label the
Prometheus rules file uses is in a real /metrics scrape."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from events import JobName, utcnow
from services.alerts.service import Notifier
from services.pipeline.settings import Settings
from services.runtime.config import AlertEmailConfig, AlertsConfig, SmtpConfig, WebhookConfig
from tests.factories import run_events
from tests.harness import Inbox, make_config, project, publish, read_models, smtp_sink
from tests.harness.dashboard import client_for
from tests.harness.prometheus import prometheus_rules, promql_selectors

pytestmark = pytest.mark.any_broker  # what it proves does not depend on the broker

TOKEN = "s3cr3t-T0KEN"
OPS = "ops@example.com"
HARVEST = JobName.HARVEST


@dataclass
class Hooks:
    """What the webhook sink received; the first ``fail`` requests get a 503."""

    posts: list[tuple[str, str, Any]] = field(default_factory=list)  # (path, type, body)
    attempts: int = 0
    fail: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def texts(self) -> list[str]:
        return [body["text"] for _, _, body in self.posts]


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        sink: Hooks = self.server.sink  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with sink.lock:
            sink.attempts += 1
            refuse = sink.fail > 0
            if refuse:
                sink.fail -= 1
            else:
                sink.posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(503 if refuse else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no" if refuse else b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[Hooks, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    server.sink = Hooks()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.sink, server.server_address[1]  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def mail() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with smtp_sink(inbox) as port:
        yield inbox, port


def alert_settings(settings: Settings, hook_port: int, smtp_port: int) -> Settings:
    alerts = AlertsConfig(
        interval=timedelta(seconds=1),
        webhook=WebhookConfig(url=f"http://127.0.0.1:{hook_port}/services/T0/B0/{TOKEN}"),
        email=AlertEmailConfig(to=(OPS,), from_address="alerts@leadflow.test",
                               smtp=SmtpConfig(host="127.0.0.1", port=smtp_port, tls="none")))
    return settings.using(make_config(settings.prefix, alerts=alerts))


async def run_ends(settings: Settings, outcome: str, at: datetime) -> None:
    """One harvest run ending with ``outcome``, folded into the read models."""
    await publish(settings, run_events(HARVEST, outcome, at=at))
    await project(settings)


def fired(decision: Any) -> set[str]:
    return {i.key for i in decision.fired}


def resolved(decision: Any) -> set[str]:
    return {r.incident.key for r in decision.resolved}


def headlines(texts: list[str]) -> Counter[str]:
    return Counter(text.splitlines()[0] for text in texts)


EXPECTED = Counter({
    "[leadflow] FIRING job_failed harvest (warning)": 1,
    "[leadflow] FIRING failures_in_a_row harvest (critical)": 1,
    "[leadflow] FIRING success_rate harvest (warning)": 1,
    "[leadflow] RESOLVED job_failed harvest (warning)": 1,
    "[leadflow] RESOLVED failures_in_a_row harvest (critical)": 1,
})


async def test_three_failures_in_a_row_notify_once_per_incident_and_channel_and_resolve_once(
        settings: Settings, webhook: tuple[Hooks, int], mail: tuple[Inbox, int],
        caplog: pytest.LogCaptureFixture) -> None:
    hooks, hook_port = webhook
    inbox, smtp_port = mail
    settings = alert_settings(settings, hook_port, smtp_port)
    caplog.set_level(logging.INFO, logger="services.alerts")
    at = iter(utcnow() - timedelta(minutes=30) + timedelta(minutes=i) for i in range(10))
    notifier = Notifier(settings, env={})
    await notifier.start()
    try:
        # Failure 1: the job failed; the webhook is down for the first attempt.
        hooks.fail = 1
        await run_ends(settings, "failed", next(at))
        assert fired(await notifier.step()) == {"job_failed:harvest"}
        assert (hooks.attempts, len(hooks.posts), len(inbox.messages)) == (1, 0, 1)
        await asyncio.sleep(1.1)  # the retry's backoff (interval 1s, doubling)
        assert (await notifier.step()).empty
        assert (hooks.attempts, len(hooks.posts), len(inbox.messages)) == (2, 1, 1)

        # Failures 2 and 3: three in a row, and 0% of three runs succeeded.
        await run_ends(settings, "failed", next(at))
        assert (await notifier.step()).empty
        await run_ends(settings, "failed", next(at))
        assert fired(await notifier.step()) == {"failures_in_a_row:harvest", "success_rate:harvest"}
        for _ in range(3):  # polls change nothing while nothing changes
            assert (await notifier.step()).empty
        assert len(hooks.posts) == len(inbox.messages) == 3
    finally:
        await notifier.stop()

    # A restarted notifier continues the open incidents.
    notifier = Notifier(settings, env={})
    await notifier.start()
    try:
        assert (await notifier.step()).empty
        assert len(hooks.posts) == len(inbox.messages) == 3

        # Recovery: a completed run ends the streak; 1 of 4 runs is still under 70%.
        await run_ends(settings, "completed", next(at))
        assert resolved(await notifier.step()) == {"job_failed:harvest", "failures_in_a_row:harvest"}
        assert (await notifier.step()).empty
    finally:
        await notifier.stop()

    assert headlines(hooks.texts()) == EXPECTED
    assert {(path, kind) for path, kind, _ in hooks.posts} == {
        (f"/services/T0/B0/{TOKEN}", "application/json")}
    assert all(set(body) == {"text"} for _, _, body in hooks.posts)
    assert "last error: database gone" in next(t for t in hooks.texts() if "FIRING job_failed" in t)

    assert headlines([m["Subject"] for _, m in inbox.messages]) == EXPECTED
    assert all(rcpts == [OPS] for rcpts, _ in inbox.messages)
    assert len({m["Message-ID"] for _, m in inbox.messages}) == 5
    assert all(m["From"] == "alerts@leadflow.test" for _, m in inbox.messages)

    async with read_models(settings) as db:
        incidents = await db.fetch("SELECT rule, resolved_at FROM alert_incidents ORDER BY rule")
        deliveries = await db.fetch("SELECT kind, destination, status, attempts FROM alert_deliveries")
    assert [(r["rule"], r["resolved_at"] is not None) for r in incidents] == [
        ("failures_in_a_row", True), ("job_failed", True), ("success_rate", False)]
    assert Counter((d["kind"], d["destination"], d["status"]) for d in deliveries) == Counter({
        ("fire", "webhook", "sent"): 3, ("fire", f"email:{OPS}", "sent"): 3,
        ("resolve", "webhook", "sent"): 2, ("resolve", f"email:{OPS}", "sent"): 2})
    assert sorted(d["attempts"] for d in deliveries if d["destination"] == "webhook") == [1] * 4 + [2]

    # The failed attempt was logged with the webhook's host, never its token.
    assert f"http://127.0.0.1:{hook_port}/… answered 503" in caplog.text
    assert TOKEN not in caplog.text


async def test_the_service_loop_with_a_standby_sends_each_notification_once(
        settings: Settings, webhook: tuple[Hooks, int], mail: tuple[Inbox, int]) -> None:
    hooks, hook_port = webhook
    inbox, smtp_port = mail
    settings = alert_settings(settings, hook_port, smtp_port)
    now = utcnow()
    for i in range(3):
        await publish(settings, run_events(HARVEST, "failed", at=now - timedelta(minutes=10 - i)))
    await project(settings)
    active, standby = Notifier(settings, env={}), Notifier(settings, env={})
    tasks = [asyncio.create_task(n.run()) for n in (active, standby)]
    try:
        for _ in range(100):  # a few polls of the active one, at 1 s each
            await asyncio.sleep(0.1)
            if len(hooks.posts) == 3 and len(inbox.messages) == 3:
                break
        await asyncio.sleep(2.5)  # more polls: nothing more is sent
    finally:
        for n in (active, standby):
            n.request_stop()
        await asyncio.gather(*tasks)
    firing = Counter({k: v for k, v in EXPECTED.items() if "FIRING" in k})
    assert headlines(hooks.texts()) == firing
    assert headlines([m["Subject"] for _, m in inbox.messages]) == firing


async def test_every_metric_and_label_the_prometheus_rules_use_is_in_a_metrics_scrape(
        settings: Settings) -> None:
    now = utcnow()
    await publish(settings, [*run_events(HARVEST, "failed", at=now - timedelta(minutes=2)),
                             *run_events(JobName.SCORE, "completed", at=now - timedelta(minutes=1))])
    await project(settings)  # job metrics, runs and the projector's status
    async with client_for(settings) as client:
        scrape = (await client.get("/metrics")).raise_for_status().text
    series: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            series.setdefault(sample.name, []).append(sample.labels)

    rules = prometheus_rules()
    assert rules
    for rule in rules:
        name = rule["alert"]
        selectors, grouping = promql_selectors(rule["expr"])
        labels: set[str] = set()
        for selector in selectors:
            assert selector.metric in series, f"{name}: {selector.metric} is not exported"
            sets = series[selector.metric]
            names = set().union(*(s.keys() for s in sets))
            labels |= names
            for label, op, value in selector.matchers:
                assert label in names, f"{name}: {selector.metric} has no label {label}"
                values = {s[label] for s in sets if label in s}
                wanted = value.split("|") if op == "=~" else [value]
                assert set(wanted) <= values, f"{name}: {selector.metric}{{{label}}} has {values}"
        assert grouping <= labels, f"{name}: groups by {grouping - labels}, which no series has"
        templated = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule.get("annotations", {}))))
        assert templated <= labels, f"{name}: annotations use {templated - labels}"

"""`leadflow run alerts`: every ``[alerts] interval`` read the read models, decide which
incidents fire and resolve, record that, then deliver what is still to be delivered.

Its own process, needing Postgres only: it keeps alerting while the broker is down (the
projector then stops reporting, which is itself an alert), a slow webhook or mail relay never
delays a tick, a run or a page, and the dashboard can be scaled without sending a message per
replica. One notifier is active per deployment (a Postgres advisory lock); others stand by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Mapping
from datetime import datetime

import asyncpg

from events import LeadflowError, utcnow

from ..runtime.db import CONNECTION_ERRORS, READ_SCHEMA, create_pool
from ..runtime.durations import format_duration
from ..runtime.errors import InfrastructureError
from ..runtime.locks import AdvisoryLock, advisory_key
from ..runtime.settings import Settings
from . import store
from .channels import Channels, DeliveryError, Email, Webhook, configured_channels
from .incidents import Decision, decide, destinations
from .messages import FIRE
from .rules import evaluate

log = logging.getLogger(__name__)

#: A poll that fails with these is retried after the interval (the database is away).
POLL_ERRORS: tuple[type[Exception], ...] = (LeadflowError, *CONNECTION_ERRORS)

#: Longest wait before retrying a delivery that failed (doubling from the poll interval).
MAX_RETRY_DELAY = 3600.0
#: How often resolved incidents older than retention.max_age are forgotten.
PRUNE_EVERY = 3600.0


def lock_key(prefix: str) -> int:
    return advisory_key("alerts", prefix)


class Notifier:
    """Polls, decides, records, delivers. ``step`` is one poll (tests call it directly)."""

    def __init__(self, settings: Settings, *, env: Mapping[str, str] | None = None,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.config = settings.pipeline.alerts
        self.rules = self.config.rules
        self.now = now
        self.channels: Channels = configured_channels(self.config, env)  # ConfigError at start
        self.webhook = (Webhook(self.channels.webhook_url, self.config.webhook.timeout.total_seconds())
                        if self.channels.webhook_url else None)
        self.email = Email(self.config.email, env) if self.channels.email_to else None
        self.lock = AdvisoryLock(settings.database_url, lock_key(settings.prefix))
        self._pool: asyncpg.Pool | None = None
        self._retry_at: dict[tuple[object, ...], float] = {}
        self._pruned_at = float("-inf")
        self._stopping = asyncio.Event()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "Notifier.start() was not called"
        return self._pool

    def destinations(self, rule: str) -> list[str]:
        return destinations(getattr(self.rules, rule).channels, webhook=self.channels.webhook,
                            email_to=self.channels.email_to)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._pool = await create_pool(self.settings.database_url, search_path=READ_SCHEMA,
                                       max_size=2)
        if await self.pool.fetchval("SELECT to_regclass('alert_incidents')") is None:
            raise InfrastructureError("the alert tables are missing; run `leadflow db migrate`")
        where = [f"webhook {self.webhook.where}"] if self.webhook else []
        if self.channels.email_to:
            where.append(f"email to {len(self.channels.email_to)} recipient(s)")
        rules = [name for name, rule in self.rules.items() if rule.enabled]
        log.info("alerts: rules %s, every %s, to %s", ", ".join(rules) or "none",
                 format_duration(self.config.interval), ", ".join(where) or "the log only",
                 extra={"action": "alerts_started"})

    async def stop(self) -> None:
        await self.lock.release()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def request_stop(self) -> None:
        self._stopping.set()

    # --- one poll ----------------------------------------------------------------------------

    async def step(self, now: datetime | None = None) -> Decision:
        """Judge the read models at ``now``, record the decision, deliver what is pending."""
        now = now or self.now()
        readings = await store.readings(self.pool, self.rules, now)
        conditions = evaluate(self.rules, readings)
        async with self.pool.acquire() as conn, conn.transaction():
            decision = decide(await store.open_incidents(conn), conditions, self.rules, now)
            await store.record(conn, decision, self.destinations)
        self._log(decision)
        await self.deliver()
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = time.monotonic()
            await store.prune(self.pool, now - self.settings.pipeline.retention.max_age)
        return decision

    def _log(self, decision: Decision) -> None:
        for incident in decision.fired:
            log.warning("alert firing: %s %s (%s): %s", incident.rule, incident.subject,
                        incident.severity, incident.summary, extra={"action": "alert_fired"})
        for r in decision.resolved:
            log.info("alert resolved: %s %s: %s", r.incident.rule, r.incident.subject, r.summary,
                     extra={"action": "alert_resolved"})

    async def deliver(self) -> tuple[int, int]:
        """Try every pending delivery whose backoff has passed; returns (sent, failed)."""
        sent = failures = 0
        try:
            for delivery in await store.pending_deliveries(self.pool):
                if time.monotonic() < self._retry_at.get(delivery.key, 0.0):
                    continue
                try:
                    await self._send(delivery)
                except DeliveryError as exc:
                    failures += 1
                    await self._failed(delivery, exc)
                    continue
                self._retry_at.pop(delivery.key, None)
                await store.delivered(self.pool, delivery)
                sent += 1
                n = delivery.notification
                log.info("alert %s %s %s sent to %s", n.rule, n.subject,
                         "fire" if n.kind == FIRE else "resolve", delivery.destination,
                         extra={"action": "alert_sent"})
        finally:
            if self.email is not None:
                await self.email.close()
        return sent, failures

    async def _send(self, delivery: store.Delivery) -> None:
        target = delivery.destination
        if target == "webhook" and self.webhook is not None:
            await self.webhook.send(delivery.notification)
        elif target.startswith("email:") and self.email is not None \
                and target.removeprefix("email:") in self.channels.email_to:
            await self.email.send(delivery.notification, target.removeprefix("email:"))
        else:
            raise DeliveryError(f"{target} is no longer configured", permanent=True)

    async def _failed(self, delivery: store.Delivery, exc: DeliveryError) -> None:
        n = delivery.notification
        await store.failed(self.pool, delivery, str(exc), give_up=exc.permanent)
        if exc.permanent:
            self._retry_at.pop(delivery.key, None)
            log.error("alert %s %s could not be delivered to %s and will not be retried: %s",
                      n.rule, n.subject, delivery.destination, exc,
                      extra={"action": "alert_undeliverable"})
            return
        delay = min(MAX_RETRY_DELAY,
                    self.config.interval.total_seconds() * 2 ** min(delivery.attempts, 16))
        self._retry_at[delivery.key] = time.monotonic() + delay
        log.warning("alert %s %s not delivered to %s (%s); retrying in %.0fs", n.rule, n.subject,
                    delivery.destination, exc, delay, extra={"action": "alert_delivery_failed"})

    # --- the loop ----------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), max(seconds, 0))

    async def run(self) -> None:
        """Stand by until this notifier holds the lock, poll while it does, until stopped."""
        await self.start()
        interval = self.config.interval.total_seconds()
        announced = False
        try:
            while not self._stopping.is_set():
                try:
                    active = await self.lock.still_held() or await self.lock.try_acquire()
                    if not active:
                        if not announced:
                            log.info("another notifier is active; standing by",
                                     extra={"action": "standby"})
                            announced = True
                    else:
                        announced = False
                        await self.step()
                except POLL_ERRORS as exc:  # the database is away
                    log.warning("alerts poll failed (%s); retrying in %.0fs", exc, interval,
                                extra={"action": "poll_failed"})
                except Exception:
                    log.exception("alerts poll failed; retrying in %.0fs", interval,
                                  extra={"action": "poll_failed"})
                await self._sleep(interval)
        finally:
            await self.stop()


async def run_alerts(settings: Settings) -> None:
    """`leadflow run alerts`: run until SIGINT or SIGTERM."""
    notifier = Notifier(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, notifier.request_stop)
    try:
        await notifier.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

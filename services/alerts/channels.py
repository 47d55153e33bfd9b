"""Where notifications go: a Slack-compatible webhook and email (the contact stage's SMTP
sender). Secrets stay out of logs: a webhook URL is shown as its host, SMTP credentials come
from the environment and are never printed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..contact.senders import SendError
from ..contact.smtp import SmtpSender
from ..contact.templates import Message
from ..runtime.config import AlertEmailConfig, AlertsConfig, WebhookConfig
from ..runtime.errors import ConfigError
from .messages import Notification, email_subject, message_id, webhook_body

#: Most of a webhook's answer read (Slack answers "ok"); the rest is not needed.
MAX_ANSWER = 4096


class DeliveryError(Exception):
    """A notification did not arrive. ``permanent``: trying again cannot help (a 4xx from the
    webhook, a 5xx refusal of the mail); otherwise it is retried with backoff."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def safe_url(url: str) -> str:
    """A webhook URL fit for a log line: scheme and host only (the path holds the token)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def webhook_url(config: WebhookConfig, env: Mapping[str, str] | None = None) -> str | None:
    """The webhook URL: the variable ``url_env`` names, else ``url``; None when neither is set."""
    source = os.environ if env is None else env
    url = (source.get(config.url_env) or config.url or "").strip()
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"the alert webhook URL (${config.url_env} or alerts.webhook.url) must "
                          "start with https:// (or http://)")
    return url


@dataclass(frozen=True, slots=True)
class Channels:
    """The channels configured at start: the webhook URL (if any) and the email recipients."""

    webhook_url: str | None
    email_to: tuple[str, ...]

    @property
    def webhook(self) -> bool:
        return self.webhook_url is not None


def configured_channels(config: AlertsConfig, env: Mapping[str, str] | None = None) -> Channels:
    """Check at start that every channel a rule names is configured (ConfigError naming the
    rule and the fix otherwise)."""
    channels = Channels(webhook_url(config.webhook, env), config.email.to)
    if not channels.webhook:
        naming = [name for name, rule in config.rules.items()
                  if rule.enabled and rule.channels and "webhook" in rule.channels]
        if naming:
            raise ConfigError(
                f"alert rules {naming} send to the webhook but it has no URL; set "
                f"${config.webhook.url_env} (or alerts.webhook.url), or remove webhook from "
                "their channels")
    return channels


class Webhook:
    """POSTs ``{"text": ...}`` to the URL. Redirects are refused (a webhook that moved must be
    configured with its new URL, not followed with a GET that drops the message)."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.where = safe_url(url)
        self._opener = urllib.request.build_opener(_NoRedirect)

    async def send(self, notification: Notification) -> None:
        await asyncio.to_thread(self._post, webhook_body(notification))

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "leadflow-alerts"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(MAX_ANSWER)
        except urllib.error.HTTPError as exc:
            with contextlib.closing(exc):
                code = exc.code
            retry = code == 429 or code >= 500 or code == 408
            raise DeliveryError(f"webhook {self.where} answered {code} {exc.reason}",
                                permanent=not retry) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"cannot reach webhook {self.where} ({reason})",
                                permanent=False) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises HTTPError with the 3xx


class Email:
    """One message per recipient through the contact stage's SMTP sender (TLS, credentials
    from the environment, connections reused within a poll)."""

    def __init__(self, config: AlertEmailConfig, env: Mapping[str, str] | None = None) -> None:
        self.from_address = config.from_address
        self.sender = SmtpSender(config.smtp, config.from_address,
                                 dict(env) if env is not None else None)

    async def send(self, notification: Notification, to: str) -> None:
        message = Message(to=to, subject=email_subject(notification), body=notification.text(),
                          message_id=message_id(notification, self.from_address))
        try:
            await self.sender.send(message, idempotency_key=notification.idempotency_key)
        except SendError as exc:
            # An unknown outcome (connection lost with the body in flight) is sent again: a
            # repeated alert (same Message-ID) is better than a lost one.
            raise DeliveryError(str(exc), permanent=not exc.transient and not exc.unknown) from None

    async def close(self) -> None:
        await self.sender.close()

"""The text of a notification (pure): a headline, the rule's summary, and the incident's times.
The same text goes to the webhook (Slack-compatible ``{"text": ...}``) and into the email."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from ..runtime.durations import format_duration
from ..runtime.logging import redact

FIRE = "fire"
RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about one incident: it fired, or it resolved."""

    kind: str  # FIRE | RESOLVE
    incident_id: str
    rule: str
    subject: str
    severity: str
    summary: str  # the rule's words at fire (or resolve) time
    since: datetime
    fired_at: datetime | None
    resolved_at: datetime | None = None

    @property
    def headline(self) -> str:
        state = "FIRING" if self.kind == FIRE else "RESOLVED"
        return f"[leadflow] {state} {self.rule} {self.subject} ({self.severity})"

    @property
    def idempotency_key(self) -> str:
        return f"alert:{self.incident_id}:{self.kind}"

    def text(self) -> str:
        lines = [self.headline, redact(self.summary)]
        if self.kind == FIRE:
            lines.append(f"since {_iso(self.since)}")
        else:
            end = self.resolved_at or self.since
            lasted = format_duration(end - self.since) if end >= self.since else "0s"
            lines.append(f"since {_iso(self.since)}, resolved {_iso(end)} (after {lasted})")
        lines.append(f"incident {self.incident_id}")
        return "\n".join(lines)


def webhook_body(notification: Notification) -> bytes:
    """A Slack incoming-webhook payload (also accepted by Mattermost, Rocket.Chat, Teams
    workflows and most chat bridges)."""
    return json.dumps({"text": notification.text()}).encode()


def email_subject(notification: Notification) -> str:
    return redact(notification.headline)


def message_id(notification: Notification, from_address: str) -> str:
    """A fixed Message-ID per incident and kind, so a repeated delivery is recognisable."""
    domain = from_address.rsplit("@", 1)[-1] or "leadflow.invalid"
    return f"<{notification.incident_id}.{notification.kind}@{domain}>"


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")

"""Outreach decisions, pure: which step is next, whether a send may happen now, when to retry.

Everything here is a function of (lead, config, control state, decision time); the send path
(outbox.py) loads the inputs, calls these, and acts on the answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo

from events import (
    ALL_TENANTS,
    CampaignPaused,
    ControlEvent,
    KillSwitchChanged,
    Lead,
    LeadReplied,
    LeadUnsubscribed,
    Outreach,
    SuppressionAdded,
)

from .config import ContactConfig, SequenceConfig

EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))


def next_step(sent_step: int, sequence: SequenceConfig) -> int | None:
    """The step to send after ``sent_step`` (0: none sent yet); None when the sequence is done."""
    step = sent_step + 1
    return step if step <= len(sequence.steps) else None


def outreach_after(sequence_id: str, sequence: SequenceConfig, step: int, at: datetime) -> Outreach:
    """Progress after sending ``step``: the next step is due after the cooldown, if any."""
    more = next_step(step, sequence) is not None
    return Outreach(sequence_id=sequence_id, step=step, last_contacted_at=at,
                    next_action_at=at + sequence.cooldown if more else None,
                    stopped_reason=None if more else "completed")


def backoff(retry: int, base: timedelta, cap: timedelta) -> timedelta:
    """Wait before retry number ``retry`` (0 for the first): base * 2^retry, at most ``cap``."""
    if retry < 0:
        raise ValueError("retry counts from 0")
    if base <= timedelta(0):
        return timedelta(0)
    # Stop doubling once past the cap, so a large retry count cannot overflow timedelta.
    wait = base
    for _ in range(retry):
        if wait >= cap:
            break
        wait *= 2
    return min(wait, cap)


def retry_decision(failures: int, max_retries: int) -> Literal["retry", "give_up"]:
    """After ``failures`` transient failures of one step: try again, or mark it failed."""
    return "retry" if failures <= max_retries else "give_up"


# --- who may be contacted ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlState:
    """Operator and recipient decisions that bear on one send, as the control feed applied them."""

    kill_switch: bool = False
    paused: bool = False
    suppressed: str | None = None  # 'email' or 'domain'
    unsubscribed: bool = False
    replied: bool = False


@dataclass(frozen=True, slots=True)
class Block:
    """Why a send must not happen now. ``hold``: try later; ``stop``: never for this lead."""

    kind: Literal["hold", "stop"]
    reason: str


def blocked(lead: Lead, state: ControlState) -> Block | None:
    """The first reason not to contact ``lead`` now, most permanent first; None: go ahead."""
    if lead.do_not_contact:
        return Block("stop", "do_not_contact")
    if state.unsubscribed:
        return Block("stop", "unsubscribed")
    if state.replied:
        return Block("stop", "replied")
    if state.suppressed:
        return Block("stop", f"suppressed_{state.suppressed}")
    if state.kill_switch:
        return Block("hold", "kill_switch")
    if state.paused:
        return Block("hold", "paused")
    return None


@dataclass(frozen=True, slots=True)
class ControlSnapshot:
    """The control tables as they bear on a batch of sends, read while the feed syncs."""

    kill_switches: frozenset[str] = frozenset()  # tenants with the switch engaged ('*': all)
    pauses: frozenset[tuple[str, str]] = frozenset()  # (tenant, campaign) paused
    suppressions: frozenset[tuple[str, str, str]] = frozenset()  # (tenant, kind, value)
    unsubscribes: frozenset[tuple[str, str]] = frozenset()  # (tenant, normal email)
    replies: frozenset[object] = field(default_factory=frozenset)  # lead ids

    def state_for(self, lead: Lead) -> ControlState:
        """What the control tables say about ``lead``: tenant '*' rows bind every tenant; a
        domain suppression covers subdomains; replies bind by lead."""
        tenants = (lead.tenant_id, ALL_TENANTS)
        email = normal_email(lead.email)
        domains = domain_and_parents(domain_of(lead.email))
        kinds = sorted({kind for t in tenants
                        for kind, values in (("domain", domains), ("email", [email]))
                        for v in values if (t, kind, v) in self.suppressions})
        return ControlState(
            kill_switch=any(t in self.kill_switches for t in tenants),
            paused=any((t, lead.campaign_id) in self.pauses for t in tenants),
            suppressed=kinds[0] if kinds else None,
            unsubscribed=any((t, email) in self.unsubscribes for t in tenants),
            replied=lead.lead_id in self.replies)


def tightened(state: ControlState, lead: Lead, events: Iterable[ControlEvent]) -> ControlState:
    """``state`` after control events applied since it was read, restrictive ones only.

    Lifting a control (resume, switch off, suppression removed) waits for the next snapshot:
    acting on it early could only send more, never less, than the tables allow."""
    tenants = (lead.tenant_id, ALL_TENANTS)
    email = normal_email(lead.email)
    for event in events:
        if isinstance(event, LeadReplied):  # replies bind by lead, whatever the tenant
            if event.lead_id == lead.lead_id:
                state = replace(state, replied=True)
        elif event.tenant_id not in tenants:
            continue
        elif isinstance(event, KillSwitchChanged) and event.engaged:
            state = replace(state, kill_switch=True)
        elif isinstance(event, CampaignPaused) and event.campaign_id == lead.campaign_id:
            state = replace(state, paused=True)
        elif isinstance(event, SuppressionAdded):
            domain = (event.domain or "").strip().lower().strip(".")
            if domain and domain in domain_and_parents(domain_of(lead.email)):
                state = replace(state, suppressed="domain")  # as min(kind) in SQL
            elif event.email and normal_email(event.email) == email and not state.suppressed:
                state = replace(state, suppressed="email")
        elif isinstance(event, LeadUnsubscribed) and (
                normal_email(event.email) == email or event.lead_id == lead.lead_id):
            state = replace(state, unsubscribed=True)
    return state


def normal_email(email: str) -> str:
    return email.strip().lower()


def domain_of(email: str) -> str:
    return normal_email(email).rpartition("@")[2]


def domain_and_parents(domain: str) -> list[str]:
    """``mail.acme.com`` -> [mail.acme.com, acme.com]: suppressing a domain covers subdomains."""
    labels = domain.strip().lower().strip(".").split(".")
    return [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]


# --- limits ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limit:
    """One counter a send must fit in: at most ``limit`` sends in [start, end) for ``scope``."""

    scope: str
    start: datetime
    end: datetime
    limit: int
    reason: str


def local_day(at: datetime, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of the local calendar day containing ``at`` in ``timezone``, as aware times."""
    zone = ZoneInfo(timezone)
    day = at.astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


def fixed_window(at: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """[start, end) of the ``window``-long slot (counted from the epoch) containing ``at``."""
    size = window.total_seconds()
    if size <= 0:
        raise ValueError("a rate window must be longer than zero")
    slots = int((at - EPOCH).total_seconds() // size)
    start = EPOCH + timedelta(seconds=slots * size)
    return start, start + window


def quota_allows(used: int, limit: int | None) -> bool:
    """Whether one more send fits under ``limit`` (None: unlimited)."""
    return limit is None or used < limit


def limits_for(lead: Lead, config: ContactConfig, at: datetime) -> list[Limit]:
    """The counters a send to ``lead`` at ``at`` must fit in: campaign and tenant days, domain rate."""
    quotas = config.quotas
    out: list[Limit] = []
    timezone = quotas.timezones.get(lead.tenant_id, "UTC")
    day_start, day_end = local_day(at, timezone)
    campaign_limit = quotas.campaigns.get(lead.campaign_id, quotas.daily_per_campaign)
    if campaign_limit is not None:
        out.append(Limit(f"campaign:{lead.tenant_id}:{lead.campaign_id}", day_start, day_end,
                         campaign_limit, "campaign_daily_quota"))
    tenant_limit = quotas.tenants.get(lead.tenant_id, quotas.daily_per_tenant)
    if tenant_limit is not None:
        out.append(Limit(f"tenant:{lead.tenant_id}", day_start, day_end, tenant_limit,
                         "tenant_daily_quota"))
    rate = config.domain_rate
    if rate.max_sends is not None:
        start, end = fixed_window(at, rate.window)
        out.append(Limit(f"domain:{domain_of(lead.email)}", start, end, rate.max_sends,
                         "domain_rate_limit"))
    return out


#: A limit's counter: (scope, period start).
Period: TypeAlias = tuple[str, datetime]


def allocate(wanted: Sequence[Sequence[Limit]],
             granted: dict[Period, int]) -> tuple[list[Limit | None], Counter[Period]]:
    """Share the units a batch reservation got among its sends, in order, all or none per send.

    Returns, per send, None (admitted: one unit of each of its limits is its own) or the first
    of its limits that ran out; and the units left over, to give back."""
    left: Counter[Period] = Counter(granted)
    verdicts: list[Limit | None] = []
    for limits in wanted:
        full = next((lim for lim in limits if left[(lim.scope, lim.start)] <= 0), None)
        if full is None:
            for lim in limits:
                left[(lim.scope, lim.start)] -= 1
        verdicts.append(full)
    return verdicts, +left


# --- circuit breaker ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Breaker:
    """The sender's health. ``open``: sends are skipped, except one probe every probe_after."""

    failures: int = 0
    opened_at: float | None = None  # a time.monotonic() value
    probing: bool = False

    @property
    def open(self) -> bool:
        return self.opened_at is not None


def breaker_admits(breaker: Breaker, now: float, probe_after: timedelta) -> tuple[bool, Breaker]:
    """Whether a send may go now, and the breaker after deciding (a probe marks it probing)."""
    if breaker.opened_at is None:
        return True, breaker
    if breaker.probing or now - breaker.opened_at < probe_after.total_seconds():
        return False, breaker
    return True, Breaker(breaker.failures, breaker.opened_at, probing=True)


def breaker_after(breaker: Breaker, ok: bool, now: float, threshold: int) -> Breaker:
    """The breaker after a send: success closes it, the threshold-th failure in a row opens it."""
    if ok:
        return Breaker()
    failures = breaker.failures + 1
    if breaker.probing or failures >= threshold:
        return Breaker(failures, opened_at=now)
    return Breaker(failures, breaker.opened_at)

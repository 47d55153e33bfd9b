"""Control endpoints: each checks the bearer token, validates its body and publishes one event.

They never write read models: the effect shows once the pipeline acts and the projector folds
what happened.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request, status
from fastapi.exceptions import RequestValidationError

from events import (
    CampaignPaused,
    CampaignResumed,
    ControlEvent,
    Envelope,
    KillSwitchChanged,
    SuppressionAdded,
    utcnow,
)

from ..clock.manual import manual_tick
from ..pipeline.registry import scope_problem
from ..runtime.logging import redact
from .auth import require_token, resources
from .models import (
    Accepted,
    CampaignRequest,
    ControlBody,
    KillSwitchRequest,
    Problem,
    SuppressionRequest,
    TickRequest,
)

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api", tags=["control"], dependencies=[Depends(require_token)],
    responses={
        401: {"model": Problem, "description": "Missing or wrong bearer token."},
        403: {"model": Problem, "description": "No token is configured: controls are disabled."},
        503: {"model": Problem, "description": "The broker did not accept the event."},
    },
)
CampaignId = Annotated[str, Path(min_length=1, max_length=200)]


def requester(request: Request, body: ControlBody | None) -> str:
    """``http:<client address>``, prefixed by the name the caller gave."""
    client = request.client.host if request.client else "unknown"
    name = body.requested_by if body and body.requested_by else None
    return f"http:{name}@{client}" if name else f"http:{client}"


async def publish(request: Request, event: Envelope) -> Accepted:
    await resources(request).publish(event)
    by = getattr(event, "requested_by", None) or ""
    log.info("published %s %s by %s", event.type, event.event_id, redact(by),
             extra={"action": "control_published"})
    return Accepted(event_id=event.event_id, type=event.type,
                    topic=type(event).topic.physical(resources(request).settings.prefix),  # type: ignore[attr-defined]
                    requested_by=by)


def _control(cls: type[ControlEvent], **fields: Any) -> ControlEvent:
    now = utcnow()
    return cls(event_id=uuid.uuid4(), occurred_at=now, recorded_at=now, **fields)


@router.post("/ticks", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def tick(request: Request, body: TickRequest) -> Accepted:
    """Run a job now: publishes a manual tick; the run appears in the job's runs."""
    topics = resources(request).settings.pipeline.topics
    if problem := scope_problem(body.job, body.tenant_id, body.campaign_id, topics.tenants):
        raise RequestValidationError([{"loc": ("body",), "msg": problem, "type": "value_error"}])
    event = manual_tick(body.job, requested_by=requester(request, body), max_leads=body.max_leads,
                        tenant_id=body.tenant_id, campaign_id=body.campaign_id)
    return await publish(request, event)


@router.post("/campaigns/{campaign_id}/pause", status_code=status.HTTP_202_ACCEPTED,
             response_model=Accepted)
async def pause(request: Request, campaign_id: CampaignId,
                body: Annotated[CampaignRequest | None, Body()] = None) -> Accepted:
    """Stop sending for a campaign until it is resumed (checked before every send)."""
    body = body or CampaignRequest()
    return await publish(request, _control(
        CampaignPaused, campaign_id=campaign_id, tenant_id=body.tenant_id,
        requested_by=requester(request, body)))


@router.post("/campaigns/{campaign_id}/resume", status_code=status.HTTP_202_ACCEPTED,
             response_model=Accepted)
async def resume(request: Request, campaign_id: CampaignId,
                 body: Annotated[CampaignRequest | None, Body()] = None) -> Accepted:
    """Allow sending for a paused campaign again."""
    body = body or CampaignRequest()
    return await publish(request, _control(
        CampaignResumed, campaign_id=campaign_id, tenant_id=body.tenant_id,
        requested_by=requester(request, body)))


@router.post("/kill-switch", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def kill_switch(request: Request, body: KillSwitchRequest) -> Accepted:
    """Engage (no send anywhere for the tenant, '*' for all) or release the kill switch."""
    return await publish(request, _control(
        KillSwitchChanged, engaged=body.engaged, reason=body.reason, tenant_id=body.tenant_id,
        requested_by=requester(request, body)))


@router.post("/suppressions", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def suppress(request: Request, body: SuppressionRequest) -> Accepted:
    """Never contact an email address, or anyone at a domain."""
    return await publish(request, _control(
        SuppressionAdded, email=body.email, domain=body.domain, reason=body.reason,
        tenant_id=body.tenant_id, requested_by=requester(request, body)))

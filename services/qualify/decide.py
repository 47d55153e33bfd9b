"""Qualification rules: minimum score, required fields, valid email, suppressed domains. Pure."""

from __future__ import annotations

from events import Lead, Qualification
from events.emails import is_valid_email

from .config import QualifyConfig

#: The verdict of every lead no rule objects to (frozen, so one instance serves them all).
QUALIFIED = Qualification(qualified=True)


def domain_suppressed(domain: str, suppressed: tuple[str, ...]) -> bool:
    """True if ``domain`` is a suppressed domain or one of its subdomains."""
    return any(domain == d or domain.endswith("." + d) for d in suppressed)


def qualify_lead(lead: Lead, cfg: QualifyConfig) -> Qualification:
    """QUALIFIED when no rule of the lead's tenant objects; otherwise REJECTED with every reason
    as a code."""
    cfg = cfg.for_tenant(lead.tenant_id)
    reasons: list[str] = []
    score = lead.score.value if lead.score else 0
    if score < cfg.min_score:
        reasons.append("score_below_minimum")
    for name in cfg.required_fields:
        if getattr(lead, name) in (None, ""):
            reasons.append(f"missing_field:{name}")
    if not is_valid_email(lead.email):
        reasons.append("invalid_email")
    domains = {lead.email_domain, lead.domain or ""} - {""}
    if any(domain_suppressed(d, cfg.suppressed_domains) for d in domains):
        reasons.append("suppressed_domain")
    if lead.do_not_contact:
        reasons.append("do_not_contact")
    return Qualification(qualified=False, reasons=tuple(reasons)) if reasons else QUALIFIED

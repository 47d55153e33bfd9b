"""ICP fit: 0-100 from industry, employee range, country and title seniority. Pure."""

from __future__ import annotations

import re
from functools import lru_cache

from events import Lead, ScoreCard

from .config import ScoreConfig

FACTORS = ("industry", "employees", "country", "seniority")


@lru_cache(maxsize=256)
def _word(keyword: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){re.escape(keyword)}(?![a-z0-9])")


@lru_cache(maxsize=64)
def _any_word(keywords: tuple[str, ...]) -> re.Pattern[str]:
    # One alternation finds a whole-word match of any keyword in a single pass over the text
    # (a failed lookaround makes the engine try the next keyword at the same position).
    words = "|".join(re.escape(k) for k in sorted(keywords, key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9])(?:{words})(?![a-z0-9])")


def seniority(title: str | None, keywords: dict[str, tuple[str, ...]]) -> str:
    """The first level (in config order) whose keyword appears as a whole word in the title."""
    text = (title or "").lower()
    if text:
        for level, words in keywords.items():
            if words and _any_word(tuple(words)).search(text):
                return level
    return "individual"


@lru_cache(maxsize=4096)
def _industry_points(text: str, table: tuple[tuple[str, int], ...]) -> int:
    return max((pts for name, pts in table if _word(name).search(text)), default=0)


def industry_points(industry: str | None, table: dict[str, int]) -> int:
    """Exact match first; else the best-scoring configured industry named inside it."""
    if not industry:
        return 0
    text = industry.lower()
    if text in table:
        return table[text]
    # Industries are a small vocabulary: remember each text's answer (per table).
    return _industry_points(text, tuple(table.items()))


def employee_points(employees: int | None, cfg: ScoreConfig) -> int:
    if employees is None:
        return 0
    for band in cfg.employees:
        if employees >= band.min and (band.max is None or employees <= band.max):
            return band.points
    return 0


def score_lead(lead: Lead, cfg: ScoreConfig) -> ScoreCard:
    """Score one lead by its tenant's rules; the factors say how many points each part
    contributed."""
    cfg = cfg.for_tenant(lead.tenant_id)
    level = seniority(lead.title, cfg.seniority_keywords)
    factors = {
        "industry": industry_points(lead.industry, cfg.industry),
        "employees": employee_points(lead.employees, cfg),
        "country": cfg.country.get((lead.country or "").upper(), 0),
        "seniority": cfg.seniority.get(level, 0),
    }
    return ScoreCard(value=max(0, min(100, sum(factors.values()))), factors=factors,
                     model_version=cfg.model_version)

"""ICP fit: 0-100 from industry, employee range, country and title seniority. Pure."""

from __future__ import annotations

import re
from functools import lru_cache

from events import Lead, ScoreCard

from ..runtime.config import ScoreConfig

FACTORS = ("industry", "employees", "country", "seniority")


@lru_cache(maxsize=256)
def _word(keyword: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){re.escape(keyword)}(?![a-z0-9])")


def seniority(title: str | None, keywords: dict[str, tuple[str, ...]]) -> str:
    """The first level (in config order) whose keyword appears as a whole word in the title."""
    text = (title or "").lower()
    for level, words in keywords.items():
        if any(_word(w).search(text) for w in words):
            return level
    return "individual"


def industry_points(industry: str | None, table: dict[str, int]) -> int:
    """Exact match first; else the best-scoring configured industry named inside it."""
    if not industry:
        return 0
    text = industry.lower()
    if text in table:
        return table[text]
    return max((pts for name, pts in table.items() if _word(name).search(text)), default=0)


def employee_points(employees: int | None, cfg: ScoreConfig) -> int:
    if employees is None:
        return 0
    for band in cfg.employees:
        if employees >= band.min and (band.max is None or employees <= band.max):
            return band.points
    return 0


def score_lead(lead: Lead, cfg: ScoreConfig) -> ScoreCard:
    """Score one lead; the factors say how many points each part contributed."""
    level = seniority(lead.title, cfg.seniority_keywords)
    factors = {
        "industry": industry_points(lead.industry, cfg.industry),
        "employees": employee_points(lead.employees, cfg),
        "country": cfg.country.get((lead.country or "").upper(), 0),
        "seniority": cfg.seniority.get(level, 0),
    }
    return ScoreCard(value=max(0, min(100, sum(factors.values()))), factors=factors,
                     model_version=cfg.model_version)

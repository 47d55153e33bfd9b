"""Score's config section, ``[score]``: the ICP points of each factor, and any tenant's own."""

from __future__ import annotations

from pydantic import Field, model_validator

from ..runtime.config import Section, TenantRules


class EmployeeBand(Section):
    min: int = Field(ge=0)
    max: int | None = None
    points: int = Field(ge=0, le=100)


class ScoreConfig(TenantRules):
    """ICP points per factor; ``[score.tenants.<id>]`` replaces fields for one tenant."""

    model_version: str = "icp-v1"
    industry: dict[str, int] = Field(default_factory=lambda: {
        "software": 30, "saas": 30, "fintech": 25, "financial services": 20,
        "healthcare": 15, "manufacturing": 12, "retail": 10, "education": 5,
    })
    employees: tuple[EmployeeBand, ...] = (
        EmployeeBand(min=1, max=10, points=5),
        EmployeeBand(min=11, max=50, points=12),
        EmployeeBand(min=51, max=200, points=20),
        EmployeeBand(min=201, max=1000, points=25),
        EmployeeBand(min=1001, max=None, points=22),
    )
    country: dict[str, int] = Field(default_factory=lambda: {
        "US": 20, "CA": 16, "GB": 18, "DE": 16, "FR": 14, "NL": 15, "SE": 14, "AU": 12,
    })
    seniority: dict[str, int] = Field(default_factory=lambda: {
        "c_level": 25, "vp": 22, "director": 18, "manager": 10, "individual": 3,
    })
    seniority_keywords: dict[str, tuple[str, ...]] = Field(default_factory=lambda: {
        "c_level": ("chief", "ceo", "cto", "cfo", "coo", "cmo", "cro", "founder", "president",
                    "owner"),
        "vp": ("vp", "vice president", "head of", "svp", "evp"),
        "director": ("director",),
        "manager": ("manager", "lead", "principal"),
    })

    @model_validator(mode="after")
    def _keywords_have_points(self) -> ScoreConfig:
        unknown = set(self.seniority_keywords) - set(self.seniority)
        if unknown:
            raise ValueError(f"seniority_keywords names levels without points: {sorted(unknown)}; "
                             "add them to [score.seniority]")
        return self

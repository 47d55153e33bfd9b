"""Route's config section, ``[route]``: the segments, first match wins."""

from __future__ import annotations

from pydantic import Field, field_validator

from ..runtime.config import Section


class Segment(Section):
    """Leads matching every condition given go to ``sequence`` with one of ``owners``."""

    name: str = Field(min_length=1)
    sequence: str = Field(min_length=1)
    owners: tuple[str, ...] = Field(min_length=1)
    industries: tuple[str, ...] | None = None
    countries: tuple[str, ...] | None = None
    min_employees: int | None = None
    max_employees: int | None = None
    min_score: int | None = None

    @property
    def is_catch_all(self) -> bool:
        return all(getattr(self, f) is None for f in
                   ("industries", "countries", "min_employees", "max_employees", "min_score"))


class RouteConfig(Section):
    segments: tuple[Segment, ...] = (
        Segment(name="enterprise", min_employees=1001, sequence="enterprise",
                owners=("ava", "ben")),
        Segment(name="mid-market", min_employees=51, sequence="standard",
                owners=("cleo", "dan", "eve")),
        Segment(name="smb", sequence="standard", owners=("finn",)),
    )

    @field_validator("segments")
    @classmethod
    def _last_catches_all(cls, value: tuple[Segment, ...]) -> tuple[Segment, ...]:
        if not value or not value[-1].is_catch_all:
            raise ValueError("the last segment must have no conditions so that every qualified "
                             "lead is routed; add a catch-all segment at the end")
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError(f"segment names must be unique: {names}")
        return value

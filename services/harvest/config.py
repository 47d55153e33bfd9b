"""Harvest's config section: ``[[harvest.sources]]``, the files it reads leads from."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from ..runtime.config import Section


class HarvestSource(Section):
    path: Path
    format: Literal["csv", "jsonl", "auto"] = "auto"
    tenant: str = Field(default="default", min_length=1)
    campaign: str = Field(default="default", min_length=1)

    @field_validator("path")
    @classmethod
    def _from_the_config_file(cls, value: Path, info: ValidationInfo) -> Path:
        # Relative to the config file (load_config's context), not to where the command runs.
        base = (info.context or {}).get("base")
        if base is None or value.is_absolute():
            return value
        return (Path(base) / value).resolve()

    def resolved_format(self) -> str:
        if self.format != "auto":
            return self.format
        return "jsonl" if self.path.suffix.lower() in {".jsonl", ".ndjson"} else "csv"


class HarvestConfig(Section):
    sources: tuple[HarvestSource, ...] = ()

"""The whole config file: the shared sections (``runtime.config``) and each stage's own."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import model_validator

from ..contact.config import ContactConfig
from ..harvest.config import HarvestConfig
from ..qualify.config import QualifyConfig
from ..route.config import RouteConfig
from ..runtime import config as runtime_config
from ..runtime.config import PlatformConfig
from ..score.config import ScoreConfig
from .registry import scope_problem


class LeadflowConfig(PlatformConfig):
    """The whole config file. A stage's section is the field named after its job."""

    harvest: HarvestConfig = HarvestConfig()
    score: ScoreConfig = ScoreConfig()
    qualify: QualifyConfig = QualifyConfig()
    route: RouteConfig = RouteConfig()
    contact: ContactConfig = ContactConfig()

    @model_validator(mode="after")
    def _scopes_are_honoured(self) -> Self:
        for job, config in self.jobs.items():
            for scope in config.scopes:
                problem = scope.enabled and scope_problem(job, scope.tenant, scope.campaign,
                                                          self.topics.tenants)
                if problem:
                    raise ValueError(f"jobs.{job.value}.scopes: {problem}; remove the scope or "
                                     "set enabled = false")
        return self

    @model_validator(mode="after")
    def _sequences_exist(self) -> Self:
        missing = sorted({s.sequence for s in self.route.segments} - set(self.contact.sequences))
        if missing:
            raise ValueError(f"route.segments name sequences {missing} that [contact.sequences] "
                             "does not define")
        return self

    def tenant_ids(self) -> set[str]:
        """The tenants the config names, the stages' sections included (harvest sources,
        scoring and qualification overrides)."""
        return (super().tenant_ids() | {s.tenant for s in self.harvest.sources}
                | set(self.score.tenants) | set(self.qualify.tenants))



def load_config(path: Path | str | None) -> LeadflowConfig:
    """Read and validate the config file (None: the built-in defaults); ConfigError names
    each bad key."""
    return runtime_config.load_config(path, LeadflowConfig)

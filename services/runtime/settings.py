"""Process settings from the environment (where to find the broker, the database, the config).

The runtime sees the config file as its shared sections (PlatformConfig); the product's
settings, ``services.pipeline.settings.Settings``, load the whole file with each stage's section."""

from __future__ import annotations

import socket
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .config import SHARED_TENANT, PlatformConfig, describe_validation_error, load_config
from .errors import ConfigError


class Settings(BaseSettings):
    """Environment of one process. Built at start-up, never at import."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore", frozen=True)
    #: What the config file is validated as.
    config_model: ClassVar[type[PlatformConfig]] = PlatformConfig

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=AliasChoices("DATABASE_URL", "LEADFLOW_DATABASE_URL"),
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "LEADFLOW_KAFKA_BOOTSTRAP_SERVERS"),
    )
    config: Path | None = None
    instance_id: str = Field(default_factory=socket.gethostname, min_length=1)
    topic_prefix: str | None = None
    log_level: str = "INFO"
    dashboard_token: str | None = None
    dashboard_read_token: str | None = None
    #: The tenants this process's stages serve (comma-separated; ``default`` stands for the
    #: shared lead topics): LEADFLOW_TENANTS_INCLUDE, then LEADFLOW_TENANTS_EXCLUDE.
    tenants_include: Annotated[tuple[str, ...], NoDecode] = ()
    tenants_exclude: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("tenants_include", "tenants_exclude", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @cached_property
    def pipeline(self) -> PlatformConfig:
        """The config file, validated (LEADFLOW_TOPIC_PREFIX overrides its topic prefix)."""
        config = load_config(self.config, self.config_model)
        if self.topic_prefix is not None:
            topics = config.topics.model_copy(update={"prefix": self.topic_prefix})
            config = config.model_copy(update={"topics": topics})
        return config

    @property
    def prefix(self) -> str:
        return self.pipeline.topics.prefix

    @property
    def served_tenants(self) -> frozenset[str] | None:
        """The tenants whose lead topics this process's stages drain (None: every one).
        ``SHARED_TENANT`` stands for the shared topics."""
        if not self.tenants_include and not self.tenants_exclude:
            return None
        return frozenset(self.tenants_include or self._known_tenants()) - set(self.tenants_exclude)

    def _known_tenants(self) -> set[str]:
        return {SHARED_TENANT, *self.pipeline.topics.tenants}

    def _tenant_filter_problems(self) -> list[str]:
        known = self._known_tenants()
        problems = []
        for var, names in (("LEADFLOW_TENANTS_INCLUDE", self.tenants_include),
                           ("LEADFLOW_TENANTS_EXCLUDE", self.tenants_exclude)):
            if unknown := sorted(set(names) - known):
                problems.append(
                    f"{var} names {', '.join(unknown)}, which has no lead topics of its own: "
                    f"list it under [topics.tenants.<id>] in the config, or use one of "
                    f"{', '.join(sorted(known))} ({SHARED_TENANT} is the shared topics)")
        if not problems and self.served_tenants == frozenset():
            problems.append("LEADFLOW_TENANTS_INCLUDE and LEADFLOW_TENANTS_EXCLUDE leave no "
                            "tenant to serve; exclude fewer")
        return problems

    @classmethod
    def load(cls, **overrides: object) -> Self:
        """Settings from the environment plus explicit overrides, the config file validated now,
        at start-up; ConfigError names a bad variable or key."""
        try:
            given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
            settings = cls(**given)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, "the environment")) from exc
        settings.pipeline  # noqa: B018 - validate the config file now, at start-up
        if problems := settings._tenant_filter_problems():
            raise ConfigError("invalid tenant filter in the environment:\n  " + "\n  ".join(problems))
        return settings

    def using(self, pipeline: PlatformConfig, **changes: object) -> Self:
        """A copy with an already-validated config (for embedding and tests) and env changes."""
        copy = self.model_copy(update=changes)
        copy.__dict__["pipeline"] = pipeline
        return copy

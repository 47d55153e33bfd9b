"""Process settings from the environment (where to find the broker, the database, the config).

The runtime sees the config file as its shared sections (PlatformConfig); the product's
settings, ``services.pipeline.settings.Settings``, load the whole file with each stage's section."""

from __future__ import annotations

import socket
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .config import PlatformConfig, describe_validation_error, load_config
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
        return settings

    def using(self, pipeline: PlatformConfig, **changes: object) -> Self:
        """A copy with an already-validated config (for embedding and tests) and env changes."""
        copy = self.model_copy(update=changes)
        copy.__dict__["pipeline"] = pipeline
        return copy

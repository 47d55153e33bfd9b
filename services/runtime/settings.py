"""Process settings from the environment (where to find the broker, the database, the config)."""

from __future__ import annotations

import socket
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .config import LeadflowConfig, describe_validation_error, load_config
from .errors import ConfigError


class Settings(BaseSettings):
    """Environment of one process. Built at start-up, never at import."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore", frozen=True)

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
    def pipeline(self) -> LeadflowConfig:
        """The config file, validated (LEADFLOW_TOPIC_PREFIX overrides its topic prefix)."""
        config = load_config(self.config)
        if self.topic_prefix is not None:
            topics = config.topics.model_copy(update={"prefix": self.topic_prefix})
            config = config.model_copy(update={"topics": topics})
        return config

    @property
    def prefix(self) -> str:
        return self.pipeline.topics.prefix

    def using(self, pipeline: LeadflowConfig, **changes: object) -> Settings:
        """A copy with an already-validated config (for embedding and tests) and env changes."""
        copy = self.model_copy(update=changes)
        copy.__dict__["pipeline"] = pipeline
        return copy


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment plus explicit overrides; ConfigError names a bad variable."""
    try:
        given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        settings = Settings(**given)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "the environment")) from exc
    settings.pipeline  # noqa: B018 - validate the config file now, at start-up
    return settings

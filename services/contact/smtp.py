"""The SMTP sender (aiosmtplib): connections reused across sends, TLS as configured.

Failures before the message body is handed over are safe to retry (nothing left); a refusal
of the body is definite (4xx transient, 5xx permanent); a connection lost or timed out while
the body is in flight is an unknown outcome and is never retried.

A connection goes back to the idle set only after a send it carried completed cleanly; any
error closes it. A reused connection the server dropped while idle is replaced once, before
MAIL FROM, where nothing can have been sent.
"""

from __future__ import annotations

import os
from email.message import EmailMessage
from email.utils import formatdate
from typing import ClassVar

import aiosmtplib

from ..runtime.config import SmtpConfig
from ..runtime.logging import redact
from .senders import SendError
from .templates import Message


def mime_message(message: Message, from_address: str, idempotency_key: str) -> EmailMessage:
    """The RFC 5322 message for ``message``, with List-Unsubscribe and our Message-ID."""
    mime = EmailMessage()
    mime["From"] = from_address
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(localtime=False)
    if message.message_id:
        mime["Message-ID"] = message.message_id
    if message.list_unsubscribe:
        mime["List-Unsubscribe"] = f"<{message.list_unsubscribe}>"
        if message.list_unsubscribe.startswith("https://"):
            mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mime["X-Leadflow-Key"] = idempotency_key
    mime.set_content(message.body)
    return mime


def _transient(code: int) -> bool:
    return 400 <= code < 500


class SmtpSender:
    """Delivers through an SMTP relay; credentials from the env variables the config names."""

    name = "smtp"
    confirms_delivery: ClassVar[bool] = False  # SMTP cannot be asked afterwards

    def __init__(self, config: SmtpConfig, from_address: str,
                 env: dict[str, str] | None = None) -> None:
        source = os.environ if env is None else env
        self.config = config
        self.from_address = from_address
        self.username = source.get(config.username_env) or None
        self.password = source.get(config.password_env) or None
        self._idle: list[aiosmtplib.SMTP] = []
        self.connections_opened = 0

    def _client(self) -> aiosmtplib.SMTP:
        c = self.config
        return aiosmtplib.SMTP(
            hostname=c.host, port=c.port, use_tls=c.tls == "tls",
            start_tls=True if c.tls == "starttls" else False,  # noqa: SIM210 - None means "auto"
            validate_certs=c.validate_certs, timeout=c.timeout.total_seconds())

    async def send(self, message: Message, *, idempotency_key: str) -> str | None:
        mime = mime_message(message, self.from_address, idempotency_key)
        client = await self._envelope(message)
        try:
            try:
                response = await client.data(mime.as_bytes())
            except aiosmtplib.SMTPResponseException as exc:
                raise SendError(f"SMTP refused the message: {exc.code} {exc.message}",
                                transient=_transient(exc.code)) from exc
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                raise SendError(f"connection lost while the message was in flight: {exc}",
                                transient=False, unknown=True) from exc
        except BaseException:
            await _quit(client)
            raise
        self._idle.append(client)
        return message.message_id or response.message

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def close(self) -> None:
        """Close the idle connections (between runs: a relay drops idle ones anyway)."""
        idle, self._idle = self._idle, []
        for client in idle:
            await _quit(client)

    async def _connect(self) -> aiosmtplib.SMTP:
        client = self._client()
        try:
            await client.connect()
            self.connections_opened += 1
            if self.username:
                await client.login(self.username, self.password or "")
        except BaseException:
            await _quit(client)
            raise
        return client

    async def _envelope(self, message: Message) -> aiosmtplib.SMTP:
        """A connection with MAIL FROM and RCPT TO done: failures here mean nothing was sent."""
        while self._idle:
            client = self._idle.pop()
            try:
                return await self._address(client, message)
            except SendError as exc:
                if not isinstance(exc.__cause__, aiosmtplib.SMTPServerDisconnected | OSError):
                    raise
                # dropped while idle: try the next idle one, or a fresh connection
        try:
            client = await self._connect()
        except aiosmtplib.SMTPResponseException as exc:
            raise self._refused(message, exc) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise self._unreachable(exc) from exc
        return await self._address(client, message)

    async def _address(self, client: aiosmtplib.SMTP, message: Message) -> aiosmtplib.SMTP:
        try:
            await client.mail(self.from_address)
            await client.rcpt(message.to)
        except aiosmtplib.SMTPResponseException as exc:
            await _quit(client)
            raise self._refused(message, exc) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await _quit(client)
            raise self._unreachable(exc) from exc
        return client

    def _refused(self, message: Message, exc: aiosmtplib.SMTPResponseException) -> SendError:
        where = f"{self.config.host}:{self.config.port}"
        return SendError(f"SMTP server {where} refused {redact(message.to)}: {exc.code} "
                         f"{exc.message}", transient=_transient(exc.code))

    def _unreachable(self, exc: BaseException) -> SendError:
        where = f"{self.config.host}:{self.config.port}"
        return SendError(f"cannot reach the SMTP server at {where} ({exc}); check "
                         "contact.smtp host/port/tls", transient=True)

    async def delivered(self, message_id: str | None, *, idempotency_key: str) -> bool | None:
        # SMTP offers no way to ask whether a message was accepted: the outcome stays unknown,
        # and the policy (outbox.reconcile) is never to send it again.
        return None


async def _quit(client: aiosmtplib.SMTP) -> None:
    """Say goodbye if the connection still stands; drop it either way."""
    if client.is_connected:
        try:
            await client.quit()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            client.close()

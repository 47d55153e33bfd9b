"""The SMTP sender (aiosmtplib): one connection per message, TLS as configured.

Failures before the message body is handed over are safe to retry (nothing left); a refusal
of the body is definite (4xx transient, 5xx permanent); a connection lost or timed out while
the body is in flight is an unknown outcome and is never retried.
"""

from __future__ import annotations

import os
from email.message import EmailMessage
from email.utils import formatdate

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

    def __init__(self, config: SmtpConfig, from_address: str,
                 env: dict[str, str] | None = None) -> None:
        source = os.environ if env is None else env
        self.config = config
        self.from_address = from_address
        self.username = source.get(config.username_env) or None
        self.password = source.get(config.password_env) or None

    def _client(self) -> aiosmtplib.SMTP:
        c = self.config
        return aiosmtplib.SMTP(
            hostname=c.host, port=c.port, use_tls=c.tls == "tls",
            start_tls=True if c.tls == "starttls" else False,  # noqa: SIM210 - None means "auto"
            validate_certs=c.validate_certs, timeout=c.timeout.total_seconds())

    async def send(self, message: Message, *, idempotency_key: str) -> str | None:
        mime = mime_message(message, self.from_address, idempotency_key)
        client = self._client()
        try:
            await self._envelope(client, message)
            try:
                response = await client.data(mime.as_bytes())
            except aiosmtplib.SMTPResponseException as exc:
                raise SendError(f"SMTP refused the message: {exc.code} {exc.message}",
                                transient=_transient(exc.code)) from exc
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                raise SendError(f"connection lost while the message was in flight: {exc}",
                                transient=False, unknown=True) from exc
            return message.message_id or response.message
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (TimeoutError, aiosmtplib.SMTPException, OSError):
                    client.close()

    async def _envelope(self, client: aiosmtplib.SMTP, message: Message) -> None:
        """Connect, log in, MAIL FROM and RCPT TO: failures here mean nothing was sent."""
        where = f"{self.config.host}:{self.config.port}"
        try:
            await client.connect()
            if self.username:
                await client.login(self.username, self.password or "")
            await client.mail(self.from_address)
            await client.rcpt(message.to)
        except aiosmtplib.SMTPResponseException as exc:
            raise SendError(f"SMTP server {where} refused {redact(message.to)}: {exc.code} "
                            f"{exc.message}", transient=_transient(exc.code)) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise SendError(f"cannot reach the SMTP server at {where} ({exc}); check "
                            "contact.smtp host/port/tls", transient=True) from exc

    async def delivered(self, message_id: str | None, *, idempotency_key: str) -> bool | None:
        # SMTP offers no way to ask whether a message was accepted: the outcome stays unknown,
        # and the policy (outbox.reconcile) is never to send it again.
        return None

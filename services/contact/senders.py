"""Senders: how a message leaves. ``proof`` records only (the ledger row is the proof)."""

from __future__ import annotations

from typing import ClassVar, Protocol

from .config import ContactConfig
from .templates import Message


class SendError(Exception):
    """The sender could not deliver.

    ``transient``: a later attempt may succeed. ``unknown``: the message may or may not have
    left (e.g. the connection dropped after the body was sent), so it must never be retried.
    """

    def __init__(self, message: str, *, transient: bool, unknown: bool = False) -> None:
        super().__init__(message)
        self.transient = transient and not unknown
        self.unknown = unknown


class Sender(Protocol):
    name: str
    #: ``delivered`` always answers (True or False), so a claim a crash interrupts costs no
    #: email: it is settled by asking, never given up as an unknown outcome.
    confirms_delivery: ClassVar[bool]

    async def send(self, message: Message, *, idempotency_key: str) -> str | None:
        """Deliver ``message``; return a provider message id if there is one."""
        ...

    async def delivered(self, message_id: str | None, *, idempotency_key: str) -> bool | None:
        """After a crash mid-send: did this message leave? None when the sender cannot tell."""
        ...


async def close_sender(sender: Sender) -> None:
    """Let go of what the sender keeps between sends (SMTP connections), if anything."""
    close = getattr(sender, "close", None)
    if close is not None:
        await close()


class ProofSender:
    """Sends nothing: proof mode, where the ledger row is the record of the send."""

    name = "proof"
    confirms_delivery: ClassVar[bool] = True

    async def send(self, message: Message, *, idempotency_key: str) -> str | None:
        return f"proof:{idempotency_key}"

    async def delivered(self, message_id: str | None, *, idempotency_key: str) -> bool | None:
        # Nothing leaves in proof mode, so completing an interrupted send is always safe.
        return True


def build_sender(config: ContactConfig) -> Sender:
    """The sender the config names (``proof`` by default)."""
    if config.sender == "smtp":
        from .smtp import SmtpSender

        return SmtpSender(config.smtp, config.from_address)
    return ProofSender()

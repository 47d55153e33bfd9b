"""Senders: how a message leaves. ``proof`` records only (the ledger row is the proof)."""

from __future__ import annotations

from typing import Protocol

from .templates import Message


class SendError(Exception):
    """The sender could not deliver; ``transient`` says whether a later attempt may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Sender(Protocol):
    name: str

    async def send(self, message: Message, *, idempotency_key: str) -> str | None:
        """Deliver ``message``; return a provider message id if there is one."""
        ...


class ProofSender:
    """Sends nothing: proof mode, where the ledger row is the record of the send."""

    name = "proof"

    async def send(self, message: Message, *, idempotency_key: str) -> str | None:
        return f"proof:{idempotency_key}"

"""Which of this process's recorded windows still have sends to report (contact_windows rows).

A window's row is closed once every send of it is reported. Sends of one window normally are
reported together (one batch's outputs, published at once); after a failed batch they come back
in the batches that redo it, possibly split. Pure bookkeeping: the outbox does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID


class OpenWindows:
    """Windows recorded by this process and not fully reported, with their sends left."""

    #: Sends held at most. Sends of a window another instance ends up reporting (its leads
    #: moved to it in a rebalance) are never reported here: past this many, the oldest windows
    #: are forgotten, and recovery closes their rows once they are stale.
    HELD = 100_000

    def __init__(self, held: int = HELD) -> None:
        self.held = held
        self._window_of: dict[str, UUID] = {}
        self._left: dict[UUID, set[str]] = {}

    def __len__(self) -> int:
        return len(self._window_of)

    def opened(self, window_id: UUID, keys: Iterable[str]) -> None:
        """The window's sends were recorded under these keys."""
        left = set(keys)
        if not left:
            return
        self._left[window_id] = left
        self._window_of.update(dict.fromkeys(left, window_id))
        while len(self._window_of) > self.held:
            oldest = next(iter(self._left))
            for key in self._left.pop(oldest):
                self._window_of.pop(key, None)

    def reported(self, keys: Iterable[str]) -> list[UUID]:
        """These sends are reported: the windows whose every send now is."""
        closed = []
        for key in keys:
            window_id = self._window_of.pop(key, None)
            if window_id is None:
                continue
            left = self._left[window_id]
            left.discard(key)
            if not left:
                del self._left[window_id]
                closed.append(window_id)
        return closed

"""Several tenants' sources read in turns: each tenant in scope reads a turn's rows of its
sources in config order, then the next tenant does, so under a cap one tenant's big export
never takes the whole night's share of the others."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

from .config import HarvestSource
from .normalize import RowError
from .sources import SourceRow, read_rows


def turn_size(left: int, tenants: int, chunk: int) -> int:
    """New leads one tenant takes in its turn: an even share of what is left of the cap among
    the tenants still reading, at most a chunk, at least one. Pure."""
    return max(1, min(chunk, -(-left // max(tenants, 1))))


@dataclass(slots=True)
class TenantSources:
    """One tenant's sources, read a turn at a time; a source's rows stay open between turns."""

    tenant: str
    waiting: deque[HarvestSource]
    current: HarvestSource | None = None
    rows: Iterator[SourceRow | RowError] | None = field(default=None, repr=False)
    #: Rows of the current source read but left for the next turn, served first.
    held: list[SourceRow | RowError] = field(default_factory=list, repr=False)

    @classmethod
    def group(cls, sources: Sequence[HarvestSource]) -> list[TenantSources]:
        """The sources by tenant, tenants in order of their first source."""
        tenants: dict[str, TenantSources] = {}
        for source in sources:
            tenants.setdefault(source.tenant, cls(source.tenant, deque())).waiting.append(source)
        return list(tenants.values())

    def next_rows(self, size: int) -> tuple[HarvestSource, list[SourceRow | RowError]] | None:
        """Up to ``size`` rows of the current source (moving on to the next one when it ends),
        or None when every source is read. OSError: the current source could not be read
        (it is dropped; the next call goes on with the next source)."""
        if self.held:
            assert self.current is not None
            chunk, self.held = self.held[:size], self.held[size:]
            return self.current, chunk
        while True:
            if self.rows is None:
                if not self.waiting:
                    return None
                self.current = self.waiting.popleft()
                self.rows = read_rows(self.current.path, self.current.resolved_format())
            assert self.current is not None
            try:
                chunk = list(islice(self.rows, size))
            except OSError:
                self.rows = None
                raise
            if chunk:
                return self.current, chunk
            self.rows = None

    def put_back(self, rows: list[SourceRow | RowError]) -> None:
        """Rows of the last turn left unread, to read first next turn."""
        self.held = rows + self.held

    def close(self) -> None:
        """Close the source being read (its file), if any."""
        if self.rows is not None:
            self.rows.close()  # type: ignore[attr-defined]
            self.rows = None

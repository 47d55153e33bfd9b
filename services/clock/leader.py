"""One active clock: the holder of a Postgres session advisory lock (runtime.locks.AdvisoryLock)
emits, the others stand by.

The lock lives as long as its connection: a clock that dies (even by SIGKILL) drops the
connection, Postgres releases the lock, and a standby's next try takes it.
"""

from __future__ import annotations

from services.runtime.locks import advisory_key


def lock_key(prefix: str) -> int:
    """Advisory lock id of the clock for one topic prefix (deployments may share a database)."""
    return advisory_key("clock", prefix)

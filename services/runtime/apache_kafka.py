"""Apache Kafka on this machine, from Maven Central: the broker users deploy on, for the tests,
`leadflow dev --broker kafka` and `leadflow demo --broker kafka`.

Maven resolves ``org.apache.kafka:kafka_2.13`` and its runtime dependencies into the local
repository (apache-kafka.pom.xml beside this module); the classpath it prints is cached, so
later starts need no network. Each node runs in KRaft combined mode (broker and controller in
one JVM, no ZooKeeper) on free 127.0.0.1 ports, with its storage formatted before the first
start. One node by default; three for the fault tests (replication 3, min ISR 2).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from .embedded import die_with_parent, free_port, stop_process, wait_for_port
from .errors import InfrastructureError

#: The Apache Kafka release leadflow is tested on (tests, --broker kafka, compose.yaml).
KAFKA_VERSION = "4.1.1"

POM = Path(__file__).with_name("apache-kafka.pom.xml")

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


class KafkaUnavailable(InfrastructureError):
    """Java or Maven is missing, so Apache Kafka cannot be run here."""


def missing_tools() -> str | None:
    """One line naming what to install to run Apache Kafka here, or None when nothing is missing."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if not missing:
        return None
    return (f"Apache Kafka needs {' and '.join(missing)} on PATH "
            "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless maven)")


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "leadflow"


def classpath(version: str = KAFKA_VERSION, say: Callable[[str], None] | None = None) -> str:
    """The broker's classpath, resolved by Maven once and cached (jars stay in ~/.m2)."""
    if problem := missing_tools():
        raise KafkaUnavailable(problem)
    pom_hash = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]  # a changed pom resolves again
    cached = cache_dir() / f"apache-kafka-{version}-{pom_hash}.classpath"
    if cached.exists():
        text = cached.read_text().strip()
        if text and all(Path(jar).exists() for jar in text.split(os.pathsep)):
            return text
    if say is not None:
        say(f"resolving Apache Kafka {version} with Maven (first run only)")
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    done = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), f"-Dkafka.version={version}",
         "dependency:build-classpath", f"-Dmdep.outputFile={partial}"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900, check=False)
    if done.returncode != 0 or not partial.exists():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise KafkaUnavailable(f"Maven could not resolve org.apache.kafka:kafka_2.13:{version} "
                               f"(is the Maven repository reachable?):\n{tail}")
    partial.replace(cached)
    return cached.read_text().strip()


def cluster_id() -> str:
    """A KRaft cluster id: a random UUID in Kafka's URL-safe base64 form, never starting with
    '-' (the storage tool would read it as an option; Kafka's Uuid.randomUuid() draws again too)."""
    while (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()).startswith("-"):
        pass
    return cid


@dataclass
class KafkaNode:
    """One combined broker+controller process."""

    node_id: int
    port: int
    controller_port: int
    home: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class ApacheKafka:
    """A local Apache Kafka cluster of ``nodes`` KRaft nodes on free loopback ports.

    With three or more nodes, topics default to replication factor 3 and min ISR 2.
    """

    def __init__(self, nodes: int = 1, *, log_dir: Path | None = None, heap: str = "512m",
                 version: str = KAFKA_VERSION, parent: Path | None = None) -> None:
        self.version = version
        self.heap = heap
        self.log_dir = log_dir
        self.root = Path(tempfile.mkdtemp(prefix="leadflow-kafka-", dir=parent))
        self.replication = 3 if nodes >= 3 else 1
        self.min_isr = 2 if nodes >= 3 else 1
        self.nodes = [KafkaNode(i + 1, free_port(), free_port(), self.root / f"node-{i + 1}")
                      for i in range(nodes)]
        self._classpath = ""
        #: Server properties set on top of the defaults (e.g. a secured listener), and extra
        #: arguments for the storage format (e.g. ``--add-scram`` users).
        self.extra_properties: dict[str, object] = {}
        self.format_args: list[str] = []

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def start(self, timeout: float = 120.0, say: Callable[[str], None] | None = None) -> str:
        """Resolve, format, start every node and wait until all of them serve metadata."""
        self._classpath = classpath(self.version, say)
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        cid = cluster_id()
        for node in self.nodes:
            node.home.mkdir(parents=True, exist_ok=True)
            node.properties.write_text(self._server_properties(node, voters))
            (node.home / "log4j2.properties").write_text(_LOG4J2)
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: self._format(n, cid), self.nodes))
        try:
            for node in self.nodes:
                self.start_node(node.node_id)
            for node in self.nodes:
                wait_for_port(node.port, timeout, node.proc)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def start_node(self, node_id: int) -> None:
        """Start (or restart) one node on its formatted storage."""
        node = self.node(node_id)
        if node.alive():
            return
        if node._log is not None:
            node._log.close()
        log_path = (self.log_dir or node.home) / f"kafka-{node.node_id}.log"
        node._log = log_path.open("ab")
        node.proc = subprocess.Popen(
            [*self._java(node), "kafka.Kafka", str(node.properties)],
            stdout=node._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node, as a crash would."""
        node = self.node(node_id)
        if node.alive():
            assert node.proc is not None
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the cluster's metadata lists every running node."""
        live = sum(node.alive() for node in self.nodes)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # callers may be inside a loop
            pool.submit(asyncio.run, _wait_for_brokers(self.bootstrap, live, timeout)).result()

    def pids(self) -> list[int]:
        """Each running node's process id."""
        return [node.proc.pid for node in self.nodes if node.proc is not None]

    def stop(self) -> None:
        """Stop every node and delete their storage."""
        for node in self.nodes:  # all at once, so no node waits out the others' shutdown
            if node.alive():
                assert node.proc is not None
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                stop_process(node.proc, 15)
            if node._log is not None:
                node._log.close()
                node._log = None
        shutil.rmtree(self.root, ignore_errors=True)

    def _java(self, node: KafkaNode) -> list[str]:
        return ["java", f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={node.home / 'log4j2.properties'}",
                "-cp", self._classpath]

    def _format(self, node: KafkaNode, cid: str) -> None:
        done = subprocess.run(
            [*self._java(node), "kafka.tools.StorageTool", "format", "-t", cid,
             "-c", str(node.properties), "--ignore-formatted", *self.format_args],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False)
        if done.returncode != 0:
            raise InfrastructureError(f"formatting Kafka node {node.node_id} failed: "
                                      f"{(done.stdout + done.stderr).strip()[-2000:]}")

    def _server_properties(self, node: KafkaNode, voters: str) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": node.home / "data",
            # leadflow creates its topics itself; a client must never create one by accident
            "auto.create.topics.enable": "false",
            "num.partitions": 1,
            "default.replication.factor": self.replication,
            "min.insync.replicas": self.min_isr,
            "unclean.leader.election.enable": "false",
            "offsets.topic.replication.factor": self.replication,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": self.replication,
            "transaction.state.log.min.isr": self.min_isr,
            "share.coordinator.state.topic.replication.factor": self.replication,
            "share.coordinator.state.topic.min.isr": self.min_isr,
            "group.initial.rebalance.delay.ms": 0,
            # a killed node is fenced within seconds rather than the default 9 s
            "broker.session.timeout.ms": 4000,
            "broker.heartbeat.interval.ms": 500,
            "replica.lag.time.max.ms": 10000,
            "log.index.size.max.bytes": 1048576,
        }
        settings.update(self.extra_properties)
        return "".join(f"{key}={value}\n" for key, value in settings.items())


async def _wait_for_brokers(bootstrap: str, count: int, timeout: float) -> None:
    give_up = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < give_up:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="leadflow-kafka-wait",
                                    request_timeout_ms=5000)
        try:
            await admin.start()
            described = await admin.describe_cluster()
            if len(described.get("brokers", [])) >= count:
                return
            last = f"{len(described.get('brokers', []))} of {count} brokers registered"
        except KafkaError as exc:
            last = exc
        finally:
            with contextlib.suppress(KafkaError):
                await admin.close()
        await asyncio.sleep(0.3)
    raise InfrastructureError(f"Apache Kafka at {bootstrap} not ready after {timeout:.0f}s ({last})")

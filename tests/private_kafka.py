"""A Kafka broker of the test's own: the same jars and Java as the shared one, its own ports
and data in a temporary directory.

Fault tests freeze it (SIGSTOP) to cut the log off mid-append. Freezing the shared broker
would stall every other test run on the machine, and a TCP proxy in front of it would not
do: a Kafka client goes to the address the broker advertises as soon as it has read the
metadata, so only the bootstrap request would pass through the proxy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from tests.loopback import free_port

ROOT = Path(__file__).resolve().parents[1]
JAVA17 = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin/java")


@dataclass(frozen=True)
class PrivateKafka:
    bootstrap: str
    pid: int

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The broker stopped in its tracks (connections stay open, nothing is answered)
        until the block ends."""
        os.kill(self.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.pid, signal.SIGCONT)


def _versions() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (ROOT / "scripts" / "versions.env").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    return {k.strip(): v.strip() for k, v in pairs}


def _libs() -> Path:
    v = _versions()
    name = f"kafka_{v['KAFKA_SCALA_VERSION']}-{v['KAFKA_VERSION']}-log4j-{v['KAFKA_LOG4J_VERSION']}"
    return Path.home() / ".cache" / "bloghub" / "kafka" / name


def _cluster_id() -> str:
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _config(home: Path, port: int, controller: int) -> Path:
    path = home / "server.properties"
    path.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},"
                f"CONTROLLER://127.0.0.1:{controller}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={home / 'data'}",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=3",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "num.network.threads=1",
                "num.io.threads=2",
            ]
        )
        + "\n"
    )
    return path


def _java(home: Path, *args: str) -> list[str]:
    return [
        str(JAVA17 if JAVA17.exists() else shutil.which("java") or "java"),
        "-Xms64m",
        "-Xmx384m",
        "-XX:+UseSerialGC",
        f"-Dkafka.logs.dir={home / 'logs'}",
        "-cp",
        f"{_libs()}/*",
        *args,
    ]


async def _until_answering(bootstrap: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(240):
        if process.poll() is not None:
            raise RuntimeError(f"the private broker exited with {process.returncode}")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError):
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
    raise RuntimeError("the private broker did not answer within two minutes")


def _start(home: Path, config: Path) -> subprocess.Popen[bytes]:
    with (home / "broker.out").open("wb") as out:
        return subprocess.Popen(
            _java(home, "kafka.Kafka", str(config)), stdout=out, stderr=subprocess.STDOUT
        )


@contextlib.asynccontextmanager
async def private_kafka() -> AsyncIterator[PrivateKafka]:
    with tempfile.TemporaryDirectory(prefix="bloghub-kafka-") as tmp:
        home = Path(tmp)
        port, controller = free_port(), free_port()
        config = _config(home, port, controller)
        fmt = ["kafka.tools.StorageTool", "format", "--standalone", "-t", _cluster_id()]
        await asyncio.to_thread(
            subprocess.run,
            _java(home, *fmt, "-c", str(config)),
            check=True,
            capture_output=True,
        )
        process = _start(home, config)
        bootstrap = f"127.0.0.1:{port}"
        try:
            await _until_answering(bootstrap, process)
            yield PrivateKafka(bootstrap, process.pid)
        finally:
            os.kill(process.pid, signal.SIGCONT)  # a frozen broker cannot take its SIGTERM
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)

"""A private OpenSearch node for tests that stop and start OpenSearch: the same installed
distribution the shared node runs (scripts/services assembles it under
``$BLOGHUB_SERVICES_DIR/opensearch/home``), with its own configuration, ports, data and
logs and a small heap, so stopping it disturbs nobody else's tests.

The node runs in the foreground of its own process group; ``stop`` is a SIGTERM and a
wait, ``start`` again reuses the data directory, as an operator's restart would.
OpenSearch refuses to run as root: a root test run starts it as the user the services
script created for the shared node.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.loopback import free_port

SERVICES_DIR = Path(os.environ.get("BLOGHUB_SERVICES_DIR", "/var/lib/bloghub-services"))
HOME = Path(os.environ.get("BLOGHUB_OPENSEARCH_HOME", str(SERVICES_DIR / "opensearch/home")))
JAVA_HOME = os.environ.get("BLOGHUB_JAVA17_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")
SERVICE_USER = "bloghub-os"
HEAP = "-Xms256m -Xmx256m"
START_TIMEOUT_S = 180.0


def _jvm_options(shared: str, root: Path) -> str:
    """The shared node's JVM options with its heap left to ``HEAP`` and its heap dumps and
    GC logs sent to this node's own folders (two JVMs must not write one GC log)."""
    out = []
    for line in shared.splitlines():
        if line.startswith(("-Xms", "-Xmx")):
            continue
        line = line.replace(str(SERVICES_DIR / "opensearch/data"), str(root / "data"))
        out.append(line.replace(str(SERVICES_DIR / "logs/opensearch"), str(root / "logs")))
    return "\n".join(out) + "\n"


@dataclass
class PrivateNode:
    root: Path
    http_port: int = field(default_factory=free_port)
    transport_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @classmethod
    def prepare(cls) -> PrivateNode:
        root = Path(tempfile.mkdtemp(prefix="bloghub-os-node-"))
        node = cls(root)
        config = root / "config"
        shutil.copytree(HOME / "config", config, ignore=shutil.ignore_patterns("*.keystore"))
        (config / "opensearch.yml").write_text(
            f"cluster.name: bloghub-test-{root.name}\n"
            "node.name: test-1\n"
            "discovery.type: single-node\n"
            "network.host: 127.0.0.1\n"
            f"http.port: {node.http_port}\n"
            f"transport.port: {node.transport_port}\n"
            f"path.data: {root / 'data'}\n"
            f"path.logs: {root / 'logs'}\n"
            # A test node on a shared disk: never refuse writes for the disk's fill level.
            "cluster.routing.allocation.disk.threshold_enabled: false\n"
        )
        jvm = config / "jvm.options"
        jvm.write_text(_jvm_options(jvm.read_text(), root))
        for name in ("data", "logs", "tmp"):
            (root / name).mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVICE_USER)
            for path in [root, *root.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
        return node

    def start(self) -> None:
        assert self.process is None, "already running"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "JAVA_HOME": JAVA_HOME,
            "OPENSEARCH_JAVA_HOME": JAVA_HOME,
            "OPENSEARCH_PATH_CONF": str(self.root / "config"),
            "OPENSEARCH_JAVA_OPTS": HEAP,
            "OPENSEARCH_TMPDIR": str(self.root / "tmp"),
        }
        as_service = os.geteuid() == 0
        with (self.root / "out.log").open("ab") as out:
            self.process = subprocess.Popen(
                [str(HOME / "bin/opensearch")],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=SERVICE_USER if as_service else None,
                group=SERVICE_USER if as_service else None,
                extra_groups=[] if as_service else None,
            )

    async def healthy(self) -> None:
        """Wait until the node answers with a usable cluster (yellow or green)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while loop.time() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"the private OpenSearch node exited: {self.tail()}")
                try:
                    answer = await client.get(
                        "/_cluster/health", params={"wait_for_status": "yellow", "timeout": "2s"}
                    )
                    if answer.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.5)
        raise TimeoutError(f"the private OpenSearch node did not start: {self.tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    def tail(self) -> str:
        log = self.root / "out.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

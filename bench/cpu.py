"""CPU accounting for a phase of a benchmark, from ``/proc`` (Linux): this process, the
local services by their process trees, and the whole machine.

A service's figure is the user and system time of its processes plus what they have
reaped from their exited children, so PostgreSQL's short-lived backends are counted even
after they are gone. Throughput on a machine whose cores are all busy is bounded by
``cores / machine CPU per event``, whatever the code does with them: this is what tells a
slow program from a full machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# A service is the processes whose command line holds its marker.
SERVICES = {
    "postgres": b"postgres",
    "kafka": b"kafka.Kafka",
    "opensearch": b"org.opensearch.bootstrap",
    "redis": b"redis-server",
}


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU seconds: cumulative readings from ``sample()``, or what a phase used, from
    ``used()``."""

    wall: float
    machine: float  # busy seconds of every core together
    own: float
    services: dict[str, float]

    def per_event_us(self, events: int) -> dict[str, float]:
        """Microseconds of CPU per event: this process, each service, everything else."""
        out = {"bench process (Python)": self.own / events * 1e6}
        for name, seconds in self.services.items():
            out[name] = seconds / events * 1e6
        accounted = self.own + sum(self.services.values())
        out["rest of the machine"] = max(0.0, self.machine - accounted) / events * 1e6
        return out

    def bound(self, events: int, cores: int) -> float:
        """Events/s the machine could reach at this CPU cost per event with every core busy."""
        return cores * events / self.machine if self.machine > 0 else float("inf")

    @property
    def busy_cores(self) -> float:
        return self.machine / self.wall if self.wall > 0 else 0.0


def available() -> bool:
    return (PROC / "stat").is_file()


def sample() -> CpuUse:
    return CpuUse(
        wall=time.perf_counter(),
        machine=_machine_busy(),
        own=time.process_time(),
        services=_services(),
    )


def used(before: CpuUse, after: CpuUse) -> CpuUse:
    return CpuUse(
        wall=after.wall - before.wall,
        machine=after.machine - before.machine,
        own=after.own - before.own,
        services={
            name: max(0.0, after.services.get(name, 0.0) - before.services.get(name, 0.0))
            for name in SERVICES
        },
    )


def _machine_busy() -> float:
    fields = (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    # guest time is already counted in user time
    return (sum(ticks[:8]) - idle) / TICK


def _services() -> dict[str, float]:
    totals = dict.fromkeys(SERVICES, 0.0)
    for name, fields in _service_processes():
        # utime, stime, cutime, cstime: the 14th to 17th fields, 12th to 15th after the
        # parenthesised command.
        totals[name] += sum(int(v) for v in fields[11:15]) / TICK
    return totals


def _service_processes() -> Iterator[tuple[str, list[str]]]:
    """Each running service process: its service's name and its ``stat`` fields after
    the parenthesised command."""
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        for name, marker in SERVICES.items():
            if marker in cmdline:
                yield name, stat.rsplit(")", 1)[1].split()
                break


def uptimes() -> dict[str, float]:
    """Seconds since each running service's oldest process started. A JVM (Kafka,
    OpenSearch) compiles its hot paths in its first minutes: measured then, its CPU per
    request runs high (the broker's was 514 µs a draft create a minute after its start,
    183 µs in the run right after)."""
    boot_s = float((PROC / "uptime").read_text().split()[0])
    oldest: dict[str, float] = {}
    for name, fields in _service_processes():
        started_s = int(fields[19]) / TICK  # the 22nd field: ticks since boot at its start
        oldest[name] = max(oldest.get(name, 0.0), boot_s - started_s)
    return oldest

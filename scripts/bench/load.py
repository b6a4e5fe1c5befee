"""How busy the machine was during a run, and how much of that was someone else's work.

The load average counts every runnable thread, the benchmark's own included (a sync and
moto busy at once make a load of ~2 on their own), so it cannot say whether other work
competed. /proc/stat can: the machine's busy CPU seconds over the run, minus the CPU the
benchmark's own processes used (read from /proc/<pid>/stat), is what others used. Spread
over the run's wall time it is the number of cores others kept busy on average.

On a virtual machine /proc/stat also counts time the hypervisor gave to other guests
(steal): that is contention too, and is counted with the others.

A run is *contended* when others kept more than `CONTENDED_CORES` busy on average. A quarter
of a core on this 2-core machine is ~12% of its capacity taken from processes (the sync and
moto) that keep both cores busy during a run, so wall time and the fakes' timings may be
inflated by about as much; below that, differences between runs are within their usual spread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CONTENDED_CORES = 0.25
SAMPLE_SECONDS = 1.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent not idle since boot (/proc/stat's cpu line):
    user + nice + system + irq + softirq + steal (idle and iowait are not work)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


@dataclass(frozen=True)
class LoadReport:
    """The machine's load over one run."""

    wall_seconds: float
    busy_cpu_seconds: float  # the whole machine
    own_cpu_seconds: float  # the benchmark's processes (sync, fakes, harness)
    load_min: float
    load_max: float
    threshold_cores: float

    @property
    def others_cpu_seconds(self) -> float:
        return max(0.0, self.busy_cpu_seconds - self.own_cpu_seconds)

    @property
    def others_cores(self) -> float:
        """Cores other work kept busy on average during the run."""
        return self.others_cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def contended(self) -> bool:
        return self.others_cores > self.threshold_cores

    def to_dict(self) -> dict[str, float | bool]:
        return {
            "wallSeconds": round(self.wall_seconds, 3),
            "busyCpuSeconds": round(self.busy_cpu_seconds, 2),
            "ownCpuSeconds": round(self.own_cpu_seconds, 2),
            "othersCpuSeconds": round(self.others_cpu_seconds, 2),
            "othersCores": round(self.others_cores, 3),
            "loadAverageMin": round(self.load_min, 2),
            "loadAverageMax": round(self.load_max, 2),
            "contendedThresholdCores": self.threshold_cores,
            "contended": self.contended,
        }


class LoadSampler:
    """Samples the load average while a run lasts; `stop()` returns the run's LoadReport.

    `own_cpu` returns the CPU seconds of the benchmark's own processes so far; it is read at
    start and stop, and the difference is taken out of the machine's busy time.
    """

    def __init__(
        self,
        own_cpu: Callable[[], float],
        threshold_cores: float = CONTENDED_CORES,
        interval: float = SAMPLE_SECONDS,
    ) -> None:
        self._own_cpu = own_cpu
        self._threshold = threshold_cores
        self._interval = interval
        self._samples: list[float] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="load-sampler", daemon=True)
        self._started = 0.0
        self._busy_before = 0.0
        self._own_before = 0.0

    def start(self) -> LoadSampler:
        self._started = time.perf_counter()
        self._busy_before = busy_cpu_seconds()
        self._own_before = self._own_cpu()
        self._samples.append(load_average())
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stopped.wait(self._interval):
            self._samples.append(load_average())

    def stop(self) -> LoadReport:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._samples.append(load_average())
        return LoadReport(
            wall_seconds=time.perf_counter() - self._started,
            busy_cpu_seconds=busy_cpu_seconds() - self._busy_before,
            own_cpu_seconds=self._own_cpu() - self._own_before,
            load_min=min(self._samples),
            load_max=max(self._samples),
            threshold_cores=self._threshold,
        )


def own_cpu_seconds(pid_cpu: Callable[[int], float], pids: Sequence[int]) -> float:
    """CPU seconds of `pids` (via `pid_cpu`) plus this process's own."""
    times = os.times()
    return sum(pid_cpu(pid) for pid in pids) + times.user + times.system

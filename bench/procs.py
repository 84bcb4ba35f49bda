"""Watching processes during a run: peak RSS (polled and the kernel's VmHWM) and CPU seconds."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import Any

import psutil


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def vm_hwm_kib(pid: int) -> int | None:
    """The kernel's high-water mark of the resident set of ``pid`` (KiB)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


class CpuMeter:
    """CPU seconds used between ``start`` and ``stop`` by named groups of processes."""

    def __init__(self, groups: dict[str, Any]) -> None:
        #: name -> callable returning the processes of that group right now
        self.groups = groups
        self._before: dict[str, dict[int, float]] = {}

    @staticmethod
    def _snapshot(procs: list[psutil.Process]) -> dict[int, float]:
        out = {}
        for proc in procs:
            try:
                times = proc.cpu_times()
                out[proc.pid] = times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return out

    def start(self) -> None:
        self._before = {name: self._snapshot(fn()) for name, fn in self.groups.items()}

    def stop(self) -> dict[str, float]:
        result = {}
        for name, fn in self.groups.items():
            after = self._snapshot(fn())
            before = self._before.get(name, {})
            result[name] = round(sum(v - before.get(pid, 0.0) for pid, v in after.items()), 2)
        return result


def by_name(*names: str) -> Any:
    def find() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["name"]) if p.info["name"] in names]

    return find


class RssPoller:
    """Polls the summed RSS of the process trees under ``pids`` and keeps the peak."""

    def __init__(self, pids: list[int], interval: float = 0.1) -> None:
        self.pids = pids
        self.interval = interval
        self.peak_bytes = 0
        self.peak_by_pid: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-poller", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in self.pids:
                for proc in tree(pid):
                    try:
                        rss = proc.memory_info().rss
                    except psutil.NoSuchProcess:
                        continue
                    total += rss
                    self.peak_by_pid[proc.pid] = max(self.peak_by_pid.get(proc.pid, 0), rss)
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssPoller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class SystemMeter:
    """How busy the whole machine was during a measurement (others share this machine too)."""

    def start(self) -> None:
        self._load = os.getloadavg()[0]
        self._times = psutil.cpu_times()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        after = psutil.cpu_times()
        wall = max(time.monotonic() - self._t0, 1e-9)
        idle = (after.idle - self._times.idle) + (
            getattr(after, "iowait", 0.0) - getattr(self._times, "iowait", 0.0)
        )
        total = sum(after) - sum(self._times)
        busy = (total - idle) / wall
        return {
            "loadavg_1m_before": round(self._load, 2),
            "machine_busy_cores": round(busy, 2),
            "cores": float(psutil.cpu_count() or 0),
        }

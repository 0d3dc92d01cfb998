"""Shared helpers for benchmark scripts: peak RSS sampling, load, machine description."""

from __future__ import annotations

import os
import platform
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import psutil


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_bytes: int = 0
    baseline_rss_bytes: int = 0

    @property
    def peak_rss_gib(self) -> float:
        return self.peak_rss_bytes / 2**30

    @property
    def added_rss_gib(self) -> float:
        return (self.peak_rss_bytes - self.baseline_rss_bytes) / 2**30


@contextmanager
def measure(interval_s: float = 0.02):
    """Wall time and peak RSS (this process and its children) of the block, sampled every ``interval_s``."""
    proc = psutil.Process()
    result = Measurement(baseline_rss_bytes=proc.memory_info().rss)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            except psutil.Error:
                rss = 0
            result.peak_rss_bytes = max(result.peak_rss_bytes, rss)
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - start
        stop.set()
        thread.join()


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mem = psutil.virtual_memory().total / 2**30
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, load {load}"

"""`make demo`'s time table (issue 17: ≤ 240 s on a fresh clone, each stage's time reported), with the
solver counts that survive a noisy machine: every ``*iterations`` / ``increments`` number stored in the
results of every twin the demo writes (transport PCG, calender CG / Newton, ...), summed per twin.

Run:  .venv/bin/python tests/benchmarks/bench_demo.py [--out DIR] [--without-cathode-calender]

``--without-cathode-calender`` leaves out the cathode's calendering (the demo's largest stage, ~60 %),
to time the other stages in a third of the time; the table says so. Warm numba's caches first
(``python -m twinlab._warmup``); compare runs only in the same conditions (state the load).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine  # noqa: E402

from twinlab import pipeline  # noqa: E402
from twinlab.twin import Twin  # noqa: E402

COUNT_KEYS = ("iterations", "increments")


def solver_counts(value, prefix: str = "") -> Counter:
    """Every number stored under a key ending in one of :data:`COUNT_KEYS`, by dotted path."""
    found: Counter = Counter()
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and str(k).endswith(COUNT_KEYS):
                found[path] += v
            else:
                found += solver_counts(v, path)
    elif isinstance(value, list):
        for v in value:
            found += solver_counts(v, prefix)
    return found


def twin_counts(out: Path) -> dict[str, Counter]:
    """Solver counts of each twin under ``out`` (series members and the study's included)."""
    counts = {}
    for path in sorted(out.rglob("*.twin.zarr")):
        twin = Twin.open(path)
        c = Counter()
        for name in twin.result_names:
            c += solver_counts(twin.load_result(name), name)
        if c:
            counts[str(path.relative_to(out))] = c
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="demo folder (default: a temporary one)")
    ap.add_argument("--without-cathode-calender", action="store_true",
                    help="leave out the cathode's calendering (time the other stages)")
    args = ap.parse_args()
    if args.without_cathode_calender:
        configs = pipeline.demo_configs
        pipeline.demo_configs = lambda out: (configs(out)[0].model_copy(update={"calender": None}), configs(out)[1])
    print(machine(), "| load", " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_demo_") as tmp:
        out = args.out or Path(tmp)
        cpu0 = psutil.Process().cpu_times()
        t0 = time.perf_counter()
        run = pipeline.run_demo(out, started=psutil.Process().create_time())
        wall = time.perf_counter() - t0
        cpu1 = psutil.Process().cpu_times()
        total = sum(sec for _, sec in run.parts)
        print("\n".join(f"{name:45s} {sec:7.1f}" for name, sec in run.parts))
        print(f"{'total' + (' (without the cathode calender)' if args.without_cathode_calender else ''):45s} "
              f"{total:7.1f}")
        print(f"run_demo wall {wall:.1f} s, CPU {cpu1.user - cpu0.user:.1f} user + {cpu1.system - cpu0.system:.1f} "
              f"system s; load after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for twin, c in twin_counts(out).items():
            print(twin + ": " + ", ".join(f"{k} {v:g}" for k, v in sorted(c.items())))


if __name__ == "__main__":
    main()

"""Cold start: the first ``twinlab analyze --only transport`` in a new process against the second
(not collected by pytest). Target: ≤ 3 s difference after ``make setup`` (whose warm-up,
``python -m twinlab._warmup``, populates numba's caches).

Run:  .venv/bin/python tests/benchmarks/bench_coldstart.py [--from-scratch]

``--from-scratch`` first deletes twinlab's numba cache files and times the warm-up, i.e. what
``make setup`` does on a fresh clone. The twin is the demo cathode's labels (full size).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def clear_caches() -> int:
    n = 0
    for f in (ROOT / "twinlab").rglob("__pycache__/*"):
        if f.suffix in (".nbi", ".nbc"):
            f.unlink()
            n += 1
    return n


def timed(cmd) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--from-scratch", action="store_true")
    args = ap.parse_args()
    py = sys.executable
    if args.from_scratch:
        print(f"removed {clear_caches()} numba cache files", flush=True)
        print(f"warm-up (make setup): {timed([py, '-m', 'twinlab._warmup']):.1f} s", flush=True)
    from twinlab.datasets import load
    from twinlab.twin import create_twin

    sample = load("demo_cathode")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cathode.twin.zarr"
        lab = np.asarray(sample.array)
        create_twin(path, lab * 40, voxel_size=sample.voxel_size, labels={"phases": lab}, thickness_axis="y",
                    collector_side="low")
        cmd = [py, "-m", "twinlab", "analyze", str(path), "--only", "transport"]
        first = timed(cmd)
        second = timed(cmd)
    print(f"twinlab analyze --only transport on {lab.shape}: first {first:.1f} s, second {second:.1f} s, "
          f"difference {first - second:.1f} s (target ≤ 3 s)", flush=True)


if __name__ == "__main__":
    main()

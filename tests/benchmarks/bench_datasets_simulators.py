"""Benchmark: render_fibsem / render_ebac on an N³ volume (default 256³).

Run: ``.venv/bin/python tests/benchmarks/bench_datasets_simulators.py [N]``.
Prints wall time, peak RSS, and as a contention-independent yardstick the time of one
``scipy.ndimage.gaussian_filter(float32 volume, sigma=1)`` on the same grid in the same run
(the ratio says how many whole-volume 3D filters a render costs).
"""

from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np
from scipy import ndimage as ndi

from twinlab.datasets.simulators import NO_ARTEFACTS, render_ebac, render_fibsem


def _timed(fn, repeat=2):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(n: int = 256) -> None:
    rng = np.random.default_rng(0)
    f = ndi.gaussian_filter(rng.standard_normal((n, n, n)).astype(np.float32), 3)
    labels = np.digitize(f, np.quantile(f, [0.4, 0.85])).astype(np.uint8)  # pore 40 %, active, cbd
    labels[:, : max(2, n // 32)] = 3  # collector rows at the top
    vol = labels.astype(np.float32)
    print(f"volume {labels.shape} uint8; load: {os.getloadavg()}")
    t_peer, _ = _timed(lambda: ndi.gaussian_filter(vol, 1.0))
    print(f"peer  scipy.ndimage.gaussian_filter(float32, sigma=1): {t_peer:.2f} s")
    rows = [("render_fibsem, no artefacts", lambda: render_fibsem(labels, **NO_ARTEFACTS)),
            ("render_fibsem, all artefacts (defaults)", lambda: render_fibsem(labels)),
            ("render_ebac, 3D connectivity + section", lambda: render_ebac(labels))]
    for name, fn in rows:
        t, _ = _timed(fn)
        print(f"{name:42s} {t:6.2f} s   ratio to peer {t / t_peer:5.1f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB (input labels {labels.nbytes / 2**20:.0f} MB; "
          f"uint16 raw+clean {4 * labels.size / 2**20:.0f} MB; float32 stripes+shading {8 * labels.size / 2**20:.0f} MB)")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)

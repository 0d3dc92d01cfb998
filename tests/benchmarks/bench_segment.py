"""Benchmark: phase segmentation and watershed instance labels, chunked vs whole-array peers.

Run: .venv/bin/python tests/benchmarks/bench_segment.py [--n 160] [--chunk 64]

Prints wall time and peak resident memory above the step's starting RSS (psutil, sampled every
10 ms in a thread) of each step and of its peer in the same run, their ratio, and the machine
load (``uptime``): the machine is shared, compare ratios, not absolute times.

Steps
-----
1. multi-Otsu on a noisy synthetic electrode: twinlab (fit on samples, applied per chunk of a dask
   array) vs scikit-image whole array (threshold_multiotsu + digitize).
2. particle watershed: twinlab chunked (halo + stitching) vs the whole-array twinlab kernel and
   vs scikit-image's plain recipe (scipy EDT → h_maxima → watershed) on the whole array.
3. statistical REV on the dask labels (reads sub-volumes only).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _segment_synth import make_electrode  # noqa: E402

from twinlab.analyses.rev import statistical_rev  # noqa: E402
from twinlab.segment import dice, match_instances, segment_phases, split_particles  # noqa: E402


def measure(label, func):
    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    t = time.perf_counter()
    out = func()
    wall = time.perf_counter() - t
    done.set()
    th.join()
    extra = max(peak[0], proc.memory_info().rss) - base
    print(f"  {label:<44s} {wall:8.2f} s   peak +{extra / 2**20:8.1f} MiB RSS")
    return out, wall, extra


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=192, help="cube edge in voxels")
    ap.add_argument("--chunk", type=int, default=96)
    ap.add_argument("--depth", type=int, default=16, help="watershed halo (≥ largest particle diameter)")
    args = ap.parse_args()
    dask.config.set(scheduler="threads", num_workers=2)
    print("uptime:", os.popen("uptime").read().strip())
    shape = (args.n,) * 3
    phases, truth = make_electrode(shape, rmin=5.0, rmax=10.0, cbd_closing=2, cbd_shell=2, seed=1)
    rng = np.random.default_rng(0)
    img = (np.array([50.0, 200.0, 125.0], np.float32)[phases] + rng.normal(0, 20, shape).astype(np.float32))
    print(f"volume {shape}, {truth.max()} particles, chunks {args.chunk}")

    print("1. multi-Otsu (3 phases)")
    lazy = da.from_array(img, chunks=args.chunk)
    ours, t1, m1 = measure("twinlab segment_phases (dask, chunked)", lambda: segment_phases(lazy).compute())

    def peer():
        from skimage.filters import threshold_multiotsu

        t = threshold_multiotsu(img, classes=3)
        return np.array([0, 2, 1], np.uint8)[np.digitize(img, t)]

    theirs, t2, m2 = measure("skimage threshold_multiotsu + digitize (whole)", peer)
    print(f"  agreement {np.mean(ours == theirs):.5f}; Dice {dice(ours, phases)}; time ratio {t1 / t2:.2f}, "
          f"memory ratio {m1 / max(m2, 1):.2f}")

    print("2. particle watershed (h = 0.5 voxel)")
    lazy_ph = da.from_array(phases, chunks=args.chunk)
    chunked, t1, m1 = measure(f"twinlab split_particles (dask, depth {args.depth})",
                              lambda: split_particles(lazy_ph, depth=args.depth).compute())
    chunked2, t1b, m1b = measure("twinlab split_particles (dask, 2 workers)",
                                 lambda: split_particles(lazy_ph, depth=args.depth, workers=2).compute())
    assert (chunked2 == chunked).all()
    whole, t2, m2 = measure("twinlab split_particles (numpy, whole)", lambda: split_particles(phases))

    def skimage_recipe():
        from skimage.morphology import h_maxima
        from skimage.segmentation import watershed

        mask = phases == 1
        dist = ndi.distance_transform_edt(mask)
        markers, _ = ndi.label(h_maxima(dist, 0.5), structure=np.ones((3, 3, 3)))
        return watershed(-dist, markers, mask=mask)

    peer_ws, t3, m3 = measure("scipy EDT + skimage h_maxima + watershed", skimage_recipe)
    pairs = np.unique(np.stack([whole.ravel(), chunked.ravel()]), axis=1).shape[1]
    print(f"  chunked vs whole: {pairs} label pairs for {whole.max() + 1} labels "
          f"({'identical partition' if pairs == whole.max() + 1 else 'differs'})")
    for name, lab in (("twinlab", whole), ("skimage recipe", peer_ws)):
        m = match_instances(lab, truth)
        print(f"  {name}: matched {m.fraction_matched:.3f} at IoU 0.5, ARI {m.adjusted_rand_index:.4f}")
    print(f"  time ratio chunked/whole {t1 / t2:.2f}, 2 workers/1 worker {t1b / t1:.2f}, chunked/skimage {t1 / t3:.2f}; "
          f"memory ratio chunked/whole {m1 / max(m2, 1):.2f}")

    print("3. statistical REV (porosity, dask labels)")
    rev, t1, m1 = measure("statistical_rev (8 sizes x 10 samples)",
                          lambda: statistical_rev(lazy_ph, n_samples=10))
    print(f"  REV {rev.rev_voxels} voxels; spreads {np.round(rev.relative_spread, 3).tolist()}")
    print(f"ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print("uptime:", os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()

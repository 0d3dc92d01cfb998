"""Benchmark: chunked (dask) cluster labelling vs whole-array peers, and the full cluster analysis.

Run: ``.venv/bin/python tests/benchmarks/bench_conductive.py [--size 192] [--chunk 64]``

Each case runs in its own subprocess (input read from a .npy file; memory-mapped for the dask
cases) so the peak RSS (ru_maxrss) is that case's alone; time = best of ``--repeats``. Peers
in the same run: ``scipy.ndimage.label`` and ``skimage.measure.label`` on the whole array. The
chunked result is checked against scipy's (same partition). The input is a smoothed random field
thresholded near the percolation threshold (large, branched clusters that cross many chunks).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CASES = ("scipy_whole", "skimage_whole", "twinlab_numpy", "twinlab_dask", "clusters_numpy", "clusters_dask")


def _volume(size: int):
    import numpy as np
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    field = ndi.gaussian_filter(rng.standard_normal((size, size, size)).astype(np.float32), 2.0)
    mask = field > np.quantile(field, 0.7)  # 30 % solid: near the percolation threshold of smooth fields
    labels = mask.astype(np.uint8)  # 1 = active, 0 = pore
    labels[:, :2, :] = 3  # a collector at low y
    return mask, labels


def _run_case(case: str, size: int, chunk: int, folder: str, repeats: int) -> dict:
    import dask
    import numpy as np

    dask.config.set(scheduler="threads", num_workers=2)
    mmap = "dask" in case  # the chunked cases read the input lazily from disk
    mask = np.load(os.path.join(folder, "mask.npy"), mmap_mode="r" if mmap else None)
    labels = np.load(os.path.join(folder, "labels.npy"), mmap_mode="r" if mmap else None)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n, extra = _once(case, mask, labels, chunk)
        times.append(time.perf_counter() - t0 - extra.pop("_check_s", 0.0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"case": case, "seconds_min": round(min(times), 3), "seconds_all": [round(t, 2) for t in times],
            "peak_rss_mib": round(peak / 1024, 1), "rss_above_input_mib": round((peak - base) / 1024, 1),
            "n_clusters": int(n), **extra}


def _once(case: str, mask, labels, chunk: int):
    import dask.array as da
    import numpy as np

    extra: dict = {}
    if case == "scipy_whole":
        from scipy import ndimage as ndi

        _, n = ndi.label(mask)
    elif case == "skimage_whole":
        from skimage.measure import label

        _, n = label(mask, connectivity=1, return_num=True)
    elif case == "twinlab_numpy":
        from twinlab.analyses.conductive import label_network

        _, n = label_network(mask)
    elif case == "twinlab_dask":
        from scipy import ndimage as ndi

        from twinlab.analyses.conductive import label_network

        lazy, n = label_network(da.from_array(mask, chunks=chunk))
        out = lazy.compute()
        t1 = time.perf_counter()
        m = np.asarray(mask)
        ref, nref = ndi.label(m)
        pairs = set(zip(ref[m].tolist(), out[m].tolist()))
        extra["same_partition"] = bool(nref == n and len(pairs) == n)
        extra["_check_s"] = time.perf_counter() - t1
    elif case in ("clusters_numpy", "clusters_dask"):
        from twinlab.analyses.conductive import conductive_clusters

        arr = labels if case == "clusters_numpy" else da.from_array(labels, chunks=chunk)
        r = conductive_clusters(arr, conducting=("active",))
        n = r.n_clusters
        extra["activation"] = round(r.activation, 6)
    return n, extra


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(_run_case(args.case, args.size, args.chunk, args.folder, args.repeats)))
        return
    import tempfile

    import numpy as np

    tmp = tempfile.TemporaryDirectory()
    mask, labels = _volume(args.size)
    np.save(os.path.join(tmp.name, "mask.npy"), mask)
    np.save(os.path.join(tmp.name, "labels.npy"), labels)
    del mask, labels
    load = os.getloadavg()
    print(f"volume {args.size}^3 ({args.size ** 3 / 1e6:.1f} Mvoxel), chunks {args.chunk}^3, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    rows = []
    for case in CASES:
        out = subprocess.run([sys.executable, __file__, "--size", str(args.size), "--chunk", str(args.chunk),
                              "--repeats", str(args.repeats), "--case", case, "--folder", tmp.name],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    ref = next(r for r in rows if r["case"] == "scipy_whole")
    print("ratio to scipy.ndimage.label (time, peak RSS):")
    for r in rows:
        print(f"  {r['case']:15s} {r['seconds_min'] / ref['seconds_min']:6.2f}x  "
              f"{r['peak_rss_mib'] / ref['peak_rss_mib']:5.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

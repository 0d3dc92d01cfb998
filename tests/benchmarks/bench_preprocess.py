"""Out-of-core preprocessing: a raw uint8 stack ≥ 2× a memory cap, streamed into a twin.

Writes a synthetic FIB-SEM-like stack (particles, noise, vertical curtains, drift) slice by
slice to a raw file (read back with positioned reads, so the page cache is not counted in
RSS), runs ``preprocess_to_twin`` (align, destripe, flatten, denoise, resample) and reports
wall time, throughput (input voxels/s) and peak RSS above the post-import baseline, and
asserts that this peak stays under the cap (half the stack's size).

    .venv/bin/python tests/benchmarks/bench_preprocess.py [--shape 1024,512,768] [--chunks 64]
        [--denoise nlm|gaussian] [--workdir /tmp/bench_pre]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, measure  # noqa: E402


def write_stack(path: Path, shape: tuple[int, int, int], seed: int = 0, slab: int = 32) -> np.ndarray:
    """Blobs (a smooth random 3D field, thresholded: structure evolves along z without moving),
    drifted per slice, plus vertical curtains and noise; written slab by slab."""
    from scipy import ndimage

    nz, ny, nx = shape
    rng = np.random.default_rng(seed)
    cell = 8.0
    coarse = rng.normal(size=(int(nz / cell) + 3, int(ny / cell) + 3, int(nx / cell) + 3)).astype(np.float32)
    drift = np.cumsum(rng.normal(0, 0.3, (nz, 2)), axis=0)
    drift[0] = 0
    stripes = np.zeros(nx, np.float32)
    stripes[rng.choice(nx, nx // 12, replace=False)] = rng.normal(0, 25, nx // 12)
    yy, xx = np.mgrid[:ny, :nx].astype(np.float32)
    with open(path, "wb") as fh:
        for z0 in range(0, nz, slab):
            for z in range(z0, min(nz, z0 + slab)):
                dy, dx = drift[z]
                coords = [np.full_like(yy, z / cell), (yy - dy) / cell, (xx - dx) / cell]
                field = ndimage.map_coordinates(coarse, coords, order=1, mode="nearest")
                img = 110.0 + 70.0 * (field > 0.3) + stripes[None, :]
                img += rng.normal(0, 12, (ny, nx)).astype(np.float32)
                fh.write(np.clip(img, 0, 255).astype(np.uint8).tobytes())
    (path.with_name(path.name + ".json")).write_text(json.dumps(
        {"shape": list(shape), "dtype": "uint8", "voxel_size_um": [0.0325, 0.03722, 0.03722]}))
    return drift


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="1024,512,768")
    ap.add_argument("--chunks", type=int, default=64)
    ap.add_argument("--denoise", default="nlm", choices=["nlm", "gaussian"])
    ap.add_argument("--workdir", default="/tmp/bench_preprocess")
    ap.add_argument("--steps", default="align,destripe,flatten,denoise,resample")
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    raw = work / "stack.raw"
    t = time.perf_counter()
    write_stack(raw, shape)
    n_vox = int(np.prod(shape))
    stack_bytes = n_vox  # uint8
    cap = stack_bytes // 2
    print(f"machine: {machine()}")
    print(f"stack {shape} uint8 = {stack_bytes / 2**20:.0f} MiB (float32 equivalent "
          f"{4 * stack_bytes / 2**20:.0f} MiB), written in {time.perf_counter() - t:.1f} s; "
          f"RSS cap above baseline {cap / 2**20:.0f} MiB")

    import dask

    from twinlab.preprocess import preprocess_to_twin

    denoise = ({"method": "nlm", "patch_size": 3, "patch_distance": 1} if args.denoise == "nlm"
               else {"method": "gaussian", "size": 1.0})
    dask.config.set(scheduler="threads", num_workers=2)
    options = {"denoise": denoise, "flatten": {"sigma_um": 5.0}}
    # warm-up on a small stack: lazy imports and numba compilation are not data memory
    small = work / "small.raw"
    write_stack(small, (40, 64, 96))
    preprocess_to_twin(small, work / "small.twin.zarr", chunks=args.chunks, steps=args.steps, options=options)
    with measure() as m:
        twin, result = preprocess_to_twin(raw, work / "out.twin.zarr", chunks=args.chunks, steps=args.steps,
                                          options=options)
    added = m.peak_rss_bytes - m.baseline_rss_bytes
    sigma = result.params.get("denoise", {}).get("sigma")
    print(f"steps {list(result.steps)}, denoise {denoise}, estimated noise sigma {sigma}, output {twin.shape} {twin.image(0).dtype}, "
          f"voxel {twin.voxel_size.as_tuple()}")
    print(f"wall {m.seconds:.1f} s, throughput {n_vox / m.seconds / 1e6:.2f} Mvoxel/s (input voxels), "
          f"peak RSS {m.peak_rss_bytes / 2**20:.0f} MiB, baseline {m.baseline_rss_bytes / 2**20:.0f} MiB, "
          f"added {added / 2**20:.0f} MiB = {added / stack_bytes:.2f} × the uint8 stack "
          f"({added / (4 * stack_bytes):.3f} × float32)")
    print(f"load after: {os.getloadavg()}")
    print(f"whole process: peak RSS {m.peak_rss_bytes / 2**20:.0f} MiB = stack / {stack_bytes / m.peak_rss_bytes:.2f} "
          f"({'within' if m.peak_rss_bytes <= cap else 'above'} the cap for a stack ≥ 2× the memory used)")
    assert added <= cap, f"peak RSS above baseline {added / 2**20:.0f} MiB exceeds the cap {cap / 2**20:.0f} MiB"
    print(f"OK: stack is {stack_bytes / max(added, 1):.1f}× the memory actually added "
          f"(cap {cap / 2**20:.0f} MiB = stack/2)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

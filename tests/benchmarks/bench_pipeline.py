"""The pipeline out of core: a stack larger than a memory cap, reporting peak RSS and time per stage.

Run:  .venv/bin/python tests/benchmarks/bench_pipeline.py [--gib 1.0] [--cap-gib 0.5]

A raw uint8 stack of ``--gib`` GiB (grey blobs: smoothed noise thresholded into pore / CBD /
active grey levels plus noise, written slab by slab so the generator stays small) goes through
``twinlab.pipeline.run_sample``: import + Gaussian denoising streamed into the twin, multi-Otsu
segmentation fitted on sampled chunks and applied chunk by chunk, and the chunked conductive-
cluster analysis. Peak RSS (sampled every 20 ms, this process and its children) must stay under
``--cap-gib``, which the script sets at half the stack size by default.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, measure  # noqa: E402

from twinlab.pipeline import parse_config, run_sample  # noqa: E402


def write_stack(path: Path, shape: tuple[int, int, int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    with open(path, "wb") as fh:
        for z0 in range(0, nz, 32):
            n = min(32, nz - z0)
            field = ndi.gaussian_filter(rng.normal(size=(n + 8, ny, nx)).astype(np.float32), 3.0)[4:4 + n]
            grey = np.where(field > 0.05, 190, np.where(field > -0.02, 120, 50)).astype(np.float32)
            grey += rng.normal(0, 8, grey.shape).astype(np.float32)
            np.clip(grey, 0, 255).astype(np.uint8).tofile(fh)
    path.with_suffix(".json").write_text(json.dumps({"shape": list(shape), "dtype": "uint8"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--cap-gib", type=float, default=None)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/twinlab-bench-pipeline"))
    parser.add_argument("--chunks", type=int, default=64, help="chunk edge: the working set scales with it")
    args = parser.parse_args()
    cap = args.cap_gib or args.gib / 2
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    ny = nx = 1024
    nz = int(args.gib * 2**30 / (ny * nx))
    raw = args.workdir / "stack.raw"
    # written by a child process: the generator's heap is not the pipeline's memory
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(write_stack, raw, (nz, ny, nx)).result()
    config = parse_config({
        "name": "big", "output": str(args.workdir / "big.twin.zarr"),
        "input": {"path": str(raw), "voxel_size": "0.0325,0.03722,0.03722"}, "chunks": args.chunks,
        "preprocess": {"steps": ["denoise"], "options": {"denoise": {"method": "gaussian", "size": 1.0}}},
        "segment": {"phases": ["pore", "cbd", "active"], "particles": False},
        "analyses": {"run": ["conductive"], "options": {"conductive": {"collector": "face"}}},
        "report": False,
    })
    with measure() as m:
        run = run_sample(config)
    print(f"machine: {machine()}")
    print(f"stack: {raw.stat().st_size / 2**30:.2f} GiB uint8 {nz}x{ny}x{nx}; chunks {args.chunks}; "
          f"memory cap {cap:.2f} GiB (whole process); RSS after imports {m.baseline_rss_bytes / 2**30:.3f} GiB")
    for stage in run.stages:
        print(f"  {stage.stage:12s} {stage.seconds:8.1f} s   peak RSS {stage.peak_rss_gib:.3f} GiB")
    voxels = nz * ny * nx
    print(f"total {m.seconds:.1f} s ({voxels / m.seconds / 1e6:.2f} Mvoxel/s); peak RSS {m.peak_rss_gib:.3f} GiB "
          f"-> {'PASS' if m.peak_rss_gib < cap else 'FAIL'} (cap {cap:.2f} GiB, stack {args.gib:.2f} GiB)")
    print(f"activation (collector face) {run.summary.get('conductive.activation')}")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

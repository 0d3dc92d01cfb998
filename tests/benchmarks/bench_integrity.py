"""Cost of the integrity record: the chunk-file check at open, sealing at write, --verify, reading.

Run:  flock /tmp/twinlab-bench.lock .venv/bin/python tests/benchmarks/bench_integrity.py [--chunk 16]
A (256, 512, 512) uint8 twin written with small chunks (16^3: 16384 chunk files at level 0) is
opened through ``Twin.image()`` (metadata check + chunk listing + dask graph) and, as the peer in the
same run, through plain ``da.from_zarr`` (what twinlab did before: no check).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine  # noqa: E402

from twinlab import _integrity  # noqa: E402
from twinlab.twin import Twin, create_twin  # noqa: E402


def _times(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _median_s(fn, repeats: int) -> float:
    return statistics.median(_times(fn, repeats))


def _open_peers(path: Path, level0: Path, repeats: int) -> tuple[float, float, float, float]:
    """Checked and plain opens interleaved (so load changes hit both): (min, median) of each."""
    checked, plain = [], []
    for _ in range(repeats):
        checked += _times(lambda: Twin.open(path).image(0), 1)
        plain += _times(lambda: (Twin.open(path), da.from_zarr(zarr.open_array(level0, mode="r"))), 1)
    return min(checked), statistics.median(checked), min(plain), statistics.median(plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/twinlab-bench-integrity"))
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (256, 512, 512), dtype=np.uint8)

    start = time.perf_counter()
    twin = create_twin(args.workdir / "t.twin.zarr", image, voxel_size=0.05, chunks=args.chunk)
    write_s = time.perf_counter() - start
    level0 = twin.path / "0"
    n_chunks = zarr.open_array(level0, mode="r").nchunks
    seal_s = _median_s(lambda: _integrity.seal(zarr.open_array(level0, mode="r+")), 3)

    c_min, checked, p_min, plain = _open_peers(twin.path, level0, args.repeats)
    stored = zarr.open_array(level0, mode="r")
    grid = _integrity._grid(stored.shape, stored.chunks)
    listing = min(_times(lambda: _integrity._missing_chunks(level0, grid), args.repeats))
    verify_s = _median_s(lambda: Twin.open(twin.path).verify(), 3)
    read_checked = _median_s(lambda: Twin.open(twin.path).image(0).compute(), 3)
    read_plain = _median_s(lambda: da.from_zarr(zarr.open_array(level0, mode="r")).compute(), 3)
    assert np.array_equal(Twin.open(twin.path).image(0).compute(), image)

    print(f"machine: {machine()}")
    print(f"twin: {image.shape} uint8, chunks {args.chunk}^3: {n_chunks} chunk files at level 0, "
          f"{twin.levels} levels; create_twin {write_s:.2f} s, of which sealing level 0 ~{seal_s:.2f} s")
    print(f"open + build dask array, {args.repeats} interleaved runs, min / median: checked {c_min * 1e3:.1f} / "
          f"{checked * 1e3:.1f} ms, plain da.from_zarr {p_min * 1e3:.1f} / {plain * 1e3:.1f} ms (overhead "
          f"{(c_min - p_min) * 1e3:.1f} ms by the minima); chunk check alone (min) {listing * 1e3:.1f} ms = "
          f"{listing / n_chunks * 1e6:.2f} us per chunk")
    print(f"info --verify (all {twin.levels} levels): {verify_s:.2f} s")
    print(f"full read of level 0: checked {read_checked:.2f} s, plain {read_plain:.2f} s "
          f"(ratio {read_checked / read_plain:.2f})")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

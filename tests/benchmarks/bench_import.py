"""Import a 2 GiB raw volume into a twin and report peak memory (target: < 1 GiB).

Run:  .venv/bin/python tests/benchmarks/bench_import.py [--gib 2] [--workdir /tmp/twinlab-bench]
The input is written as raw uint8 + JSON header, read lazily by twinlab.io and streamed chunk by
chunk into the OME-Zarr twin (level 0 plus the pyramid).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, measure  # noqa: E402

from twinlab.io import read_volume  # noqa: E402
from twinlab.twin import Twin, create_twin  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/twinlab-bench-import"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    ny = nx = 2048
    nz = int(args.gib * 2**30 / (ny * nx))
    raw = args.workdir / "big.raw"
    rng = np.random.default_rng(0)
    with open(raw, "wb") as fh:  # written slab by slab so the generator itself stays small
        for z0 in range(0, nz, 16):
            slab = rng.integers(0, 255, size=(min(16, nz - z0), ny, nx), dtype=np.uint8)
            slab.tofile(fh)
    (args.workdir / "big.json").write_text(json.dumps({"shape": [nz, ny, nx], "dtype": "uint8"}))
    size_gib = raw.stat().st_size / 2**30

    with measure() as m:
        vol = read_volume(raw, voxel_size="0.0325,0.03722,0.03722")
        twin = create_twin(args.workdir / "big.twin.zarr", vol.data, voxel_size=vol.voxel_size)
    check = Twin.open(twin.path)
    z = nz // 2
    ok = np.array_equal(check.image()[z, 1000:1100, 500:700].compute(),
                        np.fromfile(raw, dtype=np.uint8, count=ny * nx, offset=z * ny * nx).reshape(ny, nx)[1000:1100, 500:700])
    print(f"machine: {machine()}")
    print(f"input: {size_gib:.2f} GiB uint8 {nz}x{ny}x{nx}; levels written: {check.levels}; spot check equal: {ok}")
    print(f"import wall time: {m.seconds:.1f} s ({size_gib / m.seconds * 1024:.0f} MiB/s)")
    print(f"peak RSS: {m.peak_rss_gib:.3f} GiB (baseline {m.baseline_rss_bytes / 2**30:.3f} GiB); "
          f"target < 1 GiB: {'PASS' if m.peak_rss_gib < 1.0 else 'FAIL'}")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

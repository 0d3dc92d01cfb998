"""Benchmark: twinlab's SNOW network extraction vs porespy ``snow2`` in the same run.

Usage::

    .venv/bin/python tests/benchmarks/bench_network.py [--size 256] [--porosity 0.4]
        [--with-default-snow2] [--ooc-shape 400,256,256] [--ooc-cap-mb 600] [--skip-ooc]

1. Whole volume: a porespy ``blobs`` volume (size³, porosity 0.4) is extracted by
   ``extract_network`` (2 threads) and by ``porespy.networks.snow2(parallel_kw=None)`` (the serial
   reference path; porespy's default parallel path gives a *different* network — stitching
   over-segments — and is also timed with ``--with-default-snow2``), each in its own
   subprocess so that peak RSS (``ru_maxrss``) belongs to one method. Reports time, peak RSS,
   working memory (peak − RSS after imports), pore count, mean coordination, mean radius and the
   ratios.
2. Out of core: a larger blobs volume is written to a zarr store and extracted with
   ``chunks=``/``halo=`` (slabs along the thickness axis read lazily from zarr) under a working-
   memory cap; the whole-volume working memory of the same volume is measured too, and must be
   ≥ 2× the cap while the chunked run stays under it. The stitched network is compared with
   the whole-volume one (pore count, mean coordination).

Records ``uptime`` load: the machine is shared, compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys, time
import numpy as np


def hwm_mb():
    # VmHWM after clear_refs: ru_maxrss would carry the parent's high-water mark over execve
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024


def reset_hwm():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


mode, path = sys.argv[1], sys.argv[2]
extra = json.loads(sys.argv[3])
if mode.startswith("snow2"):
    import porespy as ps
    import openpnm  # noqa: F401  (imported before the baseline, as the peer needs it)
else:
    import dask.array as da
    import zarr
    from twinlab.analyses.network import extract_network
if mode == "ours":  # load the numba cache outside the timing
    extract_network(np.pad(np.ones((6, 6, 6), bool), 3), thickness_axis="y")
reset_hwm()
base = hwm_mb()
if path.endswith(".zarr"):
    im = da.from_zarr(zarr.open_array(path, mode="r"))
    if extra.get("chunks") is None:
        im = im.compute()
else:
    im = np.load(path)
t = time.perf_counter()
if mode == "ours":
    report_halo = extra.pop("report_halo", False)
    net = extract_network(im, voxel_size_um=1.0, thickness_axis="y", threads=2, **extra)
    if report_halo:
        print("halo", net.params["halo"], file=sys.stderr)
    conns, np_ = net["throat.conns"], net.num_pores
    req = net["pore.equivalent_diameter"] / 2
    internal = net["pore.internal"]
else:
    kw = {"parallel_kw": None} if mode == "snow2" else {}
    snow = ps.networks.snow2(im, boundary_width=[0, 3, 0], **kw)
    import openpnm as op
    pn = op.io.network_from_porespy(snow.network)
    conns, np_ = pn.conns, pn.Np
    req = pn["pore.equivalent_diameter"] / 2
    internal = ~pn["pore.boundary"]
dt = time.perf_counter() - t
peak = hwm_mb()
cn = np.bincount(np.asarray(conns).ravel(), minlength=np_)
print(json.dumps({"mode": mode, "time_s": dt, "peak_rss_mb": peak, "baseline_rss_mb": base,
                  "working_mb": peak - base, "num_pores": int(np_), "num_internal": int(internal.sum()),
                  "num_throats": int(len(conns)), "mean_cn": float(cn.mean()),
                  "mean_cn_internal": float(cn[internal].mean()), "mean_req": float(req.mean())}))
"""


def run_child(mode: str, path: str, **extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", CHILD, mode, path, json.dumps(extra)], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for line in out.stderr.splitlines():
        if line.startswith("halo "):
            res["halo"] = int(line.split()[1])
    return res


def make_volume(path: Path, shape, porosity: float, seed: int, blobiness: float = 1.0) -> float:
    """Generate blobs in a subprocess (keeps this process small) and save as .npy or zarr."""
    code = (
        "import sys, numpy as np, porespy as ps, zarr\n"
        f"im = ps.generators.blobs(shape={list(shape)}, porosity={porosity}, blobiness={blobiness}, seed={seed})\n"
        f"p = {str(path)!r}\n"
        "if p.endswith('.zarr'):\n"
        "    z = zarr.create_array(store=p, shape=im.shape, chunks=(64, 64, 64), dtype=bool, zarr_format=3)\n"
        "    z[...] = im\n"
        "else:\n"
        "    np.save(p, im)\n"
        "print(im.mean())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def row(r: dict) -> str:
    return (f"{r['mode']:>14}: {r['time_s']:7.1f} s  peak RSS {r['peak_rss_mb']:7.0f} MB  working "
            f"{r['working_mb']:7.0f} MB  pores {r['num_pores']:6d}  throats {r['num_throats']:6d}  "
            f"mean CN {r['mean_cn']:.4f} (internal {r['mean_cn_internal']:.4f})  mean r_eq {r['mean_req']:.4f} vox")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--porosity", type=float, default=0.4)
    ap.add_argument("--with-default-snow2", action="store_true")
    ap.add_argument("--ooc-shape", default="600,256,256")
    ap.add_argument("--ooc-cap-mb", type=float, default=500)
    ap.add_argument("--ooc-chunks", type=int, default=48)
    ap.add_argument("--ooc-halo", type=int, default=None, help="default: extract_network's (2·max dt + 32)")
    ap.add_argument("--skip-ooc", action="store_true")
    ap.add_argument("--skip-whole", action="store_true", help="only the out-of-core part")
    args = ap.parse_args()
    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="bench_network_"))
    print("load before:", load())
    if not args.skip_whole:
        whole_volume(args, tmp)
    if not args.skip_ooc:
        out_of_core(args, tmp)


def whole_volume(args, tmp: Path) -> None:
    vol = tmp / "blobs.npy"
    porosity = make_volume(vol, [args.size] * 3, args.porosity, 1)
    print(f"volume blobs {args.size}³ porosity {porosity:.3f}")
    ours = run_child("ours", str(vol))
    print(row(ours))
    peer = run_child("snow2", str(vol))
    print(row(peer))
    if args.with_default_snow2:
        print(row(run_child("snow2_default", str(vol))))
    print(f"speed-up ×{peer['time_s'] / ours['time_s']:.2f}   peak RSS ratio {ours['peak_rss_mb'] / peer['peak_rss_mb']:.2f}"
          f"   working-memory ratio {ours['working_mb'] / peer['working_mb']:.2f}")
    for k in ("num_pores", "mean_cn", "mean_cn_internal", "mean_req"):
        print(f"  {k}: ours {ours[k]:.4f} snow2 {peer[k]:.4f} rel diff {ours[k] / peer[k] - 1:+.4%}")
    print("load after whole-volume runs:", load())


def out_of_core(args, tmp: Path) -> None:
    import numpy as np
    import zarr

    shape = tuple(int(s) for s in args.ooc_shape.split(","))
    # thickness axis y is the long one: the chunked path slabs along it
    store = tmp / "big.zarr"
    # porespy's blob size grows with the mean edge; scale blobiness so the features (and so the
    # halo the chunked path needs) match the size³ volume above
    make_volume(store, [shape[1], shape[0], shape[2]], args.porosity, 2, blobiness=float(np.mean(shape)) / args.size)
    z = zarr.open_array(str(store), mode="r")
    print(f"\nout of core: blobs {z.shape} ({np.prod(z.shape) / 1e6:.1f} M voxels) in zarr, cap {args.ooc_cap_mb:.0f} MB"
          " working memory (peak RSS − RSS after imports)")
    whole = run_child("ours", str(store))
    print(row(whole) + "   [whole volume]")
    chunked = run_child("ours", str(store), chunks=args.ooc_chunks, halo=args.ooc_halo, report_halo=True)
    print(row(chunked) + f"   [chunks={args.ooc_chunks}, halo={chunked.get('halo')}]")
    print(f"whole-volume working memory / cap = {whole['working_mb'] / args.ooc_cap_mb:.2f} (must be ≥ 2);"
          f" chunked working memory / cap = {chunked['working_mb'] / args.ooc_cap_mb:.2f} (must be ≤ 1)")
    for k in ("num_pores", "num_throats", "mean_cn", "mean_req"):
        print(f"  {k}: chunked {chunked[k]:.4f} whole {whole[k]:.4f} rel diff {chunked[k] / whole[k] - 1:+.4%}")
    print("load after:", load())


if __name__ == "__main__":
    main()

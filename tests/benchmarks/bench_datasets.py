"""Benchmark: generating a 256³ NCM622 cathode (time, peak RSS), with a peer in the same run.

Run:  .venv/bin/python tests/benchmarks/bench_datasets.py [--size 256] [--voxel 0.5]

Each case runs in a fresh subprocess so its peak RSS is its own. The coating fills the whole
cube (a design without loading/thickness, so no empty space above it) and no collector is drawn.
Peer: porespy.generators.polydisperse_spheres — a plain random (overlapping, no packing)
sphere drop at the same size, porosity and voxel size, the usual quick synthetic microstructure;
it gives the cost floor of "spheres into a 256³ grid", not an equivalent product (no packing,
no instance labels, no CBD). The ratio ours/peer is printed. Record `uptime` with the numbers:
the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CASE = r"""
import json, resource, sys, time
import numpy as np
kind, size, voxel, rho = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
t_import = time.perf_counter()
if kind == "twinlab":
    from twinlab.datasets import LogNormalMode, make_cathode
    from twinlab.design import ElectrodeDesign, ncm622_cathode
    design = ElectrodeDesign(ncm622_cathode().components, density_g_cm3=rho, collector_material="Al",
                             collector_thickness_um=0.0, name="NCM622")
    # warm the numba kernels (cached on disk after the first run) so the timing is the generation
    make_cathode(design, shape=(40, 40, 40), voxel_size_um=1.0, collector_um=0, modes=(LogNormalMode(10.0, 0.2),))
    t0, c0 = time.perf_counter(), time.process_time()
    g = make_cathode(design, shape=(size,) * 3, voxel_size_um=voxel, collector_um=0, seed=0)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    target = design.volume_fractions()
    err = max(abs(g.fractions[k] - target[k]) for k in target)
    extra = {"particles": int(g.radii_um.size), "max_fraction_error": err, "flattening": g.flattening,
             "max_overlap": g.max_overlap, "packing_sweeps": g.notes["packing_sweeps"], "growth": g.growth}
else:
    import porespy as ps
    import scipy.stats as spst
    phi = rho * 0.96 / 4.75  # active fraction of the NCM622 design at this density
    ps.generators.polydisperse_spheres(shape=[40, 40, 40], porosity=0.5, dist=spst.norm(loc=5, scale=1), seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    # radii in voxels: the 14 µm mode only (porespy draws one distribution), same porosity
    im = ps.generators.polydisperse_spheres(shape=[size] * 3, porosity=1 - phi,
                                            dist=spst.lognorm(s=0.25, scale=7.0 / voxel), nbins=5, seed=0)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    extra = {"realised_solid": float(1 - im.mean())}
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)
print(json.dumps({"kind": kind, "seconds": dt, "cpu_seconds": cpu, "peak_rss_mib": rss, **extra}))
"""


def run_case(kind: str, size: int, voxel: float, rho: float) -> dict:
    out = subprocess.run([sys.executable, "-c", CASE, kind, str(size), str(voxel), str(rho)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
        return {"kind": kind, "error": f"exit {out.returncode} {last}".strip()}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--voxel", type=float, default=0.5, help="voxel edge in µm (0.5 → a 128 µm cube)")
    ap.add_argument("--densities", default="2.3,3.6")
    ap.add_argument("--peer", choices=("first", "all", "none"), default="first",
                    help="run the porespy peer for the first density only (it takes minutes), all, or none")
    args = ap.parse_args()
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(f"{args.size}³ voxels at {args.voxel} µm ({args.size * args.voxel:g} µm cube), NCM622 96:2:2, bimodal 14/3 µm 8:2")
    for i, rho in enumerate(float(r) for r in args.densities.split(",")):
        ours = run_case("twinlab", args.size, args.voxel, rho)
        with_peer = args.peer == "all" or (args.peer == "first" and i == 0)
        peer = run_case("porespy", args.size, args.voxel, rho) if with_peer else {"kind": "porespy", "skipped": True}
        print(f"ρ = {rho} g/cm³")
        print(f"  twinlab make_cathode : {json.dumps(ours)}")
        print(f"  porespy polydisperse_spheres (peer): {json.dumps(peer)}")
        if "seconds" in ours and "seconds" in peer:
            print(f"  time ratio twinlab/peer = {ours['seconds'] / peer['seconds']:.2f} (wall), "
                  f"{ours['cpu_seconds'] / peer['cpu_seconds']:.2f} (CPU), "
                  f"RSS ratio = {ours['peak_rss_mib'] / peer['peak_rss_mib']:.2f}")
    print(f"uptime: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    t = time.time()
    main()
    print(f"total wall {time.time() - t:.1f} s")

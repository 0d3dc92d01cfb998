"""Benchmark: twinlab tortuosity vs porespy ``tortuosity_fd`` and TauFactor (CPU), same run.

    .venv/bin/python tests/benchmarks/bench_transport.py [--skip-large] [--only blobs,berea]

Structures: a 200³ porespy ``blobs`` volume at ε = 0.4 (seed 7) and the bundled Berea sample
(200³, True = pore); Dirichlet faces normal to axis 0. Every solver runs in its own subprocess,
so the peak RSS reported is that solver's (baseline = the process after imports and loading the
volume). TauFactor runs at its default criterion (1e-2) and at 1e-4; porespy at ftol = 1e-4;
twinlab at rtol = 1e-4 (max − min flux over all planes ≤ 1e-4), the median of three runs (the
peers, at 30–110 s a run, once). Then twinlab alone on 256³ and
512³ blobs volumes (s, B/voxel). TauFactor needs torch (CPU wheel) + taufactor in the venv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))


def load_volume(name: str) -> np.ndarray:
    if name == "berea":
        return np.load(ROOT / "datasets" / "berea" / "berea_100_to_300.npz")["im"].astype(bool)
    import porespy as ps

    n = int(name.removeprefix("blobs"))
    return ps.generators.blobs([n, n, n], porosity=0.4, blobiness=1, seed=7).astype(bool)


def worker(solver: str, structure: str) -> dict:
    from _measure import measure

    im = load_volume(structure)
    out: dict = {"solver": solver, "structure": structure, "shape": list(im.shape), "porosity": float(im.mean())}
    if solver == "twinlab":
        from twinlab.analyses.transport import compute_tortuosity

        compute_tortuosity(im[:40, :40, :40], axis=0)  # numba compile/cache load (incl. K-cycle kernels) outside the timing
        runs = []
        for _ in range(3):  # this machine's timings scatter by ±30 %: the median of three runs
            with measure() as m:
                r = compute_tortuosity(im, axis=0, rtol=1e-4)
            runs.append(m)
        m = sorted(runs, key=lambda run: run.seconds)[1]
        out.update(runs_seconds=[round(run.seconds, 3) for run in runs])
        out.update(tau2=r.tortuosity_factor, tau2_percolating=r.tortuosity_factor_percolating,
                   iterations=r.iterations, flux_error=r.flux_error, solver_bytes_per_voxel=r.solver_bytes_per_voxel)
    elif solver == "porespy":
        import logging

        import porespy as ps

        logging.getLogger("porespy").setLevel(logging.ERROR)
        with measure() as m:
            r = ps.simulations.tortuosity_fd(im, axis=0, ftol=1e-4)
        out.update(tau2=float(r.tortuosity), converged=bool(r.converged))
    elif solver.startswith("taufactor"):
        import taufactor as tau
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        crit = float(solver.split("@")[1])
        img = im.astype(np.uint8)
        with measure() as m:
            s = tau.Solver(img, device="cpu")
            t = s.solve(verbose=False, conv_crit=crit, iter_limit=100000)
        out.update(tau2=float(np.asarray(t).reshape(-1)[0]), iterations=int(s.iter), criterion=crit)
    else:
        raise SystemExit(f"unknown solver {solver}")
    out.update(seconds=m.seconds, peak_rss_gib=m.peak_rss_gib, added_rss_gib=m.added_rss_gib,
               bytes_per_voxel_added=(m.peak_rss_bytes - m.baseline_rss_bytes) / im.size)
    return out


def run(solver: str, structure: str, timeout: float = 3600) -> dict:
    cmd = [sys.executable, __file__, "--worker", solver, structure]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            return json.loads(line)
    return {"solver": solver, "structure": structure, "error": (proc.stderr or proc.stdout)[-800:]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=2)
    parser.add_argument("--only", default="blobs200,berea")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    from _measure import machine

    print(f"machine: {machine()}")
    print(f"uptime at start: {os.popen('uptime').read().strip()}")
    try:
        import taufactor  # noqa: F401
        peers = ["porespy", "taufactor@1e-2", "taufactor@1e-4"]
    except ImportError:
        print("taufactor not installed: skipping it (.venv/bin/pip install <torch cpu wheel> taufactor)")
        peers = ["porespy"]
    if args.skip_peers:
        peers = []
    rows = []
    for structure in args.only.split(","):
        results = {s: run(s, structure) for s in ["twinlab", *peers]}
        ours = results["twinlab"]
        for name, r in results.items():
            if "error" in r:
                print(f"{structure:9s} {name:15s} FAILED: {r['error']}")
                continue
            ratio = r["seconds"] / ours["seconds"] if "seconds" in ours else float("nan")
            dtau = r["tau2"] / ours["tau2"] - 1 if "tau2" in ours else float("nan")
            print(f"{structure:9s} {name:15s} tau2={r['tau2']:.4f} (vs twinlab {dtau:+.2%})  "
                  f"{r['seconds']:8.2f} s  ({ratio:6.1f}x twinlab)  peak RSS {r['peak_rss_gib']:.2f} GiB "
                  f"(+{r['bytes_per_voxel_added']:.0f} B/voxel)"
                  + (f"  iterations {r['iterations']}" if "iterations" in r else ""))
            rows.append(r)
        print(f"           twinlab detail: {json.dumps(ours)}")
        print(f"uptime: {os.popen('uptime').read().strip()}", flush=True)
    if not args.skip_large:
        for structure in ("blobs256", "blobs512"):
            r = run("twinlab", structure)
            if "error" in r:
                print(f"{structure:9s} twinlab FAILED: {r['error']}")
                continue
            print(f"{structure:9s} twinlab tau2={r['tau2']:.4f}  {r['seconds']:.2f} s  iterations {r['iterations']}  "
                  f"peak RSS {r['peak_rss_gib']:.2f} GiB (+{r['bytes_per_voxel_added']:.1f} B/voxel measured, "
                  f"{r['solver_bytes_per_voxel']:.1f} B/voxel in solver arrays)", flush=True)
            rows.append(r)
    print(f"uptime at end: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()

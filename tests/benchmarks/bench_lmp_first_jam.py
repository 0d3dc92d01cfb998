"""Where the first DEM stage jams on the generated LMP anode, by clump fit and voxel size (issue 16).

Run (seconds per stage; no stress solve):

    .venv/bin/python tests/benchmarks/bench_lmp_first_jam.py [--width 480] [--seed 2] [--spheres 1,2,4,8,16,32]

One DEM stage (1 MPa jam pressure, the squeeze stop off) on the uncalendered anode at 6 and 4 µm voxels,
from clumps of N spheres per particle fitted to the voxels (``fit_clumps(max_spheres=N)``) and from the
generator's true spheres (``DemPacking.of_spheres``); prints the coating thickness where the roll
stopped and how many bodies lie within 1 µm of the roll. A converged fit gives the same jam at both
voxel sizes and stops moving as spheres are added.

Measured (stop 25, 480 µm, seed 2; coating µm, of 84): 71.75 / 70.25 / 71.25 / 73.0 / 76.5 / 78.75 at 6 µm
and 75.75 / 74.75 / 74.5 / 74.5 / 76.0 / 78.5 at 4 µm with 1 / 2 / 4 / 8 / 16 / 32 spheres; the true spheres
81.75 on both grids (62 of 121 within 1 µm of the roll: the generator's packing is walled along the
thickness). With ``--free-top`` (stop 26; ``make_lmp_anode(free_top=True)``, a 120–128 µm coating at the same
loading) the true spheres jam at 87.25 / 88.25, 89.50 / 89.00, 88.75 / 88.00 µm (seeds 1 / 2 / 3, 6 / 4 µm), 1–2
bodies within 1 µm of the roll. tests/benchmarks/MEASUREMENTS.md has the series.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=float, default=480.0, help="in-plane extent in µm")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--spheres", default="1,8,32", help="spheres per particle of the voxel fits")
    ap.add_argument("--free-top", action="store_true", help="the generator's free (cast) top surface")
    args = ap.parse_args()
    from twinlab.analyses.mechanics import _rearrange as R
    from twinlab.datasets.generators import make_lmp_anode

    for vs in (6.0, 4.0):
        g = make_lmp_anode(domain_um=(args.width, 95, args.width), voxel_size_um=vs, collector_um=12, seed=args.seed,
                           free_top=args.free_top)
        lab = np.moveaxis(g.phases, 1, 0)  # thickness axis first, collector at index 0
        inst = np.moveaxis(g.particles, 1, 0).astype(np.int32)
        coll = lab == 3  # DEFAULT_PHASES collector
        n_coll = int(coll.any(axis=(1, 2)).sum())
        m0 = int(np.flatnonzero(((lab != 0) & ~coll).any(axis=(1, 2))).max()) + 1 - n_coll
        packs = {f"fit, {n} spheres": R.DemPacking(*R.fit_clumps(inst, z_bottom=n_coll, z_top=n_coll + m0, max_spheres=n))
                 for n in (int(v) for v in args.spheres.split(","))}
        centres, radii = g.particle_spheres()
        packs["true spheres"] = R.DemPacking.of_spheres(inst, centres[:, [1, 0, 2]].T / vs, radii / vs,
                                                        z_bottom=n_coll)
        # lithium: E 4.9 GPa, ν 0.36, density 0.534 g/cm³
        mats = {v: R.DemMaterial(4.9e3, 0.36, R.DEFAULT_FRICTION, 0.534) for v in np.unique(lab[inst > 0]).tolist()}
        for name, p in packs.items():
            top = np.full(p.ids.size, np.inf)
            np.minimum.at(top, p.body, (n_coll + m0 - p.centre[0] - p.radius) * vs)
            mv = R.rearrange(inst, (lab != 0) & ~coll, n_coll=n_coll, m_cur=m0, m_target=int(m0 * 0.7),
                             h=(vs, vs, vs), materials=mats, phase_of=lab, jam_pressure_mpa=1.0, collision_tol=1e9,
                             packing=p)
            print(f"seed {args.seed}, {vs} µm voxels, {name}: jam at a coating of {mv.wall_um - n_coll * vs:.2f} µm "
                  f"(of {m0 * vs:.0f}; {mv.stop['by']}), {int((top < 1.0).sum())} of {p.ids.size} bodies within "
                  f"1 µm of the roll", flush=True)


if __name__ == "__main__":
    main()

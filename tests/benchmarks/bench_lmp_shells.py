"""Which criterion breaks the Li2CO3 shells of a calendered LMP anode (issue 16)?

Run (minutes; use the lock for timings):

    flock /tmp/twinlab-bench.lock .venv/bin/python tests/benchmarks/bench_lmp_shells.py [--vs 6] \
        [--ratios 0.06,0.12] [--rearrange none]

Wraps the calender's shell-fracture step and prints, per increment, for the patches still intact:
how many exceed their (Weibull) strength by membrane stress (film strain) and by contact traction,
the membrane-strain percentiles against the film's failure strain, the largest contact traction,
split into contact patches (a face on another particle, the collector or the roll) and free-surface
patches, and where (layer from the collector) the newly broken ones lie. The membrane strain is the
film's own (``ContactState.film_strain``: the increments its patch took as a film).

Measured (stop 23, 160 µm, DEM, every layer k/42): judged by the voxel's total strain instead, 200–380
patches per increment after the first were over their strength before the increment's load (voxels
the remap had brought to the surface with the lithium's interior plastic strain): 35–60 % of each
increment's breaks, once per increment. The 6 vs 4 µm curves (``bench_calender_physics.py --part lmp``)
are in README "Known limits".
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vs", type=float, default=6.0, help="voxel size in µm")
    ap.add_argument("--ratios", default="0.06,0.12")
    ap.add_argument("--rearrange", default="none")
    ap.add_argument("--width", type=float, default=160.0)
    args = ap.parse_args()
    from twinlab.analyses.mechanics import _contacts as C
    from twinlab.datasets.generators import make_lmp_anode

    cal = importlib.import_module("twinlab.analyses.mechanics.calender")  # the module, not the function
    orig = C.shell_fracture

    def logged(strain_total, stress, inst, shelled, broken, *, e_shell_mpa, nu_shell, strength_mpa):
        cand = shelled & ~broken
        idx, em, mem, tr = C.film_loads(strain_total, stress, inst, cand, e_shell_mpa=e_shell_mpa, nu_shell=nu_shell)
        st = np.broadcast_to(np.asarray(strength_mpa, float), cand.shape)[idx]
        fail = st * (1 - nu_shell) / e_shell_mpa
        print(f"  intact before: {cand.sum()} of {shelled.sum()} patches; over strength by membrane stress "
              f"{(mem > st).sum()}, by contact traction {(tr > st).sum()}; failure strain 5/50/95 % "
              f"{np.percentile(fail, [5, 50, 95]).round(4).tolist()}; largest traction {tr.max():.1f} MPa "
              f"(weakest patch {st.min():.0f} MPa)", flush=True)
        at_contact = C.foreign_faces(inst, None, top_is_roll=True)[0][idx]
        for name, sel in (("contact/roll patches", at_contact), ("free-surface patches", ~at_contact)):
            if sel.any():
                print(f"    {name}: {sel.sum()}, membrane strain 10/50/90 % "
                      f"{np.percentile(em[sel], [10, 50, 90]).round(4).tolist()}, broken by it "
                      f"{(mem[sel] > st[sel]).mean():.2f}", flush=True)
        out = orig(strain_total, stress, inst, shelled, broken, e_shell_mpa=e_shell_mpa, nu_shell=nu_shell,
                   strength_mpa=strength_mpa)
        new = out & ~broken
        if new.any():
            print(f"    newly broken per layer from the bottom: {np.bincount(np.nonzero(new)[0]).tolist()}", flush=True)
        return out

    cal.shell_fracture = logged
    ratios = tuple(float(r) for r in args.ratios.split(","))
    g = make_lmp_anode(domain_um=(args.width, 11 + 84, args.width), voxel_size_um=args.vs, collector_um=12, seed=3)
    print(f"LMP anode {g.phases.shape} at {args.vs} µm, contacts {g.contacts}", flush=True)
    s = cal.calender(g.phases, particles=g.particles, ratios=ratios, steps=len(ratios), voxel_size_um=args.vs,
                     thickness_axis="y", collector_side="low", workers=2, rearrange=args.rearrange)
    for st in s.steps:
        print(f"ratio {st.ratio:.3f}: roll pressure {st.roll_pressure_mpa:.2f} MPa, shell intact "
              f"{st.shell_intact_fraction:.3f}", flush=True)


if __name__ == "__main__":
    main()

"""Pore space of a calendered NCM622 cathode (issue 16): does the pore size fall with density, and why not?

Run (minutes at 1 µm; use the lock for timings):

    flock /tmp/twinlab-bench.lock .venv/bin/python tests/benchmarks/bench_pore_space.py [--vs 1] [--no-calender] \
        [--collisions push] [--seed 1] [--window 48] [--contact-law passes] [--tol 5e-5] [--no-references] \
        [--save members.npz]
    .venv/bin/python tests/benchmarks/bench_pore_space.py --load members.npz --vs 1   # re-analyse saved members

The calender members are a centred ``--window`` (voxels, default 32) of the ``--width`` µm cathode (a
window as wide as the cathode takes all of it). At 1 µm voxels a 32 µm window keeps only 6–25 internal
pores at 3.4–3.8 g/cm³, so its mean pore radius and coordination are statistics of a handful of pores;
the whole 48 µm cathode keeps 30–70.

Members at 2.3 (uncalendered), 2.6, 3.0, 3.4, 3.8 g/cm³ of one generated cathode, made three ways:

* ``calender-<rule>``: the mechanics solve + volume-conserving remap (what users get), with the
  remap's collision rule ``push`` (default) or ``nearest`` (before issue 16's fix);
* ``affine-<rule>``: the remap alone, fed the affine compression of every coating voxel toward the
  collector (no mechanics; isolates what the remap does with colliding voxels);
* ``generated``: a fresh packing of the generator at that density (flattened particles, no remap):
  a reference in which the pores of a denser electrode are smaller by construction.

Per member: porosity; the pore network (SNOW, :mod:`twinlab.analyses.network`) — number of internal
pores, mean coordination, number-mean equivalent radius and volume-weighted mean equivalent radius
(Σ V r / Σ V), number-mean and volume-mean inscribed radius (``NetworkMetrics``), mean throat radius;
and the peer porespy ``local_thickness`` (largest inscribed sphere through each pore voxel): its mean
radius over pore voxels (a volume-weighted pore size) and its median; ``unres``, the network's
``unresolved_pore_fraction`` (pore volume thinner than the watershed's smallest pore, 2 voxels to solid):
where it passes ~0.5 the pores that thin out merge into their neighbours, so the pore count falls faster
than the pore volume and the number-mean radii stop falling (issue 16 at 1 µm voxels).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DENSITIES = (2.6, 3.0, 3.4, 3.8)


def pore_stats(labels, vs, t=1):
    """Porosity of the coating, network and porespy local-thickness statistics of one member."""
    import porespy as ps
    from twinlab.analyses.network import compute_network_metrics, extract_network

    pore = labels == 0
    net = extract_network(labels, voxel_size_um=vs, thickness_axis="y")
    m = compute_network_metrics(net)
    a = net.arrays
    inner = a["pore.internal"]
    r = a["pore.equivalent_diameter"][inner] / 2
    rt = a["throat.inscribed_diameter"] / 2
    v = a["pore.region_volume"][inner]
    lt = ps.filters.local_thickness(pore, method="dt") * vs  # inscribed-sphere *radius* in voxels → µm
    rl = lt[pore]
    return {
        "porosity": float(pore.mean()),
        "pores": int(inner.sum()),
        "coord": m.mean_coordination,
        "r_num": float(r.mean()),
        "r_vol": float((v * r).sum() / v.sum()),
        "r_ins": m.mean_inscribed_radius_um,
        "r_ins_v": m.volume_mean_inscribed_radius_um,
        "t_ins": float(rt.mean()),
        "lt_mean": float(rl.mean()),
        "lt_median": float(np.median(rl)),
        "unres": m.unresolved_pore_fraction,
    }


def coating(labels, n_coll):
    """The coating part of a (z, y, x) member: the collector layers removed (pores start at the coating)."""
    return labels[:, n_coll:, :]


def centred_window(labels, window):
    """The calender's centred lateral ``window``-voxel crop of a (z, y, x) member (y: thickness), so the
    uncalendered member of a calender series has the same window as its calendered members."""
    index = [slice(None)] * 3
    for ax in (0, 2):
        n = labels.shape[ax]
        if n > window:
            start = (n - window) // 2
            index[ax] = slice(start, start + window)
    return labels[tuple(index)]


def affine_members(gen, n_coll, densities, rho0, collisions):
    """Remap alone: the coating compressed affinely toward the collector to each density."""
    from twinlab.analyses.mechanics._remap import remap_affine

    lab = np.ascontiguousarray(np.moveaxis(gen.phases, 1, 0))  # thickness first
    h0 = lab.shape[0] - n_coll
    out = {}
    for d in densities:
        new, _ = remap_affine(lab, n_coll, int(round(h0 * rho0 / d)), collisions=collisions)
        out[d] = np.moveaxis(new, 0, 1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vs", type=float, default=1.0, help="voxel size in µm")
    ap.add_argument("--width", type=float, default=48.0, help="in-plane extent in µm")
    ap.add_argument("--no-calender", action="store_true", help="skip the mechanics members")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--window", type=int, default=32, help="lateral window of the calender members (voxels)")
    ap.add_argument("--seed", type=int, default=1, help="generator seed of the cathode")
    ap.add_argument("--collisions", default="push,nearest",
                    help="remap collision rules to compare (mechanics/_remap.py): push, nearest or both")
    ap.add_argument("--contact-law", default="auto", help="CalenderOptions.contact_law: auto (default), plane or passes")
    ap.add_argument("--tol", type=float, default=None, help="the calender's Newton/CG tolerance (default: its own)")
    ap.add_argument("--preconditioner", default=None, help="CalenderOptions.preconditioner: multigrid (default) or fft")
    ap.add_argument("--save", type=Path, default=None, help="write the calender members to this .npz")
    ap.add_argument("--load", type=Path, default=None,
                    help="analyse the calender members a --save wrote (at the same --vs) instead of making any")
    ap.add_argument("--no-references", action="store_true", help="skip the affine and generated members")
    args = ap.parse_args()
    if args.load is not None:
        saved = np.load(args.load)
        members = {"calender": {float(k.split("@")[1]): saved[k] for k in saved.files if "@" in k}}
        members["calender"][2.3] = saved["base"]
        print_table(members, args.vs)
        return
    from twinlab.datasets.generators import make_cathode
    from twinlab.design import ncm622_cathode

    vs, w = args.vs, args.width
    design = ncm622_cathode()
    coll = 4
    n_coll = int(round(coll / vs))
    gen = make_cathode(domain_um=(w, coll + design.thickness_um, w), voxel_size_um=vs, collector_um=coll,
                       seed=args.seed)
    rho0 = 2.3
    modes = args.collisions.split(",")
    members = {} if args.no_references else {"generated": {}}
    for mode in () if args.no_references else modes:
        members[f"affine-{mode}"] = {}
        t = time.perf_counter()
        for d, lab in affine_members(gen, n_coll, DENSITIES, rho0, mode).items():
            members[f"affine-{mode}"][d] = coating(lab, n_coll)
        print(f"affine remap members ({mode}): {time.perf_counter() - t:.1f} s", flush=True)
    for d in () if args.no_references else DENSITIES:
        dd = ncm622_cathode(d)
        g = make_cathode(density_g_cm3=d, domain_um=(w, coll + dd.thickness_um, w), voxel_size_um=vs,
                         collector_um=coll, seed=args.seed)
        members["generated"][d] = coating(g.phases, n_coll)
    for mode in modes if not args.no_calender else ():
        import functools
        import importlib

        from twinlab.analyses.mechanics import _rearrange
        from twinlab.analyses.mechanics._remap import remap_voxels

        cal_mod = importlib.import_module("twinlab.analyses.mechanics.calender")  # the module, not the function

        # the remap's collision rule is not a user option: patched here to compare the two rules
        cal_mod.remap_voxels = _rearrange.remap_voxels = functools.partial(remap_voxels, collisions=mode)
        members[f"calender-{mode}"] = {}
        t = time.perf_counter()

        def progress(done, total, message, t=t):  # a run at 0.5 µm takes an hour or more: say how far it is
            print(f"  [{time.perf_counter() - t:6.0f} s] increment {done}/{total}, {message}", flush=True)

        s = cal_mod.calender(gen.phases, particles=gen.particles, densities=DENSITIES, steps=args.steps,
                             design=design, voxel_size_um=vs, thickness_axis="y", collector_side="low", workers=2,
                             window=args.window, maxiter=20000, contact_law=args.contact_law, progress=progress,
                             **({} if args.tol is None else {"tol": args.tol}),
                             **({} if args.preconditioner is None else {"preconditioner": args.preconditioner}))
        print(f"calender members ({mode}): {time.perf_counter() - t:.0f} s", flush=True)
        for st, state in zip(s.steps, s.states):
            members[f"calender-{mode}"][round(st.density_g_cm3, 1)] = coating(np.asarray(state.labels), n_coll)
            if st.contact_voxels_pct is not None:  # the cracked plane: its crackable volume with/without contacts
                print(f"  {st.density_g_cm3:.2f} g/cm³ roll {st.roll_pressure_mpa:.1f} MPa, crackable >100/>150 "
                      f"{st.crackable_volume_pct['100']:.1f}/{st.crackable_volume_pct['150']:.1f} %, contact voxels "
                      f"{st.contact_voxels_pct:.1f} % of the active, without them {st.crackable_cores_pct['100']:.1f}/"
                      f"{st.crackable_cores_pct['150']:.1f} %", flush=True)
    base = coating(gen.phases, n_coll)
    if args.save is not None:
        np.savez_compressed(args.save, **{f"{k}@{d}": v for k, ms in members.items() if k.startswith("calender")
                                          for d, v in ms.items()}, base=centred_window(base, args.window))
    for k in members:  # the calender members are a window of the cathode: so is their 2.3 g/cm³ member
        members[k][rho0] = centred_window(base, args.window) if k.startswith("calender") else base
    print_table(members, vs)


def print_table(members, vs):
    from twinlab.errors import InputError

    print("member     density porosity  pores coord  r_num  r_vol  r_ins r_ins_v t_ins  lt_mean lt_median (µm) unres")
    for k, ms in members.items():
        for d in sorted(ms):
            try:
                s = pore_stats(ms[d], vs)
            except InputError as exc:  # a dense member at coarse voxels can have no pore left: say so, go on
                print(f"{k:10s} {d:5.2f}  {(ms[d] == 0).mean():.3f}  no network: {exc}", flush=True)
                continue
            print(f"{k:10s} {d:5.2f}  {s['porosity']:.3f}  {s['pores']:5d}  {s['coord']:5.3f}  {s['r_num']:5.2f}  "
                  f"{s['r_vol']:5.2f}  {s['r_ins']:5.3f}  {s['r_ins_v']:5.3f}  {s['t_ins']:5.2f}  {s['lt_mean']:5.2f}  "
                  f"{s['lt_median']:5.2f}  {s['unres']:.3f}", flush=True)


if __name__ == "__main__":
    main()

"""Calendering physics of issue 16: every must-show number in one run.

Run (heavy: minutes to an hour on 2 shared cores; use the lock):

    flock /tmp/twinlab-bench.lock .venv/bin/python tests/benchmarks/bench_calender_physics.py \
        [--quick] [--part hertz,cathode,lmp] [--rearrange dem,none] [--runs 16x4,20x4] [--seeds 1,2,3]

Prints
------
* Hertz: two elastic spheres (R = 16 and 20 voxels) pressed through the contact interphase —
  contact radius and peak pressure against Hertz theory, and the force left when pulled apart.
* Pressure–density: a generated NCM622 cathode (96:2:2, 2.3 g/cm³ uncalendered, 1 µm voxels)
  calendered to 2.6 … 3.8 g/cm³ — roll pressure per density (compare: uniaxial/roll compaction
  of NCM cathodes to 3.0–3.5 g/cm³ takes of the order of 10²–10³ MPa: Meyer et al., J. Mater.
  Process. Technol. 249 (2017) 172 — line loads 250–2000 N/mm over nip lengths of a few mm;
  Schreiner et al., Energy Technol. 7 (2019) 1900840; Sangrós Giménez et al., Adv. Powder
  Technol. 30 (2019); Primo et al., J. Power Sources 488 (2021) 229361; Guichard et al.,
  arXiv:2601.02879 (2026): rearrangement, then fracture, then crushing), crackable volume > 100
  and > 150 MPa at two increment counts and two lateral windows — by voxel, and by the particles' mean
  stress (``crackable_particles_pct``; stop 24 on seed 1 at 3.0 g/cm³: 87 % of the voxels over 100 MPa lie
  in particles whose mean stress is below it at 2 µm voxels, 73 % at 1 µm), mean pore radius and mean pore
  coordination of the pore network per density. With several ``--seeds`` (generated cathodes) and
  ``--runs`` (WINDOWxSTEPS), the crackable volume of each run against the first, seed by seed, and the
  seed-to-seed spread at each run: the noise floor that a window (or increment-count) comparison must
  beat to show a bias. WINDOW is in voxels (2 µm with ``--quick``: 16x4 is a 32 µm window, 4 steps; the
  compaction cap splits the steps into increments of at most 5.4 % of the thickness — 24x4 runs 11
  increments of 1–2 layers to 3.8 g/cm³, 24x8 14 of mostly one layer, 24x16 17 of exactly one layer, the
  finest the remap can take: compare all three, 4 vs 8 alone hides most of the dependence, issue 16);
  every window is a centred crop of one generated cathode ``--width`` µm wide (default 48), so windows
  of ≥ 60 µm need e.g. ``--width 72 --runs 32x4,24x4``. ``--contact-kn GPa/µm`` replaces the NCM contact
  law's normal stiffness per contact area (materials.NCM_contact) for a sensitivity run; ``--voxel µm``
  calenders the same cathode, generated at 1 µm, on bins of that size (``voxel_um``; windows then count
  those bins). For the voxel-size dependence of the roll pressure (issue 16, stop 27): ``--modes``
  replaces the generator's particle size modes (``MEAN:LOG_SIGMA:WEIGHT,…``, e.g. ``14:0.25:1`` without
  the 3 µm mode), ``--no-cbd`` turns the CBD into pore after generation (the design, and so the
  density targets, unchanged) and ``--neck-contacts`` sets the calender option ``neck_contacts``;
  ``--contact-law`` the option ``contact_law`` (default "auto": the cracked-plane interphase on the cathode since
  stop 30; ``passes`` the isotropic interphase solved by passes) and ``--tol`` the solver tolerance (the answers'
  dependence on the solver path).
* LMP anode 0–40 %: shell-intact fraction, activation (collector-connected lithium) per ratio at
  two or more voxel sizes (``--lmp-voxels``; the ratios snapped to distinct whole layers at each),
  the DEM stages (where and why the roll stopped) and the largest difference between voxel sizes
  at the coarsest one's ratios (compare: Kang et al., EES Batteries (2026), DOI
  10.1039/d5eb00195a — LMP electrodes calendered at 0–40 %: Li2CO3 fracture and electrical
  connection grow with the ratio). ``--lmp-fit spheres`` starts the DEM from the generator's true spheres
  (the same packing at any voxel size) instead of clumps fitted to the voxels. ``--lmp-width`` sets the window,
  ``--lmp-option NAME=VALUE`` a
  calender option for diagnosis (e.g. ``dem_collision_tol=1``). ``bench_lmp_shells.py`` shows
  which criterion breaks the shells.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DENSITIES = (2.6, 3.0, 3.4, 3.8)
from test_contacts import PUBLISHED_MPA  # noqa: E402  published calendering pressures (MPa), with sources


def _verdicts(rows):
    """PASS/FAIL of the cathode must-shows on one series (rows: density, pressure, c100, c150, radius, coord,
    the particle measure's p100, …, the volume-mean radius)."""
    p = [r[1] for r in rows]
    c100 = [r[2] for r in rows]
    rad = [r[4] for r in rows if r[4] is not None]
    rad_v = [r[10] for r in rows if r[10] is not None]
    coo = [r[5] for r in rows if r[5] is not None]
    d2 = np.diff(p, 2)
    out = {
        "pressure rises monotonically": all(b > a for a, b in zip(p, p[1:])),
        "pressure steepens when jammed (convex)": bool(len(d2) and (d2 > 0).all()),
        "pressure within published bands": all(PUBLISHED_MPA[round(r[0], 1)][0] <= r[1] <= PUBLISHED_MPA[round(r[0], 1)][1]
                                               for r in rows if round(r[0], 1) in PUBLISHED_MPA),
        "crackable >100 MPa a minority at ≤ 3.0 g/cm³": all(r[2] < 50 for r in rows if r[0] <= 3.05),
        "crackable grows with density": all(b >= a for a, b in zip(c100, c100[1:])),
        "crackable by particle mean stress >100 MPa a minority at ≤ 3.0 g/cm³": all(r[6] < 50 for r in rows
                                                                                   if r[0] <= 3.05),
        "crackable by particle mean stress grows with density": all(b[6] >= a[6] for a, b in zip(rows, rows[1:])),
        "pore radius (network, inscribed) falls": len(rad) > 1 and all(b < a for a, b in zip(rad, rad[1:])),
        "pore radius (network, inscribed, volume mean) falls": len(rad_v) > 1 and all(
            b < a for a, b in zip(rad_v, rad_v[1:])),
        "pore coordination falls": len(coo) > 1 and all(b < a for a, b in zip(coo, coo[1:])),
    }
    for k, v in out.items():
        if k.startswith("pore") and not rad:  # --no-pores
            continue
        print(f"    {'PASS' if v else 'FAIL'}: {k}", flush=True)


def hertz():
    import test_contacts as T

    for R in (16, 20):
        t = time.perf_counter()
        res = T._press(R, 0.64 / R, pull=0.05, passes=20)
        f, a, ah, p, ph = T._hertz_numbers(R, res)
        s2 = res["pull_sol"]
        pull = float(s2.stress[0].mean()) * s2.stress.shape[2] * s2.stress.shape[3]
        print(f"hertz R={R}: force {f:.4g} MPa·vox², contact radius {a:.3f} vs Hertz {ah:.3f} ({a / ah - 1:+.1%}), "
              f"peak pressure {p:.4g} vs {ph:.4g} MPa ({p / ph - 1:+.1%}); pulled apart: force {pull:.2e} "
              f"({abs(pull) / f:.1e} of the push), {res['pull_info']['open']}/{res['pull_info']['interphase']} "
              f"interphase voxels open; {time.perf_counter() - t:.0f} s", flush=True)


def cathode(quick: bool, runs=None, rearrange="none", seeds=(1,), pores=True, width=48.0, contact_kn=None,
            voxel=None, modes=None, cbd=True, neck_contacts=False, contact_law=None, tol=None):
    """The cathode series per seed and run (WINDOWxSTEPS: lateral window in voxels × increments), on one
    generated cathode of ``width`` µm in-plane per seed (every window a centred crop of it, so the windows
    of one seed share their particles); ``contact_kn`` (GPa/µm) replaces the NCM contact law's normal stiffness
    per contact area; ``voxel`` (µm): the cathode generated at 1 µm, calendered on bins of that size;
    ``modes`` the generator's size modes (default NCM_MODES); ``cbd=False``: the CBD made pore;
    ``neck_contacts``, ``contact_law``, ``tol``: the calender options (None: their defaults)."""
    from twinlab.analyses.mechanics import calender
    from twinlab.analyses.network import compute_network_metrics, extract_network
    from twinlab.datasets.generators import NCM_MODES, make_cathode
    from twinlab.design import ncm622_cathode
    from twinlab.errors import InputError
    from twinlab.materials import MATERIALS
    from twinlab.phases import DEFAULT_PHASES

    contact_materials = None if contact_kn is None else {
        "active": MATERIALS["NCM_contact"].with_(normal_stiffness_gpa_um=contact_kn)}
    design = ncm622_cathode()
    vs = 2.0 if (quick and voxel is None) else 1.0
    mech = voxel or vs  # the mechanics' voxel edge (µm)
    runs = runs or ([(32, 4), (32, 8), (48, 4)] if not quick else [(16, 4), (16, 8), (24, 4)])
    crack = {}  # (window, steps) → {seed: [(c100, c150) per density]}
    for seed in seeds:
        gen = make_cathode(domain_um=(width, 4 + design.thickness_um, width), voxel_size_um=vs, collector_um=4,
                           seed=seed, modes=modes or NCM_MODES)
        phases = gen.phases
        if not cbd:
            phases = np.where(phases == DEFAULT_PHASES.value("cbd"), DEFAULT_PHASES.value("pore"), phases)
        print("cathode:", gen.phases.shape, f"{vs} µm voxels, seed {seed}, {'' if cbd else 'no CBD, '}contacts",
              gen.contacts, flush=True)
        for window, steps in runs:
            t = time.perf_counter()
            s = calender(phases, particles=gen.particles, densities=DENSITIES, steps=steps, design=design,
                         voxel_size_um=vs, thickness_axis="y", collector_side="low", workers=2, window=window,
                         maxiter=20000, rearrange=rearrange, contact_materials=contact_materials,
                         voxel_um=None if mech == vs else mech, neck_contacts=neck_contacts,
                         **({} if contact_law is None else {"contact_law": contact_law}),
                         **({} if tol is None else {"tol": tol}))
            kn = contact_kn or MATERIALS["NCM_contact"].normal_stiffness_gpa_um
            print(f"rearrange={rearrange} contact law {s.settings['contact_law']} tol {s.settings['tol']} k_n {kn} GPa/µm, {mech} µm voxels, "
                  f"seed {seed} window {window} ({window * mech:.0f} µm) steps {steps} "
                  f"({s.settings['increments']} increments, {time.perf_counter() - t:.0f} s):", flush=True)
            for d in s.settings.get("dem_stages", []):
                print(f"    DEM: {d['from_layers']} → {d['stopped_layers']} layers (target {d['target_layers']}), "
                      f"{d['pressure_mpa']:.2f} MPa, {d['spheres']} spheres, max overlap {d['max_overlap']:.3f} r, "
                      f"voxel collisions {d['collisions']:.4f}; stopped by {d['stop']}", flush=True)
            rows = []
            for st, state in zip(s.steps, s.states):
                rad = rad_v = coo = None
                pores_txt = ""
                if pores:
                    try:
                        net = extract_network(state.labels, voxel_size_um=mech, thickness_axis="y")
                        m = compute_network_metrics(net)
                        rad, coo = m.mean_inscribed_radius_um, m.mean_coordination
                        rad_v = m.volume_mean_inscribed_radius_um
                        pores_txt = (f", {m.num_internal_pores} pores, radius inscribed {rad:.3f} µm (volume mean "
                                     f"{rad_v:.3f} µm, equivalent "
                                     f"{m.mean_equivalent_radius_um:.3f} µm), pore coordination {coo:.2f}")
                    except InputError as e:
                        pores_txt = f", no pore network ({e})"
                cores_txt = "" if st.contact_voxels_pct is None else (  # the cracked plane's contact voxels
                    f", contact voxels {st.contact_voxels_pct:4.1f} % of the active, without them crackable "
                    f">100 {st.crackable_cores_pct['100']:5.1f} % >150 {st.crackable_cores_pct['150']:5.1f} %")
                print(f"  {st.density_g_cm3:.2f} g/cm³ porosity {st.porosity:.3f}: roll pressure "
                      f"{st.roll_pressure_mpa:7.1f} MPa, active VMS mean {st.von_mises_active_mean_mpa:7.1f} MPa, "
                      f"crackable >100 {st.crackable_volume_pct['100']:5.1f} % "
                      f">150 {st.crackable_volume_pct['150']:5.1f} % (in particles whose mean stress is over: "
                      f"{st.crackable_particles_pct['100']:4.1f} ± {st.crackable_particles_se_pct['100']:3.1f}/"
                      f"{st.crackable_particles_pct['150']:4.1f} ± {st.crackable_particles_se_pct['150']:3.1f} %, "
                      f"± the sampling error of the window's particles){cores_txt}, open contacts "
                      f"{'n/a' if st.contacts_open_fraction is None else f'{st.contacts_open_fraction:.2f}'}"
                      f"{pores_txt}, CG {st.cg_iterations}", flush=True)
                rows.append((st.density_g_cm3, st.roll_pressure_mpa, st.crackable_volume_pct["100"],
                             st.crackable_volume_pct["150"], rad, coo, st.crackable_particles_pct["100"],
                             st.crackable_particles_pct["150"], st.crackable_particles_se_pct["100"],
                             st.crackable_particles_se_pct["150"], rad_v))
            crack.setdefault((window, steps), {})[seed] = [(r[2], r[3], r[6], r[7], r[8], r[9]) for r in rows]
            _verdicts(rows)
    _window_spread(crack)


def _window_spread(crack):
    """Crackable volume between runs of the same series: per density and threshold, the relative difference
    of each other run from the first run (same seeds), and — over seeds — the seed-to-seed spread at one run
    ((max − min)/mean), the noise floor a window comparison has to beat; for the particle measure also the
    root-mean-square over seeds of its sampling error (``crackable_particles_se_pct``, percentage points), the
    part of that noise the window's finite number of particles explains."""
    keys = list(crack)
    if not keys:
        return
    seeds = sorted(set.intersection(*(set(v) for v in crack.values())))
    for i, d in enumerate(DENSITIES):
        for j, thr in enumerate(("100", "150", "100 (particle means)", "150 (particle means)")):
            parts = []
            for k in keys:
                vals = np.array([crack[k][s][i][j] for s in seeds])
                se = (f", sampling error (rms) {np.sqrt(np.mean([crack[k][s][i][j + 2] ** 2 for s in seeds])):4.1f}"
                      if j >= 2 else "")
                if len(seeds) > 1:
                    parts.append(f"{k[0]}x{k[1]}: mean {vals.mean():5.1f} %, seed spread "
                                 f"{(vals.max() - vals.min()) / max(vals.mean(), 1e-9):4.0%}" + se)
            base = np.array([crack[keys[0]][s][i][j] for s in seeds])
            for k in keys[1:]:
                other = np.array([crack[k][s][i][j] for s in seeds])
                rel = np.abs(other - base) / np.maximum(0.5 * (other + base), 1e-9)
                mean_rel = abs(other.mean() - base.mean()) / max(0.5 * (other.mean() + base.mean()), 1e-9)
                parts.append(f"{k[0]}x{k[1]} vs {keys[0][0]}x{keys[0][1]}: same-seed rel. diff "
                             + "/".join(f"{r:.0%}" for r in rel)
                             + (f", of the seed means {mean_rel:.0%}" if len(seeds) > 1 else ""))
            print(f"  {d} g/cm³ >{thr} MPa: " + "; ".join(parts), flush=True)


def lmp(quick: bool, rearrange="none", voxels=None, ratios=None, width=160.0, seed=3, options=None, fit="voxels",
        free_top=False, thicknesses=None):
    """Shell-intact fraction and activation per achieved ratio at each voxel size, then the largest
    difference between voxel sizes: the finer curves interpolated (linearly in the achieved ratio)
    at the coarsest one's achieved ratios — the thickness is a whole number of layers, so the
    achieved ratios differ between voxel sizes. ``thicknesses`` (µm) instead of ``ratios``: the same coating
    thicknesses (roll positions) on every grid, e.g. every 12 µm — the same increments at 6 and 4 µm."""
    from twinlab.analyses.conductive import activation_from_calender, conductive_clusters
    from twinlab.analyses.mechanics import calender
    from twinlab.datasets.generators import make_lmp_anode

    ratios = ratios or (0.05, 0.1, 0.2, 0.3, 0.4)
    curves, thick = {}, {}
    for vs in voxels or ((4.0, 5.0) if not quick else (5.0, 6.0)):
        t = time.perf_counter()
        g = make_lmp_anode(domain_um=(width, 11 + 84, width), voxel_size_um=vs, collector_um=12, seed=seed,
                           free_top=free_top)
        # the thickness is whole layers: keep the ratios that give distinct layer counts at this voxel size
        lab = np.moveaxis(g.phases, 1, 0)
        coll = 3  # DEFAULT_PHASES collector
        n_coll = int((lab == coll).any(axis=(1, 2)).sum())
        m0 = int(np.flatnonzero(((lab != 0) & (lab != coll)).any(axis=(1, 2))).max()) + 1 - n_coll
        layers = {}
        for r in ([1 - t / (m0 * vs) for t in thicknesses] if thicknesses else ratios):
            layers.setdefault(int(round(m0 * (1 - r))), r)
        use = tuple(r for m, r in sorted(layers.items(), reverse=True) if m < m0)
        spheres = g.particle_spheres() if rearrange == "dem" and fit == "spheres" else None
        # steps=1: one increment per target, exactly (steps=len(use) added the even thicknesses from each grid's
        # own uncalendered top, which the free top rounds differently: other DEM stages on each grid, stop 28)
        s = calender(g.phases, particles=g.particles, particle_spheres=spheres, ratios=use, steps=1,
                     voxel_size_um=vs, thickness_axis="y", collector_side="low", workers=2, rearrange=rearrange,
                     **(options or {}))
        act = activation_from_calender(s, thickness_axis="y", collector_side="low")
        # for comparison: the voxel rule (broken film voxels 6-connected) that the particle rule replaced at stop 30
        voxel_rule = [conductive_clusters(state.labels, broken_shell=state.broken_shell, thickness_axis="y",
                                          collector_side="low").activation for state in s.states]
        print(f"LMP rearrange={rearrange} (DEM start: {fit}) {vs} µm voxels, {width:.0f} µm window, seed {seed}, "
              f"{'free' if free_top else 'walled'} top (coating {g.design.thickness_um:.0f} µm), "
              f"{options or {}} "
              f"({time.perf_counter() - t:.0f} s), contacts {g.contacts}:", flush=True)
        x = [0.0] + [st.ratio for st in s.steps]
        intact = [1.0] + [st.shell_intact_fraction for st in s.steps]
        active = [0.0] + list(act.activation)
        for st, a, v in zip(s.steps, act.activation, voxel_rule):
            print(f"  ratio {st.ratio:.3f} ({st.thickness_um:.0f} µm): roll pressure {st.roll_pressure_mpa:6.2f} MPa, "
                  f"shell intact {st.shell_intact_fraction:.3f}, activation {a:.3f} (voxel rule {v:.3f})", flush=True)
        for d in s.settings["dem_stages"]:
            print(f"    DEM stage {d['from_layers']}→{d['target_layers']} layers stopped at {d['stopped_layers']}: "
                  f"{d['pressure_mpa']:.2f} MPa, {d['stop']}, contact gaps {d.get('gaps')}", flush=True)
        curves[vs] = (np.array(x), np.array(intact), np.array(active))
        thick[vs] = np.array([s.thickness0_um] + [st.thickness_um for st in s.steps])
    if len(curves) > 1:
        coarse = max(curves)
        xc = curves[coarse][0]
        for vs, (x, i, a) in curves.items():
            if vs == coarse:
                continue
            inside = xc <= x.max() + 1e-9  # interpolated, never extrapolated past the finer curve's end
            di = np.abs(np.interp(xc, x, i) - curves[coarse][1])[inside]
            da = np.abs(np.interp(xc, x, a) - curves[coarse][2])[inside]
            print(f"  {vs} vs {coarse} µm at the {coarse} µm ratios up to {xc[inside].max():.3f}: largest |Δ intact| "
                  f"{di.max():.3f} (at {xc[inside][di.argmax()]:.3f}), |Δ activation| {da.max():.3f} "
                  f"(at {xc[inside][da.argmax()]:.3f})", flush=True)
            # the ratios both grids reached (whole layers of both): no interpolation across a steep step
            both = [k for k, r in enumerate(xc) if np.isclose(x, r, atol=1e-3).any()]
            if len(both) > 1:
                j = [int(np.argmin(np.abs(x - xc[k]))) for k in both]
                print(f"  at the ratios both reached ({', '.join(f'{xc[k]:.3f}' for k in both)}): largest |Δ intact| "
                      f"{np.abs(i[j] - curves[coarse][1][both]).max():.3f}, |Δ activation| "
                      f"{np.abs(a[j] - curves[coarse][2][both]).max():.3f}", flush=True)
            # by the coating thickness (µm: the roll's position), at the thicknesses both grids reached
            # (whole layers of both, every 12 µm at 6 and 4 µm): a free top's uncalendered thickness is
            # its highest particle rounded to a layer of each grid, so the same roll position is a
            # different ratio on each
            tc, tf = thick[coarse][1:], thick[vs][1:]
            pairs = [(k, int(np.argmin(np.abs(tf - t)))) for k, t in enumerate(tc) if np.isclose(tf, t).any()]
            if pairs:
                kc, kf = (np.array(v) + 1 for v in zip(*pairs))
                print(f"  at the coating thicknesses both reached ({', '.join(f'{thick[coarse][k]:.0f}' for k in kc)} "
                      f"µm): |Δ intact| {', '.join(f'{d:.3f}' for d in np.abs(i[kf] - curves[coarse][1][kc]))}; "
                      f"|Δ activation| {', '.join(f'{d:.3f}' for d in np.abs(a[kf] - curves[coarse][2][kc]))}",
                      flush=True)
                worst = max(np.abs(i[kf] - curves[coarse][1][kc]).max(), np.abs(a[kf] - curves[coarse][2][kc]).max())
                print(f"  issue 16 (same curve within 0.05 at two voxel sizes, at the thicknesses both reached): "
                      f"{'met' if worst <= 0.05 else 'NOT met'} ({worst:.3f})", flush=True)


def _modes(text):
    """``MEAN:LOG_SIGMA:WEIGHT,…`` → the generator's LogNormalMode tuple (None: its default)."""
    if not text:
        return None
    from twinlab.datasets.generators import LogNormalMode
    return tuple(LogNormalMode(*(float(v) for v in m.split(":"))) for m in text.split(","))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller windows / coarser voxels")
    ap.add_argument("--part", default="hertz,cathode,lmp")
    ap.add_argument("--runs", default=None, help="cathode runs as WINDOWxSTEPS,… (default by --quick)")
    ap.add_argument("--seeds", default="1", help="generator seeds of the cathode, e.g. 1,2,3 (seed spread)")
    ap.add_argument("--width", type=float, default=48.0,
                    help="in-plane extent (µm) of the generated cathode; the windows are centred crops of it "
                         "(a window at least as wide as it takes the whole cathode)")
    ap.add_argument("--contact-kn", type=float, default=None,
                    help="normal stiffness per contact area k_n (GPa/µm) of the NCM contact law instead of "
                         "materials.NCM_contact's")
    ap.add_argument("--voxel", type=float, default=None,
                    help="mechanics voxel edge (µm) for the cathode: generated at 1 µm, calendered on its bins")
    ap.add_argument("--no-pores", action="store_true", help="skip the pore network per cathode member")
    ap.add_argument("--modes", default=None,
                    help="cathode particle size modes MEAN:LOG_SIGMA:WEIGHT,… (µm; default the generator's NCM_MODES)")
    ap.add_argument("--no-cbd", action="store_true", help="the generated cathode's CBD made pore (diagnosis)")
    ap.add_argument("--neck-contacts", action="store_true",
                    help="calender option neck_contacts: CBD necks join particles through the contact law")
    ap.add_argument("--contact-law", default=None,
                    help="calender option contact_law: auto, plane or passes (default: the option's, auto)")
    ap.add_argument("--tol", type=float, default=None, help="calender option tol (solver tolerance)")
    ap.add_argument("--lmp-voxels", default=None, help="LMP voxel sizes in µm, e.g. 4,5 (default by --quick)")
    ap.add_argument("--rearrange", default="none", help="rearrangement stages to compare: dem, none or dem,none")
    ap.add_argument("--lmp-ratios", default=None, help="LMP calendering ratios, e.g. 0.05,0.1,0.2 (one increment each)")
    ap.add_argument("--lmp-width", type=float, default=160.0, help="LMP in-plane extent in µm")
    ap.add_argument("--lmp-seed", type=int, default=3)
    ap.add_argument("--lmp-fit", choices=("spheres", "voxels"), default="voxels",
                    help="the first DEM stage's clumps: fitted to the voxels (default, as calender does) or the "
                         "generator's true spheres (calender's particle_spheres)")
    ap.add_argument("--lmp-free-top", action="store_true",
                    help="the generated anode's free (cast) top surface (make_lmp_anode(free_top=True))")
    ap.add_argument("--lmp-thicknesses", default=None,
                    help="LMP coating thicknesses (µm) to calender to instead of ratios, e.g. 120,108,96 (one "
                         "increment each: the same roll positions and increments on every grid)")
    ap.add_argument("--lmp-until-jam", action="store_true",
                    help="DEM stages only until the packing first jams (calender option dem_until_jam)")
    ap.add_argument("--lmp-option", action="append", default=[],
                    help="calender option NAME=FLOAT for the LMP runs (diagnosis), e.g. dem_collision_tol=1")
    args = ap.parse_args()
    parts = args.part.split(",")
    if "hertz" in parts:
        hertz()
    if "cathode" in parts:
        runs = [tuple(int(v) for v in r.split("x")) for r in args.runs.split(",")] if args.runs else None
        for rearrange in args.rearrange.split(","):
            cathode(args.quick, runs, rearrange, tuple(int(v) for v in args.seeds.split(",")), not args.no_pores,
                    args.width, args.contact_kn, args.voxel, _modes(args.modes), not args.no_cbd,
                    args.neck_contacts, args.contact_law, args.tol)
    if "lmp" in parts:
        for rearrange in args.rearrange.split(","):
            lmp(args.quick, rearrange, [float(v) for v in args.lmp_voxels.split(",")] if args.lmp_voxels else None,
                [float(v) for v in args.lmp_ratios.split(",")] if args.lmp_ratios else None, args.lmp_width,
                args.lmp_seed, {k: int(v) if v.isdigit() else float(v)
                                 for k, v in (o.split("=") for o in args.lmp_option)}
                | ({"dem_until_jam": True} if args.lmp_until_jam else {}), args.lmp_fit,
                args.lmp_free_top,
                [float(v) for v in args.lmp_thicknesses.split(",")] if args.lmp_thicknesses else None)


if __name__ == "__main__":
    main()

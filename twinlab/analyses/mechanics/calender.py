"""Virtual calendering: strain-controlled uniaxial compression of an electrode twin (SCIENCE.md §6).

The periodic cell, along the thickness axis, holds ``[collector | coating | roll]``: the current
collector (if the labels have one) on its side, the coating up to its highest solid voxel, and an
added stiff roll layer on top (removed afterwards). Through periodicity the roll also backs the
collector, so the cell is a stack of stiff plates squeezing the coating: the average strain imposed
on the cell, ``ΔE_tt = −Δh / L_cell`` with all other average strain components zero (uniaxial
strain, a wide sheet), goes almost entirely into the compliant coating. The share that does is
reported (``electrode_strain_share``); the geometry update then places the coating exactly into
its new thickness.

Each increment: solve the mechanics problem (Newton–CG, :mod:`._fft_solver`), break shell
voxels whose von Mises stress exceeds the fracture strength (stiffness and stress → 0, applied
*between* increments), move every solid coating voxel by its displacement (voxel-centre average of
its corner displacements) scaled so the coating fits the new thickness, and resolve collisions with
the volume-conserving remap (:mod:`._remap`): every phase keeps exactly its voxel count and the
pores absorb the change. The grid the targets are rounded to shifts by a sub-voxel phase that advances
by the golden ratio per increment (:func:`_rounding_phase`), so fine increments spread the compaction
over the coating instead of piling it onto one band. Stress, strain, accumulated displacement and the broken-shell mask travel
with the material (an updated-Lagrangian, hypo-elastic state: no spring-back — the known limit of
strain-controlled calendering models). With contacts, an elastic particle starts each increment from
its mean stress (:func:`._contacts.relieve_particle_residuals`): the stress the remap carried within it
is not the elastic field of its contact tractions, and the residue accumulated (issue 16).

Contacts (issue 16, :mod:`._contacts`): particle instances (the twin's ``labels/particles`` or
connected components) touch through a unilateral contact interphase — no tension, a compliant
normal, yielding shear — so a loose packing is a packing, not one bonded elastic body; the
macroscopic calendering pressure (mean normal stress on the roll) is reported per target. Science
notes: NCM cathodes are calendered to 3.0–3.6 g/cm³ with roll line loads of a few hundred to
~2000 N/mm over nip lengths of a few mm, i.e. pressures of the order of 10¹–10³ MPa, rising
exponentially with density (Meyer et al., J. Mater. Process. Technol. 249 (2017) 172; Schreiner
et al., Energy Technol. 7 (2019) 1900840; DEM: Sangrós Giménez et al., Adv. Powder Technol. 30
(2019); Primo et al., J. Power Sources 488 (2021) 229361; FEM with particle fracture: Guichard et
al., arXiv:2601.02879 — rearrangement first, then fracture at moderate pressure, then crushing).
Compaction cap (issue 16, :func:`._contacts.compaction_pressure`): a contact of a powder phase (NCM,
lithium) and the pore-bridging CBD/binder crush at the compaction pressure of the packing around them —
a low rearrangement pressure below the skeleton's jamming fraction (random loose packing, 0.555: the
particles rearrange into the pores against friction and binder; φ grows with ln P), Heckel's law above
it — judged on the local packing fraction expected at the end of the increment; so the pressure stays
low while pores close and rises steeply once jammed. Increments are split so that none compresses the
coating by more than the cap's :attr:`._contacts.ContactLaw.increment_strain` (5.4 % for NCM; not with
a DEM stage): the state at a target then does not depend on the requested number of steps.
With ``rearrange="none"`` particles move only as far as the small-strain increments with open,
sliding and crushing contacts let them; ``rearrange="dem"`` gives each increment a discrete-element stage first
(:mod:`._rearrange`, LAMMPS granular): the particles rearrange until the packing jams, and the
stress solve compresses only the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..._validation import AXES, VoxelSize, axis_index, require_3d_volume
from ..._outputs import check_output, make_staging, publish
from ...design import DEFAULT_CBD_NANOPOROSITY
from ...errors import InputError
from ...materials import get_material
from ...phases import DEFAULT_PHASES, PhaseTable
from ._fft_solver import MechanicsSolver, weighted_corner_mean
from ._laws import BRITTLE, ELASTIC, PLASTIC, lame_from_young, von_mises
from ._metrics import CalenderSeries, CalenderState, CalenderStep, crackable, particle_crackable, shell_contacts
from ._coarsen import coarsen_for_mechanics
from ._contacts import (contact_law_used, foreign_faces, relieve_particle_residuals, reshaped_particles, roll_gaps,
                        roll_reach, setup_state,
                        shell_fracture, solve_with_contacts, solve_with_planes)
from ._options import CalenderOptions, tol_used
from ._rearrange import DemPacking, dem_materials, rearrange_state
from ._remap import remap_voxels, take_sources as _take

_PAIRS = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


def calender(
    twin_or_labels: Any,
    *,
    ratios: Sequence[float] | None = None,
    densities: Sequence[float] | None = None,
    steps: int = 10,
    options: CalenderOptions | Mapping[str, Any] | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    source_twin: str | None = None,
    design: Any = None,
    phases: PhaseTable | None = None,
    voxel_size_um: Any = None,
    thickness_axis: int | str | None = None,
    collector_side: str | None = None,
    particles: Any = None,
    particle_spheres: Any = None,
    **overrides: Any,
) -> CalenderSeries:
    """Compress an electrode to target calendering ratios or densities.

    Parameters
    ----------
    twin_or_labels : Twin or (n0, n1, n2) integer array
        A twin (its ``phases`` labels, voxel size, thickness axis, collector side, phase table and
        design are used) or a phase-label array (then give ``voxel_size_um``, ``thickness_axis``,
        ``collector_side``).
    ratios : sequence of float in [0, 1)
        Calendering ratios ``r = 1 − h/h0`` relative to the input's coating thickness ``h0``.
    densities : sequence of float, g cm⁻³
        Target electrode densities; ``h = h0 ρ0/ρ`` (constant loading), where ``ρ0 = ρ_s (1 − ε)``
        is the input's density from its voxel solid fraction and the solid density ``ρ_s`` of the
        design (or, without one, the volume-weighted density of the phases' materials).
    steps : int
        Load increments for the whole compression (to the last target); every target is an
        increment boundary.
    options : CalenderOptions or mapping, optional
        The physics and solver options (materials, crack thresholds, tolerance, window, contacts,
        shells …), documented on :class:`~._options.CalenderOptions`; a mapping is read with
        :meth:`~._options.CalenderOptions.from_mapping` (unknown keys refused). Recorded in the
        series settings and every member's provenance (:meth:`~._options.CalenderOptions.to_dict`).
    output : path, optional
        Write a series folder (``<output>/ratio_0.10.twin.zarr`` …, one twin per target, plus
        ``index.json``), atomically: it appears only when complete. Default: none.
    progress : callable(done, total, message), optional
    source_twin : str, optional
        The input twin as every member's provenance names it (default: its path). The pipeline,
        which calenders a staged copy of the twin, passes the twin's final path.
    design, phases, voxel_size_um, thickness_axis, collector_side : optional
        The input's description, needed for a label array (a twin carries them; given, they
        override the twin's).
    particles : (n0, n1, n2) integer array, optional
        Particle instance labels (a twin's ``labels/particles`` is used when present); particles
        without one are the connected components of the particle phases (lithium cores split
        particles whose shells touch).
    particle_spheres : (centres (n, 3) µm, radii (n,) µm), optional
        The true spheres of particle instance ids 1…n, in the input's axes (voxel i spans
        [i·h, (i+1)·h)): a generated electrode's
        :meth:`~twinlab.datasets.generators.GeneratedElectrode.particle_spheres`. With
        ``rearrange="dem"`` the first DEM stage starts from them (:meth:`._rearrange.DemPacking.of_spheres`)
        instead of clumps fitted to the voxels, so it starts from the same packing at any voxel size;
        not with a lateral ``window`` or ``voxel_um`` bins. The later stages start from clumps refitted
        to the voxels (:meth:`._rearrange.DemPacking.follow`) — or, with ``dem_until_jam=True``, there are
        none after the first jam and the true spheres are never refitted, so the whole DEM path is the same
        at any voxel size. On the generated LMP anode the true spheres
        jam after 2.25–2.5 µm of roll travel: its packing is walled along the thickness, so half the
        particles touch the roll plane (``tests/benchmarks/MEASUREMENTS.md``, stop 25); with its free top
        (``make_lmp_anode(free_top=True)``) after 31–37 µm.
    **overrides
        Single :class:`~._options.CalenderOptions` fields (e.g. ``tol=1e-5``) applied on top of
        ``options`` and checked the same way.

    Returns
    -------
    CalenderSeries
    """
    opts = CalenderOptions.from_mapping(options).replace(**overrides)
    t_start = time.perf_counter()
    check_calender_request(ratios=ratios, densities=densities, steps=steps, output=output, overwrite=overwrite)
    window, edge_margin, dtype = opts.window, opts.edge_margin, opts.dtype
    output = Path(output) if output is not None else None
    labels, image, voxel, t_axis, side, phases, design, base_meta = _resolve_input(
        twin_or_labels, phases, voxel_size_um, thickness_axis, collector_side, design)
    require_3d_volume(labels.shape, analysis="calendering")
    # what the CBD voxels stand for: as asked, else as the twin records (a segmented twin: the domain)
    twin_cbd_as = base_meta.pop("cbd_as", None)
    opts = opts.replace(cbd_as=opts.cbd_as or twin_cbd_as or "solid")
    inst_in = _particle_labels(twin_or_labels, particles, labels.shape)
    if opts.voxel_um is not None:  # mechanics on bins of the input (module _coarsen): the series is at their size
        labels, image, inst_in, voxel, base_meta["coarsened"] = coarsen_for_mechanics(
            labels, image, inst_in, voxel, opts.voxel_um, phases)
    cropped = False
    if window is not None:
        n_before = labels.shape
        labels, image, base_meta["window"] = _lateral_window(labels, image, t_axis, int(window))
        cropped = labels.shape != n_before
        if inst_in is not None:
            inst_in, _, _ = _lateral_window(inst_in, None, t_axis, int(window))
    if edge_margin is None:
        edge_margin = 3 if (cropped or not isinstance(twin_or_labels, np.ndarray)) else 0
    if source_twin is not None:
        base_meta["source_twin"] = str(source_twin)

    # internal orientation: thickness axis first, collector at index 0
    lab = np.moveaxis(labels, t_axis, 0)
    img = None if image is None else np.moveaxis(image, t_axis, 0)
    if side == "high":
        lab = lab[::-1]
        img = None if img is None else img[::-1]
    lab = np.ascontiguousarray(lab)
    img = None if img is None else np.ascontiguousarray(img)
    if inst_in is not None:
        inst_in = np.moveaxis(inst_in, t_axis, 0)
        inst_in = np.ascontiguousarray(inst_in[::-1] if side == "high" else inst_in)
    perm = [t_axis] + [a for a in range(3) if a != t_axis]
    h = tuple(voxel.as_tuple()[a] for a in perm)

    lut = _material_tables(lab, phases, opts.materials, opts.shell_strength_mpa)
    pore_v = phases.value("pore") if "pore" in phases else 0
    coll_v = phases.value("collector") if "collector" in phases else None
    present = set(np.unique(lab).tolist())
    has_coll = coll_v is not None and coll_v in present
    fixed = (lab == coll_v) if has_coll else np.zeros(lab.shape, bool)
    moving = (lab != pore_v) & ~fixed
    if not moving.any():
        raise InputError("the labels contain no coating solid to compress (only pore/collector)")
    n_coll = int(np.flatnonzero(fixed.any(axis=(1, 2))).max()) + 1 if has_coll else 0
    if moving[:n_coll].any():
        raise InputError("coating solid lies between collector layers; is collector_side right?")
    top = int(np.flatnonzero(moving.any(axis=(1, 2))).max()) + 1
    m0 = top - n_coll
    area = lab.shape[1] * lab.shape[2]
    n_solid = int(moving.sum())
    eps0 = 1.0 - n_solid / (area * m0)
    rho_s = _solid_density(lab[n_coll:top], moving[n_coll:top], phases, lut, design)
    rho0 = rho_s * (1.0 - eps0)
    if opts.cbd_as == "domain" and "cbd" in phases:  # the CBD voxels are the nanoporous domain: only its solid weighs
        nano = design.cbd_nanoporosity if design is not None else DEFAULT_CBD_NANOPOROSITY
        base_meta["cbd_nanoporosity"] = nano
        rho0 -= rho_s * nano * int((lab[n_coll:top] == phases.value("cbd")).sum()) / (area * m0)

    targets = _targets(ratios, densities, m0, rho0, rho_s, area, n_solid)
    lab = lab.copy()  # the set-up turns membrane shells into lithium: never in the caller's array
    cstate = _contact_setup(lab, inst_in, phases, lut, opts.contacts, opts.contact_materials, opts.shells, opts.seed,
                            voxel_um=h)
    if cstate is not None:
        cstate.neck_contacts = opts.neck_contacts
        if cstate.law is not None:  # "auto" resolved on this electrode: the settings and provenance record the law used
            vals = np.unique(lab[cstate.inst > 0])
            opts = opts.replace(contact_law=contact_law_used(opts.contact_law, cstate.law, vals, lut["code"][vals]))
        cstate.contact_law = opts.contact_law
    # None resolved on this electrode: the settings and provenance record the tolerance used
    opts = opts.replace(tol=tol_used(opts.tol, cstate is not None and cstate.membrane))
    # the compaction cap is an explicit update of the packing state: its increments are kept small
    # enough for the packing's compaction pressure to change by at most ~e-fold in one (a DEM stage
    # instead rearranges each requested increment to jamming itself)
    sub = cstate is not None and cstate.law is not None and opts.rearrange == "none"
    schedule = _schedule(m0, [t[2] for t in targets], int(steps),
                         max_strain=cstate.law.increment_strain if sub else None)
    total = len(schedule)

    # state carried with the material
    lab = lab[:top].copy()
    img = None if img is None else img[:top].copy()
    pore_gray = None if img is None else _pore_gray(img, lab == pore_v)
    dt = np.dtype(dtype)
    stress = np.zeros((6, *lab.shape), dt)
    strain = np.zeros((6, *lab.shape), dt)
    disp = np.zeros((3, *lab.shape), dt)
    broken = np.zeros(lab.shape, bool)
    hourglass = None  # the generalised hourglass forces, carried like the stress (_increment)
    if cstate is not None:
        cstate.crop(top)
    m_cur = m0
    done = 0
    stats = {"cg": 0, "newton": 0, "increments": 0, "share": [], "pressure": 0.0, "open": None, "dem": []}
    dem = dem_materials(lab, cstate, lut) if opts.rearrange == "dem" else None
    # the DEM packing, carried from increment to increment once fitted (or given as the true spheres)
    packing = None if particle_spheres is None else _sphere_packing(
        particle_spheres, cstate, opts, cropped, perm, side, labels.shape[t_axis], h, n_coll)
    step_results: list[CalenderStep] = []
    states: list[CalenderState] = []
    staging = None
    if output is not None:
        staging = make_staging(output.parent, output.name, "partial")
    try:
        ti = 0
        jammed = False  # dem_until_jam: a DEM stage has stopped at the jam
        for m_next in schedule:
            # rearrangement first: the stress solve takes the rest, its roll from where the DEM's stopped
            roll_below = 0.0
            handed_over = m_next < m_cur and dem is not None and not jammed  # the DEM measures the contact gaps
            if handed_over:
                lab, img, stress, strain, disp, broken, m_dem, roll_below, packing = rearrange_state(
                    lab, img, stress, strain, disp, broken, take=_take, cstate=cstate, materials=dem, n_coll=n_coll,
                    m_cur=m_cur,
                    m_next=m_next, h=h, seed=opts.seed + done, pore_gray=pore_gray, jam=opts.dem_jam_pressure_mpa,
                    collision_tol=opts.dem_collision_tol,
                    moving_value=lambda a: (a != pore_v) & ((a != coll_v) if has_coll else True), stats=stats,
                    packing=packing)
                # the DEM stage moves whole particles without their hourglass forces (the stress of the moved
                # voxels is dropped too): the stress solve starts them from zero
                hourglass = None
                if cstate is not None:  # and reshapes them: their stress starts from its particle's mean
                    cstate.reshaped = None
                jammed = opts.dem_until_jam and stats["dem"][-1]["stop"]["by"] in ("pressure", "collisions")
                if m_dem == m_next:  # rearrangement took the whole increment
                    stats["increments"] += 1
                    stats["share"].append(1.0)
                m_cur = m_dem
            if m_next < m_cur:
                lab, img, stress, strain, disp, broken, hourglass, share, cg, nw = _increment(
                    lab, img, stress, strain, disp, broken, hourglass=hourglass,
                    moving_value=lambda a: (a != pore_v) & ((a != coll_v) if has_coll else True),
                    lut=lut, h=h, n_coll=n_coll, m_cur=m_cur, m_next=m_next, roll_layers=opts.roll_layers,
                    roll_factor=opts.roll_stiffness_factor, reg=opts.plastic_regularization, dtype=dt, tol=opts.tol,
                    maxiter=opts.maxiter, workers=opts.workers, seed=opts.seed + done, pore_gray=pore_gray,
                    preconditioner=opts.preconditioner, cstate=cstate, contact_tol=opts.contact_tol,
                    contact_passes=opts.contact_passes, stats=stats, shell_um=opts.shell_thickness_um,
                    rounding_phase=_rounding_phase(done), roll_below=roll_below, dem_gaps=handed_over)
                # the clumps refitted to the particles as the solve left them (DemPacking.follow)
                if packing is not None and not jammed:
                    packing = packing.follow(cstate.inst, z_bottom=n_coll, z_top=n_coll + m_next)
                stats["cg"] += cg
                stats["newton"] += nw
                stats["increments"] += 1
                stats["share"].append(share)
                m_cur = m_next
            done += 1
            if progress is not None:
                progress(done, total, f"thickness {m_cur * h[0]:.4g} µm")
            while ti < len(targets) and targets[ti][3] == m_cur:
                kind, value, _, _ = targets[ti]
                res, state = _record(kind, value, lab, img, stress, strain, disp, broken, phases=phases,
                                     lut=lut, n_coll=n_coll, m0=m0, m_cur=m_cur, h=h, rho0=rho0, area=area,
                                     thresholds=opts.crack_thresholds_mpa, bins=opts.profile_bins, stats=stats,
                                     perm=perm, side=side, keep=opts.keep_fields or staging is not None,
                                     pore_v=pore_v, coll_v=coll_v if has_coll else None, cstate=cstate,
                                     margin=int(edge_margin))
                if staging is not None:
                    name = f"{kind}_{value:.2f}.twin.zarr"
                    _write_step_twin(staging / name, res, state, voxel=voxel, t_axis=t_axis, side=side,
                                     phases=phases, design=design, kind=kind, base_meta=base_meta,
                                     settings={"steps": int(steps), **opts.to_dict()})
                    res = _replace(res, twin_path=str(output / name))
                step_results.append(res)
                if opts.keep_fields:
                    states.append(state)
                ti += 1
        # the options, with what contacts, edge margin and materials resolved to on this electrode
        settings = {"steps": int(steps), "increments": stats["increments"], **opts.to_dict(),
                    "contacts": bool(cstate is not None and cstate.law is not None), "edge_margin": int(edge_margin),
                    "contact_materials": {} if cstate is None else cstate.law_names,
                    "materials": {n: m.to_dict() for n, m in lut["materials"].items()},
                    "dem_stages": stats["dem"],
                    "unresolved_voxels": stats.get("unresolved", 0),
                    "unresolved_load": stats.get("unresolved_load", 0.0),
                    "residual_load": stats.get("residual_load", 0.0), "locked_load": stats.get("locked_load", 0.0),
                    "time_s": time.perf_counter() - t_start}
        series = CalenderSeries(m0 * h[0], rho0, rho_s, eps0, tuple(step_results), settings,
                                str(output) if output is not None else None, tuple(states))
        if staging is not None:
            index = series.to_dict()
            for st in index["steps"]:  # members named relative to the folder, which may be moved or renamed
                st["twin_path"] = Path(st["twin_path"]).name
            (staging / "index.json").write_text(json.dumps(index, indent=2))
            publish(staging, output)  # the old series (if any) is deleted only once the new one is in place
            staging = None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return series


def check_calender_request(*, ratios: Sequence[float] | None = None, densities: Sequence[float] | None = None,
                           steps: int = 10, output: str | os.PathLike | None = None, overwrite: bool = False) -> None:
    """The checks that need no electrode: targets, steps and the output (which may only replace a
    calendering series or twin; stale staging folders of killed runs are removed); the options are
    checked when a :class:`CalenderOptions` is built. :func:`calender` runs them first; front ends
    call them before showing progress."""
    if int(steps) < 1:
        raise InputError(f"steps must be a positive number of load increments, got {steps}")
    _check_targets(ratios, densities)
    if output is not None:
        check_output(output, overwrite=overwrite, hint="pass overwrite=True")


# ====================================================================== helpers
def _sphere_packing(spheres, cstate, opts, cropped, perm, side, n_thick, h, n_coll):
    """The DEM packing of ``calender(particle_spheres=...)`` on the internal grid (thickness axis first,
    collector at index 0, voxel units)."""
    if opts.rearrange != "dem" or cropped or opts.voxel_um is not None or cstate is None:
        raise InputError("particle_spheres are the DEM's start: give them with rearrange='dem', without a "
                         "lateral window or voxel_um bins, on labels with particles")
    try:
        centres, radii = (np.asarray(a, float) for a in spheres)
    except (TypeError, ValueError):
        raise InputError("particle_spheres must be (centres (n, 3) µm, radii (n,) µm)") from None
    if centres.ndim != 2 or centres.shape[1] != 3 or radii.shape != centres.shape[:1] \
            or not (np.isfinite(centres).all() and np.isfinite(radii).all() and (radii > 0).all()):
        raise InputError(f"particle_spheres must be (centres (n, 3) µm, radii (n,) µm) with positive radii, got "
                         f"{centres.shape} and {radii.shape}")
    c = centres[:, perm].T / np.asarray(h, float)[:, None]
    if side == "high":
        c[0] = n_thick - c[0]
    return DemPacking.of_spheres(cstate.inst, c, radii / min(h), z_bottom=n_coll)


def _particle_labels(obj, particles, shape):
    """Particle instance labels: ``particles`` if given, else a twin's ``labels/particles``, else None."""
    from ...twin import Twin

    if particles is None and isinstance(obj, (str, os.PathLike)):
        obj = Twin.open(obj)
    if particles is None and isinstance(obj, Twin) and obj.has_labels("particles"):
        particles = obj.labels("particles").compute()
    if particles is None:
        return None
    particles = np.asarray(particles)
    if particles.shape != shape or particles.dtype.kind not in "iu":
        raise InputError(f"particles must be integer instance labels of the labels' shape {shape}, got "
                         f"{particles.dtype} {particles.shape}")
    return particles.astype(np.int32, copy=False)


def _contact_setup(lab, inst_in, phases, lut, contacts, contact_materials, shells, seed=0, voxel_um=None):
    names = {v: n for v, n in lut["names"].items()}
    for n, m in dict(contact_materials or {}).items():  # keys checked by CalenderOptions
        mat = get_material(m) if isinstance(m, str) else m
        stiff = mat.normal_stiffness_gpa_um if mat.normal_stiffness_gpa_um is not None else mat.youngs_modulus_gpa
        if stiff is None or mat.poisson_ratio is None or not stiff > 0:
            raise InputError(f"contact material for {n!r} needs a positive normal stiffness per area or Young's "
                             "modulus, and a Poisson ratio")
    return setup_state(lab, inst_in, names=names, materials=lut["materials"], contacts=contacts,
                       contact_materials=contact_materials, shells=shells, get_material=get_material, seed=seed,
                       voxel_um=voxel_um)


def _lateral_window(labels, image, t_axis, window):
    """Centred ``window``-voxel crop of the two in-plane axes (``window`` ≥ 8, checked by
    CalenderOptions); returns the crop per axis name."""
    index: list[slice] = []
    crop: dict[str, list[int]] = {}
    for a, n in enumerate(labels.shape):
        if a == t_axis or n <= window:
            index.append(slice(None))
            continue
        start = (n - window) // 2
        index.append(slice(start, start + window))
        crop[AXES[a]] = [start, start + window]
    sl = tuple(index)
    return (np.ascontiguousarray(labels[sl]), None if image is None else np.ascontiguousarray(image[sl]), crop)


def _resolve_input(obj, phases, voxel_size_um, thickness_axis, collector_side, design):
    from ...twin import Twin

    image = None
    meta: dict[str, Any] = {}
    if isinstance(obj, (str, os.PathLike)):
        obj = Twin.open(obj)
    if isinstance(obj, Twin):
        labels = np.asarray(obj.labels("phases").compute())
        img = obj.image(0)
        if tuple(img.shape) == labels.shape:
            image = np.asarray(img.compute())
        phases = phases or obj.phases
        voxel = VoxelSize.parse(voxel_size_um) if voxel_size_um is not None else obj.voxel_size
        t_axis = axis_index(thickness_axis) if thickness_axis is not None else obj.thickness_axis
        side = collector_side or obj.collector_side
        if design is None and obj.design:
            design = obj.design
        meta = {"source_twin": str(obj.path), "cbd_as": obj.cbd_as}
    else:
        labels = np.asarray(obj)
        if voxel_size_um is None or thickness_axis is None or collector_side is None:
            raise InputError("calender on a label array needs voxel_size_um, thickness_axis and collector_side "
                             "(or pass a Twin, which carries them)")
        voxel = VoxelSize.parse(voxel_size_um)
        t_axis = axis_index(thickness_axis)
        side = collector_side
        phases = phases or DEFAULT_PHASES
    if labels.ndim != 3:
        raise InputError(f"labels must be 3D, got shape {labels.shape}")
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 255:
        raise InputError(f"labels must be integers 0–255 (phase values), got dtype {labels.dtype}")
    labels = labels.astype(np.uint8, copy=False)
    if side not in ("low", "high"):
        raise InputError(f"collector_side must be 'low' or 'high', got {side!r}")
    if design is not None and not hasattr(design, "solid_density_g_cm3"):
        from ...design import ElectrodeDesign

        design = ElectrodeDesign.from_dict(design)
    return labels, image, voxel, t_axis, side, phases, design, meta


def _material_tables(lab, phases, overrides, shell_strength):
    """Per-label-value lookup tables of λ, μ (MPa), yield, fracture strength and law code."""
    lut = {k: np.zeros(256) for k in ("lam", "mu", "sy", "frac", "e")}
    lut["code"] = np.zeros(256, np.uint8)
    lut["sy"][:] = np.inf
    lut["frac"][:] = np.inf
    lut["materials"] = {}
    lut["names"] = {}
    overrides = dict(overrides or {})
    for v in np.unique(lab).tolist():
        try:
            name = phases.name(v)
        except InputError:
            raise InputError(f"label value {v} is not in the phase table {phases.names}; relabel or pass phases=") from None
        lut["names"][v] = name
        if name == "pore":
            continue
        mat = overrides.get(name, phases[name].material)
        if isinstance(mat, str):
            mat = get_material(mat)
        if mat is None or mat.youngs_modulus_gpa is None or mat.poisson_ratio is None:
            raise InputError(f"phase {name!r} has no mechanical properties (Young's modulus and Poisson ratio); "
                             f"give them with materials={{{name!r}: Material(...)}} or set the phase's material")
        e = mat.youngs_modulus_gpa * 1e3
        nu = mat.poisson_ratio
        if e < 0 or not -1 < nu < 0.5:
            raise InputError(f"phase {name!r}: E must be ≥ 0 and ν in (-1, 0.5); got E={e} MPa, ν={nu}")
        lam, mu = lame_from_young(e, nu)
        lut["lam"][v], lut["mu"][v], lut["e"][v] = lam, mu, e
        if mat.fracture_strength_mpa is not None:
            lut["code"][v] = BRITTLE
            lut["frac"][v] = shell_strength if (shell_strength is not None and name == "shell") \
                else mat.fracture_strength_mpa
        elif mat.yield_strength_mpa is not None:
            lut["code"][v] = PLASTIC
            lut["sy"][v] = mat.yield_strength_mpa
        lut["materials"][name] = mat
    return lut


def _solid_density(lab, moving, phases, lut, design):
    if design is not None:
        return float(design.solid_density_g_cm3)
    vals, counts = np.unique(lab[moving], return_counts=True)
    tot = 0.0
    for v, c in zip(vals.tolist(), counts.tolist()):
        mat = lut["materials"].get(lut["names"][v])
        if mat is None or mat.density_g_cm3 is None:
            raise InputError(f"phase {lut['names'][v]!r} has no density; pass design= to fix the solid density")
        tot += c * mat.density_g_cm3
    return tot / counts.sum()


def _check_targets(ratios, densities):
    """The checks a target passes whatever the electrode (run before the labels are read)."""
    if (ratios is None) == (densities is None):
        raise InputError("give exactly one of ratios=[…] (thickness reduction 1 − h/h0) or densities=[…] (g/cm³)")
    if len(ratios if ratios is not None else densities) == 0:
        raise InputError("give at least one calendering target (a ratio or a density)")
    for r in ratios or ():
        r = float(r)
        if not np.isfinite(r) or r >= 1:
            raise InputError(f"calendering ratio {r} must be below 1 (it is 1 − h/h0); e.g. 0.3 for 30 %")
        if r < 0:
            raise InputError(f"calendering ratio {r} < 0 means a target thickness larger than the current one; "
                             "calendering only compresses")
    for rho in densities or ():
        rho = float(rho)
        if not np.isfinite(rho) or rho <= 0:
            raise InputError(f"density {rho} must be a positive number of g/cm³")


def _targets(ratios, densities, m0, rho0, rho_s, area, n_solid):
    _check_targets(ratios, densities)
    out = []
    if ratios is not None:
        for r in ratios:
            r = float(r)
            out.append(("ratio", r, m0 * (1 - r)))
    else:
        for rho in densities:
            rho = float(rho)
            if rho < rho0 * (1 - 1e-9):
                raise InputError(f"target density {rho} g/cm³ is below the current {rho0:.3f} g/cm³: its thickness "
                                 f"{m0 * rho0 / rho:.1f} voxels is larger than the current {m0}; calendering only "
                                 "compresses")
            if rho >= rho_s:
                raise InputError(f"target density {rho} g/cm³ reaches the solid density {rho_s:.3f} g/cm³ "
                                 "(zero porosity); choose a lower density")
            out.append(("density", rho, m0 * rho0 / rho))
    res = []
    for kind, value, hf in sorted(out, key=lambda t: -t[2]):
        m = int(round(hf))
        if m * area < n_solid:
            raise InputError(f"{kind} {value}: {m} layers cannot hold the coating's {n_solid} solid voxels "
                             "(porosity would be < 0); choose a smaller ratio/density")
        if res and res[-1][3] == m:
            raise InputError(f"{kind}s {res[-1][1]} and {value} both give a coating of {m} voxel layers: this twin "
                             f"({m0} layers) cannot tell them apart; choose targets at least one layer "
                             f"(ratio {1 / m0:.3f}) apart, or a twin with a finer voxel size")
        res.append((kind, value, hf, m))
    return res


def _schedule(m0, target_layers, steps, max_strain=None):
    """Integer thickness after each increment: uniform in thickness, every target included; with
    ``max_strain`` no increment compresses the coating by more than that fraction of its thickness
    (longer ones are split evenly)."""
    final = min(round(t) for t in target_layers)
    grid = set(np.linspace(m0, final, steps + 1).round().astype(int).tolist()[1:])
    grid |= {int(round(t)) for t in target_layers}
    if max_strain:
        prev = m0
        for m in sorted(grid, reverse=True):
            n = int(np.ceil((prev - m) / (prev * max_strain) - 1e-9))
            grid |= {int(round(prev - k * (prev - m) / n)) for k in range(1, n)}
            prev = m
    return sorted(grid, reverse=True)


def _rounding_phase(increment):
    """Sub-voxel shift (in (−½, ½), 0 for the first) of the remap's rounding grid along the thickness in increment
    ``increment``: the golden-ratio sequence, a low-discrepancy dither.

    Why: the remap rounds each voxel's continuous target to a cell. At a fixed phase, an increment of one layer moves
    the coating above the height where the displacement passes half a voxel by one cell and the rest by none, and that
    height is the coating's middle in *every* increment: all the pore closure (and the collisions that shift solid
    relative to its stress) piles onto one band, which jams (solid fraction 0.98 at 3.8 g/cm³) while the pores below
    and above stay open (0.73, 0.22) — the finer the increments, the softer and less stressed the electrode (issue 16:
    roll pressure of a bonded elastic cathode 2983 MPa with 16 steps vs 3384 with 4). Advancing the phase by the
    golden ratio spreads the rounding heights evenly over the increments, so the voxel-quantized compaction follows
    the solved, distributed strain whatever the increment size."""
    return float((0.5 + increment * 0.6180339887498949) % 1.0 - 0.5)


def _pore_gray(img, pore):
    return img[pore].mean().astype(img.dtype) if pore.any() else img.dtype.type(0)


def _voxel_displacement(u, mu):
    """Voxel-centre displacement (3, …) of the node displacement ``u``: the mean of the voxel's 8 corner
    nodes, each weighted by the shear stiffness ``mu`` of the voxels around it.

    A node that only soft or empty voxels hold (the pore-side corners of an open contact voxel, of a contact
    crushed and sliding at a few MPa, of a one-voxel fragment that the window's crop left) is all but free in
    the solve, which leaves it wherever its out-of-balance force drifted it: on a calendered cathode (seed 1,
    48 µm, 3.0 g/cm³) up to 46 voxels in a zero-strain re-solve, and the plain mean of the corners moved
    ~250 voxels by more than half a voxel, whose push chains carried other solid along in the remap (issue
    16). Weighted, a surface voxel moves with the stiff side of its corners, its particle."""
    return weighted_corner_mean(u, mu)


def _increment(lab, img, stress, strain, disp, broken, *, moving_value, lut, h, n_coll, m_cur, m_next,
               roll_layers, roll_factor, reg, dtype, tol, maxiter, workers, seed, pore_gray, preconditioner="fft", cstate=None,
               contact_tol=0.02, contact_passes=3, stats=None, shell_um=0.1, rounding_phase=0.0, hourglass=None,
               roll_below=0.0, dem_gaps=False):
    """One strain increment m_cur → m_next layers: solve, then move the voxels (remap) with their state.
    ``roll_below``: the roll starts that far (layers) below the grid's top — a DEM stage's jam between layer planes,
    the packing stretched to the plane above it (:func:`._rearrange.rearrange`): the solve imposes the travel from
    there, and the remap, which rescales the coating to ``m_next``, takes the stretch back without stress.
    With the contact passes the roll reaches down to every particle top within its travel
    (:func:`._contacts.roll_reach`); those contacts' gaps are their whole-voxel distances to the roll plane
    (:func:`._contacts.roll_gaps`) unless ``dem_gaps``: a DEM stage measured them on its packing
    (:meth:`._rearrange.DemPacking.contact_gaps`).
    ``hourglass``: the generalised hourglass forces carried with the voxels (3, 4, *lab.shape; None: zero),
    like the stress (``MechanicsSolver.solve_increment``). Returns the moved labels, image, stress, strain,
    displacement, broken flags and hourglass forces, the share of the roll travel the coating took, CG and
    Newton iterations."""
    nt = n_coll + m_cur
    shape_c = (nt + roll_layers, *lab.shape[1:])
    lam = np.empty(shape_c, dtype)
    mu = np.empty(shape_c, dtype)
    lam[:nt] = lut["lam"][lab]
    mu[:nt] = lut["mu"][lab]
    membrane = cstate is not None and cstate.membrane
    if not membrane:  # voxel shells: a broken shell voxel carries nothing
        lam[:nt][broken] = 0
        mu[:nt][broken] = 0
    e_roll = roll_factor * max(lut["e"].max(), 1.0)
    lr, mr = lame_from_young(e_roll, 0.3)
    lam[nt:], mu[nt:] = lr, mr
    code = np.zeros(shape_c, np.uint8)
    code[:nt] = lut["code"][lab]
    if not membrane:  # a broken membrane patch is plain (plastic) lithium
        code[:nt][broken] = ELASTIC
    sy = np.full(shape_c, np.inf, dtype)
    sy[:nt] = lut["sy"][lab]
    contacts = cstate is not None and cstate.law is not None
    body = under = None  # the roll body in the coating grid and the voxels it touches (the contact passes)
    if contacts and cstate.contact_law != "plane":
        floor, under = roll_reach(cstate.inst, moving_value(lab), n_coll + m_next)
        body = np.arange(nt)[:, None, None] >= floor[None]
        lam[:nt][body], mu[:nt][body], sy[:nt][body], code[:nt][body] = lr, mr, np.inf, ELASTIC
    gap = None if cstate is None else cstate.gap
    if under is not None and not dem_gaps:
        gap = roll_gaps(under, roll_below, gap)
    if contacts:
        fixed = np.zeros(shape_c, bool)
        fixed[:nt] = (lut["mu"][lab] > 0) & ~moving_value(lab)
        # the collector; with neck contacts also the CBD/binder (CalenderOptions.neck_contacts) — always with the
        # cracked plane: its particle faces toward the bridges are contacts, and the bridges carry their own cap
        # (_contacts.crack_set)
        held = fixed[:nt]
        if (cstate.neck_contacts or cstate.contact_law == "plane") and cstate.law.bridges:
            held = held | np.isin(lab, cstate.law.bridges)
        # once: the solve takes it too
        interphase = foreign_faces(cstate.inst, held, top_is_roll=True, under_roll=under)
        # elastic particles start from their mean stress: no residue of the remap (relieve_particle_residuals)
        bodies = (cstate.inst > 0) & (code[:nt] == ELASTIC) & (mu[:nt] > 0) & ~interphase[0]
        if cstate.shelled is not None:
            bodies &= ~cstate.shelled
        if cstate.reshaped is not None:  # only the particles the last remap reshaped carry its residue
            bodies &= cstate.reshaped[cstate.inst]
        relieve_particle_residuals(stress, cstate.inst, bodies)
    s_old = np.zeros((6, *shape_c), dtype)
    s_old[:, :nt] = stress
    # the coating's carried hourglass forces (the roll carries none, like its stress; none yet: zero layers)
    hg_old = np.zeros((3, 4, 0, *shape_c[1:]), dtype) if hourglass is None else hourglass
    override = None
    if membrane:  # intact sub-voxel shells: the film's membrane stiffness smeared over the surface voxel
        smat = cstate.shell_material
        intact = cstate.shelled & ~broken
        e_m = smat.youngs_modulus_gpa * 1e3 * shell_um / min(h)
        lm, mm = lame_from_young(e_m, smat.poisson_ratio)
        lam[:nt][intact], mu[:nt][intact] = lm, mm
        code[:nt][intact] = ELASTIC
        sy[:nt][intact] = np.inf
        override = (intact, lm, mm)
    d_e = np.zeros(6)
    travel = m_cur - roll_below - m_next
    d_e[0] = -travel / shape_c[0]

    last = []  # the previous contact pass's solver: its multigrid hierarchy is the next pass's start

    def make_solver(lam_, mu_, sy_, code_):
        hierarchy = last.pop().hierarchy if last else None  # drop the old solver before building the new
        solver = MechanicsSolver(lam_, mu_, voxel_size=h, yield_mpa=sy_, code=code_, dtype=dtype, workers=workers,
                                 plastic_regularization=reg, preconditioner=preconditioner, hierarchy=hierarchy)
        last.append(solver)
        return solver

    if contacts:
        phi = _packing_after(cstate, lab, n_coll, m_cur, m_next)
        if cstate.contact_law == "plane":
            sol, cstate.gap, _, info = solve_with_planes(
                make_solver, d_e, lam, mu, sy, code, s_old, lab=lab, inst=cstate.inst, held=held, gap=cstate.gap,
                law=cstate.law, interphase=interphase, tol=tol, maxiter=maxiter, hourglass_old=hg_old, phi=phi)
        else:
            sol, cstate.gap, _, info = solve_with_contacts(
                make_solver, d_e, lam, mu, sy, code, s_old, lab=lab, inst=cstate.inst, fixed=fixed, gap=gap,
                law=cstate.law, nt=nt, tol_active=contact_tol, max_passes=contact_passes, tol=tol, maxiter=maxiter,
                override=override, phi=phi, interphase=interphase, hourglass_old=hg_old)
            if stats is not None:  # the active set's last test changes, not solved (solve_with_contacts), and the
                # largest share of the contacts' normal load they change in an increment
                stats["unresolved"] = stats.get("unresolved", 0) + info["unresolved"]
                stats["unresolved_load"] = max(stats.get("unresolved_load", 0.0), info["unresolved_load"])
                for key in ("residual_load", "locked_load"):  # how far the last solve is from the law (law_residual)
                    stats[key] = max(stats.get(key, 0.0), info[key])
        cstate.last_info = info
        cg_its, nw_its = info["cg"], info["newton"]
    else:
        sol = make_solver(lam, mu, sy, code).solve_increment(d_e, stress_old=s_old, tol=tol, maxiter=maxiter,
                                                             hourglass_old=hg_old)
        cg_its, nw_its = sol.cg_iterations, sol.newton_iterations
    last.clear()  # the hierarchy is not needed past the solve (free it before the remap)
    if stats is not None:  # macroscopic calendering pressure: mean normal stress on the roll
        stats["pressure"] = -float(sol.stress[0, nt:].mean())
    sig = sol.stress[:, :nt]
    d_eps = sol.strain[:, :nt]
    hg_new = sol.hourglass(hg_old, dtype)
    if body is not None:  # the roll body's cells are pore again for the remap: no state, no weight in the
        # particle voxels' displacement (an open contact under it moves with its particle, not with the roll)
        sig[:, body], d_eps[:, body], hg_new[:, :, :nt][:, :, body] = 0, 0, 0
        mu = mu.copy()
        mu[:nt][body] = 0
    opened = np.isfinite(cstate.gap) if contacts else None
    if contacts:
        # an open contact voxel is a gap: its strain increment is the opening, not a strain of material
        d_eps[:, opened] = 0
    if membrane:  # sub-voxel shells: film stress from the surface strain and contact traction
        smat = cstate.shell_material
        strength = lut["frac"][cstate.shell_value]
        if cstate.shell_scatter is not None:  # each patch its own strength (the film's Weibull scatter)
            strength = strength * cstate.shell_scatter
        broken = shell_fracture(cstate.strain_films(d_eps, opened), sig, cstate.inst, cstate.shelled, broken,
                                e_shell_mpa=smat.youngs_modulus_gpa * 1e3, nu_shell=smat.poisson_ratio,
                                strength_mpa=strength)
    else:
        # brittle shell voxels: break where the von Mises stress exceeds the strength (between increments)
        vms = von_mises(sig)
        frac = lut["frac"][lab]
        newly = (code[:nt] == BRITTLE) & ~broken & (vms > frac)
        broken = broken | newly
        sig[:, broken] = 0
    # voxel-centre displacement = mean of the 8 corner nodes, plus the affine part of ΔE
    un = sol.displacement
    uc = _voxel_displacement(un, mu)
    anchor = un[:, 0].mean(axis=(1, 2))  # node plane at the cell bottom (inside stiff material)
    uc -= anchor[:, None, None, None]
    x_t = (np.arange(shape_c[0]) + 0.5) * h[0]
    uc[0] += d_e[0] * x_t[:, None, None]
    z_bot = n_coll + (un[0, n_coll].mean() - anchor[0] + d_e[0] * n_coll * h[0]) / h[0]
    z_top = nt + (un[0, nt % shape_c[0]].mean() - anchor[0] + d_e[0] * nt * h[0]) / h[0]
    # the share of the roll travel the coating took (none to take in a zero-strain re-solve)
    share = float((m_cur - (z_top - z_bot)) / travel) if m_next != m_cur else float("nan")
    uc = uc[:, :nt]
    mov = moving_value(lab)
    idx = np.nonzero(mov)
    pos_t = idx[0] + 0.5 + uc[0][idx] / h[0]
    target = np.empty((3, idx[0].size))
    target[0] = n_coll + (pos_t - z_bot) * (m_next / (z_top - z_bot)) - rounding_phase
    target[1] = idx[1] + 0.5 + uc[1][idx] / h[1]
    target[2] = idx[2] + 0.5 + uc[2][idx] / h[2]
    new_lab, src = remap_voxels(lab, mov, target, n_allowed=n_coll + m_next, seed=seed,
                                owner=None if cstate is None else cstate.inst)
    stress = _take(sig, src)
    hourglass = _take(hg_new[:, :, :nt], src)
    strain = _take(strain + d_eps, src)
    disp = _take(disp + uc.astype(dtype), src)
    broken = _take(broken, src, False)
    if cstate is not None:
        cstate.take(_take, src)
        if contacts:
            cstate.reshaped = reshaped_particles(src, cstate.inst, lab.shape)
        broken = cstate.cover_surfaces(broken)  # sub-voxel shells: the film stays on the surfaces
    img = None if img is None else _take(img, src, pore_gray)
    return new_lab, img, stress, strain, disp, broken, hourglass, share, cg_its, nw_its


def _packing_after(cstate, lab, n_coll, m_cur, m_next):
    """Local packing fraction of the contacts' skeleton at the end of the increment ``m_cur → m_next``
    layers (the compaction cap's state): today's, compressed affinely (solid conserved)."""
    phi = cstate.packing(lab, n_coll)
    return None if phi is None else np.minimum(phi * (m_cur / m_next), 1.0)


def _to_input_axes(arr, perm, side, kind):
    """Internal (thickness first, collector low) → the input's axes; kind: scalar|vector|tensor."""
    t_axis = perm[0]
    if kind == "scalar":
        a = arr[::-1] if side == "high" else arr
        return np.ascontiguousarray(np.moveaxis(a, 0, t_axis))
    a = arr[:, ::-1] if side == "high" else arr
    a = np.moveaxis(a, 1, 1 + t_axis)
    out = np.empty_like(a)
    if kind == "vector":
        for c in range(3):
            out[perm[c]] = -a[c] if (side == "high" and c == 0) else a[c]
        return out
    for c, (i, j) in enumerate(_PAIRS):
        oi, oj = sorted((perm[i], perm[j]))
        flip = side == "high" and ((i == 0) != (j == 0))
        out[_PAIRS.index((oi, oj))] = -a[c] if flip else a[c]
    return out


def _record(kind, value, lab, img, stress, strain, disp, broken, *, phases, lut, n_coll, m0, m_cur, h, rho0,
            area, thresholds, bins, stats, perm, side, keep, pore_v, coll_v, cstate=None, margin=0):
    vms = von_mises(stress).astype(np.float32)
    names = lut["names"]
    val = {n: v for v, n in names.items()}
    if cstate is not None:
        lab = cstate.output_labels(lab)
    inner = _inner(lab.shape, margin)
    active = lab == val["active"] if "active" in val else np.zeros(lab.shape, bool)
    contact = _contact_voxels(cstate, lab, coll_v)
    cores = contact_pct = None
    if contact is not None and cstate.contact_law == "passes":
        # the contact interphase carries the contact law's stress, not the particle's: left out
        inner &= ~contact
    elif contact is not None:
        # the cracked plane's contact voxels hold the law's soft moduli under the crack and are counted: the count
        # that does not depend on the voxel size (stop 30, the same cathodes calendered at 1 and 2 µm voxels, seeds
        # 1–3, 2.6–3.8 g/cm³: > 100 MPa within 3.7 points, without them 1.7–12.7 points apart — a layer one voxel
        # thick, yet its share falls only from 53 to 35 % at 3.0 g/cm³); the measure without them, and their
        # share, beside it
        n_act = int((active & inner).sum())
        contact_pct = 100.0 * int((active & inner & contact).sum()) / n_act if n_act else 0.0
        cores = crackable(vms, active & inner & ~contact, thresholds, n_coll=n_coll, bins=bins)[0]
    overall, profile = crackable(vms, active & inner, thresholds, n_coll=n_coll, bins=bins)
    by_particle, by_particle_se = (None, None) if cstate is None else particle_crackable(
        stress, cstate.inst, active & inner, thresholds)
    shell_v = val.get("shell")
    sh = lab == shell_v if shell_v is not None else None
    n_sh = int(sh.sum()) if sh is not None else 0
    n_broken = int((broken & sh).sum()) if sh is not None else 0
    rel_c, rel_e = shell_contacts(lab, broken, pore=pore_v, shell=shell_v, lithium=val.get("lithium"),
                                  collector=coll_v)
    solid = lab[n_coll:] != pore_v
    counts = {names[v]: int(c) for v, c in zip(*np.unique(lab, return_counts=True)) if v != pore_v}
    res = CalenderStep(
        target=kind, ratio=1.0 - m_cur / m0, density_g_cm3=rho0 * m0 / m_cur, thickness_um=m_cur * h[0],
        thickness_voxels=m_cur, porosity=1.0 - int(solid.sum()) / (area * m_cur), solid_voxels=counts,
        increments=stats["increments"], cg_iterations=stats["cg"], newton_iterations=stats["newton"],
        electrode_strain_share=float(np.mean(stats["share"])) if stats["share"] else 1.0,
        von_mises_active_mean_mpa=float(vms[active & inner].mean()) if (active & inner).any() else None,
        von_mises_active_max_mpa=float(vms[active & inner].max()) if (active & inner).any() else None,
        von_mises_solid_mean_mpa=float(vms[(lab != pore_v) & inner].mean()),
        crackable_volume_pct=overall, crackable_profile_pct=profile,
        shell_intact_fraction=(1.0 - n_broken / n_sh) if n_sh else None, shell_broken_voxels=n_broken,
        contact_collector_rel=rel_c, contact_electrolyte_rel=rel_e,
        roll_pressure_mpa=stats["pressure"] if stats["increments"] else 0.0,
        contacts_open_fraction=_open_fraction(cstate), edge_margin=int(margin),
        crackable_particles_pct=by_particle, crackable_particles_se_pct=by_particle_se,
        contact_voxels_pct=contact_pct, crackable_cores_pct=cores)
    state = None
    if keep:
        state = CalenderState(
            labels=_to_input_axes(lab, perm, side, "scalar"),
            broken_shell=_to_input_axes(broken, perm, side, "scalar"),
            von_mises_mpa=_to_input_axes(vms, perm, side, "scalar"),
            stress_mpa=_to_input_axes(stress, perm, side, "tensor"),
            strain=_to_input_axes(strain, perm, side, "tensor"),
            displacement_um=_to_input_axes(disp, perm, side, "vector"),
            image=None if img is None else _to_input_axes(img, perm, side, "scalar"),
            particles=_to_input_axes(cstate.inst, perm, side, "scalar") if cstate is not None and cstate.membrane
            else None)
    return res, state


def _contact_voxels(cstate, lab, coll_v):
    """The particle voxels on a contact face (to another particle, the collector, the roll; with the cracked
    plane also the CBD/binder bridges, whose faces carry its cracks) — the voxels the contact law governs —
    or None without a contact law."""
    if cstate is None or cstate.law is None:
        return None
    held = (lab == coll_v) if coll_v is not None else np.zeros(lab.shape, bool)
    if cstate.contact_law == "plane" and cstate.law.bridges:
        held = held | np.isin(lab, cstate.law.bridges)
    return foreign_faces(cstate.inst, held, top_is_roll=True)[0]


def _inner(shape, margin):
    """Mask without ``margin`` voxels next to the lateral faces (axes 1, 2)."""
    inner = np.ones(shape, bool)
    if margin > 0:
        for ax in (1, 2):
            m = min(margin, (shape[ax] - 1) // 2)
            sl = [slice(None)] * 3
            sl[ax] = slice(0, m)
            inner[tuple(sl)] = False
            sl[ax] = slice(shape[ax] - m, None)
            inner[tuple(sl)] = False
    return inner


def _open_fraction(cstate):
    info = None if cstate is None else cstate.last_info
    if not info or not info["interphase"]:
        return None
    return info["open"] / info["interphase"]


def _replace(res, **changes):
    import dataclasses

    return dataclasses.replace(res, **changes)


def _write_step_twin(path, res, state, *, voxel, t_axis, side, phases, design, kind, base_meta, settings):
    from ...twin import Step, create_twin

    params = {"target": kind, "ratio": res.ratio, "density_g_cm3": res.density_g_cm3, **settings, **base_meta}
    image = state.image if state.image is not None else (state.labels.astype(np.uint8) * 40)
    new_design = None
    if design is not None:
        new_design = design.at_density(res.density_g_cm3).to_dict() if design.loading_mg_cm2 is not None \
            else design.to_dict()
    labels = {"phases": state.labels, "broken_shell": state.broken_shell.astype(np.uint8)}
    if state.particles is not None:  # sub-voxel films: the conductive analysis joins particles, not voxels
        labels["particles"] = state.particles
    twin = create_twin(path, image, voxel_size=voxel, phases=phases, thickness_axis=t_axis, collector_side=side,
                       labels=labels,
                       design=new_design, cbd_as=settings["cbd_as"], step=Step("calender", params))
    step = Step("calender", params)
    twin.write_field("von_mises_mpa", state.von_mises_mpa, unit="MPa", step=step)
    twin.write_field("stress_mpa", state.stress_mpa.astype(np.float32), unit="MPa", step=step)
    twin.write_field("strain", state.strain.astype(np.float32), unit="1", step=step)
    twin.write_field("displacement_um", state.displacement_um.astype(np.float32), unit="um", step=step)
    twin.save_result("calender", res, step=step)

"""Crack volume in active-material particles, and its comparison with the crackable volume (SCIENCE.md §7).

Definition used here. A **crack voxel** is a pore voxel inside the closed envelope of an
active-material particle. The envelope of one particle is computed on that particle alone
(so the gap between two neighbouring particles is never counted):

1. morphological closing of the particle mask with an ellipsoidal structuring element of
   semi-axes ``ceil(crack_width_um / (2·voxel)) + 1`` voxels per axis (anisotropic voxels
   allowed; the extra voxel covers the digitised width of oblique cracks), which bridges gaps
   up to ``crack_width_um`` wide — cracks that open to the particle surface. The closing runs
   through two Euclidean distance transforms (``twinlab._morphology``), so its cost is linear in
   the particle's box whatever the radius in voxels (30-voxel radii at FIB-SEM voxel sizes);
2. hole filling of the closed mask — internal voids of any size fully enclosed by the particle
   (hollow cores);
3. crack mouths: where a crack cuts through the particle's convex surface, the outermost crack
   voxels have no particle wall on either side (the digitised surface curves away), so no
   closing recovers them (≈ 8 % of a crack through a 26-voxel particle). For particles with a
   crack, void voxels inside the particle's convex hull (voxel centres) and within
   ``mouth_voxels`` face steps (default 1) of a crack voxel are added. Intact particles are
   untouched.

What is not a crack: a pocket of pore that touches the current collector (the wedge between a
particle and the foil) is left out. The ends of the thickness axis (collector side, top surface)
are open space to the closing. The lateral faces are crops, beyond which is unknown: each
particle's closing is mirrored across the lateral faces its box reaches, so a crack that runs
out through a face is bridged up to it; of what the mirror adds only crack mouths are kept
(inside the convex hull of the particle's piece, continuing a crack the open-space closing
bridges inside it), so a particle cut short of its widest section gains no envelope along the
face.

Cracks wider than ``crack_width_um`` that reach the surface are treated as surface
concavities, not cracks: set ``crack_width_um`` to the widest crack you want to count.

Particles: by default the instances of :func:`twinlab.segment.split_particles` with the same
``crack_width_um`` and its crack-fragment merge (``merge_cracked=True``), which keeps a cracked particle one particle (its cracks are inside its
envelope, not boundaries between fragments). Pass your own instance labels (``particles``), or
``particles="components"`` for the connected components of the closed active phase (two
particles closer than ``crack_width_um`` then merge and the pore neck between them counts).

2D: a single slice (y, x) — a nano-CT slice or an SEM cross-section — gives the same quantities
as areas (µm²) and area fractions; results say ``dimensions='2D'``. A section shows a crack of
width w cut at angle φ between the crack's and the section's planes w / sin φ wide, so the
per-particle closing of a section bridges ``SECTION_WIDENING`` (2) × ``crack_width_um``: every
trace of a crack of the stated width cut at φ ≥ 30°, for randomly oriented cracks 87 % of their
section area (cos φ is uniform; Delesse: area fraction = volume fraction for each orientation),
all of it for cracks half as wide. The section's particles are still split with
``crack_width_um`` (a closing twice as wide there joins neighbours: their contacts look like
cracks). Measured on generated damaged cathodes (``tests/benchmarks/bench_cracks.py``), true
particles given: crack area −40 → −8 % on the section with the widest oblique trace (seed 2), no
crack found in sections of uncracked electrodes (seeds 1–5).

Bites (2D). A section can cut a crack so that its far wall is out of the section: near the
particle's outline the crack is then void between the solid and the outline, open to the pore,
which no closing bridges and which lies outside the convex hull of the visible solid (generated
seed 3, 64 µm sections, true particles given: 895 of the 1170 missed crack pixels; crack area
−15.6 %). The particle's outline supplies the missing wall where it is an ellipse (a section
of a roughly ellipsoidal secondary particle): an ellipse is fitted to the outline of the closed,
filled envelope (the image's faces are no outline), refitted without the points more than
``BITE_RULE["inside"]`` (1.5) pixels inside it (crack walls, cuts against neighbours), and when
at least ``share`` (60 %) of the outline lies on it within ``rms`` (0.5) pixels, the void inside
it (pixel centres half a pixel in) that borders the envelope joins the envelope as crack. An
outline that is no ellipse (an irregular particle) gains nothing. The bar of 0.5 pixel was chosen
on the particles found in seeds 1–5's sections and in the test fixture: the bites that added
void outside the true cracks (a found region holding a neighbour's piece, mostly on the image
edge) had outlines 0.52–0.78 pixel off their ellipse, one 0.46; those that added true crack
pixels mostly ≤ 0.5 (a digitised circle: ~0.3). True particles given, seeds
1–5: crack area −6.5/−9.1/−15.6/−5.2/−6.3 → −4.2/−4.4/−5.3/−5.0/−5.0 % (64 µm sections),
−10.9/−8.1/−4.6/−3.3/−9.7 → −10.9/−2.8/−3.7/−3.3/−7.6 % (12 µm); no crack pixel outside the
truth, none in the sections of the uncracked electrodes (seeds 1–3). 3D is unchanged (a volume
shows every wall of its cracks).

Particles cut by the image edge (``edge_particles``). A lateral face is a crop: the part of a
particle beyond it is unseen, and so are the far walls of its cracks that run out through the
face (a crack along the face is void open to the crop: seed 9 of
``tests/benchmarks/bench_cracks.py``, a quarter of one particle's true crack area outside the hull
of its visible solid; the bite rule above now attributes it where the visible outline fits an
ellipse: 12 µm sections, seed 9 crack area −17.3 → −3.7 %). ``edge_particles="exclude"`` leaves
out of every number (crack area, fractions, histogram, profile, crack mask) the particles whose
solid comes within ``crack_width_um`` of a lateral face (a gap that narrow to the face may be a
crack running out through it), the guard-frame rule of particle statistics (ImageJ "Analyze
Particles: exclude on edges", ``skimage.segmentation.clear_border``, stereological counting
frames); ``edge_particles`` counts them. "keep" measures every particle in view as seen.
Exclusion is unbiased for a crack fraction that does not depend on particle size (larger particles are cut more often: Miles–Lantuéjoul), but it leaves fewer
particles: on the benchmark's 12 µm wide sections more than half of them (seeds 1–11: 8–18 of
22–32 per seed's three sections), and one split or merge among the rest then weighs twice as
much (seed 6 crack +92 %, seed 11 −58 %, r 0.01), while "keep" meets the issue's bar on all 11
seeds there (stop 22). On sections 64 µm wide (40–50 particles each, the issue's nano-CT slice;
``bench_cracks.py --wide-um 64``) exclusion leaves out 13–18 of 109–143 per seed and meets the
bar on all 11 seeds; "keep" on 10 (held-out seed 11: crack −14.5 %, r 0.85). The default,
"auto", therefore excludes them from a 2D section when at least ``AUTO_EXCLUDE_MIN_PARTICLES``
(30) particles remain wholly in view and keeps them otherwise; a volume keeps them (the 3D
benchmark meets the bar with "keep" on all 11 seeds; exclusion in 3D was not scored, and a
volume shows a cut particle's cracks in depth). ``CrackResult.edge_rule`` says which rule was
applied.

Thin face pieces: a piece cut by a lateral face that is a sheet thinner than the closing can
wall a crack in (:func:`_too_thin`) has crack fraction NaN; ``thin_particles`` counts them, and
they are left out of ``cracked_particles``; their crack voxels, if any are found, still count in
the total.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numba
import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from .. import _morphology as morph
from .._chunked import is_dask
from .._results import Result, to_jsonable
from .._validation import VoxelSize, axis_index, require_integer_labels, require_positive
from ..errors import InputError
from ..phases import DEFAULT_PHASES, PhaseTable
from ..segment.instances import _fit_points, fit_quadric

SECTION_WIDENING = 2.0  # 2D: the closing bridges this many times crack_width_um (module doc)
# 2D bites (module doc): outline points more than `inside` pixels inside the fitted ellipse are
# left out of the fit (up to `rounds` refits); the ellipse counts only when at least `share` of
# the outline is on it within `rms` pixels
BITE_RULE = dict(inside=1.5, rms=0.5, share=0.6, rounds=5)

#: How particles cut by a lateral face of the image are treated (module doc, "Particles cut by the image edge").
EDGE_RULES = ("auto", "keep", "exclude")
#: "auto" leaves the particles cut by a lateral face out when at least this many remain wholly in
#: view: 30, between the benchmark's 12 µm sections (≤ 10 particles in view, where exclusion failed
#: the issue's bar on 2 of 11 seeds) and its 64 µm ones (40–50 in view, 34–46 of them whole, where it met
#: it on all 11 and "keep" failed one).
AUTO_EXCLUDE_MIN_PARTICLES = 30

__all__ = ["CrackResult", "ProfileComparison", "crack_volume", "compare_crack_profiles", "analyze_twin"]


@dataclasses.dataclass(frozen=True)
class CrackResult(Result):
    """Crack statistics of one volume; ``crack_mask`` (bool, like the input) is not in :meth:`to_dict`.

    ``dimensions`` is "3D" or "2D": for a 2D slice the ``*_volume_um3`` fields are areas in µm²
    and every fraction is an area fraction of the section (not the particle's volume).

    Profile convention: ``depth_um`` is the bin centre measured from the collector side
    (index 0 for ``collector_side='low'``) along the thickness axis, starting at the foil surface:
    leading layers that are mostly (≥ 50 %) ``collector`` are left out of the profile, so it
    covers the coating only, like the compression solver's crackable-volume profile. ``profile_percent`` is the
    share of the total crack volume in each bin (sums to 100, the *normalised* profile);
    ``local_percent`` is the crack volume in the bin as % of the particle-envelope volume there.
    """

    crack_volume_um3: float
    envelope_volume_um3: float
    crack_volume_percent: float  # of the particle envelope volume
    n_particles: int
    particle_ids: tuple[int, ...]
    particle_crack_fraction: tuple[float, ...]  # crack voxels / envelope voxels per particle (0–1; NaN: thin)
    cracked_particles: int  # particles with crack fraction > 0.5 %
    depth_um: tuple[float, ...]
    profile_percent: tuple[float, ...]
    local_percent: tuple[float, ...]
    crack_width_um: float
    structuring_radius_vox: tuple[int, ...]
    thickness_axis: str
    collector_side: str
    foil_thickness_um: float  # collector layers skipped before depth 0 (0 when the volume holds no foil)
    method: str
    dimensions: str = "3D"
    thin_particles: int = 0  # face-cut pieces too thin to show a crack: their crack fraction is NaN
    edge_particles: int = 0  # particles cut by a lateral face of the image, left out (edge_rule "exclude")
    edge_rule: str = "keep"  # the rule applied to them: "keep" or "exclude" (edge_particles="auto" decides)
    crack_mask: Any = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "crack_mask"}


@dataclasses.dataclass(frozen=True)
class ProfileComparison(Result):
    """Observed crack profile beside a simulated crackable-volume profile on a common depth grid."""

    depth: tuple[float, ...]  # common grid (relative 0–1 from the collector, or µm)
    depth_unit: str
    crack: tuple[float, ...]  # both normalised to unit area over ``depth``
    crackable: tuple[float, ...]
    pearson_r: float
    l1_distance: float  # ½∫|a−b| of the unit-area profiles: 0 identical shape, 1 disjoint
    crack_peak_depth: float
    crackable_peak_depth: float
    note: str


# ============================================================================ public functions
def crack_volume(
    labels: Any,
    *,
    particles: Any = None,
    phase: str = "active",
    pore: str = "pore",
    phases: PhaseTable = DEFAULT_PHASES,
    thickness_axis: int | str = "y",
    collector_side: str = "low",
    crack_width_um: float = 1.0,
    voxel_size_um: Any = 1.0,
    bin_um: float | None = None,
    mouth_voxels: int | None = None,
    edge_particles: str = "auto",
) -> CrackResult:
    """Crack voxels (pore inside a particle's closed envelope), total and per-particle crack fraction
    and the normalised crack-volume profile along the thickness.

    Parameters
    ----------
    labels : (z, y, x) integer array (numpy, or dask — computed, the analysis works in memory)
        Phase labels.
    particles : integer array like ``labels``, optional
        Instance labels of the particles (0 = none). Recommended when particles touch.
    phase, pore : phase names of the cracking material and of the void.
    thickness_axis, collector_side : axis of the electrode thickness and where the collector sits
        ('low' or 'high' index end); depths are measured from it.
    crack_width_um : float
        Widest surface-opening crack to count (µm); sets the closing element (see module doc).
    voxel_size_um : float, (dz, dy, dx) or VoxelSize
    bin_um : float, optional
        Bin width of the profile along the thickness (default: one voxel layer).
    mouth_voxels : int, optional
        Depth (face steps) of the crack-mouth completion (module doc, step 3); 0 switches it off.
        Default 1 with ``particles`` given, 0 without (the hull of merged particles spans the
        pores between them).
    edge_particles : "auto" (default), "keep" or "exclude"
        Particles cut by a lateral face of the image (module doc, "Particles cut by the image
        edge"; their solid within ``crack_width_um`` of it): "exclude" leaves them out of every
        number (totals, fractions, profiles, the crack mask) and counts them in
        ``CrackResult.edge_particles``; "keep" measures them as seen; "auto" excludes them from a 2D
        section when at least :data:`AUTO_EXCLUDE_MIN_PARTICLES` particles remain wholly in view,
        else keeps them (on a narrow image exclusion leaves too few), and keeps them in a volume
        (module doc). ``CrackResult.edge_rule`` says which was applied.

    Raises
    ------
    InputError
        No voxel of ``phase``; shapes that differ; non-positive sizes.
    """
    if np.ndim(labels) not in (2, 3):
        raise InputError(f"labels must be a 3D volume (z, y, x) or a 2D slice (y, x), got shape {np.shape(labels)}")
    require_integer_labels(labels)
    labels = np.asarray(labels.compute() if is_dask(labels) else labels)
    if labels.ndim == 3 and labels.shape[0] == 1:
        # a single slice stored as a (1, y, x) twin is a 2D section: a 3D closing would see a
        # one-voxel-thick sheet and close nothing across it
        flat = particles[0] if isinstance(particles, np.ndarray) or is_dask(particles) else particles
        res = crack_volume(labels[0], particles=flat, phase=phase, pore=pore, phases=phases,
                           thickness_axis=thickness_axis, collector_side=collector_side,
                           crack_width_um=crack_width_um, voxel_size_um=voxel_size_um, bin_um=bin_um,
                           mouth_voxels=mouth_voxels, edge_particles=edge_particles)
        return dataclasses.replace(res, crack_mask=res.crack_mask[None])
    ndim = labels.ndim
    voxel = VoxelSize.parse(voxel_size_um)
    step = voxel.as_tuple()[-ndim:]
    width = require_positive(crack_width_um, "crack_width_um")
    ax = axis_index(thickness_axis) - (3 - ndim)
    if ax < 0:
        raise InputError(f"a 2D slice has axes (y, x); thickness_axis {thickness_axis!r} is not one of them")
    if collector_side not in ("low", "high"):
        raise InputError(f"collector_side must be 'low' or 'high', got {collector_side!r}")
    if edge_particles not in EDGE_RULES:
        raise InputError(f"edge_particles must be one of {', '.join(map(repr, EDGE_RULES))}, got {edge_particles!r}")
    guard = tuple(int(math.ceil(width / s - 1e-9)) for s in step)  # a crack width, in voxels per axis
    solid = labels == phases.value(phase)
    void = labels == phases.value(pore)
    if not solid.any():
        raise InputError(f"no {phase!r} voxels (phase value {phases.value(phase)}) in the volume; cracks are "
                         "measured inside active particles — check the phase table or pass phase=")
    stated = morph.closing_radius_vox(width, step)  # the element that bridges crack_width_um
    radius = morph.closing_radius_vox(width * (SECTION_WIDENING if ndim == 2 else 1.0), step)
    if particles is None:
        from ..segment import split_particles
        from ..segment.instances import DEFAULT_MIN_VOLUME_UM3

        particles = split_particles(labels, phase=phase, phases=phases, voxel_size_um=voxel,
                                    crack_width_um=width, merge_cracked=True,
                                    min_volume_um3=DEFAULT_MIN_VOLUME_UM3)
        method = "closing+fill per particle of split_particles (crack fragments merged)"
        mouth_voxels = 1 if mouth_voxels is None else mouth_voxels
    elif isinstance(particles, str):
        if particles != "components":
            raise InputError(f"particles must be instance labels, None or 'components', got {particles!r}")
        particles, _ = ndi.label(morph.close(solid, radius) | solid)
        particles[~solid] = 0  # a particle is its own active voxels; the closing only grouped them
        method = "closing+fill per connected component of the closed active phase"
        mouth_voxels = 0 if mouth_voxels is None else mouth_voxels
    else:
        require_integer_labels(particles, name="particles")
        particles = np.asarray(particles.compute() if is_dask(particles) else particles)
        if particles.shape != labels.shape:
            raise InputError(f"particles have shape {particles.shape}, labels {labels.shape}; pass the "
                             "instance labels of the same twin")
        particles = np.where(solid, particles, 0)
        method = "closing+fill per given particle"
        mouth_voxels = 1 if mouth_voxels is None else mouth_voxels
    if mouth_voxels:
        method += f" + crack mouths ({int(mouth_voxels)} voxel inside the convex hull)"
    collector = labels == phases.value("collector") if "collector" in phases else None

    crack = np.zeros(labels.shape, dtype=bool)
    envelope = np.zeros(labels.shape, dtype=bool)
    ids, fractions = [], []
    boxes = ndi.find_objects(particles)
    # within a crack width of a crop: part of the particle, or of its cracks, is out of view
    cut = {pid for pid, sl in enumerate(boxes, start=1) if sl is not None and on_lateral_face(sl, labels.shape, ax, guard)}
    edge_rule = _edge_rule(edge_particles, ndim, n_whole=sum(sl is not None for sl in boxes) - len(cut))
    n_edge = len(cut) if edge_rule == "exclude" else 0
    for pid, sl in enumerate(boxes, start=1):
        if sl is None or (edge_rule == "exclude" and pid in cut):
            continue
        # the closing lies in the particle's convex hull, hence in its box: one voxel of margin for
        # the hole filling and the mouth step. The closing sees the particle alone, mirrored across
        # the volume's lateral faces (a crop: a crack running out through it is bridged there)
        # and in open space elsewhere (the collector side and the top surface close nothing)
        box = tuple(slice(max(0, s.start - 1), min(n, s.stop + 1)) for s, n in zip(sl, labels.shape))
        own = particles[box] == pid
        env = morph.fill_holes(_close_at_faces(own, radius, box, labels.shape, ax))
        if ndim == 2:  # the envelope's outline may run on past the solid's box: a bite (module doc)
            box, env = _section_bite(env, box, radius, void, step)
            own = particles[box] == pid
        c = env & void[box]
        if collector is not None and c.any():
            c = _drop_collector_gaps(c, collector[box])
            env = own | c
        if mouth_voxels and c.any():
            grown = _add_mouth(own, c, void[box], mouth_voxels)
            env |= grown
            c = grown
        crack[box] |= c
        envelope[box] |= env
        ids.append(pid)
        thin = _too_thin(own, radius, stated, sl, labels.shape, ax)
        fractions.append(float("nan") if thin else float(c.sum()) / float(env.sum()))

    if not ids:
        raise InputError(f"all {n_edge} particles are cut by a lateral face of the image, so none is left to "
                         "measure; pass edge_particles='keep' to measure them as they are seen")
    vox = float(np.prod(step))
    n_crack, n_env = int(crack.sum()), int(envelope.sum())
    n_foil = _foil_layers(labels, ax, collector_side, phases)
    depth, prof, local = _profile(crack, envelope, ax, step[ax], collector_side, bin_um, n_foil)
    if edge_rule == "exclude":
        method += f"; {n_edge} particles cut by a lateral face of the image left out"
    elif cut:
        method += f"; {len(cut)} particles cut by a lateral face of the image measured as seen"
    if edge_particles == "auto":
        method += f" (edge rule auto: {edge_rule})"
    if ndim == 2:
        method += "; 2D slice: areas in µm², fractions of the section's area"
    return CrackResult(
        crack_volume_um3=n_crack * vox, envelope_volume_um3=n_env * vox,
        crack_volume_percent=100.0 * n_crack / n_env, n_particles=len(ids), particle_ids=tuple(ids),
        particle_crack_fraction=tuple(fractions), cracked_particles=int(sum(f > 0.005 for f in fractions)),
        thin_particles=int(sum(math.isnan(f) for f in fractions)),
        depth_um=tuple(depth), profile_percent=tuple(prof), local_percent=tuple(local),
        crack_width_um=width, structuring_radius_vox=radius, thickness_axis="zyx"[ax + 3 - ndim],
        collector_side=collector_side, foil_thickness_um=n_foil * step[ax], method=method,
        dimensions=f"{ndim}D", edge_particles=n_edge, edge_rule=edge_rule, crack_mask=crack,
    )


def _edge_rule(requested: str, ndim: int, *, n_whole: int) -> str:
    """The edge rule applied: "auto" excludes the particles cut by a lateral face of a 2D section
    when at least :data:`AUTO_EXCLUDE_MIN_PARTICLES` remain wholly in view, and keeps them in a
    volume (module doc)."""
    if requested != "auto":
        return requested
    return "exclude" if ndim == 2 and n_whole >= AUTO_EXCLUDE_MIN_PARTICLES else "keep"


def compare_crack_profiles(crack_profile: Any, crackable_profile: Any, *, relative_depth: bool = True,
                           threshold_mpa: float | None = None, n_points: int = 50) -> ProfileComparison:
    """Set an observed crack profile beside the simulated crackable-volume profile.

    Parameters
    ----------
    crack_profile : CrackResult or (depth, values)
        Observed crack volume along the thickness.
    crackable_profile : the compression solver's step (``CalenderStep`` or its dict, with
        ``crackable_profile_pct``), a sequence of values in equal bins from the collector, or
        (depth, values)
        Simulated % of active volume above the stress threshold along the thickness.
    relative_depth : bool
        Map each profile's depth to 0–1 of its own extent (0 = collector side) before comparing,
        so a calendered twin and a simulation of different thickness line up; depths are taken as
        centres of equal bins, so the extent is last + first centre. Else compare in µm over the
        overlapping range (values without depths need ``relative_depth=True``).
    threshold_mpa : float, optional
        Which stress threshold of a ``crackable_profile_pct`` record (default: the lowest).
    n_points : number of points of the common grid.

    Both profiles are normalised to unit area on the common grid; the similarity is Pearson's r
    and the L1 distance ½∫|a−b| (0 = same shape, 1 = no overlap).
    """
    d1, v1 = _as_profile(crack_profile, "crack_profile", threshold_mpa)
    d2, v2 = _as_profile(crackable_profile, "crackable_profile", threshold_mpa)
    if not relative_depth and (d1 is None or d2 is None):
        raise InputError("a profile given without depths can only be compared with relative_depth=True")
    if relative_depth:
        d1, d2 = _relative(d1, v1.size), _relative(d2, v2.size)
        lo, hi, unit = 0.0, 1.0, "fraction of thickness from the collector"
    else:
        lo, hi, unit = max(d1.min(), d2.min()), min(d1.max(), d2.max()), "um from the collector"
        if hi <= lo:
            raise InputError(f"the profiles do not overlap in depth ({d1.min():.3g}–{d1.max():.3g} vs "
                             f"{d2.min():.3g}–{d2.max():.3g} µm); use relative_depth=True")
    grid = np.linspace(lo, hi, int(n_points))
    a = _unit_area(grid, np.interp(grid, d1, v1), "crack_profile")
    b = _unit_area(grid, np.interp(grid, d2, v2), "crackable_profile")
    r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    l1 = float(0.5 * np.trapezoid(np.abs(a - b), grid))
    note = ("Different quantities: the crack profile is void observed inside particles of the calendered "
            "sample (cracks that happened); the crackable-volume profile is the simulated share of active "
            "material whose von Mises stress exceeds the threshold (where cracking can start). Only their "
            "shapes along the thickness are compared (both normalised to unit area), not their magnitudes.")
    return ProfileComparison(
        depth=tuple(grid.tolist()), depth_unit=unit, crack=tuple(a.tolist()), crackable=tuple(b.tolist()),
        pearson_r=r, l1_distance=l1, crack_peak_depth=float(grid[np.argmax(a)]),
        crackable_peak_depth=float(grid[np.argmax(b)]), note=note)


def analyze_twin(twin: Any, *, crack_width_um: float = 1.0, bin_um: float | None = None,
                 crackable_profile: Any = None, threshold_mpa: float | None = None,
                 write_labels: bool = True, particles: str = "auto", edge_particles: str = "auto") -> CrackResult:
    """Crack volume of a twin (labels ``phases``); stores result ``cracks`` and labels ``cracks``
    (1 = crack voxel).

    ``particles``: "found" — instances found for the crack analysis (cracked particles kept
    whole, see :func:`crack_volume`); "stored" — the twin's ``particles`` labels; "components";
    "auto" (default) — the stored labels unless they come from a plain watershed
    (``split_particles`` without ``crack_width_um``, which cuts cracked particles along their
    cracks, so the cracks would not count), else "found".

    The stored result also holds the comparison with a crackable-volume profile when one is
    available: ``crackable_profile`` (a profile, a ``CalenderStep``, or the path of a simulated
    twin whose ``calender`` result is read), else this twin's own ``calender`` result. The
    comparison is skipped (and the result says why) when the twin shows no cracks.

    ``edge_particles``: "auto" (default), "keep" or "exclude" the particles cut by a lateral face
    of the image, see :func:`crack_volume` (pipeline config: ``analyses.options.cracks.edge_particles``).
    """
    from ..twin import Step, Twin

    labels = twin.labels("phases")
    if particles not in ("auto", "found", "stored", "components"):
        raise InputError(f"particles must be 'auto', 'found', 'stored' or 'components', got {particles!r}")
    if particles == "auto":
        particles = "stored" if twin.has_labels("particles") and _crack_aware(twin.provenance) else "found"
    if particles == "stored" and not twin.has_labels("particles"):
        raise InputError("the twin has no 'particles' labels; segment with particles or use particles='found'")
    given = {"found": None, "components": "components"}.get(particles) if particles != "stored" else \
        twin.labels("particles")
    result = crack_volume(labels, particles=given, phases=twin.phases, thickness_axis=twin.thickness_axis,
                          collector_side=twin.collector_side, crack_width_um=crack_width_um,
                          voxel_size_um=twin.voxel_size, bin_um=bin_um, edge_particles=edge_particles)
    params = {"crack_width_um": crack_width_um, "bin_um": bin_um, "particles": particles,
              "edge_particles": edge_particles, "method": result.method}
    if write_labels:
        twin.write_labels("cracks", result.crack_mask.astype(np.uint8), step=Step("crack_volume", params))
    source = None
    if isinstance(crackable_profile, (str, Path)):
        source, crackable_profile = str(crackable_profile), Twin.open(crackable_profile).load_result("calender")
    elif crackable_profile is None and "calender" in twin.result_names:
        source, crackable_profile = "this twin's calender result", twin.load_result("calender")
    stored: dict[str, Any] = result.to_dict()
    if crackable_profile is not None:
        if result.crack_volume_um3 > 0:
            cmp = compare_crack_profiles(result, crackable_profile, threshold_mpa=threshold_mpa)
            stored["comparison"] = {**cmp.to_dict(), "crackable_source": source or "given profile"}
        else:
            stored["comparison"] = {"skipped": "no crack voxels in this twin (a simulated twin has no cracks; "
                                               "compare a reconstructed calendered twin)"}
    twin.save_result("cracks", stored, step=Step("cracks", params))
    return result


# ============================================================================ helpers
def _crack_aware(provenance: list[dict[str, Any]]) -> bool:
    """Whether the twin's ``particles`` layer keeps cracked particles whole: written as given
    labels (e.g. truth), or by ``split_particles`` with a crack width."""
    for step in reversed(provenance):
        params = step.get("params") or {}
        if step.get("step") == "split_particles":
            return bool(params.get("crack_width_um"))
        if step.get("step") in ("add_labels", "create") and params.get("name") == "particles":
            return True
    return True  # labels given at creation


def _close_at_faces(own: np.ndarray, radius: tuple[int, ...], box: tuple[slice, ...], shape: tuple[int, ...],
                    thickness_ax: int) -> np.ndarray:
    """The particle's closing, mirrored across the lateral faces of the volume its box reaches.

    A lateral face is a crop: beyond it is unknown, not empty, and a crack that runs out through
    it has walls on both sides there. The thickness axis's ends are the collector and the top
    surface (or above it), real ends of the particles: open space. Of what the mirror adds to the
    open-space closing only the mouths of cracks are kept: voxels inside the convex hull of their
    piece of the particle (mirroring also closes the waist where a particle cut short of its
    widest section meets its image, outside the hull) in gaps that continue a crack the
    open-space closing bridges inside the particle (a pocket at the face alone is a concavity)."""
    sides = [(b.start == 0, b.stop == n) if a != thickness_ax else (False, False)
             for a, (b, n) in enumerate(zip(box, shape))]
    base = morph.close(own, radius)
    if not any(map(any, sides)):
        return base
    mirrored = morph.close(own, radius, mirror=sides)
    if not (mirrored & ~base).any():
        return base
    closed = base.copy()
    # the hull of each piece on its own: given labels may hold a particle wrapped round a
    # periodic volume, one piece at each face, whose common hull spans the volume
    pieces, _ = ndi.label(mirrored)
    for i, sl in enumerate(ndi.find_objects(pieces), start=1):
        extra = (pieces[sl] == i) & ~base[sl]
        hull = _hull_image(own[sl] & (pieces[sl] == i)) if extra.any() else None
        if hull is None:
            continue
        closed[sl] |= extra & hull
    gaps, _ = ndi.label(closed & ~own)
    inner = np.unique(gaps[base & ~own])
    return base | np.isin(gaps, inner[inner > 0])


def on_lateral_face(box: tuple[slice, ...], shape: tuple[int, ...], thickness_ax: int,
                    guard: tuple[int, ...] | None = None) -> bool:
    """Whether a particle whose solid spans ``box`` comes within ``guard`` voxels (per axis;
    default 0: touches) of a lateral face of the volume (a crop), not counting the ends of the
    thickness axis (the collector and the top surface: real ends)."""
    guard = guard or (0,) * len(shape)
    return any(b.start <= g or b.stop >= n - g
               for a, (b, n, g) in enumerate(zip(box, shape, guard)) if a != thickness_ax)


def _too_thin(own: np.ndarray, radius: tuple[int, ...], stated: tuple[int, ...], sl: tuple[slice, ...],
              shape: tuple[int, ...], thickness_ax: int) -> bool:
    """Whether ``own`` (the box of the piece ``sl``) is a piece cut by a lateral face of the volume
    too thin for the closing to show a crack through it: a sheet along the face (a periodic
    wrap's or a crop's sliver).

    The closing element (semi-axes ``r``) lowered onto a sheet over a crack of the stated width
    (``2(r₀ − 1)`` voxels, ``r₀`` = ``stated``, the element for ``crack_width_um``) sinks
    ``d = r − √(r² − (r₀ − 1)²)`` voxels into it past the crack's walls (3D, r = r₀ = 6:
    2.7 voxels; a 2D section's twice wider element, r = 11: 1.2): a sheet whose mirrored
    thickness (the piece and its image across the face) holds no ball of radius ``d`` — its
    erosion by the ellipsoid of semi-axes ``d`` is empty — has its cracks open to the element
    from its flat side, so its crack fraction is undefined (NaN). A whole particle of any size
    is walled on every side of its cracks."""
    sides = [(b.start == 0, b.stop == n) if a != thickness_ax else (False, False)
             for a, (b, n) in enumerate(zip(sl, shape))]  # the piece itself on the face, not its box's margin
    if not any(map(any, sides)):
        return False
    pads = [(min(r, n) * lo, min(r, n) * hi) for r, n, (lo, hi) in zip(radius, own.shape, sides)]  # one image
    sink = [r - math.sqrt(r * r - (r0 - 1) ** 2) for r, r0 in zip(radius, stated)]
    return not morph.erode(np.pad(own, pads, mode="symmetric"), sink).any()


def _hull_image(own: np.ndarray) -> np.ndarray | None:
    """The voxel centres of ``own``'s box inside the convex hull of its surface voxel centres
    (boundary included); None for a particle with no full-dimensional hull (flat).

    Row by row along the last axis: every hull facet bounds the row's interval from one side, so
    the cost is rows × facets plus the box's voxels (locating points by a walk in a Delaunay
    tessellation of the hull cost ~1 s per large particle at 0.3 µm voxels; testing every voxel
    against every facet, voxels × facets)."""
    points = np.argwhere(own & ~ndi.binary_erosion(own))
    if len(points) <= own.ndim:
        return None
    try:
        eq = ConvexHull(points).equations  # unit normal · x + offset ≤ 0 inside
    except QhullError:
        return None
    rows = np.ascontiguousarray(np.indices(own.shape[:-1]).reshape(own.ndim - 1, -1).T, dtype=float)
    lo = np.empty(len(rows))
    hi = np.empty(len(rows))
    _row_intervals(rows, eq, 1e-9, lo, hi)
    k = np.arange(own.shape[-1])
    inside = (k >= lo[:, None]) & (k <= hi[:, None])
    return inside.reshape(own.shape)


@numba.njit(cache=True)
def _row_intervals(rows, eq, tol, lo, hi):
    """For each row (its coordinates but the last), the interval ``lo ≤ k ≤ hi`` of the last
    coordinate inside every facet ``eq[:, :-2] · row + eq[:, -2] k + eq[:, -1] ≤ tol`` (empty:
    lo > hi). One pass over the facets per row, no (rows × facets) temporaries: a numpy version
    spent most of the crack analysis's hull time allocating and reducing them."""
    m = rows.shape[1]
    for r in range(rows.shape[0]):
        low = -np.inf
        high = np.inf
        for f in range(eq.shape[0]):
            rest = rows[r, 0] * eq[f, 0]
            for a in range(1, m):
                rest += rows[r, a] * eq[f, a]
            rest += eq[f, m + 1]  # the facet's value at k = 0
            n = eq[f, m]
            if n < -tol:
                low = max(low, (tol - rest) / n)
            elif n > tol:
                high = min(high, (tol - rest) / n)
            elif rest > tol:  # a facet parallel to the row that the row lies outside
                low, high = np.inf, -np.inf
            if low > high:
                break
        lo[r] = low
        hi[r] = high


def _add_mouth(own: np.ndarray, crack: np.ndarray, void: np.ndarray, steps: int) -> np.ndarray:
    """Grow ``crack`` by up to ``steps`` face steps into void voxels inside the convex hull of the
    particle (voxel centres, :func:`_hull_image`)."""
    hull = _hull_image(own)
    if hull is None:
        return crack
    allowed = void & hull
    out = crack.copy()
    for _ in range(int(steps)):
        grown = ndi.binary_dilation(out) & allowed & ~out
        if not grown.any():
            break
        out |= grown
    return out


def _section_bite(env: np.ndarray, box: tuple[slice, ...], radius: tuple[int, ...], void: np.ndarray,
                  step: tuple[float, ...]) -> tuple[tuple[slice, ...], np.ndarray]:
    """2D: the particle's envelope ``env`` (its closed, filled solid in ``box``) grown by the
    void inside the ellipse its outline fits, where that void borders it — a crack whose far wall
    the section does not show (module doc, "Bites"); returned with its box, grown by the closing
    radius. Unchanged when the outline is no ellipse (:data:`BITE_RULE`)."""
    shape = void.shape
    grow = tuple(slice(max(0, b.start - r), min(n, b.stop + r)) for b, r, n in zip(box, radius, shape))
    big = np.zeros(tuple(g.stop - g.start for g in grow), dtype=bool)
    big[tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, grow))] = env
    # the outline: not the image's faces (a crop), where border_value=1 sees solid beyond
    edge = big & ~ndi.binary_erosion(big, border_value=1)
    for a, (g, n) in enumerate(zip(grow, shape)):
        for at, face in ((0, g.start == 0), (-1, g.stop == n)):
            if face:
                np.moveaxis(edge, a, 0)[at] = False
    px = float(np.mean(step))
    pts = np.argwhere(edge) * np.asarray(step)
    keep = np.ones(len(pts), dtype=bool)
    for _ in range(BITE_RULE["rounds"]):
        if keep.sum() < _fit_points(2):
            return box, env
        distance, ellipse = fit_quadric(pts[keep])
        if not ellipse:
            return box, env
        d = distance(pts)
        # points far inside the ellipse are not its outline: crack walls, cuts against neighbours
        outline = d >= -BITE_RULE["inside"] * px
        if (outline == keep).all():
            break
        keep = outline
    if keep.mean() < BITE_RULE["share"] or np.sqrt(np.mean(d[keep] ** 2)) > BITE_RULE["rms"] * px:
        return box, env
    grid = np.indices(big.shape).reshape(2, -1).T * np.asarray(step)
    inside = (distance(grid) < -0.5 * px).reshape(big.shape)  # pixel centres half a pixel in
    bite, n = ndi.label(inside & void[grow] & ~big)
    if n:
        touching = np.unique(bite[ndi.binary_dilation(big) & (bite > 0)])
        big |= np.isin(bite, touching[touching > 0])
    return grow, big


def _drop_collector_gaps(crack: np.ndarray, collector: np.ndarray) -> np.ndarray:
    """Crack voxels less the pockets (face-connected) that touch the collector: the wedge between
    a particle and the foil is a gap at the interface, not a crack in the particle."""
    if not collector.any():
        return crack
    pockets, n = ndi.label(crack)
    touching = np.unique(pockets[ndi.binary_dilation(collector) & crack])
    return crack & ~np.isin(pockets, touching[touching > 0])


def _foil_layers(labels: np.ndarray, ax: int, side: str, phases: PhaseTable) -> int:
    if "collector" not in phases:
        return 0
    others = tuple(a for a in range(labels.ndim) if a != ax)
    frac = (labels == phases.value("collector")).mean(axis=others)
    if side == "high":
        frac = frac[::-1]
    mostly = frac >= 0.5
    return int(np.argmin(mostly)) if not mostly.all() else len(frac)


def _profile(crack: np.ndarray, envelope: np.ndarray, ax: int, step_um: float, side: str,
             bin_um: float | None, n_foil: int) -> tuple[list[float], list[float], list[float]]:
    others = tuple(a for a in range(crack.ndim) if a != ax)
    c = crack.sum(axis=others).astype(float)
    e = envelope.sum(axis=others).astype(float)
    if side == "high":
        c, e = c[::-1], e[::-1]
    c, e = c[n_foil:], e[n_foil:]
    if c.size == 0:
        raise InputError("the volume is all collector along the thickness; no coating to profile")
    per = 1 if bin_um is None else max(1, int(round(require_positive(bin_um, "bin_um") / step_um)))
    nb = int(math.ceil(len(c) / per))
    cb = np.array([c[i * per:(i + 1) * per].sum() for i in range(nb)])
    eb = np.array([e[i * per:(i + 1) * per].sum() for i in range(nb)])
    depth = [((i * per + min((i + 1) * per, len(c))) / 2.0) * step_um for i in range(nb)]
    total = cb.sum()
    prof = (100.0 * cb / total) if total > 0 else np.zeros(nb)
    local = np.divide(100.0 * cb, eb, out=np.zeros(nb), where=eb > 0)
    return depth, prof.tolist(), local.tolist()


def _as_profile(obj: Any, name: str, threshold_mpa: float | None = None) -> tuple[np.ndarray | None, np.ndarray]:
    record = obj.get("crackable_profile_pct") if isinstance(obj, dict) else getattr(obj, "crackable_profile_pct", None)
    if record is not None:  # the compression solver's step: threshold → % per equal thickness bin
        if not record:
            raise InputError(f"{name} has no crackable-volume profile")
        keys = sorted(record, key=float)
        key = keys[0] if threshold_mpa is None else next((k for k in keys if float(k) == float(threshold_mpa)), None)
        if key is None:
            raise InputError(f"{name} has no profile for {threshold_mpa} MPa; it has {', '.join(keys)} MPa")
        obj = record[key]
    if isinstance(obj, CrackResult):
        d, v = obj.depth_um, obj.profile_percent
    elif isinstance(obj, (list, tuple, np.ndarray)) and len(obj) > 0 and np.ndim(obj[0]) == 0:
        v = np.asarray(obj, dtype=float).ravel()  # values only: centres of equal bins from the collector
        if v.size < 2 or not np.all(np.isfinite(v)):
            raise InputError(f"{name} needs at least 2 finite values")
        return None, v
    elif isinstance(obj, dict) or hasattr(obj, "__dict__") and not isinstance(obj, (tuple, list)):
        get = obj.get if isinstance(obj, dict) else (lambda k: getattr(obj, k, None))
        d = next((get(k) for k in ("depth_um", "positions_um", "positions", "depth") if get(k) is not None), None)
        v = next((get(k) for k in ("profile_percent", "values", "percent", "profile") if get(k) is not None), None)
        if d is None or v is None:
            raise InputError(f"{name} needs depths and values: give (depth, values) arrays")
    else:
        try:
            d, v = obj
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a CrackResult or a (depth, values) pair") from None
    d = np.asarray(d, dtype=float).ravel()
    v = np.asarray(v, dtype=float).ravel()
    if d.size != v.size or d.size < 2:
        raise InputError(f"{name}: depth and values must have the same length ≥ 2, got {d.size} and {v.size}")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(v))):
        raise InputError(f"{name} contains NaN/Inf")
    order = np.argsort(d)
    return d[order], v[order]


def _relative(d: np.ndarray | None, n: int) -> np.ndarray:
    if d is None:
        return (np.arange(n) + 0.5) / n
    extent = d.max() + d.min()  # centres of equal bins: first centre = half a bin
    return d / extent if extent > 0 else np.zeros_like(d)


def _unit_area(grid: np.ndarray, v: np.ndarray, name: str) -> np.ndarray:
    area = float(np.trapezoid(v, grid))
    if not area > 0:
        raise InputError(f"{name} is zero everywhere (no cracks / no crackable volume); nothing to compare")
    return v / area

"""Design-driven synthetic electrodes with ground truth (phase and particle instance labels).

Each generator turns an :class:`~twinlab.design.ElectrodeDesign` into a voxel volume whose
phase fractions match the design's theoretical ones, and returns the particle list (centres,
radii) and instance labels as the truth for segmentation and watershed tests.

How a volume is built
---------------------
1. **Domain.** ``shape`` (z, y, x voxels) or ``domain_um`` at ``voxel_size_um``. Along the
   thickness axis (default y, as in FIB-SEM cross-sections) the collector slab sits on
   ``collector_side``, then the coating (at most the design thickness; if the domain is thinner
   the coating is cut there, if thicker the rest is empty pore space outside the coating). The
   two in-plane axes are periodic (a piece of a wide sheet).
2. **Particles.** Diameters are drawn per mode from truncated log-normals until each mode
   holds its weight share of the active volume, then packed by collective rearrangement
   (``_packing.pack_spheres``: no overlap deeper than 5 % of the smaller radius) in a box
   that is ``c`` times taller than the coating, walled at the collector and at the coating's
   top. A free (cast) top (``make_lmp_anode(free_top=True)``) packs spheres for
   :data:`FREE_TOP_BOX` coatings in a box that much taller at the same fraction and keeps the
   lowest ones (by centre) up to the design loading: no particle is pressed against a lid, the
   top is rough at the particle scale, and the coating reaches the highest kept particle.
3. **Calendered (dense) designs.** Spheres cannot reach active fractions above random close
   packing (~0.64; 0.73 at 3.6 g cm⁻³). When the target exceeds ``max_pack_fraction`` the
   packing is made at that fraction in a box c = φ_target/φ_pack taller, compressed affinely
   along the thickness by c (spheres → oblate ellipsoids, aspect 1/c), and each particle is
   grown isotropically by c^(1/3) back to its drawn volume. The extra volume shows up as
   flattened contact facets between neighbours (overlaps are split by nearest normalised
   distance), which is how calendered secondary particles look; ``flattening`` reports c.
4. **Exact fractions.** Voxels are assigned to the nearest particle by normalised distance;
   all particles are then grown or shrunk by one common factor (``growth``, close to 1) chosen
   so the active voxel count equals the target, and the filler phases (CBD, binder) take the
   pore voxels with the highest local solid density — the necks between particles and against
   the collector (bridges and films) — in exactly the target number. Realised fractions thus
   equal the design's up to one voxel; ``fractions`` holds the measured values.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from .._results import Result, to_jsonable
from .._validation import AXES, VoxelSize, axis_index
from ..design import ElectrodeDesign, dry_film_cathode, lmp_anode, ncm622_cathode
from ..errors import InputError
from ..phases import DEFAULT_PHASES
from ._packing import LogNormalMode, check_modes, draw_population, pack_spheres_best
from ._voxelize import carve_damage, draw_ellipsoids, draw_fibrils, neck_score, outer_layer, select_lowest

__all__ = ["Damage", "GeneratedElectrode", "LogNormalMode", "make_cathode", "make_lmp_anode", "make_dry_film",
           "NCM_MODES", "LMP_MODES"]

#: NCM622 bimodal powder (SCIENCE.md §1): 8:2 by weight of 14 µm and 3 µm mean secondary particles;
#: log_sigma 0.25 is a typical spread for a classified powder (assumption).
NCM_MODES = (LogNormalMode(14.0, 0.25, 0.8), LogNormalMode(3.0, 0.25, 0.2))
#: LMP powder: D50 = 50 µm (the median of a log-normal is exp μ, so mean = 50·exp(σ²/2)), σ = 0.2 assumed.
LMP_MODES = (LogNormalMode(50.0 * math.exp(0.5 * 0.2 ** 2), 0.2, 1.0),)

_KMAX = 1.35  # particles are drawn out to 1.35× their size so the common growth factor has room
#: A free (cast) top surface: spheres for this many coatings are packed in a box this much taller,
#: and the lowest of them are kept up to the design loading (module docs, step 2).
FREE_TOP_BOX = 1.5


@dataclasses.dataclass(frozen=True)
class Damage:
    """Cracks and voids of cycled / calendered secondary particles (``make_cathode(damage=...)``).

    Every particle of at least ``min_diameter_um`` is, at random, *cracked* (``cracks`` radial or
    core cracks), *hollow* (a hollow core, plus one radial crack half the time), *shattered*
    (``shatter_planes`` cracks right through it: the pieces stay in place) or left intact, with
    the probabilities below. A radial crack runs from the surface inwards across ``crossing`` of
    the particle's extent along its direction; a core crack is a disc through the centre whose
    diameter is ``crossing`` of the particle's; widths are drawn uniformly from ``width_um``. All
    cuts stay inside their particle; the cut voxels become pore and form the truth ``cracks``. A
    crack is at most a tenth of its particle's diameter wide (a 3 µm particle: ≤ 0.3 µm).

    Defaults follow cross-sections of cycled NCM secondary particles: cracks 0.2–1 µm wide across
    20–60 % of a particle, hollow cores of 20–45 % of the diameter, a few shattered particles.
    """

    cracked: float = 0.5
    hollow: float = 0.15
    shattered: float = 0.05
    width_um: tuple[float, float] = (0.2, 1.0)
    crossing: tuple[float, float] = (0.2, 0.6)
    cracks: tuple[int, int] = (1, 3)
    core_scale: tuple[float, float] = (0.2, 0.45)
    shatter_planes: tuple[int, int] = (3, 4)
    min_diameter_um: float = 2.0

    def __post_init__(self) -> None:
        p = (self.cracked, self.hollow, self.shattered)
        if not all(math.isfinite(v) and v >= 0 for v in p) or sum(p) > 1 + 1e-9:
            raise InputError(f"damage probabilities (cracked, hollow, shattered) must be >= 0 and sum to <= 1, got {p}")
        for name in ("width_um", "crossing", "core_scale", "cracks", "shatter_planes"):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi) or (name in ("crossing", "core_scale") and hi > 1):
                raise InputError(f"damage {name} must be a range (low, high) with 0 < low <= high"
                                 f"{' <= 1' if name in ('crossing', 'core_scale') else ''}, got {(lo, hi)}")


@dataclasses.dataclass(frozen=True)
class GeneratedElectrode(Result):
    """A synthetic electrode volume with its ground truth.

    Attributes
    ----------
    phases : ndarray (z, y, x) uint8
        Phase labels (values of ``DEFAULT_PHASES``: 0 pore, 1 active, 2 cbd, 3 collector,
        4 shell, 5 lithium, 6 binder).
    particles : ndarray (z, y, x) int32
        Particle instance labels, 0 = no particle; label p is row p − 1 of the particle arrays
        (a particle hidden entirely by its neighbours has no voxels).
    voxel_size : VoxelSize
    design : ElectrodeDesign
        The design the volume realises (at its density / calendering ratio).
    thickness_axis : int
        Through-plane axis (0 z, 1 y, 2 x); ``collector_side`` "low" or "high" end of it.
    coating_range : (int, int)
        Voxel index range [start, stop) of the coating along the thickness axis.
    centres_um, radii_um, semi_axes_um, mode : ndarrays
        Per particle: centre (z, y, x) in µm (voxel i spans [i·d, (i+1)·d)), drawn sphere
        radius (volume-equivalent, before the common ``growth``), ellipsoid semi-axes as drawn
        (after flattening and growth), and the index of its size mode.
    fractions, target_fractions : dict
        Realised (measured over the coating) and design phase volume fractions.
    cbd_as : str
        "solid" or "domain": which CBD volume the target used (``ElectrodeDesign.volume_fractions``).
    flattening, growth, max_overlap : float
        Thickness compression factor c (1 = spheres), common size factor, largest packing overlap
        (depth / smaller radius) before flattening.
    seed : int
    notes : dict
        Generator-specific facts (e.g. the LMP shell representation).
    contacts : dict
        Initial contact statistics of the particle instances (:func:`contact_statistics`):
        touching pairs per particle, contact area per pair and as a share of the particle surface,
        particles touching the collector.
    """

    phases: np.ndarray
    particles: np.ndarray
    voxel_size: VoxelSize
    design: ElectrodeDesign
    thickness_axis: int
    collector_side: str
    coating_range: tuple[int, int]
    centres_um: np.ndarray
    radii_um: np.ndarray
    semi_axes_um: np.ndarray
    mode: np.ndarray
    fractions: dict[str, float]
    target_fractions: dict[str, float]
    cbd_as: str
    flattening: float
    growth: float
    max_overlap: float
    seed: int
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)
    cracks: np.ndarray | None = dataclasses.field(default=None, repr=False)
    contacts: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def diameters_um(self) -> np.ndarray:
        """Drawn (volume-equivalent) particle diameters, µm."""
        return 2.0 * self.radii_um

    @property
    def thickness_axis_name(self) -> str:
        return AXES[self.thickness_axis]

    def particle_spheres(self) -> tuple[np.ndarray, np.ndarray]:
        """The true particles behind ``particles`` as spheres: centres (n, 3; µm, the volume's axes,
        voxel i spans [i·d, (i+1)·d)) and radii (n,; µm) of instance ids 1…n (an id without voxels is
        hidden by its neighbours). The voxels are these spheres digitised and split between overlapping
        ones; a DEM stage started from them (``calender(..., particle_spheres=...)``) starts from the
        same packing at any voxel size: the radii as drawn, without the common ``growth`` that fits each grid's
        voxel count (0.997 at 6 µm, 0.9972 at 4 µm on the 480 µm free-top anode, seed 1: radii up to 0.022 µm
        apart, and the DEM, chaotic, jammed 0.25 µm apart on the two grids; stop 32). Refused for flattened
        (ellipsoidal) or damaged particles."""
        if self.cracks is not None or not np.allclose(self.semi_axes_um, self.semi_axes_um[:, :1], rtol=1e-9):
            raise InputError("particle_spheres: these particles are not whole spheres (flattened or damaged); "
                             "fit the DEM clumps to the voxels instead")
        return self.centres_um.copy(), self.semi_axes_um[:, 0] / self.growth

    def equivalent_diameters_um(self) -> np.ndarray:
        """Volume-equivalent diameter (µm) of every particle label with voxels, from the labels."""
        counts = np.bincount(self.particles.ravel())[1:]
        counts = counts[counts > 0]
        return np.cbrt(6.0 * counts * self.voxel_size.volume_um3 / np.pi)

    def particle_crack_fractions(self) -> tuple[np.ndarray, np.ndarray]:
        """Truth per particle: (labels with voxels, crack voxels / particle voxels). ``particles``
        is each particle's whole envelope (cracks and hollow cores included); without damage the
        fractions are 0."""
        counts = np.bincount(self.particles.ravel())
        ids = np.flatnonzero(counts)
        ids = ids[ids > 0]
        if self.cracks is None:
            return ids, np.zeros(ids.size)
        cracked = np.bincount(self.particles[self.cracks].ravel(), minlength=counts.size)
        return ids, cracked[ids] / counts[ids]

    def to_twin(self, path: Any, *, image: Any = None, overwrite: bool = False) -> Any:
        """Write a twin store: ``image`` (default: the phase labels as grey values) + both label layers."""
        from ..twin import Step, create_twin
        return create_twin(path, self.phases if image is None else image, voxel_size=self.voxel_size,
                           labels={"phases": self.phases, "particles": self.particles},
                           thickness_axis=self.thickness_axis, collector_side=self.collector_side,
                           design=self.design.to_dict(), cbd_as=self.cbd_as, overwrite=overwrite,
                           step=Step("generate", {"seed": self.seed, "cbd_as": self.cbd_as}))

    def to_dict(self) -> dict[str, Any]:
        """Summary without the arrays (shape, fractions, particle statistics)."""
        d = self.diameters_um
        return to_jsonable({
            "shape": list(self.phases.shape), "voxel_size": self.voxel_size.to_dict(),
            "thickness_axis": self.thickness_axis_name, "collector_side": self.collector_side,
            "coating_range": list(self.coating_range), "design": self.design.to_dict(),
            "cbd_as": self.cbd_as, "fractions": self.fractions, "target_fractions": self.target_fractions,
            "n_particles": int(d.size), "mean_diameter_um": float(d.mean()) if d.size else None,
            "flattening": self.flattening, "growth": self.growth, "max_overlap": self.max_overlap,
            "seed": self.seed, "notes": self.notes, "contacts": self.contacts,
        })


def make_cathode(
    design: ElectrodeDesign | None = None, *,
    density_g_cm3: float | None = None,
    porosity: float | None = None,
    shape: Sequence[int] | None = None,
    domain_um: Sequence[float] | None = None,
    voxel_size_um: Any = 0.5,
    modes: Sequence[LogNormalMode] = NCM_MODES,
    cbd_as: str = "solid",
    cbd_smoothing_um: float = 1.0,
    thickness_axis: int | str = "y",
    collector_side: str = "low",
    collector_um: float | None = None,
    max_pack_fraction: float = 0.6,
    damage: Damage | None = None,
    seed: int = 0,
) -> GeneratedElectrode:
    """A composite cathode: packed active particles, CBD at necks, pores, collector slab.

    Parameters
    ----------
    design : ElectrodeDesign, optional
        Default :func:`twinlab.design.ncm622_cathode` (uncalendered, 2.3 g cm⁻³). Its phases must
        be "active" (the particles) plus filler phases such as "cbd".
    density_g_cm3, porosity : float, optional
        Shortcut: the design at this electrode density or porosity (constant loading).
    shape : (nz, ny, nx), optional
        Volume size in voxels, collector included. Or ``domain_um`` (z, y, x) in µm. Default: 64 µm
        in-plane and collector + design thickness through-plane.
    voxel_size_um : float, "dz,dy,dx" or VoxelSize
        Voxel edge lengths in µm (anisotropic allowed).
    modes : sequence of LogNormalMode
        Particle size distribution; weight fractions sum to 1. Default :data:`NCM_MODES`.
    cbd_as : {"solid", "domain"}
        Whether the CBD phase takes the solid carbon + binder volume or the nanoporous domain
        volume (see :meth:`ElectrodeDesign.volume_fractions`).
    cbd_smoothing_um : float
        Length scale (Gaussian σ, µm) of the neck score that places CBD (larger → thicker films).
    thickness_axis, collector_side
        Through-plane axis ("z", "y", "x") and the end ("low"/"high") where the collector sits.
    collector_um : float, optional
        Collector slab thickness; default the design's (15 µm Al); 0 for none.
    max_pack_fraction : float
        Highest active fraction packed as spheres; denser designs are flattened (module docs).
    damage : Damage, optional
        Crack the particles (radial and core cracks, hollow cores, shattered particles; see
        :class:`Damage`) after the fillers are placed, so no CBD enters a crack. ``particles``
        then keeps each particle's whole envelope, ``cracks`` is the truth crack mask, and
        ``fractions`` are measured after cracking (less active, more pore than the design).
    seed : int
        Random seed; the same arguments and seed give the same volume.
    """
    if damage is not None and not isinstance(damage, Damage):
        raise InputError(f"damage must be a twinlab.datasets.generators.Damage, got {type(damage).__name__}")
    design = _pick_design(design, ncm622_cathode, density_g_cm3, porosity)
    target = design.volume_fractions(cbd_as)
    extra = sorted(set(target) - {"active", "pore"} - set(DEFAULT_PHASES.names))
    if "active" not in target or extra:
        raise InputError(f"make_cathode needs a design with an 'active' phase and default filler phases; got "
                         f"{sorted(target)}. Map components to phases of DEFAULT_PHASES ({DEFAULT_PHASES.names})")
    return _generate(design, target, particle_phase="active", modes=check_modes(modes), shape=shape,
                     domain_um=domain_um, voxel_size_um=voxel_size_um, thickness_axis=thickness_axis,
                     collector_side=collector_side, collector_um=collector_um, cbd_as=cbd_as,
                     smoothing_um=cbd_smoothing_um, flattening=None, max_pack_fraction=max_pack_fraction,
                     seed=seed, damage=damage)


def make_lmp_anode(
    design: ElectrodeDesign | None = None, *,
    ratio: float = 0.0,
    shape: Sequence[int] | None = None,
    domain_um: Sequence[float] | None = None,
    voxel_size_um: Any = 2.0,
    modes: Sequence[LogNormalMode] = LMP_MODES,
    shell_voxels: int | None = None,
    binder_smoothing_um: float = 3.0,
    thickness_axis: int | str = "y",
    collector_side: str = "low",
    collector_um: float | None = None,
    free_top: bool = False,
    seed: int = 0,
) -> GeneratedElectrode:
    """A lithium-metal-powder anode: Li spheres with Li2CO3 shells, PVdF-HFP binder, Cu collector.

    The particles (Li + shell) fill the design's lithium + shell fraction. The shell is the outer
    voxel layer of each particle, ``shell_voxels`` thick (default: the design's 100 nm rounded up
    to whole voxels, at least 1). A 100 nm shell on a 50 µm sphere is 1.2 % of its volume; one
    2 µm voxel is ~25 %: the realised shell fraction is therefore much larger than the design's
    and the lithium fraction smaller by the same amount (their sum matches). Both are reported
    in ``notes``. Calendering (``ratio`` = 1 − h/h0 at constant loading) flattens the packing
    of the uncalendered design by c = 1/(1 − ratio) — lithium is soft and plastic — and grows
    the particles back to their volume (module docs, step 3).

    Parameters
    ----------
    design : ElectrodeDesign, optional
        Default :func:`twinlab.design.lmp_anode` (84 µm on 11 µm Cu, porosity 0.5 uncalendered);
        phases "lithium", "shell", "binder". Treated as the uncalendered design.
    ratio : float
        Calendering ratio in [0, 1).
    voxel_size_um : default 2 µm
        2–4 µm keeps a full-thickness anode small (≈50 voxels through-plane).
    free_top : bool
        A free (cast) top surface instead of one walled at the design thickness. By default the
        spheres are packed between the collector and a lid at the design thickness: with 50 µm
        particles in an 84 µm coating about half of them touch the lid, a flat top a roll meets
        everywhere at once. With ``free_top`` the spheres for 1.5 coatings (:data:`FREE_TOP_BOX`)
        are packed at the design fraction in a box 1.5× taller and the lowest ones (by centre)
        are kept up to the design loading: the top is the rough surface of a cast layer, and the
        coating reaches the highest kept particle. The loading (mg cm⁻²) is the design's; the
        thickness is that envelope (thicker than the design, so the porosity is higher), and
        ``design`` is the design at that thickness (:meth:`ElectrodeDesign.at_thickness`). The
        domain's thickness grows to hold it. With ``ratio`` the flattening applies to this packing.
    Other parameters as :func:`make_cathode` (default in-plane extent 200 µm).
    """
    base = _pick_design(design, lmp_anode, None, None)
    targets0 = base.volume_fractions("solid")
    if not {"lithium", "shell"} <= set(targets0):
        raise InputError(f"make_lmp_anode needs a design with 'lithium' and 'shell' phases, got {sorted(targets0)}")
    calendered = base.at_ratio(ratio) if ratio else base
    target = calendered.volume_fractions("solid")
    vs = VoxelSize.parse(voxel_size_um)
    t = axis_index(thickness_axis)
    if shell_voxels is None:
        shell_um = 0.1  # LMP_SHELL_NM
        shell_voxels = max(1, math.ceil(shell_um / vs[t] - 1e-9))
    if int(shell_voxels) < 1:
        raise InputError(f"shell_voxels must be >= 1 (the shell is drawn explicitly), got {shell_voxels}")
    if domain_um is None and shape is None:
        coll = base.collector_thickness_um if collector_um is None else collector_um
        domain_um = [200.0, 200.0, 200.0]
        domain_um[t] = coll + calendered.thickness_um
    gen = _generate(calendered, target, particle_phase="lithium", modes=check_modes(modes), shape=shape,
                    domain_um=domain_um, voxel_size_um=vs, thickness_axis=t, collector_side=collector_side,
                    collector_um=collector_um, cbd_as="solid", smoothing_um=binder_smoothing_um,
                    flattening=1.0 / (1.0 - ratio), max_pack_fraction=1.0, seed=seed,
                    merged={"lithium": ("lithium", "shell")}, free_top=bool(free_top))
    target = gen.target_fractions
    periodic = tuple(i != t for i in range(3))
    shell = outer_layer(gen.particles, int(shell_voxels), periodic=periodic)
    phases = gen.phases.copy()
    phases[shell] = DEFAULT_PHASES.value("shell")
    fractions = _measure(phases, gen.coating_range, t, names=list(target))
    notes = {
        "shell_voxels": int(shell_voxels), "shell_thickness_um": int(shell_voxels) * vs[t],
        "design_shell_thickness_nm": 100.0,
        "shell_fraction": {"realised": fractions["shell"], "design": target["shell"]},
        "lithium_fraction": {"realised": fractions["lithium"], "design": target["lithium"]},
        "particles_fraction": {"realised": fractions["lithium"] + fractions["shell"],
                               "design": target["lithium"] + target["shell"]},
        "calendering_ratio": float(ratio), "free_top": bool(free_top),
        "representation": "each particle's outer voxel layer is the Li2CO3 shell (thicker than 100 nm at "
                          "this resolution); lithium + shell together match the design",
    }
    return dataclasses.replace(gen, phases=phases, fractions=fractions, notes=notes)


def make_dry_film(
    design: ElectrodeDesign | None = None, *,
    density_g_cm3: float | None = None,
    porosity: float | None = None,
    shape: Sequence[int] | None = None,
    domain_um: Sequence[float] | None = None,
    voxel_size_um: Any = 0.5,
    modes: Sequence[LogNormalMode] = NCM_MODES,
    cbd_smoothing_um: float = 1.0,
    fibril_gap_um: float = 4.0,
    thickness_axis: int | str = "y",
    collector_side: str = "low",
    collector_um: float | None = None,
    seed: int = 0,
) -> GeneratedElectrode:
    """A dry-film (PTFE-fibrillated) cathode: packed NCM, carbon at necks, PTFE as a fibril web.

    Built like :func:`make_cathode` for the active and "cbd" phases; the "binder" phase (PTFE) is
    then drawn as straight, 1-voxel-thick fibrils between random points on the facing surfaces of
    neighbouring particles (centres closer than their sizes plus ``fibril_gap_um``), through pore
    voxels only, until its volume fraction is reached exactly. A 1-voxel fibril is thicker than
    real PTFE fibrils (tens to hundreds of nm) at µm voxels: like the LMP shell, the phase is
    represented at the chosen resolution with the design's volume.

    Parameters
    ----------
    design : ElectrodeDesign, optional
        Default :func:`twinlab.design.dry_film_cathode` (NCM811 : carbon : PTFE 96 : 2 : 2,
        50 mg cm⁻², 3.0 g cm⁻³ — assumed recipe). Needs phases "active" and "binder".
    fibril_gap_um : float
        Largest surface-to-surface gap (µm, roughly) a fibril spans.
    Other parameters as :func:`make_cathode`.
    """
    design = _pick_design(design, dry_film_cathode, density_g_cm3, porosity)
    target = design.volume_fractions("solid")
    if not {"active", "binder"} <= set(target):
        raise InputError(f"make_dry_film needs a design with 'active' and 'binder' (PTFE) phases, got {sorted(target)}")
    if not (math.isfinite(fibril_gap_um) and fibril_gap_um > 0):
        raise InputError(f"fibril_gap_um must be a positive number of µm, got {fibril_gap_um!r}")
    without_fibrils = {k: v for k, v in target.items() if k != "binder"}
    without_fibrils["pore"] += target["binder"]
    gen = _generate(design, without_fibrils, particle_phase="active", modes=check_modes(modes), shape=shape,
                    domain_um=domain_um, voxel_size_um=voxel_size_um, thickness_axis=thickness_axis,
                    collector_side=collector_side, collector_um=collector_um, cbd_as="solid",
                    smoothing_um=cbd_smoothing_um, flattening=None, max_pack_fraction=0.6, seed=seed)
    vs, t = gen.voxel_size, gen.thickness_axis
    sl = [slice(None)] * 3
    sl[t] = slice(*gen.coating_range)
    free = np.zeros(gen.phases.shape, dtype=bool)
    free[tuple(sl)] = gen.phases[tuple(sl)] == 0
    n_coat = int(np.prod([gen.phases.shape[i] if i != t else gen.coating_range[1] - gen.coating_range[0]
                          for i in range(3)]))
    count = int(round(target["binder"] * n_coat))
    phases = gen.phases.copy()
    step = np.array(vs.as_tuple())
    drawn = draw_fibrils(phases, gen.centres_um / step - 0.5, gen.semi_axes_um / step, free=free, count=count,
                         value=DEFAULT_PHASES.value("binder"), periodic=tuple(i != t for i in range(3)),
                         rng=np.random.default_rng([seed, 7]), max_gap=fibril_gap_um / min(vs))
    if drawn < count:
        raise InputError(f"only {drawn} of {count} PTFE fibril voxels fit between the particles; raise "
                         "fibril_gap_um or use a larger domain")
    fractions = _measure(phases, gen.coating_range, t, names=list(target))
    notes = dict(gen.notes, fibril_voxels=drawn, fibril_thickness_um=min(vs),
                 representation="PTFE as 1-voxel straight fibrils between facing particle surfaces")
    return dataclasses.replace(gen, phases=phases, fractions=fractions, target_fractions=dict(target), notes=notes)


# ====================================================================================== internals
def _pick_design(design, default_factory, density, porosity) -> ElectrodeDesign:
    if design is None:
        design = default_factory()
    elif not isinstance(design, ElectrodeDesign):
        raise InputError(f"design must be an ElectrodeDesign (twinlab.design), got {type(design).__name__}")
    if density is not None and porosity is not None:
        raise InputError("give density_g_cm3 or porosity, not both")
    if density is not None:
        design = design.at_density(density)
    elif porosity is not None:
        design = design.at_porosity(porosity)
    return design


def _domain(shape, domain_um, vs: VoxelSize, t: int, collector_vox: int, coat_um: float | None,
            default_inplane_um: float) -> tuple[int, int, int]:
    if shape is not None and domain_um is not None:
        raise InputError("give shape (voxels) or domain_um (µm), not both")
    if shape is not None:
        try:
            dims = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise InputError(f"shape must be three integers (z, y, x), got {shape!r}") from None
    elif domain_um is not None:
        try:
            ext = [float(v) for v in domain_um]
        except (TypeError, ValueError):
            raise InputError(f"domain_um must be three lengths (z, y, x) in µm, got {domain_um!r}") from None
        if len(ext) != 3 or not all(math.isfinite(e) and e > 0 for e in ext):
            raise InputError(f"domain_um must be three positive lengths (z, y, x) in µm, got {domain_um!r}")
        dims = tuple(max(1, round(e / d)) for e, d in zip(ext, vs))
    else:
        ext = [default_inplane_um] * 3
        ext[t] = collector_vox * vs[t] + (coat_um if coat_um else default_inplane_um)
        dims = tuple(max(1, round(e / d)) for e, d in zip(ext, vs))
    if len(dims) != 3 or any(n <= 0 for n in dims):
        raise InputError(f"shape must be three positive voxel counts (z, y, x), got {dims}")
    return dims  # type: ignore[return-value]


def _generate(design: ElectrodeDesign, target: dict[str, float], *, particle_phase: str,
              modes: tuple[LogNormalMode, ...], shape, domain_um, voxel_size_um, thickness_axis,
              collector_side: str, collector_um, cbd_as: str, smoothing_um: float, flattening: float | None,
              max_pack_fraction: float, seed: int, merged: dict[str, tuple[str, ...]] | None = None,
              damage: Damage | None = None, free_top: bool = False) -> GeneratedElectrode:
    vs = VoxelSize.parse(voxel_size_um)
    t = axis_index(thickness_axis)
    if collector_side not in ("low", "high"):
        raise InputError(f"collector_side must be 'low' or 'high', got {collector_side!r}")
    coll_um = design.collector_thickness_um if collector_um is None else float(collector_um)
    if not (math.isfinite(coll_um) and coll_um >= 0):
        raise InputError(f"collector_um must be >= 0 µm, got {collector_um!r}")
    if not (math.isfinite(smoothing_um) and smoothing_um > 0):
        raise InputError(f"the neck-score smoothing length must be a positive number of µm, got {smoothing_um!r}")
    if not 0 < max_pack_fraction <= 1:
        raise InputError(f"max_pack_fraction must lie in (0, 1], got {max_pack_fraction!r}")
    if free_top and (design.loading_mg_cm2 is None or design.thickness_um is None):
        raise InputError("a free top surface needs the design's loading (the kept particles' amount); "
                         "give the design a thickness or loading_mg_cm2")
    seed = int(seed)
    rng = np.random.default_rng(seed)
    n_coll = int(round(coll_um / vs[t]))
    dims = _domain(shape, domain_um, vs, t, n_coll, design.thickness_um,
                   default_inplane_um=max(64.0, 4 * max(m.mean_diameter_um for m in modes)))
    n_coat = dims[t] - n_coll
    if design.thickness_um is not None:
        n_coat = min(n_coat, max(1, int(round(design.thickness_um / vs[t]))))
    extent = np.array([n * d for n, d in zip(dims, vs)])
    extent[t] = design.thickness_um if free_top else n_coat * vs[t]  # free top: the exact design loading
    particle_names = merged.get(particle_phase, (particle_phase,)) if merged else (particle_phase,)
    phi = sum(target[n] for n in particle_names)
    if flattening is None:
        flattening = max(1.0, phi / max_pack_fraction)
    c = float(flattening)
    box = extent.copy()
    box[t] *= c  # the packing box (before compression along the thickness)
    biggest_mode = max(m.mean_diameter_um for m in modes)
    if n_coat <= 0 or min(box) < biggest_mode:
        raise InputError(
            f"the coating domain {np.round(extent, 3).tolist()} µm (z, y, x; collector {n_coll} voxels removed) is "
            f"smaller than one particle of the {biggest_mode:g} µm mode; enlarge shape/domain_um or the voxel size, "
            "or pass smaller particles (modes=...)")
    v_coat = float(np.prod(extent))

    # --- particle population and packing (µm, coating frame: thickness coordinate from the collector)
    # packed at the drawn radius r in a box c× taller (fraction φ/c); affine compression by c keeps
    # that fraction, then growing each ellipsoid by c^(1/3) restores its drawn volume:
    # semi-axes (r c^⅓, r c^⅓ / c, r c^⅓), aspect 1/c
    grow = c ** (1.0 / 3.0)
    cap = 0.98 * min(box[t], *(extent[i] / grow for i in range(3) if i != t))
    headroom = FREE_TOP_BOX if free_top else 1.0
    box[t] *= headroom
    diam, which = draw_population(rng, modes, headroom * phi * v_coat, max_diameter_um=cap)
    packing = pack_spheres_best(0.5 * diam, tuple(box), thickness_axis=t, rng=rng)
    centres = packing.centres_um.copy()
    if free_top:
        keep = _lowest_by_volume(centres[:, t], diam, phi * v_coat)
        diam, which, centres = diam[keep], which[keep], centres[keep]
    centres[:, t] /= c
    semi = np.repeat((0.5 * diam * grow)[:, None], 3, axis=1)
    semi[:, t] /= c
    # the design coating's volume in voxels: the loading the particles and fillers are counted against
    n_load = v_coat / float(np.prod(vs.as_tuple())) if free_top else int(np.prod(dims)) // dims[t] * n_coat
    if free_top:  # the coating reaches the highest kept particle; the domain grows to hold it
        # up to the last voxel layer whose centre the highest particle reaches
        n_coat = max(1, int(round(float((centres[:, t] + semi[:, t]).max()) / vs[t])))
        dims = tuple(max(n, n_coll + n_coat) if i == t else n for i, n in enumerate(dims))
        design = design.at_thickness(n_coat * vs[t])  # the same loading over the kept particles' envelope

    # --- voxelise in the coating frame, then place it in the full volume
    coat_shape = list(dims)
    coat_shape[t] = n_coat
    centre_vox = centres / np.array(vs.as_tuple()) - 0.5
    semi_vox = semi / np.array(vs.as_tuple())
    periodic = tuple(i != t for i in range(3))
    s2, lab = draw_ellipsoids(tuple(coat_shape), centre_vox, semi_vox, periodic=periodic, kmax=_KMAX)
    n_particle = int(round(phi * n_load))
    chosen = select_lowest(s2, np.ones(s2.shape, dtype=bool), n_particle)
    growth = float(np.sqrt(s2[chosen].max())) if n_particle else 1.0
    if growth >= _KMAX * 0.999:
        raise InputError("could not reach the particle volume fraction with the packed particles; "
                         "lower the density or use a larger domain")
    lab[~chosen] = 0
    del s2
    coat = np.zeros(coat_shape, dtype=np.uint8)  # pore = 0
    coat[chosen] = DEFAULT_PHASES.value(particle_phase)

    # --- full volume with the collector, so the neck score also sees the collector surface
    phases = np.zeros(dims, dtype=np.uint8)
    particles = np.zeros(dims, dtype=np.int32)
    sl = [slice(None)] * 3
    sl[t] = slice(n_coll, n_coll + n_coat)
    csl = [slice(None)] * 3
    csl[t] = slice(0, n_coll)
    phases[tuple(sl)] = coat
    particles[tuple(sl)] = lab
    phases[tuple(csl)] = DEFAULT_PHASES.value("collector")
    fillers = [n for n in target if n not in particle_names and n != "pore"]
    if fillers:
        sigma = tuple(smoothing_um / d for d in vs)
        score = neck_score(phases > 0, sigma, periodic=periodic, rng=rng)
        pore_in_coat = np.zeros(dims, dtype=bool)
        pore_in_coat[tuple(sl)] = coat == 0
        for name in fillers:  # in the design's phase order: the first filler takes the tightest necks
            pick = select_lowest(score, pore_in_coat, int(round(target[name] * n_load)))
            phases[pick] = DEFAULT_PHASES.value(name)
            pore_in_coat &= ~pick
    cracks = None
    if damage is not None:
        centre_full_vox = centre_vox.copy()
        centre_full_vox[:, t] += n_coll
        plans, kinds = _damage_plans(damage, semi * growth, np.random.default_rng([seed, 11]))
        cracks = carve_damage(particles, centre_full_vox, np.array(vs.as_tuple()), plans, periodic=periodic)
        phases[cracks] = DEFAULT_PHASES.value("pore")
    coating_range = (n_coll, n_coll + n_coat)
    centres_full = centres.copy()
    centres_full[:, t] += n_coll * vs[t]
    if collector_side == "high":
        phases = np.flip(phases, axis=t).copy()
        particles = np.flip(particles, axis=t).copy()
        cracks = None if cracks is None else np.flip(cracks, axis=t).copy()
        centres_full[:, t] = dims[t] * vs[t] - centres_full[:, t]
        coating_range = (dims[t] - coating_range[1], dims[t] - coating_range[0])
    names = list(dict.fromkeys([*target, *particle_names]))
    fractions = _measure(phases, coating_range, t, names=names)
    return GeneratedElectrode(
        phases=phases, particles=particles, voxel_size=vs, design=design, thickness_axis=t,
        collector_side=collector_side, coating_range=coating_range, centres_um=centres_full,
        radii_um=0.5 * diam, semi_axes_um=semi * growth, mode=which, fractions=fractions,
        target_fractions=design.volume_fractions(cbd_as) if free_top else dict(target), cbd_as=cbd_as, flattening=c, growth=growth,
        max_overlap=packing.max_overlap, seed=seed,
        notes={"packing_sweeps": packing.iterations, "packing_mean_overlap": packing.mean_overlap,
               **({} if damage is None else {"damage": dataclasses.asdict(damage),
                                             "damaged_particles": kinds})},
        cracks=cracks,
        contacts=contact_statistics(particles, vs, thickness_axis=t,
                                    collector=phases == DEFAULT_PHASES.value("collector"),
                                    bridges=phases == DEFAULT_PHASES.value("cbd")),
    )


def _lowest_by_volume(heights: np.ndarray, diameters: np.ndarray, volume_um3: float) -> np.ndarray:
    """Indices of the spheres kept lowest first (by centre height) until they hold ``volume_um3``;
    the last one is kept only if that brings the total closer."""
    order = np.argsort(heights, kind="stable")
    cum = np.cumsum(np.pi / 6 * diameters[order] ** 3)
    n = min(int(np.searchsorted(cum, volume_um3)), cum.size - 1)  # cum[n] >= volume (or the last)
    if n > 0 and abs(cum[n - 1] - volume_um3) < abs(cum[n] - volume_um3):
        n -= 1
    return np.sort(order[:n + 1])


def _damage_plans(damage: Damage, semi_um: np.ndarray,
                  rng: np.random.Generator) -> tuple[dict[int, list[tuple]], dict[str, int]]:
    """Cuts per particle label (see ``_voxelize.carve_damage``) drawn with ``rng``, and how many
    particles fell into each damage class."""
    plans: dict[int, list[tuple]] = {}
    kinds: dict[str, int] = {}
    p = np.array([damage.cracked, damage.hollow, damage.shattered])
    p = np.append(p, max(0.0, 1.0 - p.sum()))
    for i, a in enumerate(semi_um):
        if 2.0 * float(np.cbrt(np.prod(a))) < damage.min_diameter_um:
            continue
        kind = ("cracked", "hollow", "shattered", None)[rng.choice(4, p=p / p.sum())]
        if kind is None:
            continue
        cuts: list[tuple] = []
        if kind == "cracked":
            for _ in range(rng.integers(damage.cracks[0], damage.cracks[1] + 1)):
                cuts.append(_crack(damage, a, rng, core=bool(rng.random() < 0.3)))
        elif kind == "hollow":
            cuts.append(("core", tuple(a), float(rng.uniform(*damage.core_scale))))
            if rng.random() < 0.5:
                cuts.append(_crack(damage, a, rng, core=False))
        else:
            for _ in range(rng.integers(damage.shatter_planes[0], damage.shatter_planes[1] + 1)):
                n = _unit(rng)
                origin = rng.uniform(-0.3, 0.3, 3) * a
                half = 0.5 * _width(damage, a, rng)
                cuts.append(("slab", n, half, origin, _perpendicular(n, rng), -np.inf))
        plans[i + 1] = cuts
        kinds[kind] = kinds.get(kind, 0) + 1
    return plans, kinds


def _crack(damage: Damage, a: np.ndarray, rng: np.random.Generator, *, core: bool) -> tuple:
    n = _unit(rng)
    half = 0.5 * _width(damage, a, rng)
    f = float(rng.uniform(*damage.crossing))
    u = _perpendicular(n, rng)
    reach = 1.0 / math.sqrt(float(((u / a) ** 2).sum()))  # the particle's extent along u
    if core:
        return ("disc", n, half, f * reach)
    return ("slab", n, half, np.zeros(3), u, reach * (1.0 - 2.0 * f))


def _width(damage: Damage, a: np.ndarray, rng: np.random.Generator) -> float:
    """Crack width (µm) from ``damage.width_um``, at most a tenth of the particle's diameter:
    a crack opens in proportion to the particle that strains around it."""
    lo, hi = damage.width_um
    return float(rng.uniform(lo, max(lo, min(hi, 0.2 * float(np.cbrt(np.prod(a)))))))


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _perpendicular(n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    v -= (v @ n) * n
    return v / np.linalg.norm(v)


def contact_statistics(particles: np.ndarray, voxel_size: Any, *, thickness_axis: int,
                       collector: np.ndarray | None = None, bridges: np.ndarray | None = None) -> dict[str, Any]:
    """Contacts between particle instances, counted on voxel faces (in-plane axes periodic).

    Returns
    -------
    dict
        ``n_particles``; ``touching_pairs`` (pairs of instances sharing at least one face);
        ``touching_pairs_per_particle`` (mean coordination, 2 × pairs / particles);
        ``isolated_fraction`` (particles touching no other particle); ``contact_area_um2_mean``
        (shared face area per touching pair, µm²); ``contact_area_fraction`` (faces shared with
        another particle / all faces of the particles with anything else: the share of the particle
        surface in contact); ``collector_particles`` (particles touching the collector); with ``bridges``
        (a mask of the pore-bridging phase, e.g. the CBD): ``bridged_pairs`` (pairs that do not touch but
        share a neighbouring bridge voxel — a neck of one voxel's thickness) and
        ``bridged_pairs_per_particle``.

    The mechanics treats the two kinds differently (issue 16): touching instances meet through the contact
    interphase (compression-only, a normal stiffness per area), a bridged pair through a bonded CBD voxel
    (stiffness E/h). Binning a 1 µm cathode to 2 µm turns a share of the bridged pairs into touching ones
    (stop 27, generated NCM622, seed 1, 14 µm particles only: 178 touching + 129 bridged → 259 + 76).
    """
    vs = VoxelSize.parse(voxel_size).as_tuple()
    ids = np.unique(particles[particles > 0])
    n = int(ids.size)
    pair_faces: dict[tuple[int, int], float] = {}
    surface = 0.0
    coll_touch: set[int] = set()
    for ax in range(3):
        face = float(np.prod([vs[a] for a in range(3) if a != ax]))
        a = particles
        b = np.roll(particles, -1, axis=ax)
        valid = np.ones(particles.shape, bool)
        if ax == thickness_axis:
            sl = [slice(None)] * 3
            sl[ax] = slice(-1, None)
            valid[tuple(sl)] = False
        diff = valid & (a != b)
        surface += face * (int(((a > 0) & diff).sum()) + int(((b > 0) & diff).sum()))
        both = diff & (a > 0) & (b > 0)
        lo = np.minimum(a[both], b[both]).astype(np.int64)
        hi = np.maximum(a[both], b[both]).astype(np.int64)
        keys, counts = np.unique(lo * (int(particles.max()) + 1) + hi, return_counts=True)
        for k, c in zip(keys.tolist(), counts.tolist()):
            pair = divmod(k, int(particles.max()) + 1)
            pair_faces[pair] = pair_faces.get(pair, 0.0) + face * c
        if collector is not None:
            cb = np.roll(collector, -1, axis=ax)
            ca = collector
            for p_, c_ in ((a, cb), (b, ca)):
                m = valid & (p_ > 0) & c_
                coll_touch.update(np.unique(p_[m]).tolist())
    touching = {i for pr in pair_faces for i in pr}
    contact = 2.0 * sum(pair_faces.values())  # each shared face is surface of both particles
    bridged = {}
    if bridges is not None:
        nb = len(_bridged_pairs(particles, bridges, thickness_axis) - set(pair_faces))
        bridged = {"bridged_pairs": nb, "bridged_pairs_per_particle": 2.0 * nb / n if n else 0.0}
    return {
        **bridged,
        "n_particles": n, "touching_pairs": len(pair_faces),
        "touching_pairs_per_particle": 2.0 * len(pair_faces) / n if n else 0.0,
        "isolated_fraction": 1.0 - len(touching) / n if n else 0.0,
        "contact_area_um2_mean": float(np.mean(list(pair_faces.values()))) if pair_faces else 0.0,
        "contact_area_fraction": contact / surface if surface else 0.0,
        "collector_particles": len(coll_touch),
    }


def _bridged_pairs(particles: np.ndarray, bridges: np.ndarray, thickness_axis: int) -> set[tuple[int, int]]:
    """Pairs (low id, high id) of distinct instances face-adjacent to one common ``bridges`` voxel
    (in-plane axes periodic, the thickness axis not)."""
    pad = [(0, 0)] * 3
    pad[thickness_axis] = (1, 1)
    p = np.pad(particles, pad)
    core = [slice(None)] * 3
    core[thickness_axis] = slice(1, -1)
    at = np.asarray(bridges, bool)
    near = np.stack([np.roll(p, shift, axis=ax)[tuple(core)][at] for ax in range(3) for shift in (1, -1)])
    out: set[tuple[int, int]] = set()
    for i in range(6):
        for j in range(i + 1, 6):
            a, b = near[i], near[j]
            m = (a > 0) & (b > 0) & (a != b)
            out.update(zip(np.minimum(a[m], b[m]).tolist(), np.maximum(a[m], b[m]).tolist()))
    return out


def _measure(phases: np.ndarray, coating_range: tuple[int, int], t: int, *, names: list[str]) -> dict[str, float]:
    sl = [slice(None)] * 3
    sl[t] = slice(*coating_range)
    counts = np.bincount(phases[tuple(sl)].ravel(), minlength=256)
    total = counts.sum()
    return {n: float(counts[DEFAULT_PHASES.value(n)] / total) for n in names}

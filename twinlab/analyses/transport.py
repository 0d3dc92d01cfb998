"""Effective transport on voxels: tortuosity, effective diffusivity and multi-phase conductivity.

Physics and conventions (SCIENCE.md §5)
---------------------------------------
Steady diffusion (or Ohmic conduction) on the voxel grid by finite volumes: one unknown per voxel
centre, the conductance of the face between two voxels is the harmonic mean of their
conductivities times face area / centre distance (anisotropic voxels enter exactly here).
Dirichlet values C = 1 and C = 0 sit on the two outer faces normal to ``axis``, half a voxel
outside the first and last layers (TauFactor's convention; with it, layers in series give the
exact harmonic mean); the four other faces carry no flux, or are joined periodically.

Only voxels face-connected to both Dirichlet faces take part (connected components); the others
carry no flux and are reported through ``percolating_fraction``.

* effective diffusivity ratio ``D_eff/D_e = J L / (A ΔC)`` (J the total flux, L the length along
  the axis, A the cross-section);
* ``D_eff = ε D_e / τ²``: **τ² is the tortuosity factor and τ the tortuosity**; ε is the volume
  fraction of all voxels of the phase (as TauFactor does). ``tortuosity_factor_percolating`` uses
  the percolating voxels only (porespy's ``tortuosity_fd`` convention, which also puts its
  boundary values on the first/last voxel centres, i.e. over L − 1 voxels).
* no percolating path → ``d_eff_ratio = 0``, ``tortuosity_factor = inf``, ``percolates = False``.

The solver (``_multigrid``): conjugate gradients preconditioned by aggregation multigrid with
K-cycles, stopped when the flux through every plane normal to the axis agrees to ``rtol``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Mapping, Sequence

import numpy as np

from .._morphology import label_periodic
from .._results import Result
from .._validation import VoxelSize, axis_index, require_ndim, require_positive, AXES
from ..errors import ConvergenceError, InputError
from ..materials import MATERIALS
from ..phases import DEFAULT_PHASES, PhaseTable
from . import _multigrid, _stencil
from .electrode import crop_planes, electrode_planes

__all__ = [
    "TortuosityResult", "TortuosityTensorResult", "ConductivityResult", "BruggemanFit", "TransportResult",
    "compute_tortuosity", "tortuosity_tensor", "compute_conductivity", "penetration_depth",
    "deliverable_capacity", "fit_bruggeman", "analyze_twin",
]

FARADAY_C_MOL = 96485.33212

_CONVENTION = ("D_eff = eps * D_e / tau^2; tortuosity_factor = tau^2, tortuosity_tau = tau; "
               "eps = porosity = volume fraction of all voxels of the phase (TauFactor); voxel finite-volume solve")


@dataclasses.dataclass(frozen=True)
class _FieldResult(Result):
    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.pop("field", None)  # volumes go to Twin.write_field, not into the JSON
        return d


@dataclasses.dataclass(frozen=True)
class TortuosityResult(_FieldResult):
    """Steady diffusion through one phase along one axis (see the module docstring)."""

    phase: str
    axis: str
    shape: tuple[int, int, int]
    voxel_size_um: tuple[float, float, float]
    boundary: str
    convention: str
    porosity: float  # ε: all voxels of the phase / all voxels
    percolating_fraction: float  # voxels of the phase connected to both faces / voxels of the phase
    percolates: bool
    d_eff_ratio: float  # D_eff / D_e
    tortuosity_factor: float  # τ² = ε / (D_eff/D_e)  (porespy's ``.tortuosity`` is this τ²)
    tortuosity_tau: float  # τ = √τ²
    tortuosity_factor_percolating: float  # ε_percolating / (D_eff/D_e)
    flux_error: float  # (max − min) / max of the flux through every plane normal to the axis
    iterations: int
    solve_seconds: float
    solver_bytes_per_voxel: float
    field: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class TortuosityTensorResult(Result):
    """Tortuosity along z, y and x (the diagonal of the tortuosity-factor tensor)."""

    phase: str
    tortuosity_factor: tuple[float, float, float]  # τ² along (z, y, x)
    tortuosity_tau: tuple[float, float, float]  # τ
    d_eff_ratio: tuple[float, float, float]
    per_axis: tuple[TortuosityResult, TortuosityResult, TortuosityResult]


@dataclasses.dataclass(frozen=True)
class ConductivityResult(_FieldResult):
    """Ohmic conduction with per-phase conductivities, ΔV = 1 V across ``axis``."""

    axis: str
    shape: tuple[int, int, int]
    voxel_size_um: tuple[float, float, float]
    boundary: str
    conductivities_s_m: dict[str, float]
    conductivity_sources: dict[str, str]
    effective_conductivity_s_m: float
    current_density_a_m2: float  # at ΔV = 1 V over the sample length
    conducting_fraction: float  # voxels with σ > 0 / all voxels
    percolating_fraction: float  # of the conducting voxels
    percolates: bool
    flux_error: float
    iterations: int
    solve_seconds: float
    field: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    notes: tuple[str, ...] = ()  # phases neglected or capped to keep the contrast solvable (see _conduct)


@dataclasses.dataclass(frozen=True)
class BruggemanFit(Result):
    """τ² = ε^(1 − α) (D_eff/D_e = ε^α), and the two-parameter form τ² = k ε^(1 − α₂)."""

    exponent: float  # α of the one-parameter fit (Bruggeman: 1.5)
    r_squared: float  # of log τ² against log ε, one-parameter form
    prefactor_2p: float  # k of the two-parameter fit
    exponent_2p: float  # α₂ of the two-parameter fit
    r_squared_2p: float
    count: int
    form: str = "tortuosity_factor = porosity ** (1 - exponent)"


@dataclasses.dataclass(frozen=True)
class TransportResult(Result):
    """What ``analyze_twin`` stores under the result name "transport"."""

    tortuosity: TortuosityResult | TortuosityTensorResult
    conductivity: ConductivityResult | None
    cropped_planes: tuple[int, int]  # (first, stop) of the planes along the thickness axis used
    notes: tuple[str, ...]
    conductivity_planes: tuple[int, int] | None = None  # the conductivity's planes: those holding solid


# -- the shared solve -------------------------------------------------------------------------------

def _as_labels(labels: Any) -> np.ndarray:
    if hasattr(labels, "compute") and not isinstance(labels, np.ndarray):
        labels = labels.compute()  # the solve is global: a dask volume is gathered once
    arr = np.asarray(labels)
    require_ndim(arr, 3, name="labels")
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"labels must hold integer phase labels (or bool), got dtype {arr.dtype}; "
                         "segment the image first")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise InputError("phase labels must lie in 0–255 (uint8); renumber the phases")
    return arr.astype(np.uint8, copy=False)


def _boundary_text(axis: int, periodic: bool) -> str:
    name = AXES[axis]
    sides = "periodic" if periodic else "no-flux"
    return (f"Dirichlet 1 on the low-{name} face and 0 on the high-{name} face (half a voxel outside "
            f"the first/last layer), {sides} on the other faces")


def _solve(labels: np.ndarray, lut: np.ndarray, axis: int, voxel: VoxelSize, periodic: bool,
           rtol: float, max_iterations: int, return_field: bool) -> dict[str, Any]:
    """Percolation, face conductances, solve; returns conductance ratios and bookkeeping."""
    t0 = time.perf_counter()
    arr = np.ascontiguousarray(np.moveaxis(labels, axis, 0))
    h = [voxel.as_tuple()[axis]] + [s for i, s in enumerate(voxel.as_tuple()) if i != axis]
    w = np.array([h[1] * h[2] / h[0], h[0] * h[2] / h[1], h[0] * h[1] / h[2]])  # area / distance, µm
    wscale = float(w.max())
    w = w / wscale
    conducting = lut[arr] > 0
    n_conducting = int(np.count_nonzero(conducting))
    keep = _percolating(conducting, periodic)
    del conducting
    n_perc = int(np.count_nonzero(keep))
    n0, n1, n2 = arr.shape
    out: dict[str, Any] = {"n_conducting": n_conducting, "n_percolating": int(n_perc), "iterations": 0,
                           "flux_error": 0.0, "ratio": 0.0, "field": None, "bytes": 0.0}
    if n_perc:
        g = [np.empty(arr.shape, np.float32) for _ in range(3)]
        bclo = np.empty((n1, n2), np.float32)
        bchi = np.empty((n1, n2), np.float32)
        _stencil.build_faces(arr, keep, lut.astype(np.float32), *w, periodic, periodic, *g, bclo, bchi)
        x, info = _multigrid.solve_potential(*g, bclo, bchi, rtol=rtol, max_iterations=max_iterations)
        flux = float(np.mean(info.layer_fluxes)) * wscale  # in (µm) × lut units
        length = n0 * h[0]
        area = n1 * h[1] * n2 * h[2]
        out.update(iterations=info.iterations, flux_error=info.flux_error, ratio=flux * length / area,
                   bytes=(info.hierarchy_bytes + sum(a.nbytes for a in g) + keep.nbytes + arr.nbytes) / arr.size)
        if return_field:
            field = x.astype(np.float32)
            field[~keep] = np.nan
            out["field"] = np.moveaxis(field, 0, axis)
    out["seconds"] = time.perf_counter() - t0
    return out


def _percolating(conducting: np.ndarray, periodic: bool) -> np.ndarray:
    """Voxels of ``conducting`` face-connected to both planes normal to axis 0 (the other sides
    joined periodically on request): scipy's labelling, 4× faster than a flood fill here."""
    labels = label_periodic(conducting, (1, 2) if periodic else ())
    spanning = np.zeros(int(labels.max()) + 1, bool)
    spanning[np.intersect1d(labels[0], labels[-1])] = True
    spanning[0] = False  # the background
    return spanning[labels]


def _check_faces(labels: np.ndarray, mask_values: np.ndarray, axis: int, what: str) -> None:
    lo = np.take(labels, 0, axis=axis)
    hi = np.take(labels, -1, axis=axis)
    for side, plane in (("low", lo), ("high", hi)):
        if not np.isin(plane, mask_values).any():
            raise InputError(
                f"no voxel of {what} lies on the {side}-{AXES[axis]} face, so nothing can enter or leave along "
                f"{AXES[axis]}; crop away the layer covering that face (e.g. the current collector) or "
                "choose another axis")


def compute_tortuosity(labels: Any, *, phase: str = "pore", phases: PhaseTable = DEFAULT_PHASES,
                       axis: int | str = 0, voxel_size_um: Any = 1.0, periodic: bool = False,
                       rtol: float = 1e-4, max_iterations: int = 200,
                       return_field: bool = False) -> TortuosityResult:
    """Tortuosity factor and effective diffusivity of one phase along ``axis``.

    Parameters
    ----------
    labels : (z, y, x) integer array (numpy or dask) of phase values, or a bool array in which
        True marks the phase (``phase``/``phases`` are then ignored).
    phase : name of the diffusing phase in ``phases``.
    axis : 'z', 'y', 'x' or 0–2; Dirichlet faces are the two faces normal to it.
    voxel_size_um : voxel edges (dz, dy, dx) in µm, one number if isotropic, or a VoxelSize.
        Only the ratios matter for τ²; anisotropy enters the face conductances exactly.
    periodic : join the four side faces periodically instead of no-flux.
    rtol : stop when the flux through every plane normal to the axis agrees to this relative
        spread ((max − min)/max).
    return_field : also return the concentration (float32, NaN outside the percolating phase).

    Returns
    -------
    TortuosityResult — convention ``D_eff = ε D_e / τ²`` (module docstring).
    """
    arr = _as_labels(labels)
    a = axis_index(axis)
    voxel = VoxelSize.parse(voxel_size_um)
    require_positive(rtol, "rtol")
    lut = np.zeros(256, np.float32)
    if np.dtype(getattr(labels, "dtype", None)) == bool:
        name, values = "True voxels", np.array([1], np.uint8)
    else:
        name, values = f"phase {phase!r}", np.array([phases.value(phase)], np.uint8)
    lut[values] = 1.0
    n_phase = int(np.count_nonzero(np.isin(arr, values)))
    if n_phase == 0:
        raise InputError(f"{name} is absent from the labels (values present: {np.unique(arr).tolist()}); "
                         "check the phase name and the phase table")
    _check_faces(arr, values, a, name)
    s = _solve(arr, lut, a, voxel, periodic, rtol, max_iterations, return_field)
    porosity = n_phase / arr.size
    eps_perc = s["n_percolating"] / arr.size
    ratio = s["ratio"]
    tf = porosity / ratio if ratio > 0 else math.inf
    return TortuosityResult(
        phase=phase if name.startswith("phase") else "True", axis=AXES[a], shape=tuple(arr.shape),
        voxel_size_um=voxel.as_tuple(), boundary=_boundary_text(a, periodic), convention=_CONVENTION,
        porosity=porosity, percolating_fraction=s["n_percolating"] / n_phase, percolates=ratio > 0,
        d_eff_ratio=ratio, tortuosity_factor=tf, tortuosity_tau=math.sqrt(tf),
        tortuosity_factor_percolating=eps_perc / ratio if ratio > 0 else math.inf,
        flux_error=s["flux_error"], iterations=s["iterations"], solve_seconds=s["seconds"],
        solver_bytes_per_voxel=s["bytes"], field=s["field"])


def tortuosity_tensor(labels: Any, **options: Any) -> TortuosityTensorResult:
    """:func:`compute_tortuosity` along z, y and x (same options; ``axis`` is not accepted)."""
    if "axis" in options:
        raise InputError("tortuosity_tensor solves along all three axes; drop the axis option")
    arr = _as_labels(labels) if np.dtype(getattr(labels, "dtype", None)) != bool else np.asarray(labels)
    per = tuple(compute_tortuosity(arr, axis=a, **options) for a in range(3))
    return TortuosityTensorResult(phase=per[0].phase,
                                  tortuosity_factor=tuple(r.tortuosity_factor for r in per),
                                  tortuosity_tau=tuple(r.tortuosity_tau for r in per),
                                  d_eff_ratio=tuple(r.d_eff_ratio for r in per), per_axis=per)


def default_conductivities(names: Sequence[str], phases: PhaseTable = DEFAULT_PHASES
                           ) -> tuple[dict[str, float], dict[str, str]]:
    """Electronic conductivities (S/m) and their sources from the phases' materials.

    Only a phase whose material is known to :mod:`twinlab.materials` gets a default; a user's
    own phase (no material, or one twinlab does not know) needs its conductivity given.
    """
    values, sources = {}, {}
    for name in names:
        material = phases[name].material
        if material not in MATERIALS:
            continue
        m = MATERIALS[material]
        if m.conductivity_s_m is not None:
            values[name] = float(m.conductivity_s_m)
            sources[name] = f"twinlab.materials {m.name}: {m.source}"
    return values, sources


def compute_conductivity(labels: Any, *, conductivities: Mapping[str, float] | None = None,
                         phases: PhaseTable = DEFAULT_PHASES, axis: int | str = 0,
                         voxel_size_um: Any = 1.0, periodic: bool = False, rtol: float = 1e-4,
                         max_iterations: int = 2000, return_field: bool = False) -> ConductivityResult:
    """Effective electronic conductivity (S/m) of a multi-phase volume along ``axis``.

    ``conductivities`` maps phase names to S/m and overrides the defaults of the phases'
    materials (``twinlab.materials``). Every phase present in ``labels`` needs a value; phases
    with 0 S/m (e.g. the electrolyte-filled pore for electrons) carry no current. ΔV = 1 V
    across the two faces normal to ``axis``; returns the potential field on request (V).
    """
    arr = _as_labels(labels)
    a = axis_index(axis)
    voxel = VoxelSize.parse(voxel_size_um)
    present = [int(v) for v in np.flatnonzero(np.bincount(arr.reshape(-1), minlength=256))]
    names = [phases.name(v) for v in present]
    values, sources = default_conductivities(names, phases)
    for name, value in (conductivities or {}).items():
        if name not in phases:
            raise InputError(f"conductivity given for unknown phase {name!r}; phases are {phases.names}")
        if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value >= 0):
            raise InputError(f"conductivity of {name!r} must be a finite number ≥ 0 S/m, got {value!r}")
        values[name], sources[name] = float(value), "given"
    missing = [n for n in names if n not in values]
    if missing:
        raise InputError(f"no conductivity for phase(s) {missing} present in the labels; pass "
                         "conductivities={name: S/m} or set the material's conductivity_s_m")
    used = {n: values[n] for n in names}
    top = max(used.values())
    if top <= 0:
        raise InputError(f"every phase present ({names}) has zero conductivity; nothing conducts")
    conducting_values = np.array([v for v, n in zip(present, names) if used[n] > 0], np.uint8)
    _check_faces(arr, conducting_values, a, "the conducting phases")
    counts = dict(zip(names, np.bincount(arr.reshape(-1), minlength=256)[present].tolist()))
    sigma, s, notes = _conduct(arr, dict(zip(present, names)), used, counts, a, voxel, periodic, rtol,
                               max_iterations, return_field)
    length_m = arr.shape[a] * voxel.as_tuple()[a] * 1e-6
    return ConductivityResult(
        axis=AXES[a], shape=tuple(arr.shape), voxel_size_um=voxel.as_tuple(),
        boundary=_boundary_text(a, periodic).replace("Dirichlet 1", "Dirichlet 1 V").replace("and 0", "and 0 V"),
        conductivities_s_m=used, conductivity_sources={n: sources[n] for n in names},
        effective_conductivity_s_m=sigma, current_density_a_m2=sigma / length_m,
        conducting_fraction=s["n_conducting"] / arr.size,
        percolating_fraction=s["n_percolating"] / max(s["n_conducting"], 1), percolates=sigma > 0,
        flux_error=s["flux_error"], iterations=s["iterations"], solve_seconds=s["seconds"], field=s["field"],
        notes=tuple(notes))


#: the widest gap between two consecutive conductivity levels the solver is given: on a generated LMP
#: anode (Li 1.1e7 S/m particles in 1e-8 S/m Li2CO3 shells, 1e-12 S/m binder) it converges with the
#: lithium gap at 1e6 (1016 PCG iterations) and fails at 1e8 (in float64 too: the aggregation
#: hierarchy, not the precision, loses the coated particles)
MAX_CONTRAST = 1e6


def _conduct(arr, value_names, used, counts, axis, voxel, periodic, rtol, max_iterations, return_field):
    """Solve within the solver's contrast range; returns (S/m, solve bookkeeping, notes).

    The conductivity levels fall into groups separated by gaps wider than :data:`MAX_CONTRAST`
    (within a group the solver takes them as they are). From the best group down, groups join
    until the included phases percolate:

    * the groups left out are set to 0. By Rayleigh monotonicity the true value is not lower, and
      by the Dirichlet principle (the solved potential on the network, any value in [0, 1]
      elsewhere) it exceeds the result by at most the summed conductances of every face of a
      left-out voxel (each ≤ 2σ · area/distance, |ΔV| ≤ 1 V): that bound is stated;
    * a gap between included groups (e.g. lithium particles that connect only through 1e-8 S/m
      shells) is narrowed to MAX_CONTRAST by scaling the groups above it down: they stay
      near-perfect conductors in series with the poorer phase, and the result is a lower bound
      that converges like 1/gap (measured on an LMP anode: relative change 4.5e-4 between gaps of
      1e4 and 1e6).
    """
    h = voxel.as_tuple()
    others = [i for i in range(3) if i != axis]
    length_over_area = arr.shape[axis] * h[axis] / math.prod(arr.shape[i] * h[i] for i in others)
    face_weights = h[1] * h[2] / h[0] + h[0] * h[2] / h[1] + h[0] * h[1] / h[2]  # Σ area/distance, µm
    levels = sorted({v for v in used.values() if v > 0}, reverse=True)
    groups = [[levels[0]]]
    for hi, lo in zip(levels, levels[1:]):
        if hi / lo > MAX_CONTRAST:
            groups.append([])
        groups[-1].append(lo)
    for k in range(1, len(groups) + 1):
        # every level keeps its ratio to the next lower included one, up to MAX_CONTRAST
        included = [v for g in groups[:k] for v in g]
        scaled = {included[-1]: included[-1]}
        for i in range(len(included) - 2, -1, -1):
            scaled[included[i]] = scaled[included[i + 1]] * min(included[i] / included[i + 1], MAX_CONTRAST)
        regime = {n: scaled.get(v, 0.0) for n, v in used.items()}
        top = max(regime.values())
        lut = np.zeros(256, np.float32)
        for v, n in value_names.items():
            lut[v] = regime[n] / top
        if _touches_both_faces(arr, lut, axis):
            s = _solve(arr, lut, axis, voxel, periodic, rtol, max_iterations, return_field)
            sigma = s["ratio"] * top
        else:
            s = {"n_conducting": int(np.count_nonzero(lut[arr] > 0)), "n_percolating": 0, "iterations": 0,
                 "flux_error": 0.0, "field": None, "seconds": 0.0}
            sigma = 0.0
        if sigma > 0:
            break
    notes = []
    neglected = [n for n, v in used.items() if v > 0 and regime[n] == 0]
    if neglected and sigma > 0:
        bound = sum(counts[n] * 4.0 * used[n] for n in neglected) * face_weights * length_over_area
        notes.append(f"phases {neglected} (≤ {max(used[n] for n in neglected):.3g} S/m, over {MAX_CONTRAST:g}× "
                     f"poorer than the percolating network) set to 0: they add at most {bound:.3g} S/m "
                     f"({bound / sigma:.2g} of the result)")
    scaled_down = [n for n in used if 0 < regime[n] < used[n]]
    if scaled_down:
        notes.append(f"phases {scaled_down} scaled to {', '.join(f'{regime[n]:.3g}' for n in scaled_down)} S/m "
                     f"(conductivity gaps narrowed to {MAX_CONTRAST:g}, the solver's limit): near-perfect "
                     "conductors in series with the poorer phases; the value is a lower bound, converging "
                     "like 1/gap")
    return sigma, s, notes


def _touches_both_faces(arr: np.ndarray, lut: np.ndarray, axis: int) -> bool:
    return all((lut[np.take(arr, end, axis=axis)] > 0).any() for end in (0, -1))


# -- thick-electrode numbers (SCIENCE.md §5) ------------------------------------------------------

def penetration_depth(*, porosity: float, tortuosity_factor: float, diffusivity_m2_s: float,
                      concentration_mol_m3: float, transference_number: float,
                      current_density_a_m2: float) -> float:
    """Electrolyte penetration depth ``L_d = (ε/τ²) · D0 C0 F / ((1 − t+) I)`` in metres.

    SCIENCE.md writes ε/τ with τ the tortuosity *factor* of the ``D_eff = ε D/τ`` convention;
    in twinlab's convention that is ``tortuosity_factor`` (τ²), so ε/τ² = D_eff/D0.
    """
    for value, name in ((porosity, "porosity"), (tortuosity_factor, "tortuosity_factor"),
                        (diffusivity_m2_s, "diffusivity_m2_s"), (concentration_mol_m3, "concentration_mol_m3"),
                        (current_density_a_m2, "current_density_a_m2")):
        require_positive(value, name)
    if not 0 <= transference_number < 1:
        raise InputError(f"transference_number must lie in [0, 1), got {transference_number!r}")
    return (porosity / tortuosity_factor) * diffusivity_m2_s * concentration_mol_m3 * FARADAY_C_MOL / (
        (1.0 - transference_number) * current_density_a_m2)


def deliverable_capacity(*, capacity_mah_cm2: float, thickness_um: float, porosity: float,
                         tortuosity_factor: float, diffusivity_m2_s: float, concentration_mol_m3: float,
                         transference_number: float, current_density_a_m2: float) -> float:
    """Deliverable areal capacity ``Q_eff = Q0 · min(1, L_d / h)`` in mAh/cm².

    SCIENCE.md's ``Q_eff = Q0 · ε/(h τ) · D0 C0 F / ((1 − t+) I)`` is ``Q0 · L_d/h``; electrodes
    thinner than L_d deliver all of Q0, hence the cap at 1.
    """
    require_positive(capacity_mah_cm2, "capacity_mah_cm2")
    require_positive(thickness_um, "thickness_um")
    ld = penetration_depth(porosity=porosity, tortuosity_factor=tortuosity_factor,
                           diffusivity_m2_s=diffusivity_m2_s, concentration_mol_m3=concentration_mol_m3,
                           transference_number=transference_number, current_density_a_m2=current_density_a_m2)
    return capacity_mah_cm2 * min(1.0, ld / (thickness_um * 1e-6))


def fit_bruggeman(porosities: Sequence[float], tortuosity_factors: Sequence[float]) -> BruggemanFit:
    """Least-squares Bruggeman exponent across a series: log τ² = (1 − α) log ε (through 1, 1)
    and the two-parameter log τ² = log k + (1 − α₂) log ε. Non-percolating (τ² = ∞) entries are
    rejected."""
    eps = np.asarray(porosities, float)
    tf = np.asarray(tortuosity_factors, float)
    if eps.shape != tf.shape or eps.ndim != 1 or eps.size < 2:
        raise InputError("fit_bruggeman needs two equally long sequences with at least two entries")
    if not (np.all((eps > 0) & (eps < 1)) and np.all(np.isfinite(tf) & (tf > 0))):
        raise InputError("porosities must lie in (0, 1) and tortuosity factors be finite and > 0 "
                         "(drop non-percolating samples)")
    lx, ly = np.log(eps), np.log(tf)
    slope = float(lx @ ly / (lx @ lx))
    ss_tot = float(((ly - ly.mean()) ** 2).sum())

    def r2(pred: np.ndarray) -> float:
        ss = float(((ly - pred) ** 2).sum())
        return 1.0 - ss / ss_tot if ss_tot > 0 else (1.0 if ss == 0 else 0.0)

    if np.ptp(lx) > 0:
        s2, c2 = np.polyfit(lx, ly, 1)
    else:
        s2, c2 = math.nan, math.nan
    return BruggemanFit(exponent=1.0 - slope, r_squared=r2(slope * lx), prefactor_2p=float(math.exp(c2)),
                        exponent_2p=float(1.0 - s2), r_squared_2p=r2(s2 * lx + c2) if np.isfinite(s2) else math.nan,
                        count=int(eps.size))


# -- the twin analysis ----------------------------------------------------------------------------

def analyze_twin(twin: Any, *, axis: int | str | None = None, write_fields: bool = False,
                 phase: str = "pore", all_axes: bool = False, periodic: bool = False,
                 rtol: float = 1e-4, conductivity: bool = True, conductivity_max_iterations: int = 2000,
                 conductivities: Mapping[str, float] | None = None, **options: Any) -> TransportResult:
    """Tortuosity of ``phase`` (default along the twin's thickness axis; ``all_axes`` for the
    diagonal of the tensor) and, when every phase present has a conductivity, the effective
    electronic conductivity; stores the result as "transport" and, with ``write_fields``, the
    concentration as the field "transport_concentration" (NaN outside the percolating pore).

    Planes of the current collector at the collector side, and end planes without ``phase``, are
    left out (:mod:`twinlab.analyses.electrode`; reported as ``cropped_planes``); the conductivity
    sees the planes between the collector and the last plane holding solid (``conductivity_planes``:
    the electrolyte above a coating carries no electrons). A conductivity solve that fails (missing
    conductivities, no convergence) becomes a note; the tortuosity stays. ``conductivities``
    (phase name → S/m) override the defaults of the phases' materials.
    """
    from ..twin import Step

    phases = twin.phases
    unknown = sorted(set(conductivities or {}) - set(phases.names))
    if unknown:  # a typo must not become a silent "conductivity skipped" note
        raise InputError(f"conductivity given for unknown phase(s) {unknown}; this twin has phases {phases.names}")
    thick = twin.thickness_axis
    a = thick if axis is None else axis_index(axis)
    labels = np.asarray(twin.labels("phases").compute())
    planes = electrode_planes(labels, axis=thick, side=twin.collector_side, phases=phases, phase=phase)
    work = np.ascontiguousarray(crop_planes(labels, thick, planes))
    voxel = twin.voxel_size
    common = dict(phases=phases, voxel_size_um=voxel, periodic=periodic, rtol=rtol)
    notes: list[str] = []
    if all_axes:
        tort: TortuosityResult | TortuosityTensorResult = tortuosity_tensor(work, phase=phase, **common)
        field = None
    else:
        tort = compute_tortuosity(work, phase=phase, axis=a, return_field=write_fields, **common)
        field = tort.field
    cond = solid_planes = None
    if conductivity:
        try:
            solids = [p.name for p in phases if p.name != phase]
            solid_planes = electrode_planes(labels, axis=thick, side=twin.collector_side, phases=phases, phase=solids)
            cond = compute_conductivity(np.ascontiguousarray(crop_planes(labels, thick, solid_planes)), axis=a,
                                        conductivities=conductivities, max_iterations=conductivity_max_iterations,
                                        **common)
        except (InputError, ConvergenceError) as exc:
            notes.append(f"conductivity skipped: {exc}")
    result = TransportResult(tortuosity=tort, conductivity=cond, cropped_planes=planes, notes=tuple(notes),
                             conductivity_planes=solid_planes)
    params = {"axis": AXES[a], "phase": phase, "all_axes": all_axes, "periodic": periodic, "rtol": rtol,
              "cropped_planes": list(planes), "conductivities_s_m": dict(conductivities or {}),
              "conductivity_planes": list(solid_planes) if solid_planes else None}
    step = Step("transport", params)
    twin.save_result("transport", result, step=step)
    if write_fields and field is not None:
        full = np.full(labels.shape, np.nan, np.float32)
        crop_planes(full, thick, planes)[...] = field
        twin.write_field("transport_concentration", full, unit="1", step=step)
    return result

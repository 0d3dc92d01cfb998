"""Does the twin represent the sample? REV checks and the design check (SCIENCE.md §3).

* :func:`rev_size_ratio` — domain edge length per axis divided by the mean particle equivalent
  diameter ``d = (6V/π)^(1/3)``; the digital-twin criterion is a ratio above 5 on every axis.
* :func:`statistical_rev` — a property (porosity, a phase fraction or any callable) measured in
  cubic sub-volumes of growing size at seeded random positions; the REV is the smallest size from
  which on the relative spread (std/mean) stays under the tolerance. Only the sub-volumes are read,
  so a dask volume is never loaded whole.
* :func:`check_design` — segmented vs theoretical volume fractions (:mod:`twinlab.design`), pass
  within an absolute tolerance (2 % by default, the field's practice), CBD compared either as
  solid carbon + binder or as the nanoporous domain a segmentation sees (stated in the result).
* :func:`analyze_twin` — all of the above on a twin, stored as result "rev".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .._chunked import is_dask, label_counts
from .._results import Result
from .._validation import AXES, VoxelSize
from ..errors import InputError
from ..phases import DEFAULT_PHASES, PhaseTable

SIZE_RATIO_CRITERION = 5.0
COLLECTOR = "collector"


# ============================================================================ size ratio
@dataclasses.dataclass(frozen=True)
class SizeRatio(Result):
    """Domain edge / mean particle equivalent diameter, per axis (z, y, x)."""

    axes: tuple[str, ...]
    edge_um: tuple[float, ...]
    mean_equivalent_diameter_um: float  # number mean: the criterion's feature size
    volume_weighted_diameter_um: float  # Σ V d / Σ V: what a bimodal powder's big mode looks like
    n_particles: int
    ratio: tuple[float, ...]
    passed_axes: tuple[bool, ...]
    passed: bool
    criterion: float
    message: str


def rev_size_ratio(particles: Any, voxel_size_um: Any, *, criterion: float = SIZE_RATIO_CRITERION,
                   phase: str = "active", phases: PhaseTable = DEFAULT_PHASES, min_size_voxels: int = 1,
                   **split_options: Any) -> SizeRatio:
    """REV size ratio: domain edge length (µm) per axis / mean particle equivalent diameter (µm).

    Parameters
    ----------
    particles : instance labels (0 = background; any integer dtype wider than uint8), or uint8
        phase labels, which are first split into particles of ``phase`` with
        :func:`twinlab.segment.split_particles` (``split_options`` go there). numpy or dask.
    voxel_size_um : VoxelSize, "dz,dy,dx" or a number.
    criterion : the ratio must exceed this on every axis (5 in digital-twin electrode work).
    min_size_voxels : smaller objects (noise) are not counted as particles.

    The equivalent diameter of a particle of volume V is ``(6V/π)^(1/3)``; the mean is the number
    mean over particles (those cut by the domain faces included, as they are seen).
    """
    vs = VoxelSize.parse(voxel_size_um)
    dtype = np.dtype(particles.dtype)
    if not np.issubdtype(dtype, np.integer):
        raise InputError(f"particles must be integer labels, got {dtype}")
    if dtype.itemsize == 1:
        from ..segment import split_particles

        particles = split_particles(particles, phase=phase, phases=phases, voxel_size_um=vs, **split_options)
    counts = _bincount(particles)
    counts[0] = 0
    volumes = counts[counts >= max(1, min_size_voxels)].astype(np.float64) * (
        vs.volume_um3 if particles.ndim == 3 else vs.dy * vs.dx)
    if volumes.size == 0:
        raise InputError("no particles found (all labels are 0); segment and split the particles first")
    if particles.ndim == 3:
        d = (6.0 * volumes / math.pi) ** (1.0 / 3.0)
        sizes = vs.as_tuple()
    else:  # 2D: equivalent circle diameter
        d = np.sqrt(4.0 * volumes / math.pi)
        sizes = vs.as_tuple()[1:]
    mean_d = float(d.mean())
    vol_d = float((volumes * d).sum() / volumes.sum())
    edge = tuple(float(n * s) for n, s in zip(particles.shape, sizes))
    ratio = tuple(e / mean_d for e in edge)
    passed = tuple(bool(r > criterion) for r in ratio)
    axes = AXES[-particles.ndim:]
    failing = [f"{a} ({r:.2f})" for a, r, p in zip(axes, ratio, passed) if not p]
    msg = (f"size ratio above {criterion:g} on every axis (min {min(ratio):.2f})" if all(passed) else
           f"size ratio not above {criterion:g} along {', '.join(failing)}: the domain is too small "
           f"for particles of mean equivalent diameter {mean_d:.3g} µm; image a larger volume")
    return SizeRatio(tuple(axes), edge, mean_d, vol_d, int(volumes.size), ratio, passed, all(passed), criterion,
                     msg)


# ============================================================================ statistical REV
@dataclasses.dataclass(frozen=True)
class StatisticalRev(Result):
    """Spread of a property over random sub-volumes of growing size (plot-ready arrays)."""

    property: str
    sizes_voxels: tuple[int, ...]  # cube edge in voxels along the finest axis (see sizes_um)
    sizes_um: tuple[float, ...]
    n_samples: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    relative_spread: tuple[float, ...]
    tolerance: float
    rev_um: float | None  # smallest size from which on the spread stays under tolerance
    rev_voxels: int | None
    converged: bool
    values: tuple[tuple[float, ...], ...]  # per size, the sampled values (not in to_dict: stored as arrays)
    message: str

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.pop("values")
        return d


#: a twin's labels up to this size are read into memory once by :func:`analyze_twin` (the transport and
#: morphology analyses hold the whole label volume too); larger ones are read sub-volume by sub-volume
READ_WHOLE_BYTES = 1 << 30


def statistical_rev(
    labels: Any,
    *,
    property: str | Callable[[np.ndarray], float] = "porosity",
    sizes: Sequence[int] | None = None,
    n_samples: int = 20,
    tolerance: float = 0.05,
    seed: int = 0,
    voxel_size_um: Any = None,
    phases: PhaseTable = DEFAULT_PHASES,
    exclude_collector: bool = True,
) -> StatisticalRev:
    """Statistical REV of a property measured in random cubic sub-volumes of growing size.

    Parameters
    ----------
    labels : phase labels (z, y, x) or (y, x), numpy or dask; only the sub-volumes are read.
    property : "porosity" (the pore fraction), a phase name (its volume fraction), or a callable
        ``f(block) -> float`` on a labels block.
    sizes : cube edges in voxels of the finest axis; with anisotropic voxels the sub-volume is a
        cube in µm (fewer voxels along coarser axes). Default: 8 sizes from ~1/16 of the smallest
        domain edge up to the whole edge, geometrically spaced.
    n_samples : sub-volumes per size (fewer when the size leaves fewer distinct positions).
    tolerance : relative spread (std/mean) under which the property counts as converged.
    exclude_collector : fractions are of the coating: collector voxels are left out of the
        denominator.

    Returns
    -------
    StatisticalRev — ``rev_um`` is the smallest size such that this and every larger size have a
    relative spread ≤ tolerance (None if never reached).
    """
    if np.ndim(labels) not in (2, 3):
        raise InputError(f"labels must be 2D or 3D, got shape {np.shape(labels)}")
    if not np.issubdtype(np.dtype(labels.dtype), np.integer):
        raise InputError(f"labels must be integer phase labels, got {labels.dtype}; segment the image first")
    if not (0 < tolerance < 1):
        raise InputError(f"tolerance must lie in (0, 1) (a relative spread), got {tolerance}")
    if n_samples < 2:
        raise InputError(f"n_samples must be at least 2 to measure a spread, got {n_samples}")
    ndim = labels.ndim
    vs = VoxelSize.parse(voxel_size_um if voxel_size_um is not None else 1.0).as_tuple()[-ndim:]
    finest = min(vs)
    shape = labels.shape
    name, func = _property(property, phases, exclude_collector)
    max_edge = min(int(n * s / finest) for n, s in zip(shape, vs))  # finest-axis voxels of the largest cube
    if sizes is None:
        lo = max(4, max_edge // 16)
        sizes = sorted(set(int(round(v)) for v in np.geomspace(lo, max_edge, 8)))
    sizes = sorted(int(s) for s in sizes)
    if not sizes or sizes[0] < 1 or sizes[-1] > max_edge:
        raise InputError(f"sizes must lie in 1..{max_edge} voxels (the smallest domain edge), got {sizes}")
    rng = np.random.default_rng(seed)
    means, stds, spreads, counts, values = [], [], [], [], []
    for s in sizes:
        edge = [max(1, min(n, int(round(s * finest / v)))) for n, v in zip(shape, vs)]
        n_pos = int(np.prod([n - e + 1 for n, e in zip(shape, edge)]))
        k = min(n_samples, n_pos)
        starts = {tuple(int(rng.integers(0, n - e + 1)) for n, e in zip(shape, edge)) for _ in range(4 * k)}
        starts = sorted(starts)[:k] if len(starts) >= k else sorted(starts)
        blocks = [labels[tuple(slice(a, a + e) for a, e in zip(st, edge))] for st in starts]
        vals = _evaluate(blocks, func)
        vals = vals[np.isfinite(vals)]
        m = float(vals.mean()) if vals.size else float("nan")
        sd = float(vals.std(ddof=1)) if vals.size > 1 else float("nan")
        means.append(m)
        stds.append(sd)
        # one position (the whole domain) measures no spread: NaN, and it cannot decide the REV
        spreads.append(float("nan") if not np.isfinite(sd) else (sd / abs(m) if m else
                                                                  (0.0 if sd == 0 else float("inf"))))
        counts.append(int(vals.size))
        values.append(tuple(float(v) for v in vals))
    measured = [i for i, sp in enumerate(spreads) if np.isfinite(sp) or sp == float("inf")]
    rev_idx = None
    for j, i in enumerate(measured):
        if all(spreads[k] <= tolerance for k in measured[j:]):
            rev_idx = i
            break
    sizes_um = tuple(float(s * finest) for s in sizes)
    if rev_idx is None:
        last = spreads[measured[-1]] if measured else float("nan")
        msg = (f"{name}: the relative spread ({last:.3g} at the largest measured size) never stays under "
               f"{tolerance:g}; the domain is smaller than the REV")
    else:
        msg = f"{name}: REV ≈ {sizes_um[rev_idx]:.4g} µm (spread ≤ {tolerance:g} from that size on)"
    return StatisticalRev(name, tuple(sizes), sizes_um, tuple(counts), tuple(means), tuple(stds), tuple(spreads),
                          float(tolerance), None if rev_idx is None else sizes_um[rev_idx],
                          None if rev_idx is None else sizes[rev_idx], rev_idx is not None, tuple(values), msg)


# ============================================================================ design check
@dataclasses.dataclass(frozen=True)
class DesignCheck(Result):
    """Segmented vs theoretical volume fractions (of the coating, collector excluded)."""

    phases: tuple[str, ...]
    segmented: dict[str, float]
    theoretical: dict[str, float]
    deviation: dict[str, float]  # segmented − theoretical (absolute fraction)
    passed_phases: dict[str, bool]
    passed: bool
    tolerance: float
    cbd_as: str
    cbd_statement: str
    theoretical_cbd_solid: float | None
    theoretical_cbd_domain: float | None
    message: str
    # phase → why its segmented fraction is not a measurement (below the image's resolution): neither
    # passed nor failed, named in the message and the report
    not_checkable: dict[str, str] = dataclasses.field(default_factory=dict)


def check_design(
    labels: Any,
    design: Any,
    *,
    phases: PhaseTable = DEFAULT_PHASES,
    tolerance: float = 0.02,
    cbd_as: str = "domain",
    exclude_collector: bool = True,
    thickness_axis: int | None = None,
    voxel_size_um: float | None = None,
    unresolved: Mapping[str, str] | None = None,
) -> DesignCheck:
    """Compare segmented volume fractions with the design's theoretical ones.

    Parameters
    ----------
    labels : phase labels (numpy or dask; counted chunk by chunk).
    design : an :class:`~twinlab.design.ElectrodeDesign`, its dict form, or a TOML path.
    tolerance : absolute tolerance on each fraction (0.02 = 2 percentage points).
    cbd_as : "domain" compares the segmented CBD with the nanoporous CBD domain (solid volume /
        (1 − cbd_nanoporosity), pore fraction reduced accordingly) — what a segmentation sees;
        "solid" compares it with the solid carbon + binder volume from the weights.
    exclude_collector : leave collector voxels out of the counted volume (the design describes the
        coating only).
    thickness_axis : the axis (0, 1, 2) across the coating; when given, the planes at either end of it
        that hold no solid (only pore and collector: the air above the coating's top surface in the
        field of view) are not counted — they are not coating porosity.
    voxel_size_um : the smallest voxel edge (µm); when given, a design component that is a surface
        film thinner than it (``Component.film_nm``, e.g. the 100 nm Li2CO3 shell of lithium powder) is
        compared together with its host phase — a voxel count cannot measure a sub-voxel film (a
        generated or segmented twin draws it one voxel thick) — and the statement says so.
    unresolved : phase → reason, for phases the segmentation found below the image's resolution
        (:attr:`twinlab.segment.SegmentReport.unresolved_phases`, e.g. CBD films one voxel thick at
        0.745 µm): such a phase is listed in ``not_checkable`` with its reason and the message says
        "NOT CHECKABLE" — it is neither passed nor failed; the other phases are compared as usual
        (they hold the unresolved phase's voxels, so they carry up to its fraction of error).

    Every phase of the design and every phase present in the labels is compared (a labelled phase
    the design lacks has theoretical fraction 0).
    """
    from ..design import ElectrodeDesign, check_cbd_as, load_design

    if isinstance(design, ElectrodeDesign):
        d = design
    elif isinstance(design, Mapping):
        d = ElectrodeDesign.from_dict(design)
    elif isinstance(design, str) or hasattr(design, "__fspath__"):
        d = load_design(design)
    else:
        raise InputError(f"design must be an ElectrodeDesign, a dict or a TOML path, got {type(design).__name__}")
    check_cbd_as(cbd_as)
    if not (0 < tolerance < 1):
        raise InputError(f"tolerance must lie in (0, 1) (an absolute fraction, 0.02 = 2 %), got {tolerance}")
    if not np.issubdtype(np.dtype(labels.dtype), np.integer):
        raise InputError(f"labels must be integer phase labels, got {labels.dtype}; segment the image first")
    if unresolved is not None and not (isinstance(unresolved, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in unresolved.items())):
        raise InputError(f"unresolved must map phase names to the reason each is below resolution, got {unresolved!r}")
    if thickness_axis is not None:
        labels = _without_empty_end_planes(labels, thickness_axis, phases)
    counts = _bincount(labels)
    present = {int(v): int(c) for v, c in enumerate(counts) if c > 0}
    unknown = [v for v in present if v not in [p.value for p in phases]]
    if unknown:
        raise InputError(f"labels hold values {unknown} that are not in the phase table {phases.names}")
    by_name = {phases.name(v): c for v, c in present.items()}
    if exclude_collector:
        by_name.pop(COLLECTOR, None)
    total = sum(by_name.values())
    if total == 0:
        raise InputError("the labels hold no coating voxels (only collector); check the labels")
    if len(by_name) < 2:
        raise InputError(f"the labels hold a single phase ({next(iter(by_name))}): a one-phase volume cannot "
                         "be checked against a design; segment the image into its phases first")
    theory = d.volume_fractions(cbd_as=cbd_as)
    names = list(dict.fromkeys([*theory, *by_name]))
    seg = {n: by_name.get(n, 0) / total for n in names}
    th = {n: float(theory.get(n, 0.0)) for n in names}
    films = _sub_voxel_films(d, voxel_size_um)
    for film, (host, _) in films.items():
        seg[host] = seg.get(host, 0.0) + seg.pop(film, 0.0)
        th[host] = th.get(host, 0.0) + th.pop(film, 0.0)
    names = [n for n in names if n not in films]
    dev = {n: seg[n] - th[n] for n in names}
    skipped = {n: why for n, why in (unresolved or {}).items() if n in names}
    ok = {n: bool(abs(dev[n]) <= tolerance + 1e-12) for n in names if n not in skipped}
    has_cbd = "cbd" in theory
    solid = d.volume_fractions("solid").get("cbd") if has_cbd else None
    domain = d.volume_fractions("domain").get("cbd") if has_cbd else None
    statement = (
        "CBD compared as the nanoporous domain (solid carbon + binder / (1 − "
        f"{d.cbd_nanoporosity:g} nanoporosity); its nanopores are counted in the CBD, not in the pore phase)"
        if cbd_as == "domain" else
        "CBD compared as solid carbon + binder volume (nanopores of the CBD counted as pore)")
    if not has_cbd:
        statement = "the design has no CBD phase; " + statement
    failing = [n for n in ok if not ok[n]]
    if failing:
        details = "; ".join(f"{n}: segmented {seg[n]:.3f} vs design {th[n]:.3f} (deviation {dev[n]:+.3f})"
                            for n in failing)
        verdict = f"FAILED for phase(s) {', '.join(failing)} at ±{tolerance:g}: {details}"
    elif skipped:
        verdict = f"the other phases within ±{tolerance:g} of the design"
    else:
        verdict = f"passed: all phases within ±{tolerance:g} of the design"
    # phases not checked come first: a reader must not take the check for a pass
    unchecked = "".join(f"NOT CHECKABLE for {n} (segmented {seg[n]:.3f} vs design {th[n]:.3f}): {why}; "
                        for n, why in skipped.items())
    msg = f"design check {unchecked}{verdict}"
    for film, (host, nm) in films.items():
        msg += (f" ({film}, a {nm:g} nm film on {host} thinner than the {voxel_size_um:g} µm voxel, is counted "
                f"with {host})")
    return DesignCheck(tuple(names), seg, th, dev, ok, not failing, float(tolerance), cbd_as, statement,
                       solid, domain, msg, skipped)


# ============================================================================ twin
@dataclasses.dataclass(frozen=True)
class RevReport(Result):
    size_ratio: SizeRatio | None
    statistical: tuple[StatisticalRev, ...]
    design: DesignCheck | None
    passed: bool
    message: str


def analyze_twin(twin: Any, *, design: Any = None, phase: str = "active", properties: Sequence[str] | None = None,
                 sizes: Sequence[int] | None = None, n_samples: int = 20, tolerance: float = 0.05,
                 design_tolerance: float = 0.02, cbd_as: str | None = None, seed: int = 0,
                 h_um: float | None = None, min_distance_um: float | None = None,
                 depth: int = 24) -> RevReport:
    """REV size ratio, statistical REV (porosity and each phase fraction) and, when the twin has a
    design (or ``design`` is given), the design check; stored as result "rev".

    ``cbd_as`` (how the design check compares the CBD, :func:`check_design`) defaults to what the
    twin records (:attr:`twinlab.twin.Twin.cbd_as`), else "domain".

    The size ratio uses ``labels/particles`` when the twin has them, else splits ``phase`` of
    ``labels/phases`` with the watershed (``h_um``, ``min_distance_um``, ``depth``).
    """
    from ..twin import Step

    labels = twin.labels("phases")
    if labels.nbytes <= READ_WHOLE_BYTES:
        # every property samples the same sub-volumes (one seed): read the labels once, not once per
        # sub-volume and property (hundreds of zarr reads in the demo)
        labels = np.asarray(labels)
    phases = twin.phases
    vs = twin.voxel_size
    cbd_as = cbd_as or twin.cbd_as or "domain"
    ratio = None
    try:
        particles = twin.labels("particles") if "particles" in twin.label_names else labels
        ratio = rev_size_ratio(particles, vs, phase=phase, phases=phases, h_um=h_um,
                               min_distance_um=min_distance_um, depth=depth)
    except InputError:
        if phase in phases and "particles" not in twin.label_names:
            ratio = None  # no particles of that phase: reported as missing, not an error
        else:
            raise
    counts = _bincount(labels)
    present = [phases.name(v) for v, c in enumerate(counts) if c > 0 and v in [p.value for p in phases]]
    props = list(properties) if properties else ["porosity", *[p for p in present if p not in ("pore", COLLECTOR)]]
    stats = tuple(statistical_rev(labels, property=p, sizes=sizes, n_samples=n_samples, tolerance=tolerance,
                                  seed=seed, voxel_size_um=vs, phases=phases) for p in props)
    design_obj = design if design is not None else twin.design
    check = None
    if design_obj is not None:
        # phases the segmentation found below the image's resolution are reported, not compared
        seg = twin.load_result("segment") if "segment" in twin.result_names else {}
        check = check_design(labels, design_obj, phases=phases, tolerance=design_tolerance, cbd_as=cbd_as,
                             thickness_axis=twin.thickness_axis, voxel_size_um=min(twin.voxel_size.as_tuple()),
                             unresolved=seg.get("unresolved_phases") or None)
    passed = (ratio is None or ratio.passed) and all(s.converged for s in stats) and (check is None or check.passed)
    parts = [ratio.message if ratio else "size ratio: no particles"] + [s.message for s in stats]
    if check:
        parts.append(check.message)
    report = RevReport(ratio, stats, check, bool(passed), " | ".join(parts))
    arrays = {f"{s.property}_sizes_um": np.asarray(s.sizes_um) for s in stats}
    arrays.update({f"{s.property}_relative_spread": np.asarray(s.relative_spread, dtype=np.float64) for s in stats})
    for s in stats:  # the sampled values, one row per size (NaN-padded)
        table = np.full((len(s.values), max(len(v) for v in s.values)), np.nan)
        for i, v in enumerate(s.values):
            table[i, :len(v)] = v
        arrays[f"{s.property}_values"] = table
    params = dict(phase=phase, properties=props, sizes=sizes, n_samples=n_samples, tolerance=tolerance,
                  design_tolerance=design_tolerance, cbd_as=cbd_as, seed=seed, design_given=design is not None)
    twin.save_result("rev", report, step=Step("rev", params), arrays=arrays)
    return report


# ============================================================================ helpers
def _sub_voxel_films(design: Any, voxel_size_um: float | None) -> dict[str, tuple[str, float]]:
    """Film phase → (host phase, thickness in nm), for the design's films thinner than ``voxel_size_um``."""
    if voxel_size_um is None:
        return {}
    if not np.isfinite(voxel_size_um) or voxel_size_um <= 0:
        raise InputError(f"voxel_size_um must be a positive number of µm, got {voxel_size_um}")
    return {c.phase: (c.film_on, c.film_nm) for c in design.components
            if c.film_on is not None and c.film_nm * 1e-3 < voxel_size_um}


def _without_empty_end_planes(labels: Any, axis: int, phases: PhaseTable) -> Any:
    """``labels`` without the planes across ``axis`` at either end that hold no solid voxel."""
    if axis not in (0, 1, 2) or np.ndim(labels) != 3:
        raise InputError(f"thickness_axis must be 0, 1 or 2 of a 3D label volume, got {axis} for shape "
                         f"{np.shape(labels)}")
    empty = [phases.value(n) for n in ("pore", COLLECTOR) if n in phases]
    solid = ~np.isin(labels, empty) if not is_dask(labels) else ~labels.map_blocks(np.isin, empty, dtype=bool)
    per_plane = solid.sum(axis=tuple(a for a in range(3) if a != axis))
    per_plane = np.asarray(per_plane.compute() if is_dask(per_plane) else per_plane)
    filled = np.flatnonzero(per_plane)
    if filled.size == 0:
        return labels
    keep = [slice(None)] * 3
    keep[axis] = slice(int(filled[0]), int(filled[-1]) + 1)
    return labels[tuple(keep)]


def _bincount(labels: Any) -> np.ndarray:
    """Label histogram (at least one bin); dask arrays are counted chunk by chunk."""
    if not is_dask(labels) and np.size(labels) and np.min(labels) < 0:
        raise InputError("labels must be non-negative")
    return label_counts(labels, 1)


def _property(prop: Any, phases: PhaseTable, exclude_collector: bool) -> tuple[str, Callable[[np.ndarray], float]]:
    excl = phases.value(COLLECTOR) if exclude_collector and COLLECTOR in phases else None
    if callable(prop):
        return getattr(prop, "__name__", "property"), prop
    if not isinstance(prop, str):
        raise InputError(f"property must be 'porosity', a phase name or a callable, got {prop!r}")
    phase = "pore" if prop == "porosity" else prop
    value = phases.value(phase)

    def fraction(block: np.ndarray) -> float:
        n = block.size if excl is None else block.size - int(np.count_nonzero(block == excl))
        return float(np.count_nonzero(block == value)) / n if n else float("nan")

    return prop, fraction


def _evaluate(blocks: list[Any], func: Callable[[np.ndarray], float]) -> np.ndarray:
    # one sub-volume in memory at a time (a dask block is read when np.asarray asks for it)
    return np.asarray([func(np.asarray(b)) for b in blocks], dtype=np.float64)

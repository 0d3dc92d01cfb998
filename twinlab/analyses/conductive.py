"""Conductive clusters and the predicted degree of electrochemical activation (SCIENCE.md §7).

Definitions used throughout (what "electronically connected" means on voxels):

* The **network** is the set of voxels of the ``conducting`` phases plus, when a
  ``broken_shell`` mask is given, the voxels of the ``via`` phase (the Li2CO3 shell,
  ``"shell"``) whose mask value is 1. An intact shell voxel (mask 0) insulates; so do pore,
  binder and every phase not listed.

  - Composite cathode (default when the volume holds ``"active"``): network = active ∪ CBD;
    two active particles are joined by direct AM–AM face contact or through a CBD path.
  - LMP anode (default when it holds ``"lithium"`` and no ``"active"``): network = Li metal ∪
    broken-shell voxels. Two Li particles are joined only by a path of Li and broken-shell
    voxels, i.e. where the shells of *both* particles are broken at their contact; a particle
    reaches the collector only through a broken-shell voxel touching it.

* **Clusters** are the connected components of the network (face connectivity 6 by default;
  18 or 26 allowed). The collector itself is not part of any cluster: a cluster is
  **percolating** when one of its voxels is a neighbour (same connectivity) of a collector
  voxel — or lies on the collector face of the volume with ``collector="face"``.
* **Degree of electrochemical activation** (predicted) = volume of the ``target`` phase
  (active material or Li metal) inside percolating clusters / total ``target`` volume.

Sub-voxel films: the particle rule
----------------------------------
The calender's default LMP shell is a ~100 nm Li2CO3 film, a state of each particle's surface voxels
(``shells="membrane"``), not a phase. Pass the particle instances (``particles=``) and the clusters are
decided per particle, not per voxel: two lithium particles are joined where they touch and the film is
broken on both sides of that contact. :mod:`._conductive_particles` owns this rule and states it in full.

Explicit shell voxels (``shells="voxel"``, a resolved shell phase) and the composite cathode keep
the voxel rule: there the conducting phases are resolved in the voxels, so their connectivity is the
geometry itself.

Large twins: with a dask array the labelling runs chunk by chunk, chunk labels merged across chunk
faces (:mod:`._chunked_labels`); the result equals the whole-array labelling up to renumbering
(tested on odd chunks). Memory: one chunk plus the chunk-face planes.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Iterable, Sequence

import dask
import dask.array as da
import numpy as np
from scipy import ndimage as ndi
from scipy import optimize

from .._chunked import apply_kernel, is_dask
from .._results import Result, to_jsonable
from .._validation import VoxelSize, axis_index, require_integer_labels, require_ndim
from ..errors import InputError
from ..phases import DEFAULT_PHASES, PhaseTable
from ._chunked_labels import label_chunks
from ._conductive_particles import film_clusters, film_particles

__all__ = ["ClusterResult", "ActivationCurve", "conductive_clusters", "label_network", "activation_curve",
           "activation_from_calender", "analyze_twin"]

_STRUCTURES = {6: 1, 18: 2, 26: 3}


@dataclasses.dataclass(frozen=True)
class ClusterResult(Result):
    """Conductive clusters of one volume. ``labels`` (cluster id per voxel, 0 = not in the network;
    numpy or lazy dask like the input) is kept out of :meth:`to_dict`."""

    mode: str  # "composite" or "lmp"
    conducting: tuple[str, ...]
    target: str
    connectivity: int
    collector: str  # phase name, or "face:<side>"
    n_clusters: int
    n_percolating: int
    percolating_ids: tuple[int, ...]
    activation: float  # fraction of target volume in percolating clusters (0–1)
    target_volume_um3: float
    connected_target_volume_um3: float
    cluster_volume_um3: tuple[float, ...]  # per cluster id 1..n (network voxels × voxel volume)
    cluster_target_volume_um3: tuple[float, ...]  # per cluster id 1..n, target phase only
    size_histogram: dict[str, list[float]]  # log-spaced bins of cluster volume (µm³): edges, counts
    largest_cluster_fraction: float  # target volume of the largest cluster / total target volume
    note: str
    labels: Any = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "labels"}


@dataclasses.dataclass(frozen=True)
class ActivationCurve(Result):
    """Predicted activation vs a calendering variable (ratio or density), sorted by ``x``."""

    x: tuple[float, ...]
    activation: tuple[float, ...]
    x_name: str
    threshold: float  # x of the steepest rise (see ``method``)
    method: str
    slope_threshold: float  # midpoint of the interval with the largest finite-difference slope
    max_slope: float
    logistic_midpoint: float | None  # x0 of a fitted logistic a/(1+exp(-k(x-x0))), if it converged in range
    logistic_rate: float | None
    monotone: bool  # non-decreasing within 1e-9
    linear_r2: float  # R² of a straight-line fit: well below 1 means a non-linear (threshold-like) curve
    note: str


# ============================================================================ public functions
def conductive_clusters(
    labels: Any,
    *,
    conducting: Sequence[str] | str | None = None,
    target: str | None = None,
    broken_shell: Any = None,
    via: str = "shell",
    particles: Any = None,
    collector: str = "collector",
    phases: PhaseTable = DEFAULT_PHASES,
    thickness_axis: int | str = "y",
    collector_side: str = "low",
    connectivity: int | None = None,
    voxel_size_um: Any = 1.0,
) -> ClusterResult:
    """Connected components of the electronically conducting network and the activation.

    Parameters
    ----------
    labels : (z, y, x) integer array, numpy or dask
        Phase labels (values from ``phases``).
    conducting : phase names, optional
        Phases of the network. Default: ``("lithium",)`` for an LMP anode (``target="lithium"``,
        or a volume that holds lithium and no active material; every calendered twin carries a
        ``broken_shell`` mask, so the mask alone decides nothing),
        else ``("active", "cbd")``.
    target : phase name, optional
        Phase whose connected share is the activation: ``"active"`` or ``"lithium"`` by default.
    broken_shell : array like ``labels``, optional
        1 where the shell is broken (from the compression solver). Voxels of phase ``via`` with
        value 1 conduct; intact ones insulate. Without it no shell voxel conducts.
    via : str
        The shell phase that conducts only where broken (LMP: ``"shell"``).
    particles : integer array like ``labels``, optional
        Particle instance ids (0 = none) when the shell is a sub-voxel film (the calender's
        ``shells="membrane"``): clusters then follow the particle rule of :mod:`._conductive_particles` (LMP only,
        with ``broken_shell``; every lithium and shell voxel must belong to a particle). A dask input
        is computed: this rule holds the volume in memory.
    collector : str
        Phase name of the current collector, or ``"face"`` to take the face of the volume on
        ``collector_side`` of ``thickness_axis`` as the collector (a twin without a foil).
    thickness_axis, collector_side : used with ``collector="face"`` ('low'/'high' index end).
    connectivity : 6, 18 or 26, optional
        Voxel neighbourhood for joining network voxels (default 6, shared faces only) or, with
        ``particles``, for a contact between two particles or a particle and the collector
        (default 26: the voxels share a face, an edge or a corner).
    voxel_size_um : float, (dz, dy, dx) or VoxelSize
        Converts voxel counts to µm³.

    Returns
    -------
    ClusterResult
        numpy in → numpy ``labels``; dask in → lazy dask ``labels`` (the statistics are computed).

    Raises
    ------
    InputError
        No voxel of the target phase; no collector voxel (a collector is needed for percolation);
        an unknown phase name; a ``broken_shell`` of another shape; ``particles`` of another shape,
        without ``broken_shell``, on a composite electrode, or missing on a lithium or shell voxel.
    """
    require_ndim(labels, 3, name="labels")
    require_integer_labels(labels)
    voxel = VoxelSize.parse(voxel_size_um)
    if connectivity is None:
        connectivity = 6 if particles is None else 26
    if connectivity not in _STRUCTURES:
        raise InputError(f"connectivity must be 6, 18 or 26 (voxel neighbours), got {connectivity!r}")
    structure = ndi.generate_binary_structure(3, _STRUCTURES[connectivity])
    if particles is not None:  # the particle rule holds the volume in memory
        labels, broken_shell, particles = (None if a is None else np.asarray(a.compute() if is_dask(a) else a)
                                           for a in (labels, broken_shell, particles))
    lazy = is_dask(labels) or is_dask(broken_shell)
    if lazy:
        labels = labels if is_dask(labels) else da.from_array(np.asarray(labels))
    else:
        labels = np.asarray(labels)
    conducting, target, mode = _resolve_phases(conducting, target, broken_shell, phases, labels)
    network = _isin(labels, phases.values(conducting))
    if broken_shell is not None:
        if tuple(broken_shell.shape) != tuple(labels.shape):
            raise InputError(f"broken_shell has shape {tuple(broken_shell.shape)}, labels {tuple(labels.shape)}; "
                             "pass the broken-shell layer of the same twin step")
        if lazy:
            broken_shell = broken_shell if is_dask(broken_shell) else da.from_array(np.asarray(broken_shell))
            broken_shell = broken_shell.rechunk(labels.chunks)
        network = network | ((labels == phases.value(via)) & (broken_shell != 0))
    target_mask = labels == phases.value(target)

    if collector == "face":
        ax = axis_index(thickness_axis)
        side = _check_side(collector_side)
        collector_desc = f"face:{side}"
        adjacent = network & _face_mask(labels, ax, side)
        n_collector = 1
    else:
        if collector in conducting:
            raise InputError(f"the collector phase {collector!r} cannot also be a conducting phase; "
                             "clusters are measured against the collector")
        collector_desc = collector
        cmask = labels == phases.value(collector)
        adjacent = network & apply_kernel(_dilate, cmask, depth=1, dtype=bool, what="collector contact",
                                          structure=structure)
        n_collector = None

    if particles is not None:
        if mode != "lmp" or broken_shell is None:
            raise InputError("particles= decides the clusters of sub-voxel films (an LMP anode's membrane shells): "
                             "give it with broken_shell, on a volume whose target is lithium")
        film = labels == phases.value(via)
        cluster_labels, n, sizes, perc = film_clusters(
            particles, film & (broken_shell != 0), film=film, particle_voxels=network | film, adjacent=adjacent,
            structure=structure)
        tsizes = sizes  # a particle's film voxels are lithium: the whole particle is target (the particle rule)
        if n_collector is None:
            n_collector = int(cmask.sum())
    else:
        cluster_labels, n = label_network(network, connectivity=connectivity)
        sizes, tsizes, perc, ncoll = _cluster_stats(cluster_labels, n, target_mask, adjacent,
                                                    None if n_collector is not None else cmask)
        if n_collector is None:
            n_collector = ncoll
    total_target = int(tsizes.sum())
    if total_target == 0:
        raise InputError(f"no {target!r} voxels in the volume (phase value {phases.value(target)}); check the "
                         "phase table, or pass target=/conducting= for this electrode")
    if n_collector == 0:
        raise InputError(f"no {collector!r} voxels (phase value {phases.value(collector)}) in the volume: a "
                         "current collector is needed for percolation; include the foil in the twin, or pass "
                         "collector='face' (with thickness_axis/collector_side) to use the volume's face")
    vox_um3 = voxel.volume_um3
    perc_ids = tuple(int(i) for i in np.flatnonzero(perc))
    connected = int(tsizes[list(perc_ids)].sum()) if perc_ids else 0
    vol = sizes[1:] * vox_um3
    if particles is not None:
        note = (f"{mode}: particles of {' + '.join(conducting)} with sub-voxel {via} films, joined where they touch "
                f"({connectivity}-neighbour voxels) with the film broken on both sides; percolating = joined to "
                f"{collector_desc} through a broken film; activation = particle volume in percolating clusters / "
                "total particle volume")
    else:
        note = (f"{mode}: network = {' + '.join(conducting)}"
                + (f" + broken {via}" if broken_shell is not None else "")
                + f", {connectivity}-connected; percolating = touching {collector_desc}; "
                "activation = target volume in percolating clusters / total target volume")
    return ClusterResult(
        mode=mode, conducting=tuple(conducting), target=target, connectivity=connectivity,
        collector=collector_desc, n_clusters=int(n), n_percolating=len(perc_ids), percolating_ids=perc_ids,
        activation=connected / total_target, target_volume_um3=total_target * vox_um3,
        connected_target_volume_um3=connected * vox_um3,
        cluster_volume_um3=tuple(float(v) for v in vol),
        cluster_target_volume_um3=tuple(float(v) for v in tsizes[1:] * vox_um3),
        size_histogram=_log_histogram(vol),
        largest_cluster_fraction=float(tsizes[1:].max() / total_target) if n else 0.0,
        note=note, labels=cluster_labels,
    )


def label_network(mask: Any, *, connectivity: int = 6) -> tuple[Any, int]:
    """Label the connected components of a boolean mask; numpy → (numpy, n), dask → (lazy dask, n).

    The dask path labels chunk by chunk and merges the labels across chunk faces
    (:func:`._chunked_labels.label_chunks`). Label ids are consecutive 1..n, 0 = background. The
    numbering differs from ``scipy.ndimage.label`` but the partition is the same.
    """
    if connectivity not in _STRUCTURES:
        raise InputError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
    require_ndim(mask, 3, name="mask")
    structure = ndi.generate_binary_structure(3, _STRUCTURES[connectivity])
    if not is_dask(mask):
        out, n = ndi.label(np.asarray(mask, dtype=bool), structure=structure, output=np.int32)
        return out, int(n)
    return label_chunks(mask.astype(bool), structure)


def activation_curve(series: Iterable[Any], *, x_name: str = "calendering ratio",
                     method: str = "slope") -> ActivationCurve:
    """Predicted activation against a calendering variable, with the threshold located.

    Parameters
    ----------
    series : iterable of (x, ClusterResult | float)
        ``x`` is the calendering ratio (0–1 or %) or the density; the second item is a
        :class:`ClusterResult` (its ``activation`` is used) or an activation in 0–1.
    method : "slope" or "logistic"
        Which estimate becomes ``threshold``: ``"slope"`` = midpoint of the interval with the
        largest finite-difference slope Δa/Δx (always defined, resolution = the series spacing);
        ``"logistic"`` = midpoint x0 of a least-squares logistic a/(1+exp(−k(x−x0))) (needs ≥ 4
        points; falls back to the slope estimate, saying so in ``note``, when the fit fails or x0
        lies outside the sampled range). Both are reported whenever available.
    """
    pts = []
    for item in series:
        try:
            x, value = item
        except (TypeError, ValueError):
            raise InputError("series items must be (x, ClusterResult or activation) pairs") from None
        a = value.activation if hasattr(value, "activation") else float(value)
        pts.append((float(x), float(a)))
    if method not in ("slope", "logistic"):
        raise InputError(f"method must be 'slope' or 'logistic', got {method!r}")
    if len(pts) < 3:
        raise InputError(f"an activation curve needs at least 3 points of the calendering series, got {len(pts)}")
    pts.sort()
    x = np.array([p[0] for p in pts])
    a = np.array([p[1] for p in pts])
    if np.any(np.diff(x) <= 0):
        raise InputError("the series has repeated x values; give one activation per calendering ratio/density")
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1 + 1e-12:
        raise InputError("activations must be fractions in [0, 1]")
    slopes = np.diff(a) / np.diff(x)
    k = int(np.argmax(slopes))
    slope_thr = float(0.5 * (x[k] + x[k + 1]))
    x0, rate = _fit_logistic(x, a)
    note = "threshold = midpoint of the steepest finite-difference rise"
    threshold = slope_thr
    if slopes[k] <= 0:
        slope_thr = threshold = float("nan")
        note = "the activation does not rise over this series: no threshold"
    elif method == "logistic":
        if x0 is not None:
            threshold, note = x0, "threshold = midpoint of a fitted logistic curve"
        else:
            note = "logistic fit failed or fell outside the range; threshold = steepest finite-difference rise"
    lin = np.polyfit(x, a, 1)
    ss_res = float(np.sum((a - np.polyval(lin, x)) ** 2))
    ss_tot = float(np.sum((a - a.mean()) ** 2))
    return ActivationCurve(
        x=tuple(x.tolist()), activation=tuple(a.tolist()), x_name=x_name, threshold=float(threshold),
        method=method, slope_threshold=slope_thr, max_slope=float(slopes[k]), logistic_midpoint=x0,
        logistic_rate=rate, monotone=bool(np.all(np.diff(a) >= -1e-9)),
        linear_r2=1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0, note=note,
    )


def activation_from_calender(series: Any, *, x: str = "ratio", collector: str = "auto",
                             connectivity: int | None = None, phases: PhaseTable | None = None,
                             thickness_axis: int | str = "y", collector_side: str = "low") -> ActivationCurve:
    """Predicted activation along a virtual-calendering series (the compression solver's output).

    Parameters
    ----------
    series : CalenderSeries (with ``states`` kept in memory), or the path of its output folder
        (``index.json`` + one twin per target), or a list of step-twin paths
        Each target's ``labels`` and ``broken_shell`` (and ``particles`` where the calender's shells were
        sub-voxel films: the particle rule) give one :func:`conductive_clusters` run.
    x : "ratio" or "density"
        The calendering variable of the curve (``ratio`` = 1 − h/h0, ``density`` in g cm⁻³).
    collector : "auto", a phase name or "face" (see :func:`analyze_twin`)
    phases, thickness_axis, collector_side : for an in-memory series (step twins carry their own)
    """
    if x not in ("ratio", "density"):
        raise InputError(f"x must be 'ratio' or 'density', got {x!r}")
    key = "ratio" if x == "ratio" else "density_g_cm3"
    points = []
    targets = _calender_targets(series, key, phases, thickness_axis, collector_side)
    for value, labels, broken, particles, table, axis, side in targets:
        chosen = _auto_collector(labels, table) if collector == "auto" else collector
        r = conductive_clusters(labels, broken_shell=broken, particles=particles, phases=table, collector=chosen,
                                thickness_axis=axis, collector_side=side, connectivity=connectivity)
        points.append((value, r))
    return activation_curve(points, x_name="calendering ratio" if x == "ratio" else "density (g/cm3)")


def analyze_twin(twin: Any, *, collector: str = "auto", connectivity: int | None = None,
                 conducting: Sequence[str] | None = None, target: str | None = None,
                 write_labels: bool = True) -> ClusterResult:
    """Conductive clusters of a twin's ``phases`` labels; stores result ``conductive`` and labels ``clusters``.

    Reads ``labels/broken_shell`` when the twin has it (a calendered LMP step), with
    ``labels/particles`` where the step's shells were sub-voxel films (the particle rule).
    ``collector="auto"`` uses the collector phase when the volume holds it, else the twin's collector
    face (noted).
    """
    from ..twin import Step

    labels = twin.labels("phases")
    phases = twin.phases
    broken = twin.labels("broken_shell") if twin.has_labels("broken_shell") else None
    particles = film_particles(twin)
    chosen = _auto_collector(labels, phases) if collector == "auto" else collector
    result = conductive_clusters(
        labels, conducting=conducting, target=target, broken_shell=broken, particles=particles, phases=phases,
        collector=chosen, thickness_axis=twin.thickness_axis, collector_side=twin.collector_side,
        connectivity=connectivity, voxel_size_um=twin.voxel_size)
    params = {"collector": chosen, "connectivity": result.connectivity, "conducting": list(result.conducting),
              "target": result.target, "broken_shell": broken is not None, "particle_rule": particles is not None}
    if write_labels:
        twin.write_labels("clusters", result.labels, step=Step("conductive_clusters", params))
    twin.save_result("conductive", result, step=Step("conductive", params),
                     arrays={"percolating_ids": np.asarray(result.percolating_ids, dtype=np.int64)})
    return result


# ============================================================================ helpers
def _auto_collector(labels: Any, phases: PhaseTable) -> str:
    """The collector phase when the volume holds it, else the collector face of the volume."""
    if "collector" not in phases:
        return "face"
    return "collector" if _any_values(labels, [phases.value("collector")])[0] else "face"


def _calender_targets(series: Any, key: str, phases: PhaseTable | None, axis: Any, side: str):
    """Yield (x, labels, broken_shell, particles, phases, thickness_axis, collector_side) per calendering
    target (``particles`` None unless the shells were sub-voxel films)."""
    import json
    from pathlib import Path

    from ..twin import Twin

    if isinstance(series, (str, Path)):
        index = Path(series) / "index.json"
        if not index.is_file():
            raise InputError(f"{series} is not a calendering series folder (no index.json); give the "
                             "CalenderSeries or the folder written with output=")
        steps = json.loads(index.read_text())["steps"]
        series = [Path(series) / Path(st["twin_path"]).name for st in steps]
    if isinstance(series, (list, tuple)):
        for path in series:
            twin = Twin.open(path)
            if not twin.has_labels("broken_shell"):
                raise InputError(f"{twin.name} has no broken_shell labels; is it a step of a calendering series?")
            value = twin.provenance[0]["params"].get(key) if twin.provenance else None
            result = twin.load_result("calender") if "calender" in twin.result_names else {}
            value = result.get(key, value)
            if value is None:
                raise InputError(f"{twin.name} does not record its calendering {key}")
            yield (float(value), twin.labels("phases"), twin.labels("broken_shell"), film_particles(twin),
                   twin.phases, twin.thickness_axis, twin.collector_side)
        return
    steps, states = getattr(series, "steps", None), getattr(series, "states", None)
    if not steps or not states or len(states) != len(steps):
        raise InputError("the calendering series holds no fields (run calender(..., keep_fields=True)) "
                         "or give the output folder of the series")
    table = phases or DEFAULT_PHASES
    for st, state in zip(steps, states):
        yield (float(getattr(st, key)), state.labels, np.asarray(state.broken_shell).astype(np.uint8),
               getattr(state, "particles", None), table, axis, side)


def _resolve_phases(conducting, target, broken_shell, phases: PhaseTable, labels: Any) -> tuple[list[str], str, str]:
    if isinstance(conducting, str):
        conducting = [conducting]
    if conducting is None:
        if target is not None:
            lmp = target == "lithium"
        elif "active" not in phases:
            lmp = True
        elif "lithium" in phases:  # decide by content: an LMP anode holds lithium and no active material
            has = _any_values(labels, [phases.value("active"), phases.value("lithium")])
            lmp = has[1] and not has[0]
        else:
            lmp = False
        conducting = ["lithium"] if lmp else ["active", "cbd"]
    conducting = list(conducting)
    for name in conducting:
        phases.value(name)  # raises a clear InputError for an unknown phase
    if target is None:
        target = next((t for t in ("active", "lithium") if t in conducting), conducting[0])
    if target not in conducting:
        raise InputError(f"target phase {target!r} must be one of the conducting phases {conducting}")
    mode = "lmp" if target == "lithium" else "composite"
    return conducting, target, mode


def _any_values(labels: Any, values: list[int]) -> list[bool]:
    flags = [(labels == v).any() for v in values]
    if is_dask(labels):
        flags = list(dask.compute(*flags))
    return [bool(f) for f in flags]


def _check_side(side: str) -> str:
    if side not in ("low", "high"):
        raise InputError(f"collector_side must be 'low' or 'high' (index end of the thickness axis), got {side!r}")
    return side


def _isin(labels: Any, values: list[int]) -> Any:
    out = labels == values[0]
    for v in values[1:]:
        out = out | (labels == v)
    return out


def _dilate(block: np.ndarray, *, structure: np.ndarray) -> np.ndarray:
    return ndi.binary_dilation(block, structure=structure)


def _face_mask(labels: Any, axis: int, side: str) -> Any:
    n = labels.shape[axis]
    shape = [1, 1, 1]
    shape[axis] = n
    idx = 0 if side == "low" else n - 1
    if is_dask(labels):
        line = (da.arange(n, chunks=labels.chunks[axis]) == idx).reshape(shape)
    else:
        line = (np.arange(n) == idx).reshape(shape)
    return line


def _block_stats(lab: np.ndarray, tmask: np.ndarray, adj: np.ndarray, cmask, n: int):
    """One block's cluster sizes, target sizes and collector-touching ids, as compact (ids, counts):
    a dense n+1 array per block would cost n × blocks memory once gathered."""
    def compact(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.flatnonzero(counts)
        return ids, counts[ids]

    sizes = compact(np.bincount(lab.ravel(), minlength=n + 1))
    tsizes = compact(np.bincount(lab[tmask], minlength=n + 1))
    perc = np.unique(lab[adj])
    ncoll = int(np.count_nonzero(cmask)) if cmask is not None else 0
    return sizes, tsizes, perc, ncoll


def _cluster_stats(lab, n: int, tmask, adj, cmask):
    """Per-cluster voxel and target counts, collector-touching clusters, collector voxels.

    The dask path computes one slab of blocks (one index along axis 0) at a time and folds its
    stats in before the next: all blocks' stats at once held a few integers per cluster per
    block, which grew with the volume (measured: +0.1 GiB at 1 GiB of noisy labels).
    """
    sizes = np.zeros(n + 1, np.int64)
    tsizes = np.zeros(n + 1, np.int64)
    perc = np.zeros(n + 1, dtype=bool)
    ncoll = 0

    def fold(stats) -> None:
        nonlocal ncoll
        for (ids, counts), (tids, tcounts), pids, nc in stats:
            np.add.at(sizes, ids, counts)
            np.add.at(tsizes, tids, tcounts)
            perc[pids] = True
            ncoll += nc

    if not is_dask(lab):
        adj = np.broadcast_to(np.asarray(adj), lab.shape)
        fold([_block_stats(lab, np.asarray(tmask), adj, cmask, n)])
    else:
        tmask = tmask.rechunk(lab.chunks)
        adj = da.broadcast_to(adj, lab.shape).rechunk(lab.chunks)
        parts = [lab.to_delayed(), tmask.to_delayed(), adj.to_delayed()]
        cparts = cmask.rechunk(lab.chunks).to_delayed() if cmask is not None else np.full(parts[0].shape, None)
        for iz in range(parts[0].shape[0]):
            slab = [p[iz].ravel() for p in (*parts, cparts)]
            fold(dask.compute(*[dask.delayed(_block_stats)(a, b, c, d, n) for a, b, c, d in zip(*slab)]))
    perc[0] = False
    return sizes, tsizes, perc, ncoll


def _log_histogram(volumes: np.ndarray, bins: int = 12) -> dict[str, list[float]]:
    if volumes.size == 0:
        return {"edges_um3": [], "counts": []}
    lo, hi = float(volumes.min()), float(volumes.max())
    edges = np.geomspace(lo, hi * (1 + 1e-9), bins + 1) if hi > lo else np.array([lo, hi * (1 + 1e-9) + 1e-12])
    counts, _ = np.histogram(volumes, bins=edges)
    return {"edges_um3": edges.tolist(), "counts": counts.astype(float).tolist()}


def _fit_logistic(x: np.ndarray, a: np.ndarray) -> tuple[float | None, float | None]:
    if len(x) < 4 or np.ptp(a) <= 0:
        return None, None
    span = float(np.ptp(x))

    def f(xx, top, k, x0):
        return top / (1.0 + np.exp(-np.clip(k * (xx - x0), -60, 60)))

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", optimize.OptimizeWarning)
            p, _ = optimize.curve_fit(f, x, a, p0=[max(a.max(), 1e-3), 8.0 / span, float(np.median(x))],
                                      bounds=([0, 0, x.min() - span], [1.5, 1e4 / span, x.max() + span]),
                                      maxfev=5000)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return None, None
    if not (x.min() <= p[2] <= x.max()):
        return None, None
    return float(p[2]), float(p[1])

"""Segment a twin in place: labels/phases (and labels/particles) written with provenance."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .._chunked import is_dask, label_counts
from .._results import Result
from ..errors import InputError
from .classify import DEFAULT_SEGMENT_PHASES, METHODS, fit_gmm, fit_multiotsu, apply_phase_model, train_classifier
from .cleanup import CollectorInfo, detect_collector
from .fibsem import _MIN_BODY_SHARE, correct_shine_through, resolve_partial_volume
from .instances import split_particles


@dataclasses.dataclass(frozen=True)
class SegmentReport(Result):
    method: str
    phases: tuple[str, ...]
    model: dict[str, Any]
    fractions: dict[str, float]
    n_particles: int | None
    labels_written: tuple[str, ...]
    collector: CollectorInfo | None = None
    warnings: tuple[str, ...] = ()  # a likely swap of two phases (order check), empty phases
    particle_phase: str | None = None
    single_slice: bool = False  # a 2D twin (one slice): fractions are area fractions
    refinement: dict[str, Any] | None = None  # FIB-SEM shine-through / partial-volume fixes (segment.fibsem)
    empty_phases: tuple[str, ...] = ()  # requested phases that got no voxel: reported, never passed silently
    # phase → why its voxel count is not a measurement (below the image's resolution); the design check
    # reports such a phase as not checkable
    unresolved_phases: dict[str, str] = dataclasses.field(default_factory=dict)


def segment_twin(twin: Any, *, method: str = "multiotsu", phases: Sequence[str] | str = DEFAULT_SEGMENT_PHASES,
                 scribbles: Any = None, particles: bool | None = None, particle_phase: str | None = None,
                 materials: Mapping[str, str | None] | None = None,
                 h_um: float | None = None, min_distance_um: float | None = None, depth: int = 24,
                 seed: int = 0, refine: bool = True) -> SegmentReport:
    """Segment a twin's image into ``labels/phases`` and (optionally) ``labels/particles``.

    ``scribbles`` (classifier only): an integer array or a file readable by
    :func:`twinlab.io.read_volume` (npy, npz, tif, …) of the image's shape, 0 = unlabelled and
    ``k`` marking ``phases[k-1]``. The phase labels are written first and read back from the
    store for the particle watershed, so the segmentation is not recomputed per chunk halo.

    Phase names are free: a name the twin's table lacks becomes a new phase, and ``materials``
    (phase → material name, e.g. ``{"fiber": "carbon_fiber"}``) attach materials. Particles are
    split (``particles=None``) only when ``particle_phase`` — by default the first segmented phase
    whose material is particulate (NCM, Li metal powder) — exists; never for fibres. The phase
    fractions are checked against the design (:mod:`.order`): a likely swap is in ``warnings``
    and in the stored result ``segment``.

    ``refine`` (threshold methods, at least three phases): the three darkest phases (pore, CBD,
    active by default) are corrected for FIB-SEM shine-through and partial-volume rims
    (:func:`refine_fibsem_labels`); this holds the image and labels in memory once.
    A requested phase that gets no voxel is listed in ``empty_phases`` and ``warnings``; a mid phase
    that the refinement finds below the image's resolution (mostly one-voxel films and rims, e.g. CBD
    at voxels coarser than its films) in ``unresolved_phases`` and ``warnings``.
    """
    from ..materials import is_particulate
    from ..twin import Step
    from .order import check_phase_order, expected_fractions

    if isinstance(phases, str):
        phases = [p.strip() for p in phases.split(",") if p.strip()]
    phases = tuple(phases)
    table = twin.phases.with_phases(phases, materials)
    if particle_phase is None:
        particle_phase = next((p for p in phases if is_particulate(table[p].material)), None)
        if particle_phase is None and particles:
            particle_phase = "active" if "active" in phases else None
        if particle_phase is None and particles:
            raise InputError(f"no phase of {list(phases)} is particulate; name the phase to split with "
                             "particle_phase= (or pass --no-particles)")
    elif particle_phase not in phases:
        raise InputError(f"particle phase {particle_phase!r} is not one of the segmented phases {list(phases)}")
    if particles is None:
        particles = particle_phase is not None
    image = twin.image(0)
    if method == "classifier":
        if scribbles is None:
            raise InputError("method 'classifier' needs scribbles: a label image (0 = unlabelled, k = k-th "
                             "phase of --phases), e.g. --scribbles scribbles.npy")
        model = train_classifier(image, _load_scribbles(scribbles), phases=phases, seed=seed, phase_table=table)
    elif method == "multiotsu":
        model = fit_multiotsu(image, phases=phases, seed=seed, phase_table=table)
    elif method == "gmm":
        model = fit_gmm(image, phases=phases, seed=seed, phase_table=table)
    else:
        raise InputError(f"unknown segmentation method {method!r}; choose one of {', '.join(METHODS)}")
    labels = apply_phase_model(image, model)
    refinement = None
    # the corrections model a pore/CBD/active stack milled along z: not for other phase sets or one slice
    if refine and method != "classifier" and "cbd" in phases[:3] and "collector" not in phases[:3] \
            and twin.shape[0] > 1:
        labels, refinement = refine_fibsem_labels(image, labels, [table.value(p) for p in phases[:3]])
    unresolved = {} if refinement is None else _unresolved(refinement["partial_volume"], phases[1],
                                                            twin.voxel_size.as_tuple())
    collector = None
    if "collector" in phases:
        labels, collector = confine_collector(labels, phases, table, twin.thickness_axis, twin.collector_side)
    params = {"method": method, "phases": list(phases), "model": model.to_dict(), "seed": seed,
              "collector": None if collector is None else collector.to_dict(), "refinement": refinement}
    # a segmented image shows the CBD as its nanoporous domain (the mid-grey phase), not its solid
    twin.write_labels("phases", labels, phases=table, cbd_as="domain", step=Step("segment", params))
    written = ["phases"]
    stored = twin.labels("phases")
    counts = label_counts(stored, 256)
    total = float(counts.sum())
    fractions = {table.name(v): float(c) / total for v, c in enumerate(counts) if c > 0}
    expected = expected_fractions(twin.design, phases, table)
    warnings = () if expected is None else check_phase_order(
        fractions, phases, expected=expected[0], source=expected[1], ordered=model.method != "classifier")
    n_particles = None
    if particles and particle_phase in fractions:
        inst = split_particles(stored, phase=particle_phase, phases=table, voxel_size_um=twin.voxel_size,
                               h_um=h_um, min_distance_um=min_distance_um, depth=depth)
        twin.write_labels("particles", inst, step=Step("split_particles", {
            "phase": particle_phase, "h_um": h_um, "min_distance_um": min_distance_um, "depth": depth}))
        n_particles = int(twin.labels("particles").max().compute())
        written.append("particles")
    empty = tuple(p for p in phases if fractions.get(p, 0.0) == 0.0)
    warnings += tuple(f"phase {p!r} is empty after segmentation: check the phase list, its dark → bright order "
                      "and the image contrast" for p in empty)
    warnings += tuple(f"phase {p!r} is {why}" for p, why in unresolved.items())
    report = SegmentReport(model.method, phases, model.to_dict(), fractions, n_particles, tuple(written), collector,
                           warnings=warnings, particle_phase=particle_phase if particles else None,
                           single_slice=twin.shape[0] == 1, refinement=refinement, empty_phases=empty,
                           unresolved_phases=unresolved)
    twin.save_result("segment", report, step=Step("segment_check", {"warnings": list(warnings)}))
    return report


def refine_fibsem_labels(image: Any, labels: Any, values: Sequence[int]) -> tuple[np.ndarray, dict[str, Any]]:
    """Shine-through then partial-volume correction of threshold labels (:mod:`twinlab.segment.fibsem`).

    ``values``: label values of the dark (pore), mid (CBD) and bright (active) phases. Image and
    labels are computed into memory (float32 + uint8 per voxel, plus a few temporaries).
    """
    dark, mid, bright = (int(v) for v in values)
    img = np.asarray(image.compute() if is_dask(image) else image, dtype=np.float32)
    lab = np.asarray(labels.compute() if is_dask(labels) else labels)
    lab, shine = correct_shine_through(img, lab, dark=dark, mid=mid, bright=bright)
    lab, pv = resolve_partial_volume(img, lab, dark=dark, mid=mid, bright=bright)
    return lab, {"shine_through": shine.to_dict(), "partial_volume": pv.to_dict()}


def _unresolved(fix: Mapping[str, Any], mid: str, voxel_um: Sequence[float]) -> dict[str, str]:
    """``{mid: reason}`` when the partial-volume step found the mid phase below resolution, else ``{}``."""
    if fix.get("resolved", True):
        return {}
    size = " × ".join(f"{v:g}" for v in voxel_um)
    return {mid: (f"below the resolution of this image at {size} µm voxels: {fix['body_share']:.0%} of its "
                  "threshold voxels lie in bodies wider than the blur (a resolved phase has "
                  f"≥ {_MIN_BODY_SHARE:.0%}); the rest are one-voxel films and partial-volume rims, so its voxel "
                  "count is not a measurement")}


def confine_collector(labels: Any, phases: Sequence[str], table: Any, axis: int,
                      side: str | None) -> tuple[Any, CollectorInfo]:
    """The current collector is a dense foil at one end of the thickness axis: planes of the
    detected slab become wholly ``collector``; voxels classed ``collector`` elsewhere (bright
    noise, edge glow on particles) take the next darker phase of ``phases``. Without a slab at
    the collector side no voxel stays ``collector``. Lazy for dask labels (one pass to detect)."""
    import dask.array as da

    coll = table.value("collector")
    order = list(phases)
    k = order.index("collector")
    if k == 0:
        raise InputError("'collector' is the darkest phase in --phases; list the phases dark → bright "
                         "with the collector (metal foil) last or after the coating phases")
    fallback = table.value(order[k - 1])
    info = detect_collector(labels, thickness_axis=axis, side=side, phases=table)
    n = labels.shape[axis]
    in_slab = np.zeros(n, bool)
    if info.found and info.side == side:
        in_slab[info.start:info.stop] = True
    else:
        info = CollectorInfo(False, axis, None, 0, 0, 0, info.method)
    shape = [1, 1, 1]
    shape[axis] = n
    in_slab = in_slab.reshape(shape)
    xp = da if is_dask(labels) else np
    dtype = labels.dtype
    out = xp.where(in_slab, dtype.type(coll), xp.where(labels == coll, dtype.type(fallback), labels))
    return out.astype(dtype), info


def _load_scribbles(scribbles: Any) -> np.ndarray:
    if isinstance(scribbles, (str, Path)):
        from ..io import read_volume

        return np.asarray(read_volume(scribbles, voxel_size=1.0).data)
    return np.asarray(scribbles)

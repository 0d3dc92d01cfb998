"""Label cleaning (small objects, holes) and current-collector detection."""

from __future__ import annotations

import dataclasses
from typing import Any

import dask.array as da
import numpy as np
from scipy import ndimage as ndi

from .._chunked import is_dask, label_counts
from .._results import Result
from .._validation import axis_index
from ..errors import InputError
from ..phases import DEFAULT_PHASES, PhaseTable


def clean_labels(labels: Any, *, min_size_voxels: int = 0, fill_holes: bool = False) -> Any:
    """Remove instances smaller than ``min_size_voxels`` (set to 0) and optionally fill holes.

    Parameters
    ----------
    labels : instance labels (0 = background), numpy or dask.
    min_size_voxels : objects with fewer voxels are removed (their ids are kept free, not reused).
    fill_holes : fill background cavities enclosed by one object (numpy only: a cavity may span
        chunks; compute the array first for a dask volume).

    Returns
    -------
    Labels of the same dtype; numpy in → numpy out, dask in → lazy dask out.
    """
    if not np.issubdtype(np.dtype(labels.dtype), np.integer):
        raise InputError(f"labels must be integers, got {labels.dtype}")
    if min_size_voxels < 0:
        raise InputError(f"min_size_voxels must be ≥ 0, got {min_size_voxels}")
    if is_dask(labels):
        if fill_holes:
            raise InputError("fill_holes needs the whole volume (a cavity may span chunks); "
                             "call clean_labels(labels.compute(), fill_holes=True) or leave fill_holes off")
        if min_size_voxels == 0:
            return labels
        sizes = label_counts(labels)
        keep = (sizes >= min_size_voxels).astype(labels.dtype)
        keep[0] = 0
        return labels.map_blocks(lambda b, k=keep: b * k[b], dtype=labels.dtype)
    out = np.array(labels, copy=True)
    if min_size_voxels > 0 and out.size:
        sizes = label_counts(out)
        small = sizes < min_size_voxels
        small[0] = False
        out[small[out]] = 0
    if fill_holes:
        for i, sl in enumerate(ndi.find_objects(out), start=1):
            if sl is None:
                continue
            filled = ndi.binary_fill_holes(out[sl] == i)
            region = out[sl]
            region[filled & (region == 0)] = i
    return out


@dataclasses.dataclass(frozen=True)
class CollectorInfo(Result):
    """Where the current collector is: slabs ``start:stop`` of ``axis`` (empty if none found)."""

    found: bool
    axis: int
    side: str | None
    start: int
    stop: int
    thickness_voxels: int
    method: str


def detect_collector(
    volume: Any,
    *,
    thickness_axis: int | str,
    side: str | None = None,
    phase: str = "collector",
    phases: PhaseTable = DEFAULT_PHASES,
    min_solid_fraction: float = 0.97,
) -> CollectorInfo:
    """Find the current-collector slab at one end of the thickness axis.

    On phase labels: the run of end slices that are more than half ``collector`` phase when that
    phase occurs, otherwise the run of end slices that are at least ``min_solid_fraction``
    non-pore (a dense metal foil).
    On a grayscale image: the run of end slices whose in-plane spread of gray values is below a
    quarter of the electrode's median spread while their mean differs from the electrode's
    (a homogeneous foil against a porous mixture).

    ``side`` ("low" | "high") restricts the search to one end; by default both ends are tried and
    the thicker run wins. Only per-slice statistics are computed, so dask volumes are reduced
    chunk by chunk.
    """
    axis = axis_index(thickness_axis) if np.ndim(volume) == 3 else int(thickness_axis)
    if side not in (None, "low", "high"):
        raise InputError(f"side must be 'low', 'high' or None, got {side!r}")
    other = tuple(a for a in range(np.ndim(volume)) if a != axis)
    is_labels = np.issubdtype(np.dtype(volume.dtype), np.integer) and np.dtype(volume.dtype).itemsize == 1
    xp = da if is_dask(volume) else np
    if is_labels:
        prof = np.zeros(1)
        if phase in phases:
            prof = xp.mean(volume == phases.value(phase), axis=other)
            prof = np.asarray(prof.compute() if is_dask(prof) else prof)
        if prof.max() > 0:
            flag = prof > 0.5
            method = "collector phase"
        else:
            pore = phases.value("pore") if "pore" in phases else 0
            solid = xp.mean(volume != pore, axis=other)
            flag = np.asarray(solid.compute() if is_dask(solid) else solid) >= min_solid_fraction
            method = "solid slices"
    else:
        v = volume.astype(np.float32)
        mean = xp.mean(v, axis=other)
        std = xp.std(v, axis=other)
        if is_dask(volume):
            mean, std = da.compute(mean, std)
        mean, std = np.asarray(mean), np.asarray(std)
        ref_std = float(np.median(std))
        ref_mean = float(np.median(mean))
        flag = (std < 0.25 * ref_std) & (np.abs(mean - ref_mean) > 0.5 * ref_std)
        method = "homogeneous slices"
    runs = {"low": _run_length(flag), "high": _run_length(flag[::-1])}
    n = volume.shape[axis]
    candidates = [side] if side else ["low", "high"]
    best = max(candidates, key=lambda s: runs[s])
    k = runs[best]
    if k == 0 or k == n:
        return CollectorInfo(False, axis, None, 0, 0, 0, method)
    start, stop = (0, k) if best == "low" else (n - k, n)
    return CollectorInfo(True, axis, best, start, stop, k, method)


def _run_length(flags: np.ndarray) -> int:
    off = np.flatnonzero(~flags)
    return int(off[0]) if off.size else int(flags.size)

"""The part of a twin that through-thickness analyses see: without the current collector's planes
and without end planes that hold none of the analysed phase (a segmented collector interface, a
cap of solid above the coating). Nothing can enter or leave the phase through those planes, so a
solve or a network that included them would report a blocked electrode."""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any, Sequence

import numpy as np

from .._chunked import is_dask
from ..errors import InputError
from ..phases import PhaseTable


def electrode_planes(labels: Any, *, axis: int, side: str, phases: PhaseTable,
                     phase: str | Sequence[str]) -> tuple[int, int]:
    """(start, stop) of the planes along the thickness ``axis`` kept: collector planes (more than
    half collector) on the collector ``side`` dropped, then end planes without ``phase`` (or without
    any of several phases: the solid a conduction path may use).
    Per-plane reductions only, so a dask volume is read once, chunk by chunk."""
    names = (phase,) if isinstance(phase, str) else tuple(phase)
    other = tuple(i for i in range(3) if i != axis)
    coll = (labels == phases.value("collector")).mean(axis=other) if "collector" in phases else None
    present = reduce(operator.or_, [labels == phases.value(n) for n in names]).any(axis=other)
    if is_dask(labels):
        import dask

        coll, present = dask.compute(coll, present)
    present = np.asarray(present)
    n = labels.shape[axis]
    start, stop = 0, n
    if coll is not None:
        coll = np.asarray(coll)
        if side == "low":
            while start < n and coll[start] > 0.5:
                start += 1
        else:
            while stop > 0 and coll[stop - 1] > 0.5:
                stop -= 1
    hits = np.flatnonzero(present[start:stop])
    if hits.size == 0 or hits[-1] - hits[0] < 1:
        raise InputError(f"the twin has fewer than two planes with phase {' or '.join(names)!r} outside the current "
                         "collector along its thickness axis; nothing to analyse through the thickness")
    return start + int(hits[0]), start + int(hits[-1]) + 1


def electrode_labels(twin: Any, phase: str = "pore", name: str = "phases", *,
                     in_memory: bool = False) -> tuple[Any, tuple[int, int]]:
    """The twin's ``name`` labels cropped to :func:`electrode_planes`, with the planes: lazy dask,
    or (``in_memory``, for solvers that need the whole volume) one contiguous numpy array read once."""
    labels = twin.labels(name)
    if in_memory:
        labels = np.asarray(labels.compute())
    planes = electrode_planes(labels, axis=twin.thickness_axis, side=twin.collector_side, phases=twin.phases,
                              phase=phase)
    cropped = crop_planes(labels, twin.thickness_axis, planes)
    return (np.ascontiguousarray(cropped) if in_memory else cropped), planes


def crop_planes(labels: Any, axis: int, planes: tuple[int, int]) -> Any:
    """``labels`` restricted to the planes ``(start, stop)`` along ``axis`` (a view)."""
    index = [slice(None)] * 3
    index[axis] = slice(*planes)
    return labels[tuple(index)]

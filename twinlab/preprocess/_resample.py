"""Rescale anisotropic voxels to isotropic ones (trilinear for images, nearest for labels)."""

from __future__ import annotations

import math
from typing import Any

import dask.array as da
import numpy as np

from .._chunked import is_dask
from .._validation import VoxelSize, require_integer_labels, require_ndim
from ..errors import InputError
from ._common import as_float32


def resample_isotropic(
    stack: Any,
    *,
    voxel_size: Any,
    order: int = 1,
    target_um: float | None = None,
) -> tuple[Any, VoxelSize]:
    """Resample a (z, y, x) volume to cubic voxels of edge ``target_um``.

    Parameters
    ----------
    stack : (z, y, x) array, numpy or dask
    voxel_size : VoxelSize or (dz, dy, dx) in µm
    order : {1, 0}
        1: trilinear (separable linear interpolation, images; float32 out). 0: nearest
        neighbour (labels; the dtype is kept and only existing values appear).
    target_um : float, optional
        New voxel edge in µm. Default: the in-plane pixel size when dy == dx (the published
        step rescales the milling direction to it), otherwise the smallest edge.

    Returns
    -------
    resampled : array like ``stack`` (dask stays lazy; chunks along resampled axes change)
    voxel_size : VoxelSize
        Exactly ``target_um`` along every axis.

    Notes
    -----
    Sample ``j`` of an axis sits at ``(j + 0.5) * target / size - 0.5`` input voxels (voxel
    centres; the volume keeps its extent, ``floor(n * size / target)`` samples), and beyond
    the first/last voxel centre the edge value is used. Axes whose size already equals the
    target are left untouched. Each output block reads only the input rows it needs, so the
    chunked result equals the whole-array result exactly.
    """
    require_ndim(stack, 3, name="stack")
    if order not in (0, 1):
        raise InputError(f"order must be 1 (trilinear, images) or 0 (nearest, labels), got {order!r}")
    vs = VoxelSize.parse(voxel_size)
    if target_um is None:
        target_um = vs.dy if abs(vs.dy - vs.dx) <= 1e-9 * vs.dx else min(vs.as_tuple())
    if not (isinstance(target_um, (int, float, np.number)) and math.isfinite(target_um) and target_um > 0):
        raise InputError(f"target_um must be a positive number of micrometres, got {target_um!r}")
    target = float(target_um)
    if order == 0:
        if np.dtype(stack.dtype).kind not in "biu":
            require_integer_labels(stack, name="stack (order=0 is for labels)")
        data = stack
    else:
        data = as_float32(stack)
    for axis, size in enumerate(vs.as_tuple()):
        if abs(size - target) <= 1e-9 * target:
            continue
        n_out = int(math.floor(data.shape[axis] * size / target + 1e-9))
        if n_out < 1:
            raise InputError(f"axis {'zyx'[axis]} has {data.shape[axis]} voxels of {size} µm: resampling "
                             f"to {target} µm leaves no voxel; choose a smaller target_um")
        data = _resample_axis(data, axis, n_out, target / size, order)
    return data, VoxelSize.isotropic(target)


def _positions(n_in: int, start: int, stop: int, ratio: float) -> np.ndarray:
    return (np.arange(start, stop, dtype=np.float64) + 0.5) * ratio - 0.5


def _resample_axis(data: Any, axis: int, n_out: int, ratio: float, order: int) -> Any:
    n_in = data.shape[axis]
    if not is_dask(data):
        return _interp(data, axis, 0, n_out, ratio, order, 0, n_in)
    # output chunks along the axis: as many as the input had, evenly split
    n_chunks = max(1, len(data.chunks[axis]))
    bounds = np.linspace(0, n_out, n_chunks + 1).round().astype(int)
    pieces = []
    for j0, j1 in zip(bounds[:-1], bounds[1:]):
        if j1 <= j0:
            continue
        pos = _positions(n_in, j0, j1, ratio)
        i0 = int(np.clip(np.floor(pos.min()), 0, n_in - 1))
        i1 = int(np.clip(np.floor(pos.max()) + 2, 1, n_in))
        src = data[(slice(None),) * axis + (slice(i0, i1),)].rechunk({axis: -1})
        chunks = list(src.chunks)
        chunks[axis] = (j1 - j0,)
        pieces.append(src.map_blocks(_interp, axis, j0, j1, ratio, order, i0, n_in, chunks=tuple(chunks),
                                     dtype=data.dtype, meta=np.empty((0,) * 3, dtype=data.dtype)))
    return da.concatenate(pieces, axis=axis)


def _interp(block: np.ndarray, axis: int, j0: int, j1: int, ratio: float, order: int, i0: int,
            n_in: int) -> np.ndarray:
    """Output samples j0..j1 along ``axis`` from a block holding input rows i0.. of ``n_in``.

    Indices and weights are computed from global positions, so every block computes exactly
    what the whole-array call computes for its samples.
    """
    pos = _positions(n_in, j0, j1, ratio)
    block = np.asarray(block)
    if order == 0:
        idx = np.clip(np.floor(pos + 0.5).astype(np.int64), 0, n_in - 1) - i0
        return np.take(block, idx, axis=axis)
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    frac[pos < 0] = 0.0
    frac[lo >= n_in - 1] = 0.0
    lo = np.clip(lo, 0, n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    shape = [1, 1, 1]
    shape[axis] = -1
    w = frac.astype(np.float32).reshape(shape)
    a = np.take(block, lo - i0, axis=axis)
    b = np.take(block, hi - i0, axis=axis)
    return (a + (b - a) * w).astype(np.float32)

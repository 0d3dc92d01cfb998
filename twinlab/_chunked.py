"""Run a kernel on a numpy array, or chunk by chunk on a dask array with a halo.

The halo (``depth``) must come from the kernel's own parameters (e.g. patch radius +
search distance for non-local means, 4σ for a Gaussian), so that the chunked result
equals the whole-array one. numpy in → numpy out; dask in → dask out, nothing computed.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import dask.array as da
import numpy as np

from .errors import InputError


def is_dask(array: Any) -> bool:
    return isinstance(array, da.Array)


def normalise_depth(depth: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    if isinstance(depth, (int, np.integer)):
        return (int(depth),) * ndim
    depth = tuple(int(d) for d in depth)
    if len(depth) != ndim:
        raise InputError(f"halo depth {depth} does not match a {ndim}D array")
    return depth


def check_chunks_cover_halo(array: da.Array, depth: tuple[int, ...], *, what: str = "filter") -> None:
    """Chunks thinner than the halo would need data from beyond the neighbouring chunk."""
    for axis, (chunks, d) in enumerate(zip(array.chunks, depth)):
        if len(chunks) > 1 and d > 0 and min(chunks) < d:
            raise InputError(
                f"chunks along axis {axis} ({min(chunks)} voxels) are smaller than the {what}'s halo "
                f"of {d} voxels; rechunk to at least {d} voxels per chunk (e.g. --chunks {max(d, 64)})"
            )


def apply_kernel(
    kernel: Callable[..., np.ndarray],
    array: Any,
    *,
    depth: int | Sequence[int],
    dtype: Any = None,
    what: str = "filter",
    **kwargs: Any,
) -> Any:
    """Apply ``kernel(block, **kwargs)`` to ``array`` (numpy or dask) with a halo of ``depth``.

    Outer faces get no padding: the kernel sees the real face of the volume exactly as in
    the whole-array call and applies its own boundary mode there, while interior chunk
    faces see ``depth`` voxels of real neighbouring data. Hence chunked == whole whenever
    ``depth`` covers the kernel's reach.
    """
    if not is_dask(array):
        return kernel(np.asarray(array), **kwargs)
    depth_t = normalise_depth(depth, array.ndim)
    check_chunks_cover_halo(array, depth_t, what=what)
    # Only axes with more than one chunk need a halo; the outer faces are handled by the
    # kernel itself (boundary='none'), exactly as in the whole-array call.
    depth_map = {ax: (d if len(array.chunks[ax]) > 1 else 0) for ax, d in enumerate(depth_t)}
    out_dtype = np.dtype(dtype) if dtype is not None else array.dtype
    return array.map_overlap(
        kernel,
        depth=depth_map,
        boundary="none",
        dtype=out_dtype,
        meta=np.empty((0,) * array.ndim, dtype=out_dtype),
        **kwargs,
    )


def label_counts(labels: Any, minlength: int = 0) -> np.ndarray:
    """Voxel count per label value (``np.bincount``), chunk by chunk for dask: never ravel a
    chunked volume (dask would rechunk it into whole rows and hold them)."""
    if not is_dask(labels):
        return np.bincount(np.asarray(labels).ravel().astype(np.int64), minlength=minlength)
    import dask

    count = dask.delayed(lambda b: np.bincount(np.asarray(b).ravel().astype(np.int64), minlength=minlength))
    parts = dask.compute(*[count(b) for b in labels.to_delayed().ravel()])
    out = np.zeros(max([minlength, *(len(p) for p in parts)]), np.int64)
    for p in parts:
        out[:len(p)] += p
    return out

"""Helpers shared by the preprocessing steps: dtype rule, finite check, µm → voxels, samples."""

from __future__ import annotations

import math
from typing import Any, Sequence

import dask.array as da
import numpy as np

from .._chunked import is_dask
from .._validation import VoxelSize, check_finite_block, require_ndim
from ..errors import InputError

# Full (y, x) slices of at most this many bytes per chunk when a 2D step needs whole slices.
SLAB_BYTES = 16 * 2**20


def as_float32(stack: Any, *, name: str = "stack") -> Any:
    """The dtype rule of every preprocessing step: compute in float32, refuse NaN/Inf.

    numpy input is checked now; dask input is checked lazily, chunk by chunk, when computed.
    Intensities keep their values (no rescaling to [0, 1]), so ``h``/``sigma`` are in gray levels.
    """
    require_ndim(stack, 3, name=name)
    dtype = np.dtype(stack.dtype)
    if dtype.kind not in "biuf":
        raise InputError(f"{name} dtype {dtype} is not a real number type; convert it to integers or floats first")
    if is_dask(stack):
        out = stack.astype(np.float32)
        if dtype.kind == "f":
            out = out.map_blocks(check_finite_block, dtype=np.float32)
        return out
    out = np.asarray(stack, dtype=np.float32)
    if dtype.kind == "f":
        check_finite_block(out)
    return out


def per_axis(value: Any, name: str, *, kind=float) -> tuple:
    """A scalar or a 3-sequence as a 3-tuple."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        vals = (value,) * 3
    else:
        vals = tuple(value)
        if len(vals) != 3:
            raise InputError(f"{name} needs 1 or 3 values (z, y, x), got {value!r}")
    try:
        out = tuple(kind(v) for v in vals)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numbers, got {value!r}") from None
    if any(not math.isfinite(v) or v < 0 for v in out):
        raise InputError(f"{name} must be non-negative finite numbers, got {value!r}")
    return out


def um_to_voxels(length_um: Any, voxel_size: Any, name: str) -> tuple[float, float, float]:
    """Convert a length in µm (scalar or per axis) to voxels along z, y, x."""
    if voxel_size is None:
        raise InputError(f"{name} is in micrometres, so voxel_size=(dz, dy, dx) in µm is needed too")
    vs = VoxelSize.parse(voxel_size)
    lengths = per_axis(length_um, name)
    return tuple(l / v for l, v in zip(lengths, vs.as_tuple()))


def full_slices(stack: Any) -> Any:
    """A dask array rechunked so each chunk holds whole (y, x) slices (2D steps need them).

    The z chunk is kept unless a slab would exceed ``SLAB_BYTES`` in float32.
    """
    if not is_dask(stack) or (len(stack.chunks[1]) == 1 and len(stack.chunks[2]) == 1):
        return stack
    plane = stack.shape[1] * stack.shape[2] * 4
    cz = max(1, min(int(stack.chunksize[0]), SLAB_BYTES // max(plane, 1)))
    return stack.rechunk({0: cz, 1: -1, 2: -1})


def sample_blocks(stack: Any, *, n_samples: int = 8, size: int = 64) -> list[np.ndarray]:
    """Up to ``n_samples`` cubes of ``size`` voxels at fixed places along the volume's diagonal.

    The places depend only on the shape, never on the chunking, so a statistic computed from
    them (noise level, background reference) is the same for a numpy array and for any dask
    chunking of it — which chunked == whole needs.
    """
    shape = stack.shape
    edge = [min(size, n) for n in shape]
    n = max(1, int(n_samples))
    blocks = []
    seen = set()
    for k in range(n):
        frac = 0.5 if n == 1 else k / (n - 1)
        start = tuple(int(round(frac * (s - e))) for s, e in zip(shape, edge))
        if start in seen:
            continue
        seen.add(start)
        blocks.append(stack[tuple(slice(s0, s0 + e) for s0, e in zip(start, edge))])
    if is_dask(stack):
        # one compute: chunks shared by several samples (and their upstream steps) run once
        blocks = list(da.compute(*blocks))
    return [np.asarray(b, dtype=np.float32) for b in blocks]


def normalise_sizes(values: Sequence[float]) -> tuple[int, int, int]:
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def even_chunks(shape: Sequence[int], chunk: int) -> tuple[tuple[int, ...], ...]:
    """Chunks of ``chunk`` voxels per axis, a short trailing chunk (< chunk/2) merged into the one
    before, so that no chunk is thinner than a halo up to ``chunk/2`` voxels."""
    out = []
    for n in shape:
        sizes = [chunk] * (n // chunk)
        rest = n - chunk * len(sizes)
        if rest:
            if sizes and rest < max(1, chunk // 2):
                sizes[-1] += rest
            else:
                sizes.append(rest)
        out.append(tuple(sizes) if sizes else (n,))
    return tuple(out)

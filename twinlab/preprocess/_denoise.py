"""3D denoising: non-local means (numba, seam-free chunking), Gaussian, median, bilateral."""

from __future__ import annotations

import threading
from typing import Any

import numba
import numpy as np
from numba import njit, prange
from scipy import ndimage

import dask.array as da

from .._chunked import apply_kernel, check_chunks_cover_halo, is_dask
from ..errors import InputError
from ._common import as_float32, per_axis, sample_blocks, um_to_voxels
from ._nlm import nlm_block, nlm_reach

METHODS = ("nlm", "gaussian", "median", "bilateral")
# One NLM chunk at a time: the kernel already uses every core (numba prange), and running two
# parallel numba regions from two dask threads would oversubscribe the cores.
_NLM_LOCK = threading.Lock()


def estimate_noise_sigma(stack: Any, *, n_samples: int = 8, sample_size: int = 64) -> float:
    """Standard deviation of additive Gaussian noise, estimated once for the whole volume.

    Wavelet (MAD of the finest diagonal detail band, Donoho & Johnstone) estimate of
    ``skimage.restoration.estimate_sigma`` on ``n_samples`` cubes of ``sample_size`` voxels at
    fixed positions along the volume's diagonal; the median over the cubes is returned. Only
    those cubes are computed for a dask array, and the result does not depend on its chunks.
    Returns 0.0 for a constant volume; a one-slice volume is estimated in 2D. Units: gray levels of the input.
    """
    from skimage.restoration import estimate_sigma

    stack = as_float32(stack)
    sigmas = []
    for block in sample_blocks(stack, n_samples=n_samples, size=sample_size):
        block = np.squeeze(block)  # a single slice (1, y, x) is estimated as the 2D image it is
        if block.ndim < 2 or min(block.shape) < 2 or float(block.max() - block.min()) == 0.0:
            sigmas.append(0.0)
            continue
        sigmas.append(float(estimate_sigma(block.astype(np.float64))))
    return float(np.median(sigmas))


def denoise(
    stack: Any,
    *,
    method: str = "nlm",
    voxel_size: Any = None,
    patch_size: Any = 5,
    patch_distance: Any = 6,
    patch_size_um: Any = None,
    patch_distance_um: Any = None,
    sigma: float | None = None,
    h: float | None = None,
    size_um: Any = None,
    size: Any = 1.0,
    sigma_color: float | None = None,
) -> Any:
    """Denoise a (z, y, x) volume in 3D; numpy in → numpy out, dask in → lazy dask out (float32).

    Parameters
    ----------
    stack : (z, y, x) array, numpy or dask
        Gray values (any real dtype; computed in float32, values kept, NaN/Inf refused).
    method : {"nlm", "gaussian", "median", "bilateral"}
        ``nlm``: fast non-local means (scikit-image ``fast_mode=True`` conventions, so ``h``
        and ``sigma`` mean the same; see ``twinlab.preprocess._nlm``). ``gaussian``: Gaussian of
        standard deviation ``size``; ``median``: median over a box of edge ``size`` (rounded to odd);
        ``bilateral``: spatial Gaussian ``size`` × range Gaussian ``sigma_color``.
    voxel_size : (dz, dy, dx) in µm, optional
        Needed for the ``*_um`` parameters (anisotropic voxels: lengths in µm become a
        different number of voxels per axis).
    patch_size, patch_distance : int or (int, int, int)
        NLM patch size (odd) and search distance in voxels, per axis if a tuple.
    patch_size_um, patch_distance_um : float or 3 floats, optional
        The same in µm (rounded to the nearest odd patch / whole distance per axis).
    sigma : float, optional
        Noise standard deviation in gray levels; estimated once for the whole volume with
        :func:`estimate_noise_sigma` when omitted (never per chunk, so chunks agree).
    h : float, optional
        NLM filtering strength in gray levels; default ``0.8 * sigma`` (scikit-image's advice
        for fast mode with ``sigma`` given). ``h == 0`` (e.g. a constant, noise-free volume)
        returns the input unchanged as float32.
    size_um, size : spatial scale for gaussian/median/bilateral, in µm (with ``voxel_size``)
        or voxels, scalar or per axis.
    sigma_color : float, optional
        Bilateral range scale in gray levels; default ``2 * sigma``.

    Chunked dask input is processed with a halo of ``patch_distance + patch_size // 2``
    (NLM), ``4 * size`` (gaussian), ``size // 2`` (median) or ``2 * size`` (bilateral) voxels
    per axis; chunks thinner than the halo raise :class:`~twinlab.errors.InputError`. The
    result equals the whole-array result.
    """
    if method not in METHODS:
        raise InputError(f"unknown denoising method {method!r}; use one of {', '.join(METHODS)}")
    data = as_float32(stack)
    if method == "nlm":
        patch, dist = nlm_parameters(voxel_size=voxel_size, patch_size=patch_size, patch_distance=patch_distance,
                                     patch_size_um=patch_size_um, patch_distance_um=patch_distance_um)
        if sigma is None:
            sigma = estimate_noise_sigma(data)
        if h is None:
            h = 0.8 * float(sigma)
        if not (np.isfinite(h) and h >= 0 and np.isfinite(sigma) and sigma >= 0):
            raise InputError(f"h={h!r} and sigma={sigma!r} must be non-negative finite gray levels")
        if h == 0:
            return data.copy() if not is_dask(data) else data
        return _nlm_chunked(data, patch=patch, distance=dist, h=float(h), sigma=float(sigma))
    scale = um_to_voxels(size_um, voxel_size, "size_um") if size_um is not None else per_axis(size, "size")
    if method == "gaussian":
        depth = tuple(int(4.0 * s + 0.5) for s in scale)
        return apply_kernel(_gaussian_kernel, data, depth=depth, dtype=np.float32, what="Gaussian filter",
                            sigma=scale)
    if method == "median":
        box = tuple(max(1, 2 * int(round((s - 1) / 2.0)) + 1) for s in scale)  # odd box edge
        return apply_kernel(_median_kernel, data, depth=tuple(b // 2 for b in box), dtype=np.float32,
                            what="median filter", size=box)
    if sigma_color is None:
        if sigma is None:
            sigma = estimate_noise_sigma(data)
        sigma_color = 2.0 * float(sigma)
    if not sigma_color > 0:
        return data.copy() if not is_dask(data) else data
    radius = tuple(int(np.ceil(2.0 * s)) for s in scale)
    return apply_kernel(_bilateral_kernel, data, depth=radius, dtype=np.float32, what="bilateral filter",
                        sigma_spatial=scale, sigma_color=float(sigma_color), radius=radius)


def nlm_parameters(*, voxel_size: Any = None, patch_size: Any = 5, patch_distance: Any = 6,
                   patch_size_um: Any = None, patch_distance_um: Any = None) -> tuple[tuple, tuple]:
    """Per-axis NLM patch size (odd voxels) and search distance (voxels)."""
    if patch_size_um is not None:
        patch = tuple(2 * int(round((s - 1) / 2.0)) + 1 if s >= 1 else 1
                      for s in um_to_voxels(patch_size_um, voxel_size, "patch_size_um"))
    else:
        patch = per_axis(patch_size, "patch_size", kind=int)
    if patch_distance_um is not None:
        dist = tuple(int(round(d)) for d in um_to_voxels(patch_distance_um, voxel_size, "patch_distance_um"))
    else:
        dist = per_axis(patch_distance, "patch_distance", kind=int)
    if any(s < 1 or s % 2 == 0 for s in patch):
        raise InputError(f"NLM patch size {patch} must be odd and ≥ 1 voxel per axis")
    return patch, dist


# ====================================================================================== kernels
def _nlm_chunked(data: Any, *, patch, distance, h, sigma) -> Any:
    """NLM on numpy, or per dask chunk with halos equal to the reach and no wasted work.

    ``apply_kernel`` would pad every block face (halo faces too) and compute outputs for the
    halo that are then thrown away; at 64³ chunks with reach 8 that is ~2× the work. Here the
    volume's outer faces along chunked axes are reflect-padded once (numpy 'reflect', as
    scikit-image), chunk borders get a halo of real data, and each block computes only its
    own voxels. Axes held in one chunk are padded inside the kernel.
    """
    reach = nlm_reach(patch, distance)
    if not is_dask(data):
        return _nlm_kernel(data, patch=patch, distance=distance, h=h, sigma=sigma, pad_axes=(True,) * 3)
    check_chunks_cover_halo(data, reach, what="non-local means")
    multi = tuple(len(c) > 1 and r > 0 for c, r in zip(data.chunks, reach))
    if not any(multi):
        return data.map_blocks(_nlm_kernel, dtype=np.float32, patch=patch, distance=distance, h=h, sigma=sigma,
                               pad_axes=(True,) * 3, meta=np.empty((0, 0, 0), np.float32))
    widths = [(r, r) if m else (0, 0) for r, m in zip(reach, multi)]
    padded = da.pad(data, widths, mode="reflect")
    chunks = tuple((c[0] + r,) + tuple(c[1:-1]) + (c[-1] + r,) if m else c
                   for c, r, m in zip(data.chunks, reach, multi))
    padded = padded.rechunk(chunks)
    depth = {ax: (r if m else 0) for ax, (r, m) in enumerate(zip(reach, multi))}
    over = da.overlap.overlap(padded, depth=depth, boundary="none")
    return over.map_blocks(_nlm_kernel, dtype=np.float32, chunks=data.chunks, patch=patch, distance=distance,
                           h=h, sigma=sigma, pad_axes=tuple(not m for m in multi),
                           meta=np.empty((0, 0, 0), np.float32))


def _nlm_kernel(block: np.ndarray, *, patch, distance, h, sigma, pad_axes) -> np.ndarray:
    with _NLM_LOCK:
        return nlm_block(block, patch=patch, distance=distance, h=h, sigma=sigma, pad_axes=pad_axes)


def _gaussian_kernel(block: np.ndarray, *, sigma) -> np.ndarray:
    return ndimage.gaussian_filter(np.asarray(block, dtype=np.float32), sigma=sigma, mode="reflect", truncate=4.0)


def _median_kernel(block: np.ndarray, *, size) -> np.ndarray:
    return ndimage.median_filter(np.asarray(block, dtype=np.float32), size=size, mode="reflect")


def _bilateral_kernel(block: np.ndarray, *, sigma_spatial, sigma_color, radius) -> np.ndarray:
    data = np.ascontiguousarray(block, dtype=np.float32)
    padded = np.ascontiguousarray(np.pad(data, [(r, r) for r in radius], mode="reflect"))
    rz, ry, rx = radius
    zz, yy, xx = np.mgrid[-rz:rz + 1, -ry:ry + 1, -rx:rx + 1].astype(np.float64)
    spatial = np.exp(-0.5 * sum((c / max(s, 1e-12)) ** 2 for c, s in zip((zz, yy, xx), sigma_spatial)))
    with _NLM_LOCK:
        return _bilateral_core(padded, np.asarray(radius, dtype=np.int64), spatial.astype(np.float32),
                               np.float32(0.5 / sigma_color**2), data.shape[0], data.shape[1], data.shape[2])


@njit(parallel=True, cache=True)
def _bilateral_core(P, R, spatial, inv2s2, Z, Y, X):
    out = np.empty((Z, Y, X), dtype=np.float32)
    rz, ry, rx = R[0], R[1], R[2]
    for z in prange(Z):
        num = np.empty(X, dtype=np.float32)
        den = np.empty(X, dtype=np.float32)
        for y in range(Y):
            c = P[z + rz, y + ry, rx:rx + X]
            for x in range(X):
                num[x] = 0.0
                den[x] = 0.0
            for a in range(2 * rz + 1):
                for b in range(2 * ry + 1):
                    for k in range(2 * rx + 1):
                        ws = spatial[a, b, k]
                        v = P[z + a, y + b, k:k + X]
                        for x in range(X):
                            d = v[x] - c[x]
                            w = ws * np.exp(-d * d * inv2s2)
                            num[x] += w * v[x]
                            den[x] += w
            for x in range(X):
                out[z, y, x] = num[x] / den[x]
    return out


def set_threads(n: int) -> None:
    """Number of threads the numba kernels use (≤ the cores numba was started with)."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))

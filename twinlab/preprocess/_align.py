"""Drift correction along z: on a fiducial when the frame has one, else by phase correlation of the slices."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from scipy import ndimage

from .._chunked import is_dask
from ..errors import InputError
from ._common import as_float32, full_slices
from ._fiducial import Fiducial, fiducial_drift, find_fiducial

REFERENCES = ("auto", "fiducial", "detrended", "previous", "first")
FIND = "find"  #: ``fiducial=`` default: look for the cap in the first slice (see :func:`drift_reference`)


def align_slices(
    stack: Any,
    *,
    reference: str = "auto",
    upsample: int = 20,
    max_shift_px: float | None = None,
    shifts: Any = None,
    order: int = 3,
    crop_fiducial: bool = True,
    trend_slices: float = 4.0,
    fiducial: Fiducial | None | str = FIND,
) -> tuple[Any, np.ndarray]:
    """Register the slices of a FIB-SEM stack to each other (drift correction along z).

    Parameters
    ----------
    stack : (z, y, x) array, numpy or dask
        The slices; z is the milling direction.
    reference : {"auto", "fiducial", "detrended", "previous", "first"}
        ``"fiducial"``: register every slice on the fiducial cap at the top of the frame (the
        milled marks in the Pt cap of automated serial sectioning; :mod:`._fiducial`) — a static
        reference, so nothing accumulates and the sample's structure does not enter; refused when
        the first slice shows none. ``"previous"``: register each slice to the previous one and
        accumulate the shifts (follows the structure too: surfaces inclined to the milling
        direction make it wander: measured 13 and 70 px rms over 256 slices of 32.5 nm through
        generated NCM622 cathodes of 3.0 and 3.6 g/cm³ without any drift). ``"detrended"``: the
        ``"previous"`` shifts minus their Gaussian trend along z (``trend_slices``): slowly varying
        apparent motion is taken for structure and left in, only the faster drift (jitter, jumps)
        is corrected — the principle of aligning to a z-smoothed template (AMST, Hennies et al.,
        Sci. Rep. 10, 2004 (2020)); on the same drift-free stacks it stays within 0.3–0.5 px rms,
        with a 0.3 px/slice random-walk drift 2.7–3.5 px rms remain (its slow part, which no
        content-based registration can tell from inclined surfaces: mill a fiducial). ``"first"``:
        every slice directly to the first one. ``"auto"`` (default): the fiducial when
        :func:`find_fiducial` finds one in the first slice, else ``"detrended"``.
    trend_slices : float
        Gaussian sigma (slices) of the trend removed by ``"detrended"``.
    fiducial : Fiducial or None, optional
        What :func:`drift_reference` returned for this stack and ``reference`` (``None``: it found
        none), so a caller that already looked does not search (and, on dask input, compute the
        first slice) again. Default: look for it here.
    crop_fiducial : bool
        When registered on a fiducial, return only the sample's field (rows below the cap).
    upsample : int
        Sub-pixel precision 1/``upsample`` px (``skimage.registration.phase_cross_correlation``).
    max_shift_px : float, optional
        A slice-to-slice shift larger than this (in px) is treated as a failed registration and
        replaced by 0 (no drift for that step); the count is not hidden: compare the returned
        shifts with your expectation.
    shifts : (z, 2) array, optional
        Shifts returned by an earlier call: skip the estimation and apply these.
    order : int
        Spline order used to apply the sub-pixel shifts (edges: nearest value).

    Returns
    -------
    aligned : float32 array like ``stack`` (dask stays lazy)
    shifts : (z, 2) float64 ndarray
        ``shifts[k] = (dy, dx)``: the drift of slice k relative to slice 0 in px (content of
        slice k appears displaced by +shift); ``aligned[k]`` is slice k moved by ``-shift``.

    Notes
    -----
    Curtaining stripes are fixed in the image frame and would pull the correlation towards
    zero shift in x; each slice therefore has its column means (the part constant along y,
    i.e. vertical stripes) removed, is lightly smoothed against noise and Hann-windowed
    before correlating. Estimating shifts computes the input once, one z-chunk at a time
    (bounded memory); applying them is lazy. Slices are shifted whole, so y and x are
    rechunked to single chunks when needed. A single slice gets shift (0, 0).
    """
    data = as_float32(stack)
    fiducial = _resolve_fiducial(data, reference, fiducial)
    if shifts is None:
        shifts = estimate_drift(data, reference=reference, upsample=upsample, max_shift_px=max_shift_px,
                                fiducial=fiducial, trend_slices=trend_slices)
    shifts = np.asarray(shifts, dtype=np.float64)
    if shifts.shape != (data.shape[0], 2) or not np.isfinite(shifts).all():
        raise InputError(f"shifts must be a finite ({data.shape[0]}, 2) array of (dy, dx) px, got shape "
                         f"{shifts.shape}; pass the shifts returned by align_slices on this stack")
    crop = (slice(None), slice(fiducial.rows if fiducial is not None and crop_fiducial else 0, None))
    if not is_dask(data):
        return _shift_block(data, shifts, order=order)[crop], shifts
    data = full_slices(data)
    starts = np.concatenate([[0], np.cumsum(data.chunks[0])[:-1]]).astype(int)
    pieces = [da.from_array(shifts[s:s + n], chunks=(n, 2)) for s, n in zip(starts, data.chunks[0])]
    shift_arr = da.concatenate(pieces, axis=0)
    aligned = da.map_blocks(_shift_block_da, data, shift_arr[:, :, None], dtype=np.float32, order=order,
                            meta=np.empty((0, 0, 0), np.float32))
    return aligned[crop], shifts


def drift_reference(stack: Any, reference: str = "auto") -> Fiducial | None:
    """The fiducial that ``align_slices(stack, reference=reference)`` registers on, or ``None``
    when it registers on the image content (see :func:`align_slices`)."""
    if reference not in REFERENCES:
        raise InputError(f"reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    if reference not in ("auto", "fiducial") or stack.ndim != 3 or stack.shape[0] < 2:
        return None
    first = stack[0]
    fiducial = find_fiducial(np.asarray(first.compute() if is_dask(first) else first))
    if fiducial is None and reference == "fiducial":
        raise InputError("reference='fiducial' but the first slice shows no fiducial cap (a band brighter than "
                         "the sample at the top of the frame, with dark milled marks); use reference='previous'")
    return fiducial


def estimate_drift(stack: Any, *, reference: str = "auto", upsample: int = 20,
                   max_shift_px: float | None = None, fiducial: Fiducial | None | str = FIND,
                   trend_slices: float = 4.0) -> np.ndarray:
    """(dy, dx) drift of every slice relative to slice 0, in px (see align_slices).

    ``fiducial``: what :func:`drift_reference` returned (``None``: no fiducial), so it is not
    searched again; by default it is looked for here.
    """
    from skimage.registration import phase_cross_correlation

    data = as_float32(stack)
    fiducial = _resolve_fiducial(data, reference, fiducial)
    if fiducial is not None:
        return fiducial_drift(data, fiducial, upsample=upsample)
    if not (isinstance(trend_slices, (int, float)) and trend_slices > 0):
        raise InputError(f"trend_slices must be a number of slices > 0, got {trend_slices!r}")
    nz = data.shape[0]
    inc = np.zeros((nz, 2))
    window = None
    first = None
    prev = None
    step = int(data.chunksize[0]) if is_dask(data) else nz
    for z0 in range(0, nz, max(1, step)):
        block = data[z0:min(nz, z0 + step)]
        block = np.asarray(block.compute() if is_dask(block) else block)
        for i in range(block.shape[0]):
            cur = _prepare_for_correlation(block[i])
            if window is None:
                window = np.outer(np.hanning(cur.shape[0]), np.hanning(cur.shape[1])).astype(np.float32)
            cur *= window
            z = z0 + i
            if z == 0:
                first = prev = cur
                continue
            ref = first if reference == "first" else prev
            if np.ptp(cur) == 0 or np.ptp(ref) == 0:
                s = np.zeros(2)
            else:
                s, _, _ = phase_cross_correlation(ref, cur, upsample_factor=int(upsample), normalization=None)
                s = -np.asarray(s, dtype=np.float64)
            if max_shift_px is not None and np.hypot(*s) > max_shift_px:
                s = np.zeros(2)
            inc[z] = s
            prev = cur
    if reference == "first":
        return inc
    shifts = np.cumsum(inc, axis=0)
    if reference in ("auto", "detrended") and nz > 1:
        shifts -= ndimage.gaussian_filter1d(shifts, float(trend_slices), axis=0, mode="nearest")
        shifts -= shifts[0]
    return shifts


def _resolve_fiducial(data: Any, reference: str, fiducial: Any) -> Fiducial | None:
    """The fiducial to register on: searched for when ``fiducial`` is :data:`FIND`, else the caller's."""
    if isinstance(fiducial, str) and fiducial == FIND:
        return drift_reference(data, reference)
    if reference not in REFERENCES:
        raise InputError(f"reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    if fiducial is not None and not isinstance(fiducial, Fiducial):
        raise InputError(f"fiducial must be what drift_reference returned (a Fiducial or None), got {fiducial!r}")
    if reference == "fiducial" and fiducial is None:
        raise InputError("reference='fiducial' but fiducial=None (no cap found); use reference='previous'")
    return fiducial if reference in ("auto", "fiducial") else None


def _prepare_for_correlation(image: np.ndarray) -> np.ndarray:
    img = ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), 1.0)
    img -= img.mean(axis=0, keepdims=True)  # vertical stripes (curtains) are constant along y
    return img


def _shift_block(block: np.ndarray, shifts: np.ndarray, *, order: int) -> np.ndarray:
    out = np.empty(block.shape, dtype=np.float32)
    for i in range(block.shape[0]):
        s = shifts[i]
        if s[0] == 0 and s[1] == 0:
            out[i] = block[i]
        else:
            out[i] = ndimage.shift(np.asarray(block[i], dtype=np.float32), -s, order=order, mode="nearest")
    return out


def _shift_block_da(block: np.ndarray, shifts: np.ndarray, *, order: int) -> np.ndarray:
    return _shift_block(block, shifts[:, :, 0], order=order)

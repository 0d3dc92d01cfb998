"""Curtaining removal (wavelet–FFT destriping) and background (shading/charging) flattening."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import ndimage

from .._chunked import is_dask
from .._validation import VoxelSize
from ..errors import InputError
from ._common import as_float32, full_slices, sample_blocks


def remove_curtaining(
    stack: Any,
    *,
    sigma: float = 1.0,
    wavelet: str = "db5",
    level: int | None = None,
    orientation: str = "vertical",
) -> Any:
    """Remove curtaining stripes slice by slice with the wavelet–FFT filter of Münch et al. (2009).

    Each (y, x) slice is decomposed with a 2D discrete wavelet transform to ``level`` levels;
    at every level the detail band that holds the stripes (for vertical stripes, constant
    along y and varying along x: the vertical-detail band) is Fourier transformed along the
    stripe direction and its low frequencies are damped by ``1 - exp(-k^2 / (2 sigma^2))``
    (k: frequency index), which removes what is (nearly) constant along the stripes while
    structure that varies along them is kept; then the slice is reconstructed.

    Parameters
    ----------
    stack : (z, y, x) array, numpy or dask
    sigma : float
        Width of the damping in frequency-index units: larger removes stripes that vary more
        along their length (and more structure); 1–4 is typical.
    wavelet : str
        A PyWavelets wavelet name; longer wavelets (db5–db20) separate orientations better.
    level : int, optional
        Decomposition depth; deeper levels also remove the broad (low x-frequency) part of
        stripes. Default ``floor(log2(n_along / 32))`` clipped to 1..6, with ``n_along`` the slice
        length along the stripes: the coarsest level then still has ≥ 32 samples along the
        stripes, so what is "constant along the stripe" is not confused with the column mean of
        a few particles (on short slices deep levels remove real structure too).
    orientation : {"vertical", "horizontal"}
        Stripes constant along y ("vertical", FIB curtaining in SEM cross-sections) or along x.

    Returns
    -------
    float32 array like ``stack``. The filter is 2D per slice: z chunks need no halo, and dask
    input is rechunked to whole (y, x) slices (never chunked in y/x, which would put seams at
    chunk borders).
    """
    import pywt

    if orientation not in ("vertical", "horizontal"):
        raise InputError(f"orientation must be 'vertical' or 'horizontal', got {orientation!r}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise InputError(f"sigma must be a positive number of frequency indices, got {sigma!r}")
    try:
        pywt.Wavelet(wavelet)
    except ValueError:
        raise InputError(f"unknown wavelet {wavelet!r}; see pywt.wavelist(kind='discrete')") from None
    data = as_float32(stack)
    if level is None:
        n_along = data.shape[1] if orientation == "vertical" else data.shape[2]
        level = int(np.clip(np.floor(np.log2(max(n_along, 1) / 32.0)), 1, 6))
    if int(level) < 1:
        raise InputError(f"level must be ≥ 1, got {level}")
    kwargs = dict(sigma=float(sigma), wavelet=wavelet, level=int(level), vertical=orientation == "vertical")
    if not is_dask(data):
        return _destripe_block(data, **kwargs)
    data = full_slices(data)
    return data.map_blocks(_destripe_block, dtype=np.float32, **kwargs)


def flatten_background(
    stack: Any,
    *,
    sigma_um: Any = None,
    voxel_size: Any = None,
    sigma: Any = 50.0,
    mode: str = "subtract",
    reference: float | str = "slice",
) -> Any:
    """Remove low-frequency shading/charging from every slice.

    The background of each (y, x) slice is a Gaussian blur of standard deviation ``sigma_um``
    (µm, with ``voxel_size``) or ``sigma`` (px), scalar or (y, x); it is computed on a
    block-averaged copy (factor ``sigma/4``) and interpolated back, so large scales stay cheap.
    ``mode="subtract"``: ``I - B + reference``; ``mode="divide"``: ``I * reference / B``
    (multiplicative shading; B must stay positive). ``reference="slice"`` (default) is the mean
    of each slice's own background, so only in-plane shading is removed and every slice keeps
    its mean (slice means differ with the phase fractions they cut; forcing them equal costs
    accuracy). ``reference="global"`` uses the mean gray value of fixed sample cubes of the
    volume (chunk-independent), also levelling slice-to-slice brightness; or give a number.

    Per slice: z chunks need no halo; dask input is rechunked to whole (y, x) slices.
    Returns float32.
    """
    if mode not in ("subtract", "divide"):
        raise InputError(f"mode must be 'subtract' or 'divide', got {mode!r}")
    data = as_float32(stack)
    if sigma_um is not None:
        if voxel_size is None:
            raise InputError("sigma_um is in micrometres, so voxel_size=(dz, dy, dx) in µm is needed too")
        vs = VoxelSize.parse(voxel_size)
        s = np.broadcast_to(np.asarray(sigma_um, dtype=float), (2,))
        sig = (float(s[0]) / vs.dy, float(s[1]) / vs.dx)
    else:
        s = np.broadcast_to(np.asarray(sigma, dtype=float), (2,))
        sig = (float(s[0]), float(s[1]))
    if not all(np.isfinite(v) and v > 0 for v in sig):
        raise InputError(f"background sigma must be positive, got {sig} px")
    if isinstance(reference, str):
        if reference not in ("slice", "global"):
            raise InputError(f"reference must be 'slice', 'global' or a number, got {reference!r}")
        if reference == "global":
            reference = float(np.mean([b.mean() for b in sample_blocks(data)]))
    else:
        reference = float(reference)
    kwargs = dict(sigma=sig, mode=mode, reference=reference)
    if not is_dask(data):
        return _flatten_block(data, **kwargs)
    data = full_slices(data)
    return data.map_blocks(_flatten_block, dtype=np.float32, **kwargs)


# ====================================================================================== kernels
def _destripe_block(block: np.ndarray, *, sigma: float, wavelet: str, level: int, vertical: bool) -> np.ndarray:
    out = np.empty(block.shape, dtype=np.float32)
    for i in range(block.shape[0]):
        img = np.asarray(block[i], dtype=np.float64)
        if vertical:
            out[i] = _destripe_slice(img, sigma, wavelet, level)
        else:
            out[i] = _destripe_slice(img.T, sigma, wavelet, level).T
    return out


def _destripe_slice(img: np.ndarray, sigma: float, wavelet: str, level: int) -> np.ndarray:
    """Vertical stripes of one 2D slice (axis 0 = along the stripes)."""
    import pywt

    # the stripes' coarse part sits in deep levels, deeper than pywt's "no boundary effect"
    # limit for small slices; the symmetric extension keeps those boundary effects mild
    lev = max(1, min(level, int(np.log2(max(2, min(img.shape))))))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Level value of", category=UserWarning)
        coeffs = pywt.wavedec2(img, wavelet, level=lev, mode="symmetric")
    new = [coeffs[0]]
    for c_h, c_v, c_d in coeffs[1:]:
        # c_v: high-pass along x, low-pass along y → vertical stripes live here
        f = np.fft.rfft(c_v, axis=0)
        k = np.arange(f.shape[0], dtype=np.float64)
        damp = 1.0 - np.exp(-(k**2) / (2.0 * sigma**2))
        c_v = np.fft.irfft(f * damp[:, None], n=c_v.shape[0], axis=0)
        new.append((c_h, c_v, c_d))
    rec = pywt.waverec2(new, wavelet, mode="symmetric")
    return rec[: img.shape[0], : img.shape[1]]


def _flatten_block(block: np.ndarray, *, sigma: tuple[float, float], mode: str, reference: Any) -> np.ndarray:
    out = np.empty(block.shape, dtype=np.float32)
    for i in range(block.shape[0]):
        img = np.asarray(block[i], dtype=np.float32)
        bg = _background(img, sigma)
        ref = np.float32(bg.mean(dtype=np.float64)) if reference == "slice" else np.float32(reference)
        if mode == "subtract":
            out[i] = img - bg + ref
        else:
            if np.any(bg <= 0):
                raise InputError("flatten_background(mode='divide') met a background ≤ 0; use mode='subtract' "
                                 "or offset the gray values to be positive")
            out[i] = img * (ref / bg)
    return out


def _background(img: np.ndarray, sigma: tuple[float, float]) -> np.ndarray:
    f = tuple(max(1, min(int(s // 4), n // 4 or 1)) for s, n in zip(sigma, img.shape))
    if f == (1, 1):
        return ndimage.gaussian_filter(img, sigma, mode="reflect")
    ny, nx = (img.shape[0] + f[0] - 1) // f[0], (img.shape[1] + f[1] - 1) // f[1]
    pad = np.pad(img, ((0, ny * f[0] - img.shape[0]), (0, nx * f[1] - img.shape[1])), mode="reflect")
    small = pad.reshape(ny, f[0], nx, f[1]).mean(axis=(1, 3))
    small = ndimage.gaussian_filter(small, (sigma[0] / f[0], sigma[1] / f[1]), mode="reflect")
    # block centres sit at (i + 0.5) f - 0.5 px: interpolate linearly back onto every pixel
    yc = (np.arange(img.shape[0]) + 0.5) / f[0] - 0.5
    xc = (np.arange(img.shape[1]) + 0.5) / f[1] - 0.5
    yy, xx = np.meshgrid(yc, xc, indexing="ij")
    return ndimage.map_coordinates(small, [yy, xx], order=1, mode="nearest").astype(np.float32)

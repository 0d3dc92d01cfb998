"""EBAC (electron-beam absorbed current) map analysis (SCIENCE.md §2).

An EBAC map is a 2D cross-section whose intensity is the beam current that reaches the current
collector: bright = electrically connected to the collector. :func:`analyze_ebac` gives

* a **line scan**: mean ± standard deviation of the intensity over each line parallel to the
  collector, against depth from the collector (input intensity units, *before* flattening, so
  the profile reports what was measured);
* a **conductive-region map**: optional background flattening, a light Gaussian denoising
  (``smooth_sigma_px``), then a global threshold (Otsu by default; Li, Yen, triangle or a fixed
  value), then removal of bright specks smaller than ``min_region_px``;
* the **connected fraction**: bright area in regions (``connectivity`` 4 or 8 in 2D) that reach
  the collector edge (within ``collector_offset_um`` of it — set it to the foil thickness when
  the foil is visible in the map) / total bright area. A section cannot show connections that run
  out of its plane, so this is a lower bound of the 3D connectivity;
* :func:`compare_ebac` puts several maps (e.g. 20/30/40 % calendered) side by side.

Background flattening (``flatten_sigma_um``): the background is the Gaussian-weighted local mean
of the *dark* class only (normalised convolution over the pixels below a first Otsu threshold),
so bright conductive regions do not pull it up; the map minus (background − its mean) removes
slow shading/charging gradients while keeping the bright/dark contrast. Use a σ several times the
largest conductive feature; off by default because a real depth trend (resistive decay) is also
a slow gradient in the bright class and must not be flattened away.

RGB(A) input is converted to grey with the ITU-R BT.709 luminance weights (alpha dropped), and
the result says so in ``notes``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage import filters

from .._results import Result, to_jsonable
from .._validation import require_positive
from ..errors import InputError

__all__ = ["EbacResult", "EbacComparison", "analyze_ebac", "analyze_ebac_file", "compare_ebac",
           "THRESHOLD_METHODS"]

THRESHOLD_METHODS = ("otsu", "li", "yen", "triangle")
_SIDES = ("bottom", "top", "left", "right")
_LUMA = np.array([0.2125, 0.7154, 0.0721])  # BT.709, as skimage.color.rgb2gray


@dataclasses.dataclass(frozen=True)
class EbacResult(Result):
    """Analysis of one EBAC map. ``conductive_map`` and ``connected_map`` (bool, the input's (rows, cols))
    are kept out of :meth:`to_dict`."""

    shape: tuple[int, int]
    pixel_size_um: float
    collector_side: str
    method: str
    threshold: float  # in the (flattened, smoothed) image's intensity units
    depth_um: tuple[float, ...]  # line centres, from the collector edge
    profile_mean: tuple[float, ...]  # mean intensity per line (input units)
    profile_std: tuple[float, ...]
    conductive_fraction_profile: tuple[float, ...]  # bright fraction per line
    connected_fraction_profile: tuple[float, ...]  # collector-connected bright fraction per line
    conductive_area_fraction: float
    connected_fraction: float  # collector-connected bright area / bright area
    n_regions: int
    n_connected_regions: int
    penetration_depth_um: float  # deepest line where the connected fraction is ≥ half its near-collector value
    contrast: float  # (mean bright − mean dark) / std of the dark class after smoothing
    notes: tuple[str, ...]
    conductive_map: Any = dataclasses.field(default=None, repr=False, compare=False)
    connected_map: Any = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name not in ("conductive_map", "connected_map")}


@dataclasses.dataclass(frozen=True)
class EbacComparison(Result):
    """Several maps side by side, profiles resampled on one depth grid (µm from the collector)."""

    labels: tuple[str, ...]
    connected_fraction: tuple[float, ...]
    conductive_area_fraction: tuple[float, ...]
    mean_intensity: tuple[float, ...]
    penetration_depth_um: tuple[float, ...]
    depth_um: tuple[float, ...]
    profiles: dict[str, list[float]]  # label → mean intensity on ``depth_um`` (NaN beyond a map's extent)
    connected_profiles: dict[str, list[float]]
    increasing_connected_fraction: bool  # in the order given
    increasing_conductive_area: bool
    note: str


# ============================================================================ public functions
def analyze_ebac(
    image: Any,
    *,
    pixel_size_um: float,
    collector_side: str = "bottom",
    method: str | float = "otsu",
    flatten_sigma_um: float | None = None,
    smooth_sigma_px: float = 1.0,
    min_region_px: int = 4,
    connectivity: int = 4,
    collector_offset_um: float = 0.0,
) -> EbacResult:
    """Line scan, conductive-region map and collector-connected fraction of one EBAC map.

    Parameters
    ----------
    image : (rows, cols) array, or (rows, cols, 3|4) RGB(A) — converted to grey (noted)
        Intensity ∝ absorbed current (any real dtype; the profile is reported in its units).
    pixel_size_um : float
        Pixel edge length in µm (square pixels).
    collector_side : "bottom", "top", "left" or "right"
        Image edge where the current collector is; depth is measured from it.
    method : "otsu", "li", "yen", "triangle" or a number
        Global threshold method for the conductive map (a number = fixed threshold in the
        flattened image's units).
    flatten_sigma_um : float, optional
        σ of the background flattening (see module doc); ``None`` = no flattening.
    smooth_sigma_px : float
        Gaussian σ (pixels) applied before thresholding, against pixel noise; 0 = none.
    min_region_px : int
        Bright regions smaller than this (pixels) are dropped as noise.
    connectivity : 4 or 8
        Pixel neighbourhood of a region.
    collector_offset_um : float
        A region is collector-connected when it has a pixel within this depth of the collector
        edge (at least the first line).

    Raises
    ------
    InputError
        Not a 2D (or RGB) image; NaN/Inf; no contrast; bad options.
    """
    img, notes = _to_grey(image)
    px = require_positive(pixel_size_um, "pixel_size_um")
    if collector_side not in _SIDES:
        raise InputError(f"collector_side must be one of {', '.join(_SIDES)}, got {collector_side!r}")
    if connectivity not in (4, 8):
        raise InputError(f"connectivity must be 4 or 8 (pixel neighbours), got {connectivity!r}")
    _check_contrast(img)
    # work in a frame where row 0 is the collector edge
    work = _to_collector_frame(img, collector_side)
    rows = work.shape[0]
    depth = (np.arange(rows) + 0.5) * px
    prof_mean = work.mean(axis=1)
    prof_std = work.std(axis=1)

    flat = work
    if flatten_sigma_um is not None:
        flat = _flatten(work, require_positive(flatten_sigma_um, "flatten_sigma_um") / px)
        notes.append(f"background flattened (dark-class normalised convolution, sigma {flatten_sigma_um} um)")
    smooth = ndi.gaussian_filter(flat, smooth_sigma_px) if smooth_sigma_px > 0 else flat
    thr, method_name = _threshold(smooth, method)
    bright = smooth > thr
    if not bright.any() or bright.all():
        raise InputError(f"the {method_name} threshold ({thr:.4g}) leaves the map all "
                         f"{'dark' if not bright.any() else 'bright'}; try another method= or a fixed value")
    structure = ndi.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    regions, n = ndi.label(bright, structure=structure)
    if min_region_px > 1 and n:
        sizes = np.bincount(regions.ravel())
        small = sizes < int(min_region_px)
        small[0] = False
        if small.any():
            bright &= ~small[regions]
            regions, n = ndi.label(bright, structure=structure)
    band = max(1, int(math.ceil(float(collector_offset_um) / px - 1e-9)))
    touching = np.unique(regions[:band])
    touching = touching[touching > 0]
    connected = np.isin(regions, touching)
    n_bright = int(bright.sum())
    dark = smooth[~bright]
    contrast = float((smooth[bright].mean() - dark.mean()) / max(dark.std(), 1e-12))
    if contrast < 1.0:
        notes.append(f"weak contrast ({contrast:.2f} dark-class standard deviations): the conductive map is unreliable")
    cfrac = bright.mean(axis=1)
    kfrac = connected.mean(axis=1)
    return EbacResult(
        shape=tuple(img.shape), pixel_size_um=px, collector_side=collector_side, method=method_name,
        threshold=float(thr), depth_um=tuple(depth.tolist()), profile_mean=tuple(prof_mean.tolist()),
        profile_std=tuple(prof_std.tolist()), conductive_fraction_profile=tuple(cfrac.tolist()),
        connected_fraction_profile=tuple(kfrac.tolist()), conductive_area_fraction=float(bright.mean()),
        connected_fraction=float(connected.sum() / n_bright) if n_bright else 0.0, n_regions=int(n),
        n_connected_regions=int(touching.size), penetration_depth_um=_penetration(kfrac, depth),
        contrast=contrast, notes=tuple(notes),
        conductive_map=_from_collector_frame(bright, collector_side),
        connected_map=_from_collector_frame(connected, collector_side),
    )


def analyze_ebac_file(path: str | Path, *, pixel_size_um: float | None = None, page: int | None = None,
                      **options: Any) -> EbacResult:
    """Read a 2D EBAC/SEM map (TIFF, PNG) and run :func:`analyze_ebac`.

    ``pixel_size_um`` defaults to the file's resolution tags when present. A multi-page TIFF
    (a stack of sections) needs ``page`` (0-based) to pick one section.
    """
    image, pixel = _read_map(Path(path), page)
    pixel = pixel_size_um if pixel_size_um is not None else pixel
    if pixel is None:
        raise InputError(f"{Path(path).name} carries no pixel size; pass pixel_size_um (CLI: --pixel-size)")
    return analyze_ebac(image, pixel_size_um=pixel, **options)


def compare_ebac(results: Sequence[EbacResult], labels: Sequence[str] | None = None, *,
                 step_um: float | None = None) -> EbacComparison:
    """Compare several EBAC analyses (e.g. a calendering series: labels "20%", "30%", "40%").

    Profiles are resampled by linear interpolation on a common grid from 0 to the deepest map
    (step: the finest pixel size unless ``step_um``); positions beyond a map's extent are NaN.
    ``increasing_connected_fraction`` says whether the connected fraction rises in the order given.
    """
    results = list(results)
    if len(results) < 2:
        raise InputError(f"compare_ebac needs at least 2 analysed maps, got {len(results)}")
    labels = [str(x) for x in labels] if labels is not None else [f"map{i + 1}" for i in range(len(results))]
    if len(labels) != len(results) or len(set(labels)) != len(labels):
        raise InputError(f"give one distinct label per map ({len(results)} maps, labels {labels})")
    step = require_positive(step_um, "step_um") if step_um is not None else min(r.pixel_size_um for r in results)
    deepest = max(r.depth_um[-1] for r in results)
    grid = np.arange(0.5 * step, deepest + 1e-9, step)
    profiles, cprofiles = {}, {}
    for lab, r in zip(labels, results):
        d = np.asarray(r.depth_um)
        inside = grid <= d[-1] + 1e-9
        p = np.full(grid.shape, np.nan)
        p[inside] = np.interp(grid[inside], d, r.profile_mean)
        c = np.full(grid.shape, np.nan)
        c[inside] = np.interp(grid[inside], d, r.connected_fraction_profile)
        profiles[lab], cprofiles[lab] = p.tolist(), c.tolist()
    cf = [r.connected_fraction for r in results]
    return EbacComparison(
        labels=tuple(labels), connected_fraction=tuple(cf),
        conductive_area_fraction=tuple(r.conductive_area_fraction for r in results),
        mean_intensity=tuple(float(np.mean(r.profile_mean)) for r in results),
        penetration_depth_um=tuple(r.penetration_depth_um for r in results), depth_um=tuple(grid.tolist()),
        profiles=profiles, connected_profiles=cprofiles,
        increasing_connected_fraction=bool(np.all(np.diff(cf) >= 0)),
        increasing_conductive_area=bool(np.all(np.diff([r.conductive_area_fraction for r in results]) >= 0)),
        note="intensities are compared as measured: maps taken with different beam current or detector "
             "gain are only comparable through their area and connected fractions",
    )


# ============================================================================ helpers
def _to_grey(image: Any) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"EBAC map dtype {arr.dtype} is not a real number type")
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        if arr.shape[-1] == 4:
            arr = arr[..., :3]
        same = bool(np.all(arr[..., 0] == arr[..., 1]) and np.all(arr[..., 1] == arr[..., 2]))
        arr = arr.astype(np.float64) @ _LUMA
        notes.append("RGB input converted to grey (BT.709 luminance)"
                     + ("; the channels were identical, nothing was lost" if same else
                        "; colour information was discarded — use the raw single-channel map if you have it"))
    elif arr.ndim != 2:
        raise InputError(f"an EBAC map must be a 2D image (rows, cols) or RGB (rows, cols, 3), got shape "
                         f"{arr.shape}; pick one section of a stack (CLI: --page)")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError("the EBAC map contains NaN/Inf pixels; replace or crop them first")
    if min(arr.shape) < 3:
        raise InputError(f"the EBAC map is too small ({arr.shape}); it needs at least 3 × 3 pixels")
    return arr, notes


def _check_contrast(img: np.ndarray) -> None:
    lo, hi = np.percentile(img, [0.5, 99.5])
    if not hi - lo > 1e-9 * max(abs(hi), abs(lo), 1.0):
        raise InputError(f"the EBAC map has no contrast (99 % of pixels lie at {lo:.6g}); nothing separates "
                         "conductive from non-conductive regions — check the acquisition or the file")


def _to_collector_frame(img: np.ndarray, side: str) -> np.ndarray:
    return {"top": img, "bottom": img[::-1], "left": img.T, "right": img[:, ::-1].T}[side]


def _from_collector_frame(img: np.ndarray, side: str) -> np.ndarray:
    out = {"top": img, "bottom": img[::-1], "left": img.T, "right": img.T[:, ::-1]}[side]
    return np.ascontiguousarray(out)


def _flatten(img: np.ndarray, sigma_px: float) -> np.ndarray:
    dark = img <= filters.threshold_otsu(img)
    w = ndi.gaussian_filter(dark.astype(np.float64), sigma_px, mode="reflect")
    s = ndi.gaussian_filter(np.where(dark, img, 0.0), sigma_px, mode="reflect")
    bg = np.divide(s, w, out=np.full(img.shape, np.nan), where=w > 1e-3)
    if np.isnan(bg).any():  # far from any dark pixel: nearest defined background
        idx = ndi.distance_transform_edt(np.isnan(bg), return_distances=False, return_indices=True)
        bg = bg[tuple(idx)]
    return img - (bg - bg[dark].mean())


def _threshold(img: np.ndarray, method: str | float) -> tuple[float, str]:
    if isinstance(method, (int, float, np.number)) and not isinstance(method, bool):
        if not math.isfinite(float(method)):
            raise InputError(f"a fixed threshold must be finite, got {method!r}")
        return float(method), f"fixed {float(method):g}"
    if method not in THRESHOLD_METHODS:
        raise InputError(f"unknown threshold method {method!r}; use one of {', '.join(THRESHOLD_METHODS)} "
                         "or a number")
    func = {"otsu": filters.threshold_otsu, "li": filters.threshold_li, "yen": filters.threshold_yen,
            "triangle": filters.threshold_triangle}[method]
    return float(func(img)), method


def _penetration(kfrac: np.ndarray, depth: np.ndarray) -> float:
    near = float(kfrac[: max(1, len(kfrac) // 20)].mean())
    if near <= 0:
        return 0.0
    above = np.flatnonzero(kfrac >= 0.5 * near)
    return float(depth[above[-1]]) if above.size else 0.0


def _read_map(path: Path, page: int | None) -> tuple[np.ndarray, float | None]:
    if not path.is_file():
        raise InputError(f"{path} is not a file; give a 2D EBAC map (TIFF or PNG)")
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                image = tif.asarray()
                pixel = _tiff_pixel_size(tif)
        except (OSError, ValueError, tifffile.TiffFileError) as exc:
            raise InputError(f"cannot read {path.name} as TIFF ({exc})") from None
    else:
        from ..io import read_image2d

        image, pixel, _ = read_image2d(path)
    image = np.squeeze(image)
    rgb = image.ndim == 3 and image.shape[-1] in (3, 4)
    if image.ndim == 3 and not rgb or image.ndim == 4:
        if page is None:
            raise InputError(f"{path.name} holds {image.shape[0]} sections of {image.shape[1:]}; pick one with "
                             "page= (CLI: --page N, 0-based)")
        if not -image.shape[0] <= page < image.shape[0]:
            raise InputError(f"page {page} does not exist; {path.name} has pages 0..{image.shape[0] - 1}")
        image = image[page]
    elif page not in (None, 0):
        raise InputError(f"{path.name} holds a single section; page {page} does not exist")
    return image, pixel


def _tiff_pixel_size(tif: Any) -> float | None:
    """Pixel size in µm from ImageJ/resolution tags, if the file states a length unit."""
    try:
        page = tif.pages[0]
        tag = page.tags.get("XResolution")
        unit = page.tags.get("ResolutionUnit")
        ij = tif.imagej_metadata or {}
        if tag is None:
            return None
        num, den = tag.value
        if not num:
            return None
        per_unit = den / num  # unit length per pixel
        name = str(ij.get("unit", "")).lower()
        if name in ("micron", "um", "µm", "\\u00b5m"):
            return float(per_unit)
        if name == "nm":
            return float(per_unit) * 1e-3
        if unit is not None and int(unit.value) == 3:  # centimetre
            return float(per_unit) * 1e4
    except (AttributeError, TypeError, ValueError, ZeroDivisionError):
        return None
    return None

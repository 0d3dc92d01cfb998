"""Drift registration on a fiducial: the milled marks in the protective cap above the cut face.

Automated FIB-SEM serial sectioning (Zeiss Atlas 3D, FEI/Thermo Auto Slice & View) caps the
block with a deposited Pt pad, mills marks into it along the milling direction and covers them
with a carbon pad; every SEM image of the cut face then shows, at its top, the bright Pt cap with
dark carbon-filled trenches at the same place in every slice. The instrument tracks these marks
to keep the field of view (see also Narayan & Subramaniam, "Focused ion beams in biology", Nat.
Methods 12, 1021 (2015), on FIB-SEM workflows), and image registration on them
is drift correction against a static reference: no slice-to-slice accumulation, and the
structure of the sample (surfaces inclined to the milling direction, which an image-content
aligner follows) does not enter.

Here the cap is found in the first slice (rows brighter than anything in the sample below, with at
least one dark mark in them), reduced to a two-level image (``clip((I - sample_max) / (cap -
sample_max), 0, 1)``: the sample, the vacuum and the carbon become 0, so changing sample content
and moderate curtains/shading do not pull the correlation), and every slice's cap is registered
by phase correlation with sub-pixel refinement (upsampled DFT, Guizar-Sicairos et al., Opt. Lett.
33, 156 (2008)) first to the first slice, then to the mean of all caps so aligned (a less noisy
template).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy import ndimage

from .._chunked import is_dask

#: Rows of sample below the cap kept in the registration window: the largest drift (px) along y
#: for which the cap's lower edge stays inside it.
MARGIN_PX = 16


@dataclasses.dataclass(frozen=True)
class Fiducial:
    """A fiducial cap found at the top of a slice.

    Attributes
    ----------
    rows : int
        The sample's field starts at this row: rows ``[0, rows)`` are the cap (and what is above it).
    band : (int, int)
        Rows of the bright cap, ``[start, stop)``.
    marks_x : tuple of float
        Column centres of the dark marks in the cap, px.
    sample_max, cap_level : float
        The sample's brightest grey (99.9th percentile) and the cap's median grey, input units.
    """

    rows: int
    band: tuple[int, int]
    marks_x: tuple[float, ...]
    sample_max: float
    cap_level: float

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "band": list(self.band), "marks_x": [round(x, 2) for x in self.marks_x],
                "sample_max": self.sample_max, "cap_level": self.cap_level}


def find_fiducial(image: Any) -> Fiducial | None:
    """The fiducial cap at the top of a (y, x) slice, or ``None`` when there is none.

    A cap is a run of at least 4 rows in the top third whose median grey is above half-way from
    the 99.9th percentile of the lower two thirds (the sample) to the brightest row, and whose
    column profile has at least one dark mark (columns darker by a quarter of the cap–sample
    contrast, at least 2 px wide).
    """
    img = ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), 1.0)
    ny, nx = img.shape
    if ny < 24 or nx < 16:
        return None
    rest = img[ny // 3:]
    sample_max = float(np.percentile(rest, 99.9))
    sample_mid = float(np.median(rest))
    rows = np.median(img, axis=1)
    # the cap is the brightest band; half-way up from the sample keeps a bright neighbour out of it
    # (a collector foil at the top of the field is brighter than the rest of the sample, not than Pt)
    bright = rows > 0.5 * (sample_max + float(rows[: ny // 3 + 1].max()))
    runs = _runs(bright[: ny // 3 + 1])
    runs = [(a, b) for a, b in runs if b - a >= 4]
    if not runs:
        return None
    a, b = max(runs, key=lambda r: r[1] - r[0])
    cap = float(np.median(img[a:b]))
    contrast = cap - sample_mid
    if contrast <= 0:
        return None
    dark = img[a:b].mean(axis=0) < cap - 0.25 * contrast
    marks = [0.5 * (s + e - 1) for s, e in _runs(dark) if e - s >= 2]
    if not marks:
        return None
    # the cap's lower edge: the steepest fall of the row profile near the run's end (the step
    # between the last cap row and the first sample row; smoothed along x only, so it stays put)
    prof = np.median(ndimage.gaussian_filter1d(np.asarray(image, dtype=np.float32), 1.0, axis=1), axis=1)
    lo_k, hi_k = max(a, b - 3), min(ny - 1, b + 3)
    start = lo_k + 1 + int(np.argmin(np.diff(prof[lo_k:hi_k + 1])))
    return Fiducial(rows=start, band=(int(a), int(b)), marks_x=tuple(float(m) for m in marks),
                    sample_max=sample_max, cap_level=cap)


def fiducial_drift(stack: Any, fiducial: Fiducial, *, upsample: int = 20) -> np.ndarray:
    """(dy, dx) drift of every slice relative to slice 0, px, from its fiducial cap (see the module notes)."""
    from skimage.registration import phase_cross_correlation

    nz, ny, _ = stack.shape
    stop = min(ny, fiducial.rows + MARGIN_PX)
    window = stack[:, :stop, :]
    window = np.asarray(window.compute() if is_dask(window) else window, dtype=np.float32)
    caps = ndimage.gaussian_filter(window, (0, 1.0, 1.0))
    # each slice on its own scale, vacuum → 0 and cap → 1 (the median of its pixels brighter than the
    # sample): shading/charging scales a slice's grey values, and must not move its edges
    for z in range(nz):
        lo = float(np.percentile(caps[z], 5))
        bright = caps[z][caps[z] > 0.5 * (fiducial.sample_max + fiducial.cap_level)]
        hi = float(np.median(bright)) if bright.size else fiducial.cap_level
        caps[z] = np.clip((caps[z] - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    # the cap's lower edge meets changing sample content (its blurred profile shifts with what lies
    # below): fill everything under the cap, so only the cap's top edge and the marks remain
    np.maximum.accumulate(caps, axis=1, out=caps)
    gy, gx = np.gradient(caps, axis=(1, 2))
    caps = gx + 1j * gy  # gradient correlation: the filled window's border steps do not count

    def register(ref: np.ndarray) -> np.ndarray:
        out = np.zeros((nz, 2))
        for z in range(nz):
            s, _, _ = phase_cross_correlation(ref, caps[z], upsample_factor=int(upsample), normalization=None)
            out[z] = -np.asarray(s, dtype=np.float64)
        return out

    first = register(caps[0])
    template = np.mean([ndimage.shift(caps[z].real, -first[z], order=3, mode="nearest")
                        + 1j * ndimage.shift(caps[z].imag, -first[z], order=3, mode="nearest")
                        for z in range(nz)], axis=0)
    shifts = register(template)
    return shifts - shifts[0]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in a 1D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))

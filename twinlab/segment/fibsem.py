"""FIB-SEM-specific refinement of a threshold segmentation: shine-through and partial volume.

A grey-value threshold between "pore", a mid-grey phase ("cbd") and a bright phase ("active") makes two
systematic FIB-SEM errors that no global threshold can avoid:

* **Shine-through** (pore-back effect). In the pores of an unfilled sample the SEM sees the material
  behind the cut face: a pore voxel just in front (lower z, z = milling direction) of a solid wall is
  lifted towards the wall's grey value, by an amount that decays with the depth to the wall. Those
  pore voxels reach mid grey and are thresholded as CBD.
  :func:`correct_shine_through` follows the *back-wall* idea of Salzer et al. (local thresholds that
  depend on the structure behind the cut face, found along the milling direction) and Prill et al.
  (the pore grey value is a decaying function of the depth behind the cut face):

  1. for every voxel, the distance ``d`` (slices, along +z) to the next bright-phase voxel (the back
     wall) and that wall's grey value ``g_w``;
  2. the shine-through law is *fitted on the stack itself*: for pore-labelled voxels at each depth
     ``d``, the median of ``(g - g_pore) / (g_w - g_pore)``, fitted by ``s · exp(-d / λ)``
     (least squares on the logarithm) — no instrument parameter is assumed; a fit that does not
     decay, or with ``s > 1`` (brighter than the wall: partial volume at coarse voxels, not shine),
     changes nothing;
  3. a mid-labelled voxel in front of a wall becomes pore when its grey value is closer to the
     shine-through prediction ``g_pore + s · exp(-d / λ) · (g_w - g_pore)`` than to the mid phase's
     level (a local, depth-dependent threshold half-way between the two).

  On simulated stacks (``render_fibsem``) the fit recovers the simulator's law: s = 0.59, λ = 10.7
  slices for the default s = 0.5, 0.3 µm / 32.5 nm = 9.2 slices; s = 0.82, λ = 17.8 for s = 0.8,
  15.4 slices.

* **Partial volume.** The in-plane point-spread function mixes bright and dark phases over about one
  pixel: every bright/dark (active/pore) edge gets a rim of mid-grey voxels that a threshold calls
  CBD. :func:`resolve_partial_volume` returns such a voxel to the bright or dark phase when all hold:

  1. edge context — its in-plane 3 × 3 neighbourhood holds both bright and dark voxels;
  2. minimum CBD thickness — it is not part of a mid-phase body that survives an in-plane opening
     by the 3 × 3 cross (a real CBD region is wider than the PSF; a PV rim is not);
  3. linear mixing — its grey value is closer to the mean of its neighbourhood's extremes (what a
     blurred bright/dark step gives) than to the mid phase's level. This test can only tell a
     mid-phase voxel from a half-bright, half-dark mixture where the two grey levels differ by more
     than the noise: when the mid level (the median of the mid voxels that are not rims) lies within
     ``_MIN_SEPARATION`` noise standard deviations of the bright/dark midpoint — at voxels coarser
     than the CBD (0.745 µm), where the "mid phase" is itself mostly rims — the grey value holds no
     evidence either way and the test is skipped. Kept there, it would keep exactly the bright side of
     every blurred edge (greys between the mid level and the mid/bright threshold) as CBD: on the demo
     stack it moved 0.04 of the volume from active to CBD (active 0.437 vs 0.465 in the coating);

  and gives it the bright phase if its grey is above the bright/dark midpoint, else the dark one (a
  blurred step's volume is preserved by the 50 % level).

  **Resolution.** The same opening says whether the mid phase is resolved at all: counting voxels
  measures a phase only where its bodies are wider than the PSF. When fewer than
  ``_MIN_BODY_SHARE`` (a quarter) of the threshold's mid voxels lie in bodies that survive the
  opening, the mid phase is mostly one-voxel films and rims — below the image's resolution — and
  its fraction after any rule (this one included) is not a measurement: ``PartialVolumeFix.resolved``
  is False and :func:`twinlab.segment.segment_twin` records the phase as unresolved, which the
  design check reports as "not checkable" instead of passing or failing it. Measured share of mid
  voxels in such bodies: 0.08 on the demo stack (0.10 with the simulator's own drift; CBD as solid
  volume, 0.745 µm; the truth's own CBD: 0.07, i.e. 93 % of it one voxel thick), 0.38–0.51 for the
  same CBD at 0.3 µm and 0.60–0.81 for the nanoporous CBD domain at 0.3 µm (generated NCM622 at
  3.0/3.6 g/cm³, every artefact on).

Every level (pore, mid, bright) is the median of the voxels of that label, so nothing is tuned per
stack. Salzer, M., Spettl, A., Stenzel, O., Smått, J.-H., Lindén, M., Manke, I., Schmidt, V. (2012)
"A two-stage approach to the segmentation of FIB-SEM images of highly porous materials", Materials
Characterization 69, 115–126; Salzer, M., Prill, T., Spettl, A., Jeulin, D., Schladitz, K., Schmidt,
V. (2015) "Quantitative comparison of segmentation algorithms for FIB-SEM images of porous media",
J. Microsc. 257, 23–30; Prill, T., Schladitz, K., Jeulin, D., Faessel, M., Wieser, C. (2013)
"Morphological segmentation of FIB-SEM data of highly porous media", J. Microsc. 250, 77–87.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .._results import Result
from ..errors import InputError

_MIN_SAMPLES = 50  # pore voxels per depth for a depth to enter the shine-through fit
_MIN_DEPTHS = 3  # depths needed for a two-parameter fit
_MAX_DEPTH = 32  # slices searched behind a voxel for its back wall (the fit uses depths 1..32)
_MIN_SEPARATION = 2.0  # noise std between the mid level and a 50/50 bright/dark mix for the mixing test to tell them apart
_MIN_BODY_SHARE = 0.25  # share of mid voxels in bodies wider than the PSF for the mid phase to count as resolved


@dataclasses.dataclass(frozen=True)
class ShineThroughFit(Result):
    """The shine-through law fitted on a stack and what it changed.

    Attributes
    ----------
    fitted : bool
        False when the stack shows no decaying pore-back signal (then nothing is changed).
    amplitude : float
        ``s``: fraction of the wall's contrast seen through a pore at zero depth.
    decay_slices : float
        ``λ`` in slices (multiply by the slice thickness for µm).
    depths_used : int
        Depths (slices) that entered the fit.
    relabelled_fraction : float
        Fraction of all voxels moved from the mid phase to pore.
    note : str
    """

    fitted: bool
    amplitude: float
    decay_slices: float
    depths_used: int
    relabelled_fraction: float
    note: str


@dataclasses.dataclass(frozen=True)
class PartialVolumeFix(Result):
    """What :func:`resolve_partial_volume` changed (fractions of all voxels) and whether the grey value
    could tell a mid-phase voxel from a bright/dark mixture (``separation``: |mid level − bright/dark
    midpoint| in noise standard deviations; the mixing test is used when ``mixing_test``), and whether
    the mid phase is resolved at all (``body_share``, ``resolved``; see the module notes)."""

    to_bright_fraction: float
    to_dark_fraction: float
    separation: float = float("nan")
    mixing_test: bool = True
    body_share: float = float("nan")  # share of the threshold's mid voxels in bodies wider than the PSF
    resolved: bool = True  # body_share ≥ _MIN_BODY_SHARE: the mid phase's fraction is a measurement


def correct_shine_through(image: np.ndarray, labels: np.ndarray, *, dark: int, mid: int, bright: int
                          ) -> tuple[np.ndarray, ShineThroughFit]:
    """Relabel shine-through pore voxels that a threshold called mid phase (see the module notes).

    Parameters
    ----------
    image : ndarray (z, y, x)
        The preprocessed grey values the labels came from; z is the milling direction (the material
        behind the cut face of slice z is at z' > z).
    labels : ndarray (z, y, x) uint8
        Threshold labels.
    dark, mid, bright : int
        Label values of the pore, the mid-grey (CBD) and the bright (active, the back wall) phase.

    Returns
    -------
    labels : ndarray uint8, a new array
    fit : ShineThroughFit
    """
    img, lab = _check(image, labels)
    nz = lab.shape[0]
    if not ((lab == dark).any() and (lab == mid).any() and (lab == bright).any()):
        return lab.copy(), ShineThroughFit(False, 0.0, 0.0, 0, 0.0, "a phase is empty: nothing to correct")
    depth, wall_z = _next_wall(lab == bright, min(_MAX_DEPTH, nz - 1))
    g_wall = np.take_along_axis(img, wall_z, axis=0)
    g_dark = float(np.median(img[lab == dark]))
    g_mid = float(np.median(img[lab == mid]))
    contrast = np.maximum(g_wall - g_dark, np.float32(1e-12))
    pore = lab == dark
    depths, ratios = [], []
    for d in range(1, min(_MAX_DEPTH, nz - 1) + 1):
        sel = pore & (depth == d)
        if np.count_nonzero(sel) < _MIN_SAMPLES:
            continue
        r = float(np.median((img[sel] - g_dark) / contrast[sel]))
        if r > 0:
            depths.append(d)
            ratios.append(r)
    if len(depths) < _MIN_DEPTHS:
        return lab.copy(), ShineThroughFit(False, 0.0, 0.0, len(depths), 0.0,
                                           f"too few pore voxels in front of walls ({len(depths)} depths)")
    slope, intercept = np.polyfit(np.asarray(depths, float), np.log(ratios), 1)
    if slope >= 0:
        return lab.copy(), ShineThroughFit(False, 0.0, 0.0, len(depths), 0.0,
                                           "pore grey does not decay with depth: no shine-through seen")
    amp, lam = float(np.exp(intercept)), float(-1.0 / slope)
    if amp > 1.0:  # a pore cannot show more than its wall's contrast: the decay is partial volume, not shine
        return lab.copy(), ShineThroughFit(False, amp, lam, len(depths), 0.0,
                                           f"fitted amplitude {amp:.2f} > 1 is unphysical: no correction")
    predicted = g_dark + np.float32(amp) * np.exp(-depth.astype(np.float32) / np.float32(lam)) * (g_wall - g_dark)
    flip = (lab == mid) & (depth <= _MAX_DEPTH) & (np.abs(img - predicted) < np.abs(img - np.float32(g_mid)))
    out = lab.copy()
    out[flip] = dark
    return out, ShineThroughFit(True, amp, lam, len(depths), float(flip.mean()),
                                f"pore grey = pore + {amp:.2f}·exp(-d/{lam:.1f} slices)·(wall − pore)")


def resolve_partial_volume(image: np.ndarray, labels: np.ndarray, *, dark: int, mid: int, bright: int
                           ) -> tuple[np.ndarray, PartialVolumeFix]:
    """Return partial-volume rims on bright/dark edges to those phases (see the module notes).

    Parameters and returns as :func:`correct_shine_through`; the point-spread function is taken as
    in-plane (y, x), one pixel wide, as for SEM imaging of each cut face.
    """
    img, lab = _check(image, labels)
    is_mid = lab == mid
    if not (is_mid.any() and (lab == bright).any() and (lab == dark).any()):
        return lab.copy(), PartialVolumeFix(0.0, 0.0)
    square = np.ones((1, 3, 3), bool)
    cross = ndi.generate_binary_structure(2, 1)[None]
    body = ndi.binary_opening(is_mid, cross)  # mid-phase bodies wider than the PSF
    body_share = float(np.count_nonzero(body) / np.count_nonzero(is_mid))
    resolved = body_share >= _MIN_BODY_SHARE
    edge = ndi.binary_dilation(lab == bright, square) & ndi.binary_dilation(lab == dark, square)
    cand = is_mid & edge & ~body
    if not cand.any():
        return lab.copy(), PartialVolumeFix(0.0, 0.0, body_share=body_share, resolved=resolved)
    core = is_mid & ~cand
    g_mid = float(np.median(img[core] if core.any() else img[is_mid]))
    g_bright = float(np.median(img[lab == bright]))
    g_dark = float(np.median(img[lab == dark]))
    # noise of a pure phase: the robust spread (1.4826 · MAD) of the bright phase, the least affected by shine
    noise = max(1.4826 * float(np.median(np.abs(img[lab == bright] - np.float32(g_bright)))), 1e-12)
    separation = abs(g_mid - 0.5 * (g_bright + g_dark)) / noise
    mixing_test = separation >= _MIN_SEPARATION
    if mixing_test:
        hi = ndi.maximum_filter(img, footprint=square)
        lo = ndi.minimum_filter(img, footprint=square)
        mixed = cand & (np.abs(img - 0.5 * (hi + lo)) < np.abs(img - np.float32(g_mid)))
    else:
        mixed = cand
    to_bright = mixed & (img >= np.float32(0.5 * (g_bright + g_dark)))
    out = lab.copy()
    out[to_bright] = bright
    out[mixed & ~to_bright] = dark
    n = lab.size
    return out, PartialVolumeFix(float(np.count_nonzero(to_bright) / n),
                                 float(np.count_nonzero(mixed & ~to_bright) / n), float(separation), mixing_test,
                                 body_share, resolved)


def _check(image: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(image, dtype=np.float32)
    lab = np.asarray(labels)
    if img.ndim != 3 or img.shape != lab.shape:
        raise InputError(f"image and labels must be 3D volumes of one shape (z, y, x), got {img.shape} and "
                         f"{lab.shape}")
    return img, lab


def _next_wall(wall: np.ndarray, max_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel: slices to the next ``wall`` voxel at z' > z (``max_depth + 1`` if none within
    ``max_depth``) and that voxel's z index (clipped into the volume)."""
    nz = wall.shape[0]
    big = np.int32(nz + max_depth + 1)
    z = np.arange(nz, dtype=np.int32)[:, None, None]
    key = np.where(wall, z, big)
    after = np.minimum.accumulate(key[::-1], axis=0)[::-1]  # first wall at z' >= z
    nxt = np.empty_like(after)
    nxt[:-1], nxt[-1] = after[1:], big  # first wall at z' > z
    depth = np.minimum(nxt - z, max_depth + 1).astype(np.int32)
    return depth, np.minimum(nxt, nz - 1).astype(np.intp)


__all__ = ["ShineThroughFit", "PartialVolumeFix", "correct_shine_through", "resolve_partial_volume"]

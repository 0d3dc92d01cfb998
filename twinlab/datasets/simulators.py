"""Image simulators: render phase labels as a FIB-SEM stack or an EBAC map, with the truth kept.

Both simulators are forward models of the artefacts listed in SCIENCE.md §2, so every
preprocessing, segmentation and EBAC-analysis step can be scored against a known answer.

Conventions
-----------
- Volumes are (z, y, x); z is the FIB milling (slice) direction, each slice image is (y, x),
  the ion beam enters the cut face from the top of the image (y = 0) and runs along +y.
- The phase geometry is given *on the voxel grid*: ``labels[z, y, x]`` is the phase of one voxel
  of size ``voxel_size_um`` (dz, dy, dx). Anisotropy (e.g. 32.5 nm slices, 37.22 nm pixels) is
  therefore metadata of the labels grid; nothing is resampled here. Length parameters that act
  on images (stripe width, blur, drift) are in pixels; depths (shine-through) are in µm.
- Grey levels and noise amplitudes are fractions of the output full scale (65535 for uint16,
  255 for uint8, 1.0 for float32).
- Every artefact draws from its own random stream spawned from ``seed``: switching one artefact
  on or off leaves the realisation of the others unchanged, so the effect of one filter can be
  scored by rendering twice (e.g. with and without ``curtaining``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

from .._results import Result, to_jsonable
from .._validation import VoxelSize, axis_index, require_integer_labels
from ..errors import InputError
from ..materials import MATERIALS
from ..phases import DEFAULT_PHASES, PhaseTable

__all__ = ["FibsemStack", "EbacMap", "render_fibsem", "render_ebac", "NO_ARTEFACTS",
           "DEFAULT_GREY_LEVELS", "FIB_VOXEL_SIZE", "FIDUCIAL_LEVELS"]

#: Typical FIB-SEM voxel (SCIENCE.md §2): 32.5 nm slice step, 37.22 nm pixel.
FIB_VOXEL_SIZE = VoxelSize(0.0325, 0.03722, 0.03722)

#: Grey level of each default phase, fraction of full scale. All distinct, so an artefact-free
#: rendering segments exactly by thresholds half-way between neighbouring levels.
DEFAULT_GREY_LEVELS: dict[str, float] = {
    "pore": 0.18, "lithium": 0.30, "binder": 0.38, "cbd": 0.46,
    "shell": 0.54, "active": 0.63, "collector": 0.74,
}

#: Keyword arguments that switch every artefact and all noise off: ``render_fibsem(l, **NO_ARTEFACTS)``.
NO_ARTEFACTS: dict[str, float] = {
    "noise_sigma": 0.0, "shot_noise": 0.0, "curtaining": 0.0, "shading": 0.0,
    "drift_px_rms": 0.0, "shine_through": 0.0, "blur_sigma_px": 0.0,
}

_FULL_SCALE = {np.dtype(np.uint16): 65535.0, np.dtype(np.uint8): 255.0, np.dtype(np.float32): 1.0}
_SLAB = 16  # slices per processing slab: bounds temporaries to ~16 float32 slice copies
_STREAMS = ("drift", "curtain", "shading", "shot", "gauss", "fiducial")  # append only: keeps old streams

#: Grey levels of the fiducial cap (fractions of full scale): vacuum above the block, the carbon pad
#: that fills the milled marks, and the platinum cap (Pt, Z = 78: far brighter than any electrode phase).
FIDUCIAL_LEVELS: dict[str, float] = {"vacuum": 0.05, "carbon": 0.30, "platinum": 0.85}


@dataclasses.dataclass(frozen=True)
class FibsemStack(Result):
    """A rendered FIB-SEM stack and its truth. Arrays are (z, y, x) unless stated.

    Attributes
    ----------
    raw : ndarray (dtype as requested)
        The simulated acquisition: content drifted per slice, with curtains, shading and noise.
        With a fiducial (``fiducial_rows > 0``) it has that many extra rows on top (the cap);
        ``raw[:, fiducial_rows:]`` is the labels' field.
    clean : ndarray (same dtype)
        Ideal rendering: ``grey_levels[phase]`` per voxel, no blur, shine-through, artefact or noise,
        in the drift-free geometry of ``labels``. The reference for PSNR/SSIM.
    labels : ndarray
        The input phase labels (read-only view), the geometry of ``clean`` and of ``raw`` once
        the drift is undone.
    shifts : ndarray, shape (nz, 2), float64
        ``(dy, dx)`` in pixels by which each slice's content was displaced (``shifts[0] = (0, 0)``):
        ``raw[z](y, x) ≈ content[z](y - dy, x - dx)``, as ``scipy.ndimage.shift(content[z], shifts[z])``.
        Undo with ``scipy.ndimage.shift(raw[z], -shifts[z])``. A cumulative random walk: the
        slice-to-slice step an aligner finds is ``np.diff(shifts, axis=0)``.
    stripes : ndarray float32 or None
        Additive curtain field in output grey units, in the labels' geometry (it drifts with
        the content; shape of ``raw``); ``None`` when ``curtaining == 0``.
    shading : ndarray float32 or None
        Multiplicative low-frequency shading/charging field (mean ≈ 1) in the image frame
        (shape of ``raw``); ``None`` when ``shading == 0``.
    grey_levels : dict
        Phase name → grey value in output units, for every phase of the table.
    voxel_size : VoxelSize
        (dz, dy, dx) in µm of the labels grid (and of ``raw``).
    clipped_fraction : float
        Fraction of ``raw`` voxels clipped at 0 or full scale (0 for float32 output).
    params : dict
        Every parameter used (JSON-able), for provenance.
    fiducial_rows : int
        Rows of the fiducial cap above the labels' field in ``raw`` (0: none rendered).
    """

    raw: np.ndarray
    clean: np.ndarray
    labels: np.ndarray
    shifts: np.ndarray
    stripes: np.ndarray | None
    shading: np.ndarray | None
    grey_levels: dict[str, float]
    voxel_size: VoxelSize
    clipped_fraction: float
    params: dict[str, Any]
    fiducial_rows: int = 0

    def undo_drift(self, image: np.ndarray | None = None) -> np.ndarray:
        """Shift each slice of ``image`` (default ``raw``) back by ``-shifts`` → float32, labels' geometry.

        The exact inverse of the applied Fourier shift away from the borders (within
        ``max |shifts|`` + 2 px of an edge the content came from reflect padding).
        """
        img = np.asarray(self.raw if image is None else image, np.float32)
        if not self.shifts.any():
            return img.copy()
        return _fourier_shift(img, -self.shifts, int(math.ceil(np.abs(self.shifts).max())) + 4)

    def to_dict(self) -> dict[str, Any]:
        """JSON summary without the large arrays (shapes and dtypes instead)."""
        return {"shape": list(self.raw.shape), "dtype": str(self.raw.dtype),
                "shifts": self.shifts.tolist(), "grey_levels": dict(self.grey_levels),
                "voxel_size": self.voxel_size.to_dict(), "clipped_fraction": self.clipped_fraction,
                "fiducial_rows": self.fiducial_rows, "params": dict(self.params)}


@dataclasses.dataclass(frozen=True)
class EbacMap(Result):
    """A simulated EBAC map (2D, (rows, cols)) and its truth.

    Attributes
    ----------
    image : ndarray
        Noisy map, float32 fraction of full scale (or uint16 when requested).
    clean : ndarray
        The same map without noise.
    conductive_truth : ndarray bool
        Pixels electrically connected to the current collector (through the 3D network when a
        volume was given). ``clean > threshold`` equals it exactly.
    threshold : float
        A grey value (in ``image`` units) half-way between the darkest connected and the brightest
        non-connected pixel of ``clean``.
    profile_truth : ndarray float64
        Mean of ``clean`` per line parallel to the collector, ordered by depth from the collector.
    connected_fraction_profile : ndarray float64
        Fraction of connected pixels per line, same order.
    depth_um : ndarray float64
        Depth of each profile line from the collector side (pixel centres), µm.
    labels : ndarray
        The 2D phase section that was rendered.
    thickness_axis : int
        Axis of the map (0 rows, 1 cols) along which depth from the collector runs.
    pixel_size_um : tuple of float
        (row, col) pixel size, µm.
    params : dict
        Every parameter used (JSON-able).
    """

    image: np.ndarray
    clean: np.ndarray
    conductive_truth: np.ndarray
    threshold: float
    profile_truth: np.ndarray
    connected_fraction_profile: np.ndarray
    depth_um: np.ndarray
    labels: np.ndarray
    thickness_axis: int
    pixel_size_um: tuple[float, float]
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON summary without the 2D arrays (profiles are kept)."""
        return {"shape": list(self.image.shape), "dtype": str(self.image.dtype), "threshold": self.threshold,
                "profile_truth": self.profile_truth.tolist(), "depth_um": self.depth_um.tolist(),
                "connected_fraction_profile": self.connected_fraction_profile.tolist(),
                "thickness_axis": self.thickness_axis, "pixel_size_um": list(self.pixel_size_um),
                "params": dict(self.params)}


def render_fibsem(
    labels: np.ndarray,
    *,
    phases: PhaseTable = DEFAULT_PHASES,
    voxel_size_um: VoxelSize | Any = FIB_VOXEL_SIZE,
    grey_levels: Mapping[str, float] | None = None,
    noise_sigma: float = 0.02,
    shot_noise: float = 0.02,
    curtaining: float = 0.02,
    curtain_period_px: float = 12.0,
    curtain_width_px: float = 2.5,
    curtain_shadowing: float = 0.5,
    curtain_coherence_slices: float = 30.0,
    shading: float = 0.06,
    drift_px_rms: float = 0.3,
    shine_through: float = 0.5,
    shine_depth_um: float = 0.3,
    blur_sigma_px: float = 0.7,
    pore_phase: str = "pore",
    fiducial_px: int = 0,
    dtype: Any = np.uint16,
    seed: int = 0,
) -> FibsemStack:
    """Render a (z, y, x) phase-label volume as a FIB-SEM stack with known artefacts.

    Forward model, per slice z (image (y, x)), in this order:

    1. phase grey levels ``grey_levels[name]``; with ``fiducial_px > 0`` a fiducial cap of that
       many rows is put above the field (see below);
    2. shine-through: in pore voxels, the first solid voxel behind the cut face (at z' > z) shows
       through, ``+= shine_through * (g_solid - g_pore) * exp(-(z' - z) * dz / shine_depth_um)``
       (an unfilled sample; pores look partly solid);
    3. Gaussian PSF blur, in-plane, ``blur_sigma_px``;
    4. curtaining: additive stripes constant along y (the ion-beam direction), varying along x:
       Gaussian stripes (FWHM ``curtain_width_px``, one per ``curtain_period_px`` on average) of
       random signed peak amplitude, N(0, ``curtaining``) and an AR(1) process along z with
       correlation length ``curtain_coherence_slices`` (overlapping stripes add); the fraction
       ``curtain_shadowing`` of each stripe's amplitude appears only below (larger y than) the
       brightest feature of its column (scaled by that feature's brightness rank);
    5. drift: the slice content (with its curtains) is displaced by ``shifts[z]``, a random walk of
       N(0, ``drift_px_rms``) steps per slice and axis (Fourier shift on a reflect-padded slice);
    6. shading/charging: multiplication by ``1 + shading * f`` with f a smooth random field
       (cosine modes of at most one period per axis, max |f| = 1), fixed to the image frame;
    7. shot noise, Poisson with relative std ``shot_noise`` at full scale
       (``shot_noise * sqrt(I)`` at intensity I), then Gaussian read noise of std ``noise_sigma``;
    8. scaling to ``dtype`` and clipping.

    Parameters
    ----------
    labels : ndarray of int, (z, y, x)
        Phase labels whose values are in ``phases``. Dask arrays are computed.
    phases : PhaseTable
        Value ↔ name table.
    voxel_size_um : VoxelSize or "dz,dy,dx" or sequence
        Voxel size of the labels grid in µm (default 32.5 nm slices, 37.22 nm pixels).
    grey_levels : mapping name → float in [0, 1], optional
        Grey level of each phase as a fraction of full scale; missing names use
        ``DEFAULT_GREY_LEVELS``. Every phase present in ``labels`` needs one.
    noise_sigma, shot_noise : float ≥ 0
        Gaussian std and Poisson relative std at full scale, fractions of full scale.
    curtaining : float ≥ 0
        Standard deviation of a stripe's peak amplitude, fraction of full scale.
    curtain_period_px, curtain_width_px, curtain_coherence_slices : float > 0
        Mean stripe spacing and stripe FWHM (pixels, along x); slices over which a stripe's
        amplitude decorrelates (1/e).
    curtain_shadowing : float in [0, 1]
        Share of stripe amplitude that needs bright material above (0: stripes run the full height).
    shading : float in [0, 1)
        Peak relative amplitude of the multiplicative shading field.
    drift_px_rms : float ≥ 0
        Rms per-slice drift step, pixels (per axis).
    shine_through : float in [0, 1]
        Contrast fraction of the material just behind a pore; ``shine_depth_um`` > 0 is its
        attenuation length in µm along z.
    blur_sigma_px : float ≥ 0
        In-plane Gaussian PSF sigma, pixels.
    pore_phase : str
        Name of the phase that shows shine-through (needed only when ``shine_through > 0``).
    fiducial_px : int
        0 (default): none. ≥ 16: rows of a fiducial cap rendered above the labels' field, as in
        automated serial sectioning (Zeiss Atlas 3D, FEI/Thermo Auto Slice & View): the block
        is capped with a deposited Pt pad, marks are milled into it along the milling direction
        and covered with a carbon pad, so every cut face shows, from the top: vacuum (a quarter
        of the rows), the carbon pad (a sixth), then the Pt cap with carbon-filled trenches
        (4 px wide, 19–29 px apart, 60 % of the Pt depth) at the same x in every slice. Grey
        levels :data:`FIDUCIAL_LEVELS`, a fixed Pt grain texture (2 % std). The cap is part of
        the sample: it drifts with the content and gets the blur, curtains (under the bright
        cap every column carries its stripes), shading and noise.
    dtype : uint16, uint8 or float32
        Output type; float32 is in fractions of full scale and never clipped.
    seed : int
        Seed of ``numpy.random.default_rng`` streams; the same seed gives the same stack.

    Returns
    -------
    FibsemStack
        ``raw``, ``clean``, ``labels``, ``shifts`` and the artefact fields; see its docstring.

    Notes
    -----
    Slices are processed in slabs of 16, so temporaries stay small; the result holds ``raw`` and
    ``clean`` (2 × dtype size per voxel) plus, when on, the float32 ``stripes`` and ``shading``
    fields (4 bytes each per voxel). A 256³ stack renders in a few seconds on 2 cores.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((4, 8, 8), np.uint8); lab[:, 2:6, 2:6] = 1
    >>> s = render_fibsem(lab, **NO_ARTEFACTS)
    >>> bool((s.raw == s.clean).all()), int(s.raw[0, 3, 3]) == s.grey_levels["active"]
    (True, True)
    """
    params = {k: v for k, v in locals().items() if k not in ("labels", "phases", "grey_levels", "voxel_size_um")}
    lab = _check_labels(labels, ndim=3)
    out_dtype = np.dtype(dtype)
    if out_dtype not in _FULL_SCALE:
        raise InputError(f"dtype {out_dtype} is not supported; use numpy.uint16, numpy.uint8 or numpy.float32")
    full = _FULL_SCALE[out_dtype]
    vox = VoxelSize.parse(voxel_size_um)
    for name in ("noise_sigma", "shot_noise", "curtaining", "drift_px_rms", "blur_sigma_px"):
        _nonneg(params[name], name)
    for name in ("curtain_period_px", "curtain_width_px", "curtain_coherence_slices", "shine_depth_um"):
        _positive(params[name], name)
    _in_range(curtain_shadowing, "curtain_shadowing", 0.0, 1.0)
    _in_range(shine_through, "shine_through", 0.0, 1.0)
    if isinstance(fiducial_px, bool) or not isinstance(fiducial_px, (int, np.integer)) \
            or not (fiducial_px == 0 or fiducial_px >= 16):
        raise InputError(f"fiducial_px must be 0 (no fiducial) or an integer ≥ 16 (rows of the cap), "
                         f"got {fiducial_px!r}")
    if not _nonneg(shading, "shading") < 1:
        raise InputError(f"shading must lie in [0, 1) so the shading field stays positive, got {shading!r}")
    levels, lut, known = _grey_levels(phases, grey_levels)
    _check_values(lab, known, phases)
    if shine_through > 0 and pore_phase not in phases:
        raise InputError(f"shine_through needs the pore phase {pore_phase!r}, which is not in the phase table "
                         f"{phases.names}; pass pore_phase=... or shine_through=0")

    nz, ny, nx = lab.shape
    h = int(fiducial_px)
    rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(_STREAMS)))))
    steps = rngs["drift"].normal(0.0, 1.0, (nz, 2)) * drift_px_rms
    steps[0] = 0.0
    shifts = np.cumsum(steps, axis=0)  # random walk; slice 0 is the reference
    amp = _curtain_amplitudes(rngs["curtain"], nz, nx, curtaining, curtain_period_px, curtain_width_px,
                              curtain_coherence_slices) if curtaining > 0 else None
    shade = _shading_field(rngs["shading"], (nz, h + ny, nx), shading) if shading > 0 else None
    g_lo, g_hi = float(lut[known].min()), float(lut[known].max())
    rank = np.rint(255 * np.clip((lut - g_lo) / max(g_hi - g_lo, 1e-12), 0, 1)).astype(np.uint8)  # 0 darkest
    cap = _fiducial_cap(rngs["fiducial"], h, nx) if h else None
    cap_rank = np.rint(255 * np.clip((cap - g_lo) / max(g_hi - g_lo, 1e-12), 0, 1)).astype(np.uint8) if h else None
    pad = int(math.ceil(np.abs(shifts).max())) + 4 if drift_px_rms > 0 else 0

    clean_lut = _quantise(lut, full, out_dtype)[0]
    raw = np.empty((nz, h + ny, nx), out_dtype)
    clean = np.empty(lab.shape, out_dtype)
    stripes = np.empty(raw.shape, np.float32) if amp is not None else None
    pore_val = phases.value(pore_phase) if shine_through > 0 else -1
    g_pore = float(lut[pore_val]) if shine_through > 0 else 0.0
    next_grey = np.zeros((ny, nx), np.float32)  # grey of the first solid voxel behind (z' > z)
    next_dist = np.full((ny, nx), np.inf, np.float32)  # its distance in slices
    clipped = 0
    # back to front, so the shine-through scan carries its state from slab to slab
    for stop in range(nz, 0, -_SLAB):
        sl = slice(max(stop - _SLAB, 0), stop)
        ideal = lut[lab[sl]]
        clean[sl] = clean_lut[lab[sl]]
        img = ideal.copy()
        if shine_through > 0:
            is_pore = lab[sl] == pore_val
            dist, behind, next_grey, next_dist = _next_solid(lab[sl], is_pore, lut, next_grey, next_dist)
            gain = shine_through * np.exp(-dist * np.float32(vox.dz / shine_depth_um))
            img = np.where(is_pore, g_pore + gain * (behind - g_pore), img)
        ranks = rank[lab[sl]]
        if h:
            img = np.concatenate([np.broadcast_to(cap, (img.shape[0], h, nx)), img], axis=1)
            ranks = np.concatenate([np.broadcast_to(cap_rank, (img.shape[0], h, nx)), ranks], axis=1)
        if blur_sigma_px > 0:
            img = ndi.gaussian_filter(img, (0, blur_sigma_px, blur_sigma_px), mode="nearest")
        if amp is not None:
            above = np.maximum.accumulate(ranks, axis=1)  # brightest material above, per column
            st = amp[sl, None, :] * ((1.0 - curtain_shadowing) + (curtain_shadowing / 255) * above)
            stripes[sl] = st * full
            img += st
        if pad:
            img = _fourier_shift(img, shifts[sl], pad)
        if shade is not None:
            img *= shade[sl]
        if shot_noise > 0:
            img = _shot_noise(rngs["shot"], img, 1.0 / shot_noise**2)
        if noise_sigma > 0:
            img += noise_sigma * rngs["gauss"].standard_normal(img.shape, dtype=np.float32)
        raw[sl], n_clip = _quantise(img, full, out_dtype)
        clipped += n_clip

    params.update(phases=phases.to_list(), voxel_size_um=vox.to_dict(), grey_levels=dict(levels), dtype=str(out_dtype))
    view = lab.view()
    view.flags.writeable = False
    out_levels = {p.name: float(clean_lut[p.value]) for p in phases if p.name in levels}
    return FibsemStack(raw=raw, clean=clean, labels=view, shifts=shifts, stripes=stripes,
                       shading=shade, grey_levels=out_levels, voxel_size=vox,
                       clipped_fraction=clipped / raw.size, params=to_jsonable(params), fiducial_rows=h)


def render_ebac(
    labels: np.ndarray,
    conductive_mask: np.ndarray | None = None,
    *,
    phases: PhaseTable = DEFAULT_PHASES,
    axis: int | str = "z",
    index: int | None = None,
    thickness_axis: int | str = "y",
    collector_side: str = "low",
    pixel_size_um: float | tuple[float, float] = 0.05,
    isolated_level: float = 0.25,
    pore_level: float = 0.05,
    decay_length_um: float | None = None,
    noise_sigma: float = 0.03,
    dtype: Any = np.float32,
    seed: int = 0,
) -> EbacMap:
    """Render an EBAC (electron-beam absorbed current) map of one cross-section.

    The absorbed current reaching the collector is what an EBAC map shows (SCIENCE.md §2):

    - solids electrically connected to the collector (through the 3D network when ``labels`` is a
      volume, so a particle that looks isolated in the section may be bright) are bright, with
      intensity ``1 - η(Z̄)``: the backscatter coefficient η (Reuter's fit, mass-mean atomic
      number of the phase's material) makes Cu darker than Li;
    - other solids (isolated conductors, insulating binder or shells) are dim, not black:
      ``isolated_level * (1 - η)`` (capacitive / leakage signal);
    - pores (the phase named ``pore``) are ``pore_level``;
    - optional resistive decay: connected intensity × ``exp(-depth / decay_length_um)``, depth the
      straight distance from the collector side along ``thickness_axis`` (not the geodesic path);
    - Gaussian noise of std ``noise_sigma`` (fraction of full scale).

    Parameters
    ----------
    labels : ndarray of int, (z, y, x) or (rows, cols)
        Phase labels. A volume is cut at ``index`` along ``axis``; a 2D array is the section.
    conductive_mask : ndarray of bool, same shape as ``labels``, optional
        Electronically conducting voxels. Default: phases whose material conducts at ≥ 1e-6 S/m
        (active, CBD, collector, Li; not binder, Li2CO3 shell, pore). Must not mark pore voxels.
        Voxels of the ``collector`` phase always conduct (added when the mask leaves them out).
    phases : PhaseTable
        Value ↔ name/material table.
    axis, index : axis name/int, int
        For a volume: the section is ``labels.take(index, axis)`` (index default: the middle).
    thickness_axis : "z", "y", "x" or int
        Through-plane axis of the volume (for 2D input: "y"/0 rows, "x"/1 cols); must not be
        ``axis``. ``collector_side`` ("low" or "high") is where the collector is along it.
    pixel_size_um : float or (row, col)
        Pixel size of the map, µm (used for ``depth_um`` and the decay).
    isolated_level, pore_level : float in [0, 1)
        Relative brightness of non-connected solids and grey value of pores.
    decay_length_um : float > 0 or None
        Resistive decay length; ``None`` for no decay.
    noise_sigma : float ≥ 0
        Gaussian noise std, fraction of full scale.
    dtype : float32 or uint16
        Output type of ``image`` and ``clean`` (uint16: full scale 65535).
    seed : int
        Seed of the noise.

    Returns
    -------
    EbacMap

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((10, 10), np.uint8); lab[0] = 3; lab[1:4, 2:4] = 1; lab[6:9, 6:8] = 1
    >>> m = render_ebac(lab, noise_sigma=0.0)  # collector row 0, one particle touching it, one floating
    >>> bool(m.conductive_truth[2, 2]), bool(m.conductive_truth[7, 6])
    (True, False)
    >>> bool(((m.clean > m.threshold) == m.conductive_truth).all())
    True
    """
    params = {k: v for k, v in locals().items() if k not in ("labels", "conductive_mask", "phases")}
    lab = _check_labels(labels, ndim=None)
    out_dtype = np.dtype(dtype)
    if out_dtype not in (np.dtype(np.float32), np.dtype(np.uint16)):
        raise InputError(f"dtype {out_dtype} is not supported for EBAC maps; use numpy.float32 or numpy.uint16")
    _nonneg(noise_sigma, "noise_sigma")
    _in_range(isolated_level, "isolated_level", 0.0, 0.999)
    _in_range(pore_level, "pore_level", 0.0, 0.999)
    if decay_length_um is not None:
        _positive(decay_length_um, "decay_length_um")
    if collector_side not in ("low", "high"):
        raise InputError(f"collector_side must be 'low' or 'high', got {collector_side!r}")
    a = idx = None
    if lab.ndim == 2:
        t_axis = {"y": 0, "x": 1, 0: 0, 1: 1}.get(thickness_axis)
        if t_axis is None:
            raise InputError(f"thickness_axis {thickness_axis!r} of a 2D map must be 'y' (rows) or 'x' (cols)")
    else:
        t_axis, a = axis_index(thickness_axis), axis_index(axis)
        if a == t_axis:
            raise InputError(f"the section axis {axis!r} is the thickness axis; cut across it (e.g. axis='z')")
        idx = lab.shape[a] // 2 if index is None else int(index)
        if not -lab.shape[a] <= idx < lab.shape[a]:
            raise InputError(f"index {idx} is outside the volume's {lab.shape[a]} positions along axis {a}")
    known = np.zeros(256, bool)
    known[[p.value for p in phases]] = True
    _check_values(lab, known, phases)
    if conductive_mask is None:
        cond_lut = np.zeros(256, bool)
        for p in phases:
            mat = MATERIALS.get(p.material or "")
            cond_lut[p.value] = bool(mat and mat.conductivity_s_m and mat.conductivity_s_m >= 1e-6)
        cond = cond_lut[lab]
    else:
        cond = np.asarray(conductive_mask)
        if cond.shape != lab.shape or cond.dtype != bool:
            raise InputError(f"conductive_mask must be a bool array of the labels' shape {lab.shape}, got "
                             f"{cond.dtype} {cond.shape}; build it e.g. as numpy.isin(labels, [1, 2, 3])")
    pore_val = phases.value("pore") if "pore" in phases else -1
    if pore_val >= 0 and (cond & (lab == pore_val)).any():
        raise InputError("conductive_mask marks pore voxels as conducting; pores carry no beam current — "
                         "mask them out (conductive_mask & (labels != pore))")
    coll = phases.value("collector") if "collector" in phases else -1
    connected = _connected_to_collector(cond, lab == coll, t_axis, collector_side)
    if a is not None:
        lab, connected = lab.take(idx, axis=a), connected.take(idx, axis=a)
        t_axis = t_axis - (t_axis > a)
    py, px = (pixel_size_um, pixel_size_um) if np.isscalar(pixel_size_um) else tuple(pixel_size_um)
    pix = (_positive(py, "pixel_size_um"), _positive(px, "pixel_size_um"))

    absorbed = np.ones(256, np.float32)
    for p in phases:
        absorbed[p.value] = 1.0 - _backscatter(p.material)
    n = lab.shape[t_axis]
    depth_um = (np.arange(n) + 0.5) * pix[t_axis]
    depth = depth_um if collector_side == "low" else depth_um[::-1]
    shape = [1, 1]
    shape[t_axis] = n
    decay = np.ones(n) if decay_length_um is None else np.exp(-depth / decay_length_um)
    bright = absorbed[lab] * decay.reshape(shape).astype(np.float32)
    dim = isolated_level * absorbed[lab]
    img = np.where(connected, bright, dim).astype(np.float32)
    if pore_val >= 0:
        img[lab == pore_val] = pore_level
    lo = float(img[~connected].max()) if (~connected).any() else pore_level
    hi = float(img[connected].min()) if connected.any() else 1.0
    if hi <= lo:
        raise InputError(f"connected regions would be as dark as non-connected ones (darkest connected {hi:.3f}, "
                         f"brightest other {lo:.3f}); raise decay_length_um or lower isolated_level/pore_level")
    noisy = img + noise_sigma * np.random.default_rng(seed).standard_normal(img.shape, dtype=np.float32)
    full = 65535.0 if out_dtype == np.uint16 else 1.0
    clean = _quantise(img, full, out_dtype)[0] if full > 1 else img
    image = _quantise(noisy, full, out_dtype)[0] if full > 1 else noisy
    order = slice(None) if collector_side == "low" else slice(None, None, -1)
    other = 1 - t_axis
    params.update(phases=phases.to_list(), axis=a, index=idx, map_thickness_axis=t_axis, pixel_size_um=list(pix),
                  dtype=str(out_dtype), conductive_mask_given=conductive_mask is not None)
    return EbacMap(image=image, clean=clean, conductive_truth=connected,
                   threshold=0.5 * (lo + hi) * full,
                   profile_truth=img.mean(axis=other)[order].astype(np.float64) * full,
                   connected_fraction_profile=connected.mean(axis=other)[order].astype(np.float64),
                   depth_um=depth_um, labels=lab, thickness_axis=t_axis, pixel_size_um=pix,
                   params=to_jsonable(params))


# -- helpers ---------------------------------------------------------------------------------------

def _check_labels(labels: Any, ndim: int | None) -> np.ndarray:
    lab = np.asarray(labels)
    if ndim is not None and lab.ndim != ndim:
        hint = "; stack slices into a (z, y, x) volume, or render one slice as labels[None]" if lab.ndim == 2 else ""
        raise InputError(f"labels must be {ndim}D (z, y, x), got shape {lab.shape}{hint}")
    if ndim is None and lab.ndim not in (2, 3):
        raise InputError(f"labels must be a 2D section or a 3D (z, y, x) volume, got shape {lab.shape}")
    require_integer_labels(lab)
    if lab.dtype == bool:
        lab = lab.view(np.uint8)
    if lab.size == 0:
        raise InputError(f"labels are empty (shape {lab.shape}); give at least one voxel")
    return lab


def _check_values(lab: np.ndarray, known: np.ndarray, phases: PhaseTable) -> None:
    lo, hi = int(lab.min()), int(lab.max())
    if lo < 0 or hi > 255:
        raise InputError(f"labels hold values {lo}..{hi}; phase values are 0–255 "
                         f"(see the phase table {phases.names})")
    bad = ~known[lab]
    if bad.any():
        values = sorted(int(v) for v in np.unique(lab[bad]))
        raise InputError(f"label values {values} have no phase/grey level; known phases "
                         f"{[(p.value, p.name) for p in phases]}. Add them to `phases` (and `grey_levels`)")


def _grey_levels(phases: PhaseTable, given: Mapping[str, float] | None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Resolved levels per phase name, and the value → level LUT with its 'has a level' mask."""
    given = dict(given or {})
    unknown = [n for n in given if n not in phases]
    if unknown:
        raise InputError(f"grey_levels names {unknown} are not phases of the table {phases.names}")
    levels = {}
    for p in phases:
        if p.name in given:
            levels[p.name] = _in_range(given[p.name], f"grey level of {p.name!r}", 0.0, 1.0)
        elif p.name in DEFAULT_GREY_LEVELS:
            levels[p.name] = DEFAULT_GREY_LEVELS[p.name]
    lut, known = np.zeros(256, np.float32), np.zeros(256, bool)
    for p in phases:
        if p.name in levels:
            lut[p.value], known[p.value] = levels[p.name], True
    return levels, lut, known


def _connected_to_collector(cond: np.ndarray, collector: np.ndarray, t_axis: int, side: str) -> np.ndarray:
    """Face-connected components of ``cond | collector`` holding a collector voxel (or, with no
    collector voxels, touching the collector-side face along ``t_axis``)."""
    cond = cond | collector  # the foil always conducts, even when a mask leaves it out
    seeds = collector.copy()
    if not seeds.any():
        face = [slice(None)] * cond.ndim
        face[t_axis] = 0 if side == "low" else -1
        seeds[tuple(face)] = cond[tuple(face)]
    comp, _ = ndi.label(cond)
    hit = np.unique(comp[seeds])
    return np.isin(comp, hit[hit > 0])


def _nonneg(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
            or value < 0:
        raise InputError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return float(value)


def _positive(value: Any, name: str) -> float:
    if not _nonneg(value, name) > 0:
        raise InputError(f"{name} must be > 0, got {value!r}")
    return float(value)


def _in_range(value: Any, name: str, lo: float, hi: float) -> float:
    if not lo <= _nonneg(value, name) <= hi:
        raise InputError(f"{name} must lie in [{lo}, {hi}], got {value!r}")
    return float(value)


def _quantise(img: np.ndarray, full: float, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """Scale fractions of full scale to ``dtype``; return the array and the number of clipped values."""
    if dtype.kind == "f":
        return np.asarray(img, dtype), 0
    scaled = np.multiply(img, np.float32(full), dtype=np.float32)
    np.rint(scaled, out=scaled)
    n_clip = int(np.count_nonzero(scaled < 0)) + int(np.count_nonzero(scaled > full))
    np.clip(scaled, 0, full, out=scaled)
    return scaled.astype(dtype), n_clip


def _next_solid(lab: np.ndarray, is_pore: np.ndarray, lut: np.ndarray, carry_grey: np.ndarray,
                carry_dist: np.ndarray) -> tuple[np.ndarray, ...]:
    """For each voxel of a slab, distance (slices) to and grey of the first solid voxel at z' > z.

    ``carry_*`` describe, for the slab's last slice, the first solid behind the slab (distance
    counted from that slice; inf if none). Returns (dist, grey_behind, carry_grey, carry_dist),
    the last two for the slab in front of this one.
    """
    m = lab.shape[0]
    big = np.int32(1 << 30)
    k = np.arange(m, dtype=np.int32)[:, None, None]
    # slice index and label packed in one key, so one reverse min-scan finds both
    key = np.where(is_pore, big, k * 256 + lab)
    after = np.minimum.accumulate(key[::-1], axis=0)[::-1]  # first solid at j >= k
    nxt = np.empty_like(after)
    nxt[:-1], nxt[-1] = after[1:], big  # first solid at j > k
    inside = nxt < big
    dist = np.where(inside, (nxt >> 8) - k, carry_dist + (m - 1 - k).astype(np.float32)).astype(np.float32)
    behind = np.where(inside, lut[nxt & 255], carry_grey)
    first = after[0]
    has = first < big
    new_grey = np.where(has, lut[first & 255], carry_grey)
    new_dist = np.where(has, (first >> 8) + 1, carry_dist + m).astype(np.float32)
    return dist, behind, new_grey, new_dist


def _shot_noise(rng: np.random.Generator, img: np.ndarray, n_full: float) -> np.ndarray:
    """Poisson counts with ``n_full`` electrons at full scale, back in fractions of full scale.

    Exact Poisson draws below 30 electrons; above, the Gaussian limit (mean = variance = count,
    skewness < 0.2), which is ~10x faster than numpy's large-mean Poisson sampler.
    """
    lam = np.clip(img, 0, None) * np.float32(n_full)
    counts = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, dtype=np.float32)
    small = lam < 30
    if small.any():
        counts[small] = rng.poisson(lam[small])
    return (counts / np.float32(n_full)).astype(np.float32)


def _curtain_amplitudes(rng: np.random.Generator, nz: int, nx: int, std: float, period: float,
                        width: float, coherence: float) -> np.ndarray:
    """(nz, nx) stripe amplitude: Gaussian stripes whose N(0, std²) peaks follow an AR(1) along z."""
    n = max(1, int(round(nx / period)))
    centres = rng.uniform(0, nx, n)
    sigma = width / 2.3548  # FWHM → sigma
    profiles = np.exp(-0.5 * ((np.arange(nx)[None, :] - centres[:, None]) / sigma) ** 2)
    rho = math.exp(-1.0 / coherence)
    innov = rng.standard_normal((nz, n))
    amps = np.empty((nz, n))
    amps[0] = innov[0]
    for z in range(1, nz):  # AR(1): stripes persist over ~coherence slices
        amps[z] = rho * amps[z - 1] + math.sqrt(1 - rho**2) * innov[z]
    return (std * (amps @ profiles)).astype(np.float32)


def _fiducial_cap(rng: np.random.Generator, h: int, nx: int) -> np.ndarray:
    """(h, nx) grey image of the fiducial cap (see ``render_fibsem``'s ``fiducial_px``), fractions of full scale."""
    lv = FIDUCIAL_LEVELS
    cap = np.full((h, nx), lv["vacuum"], np.float32)
    top_c = h // 4
    top_pt = top_c + max(2, h // 6)
    cap[top_c:top_pt] = lv["carbon"]
    grain = ndi.gaussian_filter(rng.standard_normal((h - top_pt, nx)).astype(np.float32), 1.0)
    cap[top_pt:] = lv["platinum"] * (1.0 + 0.02 * grain / max(float(grain.std()), 1e-12))
    depth = top_pt + int(round(0.6 * (h - top_pt)))
    # carbon-filled trenches, 24 px apart on average; unequal gaps (a barcode) so the pattern has no
    # period an aligner could slip by
    x0, gaps = 6, (19, 29, 23, 26, 21, 27)
    for k in range(nx):
        if x0 > nx - 4:
            break
        cap[top_pt:depth, x0:x0 + 4] = lv["carbon"]
        x0 += gaps[k % len(gaps)]
    return cap


def _shading_field(rng: np.random.Generator, shape: tuple[int, int, int], amplitude: float) -> np.ndarray:
    """1 + amplitude * f, f = random sum of cos(pi*i*u) products (i ≤ 2 per axis), max |f| = 1."""
    coef = rng.standard_normal((3, 3, 3)) / (1.0 + np.add.outer(np.add.outer(np.arange(3), np.arange(3)),
                                                                  np.arange(3)))
    coef[0, 0, 0] = 0.0
    basis = [np.cos(np.pi * np.arange(3)[None, :] * (np.arange(n)[:, None] + 0.5) / n).astype(np.float32)
             for n in shape]
    f = np.einsum("ijk,zi,yj,xk->zyx", coef.astype(np.float32), *basis, optimize=True)
    peak = float(np.abs(f).max())
    return (1.0 + (amplitude / peak if peak > 0 else 0.0) * f).astype(np.float32)


def _fourier_shift(img: np.ndarray, shifts: np.ndarray, pad: int) -> np.ndarray:
    """Shift each (y, x) slice by ``shifts[k]`` (sub-pixel, sinc) after reflect padding, then crop."""
    _, ny0, nx0 = img.shape
    # pad to FFT-friendly sizes: a prime-sized axis would make the transform several times slower
    hy = sfft.next_fast_len(ny0 + 2 * pad, real=True) - ny0 - pad
    hx = sfft.next_fast_len(nx0 + 2 * pad, real=True) - nx0 - pad
    padded = np.pad(img, ((0, 0), (pad, hy), (pad, hx)), mode="reflect")
    ny, nx = padded.shape[1:]
    spec = sfft.rfft2(padded, axes=(1, 2), workers=-1)
    ramp_y = np.exp(-2j * np.pi * sfft.fftfreq(ny)[None, :] * shifts[:, 0, None]).astype(spec.dtype)
    ramp_x = np.exp(-2j * np.pi * sfft.rfftfreq(nx)[None, :] * shifts[:, 1, None]).astype(spec.dtype)
    spec *= ramp_y[:, :, None]
    spec *= ramp_x[:, None, :]
    out = sfft.irfft2(spec, s=(ny, nx), axes=(1, 2), workers=-1)
    return out[:, pad:pad + ny0, pad:pad + nx0].astype(np.float32)


# Mass-mean atomic number Z̄ of the library's materials (from their formulae), for backscatter.
_MEAN_Z = {"Li": 3.0, "Cu": 29.0, "Al": 13.0, "NCM622": 19.1, "NCM811": 19.5, "CBD": 6.3, "carbon_black": 6.0,
           "PVDF": 7.6, "PVdF-HFP": 7.6, "PTFE": 8.3, "Li2CO3": 6.7, "LLZO": 39.0}


def _backscatter(material: str | None) -> float:
    """Backscatter coefficient η(Z̄) by Reuter's fit (Z ≤ ~80); 0.1 for unknown materials."""
    z = _MEAN_Z.get(material or "")
    if z is None:
        return 0.1
    return float(-0.0254 + 0.016 * z - 1.86e-4 * z**2 + 8.3e-7 * z**3)

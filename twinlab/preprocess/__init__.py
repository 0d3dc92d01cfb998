"""Reconstruction I: preprocessing of FIB-SEM stacks, chunked, seam-free and out-of-core.

Every function takes a (z, y, x) numpy or dask array (z: the milling direction) and returns
the same kind (dask stays lazy); computation is float32. Chunked results equal whole-array
results: each step's halo comes from its own parameters, and global quantities (drift, noise
level, background reference) are estimated once for the whole volume, never per chunk.

- :func:`align_slices` — drift correction (on the fiducial cap when the frame has one, else slice to
  slice; phase correlation, sub-pixel), returns the shifts; :func:`find_fiducial` finds the cap
- :func:`remove_curtaining` — wavelet–FFT destriping of vertical stripes
- :func:`flatten_background` — shading/charging correction
- :func:`denoise` — 3D non-local means (numba) or gaussian/median/bilateral; anisotropy-aware
- :func:`resample_isotropic` — trilinear (images) / nearest (labels) rescale to cubic voxels
- :func:`preprocess_volume`, :func:`preprocess_to_twin` — the chain, streamed into a twin
"""

from ._align import align_slices, drift_reference, estimate_drift
from ._fiducial import Fiducial, find_fiducial
from ._denoise import denoise, estimate_noise_sigma, nlm_parameters
from ._destripe import flatten_background, remove_curtaining
from ._pipeline import (STEPS, PreprocessResult, check_step_options, output_dtype, parse_steps, preprocess_to_twin,
                        preprocess_volume, stream_to_zarr)
from ._resample import resample_isotropic

__all__ = [
    "STEPS", "Fiducial", "PreprocessResult", "align_slices", "check_step_options", "denoise", "drift_reference",
    "estimate_drift", "estimate_noise_sigma", "find_fiducial", "flatten_background", "nlm_parameters",
    "output_dtype", "parse_steps", "preprocess_to_twin", "preprocess_volume", "remove_curtaining",
    "resample_isotropic", "stream_to_zarr",
]

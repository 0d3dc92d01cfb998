"""Preprocessing quality on the FIB-SEM simulator (twinlab.datasets.simulators.render_fibsem)."""

from __future__ import annotations

import numpy as np
import pytest

simulators = pytest.importorskip("twinlab.datasets.simulators")

from twinlab.preprocess import align_slices, preprocess_volume, remove_curtaining  # noqa: E402

# 10–25 s each on the shared 2-core machine: opt-in with --runslow
pytestmark = pytest.mark.slow


def _particles(shape, n, seed, radii=(5, 11)):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    lab = np.zeros(shape, np.uint8)
    for _ in range(n):
        c = rng.uniform(0, 1, 3) * np.array(shape)
        r = rng.uniform(*radii)
        lab[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < r * r] = 1
    return lab


@pytest.fixture(scope="module")
def stack():
    return simulators.render_fibsem(_particles((20, 160, 128), 67, seed=1), seed=3)


def _scores(clean, img):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = float(clean.max() - clean.min())
    c = clean.astype(np.float32)
    return (peak_signal_noise_ratio(c, img.astype(np.float32), data_range=rng),
            structural_similarity(c, img.astype(np.float32), data_range=rng))


def test_full_chain_improves_psnr_and_ssim_and_recovers_drift(stack):
    # small particles (radius 5-11 px) and no fiducial: accumulated slice-to-slice shifts recover the whole
    # random walk here (the default, "detrended", keeps only its fast part: made for particles larger than
    # the field, see align_slices)
    res = preprocess_volume(stack.raw, voxel_size=stack.voxel_size, steps="align,destripe,flatten,denoise",
                            dtype="float32", options={"align": {"reference": "previous"}})
    psnr_raw, ssim_raw = _scores(stack.clean, stack.raw)
    psnr_out, ssim_out = _scores(stack.clean, res.image)
    # measured: 13.9 → 16.6 dB, SSIM 0.49 → 0.81 (blur and shine-through are not undone)
    assert psnr_out >= psnr_raw + 2.0
    assert ssim_out >= ssim_raw + 0.25
    shifts = np.asarray(res.params["align"]["shifts_px"])
    err = shifts - stack.shifts
    # slice-to-slice steps (what a registration of neighbours measures): measured 0.06 px rms
    assert np.sqrt(np.mean(np.diff(err, axis=0) ** 2)) <= 0.25
    # accumulated drift over the 20 slices: measured 0.28 px rms
    assert np.sqrt(np.mean(err**2)) <= 0.6


def test_drift_alone_is_recovered_within_a_quarter_pixel():
    # Registering neighbours also "sees" particles that grow/shrink from slice to slice; that
    # error accumulates along z and averages out only over a field of view with many
    # particles (on 128² px with 50 large particles it reached ~1 px over 16 slices).
    lab = _particles((16, 256, 256), 250, seed=4, radii=(4, 9))
    s = simulators.render_fibsem(lab, seed=5, curtaining=0.0, shading=0.0, shine_through=0.0)
    _, shifts = align_slices(s.raw, reference="previous")
    err = shifts - s.shifts
    assert np.sqrt(np.mean(np.diff(err, axis=0) ** 2)) <= 0.1  # measured 0.04 px per step
    assert np.sqrt(np.mean(err**2)) <= 0.25  # measured 0.14 px accumulated


def test_stripe_power_removed_90_percent_with_edges_kept():
    # tall slices: the coarsest wavelet level still has 16 rows along the stripes
    s = simulators.render_fibsem(_particles((6, 512, 256), 300, seed=1), seed=3, drift_px_rms=0.0)
    left = remove_curtaining(s.stripes, level=6)  # the filter is linear: the stripes' share
    assert np.mean(left**2) <= 0.1 * np.mean(s.stripes**2)  # measured 7 % left
    clean = s.clean.astype(np.float32)
    kept = remove_curtaining(clean, level=6)

    def sharpness(a):
        return float(np.mean(np.abs(np.diff(a, axis=1))))

    assert sharpness(kept) >= 0.95 * sharpness(clean)  # measured 1.01
    # the method's price: the column mean of the structure's fine x-detail goes too
    # (measured 24 % of the structure's std at level 6, 14 % at the default level 4)
    assert np.sqrt(np.mean((kept - clean) ** 2)) <= 0.3 * clean.std()

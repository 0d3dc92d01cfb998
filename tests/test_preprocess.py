"""Preprocessing: seam-free chunking per filter, NLM vs scikit-image, artefact removal, bad input, CLI."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from twinlab.errors import InputError
from twinlab.preprocess import (align_slices, denoise, estimate_noise_sigma, flatten_background,
                                nlm_parameters, preprocess_volume, remove_curtaining, resample_isotropic)


def _spheres(shape, n, rmin, rmax, seed):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    out = np.zeros(shape, np.float32)
    for _ in range(n):
        c = rng.uniform(0, 1, 3) * np.array(shape)
        r = rng.uniform(rmin, rmax)
        out[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < r * r] = 1.0
    return out


@pytest.fixture(scope="module")
def textured():
    """(23, 41, 37) float32: spheres + noise, odd sizes."""
    rng = np.random.default_rng(7)
    clean = 60.0 + 80.0 * _spheres((23, 41, 37), 12, 3, 8, seed=3)
    return (clean + rng.normal(0, 10, clean.shape)).astype(np.float32)


def _same(whole, chunked, ref):
    assert isinstance(chunked, da.Array)
    got = chunked.compute()
    assert got.shape == whole.shape and got.dtype == whole.dtype
    rng = float(ref.max() - ref.min())
    assert np.abs(got.astype(np.float64) - whole).max() <= 1e-6 * rng


# ---------------------------------------------------------------------------------------- seam-free
SEAM_CASES = {
    "align": (lambda v: align_slices(v, upsample=10)[0], (7, 41, 37)),
    "align_yx_chunked": (lambda v: align_slices(v, upsample=10)[0], (7, 13, 11)),
    "destripe": (lambda v: remove_curtaining(v, level=2), (7, 13, 11)),
    "flatten": (lambda v: flatten_background(v, sigma=9.0), (7, 13, 11)),
    "nlm_3_2": (lambda v: denoise(v, patch_size=3, patch_distance=2, sigma=10.0), (9, 11, 13)),
    "gaussian": (lambda v: denoise(v, method="gaussian", size=(0.7, 1.0, 1.2)), (9, 11, 13)),
    "median": (lambda v: denoise(v, method="median", size=3), (9, 11, 13)),
    "bilateral": (lambda v: denoise(v, method="bilateral", size=1.0, sigma=10.0), (9, 11, 13)),
    "resample_linear": (lambda v: resample_isotropic(v, voxel_size=(0.03, 0.04, 0.04))[0], (7, 13, 11)),
    "resample_up": (lambda v: resample_isotropic(v, voxel_size=(0.05, 0.04, 0.03), target_um=0.03)[0], (7, 13, 11)),
}


@pytest.mark.parametrize("name", list(SEAM_CASES))
def test_chunked_equals_whole(name, textured):
    func, chunks = SEAM_CASES[name]
    _same(func(textured), func(da.from_array(textured, chunks=chunks)), textured)


def test_nlm_5_6_chunked_equals_whole():
    rng = np.random.default_rng(1)
    vol = (100 * _spheres((17, 25, 21), 6, 3, 6, seed=2) + rng.normal(0, 15, (17, 25, 21))).astype(np.float32)
    whole = denoise(vol, patch_size=5, patch_distance=6)
    _same(whole, denoise(da.from_array(vol, chunks=(9, 13, 11)), patch_size=5, patch_distance=6), vol)


def test_nearest_resample_of_labels_chunked_and_exact(phase_volume):
    lab = phase_volume
    whole, vs = resample_isotropic(lab, voxel_size=(0.05, 0.04, 0.03), order=0)
    assert whole.dtype == lab.dtype and set(np.unique(whole)) <= set(np.unique(lab))
    assert vs.as_tuple() == (0.03, 0.03, 0.03)  # dy != dx: the smallest edge
    chunked, _ = resample_isotropic(da.from_array(lab, chunks=(7, 13, 11)), voxel_size=(0.05, 0.04, 0.03), order=0)
    np.testing.assert_array_equal(chunked.compute(), whole)


def test_global_noise_estimate_does_not_depend_on_chunks(textured):
    a = estimate_noise_sigma(textured)
    b = estimate_noise_sigma(da.from_array(textured, chunks=(5, 7, 9)))
    assert a == b
    assert 7.0 < a < 13.0  # true noise std 10 gray levels


# ---------------------------------------------------------------------------------------- NLM quality
@pytest.mark.slow  # scikit-image's NLM alone takes ~5–10 s here
def test_nlm_matches_scikit_image_within_0p1_db():
    from skimage.restoration import denoise_nl_means

    rng = np.random.default_rng(3)
    clean = (0.2 + 0.6 * _spheres((32, 32, 32), 8, 4, 9, seed=5)).astype(np.float32)
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    ref = denoise_nl_means(noisy, patch_size=5, patch_distance=6, h=0.08, sigma=0.1, fast_mode=True)
    ours = denoise(noisy, patch_size=5, patch_distance=6, h=0.08, sigma=0.1)

    def psnr(a):
        return 10 * np.log10(1.0 / np.mean((a.astype(np.float64) - clean) ** 2))

    assert psnr(ours) > psnr(noisy) + 8.0
    assert abs(psnr(ours) - psnr(ref)) <= 0.1
    # same algorithm, not just same quality: scikit-image sums float32 integral images, hence ~1e-3
    assert np.abs(ours - ref).max() < 0.01


def _nlm_direct(vol, patch, distance, h, sigma):
    """Non-local means written out offset by offset in float64 (the definition ``_nlm`` documents)."""
    reach = [d + s // 2 for s, d in zip(patch, distance)]
    P = np.pad(vol.astype(np.float64), [(r, r) for r in reach], mode="reflect")
    core = tuple(slice(r, r + n) for r, n in zip(reach, vol.shape))
    window = [range(-(s // 2) + 1, s // 2 + 1) if s > 1 else range(1) for s in patch]
    num, den = vol.astype(np.float64).copy(), np.ones(vol.shape)
    for t in np.ndindex(*(2 * d + 1 for d in distance)):
        t = tuple(int(v) - d for v, d in zip(t, distance))
        if t == (0, 0, 0):
            continue
        dist = np.zeros(vol.shape)
        for u in np.ndindex(*(len(w) for w in window)):
            u = tuple(w[i] for w, i in zip(window, u))
            a = P[tuple(slice(c.start + ui, c.stop + ui) for c, ui in zip(core, u))]
            b = P[tuple(slice(c.start + ui + ti, c.stop + ui + ti) for c, ui, ti in zip(core, u, t))]
            dist += (a - b) ** 2 - 2 * sigma**2
        dist = np.maximum(dist, 0) / (h**2 * np.prod(patch))
        w = np.where(dist <= 5.0, np.exp(-dist), 0.0)
        num += w * P[tuple(slice(c.start + ti, c.stop + ti) for c, ti in zip(core, t))]
        den += w
    return num / den


# the default patch (fused box sums along every axis) and a mixed one (patch 3, 1 and 5: the generic
# box sums, a single-voxel axis and the fused one), whole and in chunks
@pytest.mark.parametrize("patch,distance", [((5, 5, 5), (2, 2, 2)), ((3, 1, 5), (1, 2, 3))])
def test_nlm_equals_the_direct_definition(patch, distance):
    rng = np.random.default_rng(4)
    vol = (100 * _spheres((11, 12, 13), 4, 2, 4, seed=6) + rng.normal(0, 15, (11, 12, 13))).astype(np.float32)
    ref = _nlm_direct(vol, patch, distance, h=12.0, sigma=10.0)
    assert np.abs(ref - vol).mean() > 3.0  # the filter does something here
    for data in (vol, da.from_array(vol, chunks=(6, 7, 8))):
        got = np.asarray(denoise(data, patch_size=patch, patch_distance=distance, h=12.0, sigma=10.0))
        assert np.abs(got - ref).max() < 1e-5 * float(vol.max() - vol.min())  # float32 sums: ~3e-7


def test_nlm_anisotropic_parameters_in_micrometres():
    patch, dist = nlm_parameters(voxel_size=(0.06, 0.03, 0.03), patch_size_um=0.15, patch_distance_um=0.18)
    assert patch == (3, 5, 5) and dist == (3, 6, 6)
    rng = np.random.default_rng(0)
    clean = 50.0 * _spheres((14, 30, 30), 4, 3, 7, seed=1)
    noisy = (clean + rng.normal(0, 8, clean.shape)).astype(np.float32)
    out = denoise(noisy, voxel_size=(0.06, 0.03, 0.03), patch_size_um=0.09, patch_distance_um=0.09)
    assert np.mean((out - clean) ** 2) < 0.4 * np.mean((noisy - clean) ** 2)


@pytest.mark.parametrize("method,size_um", [("gaussian", 0.04), ("median", 0.12), ("bilateral", 0.04)])
def test_alternative_denoisers_reduce_noise(method, size_um):
    rng = np.random.default_rng(0)
    clean = 40.0 * _spheres((16, 32, 32), 5, 5, 9, seed=4)
    noisy = (clean + rng.normal(0, 10, clean.shape)).astype(np.float32)
    out = denoise(noisy, method=method, size_um=size_um, voxel_size=(0.04, 0.04, 0.04))
    assert out.dtype == np.float32 and out.shape == noisy.shape
    assert np.mean((out - clean) ** 2) < 0.5 * np.mean((noisy - clean) ** 2)


# ---------------------------------------------------------------------------------------- artefacts
def _plane_image(shape, seed):
    return 100.0 + 80.0 * _spheres((1, *shape), 30, 4, 9, seed=seed)[0]


def test_align_recovers_known_shifts_and_reuses_them():
    rng = np.random.default_rng(2)
    img = ndimage.gaussian_filter(_plane_image((96, 96), seed=1), 1.0)
    true = np.cumsum(rng.normal(0, 0.6, (12, 2)), axis=0)
    true[0] = 0
    stack = np.stack([ndimage.shift(img, s, order=3, mode="nearest") for s in true]).astype(np.float32)
    stack += rng.normal(0, 2, stack.shape).astype(np.float32)
    # one static structure: accumulating slice-to-slice shifts recovers the whole random walk (the
    # default without a fiducial, "detrended", keeps only its fast part: see the next test)
    aligned, shifts = align_slices(stack, upsample=20, reference="previous")
    assert np.sqrt(np.mean((shifts - true) ** 2)) < 0.15
    again, same = align_slices(stack, shifts=shifts)
    np.testing.assert_array_equal(same, shifts)
    np.testing.assert_allclose(again, aligned)
    # after alignment, slices agree with slice 0 in the interior much better than before
    inner = (slice(None), slice(10, -10), slice(10, -10))
    before = np.abs(stack[inner] - stack[0][inner[1:]]).mean()
    after = np.abs(aligned[inner] - aligned[0][inner[1:]]).mean()
    assert after < 0.5 * before


def test_align_ignores_fixed_curtains():
    rng = np.random.default_rng(4)
    img = ndimage.gaussian_filter(_plane_image((96, 96), seed=3), 1.0)
    true = np.zeros((6, 2))
    true[:, 1] = np.arange(6) * 0.7
    curtains = np.tile(rng.normal(0, 25, 96), (96, 1))  # strong stripes fixed in the image frame
    stack = np.stack([ndimage.shift(img, s, order=3, mode="nearest") + curtains for s in true]).astype(np.float32)
    _, shifts = align_slices(stack, reference="previous")  # a steady 0.7 px/slice drift: accumulate
    assert np.sqrt(np.mean((shifts - true) ** 2)) < 0.15


def test_detrended_default_corrects_jitter_and_leaves_the_slow_trend():
    # without a fiducial a slow apparent motion may be structure (a surface inclined to the milling
    # direction): the default keeps it and corrects fast drift — a jump and its return here
    rng = np.random.default_rng(5)
    img = ndimage.gaussian_filter(_plane_image((96, 96), seed=1), 1.0)
    n = 30
    slow = np.stack([np.linspace(0, 6, n), np.zeros(n)], axis=1)  # 0.2 px/slice, taken for structure
    jitter = np.zeros((n, 2))
    jitter[12:15, 1] = 2.0  # a three-slice jump of 2 px in x, then back
    stack = np.stack([ndimage.shift(img, s, order=3, mode="nearest")
                      for s in slow + jitter]).astype(np.float32)
    stack += rng.normal(0, 2, stack.shape).astype(np.float32)
    _, shifts = align_slices(stack)
    prev = align_slices(stack, reference="previous")[1]
    assert np.abs(prev - slow - jitter).max() < 0.2  # the accumulated shifts follow both
    # the jump is found against its neighbours (a Gaussian trend of sigma 4 slices takes ~30 % of a
    # three-slice jump), the slow trend is left in
    assert np.abs(shifts[12:15, 1] - np.median(shifts[5:10, 1]) - 2.0).max() < 0.7
    assert np.abs(shifts[:, 0]).max() < 1.0  # the 6 px trend along y stays in the image


def test_fiducial_registration_on_the_simulated_cap():
    from twinlab.datasets.simulators import render_fibsem
    from twinlab.preprocess import drift_reference, find_fiducial

    lab = (_spheres((24, 96, 128), 12, 10, 30, seed=6) > 0).astype(np.uint8)  # large inclined surfaces
    st = render_fibsem(lab, fiducial_px=32, drift_px_rms=0.5, seed=2)
    fid = find_fiducial(st.raw[0])
    assert fid is not None and fid.rows == st.fiducial_rows == 32
    assert len(fid.marks_x) >= 4
    aligned, shifts = align_slices(st.raw)  # the default registers on it and crops the cap
    assert drift_reference(st.raw) == fid
    assert aligned.shape == lab.shape
    err = shifts - st.shifts
    assert np.sqrt(np.mean(err ** 2)) < 0.08  # measured 0.032 px rms
    # no fiducial in the frame: the default falls back; asking for one is refused
    plain = render_fibsem(lab, seed=2)
    assert find_fiducial(plain.raw[0]) is None
    with pytest.raises(InputError, match="no fiducial"):
        align_slices(plain.raw, reference="fiducial")


@pytest.mark.parametrize("fiducial_px", [0, 32])
def test_preprocess_looks_for_the_fiducial_once(monkeypatch, fiducial_px):
    """The record, the aligner and the drift estimate share one search (each computes slice 0, a
    whole z-chunk on dask input); with and without a cap, the shifts are those of align_slices."""
    from twinlab.datasets.simulators import render_fibsem
    from twinlab.preprocess import _align

    lab = (_spheres((12, 80, 64), 8, 6, 14, seed=3) > 0).astype(np.uint8)
    raw = render_fibsem(lab, fiducial_px=fiducial_px, drift_px_rms=0.5, seed=4).raw
    direct = align_slices(raw)[1]
    calls = []
    real = _align.find_fiducial
    monkeypatch.setattr(_align, "find_fiducial", lambda img: calls.append(1) or real(img))
    res = preprocess_volume(da.from_array(raw, chunks=(4, -1, -1)), voxel_size=(0.03, 0.03, 0.03),
                            steps="align")
    assert len(calls) == 1
    assert (res.params["align"]["fiducial"] is None) == (fiducial_px == 0)
    assert np.allclose(res.params["align"]["shifts_px"], direct, atol=1e-9)
    # a caller's answer is used as given: None registers on content; None with "fiducial" is refused
    calls.clear()
    assert np.allclose(align_slices(raw, fiducial=None, reference="detrended")[1],
                       align_slices(raw, reference="detrended")[1])
    assert not calls
    with pytest.raises(InputError, match="fiducial=None"):
        align_slices(raw, reference="fiducial", fiducial=None)


def _striped(seed=0, shape=(2, 256, 192)):
    """Many small particles (stripes are long compared with structure, as in real slices) + stripes."""
    rng = np.random.default_rng(seed)
    n = int(200 * shape[1] * shape[2] / (256 * 192))
    clean = np.stack([100.0 + 80.0 * _spheres((1, *shape[1:]), n, 3, 7, seed=seed + k)[0]
                      for k in range(shape[0])]).astype(np.float32)
    clean = ndimage.gaussian_filter(clean, (0, 1, 1))
    stripes = np.zeros_like(clean)
    for c in rng.choice(shape[2], shape[2] // 10, replace=False):
        stripes[:, :, c] += rng.choice([-1, 1]) * rng.uniform(15, 30)
    stripes = ndimage.gaussian_filter1d(stripes, 0.8, axis=2).astype(np.float32)
    return clean, stripes


def _edge_sharpness(img):
    return float(np.mean(np.abs(np.diff(img, axis=1))))  # gradients along y: untouched by vertical stripes


def test_remove_curtaining_removes_90_percent_of_stripe_power_and_keeps_edges():
    clean, stripes = _striped()
    out = remove_curtaining(clean + stripes, level=5)
    # the filter is linear, so out = filter(clean) + filter(stripes): measure each part
    left = remove_curtaining(stripes, level=5)
    np.testing.assert_allclose(out, remove_curtaining(clean, level=5) + left, atol=1e-2)
    assert np.mean(left**2) <= 0.1 * np.mean(stripes**2)
    kept = remove_curtaining(clean, level=5)
    assert _edge_sharpness(kept) >= 0.95 * _edge_sharpness(clean)
    # what is constant along y at fine x scales is removed from the structure too (the
    # method's known price); it stays a small part of the structure's contrast
    assert np.sqrt(np.mean((kept - clean) ** 2)) < 0.3 * clean.std()


def test_remove_curtaining_horizontal_orientation():
    clean, stripes = _striped(seed=5, shape=(1, 192, 256))
    left = remove_curtaining(np.swapaxes(stripes, 1, 2), orientation="horizontal", level=5)
    assert np.mean(left**2) <= 0.1 * np.mean(stripes**2)


def test_flatten_background_removes_a_ramp():
    base = 100.0 + 60.0 * _spheres((4, 96, 96), 20, 3, 6, seed=8)
    yy, xx = np.mgrid[:96, :96]
    shading = (1.0 + 0.3 * (xx / 95.0 - 0.5) + 0.2 * (yy / 95.0 - 0.5)).astype(np.float32)
    for mode in ("divide", "subtract"):
        shaded = (base * shading).astype(np.float32)
        out = flatten_background(shaded, sigma=16.0, mode=mode)
        left, right = out[:, :, :20].mean(), out[:, :, -20:].mean()
        b_left, b_right = shaded[:, :, :20].mean(), shaded[:, :, -20:].mean()
        assert abs(right - left) < 0.25 * abs(b_right - b_left)
        assert abs(out.mean() - shaded.mean()) < 0.05 * shaded.mean()


def test_flatten_background_in_micrometres_needs_voxel_size(textured):
    with pytest.raises(InputError, match="voxel_size"):
        flatten_background(textured, sigma_um=1.0)
    out = flatten_background(textured, sigma_um=0.4, voxel_size=(0.05, 0.04, 0.04))
    assert out.shape == textured.shape


def test_resample_linear_ramp_is_exact_and_voxel_size_updates():
    z = np.arange(20, dtype=np.float32)
    vol = np.broadcast_to(z[:, None, None], (20, 5, 6)).copy()
    out, vs = resample_isotropic(vol, voxel_size=(0.0325, 0.03722, 0.03722))
    assert vs.as_tuple() == (0.03722,) * 3
    n = int(np.floor(20 * 0.0325 / 0.03722))
    assert out.shape == (n, 5, 6)
    pos = (np.arange(n) + 0.5) * 0.03722 / 0.0325 - 0.5
    np.testing.assert_allclose(out[:, 0, 0], np.clip(pos, 0, 19), atol=1e-5)


# ---------------------------------------------------------------------------------------- bad input
def test_constant_volume_is_returned_unchanged():
    vol = np.full((6, 20, 20), 42, np.uint8)
    assert estimate_noise_sigma(vol) == 0.0
    np.testing.assert_array_equal(denoise(vol), 42.0)
    aligned, shifts = align_slices(vol)
    assert not shifts.any() and np.all(aligned == 42.0)
    np.testing.assert_allclose(remove_curtaining(vol), 42.0, atol=1e-3)
    np.testing.assert_allclose(flatten_background(vol, sigma=5.0), 42.0, atol=1e-3)


def test_single_slice_2d_is_refused_and_one_slice_3d_works():
    img = _plane_image((32, 32), seed=0).astype(np.float32)
    with pytest.raises(InputError, match="single slice"):
        denoise(img)
    with pytest.raises(InputError, match="3D"):
        align_slices(img)
    one = img[None]
    aligned, shifts = align_slices(one)
    assert shifts.shape == (1, 2) and not shifts.any()
    assert denoise(one, patch_size=3, patch_distance=2, sigma=1.0).shape == one.shape


def test_nan_is_refused_now_for_numpy_and_on_compute_for_dask(textured):
    bad = textured.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        denoise(bad, sigma=1.0)
    lazy = denoise(da.from_array(bad, chunks=(12, 41, 37)), method="gaussian", size=1.0)
    with pytest.raises(InputError, match="NaN"):
        lazy.compute()


def test_chunks_thinner_than_the_halo_are_refused(textured):
    with pytest.raises(InputError, match="halo of 8"):
        denoise(da.from_array(textured, chunks=(5, 41, 37)), patch_size=5, patch_distance=6, sigma=1.0)


def test_bad_options_are_refused(textured):
    with pytest.raises(InputError, match="unknown denoising method"):
        denoise(textured, method="wiener")
    with pytest.raises(InputError, match="odd"):
        denoise(textured, patch_size=4)
    with pytest.raises(InputError, match="orientation"):
        remove_curtaining(textured, orientation="diagonal")
    with pytest.raises(InputError, match="wavelet"):
        remove_curtaining(textured, wavelet="nope")
    with pytest.raises(InputError, match="reference"):
        align_slices(textured, reference="last")
    with pytest.raises(InputError, match="shifts"):
        align_slices(textured, shifts=np.zeros((3, 2)))
    with pytest.raises(InputError, match="order"):
        resample_isotropic(textured, voxel_size=1, order=3)
    with pytest.raises(InputError, match="unknown preprocessing step"):
        preprocess_volume(textured, voxel_size=1, steps="align,sharpen")
    with pytest.raises(InputError, match="integer labels"):
        resample_isotropic(textured, voxel_size=(1, 2, 2), order=0)


# ---------------------------------------------------------------------------------------- pipeline, CLI
def test_pipeline_numpy_and_dask_agree(textured):
    opts = {"denoise": {"patch_size": 3, "patch_distance": 2}, "flatten": {"sigma": 8.0}}
    a = preprocess_volume(textured, voxel_size=(0.03, 0.04, 0.04), options=opts, chunks=11)
    b = preprocess_volume(da.from_array(textured, chunks=(9, 13, 11)), voxel_size=(0.03, 0.04, 0.04),
                          options=opts, chunks=11)
    assert a.voxel_size.as_tuple() == (0.04, 0.04, 0.04) and a.image.dtype == np.float32
    got = b.image.compute()
    assert got.shape == a.image.shape
    assert np.abs(got - a.image).max() <= 1e-6 * float(textured.max() - textured.min())
    assert a.params["denoise"]["sigma"] == b.params["denoise"]["sigma"] > 0
    assert len(a.params["align"]["shifts_px"]) == textured.shape[0]


def test_cli_preprocess_writes_twin_with_provenance(tmp_path):
    import json

    from typer.testing import CliRunner

    from twinlab.cli import app
    from twinlab.twin import Twin

    rng = np.random.default_rng(0)
    vol = np.clip(60 + 120 * _spheres((21, 40, 36), 8, 3, 8, seed=1) + rng.normal(0, 12, (21, 40, 36)), 0, 255)
    src = tmp_path / "stack.npy"
    np.save(src, vol.astype(np.uint8))
    out = tmp_path / "s.twin.zarr"
    res = CliRunner().invoke(app, ["preprocess", str(src), "-o", str(out), "--voxel-size", "30,40,40",
                                   "--unit", "nm", "--chunks", "16", "--patch-size", "3", "--patch-distance", "3",
                                   "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    twin = Twin.open(out)
    assert twin.voxel_size.as_tuple() == pytest.approx((0.04, 0.04, 0.04))
    assert twin.image(0).dtype == np.uint8 and list(twin.shape) == summary["shape"]
    step = twin.provenance[-1]
    assert step["step"] == "preprocess"
    p = step["params"]
    assert p["denoise"]["sigma"] > 0 and p["denoise"]["h"] == pytest.approx(0.8 * p["denoise"]["sigma"])
    assert len(p["align"]["shifts_px"]) == 21 and p["steps"] == ["align", "destripe", "flatten", "denoise",
                                                                     "resample"]
    again = CliRunner().invoke(app, ["preprocess", str(src), "-o", str(out), "--voxel-size", "30,40,40",
                                     "--unit", "nm", "--steps", "denoise"])
    assert again.exit_code == 2 and "overwrite" in again.output
    bad = CliRunner().invoke(app, ["preprocess", str(src), "-o", str(tmp_path / "b.twin.zarr"),
                                   "--voxel-size", "30,40,40", "--steps", "align,blur"])
    assert bad.exit_code == 2 and "unknown preprocessing step" in bad.output

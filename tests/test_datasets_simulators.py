"""FIB-SEM and EBAC simulators: the truth they return is exactly what they applied."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.fft import dctn

from twinlab.datasets.simulators import (
    DEFAULT_GREY_LEVELS, NO_ARTEFACTS, EbacMap, FibsemStack, render_ebac, render_fibsem,
)
from twinlab.errors import InputError
from twinlab.phases import DEFAULT_PHASES, Phase, PhaseTable


def _blobs(shape, seed=0, sigma=2.0, nphase=2):
    """Smooth random phase field with ``nphase`` phases (0..nphase-1)."""
    f = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    edges = np.quantile(f, np.linspace(0, 1, nphase + 1)[1:-1])
    return np.digitize(f, edges).astype(np.uint8)


@pytest.fixture(scope="module")
def all_phase_labels():
    """(20, 41, 37) labels holding all 7 default phases."""
    return _blobs((20, 41, 37), seed=1, nphase=7)


def _only(**kw):
    return {**NO_ARTEFACTS, **kw}


# -- FIB-SEM: the artefact-free rendering ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.float32])
def test_artefact_free_rendering_segments_perfectly_by_grey_level(all_phase_labels, dtype):
    s = render_fibsem(all_phase_labels, **NO_ARTEFACTS, dtype=dtype)
    assert isinstance(s, FibsemStack) and s.raw.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(s.raw, s.clean)
    levels = {DEFAULT_PHASES.value(n): v for n, v in s.grey_levels.items()}
    assert len(set(levels.values())) == 7  # each phase its own grey value
    order = sorted(levels, key=levels.get)
    grey = np.array([levels[v] for v in order], float)
    thresholds = (grey[1:] + grey[:-1]) / 2
    segmented = np.array(order, np.uint8)[np.digitize(s.raw.astype(float), thresholds)]
    np.testing.assert_array_equal(segmented, all_phase_labels)
    np.testing.assert_array_equal(s.shifts, 0)
    assert s.stripes is None and s.shading is None and s.clipped_fraction == 0


def test_grey_levels_default_and_override(all_phase_labels):
    s = render_fibsem(all_phase_labels, **NO_ARTEFACTS, grey_levels={"pore": 0.0, "active": 1.0})
    assert s.grey_levels["pore"] == 0 and s.grey_levels["active"] == 65535
    assert s.grey_levels["cbd"] == round(DEFAULT_GREY_LEVELS["cbd"] * 65535)
    assert s.raw[all_phase_labels == 1].min() == 65535


def test_labels_truth_is_the_input_geometry(all_phase_labels):
    s = render_fibsem(all_phase_labels, seed=4)
    np.testing.assert_array_equal(s.labels, all_phase_labels)
    assert not s.labels.flags.writeable
    assert s.voxel_size.as_tuple() == (0.0325, 0.03722, 0.03722)
    assert render_fibsem(all_phase_labels, voxel_size_um="0.05,0.04,0.04").voxel_size.dz == 0.05


# -- FIB-SEM: each artefact alone does what it claims ----------------------------------------------

def test_gaussian_noise_std_matches_parameter():
    lab = _blobs((16, 64, 64), seed=2)
    s = render_fibsem(lab, **_only(noise_sigma=0.02), dtype=np.float32)
    resid = s.raw - s.clean
    assert abs(resid.mean()) < 5e-4
    assert resid.std() == pytest.approx(0.02, rel=0.02)
    s16 = render_fibsem(lab, **_only(noise_sigma=0.02))
    assert (s16.raw.astype(float) - s16.clean).std() / 65535 == pytest.approx(0.02, rel=0.02)


def test_shot_noise_variance_grows_with_intensity():
    lab = _blobs((16, 64, 64), seed=3)
    s = render_fibsem(lab, **_only(shot_noise=0.05), dtype=np.float32)
    resid = s.raw - s.clean
    for value, name in ((0, "pore"), (1, "active")):
        g = DEFAULT_GREY_LEVELS[name]
        assert resid[lab == value].std() == pytest.approx(0.05 * np.sqrt(g), rel=0.05)


def test_shot_noise_exact_poisson_at_low_counts():
    lab = np.zeros((8, 64, 64), np.uint8)  # all pore; 1/0.2**2 = 25 e⁻ at full scale → ~4.5 e⁻/pixel
    s = render_fibsem(lab, **_only(shot_noise=0.2), dtype=np.float32)
    counts = s.raw * 25
    lam = DEFAULT_GREY_LEVELS["pore"] * 25
    np.testing.assert_allclose(counts, np.rint(counts), atol=1e-4)  # integer electron counts
    assert counts.mean() == pytest.approx(lam, rel=0.03) and counts.var() == pytest.approx(lam, rel=0.05)


def _row_power_fraction(field):
    """Fraction of each slice's 2D power spectrum (DC removed) lying at ky = 0, kx ≠ 0."""
    spec = np.abs(np.fft.fft2(field - field.mean(axis=(1, 2), keepdims=True))) ** 2
    return spec[:, 0, 1:].sum() / spec.sum()


def test_curtain_stripes_are_vertical_and_coherent():
    lab = _blobs((24, 64, 80), seed=5)
    s = render_fibsem(lab, **_only(curtaining=0.03, curtain_shadowing=0.0), dtype=np.float32)
    diff = s.raw - s.clean
    np.testing.assert_allclose(diff, s.stripes, atol=1e-6)
    assert _row_power_fraction(diff) > 0.999  # constant along y (ion beam), varying along x
    double = render_fibsem(lab, **_only(curtaining=0.06, curtain_shadowing=0.0), dtype=np.float32)
    np.testing.assert_allclose(double.stripes, 2 * s.stripes, rtol=1e-5, atol=1e-7)  # linear in amplitude
    profiles = diff[:, 0, :]
    r = [np.corrcoef(profiles[z], profiles[z + 1])[0, 1] for z in range(23)]
    assert np.mean(r) > 0.9  # neighbouring slices share their curtains
    shadowed = render_fibsem(lab, **_only(curtaining=0.03), dtype=np.float32)
    assert _row_power_fraction(shadowed.raw - shadowed.clean) > 0.6


def test_curtain_amplitude_statistics():
    # independent N(0, c²) peaks: E[stripe²] = c² · (stripes per pixel) · ∫g² = c² σ√π / period
    s = render_fibsem(np.zeros((600, 2, 400), np.uint8), seed=2, **_only(
        curtaining=0.05, curtain_shadowing=0.0, curtain_period_px=10.0, curtain_width_px=3.0,
        curtain_coherence_slices=5.0), dtype=np.float32)
    expected = 0.05 * np.sqrt(3.0 / 2.3548 * np.sqrt(np.pi) / 10.0)
    assert np.sqrt(np.mean(s.stripes**2)) == pytest.approx(expected, rel=0.15)


def test_curtains_start_below_bright_features():
    lab = np.zeros((6, 40, 48), np.uint8)
    lab[:, 20:, 10:30] = 1  # active block in the lower half of some columns
    s = render_fibsem(lab, **_only(curtaining=0.05, curtain_shadowing=1.0), dtype=np.float32)
    assert np.abs(s.stripes[:, :20]).max() == 0  # nothing bright above: no curtain
    assert np.abs(s.stripes[:, 20:, 10:30]).max() > 0.02
    assert np.abs(s.stripes[:, :, 35:]).max() == 0  # a column with no bright material at all


def test_drift_shifts_are_the_applied_ones():
    lab = _blobs((40, 64, 64), seed=6)
    kw = _only(drift_px_rms=0.5, blur_sigma_px=0.7)
    s = render_fibsem(lab, **kw, dtype=np.float32)
    ref = render_fibsem(lab, **{**kw, "drift_px_rms": 0.0}, dtype=np.float32).raw
    assert s.shifts.shape == (40, 2) and np.all(s.shifts[0] == 0)
    m = int(np.ceil(np.abs(s.shifts).max())) + 3
    undone = s.undo_drift()
    err = np.abs(undone - ref)[:, m:-m, m:-m]
    before = np.abs(s.raw - ref)[:, m:-m, m:-m]
    assert err.mean() < 0.003 and err.mean() < before.mean() / 20
    spline = np.stack([ndi.shift(s.raw[z], -s.shifts[z], order=3, mode="nearest") for z in range(40)])
    assert np.abs(spline - ref)[:, m:-m, m:-m].mean() < 0.005  # scipy's own shift undoes it too


def test_drift_recovered_by_phase_correlation():
    from skimage.registration import phase_cross_correlation

    lab = np.repeat(_blobs((1, 96, 96), seed=7), 20, axis=0)  # same structure in every slice
    s = render_fibsem(lab, **_only(drift_px_rms=0.5, blur_sigma_px=0.7), dtype=np.float32)
    est = np.array([phase_cross_correlation(s.raw[0], s.raw[z], upsample_factor=50)[0] for z in range(20)])
    np.testing.assert_allclose(-est, s.shifts, atol=0.2)  # skimage gives the shift that undoes it


def test_drift_step_rms_matches_parameter():
    s = render_fibsem(np.zeros((400, 8, 8), np.uint8), **_only(drift_px_rms=0.3))
    assert np.diff(s.shifts, axis=0).std() == pytest.approx(0.3, rel=0.08)


def test_shading_is_smooth_low_frequency_and_multiplicative():
    lab = _blobs((12, 64, 64), seed=8)
    s = render_fibsem(lab, **_only(shading=0.1), dtype=np.float32)
    np.testing.assert_allclose(s.raw, s.clean * s.shading, rtol=1e-6)
    assert np.abs(s.shading - 1).max() == pytest.approx(0.1, rel=1e-5)
    # a non-periodic image: measure its spectrum with the DCT (no wrap-around leakage)
    spec = dctn(s.shading - s.shading.mean(axis=(1, 2), keepdims=True), axes=(1, 2)) ** 2
    assert spec[:, :3, :3].sum() / spec.sum() > 0.999  # at most one period across the field
    assert np.abs(np.diff(s.shading, axis=2)).max() < 0.1 * np.pi * 2 / 64  # smooth: tiny pixel steps


def test_shine_through_follows_the_attenuation_law():
    lab = np.zeros((30, 8, 8), np.uint8)
    lab[20:, :, :4] = 1  # active behind the pore in half the columns
    s = render_fibsem(lab, **_only(shine_through=0.6, shine_depth_um=0.3), dtype=np.float32)
    gp, ga = DEFAULT_GREY_LEVELS["pore"], DEFAULT_GREY_LEVELS["active"]
    depth = (20 - np.arange(20)) * 0.0325
    np.testing.assert_allclose(s.raw[:20, 0, 0], gp + 0.6 * (ga - gp) * np.exp(-depth / 0.3), rtol=1e-5)
    np.testing.assert_allclose(s.raw[:, :, 4:], gp)  # nothing behind: plain pore
    np.testing.assert_array_equal(s.raw[20:], s.clean[20:])
    coarse = render_fibsem(lab, **_only(shine_through=0.6), voxel_size_um=(0.065, 0.037, 0.037), dtype=np.float32)
    assert coarse.raw[10, 0, 0] < s.raw[10, 0, 0]  # the slice step (dz) sets the depth


def test_shine_through_matches_brute_force_across_slabs():
    lab = (np.random.default_rng(1).random((37, 9, 7)) < 0.3).astype(np.uint8)  # 37 slices: 3 slabs
    lab[30:] = 0
    s = render_fibsem(lab, **_only(shine_through=0.6), dtype=np.float32)
    gp, ga = DEFAULT_GREY_LEVELS["pore"], DEFAULT_GREY_LEVELS["active"]
    ref = np.where(lab == 1, ga, gp).astype(np.float32)
    for z, y, x in np.argwhere(lab == 0):
        behind = np.flatnonzero(lab[z + 1:, y, x])
        if behind.size:
            ref[z, y, x] = gp + 0.6 * (ga - gp) * np.exp(-(behind[0] + 1) * 0.0325 / 0.3)
    np.testing.assert_allclose(s.raw, ref, rtol=1e-6)


def test_shine_through_changes_only_pore_voxels_and_makes_them_look_partly_solid(all_phase_labels):
    s = render_fibsem(all_phase_labels, **_only(shine_through=0.5), dtype=np.float32)
    changed = s.raw != s.clean
    assert changed.any() and np.all(all_phase_labels[changed] == 0)
    assert s.raw[changed].min() > DEFAULT_GREY_LEVELS["pore"]
    assert s.raw[changed].max() < 0.5 * (DEFAULT_GREY_LEVELS["pore"] + DEFAULT_GREY_LEVELS["collector"])


def test_blur_is_the_in_plane_gaussian(all_phase_labels):
    s = render_fibsem(all_phase_labels, **_only(blur_sigma_px=1.0), dtype=np.float32)
    ref = ndi.gaussian_filter(s.clean, (0, 1.0, 1.0), mode="nearest")
    np.testing.assert_allclose(s.raw, ref, atol=1e-6)


# -- FIB-SEM: seeds, dtypes, serialisation ---------------------------------------------------------

def test_same_seed_same_stack_and_independent_artefact_streams(all_phase_labels):
    a = render_fibsem(all_phase_labels, seed=11)
    np.testing.assert_array_equal(a.raw, render_fibsem(all_phase_labels, seed=11).raw)
    assert not np.array_equal(a.raw, render_fibsem(all_phase_labels, seed=12).raw)
    b = render_fibsem(all_phase_labels, seed=11, curtaining=0.0)  # one artefact off, others unchanged
    np.testing.assert_array_equal(a.shifts, b.shifts)
    np.testing.assert_array_equal(a.shading, b.shading)


def test_defaults_do_not_clip_the_dtype_range():
    lab = _blobs((32, 96, 96), seed=9, nphase=4)
    lab[lab == 2] = 3  # collector, the brightest phase
    s = render_fibsem(lab)
    assert s.clipped_fraction < 1e-5
    assert s.raw.max() < 65535 and s.raw.min() > 0
    s8 = render_fibsem(lab, dtype=np.uint8)
    assert s8.clipped_fraction < 1e-5 and s8.raw.dtype == np.uint8


def test_dask_and_bool_labels_are_accepted(all_phase_labels):
    import dask.array as da

    lazy = da.from_array(all_phase_labels, chunks=(7, 20, 20))
    np.testing.assert_array_equal(render_fibsem(lazy, seed=3).raw, render_fibsem(all_phase_labels, seed=3).raw)
    mask = all_phase_labels > 2
    s = render_fibsem(mask, **NO_ARTEFACTS)
    np.testing.assert_array_equal(s.raw == s.grey_levels["active"], mask)


def test_to_dict_is_json_without_arrays(all_phase_labels):
    d = render_fibsem(all_phase_labels).to_dict()
    text = json.dumps(d)
    assert len(text) < 20_000 and d["shape"] == [20, 41, 37] and len(d["shifts"]) == 20
    assert d["params"]["grey_levels"]["pore"] == DEFAULT_GREY_LEVELS["pore"]


def test_fiducial_cap_sits_above_the_field_and_drifts_with_it(all_phase_labels):
    from twinlab.datasets.simulators import FIDUCIAL_LEVELS

    plain = render_fibsem(all_phase_labels, **NO_ARTEFACTS)
    s = render_fibsem(all_phase_labels, **NO_ARTEFACTS, fiducial_px=24)
    assert s.fiducial_rows == 24 and s.raw.shape == (20, 24 + 41, 37) and s.clean.shape == all_phase_labels.shape
    np.testing.assert_array_equal(s.raw[:, 24:], plain.raw)  # the field is untouched
    cap = s.raw[0, :24].astype(float) / 65535
    assert abs(cap[0].mean() - FIDUCIAL_LEVELS["vacuum"]) < 1e-3  # vacuum on top
    pt = cap[-1]  # the cap's last row: Pt below the marks' depth
    assert abs(np.median(pt) - FIDUCIAL_LEVELS["platinum"]) < 0.03
    marked = cap[12]  # a row through the marks: carbon-filled trenches 4 px wide
    assert 2 <= (np.abs(marked - FIDUCIAL_LEVELS["carbon"]) < 1e-3).sum() // 4 <= 3
    np.testing.assert_array_equal(s.raw[:, :24], np.broadcast_to(s.raw[0, :24], (20, 24, 37)))  # static along z
    # drift moves the cap with the field (band-limited by the PSF, so the Fourier shift inverts)
    still = render_fibsem(all_phase_labels, **{**NO_ARTEFACTS, "blur_sigma_px": 1.0}, fiducial_px=24)
    d = render_fibsem(all_phase_labels, **{**NO_ARTEFACTS, "blur_sigma_px": 1.0, "drift_px_rms": 0.5}, fiducial_px=24)
    inner = (slice(None), slice(4, 20), slice(5, -5))  # away from the frame's edges (reflect padding)
    err = np.abs(d.undo_drift()[inner] - still.raw[inner].astype(np.float32)) / 65535
    assert np.abs(d.shifts).max() > 1 and np.median(err) < 0.002 and err.max() < 0.05, (np.median(err), err.max())


# -- FIB-SEM: bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("labels, kwargs, match", [
    (np.zeros((4, 5, 6), np.float32), {}, "integer labels"),
    (np.zeros((5, 6), np.uint8), {}, "must be 3D"),
    (np.full((4, 5, 6), 9, np.uint8), {}, r"label values \[9\]"),
    (np.full((4, 5, 6), -1, np.int16), {}, "0–255"),
    (np.zeros((4, 5, 6), np.uint8), {"noise_sigma": -0.1}, "noise_sigma"),
    (np.zeros((4, 5, 6), np.uint8), {"drift_px_rms": float("nan")}, "drift_px_rms"),
    (np.zeros((4, 5, 6), np.uint8), {"shading": 1.0}, "shading"),
    (np.zeros((4, 5, 6), np.uint8), {"shine_through": 1.5}, "shine_through"),
    (np.zeros((4, 5, 6), np.uint8), {"curtain_width_px": 0}, "curtain_width_px"),
    (np.zeros((4, 5, 6), np.uint8), {"grey_levels": {"pore": 1.2}}, "grey level of 'pore'"),
    (np.zeros((4, 5, 6), np.uint8), {"grey_levels": {"epoxy": 0.2}}, "epoxy"),
    (np.zeros((4, 5, 6), np.uint8), {"dtype": np.int32}, "dtype"),
    (np.zeros((0, 5, 6), np.uint8), {}, "empty"),
    (np.zeros((4, 5, 6), np.uint8), {"fiducial_px": 8}, "fiducial_px"),
])
def test_render_fibsem_bad_input(labels, kwargs, match):
    with pytest.raises(InputError, match=match):
        render_fibsem(labels, **kwargs)


def test_render_fibsem_phase_without_grey_level():
    table = PhaseTable((Phase(0, "pore", (0, 0, 0, 0)), Phase(1, "epoxy", (1, 1, 1, 255))))
    lab = np.ones((3, 4, 4), np.uint8)
    with pytest.raises(InputError, match=r"label values \[1\] have no phase/grey level"):
        render_fibsem(lab, phases=table)
    assert render_fibsem(lab, phases=table, grey_levels={"epoxy": 0.3}).grey_levels["epoxy"] == 19660
    with pytest.raises(InputError, match="pore phase"):
        render_fibsem(lab, phases=PhaseTable((Phase(1, "epoxy", (1, 1, 1, 255)),)),
                      grey_levels={"epoxy": 0.3}, shine_through=0.5)


# -- EBAC ------------------------------------------------------------------------------------------

CU_PHASES = PhaseTable(tuple(Phase(p.value, p.name, p.color, "Cu" if p.name == "collector" else p.material)
                             for p in DEFAULT_PHASES))


@pytest.fixture(scope="module")
def lmp_volume():
    """(9, 40, 40) LMP-like anode: Cu collector rows 0-3, Li blocks connected / isolated / shelled."""
    lab = np.zeros((9, 40, 40), np.uint8)
    lab[:, :4] = 3  # Cu collector, thickness axis y, collector side low
    lab[:, 4:20, 2:12] = 5  # Li touching the collector: connected
    lab[:, 25:35, 2:12] = 5  # Li floating in pore: isolated
    lab[:, 4:20, 20:34] = 4  # Li2CO3 shell around a Li core: insulated
    lab[:, 6:18, 22:32] = 5
    lab[:, 25:32, 13:20] = 5  # reaches the collector through a pillar that exists only in slices z >= 6
    lab[6:, 4:25, 14:18] = 5
    return lab


def test_ebac_clean_map_thresholds_to_the_conductive_truth(lmp_volume):
    e = render_ebac(lmp_volume, phases=CU_PHASES, index=2, noise_sigma=0.0)
    assert isinstance(e, EbacMap) and e.image.shape == (40, 40) and e.thickness_axis == 0
    np.testing.assert_array_equal(e.clean > e.threshold, e.conductive_truth)
    np.testing.assert_array_equal(e.image, e.clean)
    truth = e.conductive_truth
    assert truth[:4].all() and truth[4:20, 2:12].all()
    assert not truth[25:35, 2:12].any() and not truth[6:18, 22:32].any()


def test_ebac_contrast_cu_li_isolated_pore(lmp_volume):
    e = render_ebac(lmp_volume, phases=CU_PHASES, index=2, noise_sigma=0.0)
    cu, li = e.clean[0, 0], e.clean[10, 5]
    isolated, shelled_core, pore = e.clean[30, 5], e.clean[10, 25], e.clean[22, 15]
    assert cu < li  # Cu backscatters more than Li
    assert isolated < li and shelled_core < li
    assert pore < isolated < cu  # isolated: dim, not black
    assert isolated == pytest.approx(0.25 * li, rel=1e-6)


def test_ebac_connectivity_is_three_dimensional(lmp_volume):
    early = render_ebac(lmp_volume, phases=CU_PHASES, index=2, noise_sigma=0.0)
    late = render_ebac(lmp_volume, phases=CU_PHASES, index=3, axis="z", noise_sigma=0.0)
    section_only = render_ebac(lmp_volume[3], phases=CU_PHASES, noise_sigma=0.0)
    # the block at rows 25-31, cols 13-19 connects through slices z >= 6, off the section
    assert early.conductive_truth[28, 16] and late.conductive_truth[28, 16]
    assert not section_only.conductive_truth[28, 16]
    assert render_ebac(lmp_volume, phases=CU_PHASES, index=7, noise_sigma=0.0).conductive_truth[15, 16]


def test_ebac_default_mask_treats_shell_and_binder_as_insulators(lmp_volume):
    cracked = lmp_volume.copy()
    cracked[:, 4:6, 26:28] = 5  # Li fills a crack through the shell's wall on the collector
    e = render_ebac(cracked, phases=CU_PHASES, noise_sigma=0.0)
    assert e.conductive_truth[10, 25]  # shelled core now connected through the crack


def test_ebac_explicit_mask_and_profiles(lmp_volume):
    section = lmp_volume[0]
    mask = np.isin(section, [3, 4, 5])  # shells declared conducting
    e = render_ebac(section, mask, phases=CU_PHASES, noise_sigma=0.0, pixel_size_um=0.5)
    assert e.conductive_truth[10, 25]
    np.testing.assert_allclose(e.profile_truth, e.clean.mean(axis=1))
    np.testing.assert_allclose(e.connected_fraction_profile[:4], 1.0)
    np.testing.assert_allclose(e.depth_um[:2], [0.25, 0.75])
    high = render_ebac(section[::-1], mask[::-1], phases=CU_PHASES, collector_side="high", noise_sigma=0.0,
                       pixel_size_um=0.5)
    np.testing.assert_allclose(high.profile_truth, e.profile_truth)  # ordered from the collector


def test_ebac_mask_without_the_collector_still_connects_through_it(lmp_volume):
    particles_only = lmp_volume == 5  # e.g. percolating clusters of the active phase only
    e = render_ebac(lmp_volume, particles_only, phases=CU_PHASES, index=2, noise_sigma=0.0)
    ref = render_ebac(lmp_volume, phases=CU_PHASES, index=2, noise_sigma=0.0)
    np.testing.assert_array_equal(e.conductive_truth, ref.conductive_truth)


def test_ebac_decay_with_depth_and_too_strong_decay(lmp_volume):
    e = render_ebac(lmp_volume, phases=CU_PHASES, decay_length_um=20.0, pixel_size_um=0.5, noise_sigma=0.0)
    col = e.clean[4:20, 5]  # connected Li, moving away from the collector
    assert np.all(np.diff(col) < 0)
    np.testing.assert_allclose(col[-1] / col[0], np.exp(-15 * 0.5 / 20.0), rtol=1e-5)
    np.testing.assert_array_equal(e.clean > e.threshold, e.conductive_truth)
    with pytest.raises(InputError, match="decay_length_um"):
        render_ebac(lmp_volume, phases=CU_PHASES, decay_length_um=0.5, pixel_size_um=0.5)


def test_ebac_noise_seed_and_uint16(lmp_volume):
    a = render_ebac(lmp_volume, phases=CU_PHASES, noise_sigma=0.03, seed=1)
    assert (a.image - a.clean).std() == pytest.approx(0.03, rel=0.1)
    np.testing.assert_array_equal(a.image, render_ebac(lmp_volume, phases=CU_PHASES, noise_sigma=0.03, seed=1).image)
    u = render_ebac(lmp_volume, phases=CU_PHASES, dtype=np.uint16, noise_sigma=0.0)
    assert u.image.dtype == np.uint16
    np.testing.assert_array_equal(u.clean > u.threshold, u.conductive_truth)
    json.dumps(u.to_dict())


def test_ebac_face_is_the_collector_when_no_collector_phase():
    lab = np.zeros((20, 20), np.uint8)
    lab[:10, 3:6] = 1  # active touching the low face
    lab[12:18, 10:15] = 1
    e = render_ebac(lab, noise_sigma=0.0)
    assert e.conductive_truth[5, 4] and not e.conductive_truth[15, 12]


@pytest.mark.parametrize("args, kwargs, match", [
    ((np.zeros((4, 5, 6), np.float32),), {}, "integer labels"),
    ((np.zeros(6, np.uint8),), {}, "2D section or a 3D"),
    ((np.zeros((4, 5, 6), np.uint8), np.zeros((4, 5), bool)), {}, "conductive_mask"),
    ((np.zeros((4, 5, 6), np.uint8), np.ones((4, 5, 6), bool)), {}, "pore voxels"),
    ((np.zeros((4, 5, 6), np.uint8),), {"axis": "y"}, "thickness axis"),
    ((np.zeros((4, 5, 6), np.uint8),), {"index": 7}, "index 7"),
    ((np.zeros((4, 5, 6), np.uint8),), {"collector_side": "top"}, "collector_side"),
    ((np.zeros((5, 6), np.uint8),), {"thickness_axis": "z"}, "thickness_axis"),
    ((np.zeros((5, 6), np.uint8),), {"noise_sigma": -1.0}, "noise_sigma"),
    ((np.zeros((5, 6), np.uint8),), {"pixel_size_um": 0.0}, "pixel_size_um"),
    ((np.zeros((5, 6), np.uint8),), {"dtype": np.uint8}, "dtype"),
    ((np.full((5, 6), 9, np.uint8),), {}, r"label values \[9\]"),
])
def test_render_ebac_bad_input(args, kwargs, match):
    with pytest.raises(InputError, match=match):
        render_ebac(*args, **kwargs)

"""EBAC map analysis (twinlab.analyses.ebac) and the ``twinlab ebac`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from twinlab.analyses.ebac import analyze_ebac, analyze_ebac_file, compare_ebac
from twinlab.cli import app
from twinlab.datasets.simulators import render_ebac
from twinlab.errors import InputError

PORE, ACTIVE, CBD, COLLECTOR = 0, 1, 2, 3
SEM = Path(__file__).resolve().parents[1] / "datasets" / "superres_nmc" / "sem_image_stack.tif"
PIXEL = 0.05


def _electrode(n_particles: int, seed: int = 0, shape=(24, 100, 128)) -> np.ndarray:
    """Random active/CBD spheres on a 5-voxel collector at low y (thickness axis y)."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.uint8)
    lab[:, :5, :] = COLLECTOR
    for i in range(n_particles):
        c = rng.uniform([0, 5, 0], shape).astype(int)
        r = int(rng.integers(3, 8))
        sl = tuple(slice(max(0, ci - r), min(n, ci + r + 1)) for ci, n in zip(c, shape))
        d = np.ogrid[tuple(slice(s.start - ci, s.stop - ci) for s, ci in zip(sl, c))]
        ball = sum(x**2 for x in d) <= r * r
        window = lab[sl]
        window[ball & (window == PORE)] = ACTIVE if i % 4 else CBD
    return lab


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def sim_map():
    return render_ebac(_electrode(300), thickness_axis="y", collector_side="low", pixel_size_um=PIXEL,
                       noise_sigma=0.03, seed=3)


@pytest.mark.parametrize("decay_um", [None, 10.0])
def test_simulated_map_conductive_region_and_line_scan(decay_um):
    em = render_ebac(_electrode(300), thickness_axis="y", collector_side="low", pixel_size_um=PIXEL,
                     decay_length_um=decay_um, noise_sigma=0.03, seed=3)
    # the simulator puts the collector at low row index = the top of the image
    r = analyze_ebac(em.image, pixel_size_um=PIXEL, collector_side="top")
    assert 0.2 < em.conductive_truth.mean() < 0.8  # a real two-class map
    assert _dice(r.conductive_map, em.conductive_truth) >= 0.95
    width = em.image.shape[1]
    # line scan = truth profile within the noise of a mean over one line (σ/√width per line)
    assert np.array(r.depth_um) == pytest.approx(em.depth_um)
    err = np.array(r.profile_mean) - em.profile_truth
    assert np.sqrt(np.mean(err**2)) <= 1.5 * 0.03 / np.sqrt(width)
    assert np.abs(err).max() <= 5 * 0.03 / np.sqrt(width)
    assert np.corrcoef(r.profile_mean, em.profile_truth)[0, 1] > 0.99
    assert np.abs(np.array(r.conductive_fraction_profile) - em.connected_fraction_profile).mean() < 0.03
    assert 0 < r.connected_fraction <= 1
    assert r.n_connected_regions >= 1


def test_collector_side_rotations_agree(sim_map):
    img = sim_map.image
    ref = analyze_ebac(img, pixel_size_um=PIXEL, collector_side="top")
    for side, rotated in (("bottom", img[::-1]), ("left", img.T), ("right", img.T[:, ::-1])):
        r = analyze_ebac(rotated, pixel_size_um=PIXEL, collector_side=side)
        assert r.profile_mean == pytest.approx(ref.profile_mean)
        assert r.connected_fraction == pytest.approx(ref.connected_fraction)
        back = {"bottom": r.conductive_map[::-1], "left": r.conductive_map.T,
                "right": r.conductive_map[:, ::-1].T}[side]
        assert np.array_equal(back, ref.conductive_map)


def test_connected_fraction_counts_regions_touching_the_collector():
    img = np.full((40, 60), 0.1)
    img[0:30, 5:15] = 0.9  # bar from the collector edge (row 0 = top)
    img[10:20, 30:50] = 0.9  # floating block
    r = analyze_ebac(img, pixel_size_um=0.1, collector_side="top", smooth_sigma_px=0)
    assert r.connected_fraction == pytest.approx(300 / 500)
    assert r.n_regions == 2 and r.n_connected_regions == 1
    # the block touches the collector once the band covers its depth (e.g. a visible foil)
    r2 = analyze_ebac(img, pixel_size_um=0.1, collector_side="top", smooth_sigma_px=0, collector_offset_um=1.05)
    assert r2.connected_fraction == pytest.approx(1.0)
    assert r.penetration_depth_um == pytest.approx(2.95)  # the bar ends at row 29


def test_flattening_removes_shading(sim_map):
    rows, cols = sim_map.image.shape
    ramp = 0.35 * np.linspace(0, 1, cols)[None, :] * np.ones((rows, 1))  # strong left-to-right shading
    shaded = sim_map.image + ramp
    plain = analyze_ebac(shaded, pixel_size_um=PIXEL, collector_side="top")
    flat = analyze_ebac(shaded, pixel_size_um=PIXEL, collector_side="top", flatten_sigma_um=2.0)
    assert _dice(flat.conductive_map, sim_map.conductive_truth) >= 0.9
    assert _dice(flat.conductive_map, sim_map.conductive_truth) > _dice(plain.conductive_map,
                                                                          sim_map.conductive_truth)
    assert any("flattened" in n for n in flat.notes)


def test_compare_a_calendering_series():
    results, truths = [], []
    for n in (120, 220, 340):  # denser electrodes: more conductive area connected to the collector
        em = render_ebac(_electrode(n, seed=5), thickness_axis="y", collector_side="low", pixel_size_um=PIXEL,
                         seed=1)
        results.append(analyze_ebac(em.image, pixel_size_um=PIXEL, collector_side="top"))
        truths.append(em.conductive_truth.mean())
    cmp = compare_ebac(results, ["20%", "30%", "40%"])
    assert cmp.labels == ("20%", "30%", "40%")
    assert np.all(np.diff(truths) > 0)
    assert cmp.conductive_area_fraction == pytest.approx(truths, abs=0.02)
    assert cmp.increasing_conductive_area
    assert len(cmp.profiles["30%"]) == len(cmp.depth_um)
    with pytest.raises(InputError, match="at least 2"):
        compare_ebac(results[:1])
    with pytest.raises(InputError, match="one distinct label"):
        compare_ebac(results, ["a", "a", "b"])


@pytest.mark.parametrize("page", range(4))
def test_real_sem_sections(page):
    """The bundled segmented SEM sections (values 0/1/2) as maps: no crash, consistent output."""
    stack = tifffile.imread(SEM)
    r = analyze_ebac_file(SEM, page=page, pixel_size_um=0.1, collector_side="bottom")
    img = stack[page].astype(float)
    assert r.shape == img.shape
    assert r.profile_mean == pytest.approx(img[::-1].mean(axis=1))  # row 0 of the scan = bottom line
    assert 0.5 < r.threshold < 2.0  # between the grey levels present
    brightest = img > r.threshold
    assert abs(r.conductive_area_fraction - brightest.mean()) < 0.03
    assert 0.0 <= r.connected_fraction <= 1.0 and r.n_regions >= 1
    assert len(r.depth_um) == img.shape[0] and r.depth_um[-1] == pytest.approx((img.shape[0] - 0.5) * 0.1)
    d = r.to_dict()
    assert "conductive_map" not in d and "connected_map" not in d  # maps stay out of the JSON
    json.dumps(d)


def test_rgb_map_is_converted_with_a_note(sim_map):
    grey = sim_map.image
    rgb = np.stack([grey] * 3, axis=-1)
    r = analyze_ebac(rgb, pixel_size_um=PIXEL, collector_side="top")
    ref = analyze_ebac(grey, pixel_size_um=PIXEL, collector_side="top")
    assert np.array_equal(r.conductive_map, ref.conductive_map)
    assert any("RGB input converted" in n and "identical" in n for n in r.notes)
    tinted = np.stack([grey, 0.5 * grey, np.zeros_like(grey)], axis=-1)
    rgba = np.concatenate([tinted, np.ones_like(grey)[..., None]], axis=-1)
    r2 = analyze_ebac(rgba, pixel_size_um=PIXEL, collector_side="top")
    assert any("colour information was discarded" in n for n in r2.notes)


def test_bad_maps():
    with pytest.raises(InputError, match="no contrast"):
        analyze_ebac(np.full((50, 50), 0.4), pixel_size_um=0.1)
    with pytest.raises(InputError, match="NaN"):
        img = np.random.default_rng(0).random((20, 20))
        img[3, 3] = np.nan
        analyze_ebac(img, pixel_size_um=0.1)
    with pytest.raises(InputError, match="2D image"):
        analyze_ebac(np.zeros((4, 20, 20)), pixel_size_um=0.1)
    img = np.random.default_rng(0).random((20, 20))
    with pytest.raises(InputError, match="collector_side"):
        analyze_ebac(img, pixel_size_um=0.1, collector_side="low")
    with pytest.raises(InputError, match="threshold method"):
        analyze_ebac(img, pixel_size_um=0.1, method="magic")
    with pytest.raises(InputError, match="pixel_size_um"):
        analyze_ebac(img, pixel_size_um=0)
    with pytest.raises(InputError, match="all dark"):
        analyze_ebac(img, pixel_size_um=0.1, method=5.0)


def test_files(tmp_path, sim_map):
    tagged = tmp_path / "tagged.tif"
    tifffile.imwrite(tagged, sim_map.image, imagej=True, resolution=(1 / PIXEL, 1 / PIXEL),
                     metadata={"unit": "um"})
    r = analyze_ebac_file(tagged, collector_side="top")
    assert r.pixel_size_um == pytest.approx(PIXEL)
    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, sim_map.image)
    with pytest.raises(InputError, match="pixel size"):
        analyze_ebac_file(bare)
    with pytest.raises(InputError, match="page"):
        analyze_ebac_file(SEM, pixel_size_um=0.1)
    with pytest.raises(InputError, match="page 7"):
        analyze_ebac_file(SEM, pixel_size_um=0.1, page=7)
    with pytest.raises(InputError, match="not a file"):
        analyze_ebac_file(tmp_path / "missing.tif", pixel_size_um=0.1)


def test_cli(tmp_path, sim_map):
    runner = CliRunner()
    path = tmp_path / "map.tif"
    tifffile.imwrite(path, sim_map.image[::-1])  # collector at the bottom
    res = runner.invoke(app, ["ebac", str(path), "--pixel-size", "0.05", "--collector", "bottom", "--json",
                              "--map-out", str(tmp_path / "regions.tif")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["collector_side"] == "bottom" and 0 < data["connected_fraction"] <= 1
    regions = tifffile.imread(tmp_path / "regions.tif")
    assert set(np.unique(regions)) <= {0, 1, 2} and regions.shape == sim_map.image.shape
    res = runner.invoke(app, ["ebac", str(path), str(path), "--pixel-size", "0.05", "--labels", "a,b", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["comparison"]["labels"] == ["a", "b"]
    res = runner.invoke(app, ["ebac", str(path), "--pixel-size", "0.05"])  # human-readable output
    assert res.exit_code == 0 and "connected_fraction" in res.output
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((30, 30), np.float32))
    res = runner.invoke(app, ["ebac", str(flat), "--pixel-size", "0.05"])
    assert res.exit_code == 2 and "no contrast" in res.output


def test_uint16_map_and_8_connectivity():
    em = render_ebac(_electrode(300), thickness_axis="y", collector_side="low", pixel_size_um=PIXEL,
                     noise_sigma=0.03, dtype=np.uint16, seed=3)
    r = analyze_ebac(em.image, pixel_size_um=PIXEL, collector_side="top")
    assert _dice(r.conductive_map, em.conductive_truth) >= 0.95
    assert np.corrcoef(r.profile_mean, em.profile_truth)[0, 1] > 0.99  # profile in the map's own units
    r8 = analyze_ebac(em.image, pixel_size_um=PIXEL, collector_side="top", connectivity=8)
    assert np.array_equal(r8.conductive_map, r.conductive_map)
    assert r8.n_regions <= r.n_regions and r8.connected_fraction >= r.connected_fraction
    with pytest.raises(InputError, match="connectivity"):
        analyze_ebac(em.image, pixel_size_um=PIXEL, connectivity=6)

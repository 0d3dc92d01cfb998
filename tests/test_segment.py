"""Phase segmentation, watershed instances, cleaning, collector detection, CLI `segment`."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from twinlab.errors import InputError
from twinlab.segment import (
    apply_phase_model,
    clean_labels,
    detect_collector,
    dice,
    feature_halo,
    fit_gmm,
    fit_multiotsu,
    match_instances,
    model_from_thresholds,
    segment_phases,
    split_particles,
    split_pores,
    train_classifier,
)

from _segment_synth import make_electrode

XCT = Path(__file__).resolve().parents[1] / "datasets" / "xct_cell"


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def electrode():
    """(24, 40, 44) three-phase electrode: 0 pore, 1 active, 2 cbd, with particle instances."""
    return make_electrode((24, 40, 44), rmin=4.0, rmax=7.0, cbd_closing=2, cbd_shell=2, seed=3)


@pytest.fixture(scope="module")
def noisy(electrode):
    """Gray image of the electrode: levels 50 / 125 / 200 (pore / cbd / active), Gaussian noise σ = 20."""
    phases, _ = electrode
    rng = np.random.default_rng(7)
    levels = np.array([50.0, 200.0, 125.0])  # value order: pore, active, cbd
    return (levels[phases] + rng.normal(0, 20, phases.shape)).astype(np.float32)


def _scribbles(phases: np.ndarray, zs=(4, 12, 20)) -> np.ndarray:
    """Truth on a few slices: 1 pore, 2 cbd, 3 active (the order of phases=pore,cbd,active)."""
    scr = np.zeros(phases.shape, np.uint8)
    for z in zs:
        for k, v in enumerate((0, 2, 1), start=1):
            scr[z][phases[z] == v] = k
    return scr


# ---------------------------------------------------------------------------- phase segmentation
@pytest.mark.parametrize("method", ["multiotsu", "gmm", "gmm-full"])
def test_threshold_methods_recover_phases(noisy, electrode, method):
    phases, _ = electrode
    if method == "gmm-full":
        labels = apply_phase_model(noisy, fit_gmm(noisy, covariance="full"))
    else:
        labels = segment_phases(noisy, method=method)
    assert labels.dtype == np.uint8 and labels.shape == phases.shape
    d = dice(labels, phases)
    assert d[0] >= 0.95 and d[1] >= 0.95, d
    assert d[2] >= 0.70, d  # thin necks: partial-volume voxels at AM/pore borders look like CBD


def test_classifier_from_scribbles(noisy, electrode):
    phases, _ = electrode
    model = train_classifier(noisy, _scribbles(phases), sigmas=(0.7, 1.6))
    d = dice(segment_phases(noisy, classifier=model), phases)
    assert d[0] >= 0.95 and d[1] >= 0.95 and d[2] >= 0.70, d


@pytest.mark.parametrize("method", ["multiotsu", "gmm", "classifier"])
def test_chunked_equals_whole(noisy, electrode, method):
    phases, _ = electrode
    if method == "classifier":
        model = train_classifier(noisy, _scribbles(phases), sigmas=(0.7, 1.6), n_estimators=10)
    else:
        model = (fit_multiotsu if method == "multiotsu" else fit_gmm)(noisy)
    whole = apply_phase_model(noisy, model)
    halo = model.halo
    chunks = (8, 14, 15) if halo else (7, 13, 11)  # uneven chunk borders; the last chunk ≥ the halo
    lazy = apply_phase_model(da.from_array(noisy, chunks=chunks), model)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), whole)


def test_fit_on_dask_samples_is_chunk_independent(noisy):
    big = np.tile(noisy, (2, 3, 3))  # > 4 M voxels? no: force sampling with a small max_voxels
    from twinlab.segment import sample_values

    a = sample_values(big, sample_chunks=5, sample_size=16, seed=1, max_voxels=1000)
    b = sample_values(da.from_array(big, chunks=(9, 17, 23)), sample_chunks=5, sample_size=16, seed=1,
                      max_voxels=1000)
    np.testing.assert_array_equal(a, b)
    assert a.size == 5 * 16 ** 3


def test_explicit_thresholds_and_2d():
    img = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    lab = segment_phases(img, thresholds=[1.5, 3.5])  # pore ≤ 1.5 < cbd ≤ 3.5 < active
    np.testing.assert_array_equal(lab, [[0, 0, 2], [2, 1, 1]])


def test_xct_real_slices_foreground_dice():
    """Real X-ray CT slices with hand-made masks: multi-Otsu with three classes (outside, matrix,
    bright structure), foreground = brightest class. Measured Dice 0.903 (im_1) and 0.917 (im_2)."""
    tifffile = pytest.importorskip("tifffile")
    for i, floor in ((1, 0.89), (2, 0.90)):
        img = tifffile.imread(XCT / f"im_{i}.tif")
        mask = (tifffile.imread(XCT / f"mask_{i}.tif") > 0).astype(np.uint8)
        lab = segment_phases(img, method="multiotsu", phases=("pore", "cbd", "active"))
        score = dice((lab == 1).astype(np.uint8), mask)[1]
        assert score >= floor, (i, score)


# ---------------------------------------------------------------------------- instances
def test_split_particles_matches_truth(electrode):
    phases, truth = electrode
    sizes = np.bincount(truth.ravel())
    big = np.flatnonzero(sizes >= 30)[1:]  # truth slivers under 30 voxels cannot be matched
    truth_big = np.where(np.isin(truth, big), truth, 0)
    inst = split_particles(phases, voxel_size_um=1.0)
    assert inst.dtype == np.uint32
    m = match_instances(inst, truth_big)
    print(m)
    assert m.fraction_matched >= 0.90, m
    assert m.adjusted_rand_index > 0.95, m


def test_split_chunked_equals_whole_up_to_renumbering(electrode):
    phases, _ = electrode
    whole = split_particles(phases, voxel_size_um=(1.0, 0.8, 0.8))
    lazy = split_particles(da.from_array(phases, chunks=(9, 17, 23)), voxel_size_um=(1.0, 0.8, 0.8), depth=16)
    assert isinstance(lazy, da.Array)
    chunked = lazy.compute()
    assert ((whole > 0) == (chunked > 0)).all()
    pairs = np.unique(np.stack([whole.ravel(), chunked.ravel()]), axis=1)
    # a bijection between the two label sets: same partition
    assert len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def test_split_chunked_scratch_on_disk(electrode, tmp_path):
    phases, _ = electrode
    lazy = da.from_array(phases, chunks=(12, 20, 22))
    in_memory = split_particles(lazy, depth=14).compute()
    on_disk = split_particles(lazy, depth=14, scratch=tmp_path, workers=2).compute()  # 2 threads
    np.testing.assert_array_equal(in_memory, on_disk)
    assert (tmp_path / "instances.zarr").is_dir()


def test_two_touching_spheres_anisotropic():
    """Two equal balls (radius 6 µm) overlapping a little, voxels 1 × 0.5 × 0.5 µm: two particles."""
    vs = (1.0, 0.5, 0.5)
    shape = (20, 40, 64)
    g = np.indices(shape).astype(float) * np.array(vs)[:, None, None, None]
    c1, c2 = np.array([10.0, 10.0, 9.0]), np.array([10.0, 10.0, 20.0])
    mask = (((g - c1[:, None, None, None]) ** 2).sum(0) <= 36) | (((g - c2[:, None, None, None]) ** 2).sum(0) <= 36)
    inst = split_particles(mask, voxel_size_um=vs)
    assert inst.max() == 2
    # in µm the split plane is the mid-plane x = 14.5 µm
    assert inst[10, 20, 20] != inst[10, 20, 38]


def test_split_pores_and_2d(electrode):
    phases, _ = electrode
    pores = split_pores(phases[12])
    assert pores.ndim == 2 and pores.max() >= 1
    assert ((pores > 0) == (phases[12] == 0)).all()


def test_min_distance_markers(electrode):
    phases, truth = electrode
    inst = split_particles(phases, min_distance_um=3.0)
    assert ((inst > 0) == (phases == 1)).all() and inst.max() >= 5


def test_clean_labels_numpy_and_dask():
    lab = np.zeros((10, 10, 10), np.uint32)
    lab[1:6, 1:6, 1:6] = 1
    lab[3, 3, 3] = 0  # a hole
    lab[8, 8, 8] = 2  # a speck
    out = clean_labels(lab, min_size_voxels=5, fill_holes=True)
    assert out[8, 8, 8] == 0 and out[3, 3, 3] == 1 and (out == 1).sum() == 125
    lazy = clean_labels(da.from_array(lab, chunks=4), min_size_voxels=5)
    assert lazy.compute()[8, 8, 8] == 0 and lazy.compute()[3, 3, 3] == 0
    with pytest.raises(InputError, match="fill_holes"):
        clean_labels(da.from_array(lab, chunks=4), fill_holes=True)


def test_detect_collector_on_labels_and_image(electrode):
    phases, _ = electrode
    vol = phases.copy()
    vol[:, -5:, :] = 3  # collector slab at the high end of y
    info = detect_collector(vol, thickness_axis="y")
    assert info.found and info.side == "high" and info.thickness_voxels == 5
    noisy_img = np.where(vol == 3, 230.0, np.where(vol == 1, 200.0, 50.0))
    noisy_img = noisy_img + np.random.default_rng(1).normal(0, 5, vol.shape)
    info = detect_collector(da.from_array(noisy_img, chunks=10), thickness_axis="y")
    assert info.found and info.side == "high" and info.thickness_voxels == 5
    assert not detect_collector(phases, thickness_axis="y").found


# ---------------------------------------------------------------------------- errors
def test_one_phase_volume_is_refused():
    with pytest.raises(InputError, match="single gray value"):
        segment_phases(np.full((8, 8, 8), 7.0))
    with pytest.raises(InputError, match="single gray value"):
        fit_gmm(np.full((8, 8, 8), 7.0))


def test_classifier_missing_phase_scribbles(noisy, electrode):
    phases, _ = electrode
    scr = _scribbles(phases)
    scr[scr == 2] = 0  # no CBD strokes
    with pytest.raises(InputError, match="no scribbles for phase.*cbd"):
        train_classifier(noisy, scr)
    with pytest.raises(InputError, match="exceeds"):
        train_classifier(noisy, np.where(scr > 0, scr + 3, 0).astype(np.uint8))
    with pytest.raises(InputError, match="shape"):
        train_classifier(noisy, scr[:-1])


def test_bad_options():
    img = np.random.default_rng(0).random((6, 6, 6))
    with pytest.raises(InputError, match="unknown segmentation method"):
        segment_phases(img, method="kmeans")
    with pytest.raises(InputError, match="needs a trained model"):
        segment_phases(img, method="classifier")
    with pytest.raises(InputError, match="thresholds"):
        model_from_thresholds([0.5])
    with pytest.raises(InputError, match="increasing"):
        model_from_thresholds([0.6, 0.5])
    with pytest.raises(InputError, match="unknown phase"):
        segment_phases(img, phases=("pore", "unobtainium"))
    with pytest.raises(InputError, match="at least two"):
        segment_phases(img, phases=("pore",))
    with pytest.raises(InputError, match="integer phase labels"):
        split_particles(img)
    with pytest.raises(InputError, match="covariance"):
        fit_gmm(img, covariance="diag")
    with pytest.raises(InputError, match="footprint is too large"):
        split_particles(img > 0.5, voxel_size_um=0.01, min_distance_um=5.0)
    with pytest.raises(InputError, match="saddle_ratio"):
        split_particles(img > 0.5, saddle_ratio=1.5)


def test_classifier_chunks_thinner_than_halo(noisy, electrode):
    phases, _ = electrode
    model = train_classifier(noisy, _scribbles(phases), sigmas=(0.7, 3.0), n_estimators=5)
    assert model.halo == feature_halo((0.7, 3.0)) == 12
    with pytest.raises(InputError, match="halo"):
        apply_phase_model(da.from_array(noisy, chunks=(6, 40, 44)), model)


# ---------------------------------------------------------------------------- twin + CLI
def test_cli_segment_writes_labels(make_twin, noisy, tmp_path):
    from typer.testing import CliRunner

    from twinlab.cli import app
    from twinlab.twin import Twin

    img = np.clip(noisy * 100, 0, 65535).astype(np.uint16)
    twin = make_twin(img)
    res = CliRunner().invoke(app, ["segment", str(twin.path), "--min-distance-um", "0.15", "--json"])
    assert res.exit_code == 0, res.output
    import json

    out = json.loads(res.output)
    assert set(out["fractions"]) == {"pore", "cbd", "active"} and out["n_particles"] >= 5
    t = Twin.open(twin.path)
    assert {"phases", "particles"} <= set(t.label_names)
    assert [p["step"] for p in t.provenance][-3:] == ["segment", "split_particles", "segment_check"]
    # classifier without scribbles: one-line error, exit 2
    res = CliRunner().invoke(app, ["segment", str(twin.path), "--method", "classifier"])
    assert res.exit_code == 2 and "scribbles" in res.output


def test_cli_segment_classifier_with_scribble_file(make_twin, noisy, electrode, tmp_path):
    from typer.testing import CliRunner

    from twinlab.cli import app

    phases, _ = electrode
    twin = make_twin(np.clip(noisy * 100, 0, 65535).astype(np.uint16))
    path = tmp_path / "scribbles.npy"
    np.save(path, _scribbles(phases))
    res = CliRunner().invoke(app, ["segment", str(twin.path), "--method", "classifier", "--scribbles", str(path),
                                   "--no-particles", "--json"])
    assert res.exit_code == 0, res.output
    from twinlab.twin import Twin

    lab = np.asarray(Twin.open(twin.path).labels("phases"))
    d = dice(lab, phases)
    assert d[0] > 0.9 and d[1] > 0.9


def test_2d_classifier_and_chunked_equals_whole():
    """2D images (one slice, a radiograph, an EBAC map) go through the same functions."""
    rng = np.random.default_rng(5)
    yy, xx = np.indices((60, 70))
    truth = np.zeros((60, 70), np.uint8)
    for cy, cx, r in ((15, 15, 9), (40, 30, 12), (20, 52, 8), (48, 60, 7)):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    img = np.where(truth == 1, 180.0, 60.0) + rng.normal(0, 25, truth.shape)
    scr = np.zeros_like(truth)
    scr[::10][truth[::10] == 0] = 1
    scr[::10][truth[::10] == 1] = 2
    model = train_classifier(img, scr, phases=("pore", "active"), sigmas=(1.0, 2.0), n_estimators=20)
    lab = segment_phases(img, classifier=model)
    assert dice(lab, truth)[1] >= 0.9
    lazy = segment_phases(da.from_array(img, chunks=(23, 31)), classifier=model)
    np.testing.assert_array_equal(lazy.compute(), lab)
    otsu = segment_phases(img, method="gmm", phases=("pore", "active"))
    assert dice(otsu, truth)[1] >= 0.9
    inst = split_particles(truth, voxel_size_um=(1.0, 0.5, 0.5))
    assert inst.max() == 4


def test_segment_twin_confines_the_collector_to_its_foil(make_twin, electrode):
    """Bright stray voxels in the coating are not collector; the foil's planes are wholly collector."""
    from twinlab.segment import segment_twin

    phases, _ = electrode
    rng = np.random.default_rng(11)
    levels = np.array([50.0, 200.0, 125.0])  # pore, active, cbd
    img = levels[phases]
    img[:, :4, :] = 300.0  # Al foil on the low-y side
    img[5, 20, 20] = img[9, 30, 10] = 300.0  # two bright specks inside the coating
    img = img + rng.normal(0, 8, img.shape)
    twin = make_twin(np.clip(img * 100, 0, 65535).astype(np.uint16), thickness_axis="y", collector_side="low")
    report = segment_twin(twin, phases="pore,cbd,active,collector", particles=False)
    lab = np.asarray(twin.reload().labels("phases"))
    assert report.collector.found and (report.collector.start, report.collector.stop) == (0, 4)
    assert (lab[:, :4] == 3).all() and not (lab[:, 4:] == 3).any()
    assert lab[5, 20, 20] == 1 and lab[9, 30, 10] == 1  # the specks became the next darker phase
    step = next(p for p in reversed(twin.reload().provenance) if p["step"] == "segment")
    assert step["params"]["collector"]["stop"] == 4


def test_confine_collector_without_a_foil_keeps_no_collector(electrode):
    """Collector-classed voxels that form no end slab (bright specks, a slab mid-coating) all go."""
    from twinlab.phases import DEFAULT_PHASES
    from twinlab.segment import confine_collector

    phases, _ = electrode
    lab = phases.copy()
    lab[3, 10:12, 10:12] = 3
    lab[:, 20:23, :] = 3  # a collector-like slab in the middle of the thickness axis: no foil
    out, info = confine_collector(da.from_array(lab, chunks=9), ("pore", "cbd", "active", "collector"),
                                  DEFAULT_PHASES, 1, "low")
    out = np.asarray(out)
    assert not info.found and not (out == 3).any()
    assert (out[lab == 3] == 1).all() and (out[lab != 3] == lab[lab != 3]).all()


def test_collector_listed_darkest_is_refused(make_twin, noisy):
    from twinlab.segment import segment_twin

    twin = make_twin(np.clip(noisy * 100, 0, 65535).astype(np.uint16))
    with pytest.raises(InputError, match="darkest phase"):
        segment_twin(twin, phases="collector,pore,active", particles=False)


# ---------------------------------------------------------------------------- cracked particles (issue 20)
def _ball(shape, centre, radius):
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius ** 2


def test_merge_cracked_fragments_joins_halves_keeps_touching_spheres():
    from twinlab.segment import merge_cracked_fragments

    shape = (32, 32, 32)
    ball = _ball(shape, (16, 16, 16), 12)
    xx = np.indices(shape)[2]
    crack = ball & (np.abs(xx - 15.5) < 1.5)  # a 2-voxel crack through the whole particle
    halves = np.where(ball, np.where(xx < 16, 1, 2), 0)
    merged = merge_cracked_fragments(halves, crack)
    assert merged.max() == 1 and (merged > 0).sum() == ball.sum()
    # two uncracked spheres touching on a contact disc: no crack voxel between them
    shape2 = (32, 32, 56)
    a, b = _ball(shape2, (16, 16, 15), 12), _ball(shape2, (16, 16, 39), 12)
    two = np.where(a, 1, np.where(b, 2, 0))
    zz, yy, xx2 = np.indices(shape2)
    two[(two == 0) & ((zz - 16) ** 2 + (yy - 16) ** 2 <= 16) & (np.abs(xx2 - 27) <= 1)] = 1  # the contact neck
    kept = merge_cracked_fragments(two, np.zeros(shape2, bool))
    assert kept.max() == 2
    # the closing bridges the pore around a point contact: the neck is "crack" but shallow → kept apart
    pair = np.where(a, 1, np.where(b, 2, 0))
    neck = (pair == 0) & ((zz - 16) ** 2 + (yy - 16) ** 2 <= 9) & (np.abs(xx2 - 27) <= 1)
    pair[neck] = 1
    assert merge_cracked_fragments(pair, neck).max() == 2
    # each test can veto the merge of the halves
    for veto in (dict(saddle_ratio=1.5), dict(min_cut=10.0), dict(sigmas=0.1)):
        assert merge_cracked_fragments(halves, crack, **veto).max() == 2, veto
    with pytest.raises(InputError, match="same volume"):
        merge_cracked_fragments(halves, crack[:-1])


def test_merge_cracked_fragments_binder_on_the_boundary_is_a_neck():
    """Cracks open after the electrode is made: the halves of a ball meeting across a slab of CBD
    are two particles in contact; across pore they are one cracked particle."""
    from twinlab.segment import merge_cracked_fragments

    shape = (32, 32, 32)
    ball = _ball(shape, (16, 16, 16), 12)
    xx = np.indices(shape)[2]
    gap = ball & (np.abs(xx - 15.5) < 1.5)
    halves = np.where(ball, np.where(xx < 16, 1, 2), 0)
    assert merge_cracked_fragments(halves, gap).max() == 1
    assert merge_cracked_fragments(halves, np.zeros(shape, bool), neck=gap).max() == 2
    assert merge_cracked_fragments(halves, gap, neck=gap, max_neck_share=1.01).max() == 1
    with pytest.raises(InputError, match="neck has shape"):
        merge_cracked_fragments(halves, gap, neck=gap[:-1])


def _outer_surface_pair(near_face_centre, cut=None):
    """Labels and crack of a ball B (radius 20) cut by the z = 0 face, and either a chip of it cut
    off by a 2-voxel crack at x = ``cut``, or a neighbour's cap A (radius 16, centre beyond the
    face) touching B, the pore wedge between them within 12 voxels bridged (crack), as the
    envelope closing of split_particles does."""
    shape = (48, 64, 64)
    xx = np.indices(shape)[2]
    b = _ball(shape, (near_face_centre, 32, 26), 20)
    if cut is not None:
        crack = b & (np.abs(xx - cut) < 1.0)
        return np.where(b, np.where(xx < cut, 1, 2), 0), crack
    a = _ball(shape, (-6, 32, 50), 16) & ~b
    da, db = ndi.distance_transform_edt(~a), ndi.distance_transform_edt(~b)
    wedge = ~a & ~b & (da + db <= 12)
    return np.where(a | b | wedge, np.where(da < db, 2, 1), 0), wedge


def test_merge_cracked_fragments_face_cut_chip_vs_neighbours_cap():
    """Two pieces on a volume face: a chip of a cracked particle continues the particle's outer
    surface (merged, 3 depths of cut); a neighbour's cap touching it sticks out of the ellipsoid
    that the two would share (kept apart). Without the outer-surface test (tolerances loosened)
    the cap merges: it is that test, not another, that keeps the neighbour apart."""
    from twinlab.segment import merge_cracked_fragments

    for cut in (38, 40, 42):
        assert merge_cracked_fragments(*_outer_surface_pair(14, cut)).max() == 1, cut
        # a chip lies on the shared ellipsoid: no bulge out of it even at a third of the default veto
        assert merge_cracked_fragments(*_outer_surface_pair(14, cut), face_bulge=0.25).max() == 1, cut
    cap = _outer_surface_pair(20)
    assert merge_cracked_fragments(*cap).max() == 2
    assert merge_cracked_fragments(*cap, sigmas=100.0).max() == 1
    # the face-cut cap lies outside the shared ellipsoid on average (0.25–0.5 voxel here): the bulge
    # veto alone keeps it apart once set below that (the generated case bulges 1.3 voxels)
    assert merge_cracked_fragments(*cap, sigmas=100.0, face_bulge=0.25).max() == 2


def test_merge_cracked_fragments_piece_the_shape_cannot_place_joins_its_main_neighbour():
    """A sliver on a face of the volume (P) shows only 3 voxels of outer surface, in the notch
    between particle A (25 faces of boundary) and particle B (20). Three points fit any ellipse
    (they lie on B's circle): the shape cannot tell which particle the sliver belongs to, so it
    joins only the neighbour it shares most boundary with (it joined B, the pair with the
    fewest points to contradict it: seed 8's 2D section z=60 then joined three particles)."""
    from twinlab.segment import merge_cracked_fragments

    yy, xx = np.mgrid[0:56, 0:40]
    a = ((yy - 12) / 17.0) ** 2 + ((xx - 12) / 12.0) ** 2 <= 1
    b = (yy - 40) ** 2 + (xx - 10) ** 2 <= 14 ** 2
    sliver = (xx <= 3) & (yy <= 43)
    labels = np.zeros(yy.shape, np.int64)
    labels[a & ~sliver] = 1
    labels[b & ~sliver & (labels == 0)] = 2
    labels[sliver] = 3
    outer = sliver & ndi.binary_dilation(labels == 0)
    assert outer.sum() == 3  # the sliver's outer surface: too few points to tell a shape
    merged = merge_cracked_fragments(labels)
    assert merged.max() == 2
    assert merged[5, 1] == merged[5, 20] != merged[50, 10]  # with A, not with B


def test_merge_cracked_fragments_crack_out_through_a_face_is_judged_mirrored():
    """A section's cap of a particle whose body lies beyond the face x = 29, cut across by a crack
    that runs out through the face. The crack (8 pixels) is shorter than the span test asks of
    the smaller half (1.25 √62 = 9.8 pixels): what is in view of the crack and of the cap is a
    part; mirrored across the face both double (8 ≥ 9.8 / √2), and the halves are merged (seed 8's
    section z=30: a sliver split by its crack, crack fraction 0.15 found as two pieces of 0). The
    same halves one pixel off the face are all there is of them: a boundary that short is a neck;
    so is a boundary across solid at the face."""
    from twinlab.segment import merge_cracked_fragments

    yy, xx = np.mgrid[0:40, 0:30]
    cap = (yy - 20) ** 2 + (xx - 36) ** 2 <= 14 ** 2
    crack = cap & (np.abs(yy - 19.5) < 1)  # 2 pixels wide, across the cap and out through the face
    halves = np.where(cap, np.where(yy < 21, 1, 2), 0)
    assert cap[:, -1].any() and min(np.bincount(halves.ravel())[1:]) == 62
    assert merge_cracked_fragments(halves, crack).max() == 1
    # across solid it is a contact seen in part (two neighbours' caps meeting at the face)
    assert merge_cracked_fragments(halves, np.zeros_like(crack)).max() == 2
    off_face = np.zeros_like(halves)
    off_face[:, :-1] = halves[:, 1:]
    assert merge_cracked_fragments(off_face, np.roll(crack, -1, axis=1)).max() == 2


def test_merge_cracked_fragments_enclosed_junction_is_dissolved_into_its_neighbours():
    """Three discs overlapping deeply in a section, and a piece (J) at their junction that touches
    neither the background nor a face: where three particles overlap, their union's distance map
    has a maximum of its own there, so the watershed gives it a basin. With no outline of its own
    it fitted any neighbour (misfit 0) and was merged whole into one (then that neighbour had its
    high-saddle boundaries with the other two and took both: benchmark seed 8's uncracked section
    z=60, 6 particles found of 9). It waits until its neighbours are one region; they are not, so
    each of its pixels goes to the nearest neighbour."""
    from twinlab.segment import merge_cracked_fragments

    yy, xx = np.mgrid[0:80, 0:80]
    centres = ((28, 26), (28, 54), (52, 40))
    d = np.stack([np.hypot(yy - cy, xx - cx) for cy, cx in centres])
    union = (d <= 18).any(0)
    labels = np.where(union, d.argmin(0) + 1, 0)
    cy, cx = np.mean(centres, 0)
    junction = union & (np.hypot(yy - cy, xx - cx) <= 7)
    labels[junction] = 4
    assert not (junction & ndi.binary_dilation(labels == 0)).any()  # enclosed
    merged = merge_cracked_fragments(labels)
    assert merged.max() == 3
    assert np.unique(merged[junction]).size == 3  # shared out, not handed to one disc
    for k in (1, 2, 3):
        assert np.unique(merged[(labels == k)]).size == 1


@pytest.mark.xfail(strict=True, reason="known limit of the 2D junction rule (merge_cracked_fragments docs)")
def test_merge_cracked_fragments_inner_piece_of_a_cracked_particle_joins_it():
    """The price of the junction rule: a disc cut by a crack into two halves that border a core
    piece (enclosed by both halves and the crack). The halves meet along 2 × 13 crack pixels,
    too short to span a half (1.25 √628 = 31) without the core's boundary, so they never merge;
    the core waits, and is shared out between them at the end: 2 particles, where merging the
    core whole into a half (the old rule) gave 1. No cracked section of the benchmark shows this
    (seeds 1–11 unchanged but seed 6, which improved)."""
    from twinlab.segment import merge_cracked_fragments

    yy, xx = np.mgrid[0:50, 0:50]
    r = np.hypot(yy - 25, xx - 25)
    disc = r <= 20
    crack = disc & (np.abs(xx - 24.5) < 1) & (r > 7)
    labels = np.where(disc, np.where(xx < 25, 1, 2), 0)
    labels[r <= 7] = 3
    assert merge_cracked_fragments(labels, crack).max() == 1


def test_split_particles_section_keeps_a_hollow_ring_whole():
    """A 2D section through a hollow particle whose core a 0.5 µm crack opens to the outside: the
    closing makes the core a hole that one piece of solid encloses, so it is filled into the
    envelope and the ring stays one particle (left open, as the pore between neighbours must be,
    the ring fell into 4 pieces); three discs 0.4 µm apart, whose pore the closing encloses, stay 3."""
    yy, xx = np.indices((90, 90))
    r2 = (yy - 45) ** 2 + (xx - 45) ** 2
    ring = ((r2 <= 30 ** 2) & (r2 > 12 ** 2) & ~((np.abs(yy - 45) <= 2) & (xx > 45))).astype(np.uint8)
    kw = dict(voxel_size_um=0.1, crack_width_um=1.0, merge_cracked=True, min_volume_um3=0.1)
    assert split_particles(ring, **kw).max() == 1
    yy, xx = np.indices((100, 100))
    discs = sum(((yy - cy) ** 2 + (xx - cx) ** 2 <= 18 ** 2) for cy, cx in ((30, 30), (30, 70), (65, 50)))
    assert split_particles((discs > 0).astype(np.uint8), **kw).max() == 3


def test_split_particles_keeps_a_cracked_particle_whole():
    lab = np.zeros((34, 34, 60), np.uint8)
    a, b = _ball(lab.shape, (17, 17, 16), 12), _ball(lab.shape, (17, 17, 41), 12)
    lab[a | b] = 1
    xx = np.indices(lab.shape)[2]
    lab[a & (np.abs(xx - 16) < 1)] = 0  # a 1 µm crack right through the first particle
    plain = split_particles(lab, voxel_size_um=1.0, crack_width_um=None)
    assert plain.max() == 3  # the crack halves become particles
    # the closing bridges the crack, but the mouths it leaves open dent the envelope: two markers,
    # and the fragment merge (a long, deep boundary of crack voxels) joins them
    assert split_particles(lab, voxel_size_um=1.0, crack_width_um=1.0, merge_cracked=False).max() == 3
    inst = split_particles(lab, voxel_size_um=1.0, crack_width_um=1.0, merge_cracked=True)
    assert inst.max() == 2  # cracked particle whole, its touching neighbour apart
    assert len(np.unique(inst[a & (lab == 1)])) == 1
    sl = split_particles(lab[17], voxel_size_um=1.0, crack_width_um=1.0, merge_cracked=True)  # 2D section
    assert sl.max() == 2
    tiny = lab.copy()
    tiny[0:2, 0:2, 0:2] = 1  # an 8 µm³ speck
    assert split_particles(tiny, voxel_size_um=1.0, crack_width_um=1.0, min_volume_um3=10.0, merge_cracked=True).max() == 2
    for y0 in (15, 17, 21):  # the volume's face cuts the cracked particle, the crack runs out through it
        cut = lab[:, y0:]
        assert split_particles(cut, voxel_size_um=1.0, crack_width_um=1.0, merge_cracked=True).max() == 2, y0
        assert split_particles(np.where(a | b, 1, 0)[:, y0:].astype(np.uint8), voxel_size_um=1.0,
                               crack_width_um=1.0, merge_cracked=True).max() == 2, y0  # intact pair apart
    with pytest.raises(InputError, match="crack_width_um"):
        split_particles(lab, crack_width_um=-1.0)
    with pytest.raises(InputError, match="min_volume_um3"):
        split_particles(lab, min_volume_um3=float("nan"))
    with pytest.raises(InputError, match="max_hole_um"):
        split_particles(lab, max_hole_um=0.0)


def test_split_particles_section_joins_the_shards_of_a_shattered_hollow_particle():
    """A 2D section of a hollow particle (6 µm, core 2 µm) shattered by five 0.4 µm radial cracks
    into five shards around its core: the core, pore wider than a crack, is bordered by all five,
    so it is no hole of one piece, and the shards' boundaries (crack faces 2 µm long) are too short
    to span a shard: the merge alone left 4 pieces and found 111 of 715 crack pixels. The shards,
    none an ellipse of its own, whose outline less the core is one ellipse, are one particle, the
    core its crack. Six discs around a pore, neighbours 0.2 µm apart (the closing bridges the gaps
    and encloses the pore; each disc is an ellipse of its own), stay six, with no crack."""
    from twinlab.analyses.cracks import SECTION_WIDENING, crack_volume
    from twinlab.segment.instances import SECTION_GAP

    assert SECTION_GAP == SECTION_WIDENING  # the join reaches as far as the section's crack measure bridges
    kw = dict(voxel_size_um=0.1, crack_width_um=1.0)
    yy, xx = np.indices((90, 90))
    r, theta = np.hypot(yy - 45, xx - 45), np.arctan2(yy - 45, xx - 45)
    shards = (r <= 30) & (r > 10)
    for k in range(5):
        along = theta - 0.3 - 2 * np.pi * k / 5
        shards &= ~((np.abs(np.sin(along)) * r < 2) & (np.cos(along) > 0))  # a crack 4 pixels wide
    shards = shards.astype(np.uint8)
    assert split_particles(shards, merge_cracked=True, min_volume_um3=0.1, **kw).max() == 1
    found = crack_volume(shards, thickness_axis="y", **kw)
    true = int(((r <= 30) & (shards == 0)).sum())
    assert found.n_particles == 1 and abs(int(found.crack_mask.sum()) / true - 1) < 0.05
    yy, xx = np.indices((120, 120))
    discs = np.zeros((120, 120), bool)
    for k in range(6):  # centres 30 px from the middle, 60° apart: neighbours 0.2 µm apart (radius 14)
        cy, cx = 60 + 30 * np.sin(np.pi * k / 3), 60 + 30 * np.cos(np.pi * k / 3)
        discs |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 14 ** 2
    discs = discs.astype(np.uint8)
    assert split_particles(discs, merge_cracked=True, min_volume_um3=0.1, **kw).max() == 6
    intact = crack_volume(discs, thickness_axis="y", **kw)
    assert intact.n_particles == 6 and intact.crack_mask.sum() == 0


def test_split_particles_section_joins_four_shards_that_fit_the_ellipse_loosely():
    """Four shards of a shattered hollow disc (6.4 µm, core 2.4 µm, two crossing 0.5 µm cracks):
    each pair of neighbouring shards lies 3.5–4.1 times the larger shard's own scatter off the
    pair's ellipse (their outline less the core still shows the other shards' crack faces), as
    the four shards of benchmark seed 1's shattered particle in the 64 µm section z=90 (2.7–3.7).
    The join's bar ``SHARD_SIGMAS`` (4; the merge's 2.5 before stop 22 left all four apart) joins
    them into one particle."""
    from twinlab.segment.instances import SHARD_SIGMAS

    yy, xx = np.indices((100, 100))
    r = np.hypot(yy - 50, xx - 50)
    cut1 = np.abs((yy - 50) * np.cos(0.3) - (xx - 50) * np.sin(0.3)) <= 2.5
    cut2 = np.abs((yy - 50) * np.sin(0.5) + (xx - 50) * np.cos(0.5)) <= 2.5
    shards = ((r <= 32) & (r > 12) & ~cut1 & ~cut2).astype(np.uint8)
    assert SHARD_SIGMAS >= 4.0
    assert split_particles(shards, voxel_size_um=0.1, crack_width_um=1.0, merge_cracked=True,
                           min_volume_um3=0.1).max() == 1

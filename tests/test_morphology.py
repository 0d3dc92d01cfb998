"""Morphology: fractions and profiles, interface areas, TPB, size distributions."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from twinlab.analyses.morphology import (
    analyze_twin,
    compute_interface_areas,
    compute_local_thickness,
    compute_particle_sizes,
    compute_phase_fractions,
    compute_size_distribution,
    compute_tpb_density,
)
from twinlab.errors import InputError
from twinlab.phases import PhaseTable

TABLE = PhaseTable.from_names(["pore", "active", "cbd"])


def ball(r, pad=5, offset=0.3):
    n = int(2 * r + 2 * pad)
    z, y, x = np.indices((n, n, n)) - (n - 1) / 2 + offset
    return ((z ** 2 + y ** 2 + x ** 2) <= r * r).astype(np.uint8)


@pytest.mark.parametrize("r", [10, 14, 20])
def test_sphere_surface_to_volume_within_2_percent(r):
    lab = ball(r)  # 1 = active inside pore
    ia = compute_interface_areas(lab, phases=TABLE.subset(["pore", "active"]), voxel_size_um=1.0)
    area_um2 = ia.specific_surface_m2_m3["active"] * ia.total_volume_um3 * 1e-6
    volume = lab.sum()  # voxel volume of the digital ball
    assert area_um2 / volume == pytest.approx(3 / r, rel=0.02)
    assert area_um2 == pytest.approx(4 * np.pi * r * r, rel=0.02)
    # a plain face count would be ~1.5× too large: the correction is doing the work
    faces = sum(np.count_nonzero(np.diff(lab.astype(int), axis=a)) for a in range(3))
    assert faces / area_um2 > 1.35
    # surface of the pore = surface of the ball (two-phase)
    assert ia.specific_surface_m2_m3["pore"] == pytest.approx(ia.specific_surface_m2_m3["active"])


def test_touching_cubes_give_exact_contact_area_anisotropic():
    lab = np.zeros((30, 31, 50), np.uint8)
    lab[5:25, 5:25, 5:25] = 1
    lab[5:25, 5:25, 25:45] = 2
    vs = (0.5, 2.0, 3.0)
    ia = compute_interface_areas(lab, phases=TABLE, voxel_size_um=vs)
    contact_um2 = ia.specific_contact_m2_m3["active|cbd"] * ia.total_volume_um3 * 1e-6
    assert contact_um2 == pytest.approx(20 * 20 * vs[0] * vs[1], rel=1e-9)
    assert ia.total_volume_um3 == pytest.approx(30 * 31 * 50 * 3.0)


def test_interface_areas_chunked_equals_whole(phase_volume):
    whole = compute_interface_areas(phase_volume, phases=TABLE, voxel_size_um=(0.05, 0.04, 0.04))
    chunked = compute_interface_areas(da.from_array(phase_volume, chunks=(7, 11, 13)), phases=TABLE,
                                      voxel_size_um=(0.05, 0.04, 0.04))
    for k, v in whole.specific_contact_m2_m3.items():
        assert chunked.specific_contact_m2_m3[k] == pytest.approx(v, rel=1e-9)
    for k, v in whole.specific_surface_m2_m3.items():
        assert chunked.specific_surface_m2_m3[k] == pytest.approx(v, rel=1e-9)


def test_fractions_and_profiles_exact_and_chunked():
    lab = np.zeros((10, 20, 12), np.uint8)
    lab[:, 10:, :] = 1  # active on the high-y half
    lab[:, 15:, :6] = 2  # cbd in part of it
    fr = compute_phase_fractions(lab, phases=TABLE, thickness_axis="y", voxel_size_um=(1, 0.5, 1))
    assert fr.fractions == pytest.approx({"pore": 0.5, "active": 0.375, "cbd": 0.125})
    assert fr.porosity == 0.5
    np.testing.assert_allclose(fr.profiles["pore"], [1] * 10 + [0] * 10)
    np.testing.assert_allclose(fr.profiles["cbd"], [0] * 15 + [0.5] * 5)
    np.testing.assert_allclose(fr.position_um, (np.arange(20) + 0.5) * 0.5)
    frd = compute_phase_fractions(da.from_array(lab, chunks=(3, 7, 5)), phases=TABLE, thickness_axis="y")
    for k in fr.profiles:
        np.testing.assert_allclose(frd.profiles[k], fr.profiles[k])


def test_unknown_phase_values_are_an_error():
    lab = np.full((5, 5, 5), 9, np.uint8)
    with pytest.raises(InputError, match="not in the phase table"):
        compute_phase_fractions(lab, phases=TABLE)
    with pytest.raises(InputError, match="not in the phase table"):
        compute_interface_areas(lab, phases=TABLE)


def test_tpb_line_exact_and_chunked():
    lab = np.zeros((20, 9, 20), np.uint8)  # pore at z < 10
    lab[10:, :, :10] = 1
    lab[10:, :, 10:] = 2
    vs = (1.0, 0.5, 1.0)
    # one TPB line along y at (z=10, x=10): length 9 · 0.5 µm in a 20·9·20·0.5 µm³ box
    expected = (9 * 0.5e-6) / (20 * 9 * 20 * 0.5e-18)
    assert compute_tpb_density(lab, phases=TABLE, voxel_size_um=vs) == pytest.approx(expected)
    chunked = compute_tpb_density(da.from_array(lab, chunks=(7, 4, 6)), phases=TABLE, voxel_size_um=vs)
    assert chunked == pytest.approx(expected)
    with pytest.raises(InputError, match="3 different"):
        compute_tpb_density(lab, phases=TABLE, triple=("pore", "pore", "cbd"))


def test_local_thickness_of_a_slab_and_a_ball():
    m = np.zeros((40, 40, 40), bool)
    m[:, 10:20, :] = True  # slab 10 voxels thick in y
    lt = compute_local_thickness(m, voxel_size_um=1.0)
    assert np.median(lt[m]) == pytest.approx(10, abs=1.5)
    assert (lt[~m] == 0).all()
    b = ball(12).astype(bool)
    ltb = compute_local_thickness(b, voxel_size_um=(2.0, 2.0, 2.0))  # µm
    assert np.median(ltb[b]) == pytest.approx(2 * 12 * 2.0, rel=0.1)
    d = compute_size_distribution(ltb[b], kind="pore")
    assert d.fraction.sum() == pytest.approx(1) and d.d10_um <= d.d50_um <= d.d90_um


def test_particle_equivalent_diameters_numpy_and_dask():
    inst = np.zeros((40, 40, 60), np.int32)
    inst[5:15, 5:15, 5:15] = 1  # 1000 voxels
    inst[20:30, 20:30, 20:28] = 2  # 800 voxels
    vs = (0.5, 0.5, 0.5)
    ps_ = compute_particle_sizes(inst, voxel_size_um=vs)
    d = sorted([(6 * 1000 * 0.125 / np.pi) ** (1 / 3), (6 * 800 * 0.125 / np.pi) ** (1 / 3)])
    assert ps_.mean_um == pytest.approx(np.mean(d))
    assert ps_.d10_um == pytest.approx(d[0]) and ps_.d90_um == pytest.approx(d[1])
    psd = compute_particle_sizes(da.from_array(inst, chunks=(13, 17, 19)), voxel_size_um=vs)
    assert psd.mean_um == pytest.approx(ps_.mean_um)
    with pytest.raises(InputError, match="no particle"):
        compute_particle_sizes(np.zeros((4, 4, 4), np.int32))


def test_analyze_twin_stores_morphology(make_twin, phase_volume):
    twin = make_twin(phase_volume.astype(np.uint16), labels={"phases": phase_volume}, phases=TABLE,
                     thickness_axis="y")
    res = analyze_twin(twin)
    stored = twin.load_result("morphology")
    assert stored["fractions"]["fractions"]["pore"] == pytest.approx(res.fractions.porosity)
    assert res.tpb_phases == ("pore", "active", "cbd") and res.tpb_density_m_m3 > 0
    assert stored["interfaces"]["specific_contact_m2_m3"]["active|cbd"] > 0
    arrays = twin.load_result_arrays("morphology")
    assert arrays["profile.pore"].shape == (phase_volume.shape[1],)


@pytest.mark.parametrize("periodic_axes", [(), (1,), (1, 2)])
def test_label_periodic_equals_a_union_find_over_periodic_faces(periodic_axes):
    """twinlab._morphology.label_periodic (one labelling + a graph of the face pairs) partitions a random
    mask as a union–find over every face pair does, wrapping around the periodic axes only."""
    from twinlab._morphology import label_periodic

    mask = np.random.default_rng(5).random((6, 7, 8)) < 0.45
    lab = label_periodic(mask, periodic_axes)
    parent = np.arange(mask.size)

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    idx = np.arange(mask.size).reshape(mask.shape)
    for ax in range(3):
        nb = np.roll(idx, -1, axis=ax)
        pair = mask & np.roll(mask, -1, axis=ax)
        if ax not in periodic_axes:
            pair &= np.arange(mask.shape[ax]).reshape([-1 if a == ax else 1 for a in range(3)]) < mask.shape[ax] - 1
        for a, b in zip(idx[pair].tolist(), nb[pair].tolist()):
            parent[find(a)] = find(b)
    roots = np.array([find(i) for i in range(mask.size)]).reshape(mask.shape)
    assert (lab[~mask] == 0).all() and (lab[mask] > 0).all()
    ours, truth = lab[mask], roots[mask]
    assert ((ours[:, None] == ours[None]) == (truth[:, None] == truth[None])).all()
    if periodic_axes:
        assert np.unique(ours).size < np.unique(label_periodic(mask)[mask]).size  # the wrap joins some

"""Pore network extraction (SNOW), metrics, tortuosity and connectivity matrix."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from twinlab.analyses.network import (
    PoreNetwork,
    analyze_twin,
    compute_connectivity_matrix,
    compute_network_metrics,
    compute_network_tortuosity,
    extract_network,
    plot_connectivity,
)
from twinlab.errors import InputError
from twinlab.phases import DEFAULT_PHASES

BEREA = Path(__file__).resolve().parents[1] / "datasets" / "berea" / "berea_100_to_300.npz"
BEREA_VOXEL_UM = 5.345


def lattice(n=4, spacing=16, r_sphere=6.0, r_cyl=3.0, axes=(0, 1, 2), through=1, voxel=(1.0, 1.0, 1.0)):
    """Simple cubic lattice of spheres joined by cylinders along ``axes`` (True = pore).

    Sampled on a grid of physical voxel size ``voxel`` (µm) with the lattice in µm, so an
    anisotropic grid sees the same geometry. Cylinders along ``through`` run out to both faces.
    """
    size = n * spacing
    shape = tuple(int(round(size / v)) for v in voxel)
    z, y, x = np.meshgrid(*[(np.arange(s) + 0.5) * v for s, v in zip(shape, voxel)], indexing="ij")
    pts = (z, y, x)
    centres = (np.arange(n) + 0.5) * spacing
    # distance to the nearest lattice node along each axis (periodic in the node pattern)
    d = [np.abs(((p - spacing / 2 + spacing / 2) % spacing) - spacing / 2) for p in pts]
    im = (d[0] ** 2 + d[1] ** 2 + d[2] ** 2) <= r_sphere ** 2
    for ax in axes:
        o = [i for i in range(3) if i != ax]
        tube = (d[o[0]] ** 2 + d[o[1]] ** 2) <= r_cyl ** 2
        if ax != through:  # closed: only between the first and the last node
            tube &= (pts[ax] >= centres[0]) & (pts[ax] <= centres[-1])
        im |= tube
    return im


# ------------------------------------------------------------------------------------------ analytic
def big_and_small_pores(small=True):
    """Known truth: a pore of radius 9 voxels joined to both thickness (y) faces by a cylinder of radius 2 and —
    ``small`` — eight isolated pores of radius 4 around it (True = pore)."""
    z, y, x = np.indices((48, 48, 48)) + 0.5
    im = ((z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2 <= 9 ** 2) | ((z - 24) ** 2 + (x - 24) ** 2 <= 2 ** 2)
    for c in np.ndindex(2, 2, 2) if small else ():
        cz, cy, cx = (8 + 32 * np.array(c))
        im |= (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= 4 ** 2
    return im


def test_the_volume_mean_inscribed_radius_weights_each_pore_by_its_volume():
    """Σ V r / Σ V over the internal pores, each pore's inscribed radius its sphere's to within a voxel. When the
    small pores vanish (as pores do that a press shrinks below the watershed's resolution) the number mean jumps
    toward the big pore's radius while every remaining pore kept its size; the volume mean moves by their share of
    the pore volume only (issue 16: the number mean rose from 3.4 to 3.8 g/cm³ as small pores dropped out)."""
    net = extract_network(big_and_small_pores(), voxel_size_um=1.0, thickness_axis="y")
    a = net.arrays
    inner = a["pore.internal"]
    r, v = a["pore.inscribed_diameter"][inner] / 2, a["pore.region_volume"][inner]
    big = v == v.max()
    assert inner.sum() == 9 and abs(r[big][0] - 9) <= 1 and np.all(np.abs(r[~big] - 4) <= 1)
    assert np.all(v[~big] == (big_and_small_pores().sum() - big_and_small_pores(False).sum()) / 8)
    m = compute_network_metrics(net)
    assert m.volume_mean_inscribed_radius_um == pytest.approx((v * r).sum() / v.sum())
    assert m.mean_inscribed_radius_um == pytest.approx(r.mean())
    alone = compute_network_metrics(extract_network(big_and_small_pores(False), voxel_size_um=1.0,
                                                    thickness_axis="y"))
    assert alone.num_internal_pores == 1
    assert alone.mean_inscribed_radius_um == alone.volume_mean_inscribed_radius_um == pytest.approx(r[big][0])
    jump_number = alone.mean_inscribed_radius_um - m.mean_inscribed_radius_um
    jump_volume = alone.volume_mean_inscribed_radius_um - m.volume_mean_inscribed_radius_um
    small_share = v[~big].sum() / v.sum()
    assert jump_volume == pytest.approx(small_share * (r[big][0] - (v[~big] * r[~big]).sum() / v[~big].sum()))
    assert jump_volume < 0.5 * jump_number


def test_cubic_lattice_coordination_and_boundary_counts():
    im = lattice()
    net = extract_network(im, voxel_size_um=1.0, thickness_axis="y")
    assert isinstance(net, PoreNetwork)
    internal = net["pore.internal"]
    assert internal.sum() == 64
    cn = net.coordination()
    c = net["pore.coords"][internal]
    # lattice index of each pore from its centroid (µm)
    idx = np.round((c - 8) / 16).astype(int)
    edge = lambda i: (i == 0) | (i == 3)  # noqa: E731
    expected = 6 - edge(idx[:, 0]).astype(int) - edge(idx[:, 2]).astype(int)  # y runs to boundary pores
    np.testing.assert_array_equal(cn[internal], expected)
    assert (cn[internal][~edge(idx[:, 0]) & ~edge(idx[:, 2])] == 6).all()
    # one boundary pore per y-cylinder on each y face, each with one throat
    assert net["pore.boundary_low"].sum() == 16 and net["pore.boundary_high"].sum() == 16
    assert (cn[~internal] == 1).all()
    m = compute_network_metrics(net)
    assert m.num_internal_pores == 64 and m.num_boundary_pores == 32
    assert m.num_dead_end_pores == 0 and m.num_isolated_clusters == 0
    assert m.spanning_volume_fraction == pytest.approx(1.0)
    # each sphere's watershed region holds the sphere and half of its cylinders; its inscribed
    # radius is the sphere's, to within the voxel (digital ball of radius 6 centred between voxels)
    r_ins = net["pore.inscribed_diameter"][internal] / 2
    assert np.all(np.abs(r_ins - 6) <= 1)
    assert m.mean_inscribed_radius_um == pytest.approx(r_ins.mean()) and abs(m.mean_inscribed_radius_um - 6) <= 1
    assert abs(m.volume_mean_inscribed_radius_um - 6) <= 1  # equal pores: the volume mean is their radius too
    # throat inscribed radius = cylinder radius, to within the voxel
    t_int = internal[net["throat.conns"]].all(axis=1)
    assert np.all(np.abs(net["throat.inscribed_diameter"][t_int] / 2 - 3) <= 1)


# ------------------------------------------------------------------------------------------ resolution
def squeezed_spheres(c, voxel, n=3, spacing=16.0, r_cyl=2.0):
    """Known truth: spheres of radius 4.5–7 µm (fixed draw) on a cubic lattice joined by cylinders of radius
    ``r_cyl``, compressed affinely along y (the thickness) to ``c`` of their height, sampled at ``voxel`` µm.
    The compression keeps every pore and scales its volume by c, so each pore's equivalent radius by c^(1/3)."""
    size = n * spacing
    shape = (round(size / voxel), round(size * c / voxel), round(size / voxel))
    z, y, x = np.meshgrid(*[(np.arange(k) + 0.5) * voxel for k in shape], indexing="ij")
    y = y / c  # where the point was before the compression
    d = [np.abs(p % spacing - spacing / 2) for p in (z, y, x)]
    im = np.zeros(shape, bool)
    for ax in range(3):
        o = [i for i in range(3) if i != ax]
        im |= d[o[0]] ** 2 + d[o[1]] ** 2 <= r_cyl ** 2
    radii = np.random.default_rng(0).uniform(4.5, 7.0, n ** 3)
    for r, node in zip(radii, np.ndindex(n, n, n)):
        cz, cy, cx = (np.array(node) + 0.5) * spacing
        im |= (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r ** 2
    return im


def test_unresolved_pore_space_is_what_no_ball_of_two_voxels_covers():
    """Without the blur, the pore space below the watershed's peak floor is exactly the pore space left out of
    its morphological opening by a ball of radius 2 voxels (peer: scipy.ndimage)."""
    import porespy as ps
    from scipy import ndimage as ndi

    im = ps.generators.blobs(shape=[40, 40, 40], porosity=0.5, blobiness=1, seed=3)
    net = extract_network(im, thickness_axis="y", sigma=0)
    g = np.indices((3, 3, 3)).reshape(3, -1).T - 1
    ball = np.zeros((3, 3, 3), bool)
    ball[tuple(g[(g ** 2).sum(axis=1) < 4].T + 1)] = True  # offsets closer than 2 voxels
    # outside the image counts as pore, as for the distance transform
    opened = ndi.binary_dilation(ndi.binary_erosion(im, ball, border_value=1), ball)
    assert net.unresolved_pore_fraction == pytest.approx((im & ~opened).sum() / im.sum(), abs=1e-12)
    assert 0.05 < net.unresolved_pore_fraction < 0.95
    # the blur lowers the thinnest ridges below the floor: more of the same pore space is unresolved
    assert extract_network(im, thickness_axis="y").unresolved_pore_fraction > net.unresolved_pore_fraction


def test_a_squeezed_pore_space_keeps_its_pores_where_the_watershed_resolves_them():
    """Issue 16 on known truth: compressing a pore space keeps its pores and shrinks them. At 0.5 µm voxels the
    network has every pore at every compression and its mean equivalent radius falls as c^(1/3); at 1 µm the
    pores flattened to ~3 voxels lose their markers, the watershed merges them into their neighbours and the
    mean equivalent radius *grows* while every pore shrinks — and ``unresolved_pore_fraction`` says so."""
    fine, coarse = {}, {}
    for c in (1.0, 0.5, 0.25):
        fine[c] = compute_network_metrics(extract_network(squeezed_spheres(c, 0.5), voxel_size_um=0.5))
        coarse[c] = compute_network_metrics(extract_network(squeezed_spheres(c, 1.0), voxel_size_um=1.0))
    r0 = fine[1.0].mean_equivalent_radius_um
    for c, m in fine.items():
        assert m.num_internal_pores == 27
        assert m.mean_equivalent_radius_um == pytest.approx(r0 * c ** (1 / 3), rel=0.02)
        assert m.unresolved_pore_fraction < 0.6
    assert coarse[0.5].num_internal_pores == 27 and coarse[0.25].num_internal_pores < 27 * 0.75
    assert coarse[0.25].mean_equivalent_radius_um > coarse[0.5].mean_equivalent_radius_um
    assert coarse[0.25].unresolved_pore_fraction > 0.75 > fine[0.25].unresolved_pore_fraction
    # finer voxels resolve more of the same pore space at every compression
    assert all(fine[c].unresolved_pore_fraction < coarse[c].unresolved_pore_fraction for c in fine)


def test_anisotropic_voxels_are_handled_natively():
    # cylinders of radius 4 µm keep ≥ 3 voxel rows in z, so porespy's boundary-pore rule (drop
    # face voxels next to another label) leaves a core on both grids
    iso = extract_network(lattice(r_cyl=4.0), voxel_size_um=1.0, thickness_axis="y")
    im_a = lattice(r_cyl=4.0, voxel=(2.0, 1.0, 1.0))  # the same µm geometry on voxels twice as deep in z
    assert im_a.shape == (32, 64, 64)
    ani = extract_network(im_a, voxel_size_um=(2.0, 1.0, 1.0), thickness_axis="y")
    assert ani["pore.internal"].sum() == 64
    np.testing.assert_array_equal(np.sort(ani.coordination()), np.sort(iso.coordination()))
    v_iso = iso["pore.region_volume"][iso["pore.internal"]].mean()
    v_ani = ani["pore.region_volume"][ani["pore.internal"]].mean()
    assert v_ani == pytest.approx(v_iso, rel=0.05)  # the two grids digitise the spheres differently
    # every pore voxel is in a pore, counted with the anisotropic voxel volume (2 µm³)
    assert ani["pore.region_volume"][ani["pore.internal"]].sum() == pytest.approx(im_a.sum() * 2.0)
    # centroids (voxel index × voxel size, porespy's convention) land on the lattice nodes in µm:
    # exactly along y (symmetric), within the half-cylinders' pull at the lattice edges otherwise
    c = ani["pore.coords"][ani["pore.internal"]] + 0.5 * np.array([2.0, 1.0, 1.0])
    off = np.abs((c - 8) - 16 * np.round((c - 8) / 16))
    assert off[:, 1].max() < 1e-9 and off.max() < 2.0
    # ignoring the anisotropy would halve the volumes: the parameter is really used
    wrong = extract_network(im_a, voxel_size_um=1.0, thickness_axis="y")
    assert wrong["pore.region_volume"][wrong["pore.internal"]].mean() == pytest.approx(v_iso / 2, rel=0.05)


# ------------------------------------------------------------------------------------------ peer
def _peer_summary(im, thickness_axis=1):
    import openpnm as op
    import porespy as ps

    bw = [0, 0, 0]
    bw[thickness_axis] = 3
    snow = ps.networks.snow2(im, boundary_width=bw, voxel_size=BEREA_VOXEL_UM, parallel_kw=None)
    pn = op.io.network_from_porespy(snow.network)
    bnd = pn["pore.boundary"]
    cn = pn.num_neighbors(pn.Ps)
    return {"Np": pn.Np, "Np_internal": int((~bnd).sum()), "Nt": pn.Nt, "cn": cn.mean(), "cn_internal": cn[~bnd].mean(),
            "r_eq": pn["pore.equivalent_diameter"].mean() / 2, "r_ins": pn["pore.inscribed_diameter"].mean() / 2}


def _our_summary(net):
    cn = net.coordination()
    i = net["pore.internal"]
    return {"Np": net.num_pores, "Np_internal": int(i.sum()), "Nt": net.num_throats, "cn": cn.mean(),
            "cn_internal": cn[i].mean(), "r_eq": net["pore.equivalent_diameter"].mean() / 2,
            "r_ins": net["pore.inscribed_diameter"].mean() / 2}


def _compare_with_porespy(im):
    ours = _our_summary(extract_network(im, voxel_size_um=BEREA_VOXEL_UM, thickness_axis="y"))
    peer = _peer_summary(im)
    for key in peer:
        assert ours[key] == pytest.approx(peer[key], rel=0.01), (key, ours, peer)
    return ours, peer


def test_berea_crop_matches_porespy_snow2_openpnm():
    im = np.load(BEREA)["im"][:100, :100, :100]
    ours, peer = _compare_with_porespy(im)
    assert ours["Np"] == peer["Np"]  # same watershed, same boundary pores


@pytest.mark.slow
def test_berea_full_matches_porespy_snow2_openpnm():
    im = np.load(BEREA)["im"]
    _compare_with_porespy(im)


# ------------------------------------------------------------------------------------------ chunked
def test_chunked_extraction_equals_whole():
    import porespy as ps

    im = ps.generators.blobs(shape=[48, 70, 48], porosity=0.45, blobiness=1.5, seed=7)
    for fragments in ("drop", "porespy"):
        whole = extract_network(im, voxel_size_um=2.0, thickness_axis="y", fragments=fragments)
        chunked = extract_network(da.from_array(im, chunks=(17, 23, 19)), voxel_size_um=2.0, thickness_axis="y",
                                  chunks=23, halo=40, fragments=fragments)
        assert chunked.params["chunks"] == 23
        # same markers → same pores, numbered alike; watershed ties on plateaus of the distance
        # transform are broken by flooding order, which differs between slabs, so a few border
        # voxels between neighbouring pores may change hands
        assert chunked.num_pores == whole.num_pores
        np.testing.assert_array_equal(chunked["pore.boundary_low"], whole["pore.boundary_low"])
        ours = {tuple(c) for c in chunked["throat.conns"]}
        theirs = {tuple(c) for c in whole["throat.conns"]}
        assert len(ours ^ theirs) <= 0.01 * len(theirs)
        assert chunked["pore.region_volume"].sum() == pytest.approx(whole["pore.region_volume"].sum(), rel=1e-12)
        rel = np.abs(chunked["pore.region_volume"] / whole["pore.region_volume"] - 1)
        assert np.median(rel) == 0 and rel.max() < 0.1
        np.testing.assert_allclose(chunked["pore.coords"], whole["pore.coords"], atol=0.5)
        assert chunked.unresolved_pore_fraction == whole.unresolved_pore_fraction > 0


def test_chunked_halo_too_thin_is_an_error():
    im = lattice()
    with pytest.raises(InputError, match="halo"):
        extract_network(im, thickness_axis="y", chunks=16, halo=2)


# ------------------------------------------------------------------------------------------ transport
def test_network_tortuosity_lattice_and_openpnm_network():
    net = extract_network(lattice(), voxel_size_um=1.0, thickness_axis="y")
    pn = net.to_openpnm()
    assert type(pn).__module__.startswith("openpnm")
    assert pn.Np == net.num_pores and pn.Nt == net.num_throats
    assert pn["pore.coords"].max() < 1e-3  # metres
    res = compute_network_tortuosity(net, diffusivity_m2_s=2e-9)
    assert np.isfinite(res.tortuosity_tau) and res.tortuosity_factor == pytest.approx(res.tortuosity_tau ** 2)
    assert res.num_pores_trimmed == 0
    # removing the x/z cylinders leaves parallel straight channels: same flux path, same τ
    straight = compute_network_tortuosity(extract_network(lattice(axes=(1,)), thickness_axis="y"))
    assert straight.tortuosity_tau == pytest.approx(res.tortuosity_tau * np.sqrt(
        straight.porosity / res.porosity), rel=0.05)


def test_tortuosity_trims_isolated_clusters():
    im = lattice()
    im[:, :, 40:] = False  # cut the lattice ...
    im[2:14, 2:14, 50:62] = True  # ... and add an isolated box away from both faces
    net = extract_network(im, thickness_axis="y")
    m = compute_network_metrics(net)
    assert m.num_isolated_clusters >= 1
    res = compute_network_tortuosity(net)
    assert res.num_pores_trimmed >= 1 and np.isfinite(res.tortuosity_tau)


# ------------------------------------------------------------------------------------------ connectivity
def _grid_network(n=6, extra=0, seed=0):
    g = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(float)
    idx = np.arange(n ** 3).reshape(n, n, n)
    conns = [np.stack([idx[:-1].ravel(), idx[1:].ravel()], 1), np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
             np.stack([idx[:, :, :-1].ravel(), idx[:, :, 1:].ravel()], 1)]
    conns = np.concatenate(conns)
    if extra:
        rng = np.random.default_rng(seed)
        conns = np.concatenate([conns, rng.integers(0, n ** 3, size=(extra, 2))])
        conns = conns[conns[:, 0] != conns[:, 1]]
    return g, np.sort(conns, axis=1)


def test_connectivity_band_narrows_for_spatial_neighbours():
    local = compute_connectivity_matrix(_grid_network())
    distant = compute_connectivity_matrix(_grid_network(extra=200))
    assert local.std < distant.std
    assert local.std_samples < 0.5 * distant.std_samples
    for r in (local, distant):
        assert np.all(np.abs(r.projections) <= 1) and r.projections.mean() == pytest.approx(0, abs=1e-12)
        assert len(r.rows) == 2 * (len(r.rows) // 2)
    # z-first order: neighbours along x are adjacent numbers, along z N² apart
    n = 6
    assert np.max(np.abs(local.rows - local.cols)) == n * n
    assert np.sort(np.abs(local.projections))[0] == pytest.approx(1 / (n ** 3 - 1))
    fig = plot_connectivity(local, title="grid")
    assert len(fig.axes) == 2


def test_connectivity_chain_order():
    coords = np.stack([np.arange(10.0)[::-1], np.zeros(10), np.zeros(10)], 1)  # listed in reverse z
    conns = np.stack([np.arange(9), np.arange(1, 10)], 1)
    r = compute_connectivity_matrix((coords, conns))
    np.testing.assert_allclose(np.abs(r.projections), 1 / 9)
    with pytest.raises(InputError, match="order"):
        compute_connectivity_matrix((coords, conns), order=("z", "z", "x"))


# ------------------------------------------------------------------------------------------ bad input
def test_no_pore_phase_is_an_error():
    with pytest.raises(InputError, match="no 'pore'"):
        extract_network(np.ones((20, 20, 20), np.uint8))


def test_pore_everywhere_is_an_error():
    with pytest.raises(InputError, match="fills the whole volume"):
        extract_network(np.ones((20, 20, 20), bool))


def test_volume_too_small_is_an_error():
    with pytest.raises(InputError, match="too small"):
        extract_network(np.array([[[True, False]] * 2] * 2))


def test_pore_space_too_thin_for_one_pore_is_an_error():
    im = np.zeros((20, 20, 20), bool)
    im[10, :, 10] = True  # a one-voxel-wide channel: no distance-transform peak survives
    with pytest.raises(InputError, match="no pore was found"):
        extract_network(im, thickness_axis="y")


def test_non_spanning_pore_phase_gives_documented_empty_transport():
    im = lattice(axes=(2,), through=2)  # channels along x only: nothing crosses y
    net = extract_network(im, thickness_axis="y")
    m = compute_network_metrics(net)
    assert m.num_boundary_pores == 0 and m.spanning_volume_fraction == 0
    with pytest.raises(InputError, match="boundary pores"):
        compute_network_tortuosity(net)


def test_bad_options():
    with pytest.raises(InputError):
        extract_network(lattice(), fragments="maybe")
    with pytest.raises(InputError):
        extract_network(lattice(), r_max=0)
    with pytest.raises(InputError):
        extract_network(lattice(), chunks=4)


# ------------------------------------------------------------------------------------------ twin
def test_analyze_twin_stores_network(make_twin):
    im = lattice(n=3)
    labels = np.where(im, DEFAULT_PHASES.value("pore"), DEFAULT_PHASES.value("active")).astype(np.uint8)
    twin = make_twin(labels.astype(np.uint16), voxel_size=(1.0, 1.0, 1.0), labels={"phases": labels},
                     thickness_axis="y")
    res = analyze_twin(twin)
    assert res.metrics.num_internal_pores == 27
    stored = twin.load_result("network")
    assert stored["metrics"]["num_internal_pores"] == 27
    arrays = twin.load_result_arrays("network")
    assert arrays["pore.coords"].shape == (stored["network"]["num_pores"], 3)
    assert "throat.conns" in arrays and "connectivity.pdf_y" in arrays


def test_analyze_twin_leaves_out_the_collector(make_twin):
    """With a collector foil on the low-y face the network still spans the electrode, and stored
    positions stay in the twin's frame (shifted by the foil)."""
    im = lattice(n=3)
    body = np.where(im, DEFAULT_PHASES.value("pore"), DEFAULT_PHASES.value("active")).astype(np.uint8)
    foil = 5
    labels = np.concatenate([np.full((body.shape[0], foil, body.shape[2]), DEFAULT_PHASES.value("collector"),
                                     np.uint8), body], axis=1)
    twin = make_twin(labels.astype(np.uint16), voxel_size=(1.0, 1.0, 1.0), labels={"phases": labels},
                     thickness_axis="y", collector_side="low")
    res = analyze_twin(twin)
    bare_twin = make_twin(body.astype(np.uint16), voxel_size=(1.0, 1.0, 1.0), labels={"phases": body},
                          thickness_axis="y")
    bare = analyze_twin(bare_twin)
    assert res.metrics.spanning_volume_fraction > 0.99 and np.isfinite(res.tortuosity.tortuosity_factor)
    assert res.tortuosity.tortuosity_factor == pytest.approx(bare.tortuosity.tortuosity_factor, rel=1e-9)
    crop = twin.provenance[-1]["params"]["cropped_planes"]
    first = int(np.flatnonzero((body == 0).any(axis=(0, 2)))[0])
    assert crop[0] == foil + first
    shifted = twin.load_result_arrays("network")["pore.coords"]
    plain = bare_twin.load_result_arrays("network")["pore.coords"]
    np.testing.assert_allclose(shifted - plain, np.broadcast_to([0.0, foil, 0.0], plain.shape))

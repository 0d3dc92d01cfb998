"""Synthetic electrode generators: design fractions, particle size distributions, packing, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from twinlab.datasets import LogNormalMode, make_cathode, make_lmp_anode
from twinlab.datasets.generators import make_dry_film
from twinlab.datasets.generators import NCM_MODES
from twinlab.design import Component, ElectrodeDesign, dry_film_cathode, lmp_anode, ncm622_cathode
from twinlab.errors import InputError
from twinlab.phases import DEFAULT_PHASES

SMALL = dict(shape=(64, 80, 64), voxel_size_um=1.0, collector_um=5.0)


@pytest.fixture(scope="module")
def cathodes():
    """The NCM622 design at the three densities of the must-show item, one volume each."""
    return {rho: make_cathode(density_g_cm3=rho, seed=1, **SMALL) for rho in (2.3, 3.0, 3.6)}


# -- realised vs design fractions ---------------------------------------------------------------------
@pytest.mark.parametrize("rho", [2.3, 3.0, 3.6])
def test_fractions_match_design_within_one_percent(cathodes, rho):
    gen = cathodes[rho]
    design = ncm622_cathode(rho).volume_fractions("solid")
    # measure independently of the generator's own bookkeeping: the coating rows along y
    start, stop = gen.coating_range
    coat = gen.phases[:, start:stop, :]
    for name, phi in design.items():
        realised = float(np.mean(coat == DEFAULT_PHASES.value(name)))
        assert abs(realised - phi) < 0.01, (rho, name, realised, phi)
    assert set(np.unique(coat)) <= {0, 1, 2}


@pytest.mark.slow
@pytest.mark.parametrize("cbd_as", ["solid", "domain"])
@pytest.mark.parametrize("rho", [2.4, 2.8, 3.2, 3.6, 4.0])
def test_fractions_over_the_calendering_range(rho, cbd_as):
    """The publication's whole calendering range, 2.4–4.0 g/cm³ (SCIENCE.md §1)."""
    gen = make_cathode(density_g_cm3=rho, cbd_as=cbd_as, seed=11, **SMALL)
    for name, phi in ncm622_cathode(rho).volume_fractions(cbd_as).items():
        assert abs(gen.fractions[name] - phi) < 0.01
    assert gen.growth < 1.05  # the common size correction stays small


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.3, 0.45])
def test_lmp_fractions_over_the_calendering_range(ratio):
    gen = make_lmp_anode(ratio=ratio, seed=3)
    design = lmp_anode(ratio).volume_fractions()
    f = gen.fractions
    assert abs(f["lithium"] + f["shell"] - design["lithium"] - design["shell"]) < 0.01
    assert abs(f["pore"] - design["pore"]) < 0.01 and abs(f["binder"] - design["binder"]) < 0.01
    assert gen.flattening == pytest.approx(1 / (1 - ratio))


def test_fractions_cbd_as_domain():
    gen = make_cathode(density_g_cm3=3.0, cbd_as="domain", seed=2, **SMALL)
    design = ncm622_cathode(3.0).volume_fractions("domain")
    for name, phi in design.items():
        assert abs(gen.fractions[name] - phi) < 0.01
    assert gen.cbd_as == "domain"


def test_collector_slab_and_thickness_axis(cathodes):
    gen = cathodes[2.3]
    assert gen.coating_range == (5, 80)  # 5 µm Al at 1 µm voxels; the 75 µm domain is thinner than 86 µm
    assert np.all(gen.phases[:, :5, :] == DEFAULT_PHASES.value("collector"))
    assert not np.any(gen.phases[:, 5:, :] == DEFAULT_PHASES.value("collector"))
    flipped = make_cathode(density_g_cm3=2.3, seed=1, collector_side="high", thickness_axis="z",
                           shape=(80, 64, 64), voxel_size_um=1.0, collector_um=5.0)
    assert flipped.thickness_axis == 0 and flipped.coating_range == (0, 75)
    assert np.all(flipped.phases[75:] == DEFAULT_PHASES.value("collector"))
    assert flipped.centres_um[:, 0].max() < 75.0


def test_domain_thicker_than_design_leaves_empty_space_above():
    gen = make_cathode(ncm622_cathode(3.6), shape=(40, 70, 40), voxel_size_um=1.0, collector_um=2.0,
                       modes=(LogNormalMode(8.0, 0.2, 1.0),), seed=0)
    assert gen.coating_range == (2, 57)  # 55 µm coating at 3.6 g/cm³
    assert np.all(gen.phases[:, 57:, :] == 0)
    assert abs(gen.fractions["active"] - ncm622_cathode(3.6).volume_fractions()["active"]) < 0.01


def test_deterministic_for_a_seed():
    kw = dict(shape=(40, 40, 40), voxel_size_um=1.0, collector_um=0, modes=(LogNormalMode(8.0, 0.2, 1.0),))
    a, b, c = make_cathode(seed=5, **kw), make_cathode(seed=5, **kw), make_cathode(seed=6, **kw)
    assert np.array_equal(a.phases, b.phases) and np.array_equal(a.particles, b.particles)
    assert np.array_equal(a.centres_um, b.centres_um)
    assert not np.array_equal(a.phases, c.phases)


def test_instance_labels_are_the_active_phase(cathodes):
    gen = cathodes[3.0]
    assert gen.particles.dtype == np.int32 and gen.phases.dtype == np.uint8
    assert np.array_equal(gen.particles > 0, gen.phases == DEFAULT_PHASES.value("active"))
    assert gen.particles.max() <= gen.radii_um.size


def test_cbd_sits_at_particle_contacts_and_collector(cathodes):
    """CBD forms bridges/films against solids: nearly every CBD voxel touches active or collector,
    and CBD voxels are far more surrounded by solid than the remaining pores are."""
    from scipy import ndimage as ndi

    gen = cathodes[3.0]
    solid = np.isin(gen.phases, [1, 3])
    touching = ndi.binary_dilation(solid, structure=np.ones((3, 3, 3), bool))
    cbd = gen.phases == 2
    pore = gen.phases == 0
    pore[:, gen.coating_range[1]:, :] = False
    assert touching[cbd].mean() > 0.9
    density = ndi.uniform_filter(solid.astype(np.float32), size=3)
    assert density[cbd].mean() > 1.5 * density[pore].mean()


def test_anisotropic_voxels_keep_fractions_and_sizes():
    mode = LogNormalMode(10.0, 0.15, 1.0)
    gen = make_cathode(density_g_cm3=3.0, shape=(80, 60, 60), voxel_size_um=(0.75, 1.0, 1.0), collector_um=0,
                       modes=(mode,), seed=7)
    for name, phi in ncm622_cathode(3.0).volume_fractions().items():
        assert abs(gen.fractions[name] - phi) < 0.01
    counts = np.bincount(gen.particles.ravel(), minlength=gen.radii_um.size + 1)[1:]
    eq = np.cbrt(6 * counts * 0.75 / np.pi)
    ok = counts > 0
    assert np.median(np.abs(eq[ok] / gen.diameters_um[ok] - 1)) < 0.05
    assert gen.voxel_size.as_tuple() == (0.75, 1.0, 1.0)


# -- packing quality ------------------------------------------------------------------------------------
def _pair_overlaps(centres, radii, box, periodic):
    """Largest overlap depth / smaller radius over all pairs (brute force, minimum image in-plane)."""
    worst = 0.0
    for i in range(len(radii) - 1):
        vec = centres[i + 1:] - centres[i]
        for ax in range(3):
            if periodic[ax]:
                vec[:, ax] -= box[ax] * np.round(vec[:, ax] / box[ax])
        dist = np.sqrt((vec ** 2).sum(axis=1))
        depth = radii[i] + radii[i + 1:] - dist
        rel = depth / np.minimum(radii[i], radii[i + 1:])
        worst = max(worst, float(rel.max(initial=0.0)))
    return worst


def test_packing_has_no_large_overlaps(cathodes):
    gen = cathodes[2.3]  # spheres (no flattening at this density)
    assert gen.flattening == 1.0
    box = np.array(gen.phases.shape, dtype=float) * 1.0
    worst = _pair_overlaps(gen.centres_um, gen.radii_um, box, (True, False, True))
    assert worst <= 0.05 + 1e-9
    assert gen.max_overlap == pytest.approx(worst, abs=0.02)
    # walls: particles stay between the collector and the top of the coating
    y = gen.centres_um[:, 1]
    assert np.all(y - gen.radii_um >= 5.0 - 1e-6) and np.all(y + gen.radii_um <= 80.0 + 1e-6)
    assert abs(gen.growth - 1.0) < 0.03  # exact fractions needed only a tiny common size correction


def test_calendered_particles_are_flattened(cathodes):
    gen = cathodes[3.6]
    c = ncm622_cathode(3.6).volume_fractions()["active"] / 0.6
    assert gen.flattening == pytest.approx(c)
    aspect = gen.semi_axes_um[:, 1] / gen.semi_axes_um[:, 0]
    assert np.allclose(aspect, 1.0 / c)
    # each ellipsoid keeps its drawn volume (up to the common growth factor)
    vol = np.prod(gen.semi_axes_um, axis=1) / gen.growth ** 3
    assert np.allclose(vol, gen.radii_um ** 3)


# -- particle size distribution -----------------------------------------------------------------------
def test_psd_of_particle_list_matches_request():
    gen = make_cathode(density_g_cm3=2.3, shape=(100, 80, 100), voxel_size_um=1.0, collector_um=0, seed=3)
    d = gen.diameters_um
    for k, mode in enumerate(NCM_MODES):
        dk = d[gen.mode == k]
        assert dk.size > 100
        assert dk.mean() == pytest.approx(mode.mean_diameter_um, rel=0.06)
        assert np.log(dk).std() == pytest.approx(mode.log_sigma, rel=0.15)
    vol = d ** 3
    assert vol[gen.mode == 0].sum() / vol.sum() == pytest.approx(0.8, abs=0.02)  # 8:2 by weight


@pytest.mark.parametrize("rho", [2.3, 3.6])
def test_psd_from_instance_labels_matches_request(rho):
    """Also at 3.6 g/cm³, where particles are flattened and pressed together: volumes are kept."""
    mode = LogNormalMode(10.0, 0.2, 1.0)
    gen = make_cathode(density_g_cm3=rho, shape=(64, 56, 64), voxel_size_um=1.0, collector_um=0,
                       modes=(mode,), seed=4)
    counts = np.bincount(gen.particles.ravel(), minlength=gen.radii_um.size + 1)[1:]
    eq = np.cbrt(6 * counts / np.pi)  # 1 µm³ voxels
    present = counts > 0
    assert present.mean() > 0.98
    # per particle, the voxelised volume matches the drawn sphere
    rel = eq[present] / gen.diameters_um[present] - 1
    assert np.median(np.abs(rel)) < 0.04
    eqd = gen.equivalent_diameters_um()
    assert eqd.mean() == pytest.approx(mode.mean_diameter_um, rel=0.08)
    assert np.log(eqd).std() == pytest.approx(mode.log_sigma, rel=0.25)


def test_lognormal_mode_draws_requested_moments(rng):
    mode = LogNormalMode(14.0, 0.25, 1.0)
    d = mode.draw(rng, 200_000)
    assert d.mean() == pytest.approx(14.0, rel=0.005)
    assert np.log(d).std() == pytest.approx(0.25, rel=0.01)
    assert d.max() <= mode.max_diameter_um


# -- LMP anode ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.0, 0.4])
def test_lmp_anode_fractions_and_shell(ratio):
    gen = make_lmp_anode(ratio=ratio, seed=0)
    design = lmp_anode(ratio).volume_fractions()
    f = gen.fractions
    assert abs(f["lithium"] + f["shell"] - (design["lithium"] + design["shell"])) < 0.01
    assert abs(f["binder"] - design["binder"]) < 0.01
    assert abs(f["pore"] - design["pore"]) < 0.01
    # the shell is explicit and larger than the 100 nm design (reported in notes)
    assert f["shell"] > design["shell"]
    assert gen.notes["shell_fraction"] == {"realised": f["shell"], "design": design["shell"]}
    assert gen.notes["shell_voxels"] == 1
    # every Li voxel is wrapped: none of its 6 neighbours is another particle or no particle
    li = gen.phases == DEFAULT_PHASES.value("lithium")
    lab = gen.particles
    for ax in range(3):
        for s in (1, -1):
            nb = np.roll(lab, s, axis=ax)
            if ax == 1:  # not periodic through the thickness
                edge = [slice(None)] * 3
                edge[1] = slice(0, 1) if s == 1 else slice(-1, None)
                nb[tuple(edge)] = -1
            assert not np.any(li & (nb != lab))
    assert gen.collector_side == "low"
    assert np.all(gen.phases[:, : gen.coating_range[0], :] == DEFAULT_PHASES.value("collector"))
    assert gen.coating_range[1] - gen.coating_range[0] == round(lmp_anode(ratio).thickness_um / 2.0)


def _share_touching_the_roll(gen) -> float:
    """Share of the particles whose top lies within 1 µm of the highest one: those a roll meets first."""
    c, r = gen.particle_spheres()
    top = c[:, gen.thickness_axis] + r
    return float(np.mean(top > top.max() - 1.0))


def test_lmp_particle_spheres_are_the_same_at_any_voxel_size():
    """The true spheres a DEM stage starts from do not depend on the grid: each grid's voxels take a common growth
    factor to hit the loading exactly (different per voxel size), the spheres keep their drawn radii — with the
    grown ones the 480 µm free-top anode's DEM jammed 0.25 µm apart at 6 and 4 µm (stop 32)."""
    kw = dict(domain_um=(240, 96, 240), collector_um=12, seed=1, free_top=True)  # whole voxels of both grids
    g6, g4 = (make_lmp_anode(voxel_size_um=vs, **kw) for vs in (6.0, 4.0))
    assert g6.growth != g4.growth
    (c6, r6), (c4, r4) = g6.particle_spheres(), g4.particle_spheres()
    np.testing.assert_array_equal(c6, c4)
    np.testing.assert_array_equal(r6, r4)


def test_lmp_anode_free_top_is_rough_at_the_design_loading():
    """The free (cast) top: few particles at the roll plane instead of half of them against a lid,
    the design's loading (particle and binder volume per area), and the coating up to the highest
    particle, thicker and more porous than the design."""
    vs = 4.0
    kw = dict(domain_um=(240, 95, 240), voxel_size_um=vs, collector_um=12, seed=2)
    walled, free = make_lmp_anode(**kw), make_lmp_anode(free_top=True, **kw)
    assert _share_touching_the_roll(walled) > 0.3
    assert _share_touching_the_roll(free) < 0.05
    # no layer pressed against a lid: fewer touching neighbours and less contact area
    assert free.contacts["touching_pairs_per_particle"] < walled.contacts["touching_pairs_per_particle"]
    assert free.contacts["contact_area_fraction"] < walled.contacts["contact_area_fraction"]
    design = lmp_anode()
    frac = design.volume_fractions()
    area = 240.0 * 240.0
    li = np.isin(free.phases, [DEFAULT_PHASES.value("lithium"), DEFAULT_PHASES.value("shell")]).sum()
    binder = (free.phases == DEFAULT_PHASES.value("binder")).sum()
    assert li * vs ** 3 / area == pytest.approx((frac["lithium"] + frac["shell"]) * design.thickness_um, rel=0.01)
    assert binder * vs ** 3 / area == pytest.approx(frac["binder"] * design.thickness_um, rel=0.01)
    assert free.design.loading_mg_cm2 == pytest.approx(design.loading_mg_cm2, rel=1e-9)
    # the coating ends at the voxel layer the highest particle reaches; below it the realised
    # fractions are those of the design at that thickness
    c, r = free.particle_spheres()
    envelope = float((c[:, 1] + r).max()) - free.coating_range[0] * vs
    assert abs(free.design.thickness_um - envelope) <= vs / 2
    assert free.design.thickness_um == (free.coating_range[1] - free.coating_range[0]) * vs > design.thickness_um
    assert (free.particles[:, free.coating_range[1] - 1, :] > 0).any()
    _assert_lmp_fractions(free)
    assert free.notes["free_top"] and not walled.notes["free_top"]
    # calendered from the free-top packing: the same loading, the fractions of the design at its thickness
    flat = make_lmp_anode(free_top=True, ratio=0.3, **kw)
    assert flat.design.loading_mg_cm2 == pytest.approx(design.loading_mg_cm2, rel=1e-9)
    _assert_lmp_fractions(flat)


def _assert_lmp_fractions(gen):
    """Realised = target fractions within 0.01 (lithium and shell together: the shell is one voxel)."""
    f, target = gen.fractions, gen.target_fractions
    assert abs(f["lithium"] + f["shell"] - target["lithium"] - target["shell"]) < 0.01
    assert abs(f["binder"] - target["binder"]) < 0.01
    assert abs(f["pore"] - target["pore"]) < 0.01


def test_dry_film_fractions_and_fibrils():
    from scipy import ndimage as ndi

    gen = make_dry_film(shape=(48, 72, 48), voxel_size_um=0.5, collector_um=2.0, seed=0)
    design = dry_film_cathode().volume_fractions()
    for name, phi in design.items():
        assert abs(gen.fractions[name] - phi) < 0.01, name
    fib = gen.phases == DEFAULT_PHASES.value("binder")
    assert fib.sum() == gen.notes["fibril_voxels"] > 0
    # fibrils are thin: a 6-connected erosion removes (almost) all of them
    assert ndi.binary_erosion(fib).sum() < 0.01 * fib.sum()
    # and they hang between particles: nearly every fibril voxel's component touches a solid
    lab, n = ndi.label(fib, structure=np.ones((3, 3, 3), bool))
    solid = ndi.binary_dilation(np.isin(gen.phases, [1, 2, 3]), structure=np.ones((3, 3, 3), bool))
    touching = np.unique(lab[fib & solid])
    assert np.isin(lab[fib], touching).mean() > 0.95
    with pytest.raises(InputError, match="'binder'"):
        make_dry_film(ncm622_cathode(), shape=(48, 72, 48), voxel_size_um=0.5)


def test_to_dict_and_to_twin(tmp_path):
    gen = make_lmp_anode(seed=1)
    summary = gen.to_dict()
    json.dumps(summary)
    assert summary["n_particles"] == gen.radii_um.size and "phases" not in summary
    twin = gen.to_twin(tmp_path / "lmp.twin.zarr")
    assert set(twin.label_names) >= {"phases", "particles"}
    assert np.array_equal(np.asarray(twin.labels("phases")), gen.phases)
    assert twin.design["name"] == "LMP anode"


# -- bad parameters: one test each ---------------------------------------------------------------------
def test_error_fractions_not_summing_to_100():
    with pytest.raises(InputError, match="sum to 99"):
        ElectrodeDesign([Component("NCM622", 95, "active"), Component("PVDF", 4, "cbd")], density_g_cm3=2.3)
    with pytest.raises(InputError, match="sum to 90 %"):
        make_cathode(modes=(LogNormalMode(14, 0.25, 0.7), LogNormalMode(3, 0.25, 0.2)), **SMALL)


def test_error_negative_sizes():
    with pytest.raises(InputError, match="mean diameter"):
        LogNormalMode(-3.0)
    with pytest.raises(InputError, match="voxel size"):
        make_cathode(shape=(64, 80, 64), voxel_size_um=-1.0)
    with pytest.raises(InputError, match="shape"):
        make_cathode(shape=(64, -80, 64), voxel_size_um=1.0)
    with pytest.raises(InputError, match="collector_um"):
        make_cathode(collector_um=-2.0, shape=(64, 80, 64), voxel_size_um=1.0)


@pytest.mark.parametrize("eps", [0.0, 1.0, 1.3, -0.2])
def test_error_porosity_outside_unit_interval(eps):
    with pytest.raises(InputError, match="porosity"):
        make_cathode(porosity=eps, **SMALL)


def test_error_domain_smaller_than_one_particle():
    with pytest.raises(InputError, match="smaller than one particle"):
        make_cathode(shape=(10, 80, 10), voxel_size_um=1.0, collector_um=0)
    with pytest.raises(InputError, match="smaller than one particle"):
        make_cathode(shape=(64, 20, 64), voxel_size_um=1.0, collector_um=10)


def test_error_other_bad_options():
    with pytest.raises(InputError, match="not below the solid density"):
        make_cathode(density_g_cm3=4.6, **SMALL)
    with pytest.raises(InputError, match="not both"):
        make_cathode(shape=(64, 64, 64), domain_um=(64, 64, 64))
    with pytest.raises(InputError, match="collector_side"):
        make_cathode(collector_side="top", **SMALL)
    with pytest.raises(InputError, match="'active' phase"):
        make_cathode(lmp_anode(), **SMALL)
    with pytest.raises(InputError, match="ElectrodeDesign"):
        make_cathode({"components": []}, **SMALL)
    with pytest.raises(InputError, match="ratio"):
        make_lmp_anode(ratio=1.0)

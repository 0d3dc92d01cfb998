"""REV checks (size ratio, statistical REV), design check, analyze_twin and CLI `check`."""

from __future__ import annotations

import json
import math

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from twinlab.analyses.rev import analyze_twin, check_design, rev_size_ratio, statistical_rev
from twinlab.design import Component, ElectrodeDesign, lmp_anode, ncm622_cathode
from twinlab.errors import InputError


def _sphere_lattice(n_cells=3, cell=14, radius=5.0):
    shape = (n_cells * cell,) * 3
    lab = np.zeros(shape, np.uint32)
    zz, yy, xx = np.indices(shape)
    k = 0
    for c in np.ndindex(n_cells, n_cells, n_cells):
        cc = np.array(c) * cell + (cell - 1) / 2
        k += 1
        lab[(zz - cc[0]) ** 2 + (yy - cc[1]) ** 2 + (xx - cc[2]) ** 2 <= radius ** 2] = k
    return lab


# ---------------------------------------------------------------------------- size ratio
def test_size_ratio_exact_for_sphere_lattice():
    lab = _sphere_lattice()
    vs = (0.5, 0.4, 0.3)
    r = rev_size_ratio(lab, vs)
    v_um3 = np.count_nonzero(lab == 1) * 0.5 * 0.4 * 0.3  # every sphere has the same voxel count
    d = (6 * v_um3 / math.pi) ** (1 / 3)
    assert r.n_particles == 27
    assert r.mean_equivalent_diameter_um == pytest.approx(d, rel=1e-12)
    assert r.volume_weighted_diameter_um == pytest.approx(d, rel=1e-12)  # equal spheres
    for axis, s in enumerate(vs):
        assert r.ratio[axis] == pytest.approx(42 * s / d, rel=1e-12)
    # the voxelised sphere is close to the analytic one: d ≈ 2 r (in voxels of a cubic grid)
    r_iso = rev_size_ratio(lab, 1.0)
    assert r_iso.mean_equivalent_diameter_um == pytest.approx(10.0, rel=0.02)
    assert r_iso.ratio == pytest.approx((4.2, 4.2, 4.2), rel=0.02)
    assert not r_iso.passed and "z (" in r_iso.message
    # same answer on dask, and from phase labels (split by the watershed)
    r_dask = rev_size_ratio(da.from_array(lab, chunks=17), vs)
    assert r_dask.ratio == pytest.approx(r.ratio, rel=1e-12)
    r_phase = rev_size_ratio((lab > 0).astype(np.uint8), vs)
    assert r_phase.n_particles == 27 and r_phase.ratio == pytest.approx(r.ratio, rel=1e-12)


def test_size_ratio_passes_for_large_domain():
    lab = _sphere_lattice(n_cells=7, cell=8, radius=3.0)
    r = rev_size_ratio(lab, 1.0)
    assert r.passed and all(r.passed_axes) and min(r.ratio) > 5


# ---------------------------------------------------------------------------- statistical REV
def _correlated(sigma, shape=(72, 72, 72), seed=0):
    f = ndi.gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma, mode="wrap")
    return (f > np.median(f)).astype(np.uint8)  # porosity 0.5 (pore = 0)


def test_statistical_rev_grows_with_correlation_length():
    sizes = (6, 9, 12, 18, 24, 36, 48, 72)
    short = statistical_rev(_correlated(1.0), sizes=sizes, n_samples=16, tolerance=0.05, seed=1)
    long = statistical_rev(_correlated(3.0), sizes=sizes, n_samples=16, tolerance=0.05, seed=1)
    assert short.converged and long.converged
    assert long.rev_voxels > short.rev_voxels
    # the spread falls with size, and is larger for the longer correlation at every size
    sp_s = np.array(short.relative_spread[:-1])
    sp_l = np.array(long.relative_spread[:-1])
    assert (sp_l > sp_s).all()
    assert sp_s[0] > sp_s[-1] and sp_l[0] > sp_l[-1]
    assert math.isnan(short.relative_spread[-1])  # one position: no spread measured
    assert short.mean[3] == pytest.approx(0.5, abs=0.05)
    assert len(short.values[0]) == 16 and "values" not in short.to_dict()


def test_statistical_rev_dask_equals_numpy_and_properties():
    lab = _correlated(1.5, shape=(40, 48, 44))
    a = statistical_rev(lab, property="porosity", n_samples=8, seed=3, voxel_size_um=(0.5, 0.25, 0.25))
    b = statistical_rev(da.from_array(lab, chunks=(13, 17, 19)), property="porosity", n_samples=8, seed=3,
                        voxel_size_um=(0.5, 0.25, 0.25))
    assert a.relative_spread == b.relative_spread or np.allclose(a.relative_spread, b.relative_spread,
                                                                 equal_nan=True)
    # with anisotropic voxels a size is a cube in µm: sizes_um = voxels × finest edge
    assert a.sizes_um == tuple(s * 0.25 for s in a.sizes_voxels)
    c = statistical_rev(lab, property="active", n_samples=8, seed=3)
    assert c.mean[2] == pytest.approx(1 - statistical_rev(lab, n_samples=8, seed=3).mean[2], abs=1e-12)
    d = statistical_rev(lab, property=lambda b: float(b.mean()), n_samples=8, seed=3)
    assert d.property == "<lambda>"


def test_statistical_rev_errors():
    lab = _correlated(1.0, shape=(20, 20, 20))
    with pytest.raises(InputError, match="sizes"):
        statistical_rev(lab, sizes=[4, 40])
    with pytest.raises(InputError, match="tolerance"):
        statistical_rev(lab, tolerance=5)
    with pytest.raises(InputError, match="integer"):
        statistical_rev(lab.astype(float))
    with pytest.raises(InputError, match="n_samples"):
        statistical_rev(lab, n_samples=1)


# ---------------------------------------------------------------------------- design check
@pytest.mark.parametrize("density", [2.3, 3.0, 3.6])
def test_generated_cathodes_pass_design_check(density):
    gen = pytest.importorskip("twinlab.datasets.generators")
    g = gen.make_cathode(ncm622_cathode(density), shape=(32, 64, 48), voxel_size_um=0.5, cbd_as="domain",
                         collector_um=5.0, seed=2)
    check = check_design(g.phases, g.design, cbd_as="domain")
    assert check.passed, check.message
    assert max(abs(v) for v in check.deviation.values()) < 0.005
    assert "nanoporous domain" in check.cbd_statement
    # dask labels give the same numbers (bincount per chunk)
    lazy = check_design(da.from_array(g.phases, chunks=(11, 23, 17)), g.design, cbd_as="domain")
    assert lazy.segmented == pytest.approx(check.segmented)
    # compared as solid CBD the same volume fails, naming cbd and pore
    solid = check_design(g.phases, g.design, cbd_as="solid")
    assert not solid.passed and "cbd" in solid.message and "solid" in solid.cbd_statement


def test_mis_segmented_volume_fails_naming_the_phase():
    gen = pytest.importorskip("twinlab.datasets.generators")
    g = gen.make_cathode(ncm622_cathode(3.0), shape=(32, 48, 48), voxel_size_um=0.5, cbd_as="domain",
                         collector_um=0.0, seed=4)
    bad = g.phases.copy()
    # a threshold set too low: a third of the CBD is called active material
    cbd = np.flatnonzero(bad.ravel() == 2)
    bad.ravel()[cbd[: cbd.size // 3]] = 1
    check = check_design(bad, g.design)
    assert not check.passed
    assert not check.passed_phases["active"] and not check.passed_phases["cbd"] and check.passed_phases["pore"]
    assert "FAILED" in check.message and "active" in check.message and "cbd" in check.message


def test_design_check_exact_fractions_without_generator():
    design = ncm622_cathode(3.6)
    frac = design.volume_fractions("domain")
    n = 100_000
    counts = {k: int(round(v * n)) for k, v in frac.items()}
    values = np.concatenate([np.full(counts["pore"], 0), np.full(counts["active"], 1), np.full(counts["cbd"], 2)])
    vol = np.concatenate([values, np.full(5000, 3)]).astype(np.uint8).reshape(-1, 1, 1)  # + collector
    check = check_design(vol, design.to_dict(), tolerance=0.02)
    assert check.passed and set(check.phases) == {"active", "cbd", "pore"}
    with_coll = check_design(vol, design, exclude_collector=False)
    assert not with_coll.passed and "collector" in with_coll.message


def test_design_check_leaves_out_the_air_above_the_coating():
    """A field of view that shows the free surface: the empty planes above it are air, not porosity."""
    gen = pytest.importorskip("twinlab.datasets.generators")
    g = gen.make_cathode(ncm622_cathode(3.0), shape=(32, 48, 48), voxel_size_um=0.5, cbd_as="domain",
                         collector_um=2.0, seed=4)
    air = np.concatenate([g.phases, np.zeros((32, 8, 48), np.uint8)], axis=1)  # 8 planes of air above (y)
    plain = check_design(g.phases, g.design, thickness_axis=1)
    assert check_design(air, g.design, thickness_axis=1).segmented == pytest.approx(plain.segmented)
    lazy = check_design(da.from_array(air, chunks=16), g.design, thickness_axis=1)
    assert lazy.segmented == pytest.approx(plain.segmented)
    counted = check_design(air, g.design)  # without the axis the air counts as pore
    assert counted.segmented["pore"] > plain.segmented["pore"] + 0.05


def _lmp_volume_with_voxel_film(factor=15.0, n=200_000):
    """Exact LMP anode fractions, except that the shell holds ``factor`` × its design volume, taken from
    the lithium — what drawing a 100 nm film one 2 µm voxel thick does."""
    from twinlab.phases import DEFAULT_PHASES

    frac = dict(lmp_anode().volume_fractions("domain"))
    moved = (factor - 1.0) * frac["shell"]
    frac["shell"] += moved
    frac["lithium"] -= moved
    parts = [np.full(int(round(v * n)), DEFAULT_PHASES.value(k)) for k, v in frac.items()]
    return np.concatenate(parts).astype(np.uint8).reshape(-1, 1, 1)


def test_design_check_counts_a_sub_voxel_film_with_its_host():
    vol = _lmp_volume_with_voxel_film()
    coarse = check_design(vol, lmp_anode(), voxel_size_um=2.0)  # 100 nm shell, 2 µm voxels
    assert coarse.passed and "shell" not in coarse.phases and "counted with lithium" in coarse.message
    assert coarse.segmented["lithium"] == pytest.approx(lmp_anode().volume_fractions("domain")["lithium"]
                                                       + lmp_anode().volume_fractions("domain")["shell"], abs=1e-4)
    fine = check_design(vol, lmp_anode(), voxel_size_um=0.05)  # 50 nm voxels resolve the film: compared alone
    assert not fine.passed and "shell" in fine.message
    assert not check_design(vol, lmp_anode()).passed  # no voxel size: every phase compared by its voxels


def test_design_check_refuses_a_bad_voxel_size():
    with pytest.raises(InputError, match="voxel_size_um"):
        check_design(_lmp_volume_with_voxel_film(), lmp_anode(), voxel_size_um=0.0)


def test_film_component_needs_thickness_and_a_host():
    with pytest.raises(InputError, match="together"):
        Component("Li2CO3", 5.0, "shell", film_on="lithium")
    with pytest.raises(InputError, match="positive"):
        Component("Li2CO3", 5.0, "shell", film_on="lithium", film_nm=-1.0)
    with pytest.raises(InputError, match="no component"):
        ElectrodeDesign([Component("Li2CO3", 5.0, "shell", film_on="lithium", film_nm=100.0),
                         Component("PVdF-HFP", 95.0, "binder")], porosity=0.5)
    again = ElectrodeDesign.from_dict(lmp_anode().to_dict())  # the film survives the twin's JSON
    assert [(c.film_on, c.film_nm) for c in again.components if c.phase == "shell"] == [("lithium", 100.0)]


def test_design_check_refuses_a_bad_thickness_axis():
    with pytest.raises(InputError, match="thickness_axis"):
        check_design(np.zeros((4, 4, 4), np.uint8), ncm622_cathode(3.0), thickness_axis=3)


def test_design_check_bad_inputs(tmp_path):
    design = ncm622_cathode(3.0)
    with pytest.raises(InputError, match="single phase"):
        check_design(np.zeros((8, 8, 8), np.uint8), design)
    bad = design.to_dict()
    bad["components"][0]["wt_percent"] = 90.0  # sums to 94
    with pytest.raises(InputError, match="sum to 94"):
        check_design(np.zeros((4, 4, 4), np.uint8), bad)
    toml = tmp_path / "bad.toml"
    toml.write_text('density_g_cm3 = 3.0\n[[components]]\nmaterial = "NCM622"\nwt_percent = 80\nphase = "active"\n')
    with pytest.raises(InputError, match="not 100"):
        check_design(np.zeros((4, 4, 4), np.uint8), toml)
    with pytest.raises(InputError, match="cbd_as"):
        check_design(np.arange(8, dtype=np.uint8).reshape(2, 2, 2) % 3, design, cbd_as="both")
    with pytest.raises(InputError, match="not in the phase table"):
        check_design(np.full((2, 2, 2), 99, np.uint8), design)


# ---------------------------------------------------------------------------- twin + CLI
def _cathode_twin(make_twin, density=3.0):
    gen = pytest.importorskip("twinlab.datasets.generators")
    g = gen.make_cathode(ncm622_cathode(density), shape=(32, 56, 48), voxel_size_um=0.5, cbd_as="domain",
                         collector_um=4.0, seed=5)
    img = (g.phases.astype(np.uint16) * 1000)
    twin = make_twin(img, voxel_size=(0.5, 0.5, 0.5), labels={"phases": g.phases, "particles": g.particles},
                     design=g.design.to_dict(), thickness_axis="y", collector_side="low")
    return twin, g


def test_analyze_twin_stores_rev_result(make_twin):
    twin, g = _cathode_twin(make_twin)
    report = analyze_twin(twin, n_samples=6)
    assert report.design is not None and report.design.passed
    assert report.size_ratio is not None and report.size_ratio.n_particles == int(g.particles.max())
    names = [s.property for s in report.statistical]
    assert names[0] == "porosity" and "active" in names and "cbd" in names
    from twinlab.analyses import run_analysis

    again = run_analysis("rev", twin, axis="y", write_fields=True, n_samples=6)  # shared CLI flags ignored
    assert again.size_ratio.ratio == report.size_ratio.ratio
    stored = twin.reload().load_result("rev")
    assert stored["design"]["passed"] is True and stored["size_ratio"]["ratio"] == list(report.size_ratio.ratio)


def test_cli_check(make_twin, tmp_path):
    from typer.testing import CliRunner

    from twinlab.cli import app

    twin, g = _cathode_twin(make_twin)
    res = CliRunner().invoke(app, ["check", str(twin.path), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["design"]["passed"] is True and "domain" in out["design"]["cbd_statement"]
    # a design file for a much denser electrode: the check fails and names the phases
    toml = tmp_path / "dense.toml"
    toml.write_text('density_g_cm3 = 3.9\n'
                    '[[components]]\nmaterial = "NCM622"\nwt_percent = 96\nphase = "active"\n'
                    '[[components]]\nmaterial = "carbon_black"\nwt_percent = 2\nphase = "cbd"\n'
                    '[[components]]\nmaterial = "PVDF"\nwt_percent = 2\nphase = "cbd"\n')
    res = CliRunner().invoke(app, ["check", str(twin.path), "--design", str(toml), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["design"]["passed"] is False and "active" in out["design"]["message"]
    res = CliRunner().invoke(app, ["check", str(tmp_path / "missing.twin.zarr")])
    assert res.exit_code == 2


def test_rev_on_2d_slices():
    lab = _sphere_lattice()[20]  # a slice through the middle row of spheres: 9 disks
    r = rev_size_ratio(lab, (1.0, 0.5, 0.5))
    assert r.axes == ("y", "x") and r.n_particles == 9
    d = math.sqrt(4 * np.count_nonzero(lab == lab.max()) * 0.25 / math.pi)
    assert r.ratio[0] == pytest.approx(42 * 0.5 / d, rel=1e-12)
    s = statistical_rev(_correlated(1.0, shape=(1, 96, 96))[0], n_samples=8)
    assert len(s.sizes_voxels) >= 4 and np.isfinite(s.relative_spread[0])

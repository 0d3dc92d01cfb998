"""Voxel transport: analytic cases, exact algebra checks, peers, bad input (issue 7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from twinlab.analyses import _multigrid, _stencil
from twinlab.analyses.transport import (
    analyze_twin, compute_conductivity, compute_tortuosity, deliverable_capacity, fit_bruggeman,
    penetration_depth, tortuosity_tensor,
)
from twinlab.errors import InputError

SOLID = 1  # "active" in DEFAULT_PHASES; pore is 0


def channels(shape=(20, 18, 16), axis=0) -> np.ndarray:
    """Straight pore channels of different cross-sections along ``axis`` in solid."""
    lab = np.full(shape, SOLID, np.uint8)
    sl = [slice(None)] * 3
    others = [a for a in range(3) if a != axis]
    for (a0, a1), (b0, b1) in (((2, 5), (3, 5)), ((8, 9), (9, 13)), ((12, 15), (1, 2))):
        sl[others[0]] = slice(a0, a1)
        sl[others[1]] = slice(b0, b1)
        lab[tuple(sl)] = 0
    return lab


def sphere_packing(n: int) -> np.ndarray:
    """Fixed random (overlapping) spheres in the unit cube, voxelised at n³; pore = outside."""
    rng = np.random.default_rng(3)
    centres = rng.random((30, 3))
    c = (np.arange(n) + 0.5) / n
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    solid = np.zeros((n, n, n), bool)
    for cz, cy, cx in centres:
        solid |= (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 < 0.15 ** 2
    return solid.astype(np.uint8)  # 0 pore, 1 active


# -- analytic cases ---------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2])
def test_straight_channels_have_unit_tortuosity(axis):
    lab = channels(axis=axis)
    r = compute_tortuosity(lab, axis=axis, voxel_size_um=(0.05, 0.04, 0.03))
    eps = np.mean(lab == 0)
    assert r.porosity == pytest.approx(eps, abs=0)
    assert r.tortuosity_factor == pytest.approx(1.0, abs=1e-6)
    assert r.tortuosity_tau == pytest.approx(1.0, abs=1e-6)
    assert r.d_eff_ratio == pytest.approx(eps, rel=1e-6)
    assert r.percolates and r.percolating_fraction == 1.0
    assert r.flux_error <= 1e-4


def test_layers_in_series_and_parallel_are_exact():
    sig = {"pore": 0.0, "active": 2.0, "cbd": 50.0, "collector": 7.0}
    lab = np.empty((24, 10, 12), np.uint8)
    pattern = np.array([1, 2, 2, 3, 1, 3, 3, 3])
    lab[...] = pattern[np.arange(24) % 8][:, None, None]  # layers normal to z
    frac = {v: np.mean(pattern == v) for v in (1, 2, 3)}
    vals = {1: 2.0, 2: 50.0, 3: 7.0}
    series = 1.0 / sum(frac[v] / vals[v] for v in vals)
    parallel = sum(frac[v] * vals[v] for v in vals)
    for vox in [(1, 1, 1), (0.2, 0.05, 0.11)]:
        kw = dict(conductivities=sig, voxel_size_um=vox, rtol=1e-8)
        rz = compute_conductivity(lab, axis="z", **kw)
        ry = compute_conductivity(lab, axis="y", **kw)
        rx = compute_conductivity(lab, axis="x", **kw)
        assert rz.effective_conductivity_s_m == pytest.approx(series, rel=1e-6)  # float32 conductances
        assert ry.effective_conductivity_s_m == pytest.approx(parallel, rel=1e-6)
        assert rx.effective_conductivity_s_m == pytest.approx(parallel, rel=1e-6)
    length_m = 24 * 0.2e-6
    assert rz.current_density_a_m2 == pytest.approx(series / length_m, rel=1e-5)
    assert rz.conductivities_s_m == {"active": 2.0, "cbd": 50.0, "collector": 7.0}
    assert set(rz.conductivity_sources.values()) == {"given"}


def test_blocked_volume_gives_zero_flux_and_infinite_tortuosity():
    lab = np.zeros((16, 12, 12), np.uint8)
    lab[8] = SOLID  # a full wall across the axis
    r = compute_tortuosity(lab, axis=0, return_field=True)
    assert not r.percolates
    assert r.d_eff_ratio == 0.0
    assert r.tortuosity_factor == math.inf and r.tortuosity_tau == math.inf
    assert r.percolating_fraction == 0.0
    assert r.to_dict()["tortuosity_factor"] == "inf"
    assert r.field is None or np.isnan(r.field).all()


def test_dead_ends_and_isolated_pores_carry_no_flux():
    lab = np.full((20, 15, 15), SOLID, np.uint8)
    lab[:, 7, 7] = 0  # one straight channel
    lab[5, 7, 8:14] = 0  # a dead-end side branch
    lab[12, 1:7, 7] = 0  # another
    lab[3:6, 2:4, 11:13] = 0  # an isolated pocket
    r = compute_tortuosity(lab, axis=0, return_field=True, rtol=1e-8)
    n_pore = np.count_nonzero(lab == 0)
    assert r.porosity == pytest.approx(n_pore / lab.size)
    assert r.percolating_fraction == pytest.approx((20 + 6 + 6) / n_pore)
    # the flux is that of the single channel: D_eff/D = 1/(15·15); τ² = ε/(D_eff/D)
    assert r.d_eff_ratio == pytest.approx(1 / 225, rel=1e-6)
    assert np.isnan(r.field[3:6, 2:4, 11:13]).all()
    assert np.allclose(r.field[5, 7, 8:14], r.field[5, 7, 7], atol=1e-6)  # dead end at its root value
    assert np.all(np.isfinite(r.field[:, 7, 7]))


def test_checkerboard_tends_to_keller_dykhne_value():
    """2-D checkerboard (extruded) with σ1 = 1, σ2 = 4: σ_eff = √(σ1 σ2) = 2 (Keller 1964, Dykhne 1971).

    The Dirichlet and no-flux planes pass through square centres, which are equipotential /
    symmetry lines of the infinite checkerboard, so the only error is discretisation (corner
    singularities: first order in the square size m)."""
    def sigma(m: int, swap: bool) -> float:
        i = (np.arange(3 * m) + m // 2) // m
        j = (np.arange(2 * m) + m // 2) // m
        cb = ((i[:, None] + j[None, :]) % 2).astype(np.uint8)
        lab = np.repeat((1 - cb if swap else cb)[:, :, None], 2, axis=2)
        return compute_conductivity(lab, conductivities={"pore": 1.0, "active": 4.0},
                                    axis=0).effective_conductivity_s_m

    s8, s16 = sigma(8, False), sigma(16, False)
    assert sigma(16, True) == pytest.approx(s16, rel=1e-6)  # phase swap = symmetry of the pattern
    assert abs(s16 - 2) < abs(s8 - 2) and abs(s16 - 2) / 2 < 0.015
    assert 2 * s16 - s8 == pytest.approx(2.0, rel=0.005)  # Richardson extrapolation of the O(1/m) error


def test_grid_refinement_converges_on_sphere_packing():
    taus = [compute_tortuosity(sphere_packing(n), axis=0).tortuosity_factor for n in (16, 32, 64)]
    d1, d2 = abs(taus[1] - taus[0]), abs(taus[2] - taus[1])
    assert d2 < 0.6 * d1
    assert 1.0 < taus[2] < 3.0


def test_anisotropic_voxels_exact_on_a_serpentine_chain():
    """A one-voxel-wide path along x, down z and along x again is a pure series chain whose
    resistance follows from the face conductances (area / distance) alone."""
    dz, dy, dx = 0.3, 0.1, 0.05
    lab = np.full((9, 3, 12), SOLID, np.uint8)
    lab[2, 1, 0:6] = 0
    lab[2:7, 1, 5] = 0
    lab[6, 1, 5:12] = 0
    r = compute_tortuosity(lab, axis="x", voxel_size_um=(dz, dy, dx), rtol=1e-9)
    gx, gz = dz * dy / dx, dx * dy / dz
    resistance = 0.5 / gx + 5 / gx + 4 / gz + 6 / gx + 0.5 / gx  # half-voxel ends, 11 x-faces, 4 z-faces
    area, length = 9 * dz * 3 * dy, 12 * dx
    assert r.d_eff_ratio == pytest.approx((1 / resistance) * length / area, rel=1e-6)


def test_anisotropic_voxels_match_isotropic_resampling():
    lab = sphere_packing(32)[::2]  # 16 × 32 × 32, voxels twice as long along z
    aniso = compute_tortuosity(lab, axis=1, voxel_size_um=(2.0, 1.0, 1.0)).tortuosity_factor
    iso = compute_tortuosity(np.repeat(lab, 2, axis=0), axis=1, voxel_size_um=1.0).tortuosity_factor
    wrong = compute_tortuosity(lab, axis=1, voxel_size_um=1.0).tortuosity_factor
    assert aniso == pytest.approx(iso, rel=0.015)
    assert abs(wrong - iso) > 3 * abs(aniso - iso)


# -- the solver against a direct sparse solve ---------------------------------------------------------

@pytest.mark.parametrize("periodic", [False, True])
def test_multigrid_solution_equals_direct_solve(periodic):
    rng = np.random.default_rng(5)
    lab = (rng.random((40, 21, 19)) < 0.35).astype(np.uint8)
    lut = np.zeros(256, np.float32)
    lut[0] = 1
    lut[1] = 0.05  # two conducting phases, contrast 20
    keep = np.ones(lab.shape, bool)
    g = [np.empty(lab.shape, np.float32) for _ in range(3)]
    lo, hi = np.empty(lab.shape[1:], np.float32), np.empty(lab.shape[1:], np.float32)
    _stencil.build_faces(lab, keep, lut, 1.0, 0.7, 1.3, periodic, periodic, *g, lo, hi)
    x, info = _multigrid.solve_potential(*g, lo, hi, rtol=1e-9, coarse_cells=64)
    assert info.levels >= 3 and info.iterations < 30
    a = _multigrid._assemble(*g, lo, hi).tocsc()
    b = np.zeros(lab.shape)
    b[0] = lo
    ref = spla.spsolve(a, b.reshape(-1)).reshape(lab.shape)
    assert np.max(np.abs(x - ref)) < 1e-6


def _faces(lab, periodic, lut=(1.0, 0.05)):
    table = np.zeros(256, np.float32)
    table[0], table[1] = lut
    keep = np.ones(lab.shape, bool)
    g = [np.empty(lab.shape, np.float32) for _ in range(3)]
    lo, hi = np.empty(lab.shape[1:], np.float32), np.empty(lab.shape[1:], np.float32)
    _stencil.build_faces(lab, keep, table, 1.0, 0.7, 1.3, periodic, periodic, *g, lo, hi)
    return g, lo, hi



def _inclusions(shape=(40, 24, 24), seed=3):
    """Blobs of a phase 1e4 × as conducting as the matrix around them (the demo cathode's CBD in NCM)."""
    from scipy import ndimage as ndi

    field = ndi.gaussian_filter(np.random.default_rng(seed).random(shape), 1.5)
    return (field > np.quantile(field, 0.8)).astype(np.uint8)


@pytest.mark.parametrize("periodic", [False, True])
def test_island_deflation_matrix_is_the_projected_operator(periodic):
    """Wᵀ A W of the islands (W: their indicator vectors) against the assembled operator."""
    lab = _inclusions((12, 10, 9))
    g, lo, hi = _faces(lab, periodic, lut=(1e-4, 1.0))
    defl = _multigrid.IslandDeflation.of(*g, lo, hi)
    assert defl is not None and defl.count > 3
    ids = defl.ids.reshape(-1)
    assert set(np.unique(lab.reshape(-1)[ids > 0])) == {1}  # islands hold the strong phase only
    w = sp.csr_matrix((np.ones(int((ids > 0).sum())), (np.flatnonzero(ids), ids[ids > 0] - 1)),
                      shape=(ids.size, defl.count))
    a = _multigrid._assemble(*g, lo, hi)
    np.testing.assert_allclose(defl.matrix.toarray(), (w.T @ a @ w).toarray(), rtol=1e-12, atol=1e-12)
    # a mild contrast has no islands: the cycle alone, as before
    assert _multigrid.IslandDeflation.of(*_faces(lab, periodic, lut=(0.05, 1.0))[0], lo, hi) is None


def test_island_deflation_solves_a_high_contrast_medium_exactly_in_fewer_iterations():
    """The deflated solve equals the direct solve, in fewer iterations than the cycle alone."""
    lab = _inclusions()
    g, lo, hi = _faces(lab, False, lut=(1e-4, 1.0))
    x, info = _multigrid.solve_potential(*g, lo, hi, rtol=1e-9, coarse_cells=64, max_iterations=2000)
    _, plain = _multigrid.solve_potential(*g, lo, hi, rtol=1e-9, coarse_cells=64, max_iterations=2000,
                                          deflate=False)
    a = _multigrid._assemble(*g, lo, hi).tocsc()
    b = np.zeros(lab.shape)
    b[0] = lo
    ref = spla.spsolve(a, b.reshape(-1)).reshape(lab.shape)
    assert np.max(np.abs(x - ref)) < 1e-6
    assert info.iterations < 0.7 * plain.iterations, (info.iterations, plain.iterations)

@pytest.mark.parametrize("periodic", [False, True])
def test_stencil_kernels_equal_the_assembled_operator(periodic):
    """matvec, the restricted residual and one Gauss–Seidel sweep against the sparse matrix, on
    a grid with inactive (zero-conductance) voxels, odd sizes and, periodic, wrap-around rows."""
    rng = np.random.default_rng(9)
    lab = (rng.random((9, 7, 5)) < 0.3).astype(np.uint8)  # 1 = insulating below
    g, lo, hi = _faces(lab, periodic, lut=(1.0, 0.0))
    a = _multigrid._assemble(*g, lo, hi).tocsr()
    x = rng.random(lab.shape)
    y = np.empty_like(x)
    assert _stencil.matvec(*g, lo, hi, x, y) == pytest.approx(float(x.ravel() @ (a @ x.ravel())), rel=1e-12)
    np.testing.assert_allclose(y.ravel(), a @ x.ravel(), rtol=1e-12, atol=1e-12)
    b = (a @ rng.random(x.size)).reshape(x.shape)  # zero on inactive voxels, as in the solver
    rc = np.empty((5, 4, 3), np.float32)
    _stencil.residual_restrict(*g, lo, hi, x.astype(np.float32), b, rc, 1, 1, 1)
    res = np.pad(b - (a @ x.astype(np.float32).ravel()).reshape(x.shape), ((0, 1), (0, 1), (0, 1)))
    np.testing.assert_allclose(rc, res.reshape(5, 2, 4, 2, 3, 2).sum(axis=(1, 3, 5)), rtol=1e-5, atol=1e-5)
    # Gauss–Seidel on the even planes, lexicographic within each plane, active voxels only
    starts, runs = _stencil.active_runs(*g, lo, hi)
    active = a.diagonal().reshape(x.shape) > 0
    assert sum(k1 - k0 for k0, k1 in runs) == active.sum()
    x32 = x.astype(np.float32)
    ref = x32.astype(np.float64).ravel()
    for flat in np.flatnonzero(active.ravel()):
        if (flat // (7 * 5)) % 2 == 0:
            row = a.getrow(flat)
            off = row.toarray().ravel()
            ref[flat] = (b.ravel()[flat] - (off @ ref - off[flat] * ref[flat])) / off[flat]
    _stencil.gauss_seidel(*g, lo, hi, starts, runs, x32, b, 0, False)
    np.testing.assert_allclose(x32.ravel(), ref, rtol=1e-5, atol=1e-6)


def test_periodic_sides_join_paths():
    """A channel that leaves through the high-y side and re-enters at low y percolates only
    with periodic sides."""
    lab = np.full((12, 10, 6), SOLID, np.uint8)
    lab[0:6, 8:10, 2:4] = 0
    lab[5:7, :, 2:4] = 0
    lab[5:12, 0:2, 2:4] = 0
    lab[5:7, 2:8, 2:4] = SOLID  # cut the direct route inside the box
    closed = compute_tortuosity(lab, axis=0)
    wrapped = compute_tortuosity(lab, axis=0, periodic=True)
    assert not closed.percolates and closed.tortuosity_factor == math.inf
    assert wrapped.percolates and 1 < wrapped.tortuosity_factor < 5


def _flood_percolating(conducting, periodic):
    """Reference: breadth-first floods from the inlet plane and from the outlet plane."""
    from collections import deque

    n = conducting.shape

    def flood(start_plane):
        seen = np.zeros(n, bool)
        queue = deque((start_plane, j, k) for j in range(n[1]) for k in range(n[2])
                      if conducting[start_plane, j, k])
        for v in queue:
            seen[v] = True
        while queue:
            i, j, k = queue.popleft()
            for di, dj, dk in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
                a, b, c = i + di, j + dj, k + dk
                if not 0 <= a < n[0]:
                    continue
                if periodic:
                    b, c = b % n[1], c % n[2]
                elif not (0 <= b < n[1] and 0 <= c < n[2]):
                    continue
                if conducting[a, b, c] and not seen[a, b, c]:
                    seen[a, b, c] = True
                    queue.append((a, b, c))
        return seen

    return flood(0) & flood(n[0] - 1)


@pytest.mark.parametrize("periodic", [False, True])
def test_percolating_voxels_equal_a_flood_fill(periodic):
    from twinlab.analyses.transport import _percolating

    rng = np.random.default_rng(11)
    for fill in (0.3, 0.45, 0.6):
        conducting = rng.random((14, 11, 9)) < fill
        np.testing.assert_array_equal(_percolating(conducting, periodic), _flood_percolating(conducting, periodic))


def test_iterations_do_not_grow_with_size():
    its = [compute_tortuosity(sphere_packing(n), axis=0).iterations for n in (24, 48)]
    assert max(its) <= 15
    assert its[1] <= its[0] + 3


def test_tortuosity_tensor_follows_transposition():
    lab = sphere_packing(24)
    t = tortuosity_tensor(lab)
    tt = tortuosity_tensor(lab.transpose(2, 0, 1))  # new (z, y, x) = old (x, z, y)
    assert tt.tortuosity_factor == pytest.approx((t.tortuosity_factor[2], t.tortuosity_factor[0],
                                                  t.tortuosity_factor[1]), rel=1e-4)
    assert all(tf > 1 for tf in t.tortuosity_factor)
    assert t.per_axis[1].axis == "y"


def test_concentration_field_is_monotone_in_a_channel():
    lab = channels()
    r = compute_tortuosity(lab, axis=0, return_field=True)
    c = r.field[:, 3, 4]
    expected = 1 - (np.arange(20) + 0.5) / 20
    assert np.allclose(c, expected, atol=1e-5)
    assert np.isnan(r.field[0, 0, 0])  # solid


# -- peers --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,porosity", [(1, 0.4), pytest.param(2, 0.6, marks=pytest.mark.slow)])
def test_agrees_with_porespy_tortuosity_fd(seed, porosity):
    """porespy 3.2 puts C = 1 / 0 on the first / last voxel centres (L − 1 voxels apart) and uses
    the percolating porosity; at 40³ these convention differences stay below 1 %."""
    ps = pytest.importorskip("porespy")
    import logging

    logging.getLogger("porespy").setLevel(logging.ERROR)
    im = ps.generators.blobs([40, 40, 40], porosity=porosity, blobiness=1, seed=seed)
    theirs = ps.simulations.tortuosity_fd(im, axis=0, ftol=1e-4).tortuosity
    ours = compute_tortuosity(im, axis=0)
    assert ours.tortuosity_factor == pytest.approx(theirs, rel=0.01)


# -- thick-electrode numbers ----------------------------------------------------------------------------

def test_penetration_depth_and_capacity():
    kw = dict(porosity=0.3, tortuosity_factor=3.0, diffusivity_m2_s=3e-10, concentration_mol_m3=1000.0,
              transference_number=0.4, current_density_a_m2=30.0)
    ld = penetration_depth(**kw)
    assert ld == pytest.approx(0.1 * 3e-10 * 1000 * 96485.33212 / (0.6 * 30.0), rel=1e-12)  # ≈ 161 µm
    thick = deliverable_capacity(capacity_mah_cm2=6.0, thickness_um=2 * ld * 1e6, **kw)
    thin = deliverable_capacity(capacity_mah_cm2=6.0, thickness_um=0.5 * ld * 1e6, **kw)
    assert thick == pytest.approx(3.0) and thin == 6.0
    with pytest.raises(InputError, match="transference_number"):
        penetration_depth(**{**kw, "transference_number": 1.0})
    with pytest.raises(InputError, match="current_density"):
        penetration_depth(**{**kw, "current_density_a_m2": 0.0})


def test_bruggeman_fit_recovers_exponent():
    eps = np.array([0.25, 0.3, 0.4, 0.5])
    fit = fit_bruggeman(eps, eps ** (1 - 1.5))
    assert fit.exponent == pytest.approx(1.5, abs=1e-12) and fit.r_squared == pytest.approx(1.0)
    fit2 = fit_bruggeman(eps, 1.3 * eps ** (1 - 1.8))
    assert fit2.exponent_2p == pytest.approx(1.8, abs=1e-9) and fit2.prefactor_2p == pytest.approx(1.3)
    with pytest.raises(InputError, match="non-percolating"):
        fit_bruggeman([0.2, 0.3], [math.inf, 2.0])


# -- bad input ----------------------------------------------------------------------------------------------

def test_phase_absent_is_an_input_error():
    with pytest.raises(InputError, match="'cbd' is absent"):
        compute_tortuosity(np.zeros((8, 8, 8), np.uint8), phase="cbd")


def test_phase_not_touching_a_face_is_an_input_error():
    lab = np.zeros((10, 8, 8), np.uint8)
    lab[-1] = 3  # a collector layer over the high-z face
    with pytest.raises(InputError, match="high-z face"):
        compute_tortuosity(lab, axis="z")


def test_missing_conductivity_names_the_phase():
    from twinlab.phases import Phase, PhaseTable

    table = PhaseTable((Phase(0, "pore", (0, 0, 0, 0), "electrolyte"), Phase(1, "mystery", (1, 1, 1, 255))))
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[:, :3] = 1
    with pytest.raises(InputError, match="mystery"):
        compute_conductivity(lab, phases=table)
    r = compute_conductivity(lab, phases=table, conductivities={"mystery": 2.0})
    assert r.effective_conductivity_s_m == pytest.approx(1.0, rel=1e-6)  # half the section at 2 S/m


def test_default_conductivities_come_from_materials():
    lab = np.ones((6, 6, 6), np.uint8)
    lab[:, :, :2] = 2
    r = compute_conductivity(lab, axis=0)
    assert r.conductivities_s_m == {"active": 5e-3, "cbd": 50.0}
    assert "NCM622" in r.conductivity_sources["active"]
    assert r.effective_conductivity_s_m == pytest.approx((4 * 5e-3 + 2 * 50.0) / 6, rel=1e-5)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((8, 8), np.uint8), "3D"),
    (np.zeros((4, 4, 4), np.float32), "integer"),
])
def test_bad_arrays(bad, match):
    with pytest.raises(InputError, match=match):
        compute_tortuosity(bad)


def test_bad_axis_and_unknown_conductivity_phase():
    lab = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(InputError, match="axis"):
        compute_tortuosity(lab, axis="w")
    with pytest.raises(InputError, match="unknown phase"):
        compute_conductivity(lab, conductivities={"nope": 1.0})


def test_dask_input_gives_the_same_answer():
    da = pytest.importorskip("dask.array")
    lab = sphere_packing(20)
    a = compute_tortuosity(lab, axis=2)
    b = compute_tortuosity(da.from_array(lab, chunks=7), axis=2)
    assert b.tortuosity_factor == a.tortuosity_factor


# -- the twin analysis ---------------------------------------------------------------------------------

def test_analyze_twin_crops_collector_and_stores(make_twin):
    lab = np.zeros((10, 14, 12), np.uint8)
    lab[:, 4:, :] = sphere_packing(12)[:10, :10, :12] * 1  # electrode: pore + active
    lab[:, 4:, :][lab[:, 4:, :] == 0] = 0
    lab[:, 9, 3:5] = 2  # some CBD
    lab[:, :4, :] = 3  # collector on the low-y side
    twin = make_twin(lab.astype(np.uint16), labels={"phases": lab}, thickness_axis="y", collector_side="low")
    res = analyze_twin(twin, write_fields=True)
    assert res.cropped_planes == (4, 14)
    assert res.tortuosity.axis == "y" and res.tortuosity.percolates
    direct = compute_tortuosity(lab[:, 4:, :], axis="y", voxel_size_um=twin.voxel_size)
    assert res.tortuosity.tortuosity_factor == pytest.approx(direct.tortuosity_factor, rel=1e-9)
    assert res.conductivity is not None and res.conductivity.effective_conductivity_s_m > 0
    stored = twin.reload().load_result("transport")
    assert stored["tortuosity"]["tortuosity_factor"] == pytest.approx(direct.tortuosity_factor)
    assert "field" not in stored["tortuosity"]
    field = np.asarray(twin.reload().read_field("transport_concentration"))
    assert field.shape == lab.shape and np.isnan(field[:, :4]).all()


def test_analyze_twin_drops_pore_free_interface_planes(make_twin):
    """A segmented collector interface (solid, no pore) next to the collector is cropped, not an error."""
    lab = np.zeros((10, 18, 12), np.uint8)
    lab[:, 6:16, :] = sphere_packing(12)[:10, :10, :12]
    lab[:, :4, :] = 3  # collector
    lab[:, 4:6, :] = 1  # two planes of active material on it: no pore touches them
    lab[:, 16:, :] = 2  # a CBD cap over the top face
    twin = make_twin(lab.astype(np.uint16), labels={"phases": lab}, thickness_axis="y", collector_side="low")
    res = analyze_twin(twin)
    assert res.cropped_planes == (6, 16)
    direct = compute_tortuosity(lab[:, 6:16, :], axis="y", voxel_size_um=twin.voxel_size)
    assert res.tortuosity.tortuosity_factor == pytest.approx(direct.tortuosity_factor, rel=1e-9)


def test_analyze_twin_conductivity_on_the_planes_holding_solid(make_twin):
    """Electrolyte above the coating (planes of pore only, as in a FIB-SEM stack): the tortuosity
    keeps them, the conductivity crops them (no electron can leave through them) instead of a note."""
    lab = np.zeros((10, 20, 12), np.uint8)
    lab[:, 3:15, :] = sphere_packing(12)[:10, :12, :12]
    lab[:, :3, :] = 3  # collector; planes 15-19: electrolyte only
    twin = make_twin(lab.astype(np.uint16), labels={"phases": lab}, thickness_axis="y", collector_side="low")
    res = analyze_twin(twin)
    assert res.cropped_planes == (3, 20) and res.conductivity_planes == (3, 15)
    assert not res.notes
    direct = compute_conductivity(lab[:, 3:15, :], axis="y", voxel_size_um=twin.voxel_size)
    assert res.conductivity.effective_conductivity_s_m == pytest.approx(direct.effective_conductivity_s_m, rel=1e-9)


def test_analyze_twin_without_any_pore_is_an_input_error(make_twin):
    lab = np.ones((6, 8, 6), np.uint8)
    lab[:, :2] = 3
    twin = make_twin(lab.astype(np.uint16), labels={"phases": lab}, thickness_axis="y", collector_side="low")
    with pytest.raises(InputError, match="fewer than two planes with phase 'pore'"):
        analyze_twin(twin)


def test_analyze_twin_conductivity_failure_is_a_note(make_twin):
    lab = np.zeros((10, 10, 12), np.uint8)
    lab[:, :, :] = sphere_packing(12)[:10, :10, :12]
    lab[:, 5, 3:9] = 2
    twin = make_twin(lab.astype(np.uint16), labels={"phases": lab}, thickness_axis="y", collector_side="low")
    res = analyze_twin(twin, conductivity_max_iterations=1)
    assert res.conductivity is None and res.tortuosity.percolates
    assert any("did not reach a flux balance" in n for n in res.notes)


# -- heavier ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_checkerboard_fine_grid():
    m = 32
    i = (np.arange(3 * m) + m // 2) // m
    j = (np.arange(2 * m) + m // 2) // m
    lab = np.repeat(((i[:, None] + j[None, :]) % 2).astype(np.uint8)[:, :, None], 2, axis=2)
    s = compute_conductivity(lab, conductivities={"pore": 1.0, "active": 4.0}, axis=0).effective_conductivity_s_m
    assert s == pytest.approx(2.0, rel=0.007)


@pytest.mark.slow
def test_agrees_with_porespy_on_berea_crop():
    ps = pytest.importorskip("porespy")
    from pathlib import Path

    im = np.load(Path(__file__).parents[1] / "datasets" / "berea" / "berea_100_to_300.npz")["im"][:100, :100, :100]
    theirs = ps.simulations.tortuosity_fd(im, axis=0, ftol=1e-4).tortuosity
    assert compute_tortuosity(im, axis=0).tortuosity_factor == pytest.approx(theirs, rel=0.01)


def test_lmp_anode_conductivity_through_shells(make_twin):
    """LMP anode at the library's conductivities: Li 1.1e7 S/m particles in 1e-8 S/m Li2CO3 shells
    and 1e-12 S/m binder (a 1e19 range). The lithium gap is narrowed to MAX_CONTRAST; the value
    agrees with a direct solve at a 1e4 gap (no narrowing needed) to the measured 1/gap
    convergence, and the twin analysis stores it instead of a note."""
    from twinlab.analyses.electrode import electrode_labels
    from twinlab.datasets import make_lmp_anode

    g = make_lmp_anode(shape=(30, 40, 30), seed=0)  # the top face inside the coating
    twin = make_twin(g.phases.astype(np.uint16), voxel_size=(2.0, 2.0, 2.0), labels={"phases": g.phases},
                     thickness_axis="y", collector_side="low")
    stored = analyze_twin(twin).conductivity
    assert stored is not None and stored.percolates and stored.flux_error <= 1e-4
    assert any("scaled to" in n and "lithium" in n for n in stored.notes), stored.notes
    work, _ = electrode_labels(twin, "pore", in_memory=True)
    mild = {"lithium": 1e-4, "collector": 1e-4 * 35 / 11, "shell": 1e-8, "binder": 1e-12}  # Li/shell 1e4
    direct = compute_conductivity(work, conductivities=mild, axis="y", voxel_size_um=2.0)
    assert not direct.notes
    assert 1 <= stored.effective_conductivity_s_m / direct.effective_conductivity_s_m < 1 + 1e-3


def test_poor_phases_beside_a_percolating_network_are_bounded_and_dropped():
    """Straight channels of 1 S/m in a 1e-9 S/m matrix: the matrix is set to 0 with a stated bound,
    and the result is the exact parallel value (channel area fraction × 1 S/m)."""
    lab = channels((20, 18, 16))  # pore channels (0) in "active" (1)
    res = compute_conductivity(lab, conductivities={"pore": 1.0, "active": 1e-9}, axis=0)
    fraction = np.mean(lab[0] == 0)
    assert res.effective_conductivity_s_m == pytest.approx(fraction, rel=1e-4)
    assert len(res.notes) == 1 and "['active']" in res.notes[0] and "set to 0" in res.notes[0]
    bound = float(res.notes[0].split("at most ")[1].split(" S/m")[0])
    true_excess = 1e-9 * (1 - fraction)  # the matrix in parallel, exactly
    assert true_excess <= bound < 1e-4 * fraction * 1.1
    kept = compute_conductivity(lab, conductivities={"pore": 1.0, "active": 1e-2}, axis=0)
    assert not kept.notes  # a 1e2 matrix contributes more than rtol: it is solved, not dropped
    assert kept.effective_conductivity_s_m > fraction * 1.005


def test_extreme_contrast_given_straight_to_the_solver_is_an_error_not_a_result():
    """Without the contrast handling, a 1e15 coefficient range must end in ConvergenceError (a
    breakdown or no balance), never in a returned, unbalanced field."""
    from twinlab.datasets import make_lmp_anode
    from twinlab.errors import ConvergenceError

    lab = np.ascontiguousarray(np.moveaxis(make_lmp_anode(shape=(30, 40, 30), seed=0).phases, 1, 0))
    lut = np.zeros(256, np.float32)
    lut[[3, 5, 4, 6]] = [1.0, 0.3, 3e-16, 3e-20]  # collector, lithium, shell, binder
    keep = lut[lab] > 0
    g = [np.empty(lab.shape, np.float32) for _ in range(3)]
    lo, hi = np.empty(lab.shape[1:], np.float32), np.empty(lab.shape[1:], np.float32)
    _stencil.build_faces(lab, keep, lut, 1.0, 1.0, 1.0, False, False, *g, lo, hi)
    with pytest.raises(ConvergenceError):
        _multigrid.solve_potential(*g, lo, hi, rtol=1e-4, max_iterations=500)

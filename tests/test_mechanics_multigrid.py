"""Kernel-level tests of the mechanics multigrid against the assembled operator (small grids), and
the multigrid solver against the FFT reference solver."""

from __future__ import annotations

import numpy as np
import pytest

from twinlab.analyses.mechanics._multigrid import (ElasticMultigrid, assemble, axis_order, node_block_inverse,
                                                   prolongation_matrix)
from twinlab.analyses.mechanics._operator import active_rows, apply_tangent, tangent_coefficients

#: row m, column n of a symmetric 3 × 3 node block → its slot in the packed (6, …) node-block arrays
FULL = [[0, 5, 4], [5, 1, 3], [4, 3, 2]]


def _material(shape, seed=0, porosity=0.4, plastic=False):
    rng = np.random.default_rng(seed)
    lam = rng.uniform(1e3, 3e3, shape)
    mu = rng.uniform(1e3, 2e3, shape)
    pore = rng.random(shape) < porosity
    pore[1:4, 1:4, 1:4] = True  # a void block: nodes 2, 3 inside it have no stiffness
    lam[pore] = mu[pore] = 0.0
    h = np.array([1.0, 0.7, 1.3])
    q = 0.25 / h
    khg = mu / 96 / np.mean(h ** 2)
    if not plastic:
        coef, pvec = tangent_coefficients(lam, mu, khg)
        return coef, None, q
    n = lam.size
    code = np.where(~pore & (rng.random(shape) < 0.5), 1, 0).astype(np.uint8).reshape(-1)
    theta = np.where(rng.random(n) < 0.7, rng.uniform(0.05, 0.95, n), 1.0)
    normal = rng.standard_normal((6, n))
    normal[:3] -= normal[:3].mean(0)
    normal /= np.sqrt((normal[:3] ** 2).sum(0) + 2 * (normal[3:] ** 2).sum(0))
    coef, pvec = tangent_coefficients(lam, mu, khg, theta=theta, normal=normal, code=code, reg=0.01)
    return coef, pvec, q


# odd periodic sizes (a single-child last coarse element), an uncoarsened axis of 2
SHAPES = [(6, 5, 7), (4, 2, 9)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("plastic", [False, True])
def test_assembled_operator_equals_fused_kernel(shape, plastic):
    coef, pvec, q = _material(shape, plastic=plastic)
    a = assemble(coef, pvec, q)
    u = np.random.default_rng(1).standard_normal((3, *shape))
    out = apply_tangent(u, coef, pvec, active_rows(coef, pvec), q, np.empty_like(u))
    np.testing.assert_allclose(a @ u.reshape(-1), out.reshape(-1), rtol=0, atol=1e-12 * np.abs(out).max())
    assert abs(a - a.T).max() <= 1e-12 * abs(a).max()  # symmetric


def _check_transfer_kernels(axes, tr, p, seed):
    """The prolongation and restriction kernels with the transfer ``tr`` apply ``p`` and ``pᵀ``; returns
    the coarse vector used."""
    from twinlab.analyses.mechanics._multigrid import _prolong_add, _restrict

    shape, nc = tuple(a.n for a in axes), tuple(a.nc for a in axes)
    rng = np.random.default_rng(seed)
    xc = rng.standard_normal((3, *nc))
    x = np.zeros((3, *shape))
    mask = np.ones(shape, bool)
    _prolong_add(x, xc, *(a.cp for a in axes), *tr.args(), mask)
    np.testing.assert_allclose(x.reshape(-1), p @ xc.reshape(-1), rtol=1e-13)
    r = rng.standard_normal((3, *shape))
    rc = np.empty((3, *nc))
    _restrict(r, rc, axes[0].fi, axes[0].fs, axes[1].cp, axes[2].cp, *tr.args(), mask)
    np.testing.assert_allclose(rc.reshape(-1), p.T @ r.reshape(-1), rtol=1e-13)
    return xc


@pytest.mark.parametrize("shape", SHAPES)
def test_prolongation_is_trilinear_and_restriction_its_transpose(shape):
    from twinlab.analyses.mechanics._multigrid import _Axis, _prolong_add, transfer_weights

    p = prolongation_matrix(shape)
    axes = [_Axis(n, np.float64) for n in shape]
    nc = tuple(a.nc for a in axes)
    tr = transfer_weights(axes, np.float64)  # no solid given: trilinear everywhere
    assert not tr.changed.any()
    xc = _check_transfer_kernels(axes, tr, p, seed=2)
    # trilinear: a linear field (away from the periodic seam) is reproduced on the fine nodes
    lin = np.zeros((3, *nc))
    lin[1] = np.arange(nc[0])[:, None, None] * 2.0
    xf = (p @ lin.reshape(-1)).reshape(3, *shape)
    np.testing.assert_allclose(xf[1, : 2 * (nc[0] - 1) + 1], np.arange(2 * (nc[0] - 1) + 1)[:, None, None]
                               * np.ones(shape[1:]))
    # nodes without stiffness get no prolongated correction
    mask = np.ones(shape, bool)
    mask[0] = False
    x = np.zeros((3, *shape))
    _prolong_add(x, xc, *(a.cp for a in axes), *tr.args(), mask)
    assert not x[:, 0].any() and x[:, 1:].any()


def test_masked_prolongation_does_not_interpolate_across_a_pore_gap():
    """Two solid slabs separated by a one-voxel gap inside a coarse element: the fine nodes of each
    slab take their coarse values only from coarse nodes of the same slab, rows still sum to one,
    and the kernels apply the same matrix as :func:`prolongation_matrix` with those weights."""
    from twinlab.analyses.mechanics._multigrid import _Axis, transfer_weights

    shape = (8, 4, 4)
    solid = np.ones(shape, bool)
    solid[2] = False  # elements 2 (nodes 2–3) form the gap: nodes ≤ 2 in one slab, nodes ≥ 3 in the other
    axes = [_Axis(n, np.float64) for n in shape]
    tr = transfer_weights(axes, np.float64, solid=solid)
    changed = tr.changed
    p = prolongation_matrix(shape, tr)
    n = int(np.prod(shape))
    pm = p[:n, : p.shape[1] // 3].toarray().reshape(*shape, axes[0].nc, axes[1].nc, axes[2].nc)
    np.testing.assert_allclose(pm.sum(axis=(3, 4, 5)), 1.0, rtol=1e-14)
    # node 3 (odd, between coarse nodes 1 = fine 2 and 2 = fine 4) sees only coarse node 2 across axis 0
    assert not pm[3, :, :, 1].any() and pm[3, :, :, 2].any()
    assert changed[3].all() and not changed[1].any()
    trilinear = prolongation_matrix(shape)[:n, : p.shape[1] // 3].toarray().reshape(pm.shape)
    assert trilinear[3, :, :, 1].any()  # what the trilinear transfer did
    _check_transfer_kernels(axes, tr, p, seed=9)


@pytest.mark.parametrize("shape", [(10, 9, 12), (9, 2, 11)])
@pytest.mark.parametrize("plastic", [False, True])
@pytest.mark.parametrize("masked", [True, False])
def test_galerkin_coarse_operators_equal_rap_of_the_assembled_matrix(shape, plastic, masked):
    coef, pvec, q = _material(shape, seed=3, plastic=plastic)
    # the levels in the grid's own axis order: compared with the operator assembled on it
    mg = ElasticMultigrid(coef, pvec, q, coarse_nodes=8, masked=masked, order=(0, 1, 2))
    assert len(mg.levels) >= 3
    assert mg.levels[0].tr.changed.any() == masked and mg.levels[1].tr.changed.any() == masked
    a = assemble(coef, pvec, q)
    shp = shape
    for fine, lev in zip(mg.levels, mg.levels[1:]):
        p = prolongation_matrix(shp, fine.tr)  # trilinear or connectivity-masked
        a = (p.T @ a @ p).tocsr()
        got = lev.assemble()  # from the node stencil
        assert abs(got - a).max() <= 1e-10 * abs(a).max()
        u = np.random.default_rng(4).standard_normal((3, *lev.shape))
        out = lev.apply(u, np.empty_like(u))  # the stencil kernel
        np.testing.assert_allclose(out.reshape(-1), a @ u.reshape(-1), rtol=0, atol=1e-10 * np.abs(out).max())
        if lev.dinv is not None:  # the smoother's node blocks: the inverted 3 × 3 diagonal blocks of RAP
            n = int(np.prod(lev.shape))
            blocks = np.stack([np.stack([a[m * n:(m + 1) * n, mm * n:(mm + 1) * n].diagonal() for mm in range(3)], -1)
                               for m in range(3)], -2)
            live = np.trace(blocks, axis1=1, axis2=2) > 0
            got = np.stack([np.stack([lev.dinv[FULL[m][mm]].reshape(-1) for mm in range(3)], -1) for m in range(3)], -2)
            np.testing.assert_allclose(got[live], np.linalg.inv(blocks[live]), rtol=1e-8, atol=0)
        shp = lev.shape


@pytest.mark.parametrize("plastic", [False, True])
def test_node_blocks_and_one_smoothing_sweep_equal_the_assembled_formula(plastic):
    shape = (6, 5, 7)
    coef, pvec, q = _material(shape, seed=5, plastic=plastic)
    a = assemble(coef, pvec, q).tocsr()
    n = np.prod(shape)
    dinv = node_block_inverse(coef, pvec, q)
    # the 3 × 3 diagonal blocks of the assembled matrix, inverted (zero where there is no stiffness)
    blocks = np.zeros((n, 3, 3))
    for m in range(3):
        for mm in range(3):
            blocks[:, m, mm] = a[m * n:(m + 1) * n, mm * n:(mm + 1) * n].diagonal()
    got = np.stack([np.stack([dinv[FULL[m][mm]].reshape(-1) for mm in range(3)], -1) for m in range(3)], -2)
    live = np.trace(blocks, axis1=1, axis2=2) > 0
    assert (~live).any()  # the random pores leave nodes without stiffness
    np.testing.assert_allclose(got[live], np.linalg.inv(blocks[live]), rtol=1e-9, atol=0)
    assert not got[~live].any()
    # one Chebyshev–Jacobi smoothing of degree 1 from x = 0: x = 4/(3 λ_max) D⁻¹ b (the fourth kind's
    # first step), r = b − A x
    mg = ElasticMultigrid(coef, pvec, q, coarse_nodes=8, degree=1, order=(0, 1, 2))
    lev = mg.levels[0]
    b = np.random.default_rng(6).standard_normal((3, *shape))
    x = np.zeros_like(b)
    r = b.copy()
    mg.smooth(0, b, x, r)
    bb = b.reshape(3, n).T
    expect = np.einsum("nab,nb->na", np.where(live[:, None, None], got, 0.0), bb).T.reshape(-1) * 4 / (3 * lev.lmax)
    np.testing.assert_allclose(x.reshape(-1), expect, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.reshape(-1), b.reshape(-1) - a @ expect, rtol=1e-10, atol=1e-10 * np.abs(b).max())
    # a pre-smoothing (first=True) sets x and r from b alone: garbage in them on entry changes nothing
    x2 = np.full_like(b, np.nan)
    r2 = np.full_like(b, np.nan)
    mg.smooth(0, b, x2, r2, first=True)
    np.testing.assert_allclose(x2, x, rtol=1e-14, atol=0)
    np.testing.assert_allclose(r2, r, rtol=1e-12, atol=1e-12 * np.abs(b).max())


@pytest.mark.parametrize("degree", [1, 2, 6])
@pytest.mark.parametrize("plastic", [False, True])
def test_smoother_error_polynomial_is_the_fourth_kind_chebyshev_one(degree, plastic):
    """On every eigenvector of D⁻¹A (generalised eigenproblem A v = λ D v of the assembled level,
    D its 3 × 3 node blocks) k smoothing steps multiply the error by W_k(1 − 2λ/λ_max) / (2k + 1),
    W_k(cos θ) = sin((k + ½)θ) / sin(θ/2) (the fourth-kind Chebyshev polynomial, written here from its
    closed form, not from the smoother's recurrence): on the fused finest level and a stencil level,
    from a given x (b = 0) and from x = 0 (a pre-smoothing, b = A y)."""
    import scipy.linalg

    coef, pvec, q = _material((6, 5, 7), seed=9, plastic=plastic)
    mg = ElasticMultigrid(coef, pvec, q, coarse_nodes=8, degree=degree, coarse_degree=degree, pieces=False,
                          order=(0, 1, 2))
    assert len(mg.levels) >= 3
    rng = np.random.default_rng(10)
    for li in (0, 1):
        lev = mg.levels[li]
        a = lev.assemble().toarray()
        n = lev.nodes
        node = np.arange(3 * n) % n
        dmat = np.where(node[:, None] == node[None, :], a, 0.0)  # the node blocks
        live = np.flatnonzero(np.tile(lev.mask.reshape(-1), 3))
        lam, v = scipy.linalg.eigh(a[np.ix_(live, live)], dmat[np.ix_(live, live)])  # vᵀ D v = I
        assert lam.max() <= lev.lmax * (1 + 1e-9)  # the element bound the polynomial is scaled to
        theta = np.arccos(np.clip(1 - 2 * lam / lev.lmax, -1, 1))
        half = np.maximum(np.sin(theta / 2), 1e-300)
        p = np.where(theta > 1e-6, np.sin((degree + 0.5) * theta) / half, 2 * degree + 1) / (2 * degree + 1)
        y = np.zeros(3 * n)
        y[live] = rng.standard_normal(live.size)
        coords = v.T @ (dmat[np.ix_(live, live)] @ y[live])  # y in the eigenvectors
        for first in (False, True):
            b = np.zeros(3 * n) if not first else a @ y
            x = np.full(3 * n, np.nan) if first else y.copy()  # a pre-smoothing reads no x
            r = np.full(3 * n, np.nan)
            shp = (3, *lev.shape)
            mg.smooth(li, b.reshape(shp), x.reshape(shp), r.reshape(shp), first=first)
            # x* − x = p(D⁻¹A)(x* − x₀): x* = 0, x₀ = y (b = 0), or x* = y, x₀ = 0 (b = A y)
            py = v @ (p * coords)
            expect = py if not first else y[live] - py
            scale = np.abs(y).max()
            np.testing.assert_allclose(x[live], expect, rtol=0, atol=1e-9 * scale)
            np.testing.assert_allclose(r, b - a @ x, rtol=0, atol=1e-9 * np.abs(a).max() * scale)


@pytest.mark.parametrize("plastic", [False, True])
def test_a_hierarchy_held_with_the_longest_axis_last_is_the_same_preconditioner(plastic):
    """A thick, narrow grid (the demo's calendering windows) is held by the levels as 6 × 9 × 21
    (:func:`axis_order`); in float64 its cycle gives the cycle of the grid held as given to rounding, after
    a fine refresh and a rebuild too, with the plastic flow tensors' components relabelled."""
    shape = (21, 9, 6)
    coef, pvec, q = _material(shape, seed=3, plastic=plastic)
    given = ElasticMultigrid(coef, pvec, q, coarse_nodes=8, dtype=np.float64, order=(0, 1, 2))
    held = ElasticMultigrid(coef, pvec, q, coarse_nodes=8, dtype=np.float64)
    assert held.order == (2, 1, 0) and held.levels[0].shape == (6, 9, 21) and held.shape == shape
    np.testing.assert_array_equal(held.fine_mask, given.fine_mask)
    u = np.random.default_rng(1).standard_normal((3, *shape)) * given.fine_mask
    f = apply_tangent(u, coef, pvec, active_rows(coef, pvec), q, np.empty_like(u))
    for change in (None, "refresh", "update"):
        c2 = coef * np.random.default_rng(2).uniform(0.5, 1.5, shape)
        for mg in (given, held):
            if change == "refresh":
                mg.refresh_fine(c2, pvec)
            elif change == "update":
                mg.update(c2, pvec)
        assert held.lagged == given.lagged
        z_given, z_held = np.empty_like(f), np.empty_like(f)
        given.apply(f, z_given)
        held.apply(f, z_held)
        np.testing.assert_allclose(z_held, z_given, rtol=0, atol=1e-12 * np.abs(z_given).max())


def test_the_levels_take_the_longest_axis_last_where_the_last_is_much_shorter():
    assert axis_order((101, 39, 35)) == (2, 1, 0)
    assert axis_order((39, 101, 35)) == (2, 0, 1)
    assert axis_order((64, 64, 56)) == (2, 0, 1)
    assert axis_order((128, 128, 128)) == (0, 1, 2)  # no copies, no crossings
    assert axis_order((130, 128, 128)) == (0, 1, 2)  # the ten-step's first grid: a near-cube
    assert axis_order((77, 128, 128)) == (0, 1, 2)  # … and its later ones: the last axis is the longest


@pytest.mark.parametrize("order", [(0, 1, 2), None])
def test_a_float32_cycle_leaves_the_null_space_of_two_floating_bodies_alone(order):
    """Two spheres (R = 8), each welded to a plate, pressed towards each other across a void slab: in the
    periodic cell each body floats (6 rigid translations). The float32 coarsest level's null modes come out
    at ±1e-7 of its largest eigenvalue; kept (the float64 threshold 1e-9 alone), their inverses multiplied the
    round-off of a consistent residual into a cycle 0.75 (given order) and 32 (longest axis last) times the
    float64 cycle's size apart from it. Dropped, the two cycles agree to float32 rounding."""
    n0, n1, R = 34, 24, 8
    z, y, x = np.indices((n0, n1, n1)) + 0.5
    r2 = (y - n1 / 2) ** 2 + (x - n1 / 2) ** 2
    c = n0 // 2
    solid = ((r2 + (z - (c - R)) ** 2 < R * R) & (z < c - 1)) | ((r2 + (z - (c + R)) ** 2 < R * R) & (z > c))
    solid[:3] = solid[-3:] = True
    from twinlab.analyses.mechanics import lame_from_young

    lam, mu = lame_from_young(np.where(solid, 1000.0, 0.0), 0.3)
    q = np.full(3, 0.25)
    coef, _ = tangent_coefficients(lam, mu, mu / 96)
    m64 = ElasticMultigrid(coef, None, q, dtype=np.float64, order=order)
    m32 = ElasticMultigrid(coef, None, q, dtype=np.float32, order=order)
    u = np.random.default_rng(5).standard_normal((3, *solid.shape)) * m64.fine_mask
    f = apply_tangent(u, coef, None, active_rows(coef), q, np.empty_like(u))
    z64, z32 = np.empty_like(f), np.empty(f.shape, np.float32)
    m64.apply(f, z64)
    m32.apply(f, z32)
    assert np.linalg.norm(z32 - z64) < 1e-4 * np.linalg.norm(z64)


def test_vcycle_is_a_symmetric_positive_preconditioner():
    """CG needs a symmetric positive M⁻¹: uᵀ M⁻¹ v = vᵀ M⁻¹ u and uᵀ M⁻¹ u > 0 (float64; the
    V-cycle: the K-cycle is nonlinear in its argument, which the solver's flexible CG allows)."""
    shape = (10, 9, 12)
    coef, pvec, q = _material(shape, seed=7)
    mg = ElasticMultigrid(coef, pvec, q, coarse_nodes=8, kcycle=False, pieces=False)  # pieces: after the cycle
    rng = np.random.default_rng(8)
    live = np.broadcast_to(mg.fine_mask, (3, *shape))
    u = rng.standard_normal((3, *shape)) * live
    v = rng.standard_normal((3, *shape)) * live
    mu_, mv = np.empty_like(u), np.empty_like(v)
    mg.apply(u, mu_)
    mg.apply(v, mv)
    assert abs(np.vdot(u, mv) - np.vdot(v, mu_)) <= 1e-10 * np.linalg.norm(u) * np.linalg.norm(mv)
    assert np.vdot(u, mu_) > 0


def test_a_floating_cube_on_one_coarse_node_does_not_blow_up_the_cycle():
    """A 2³-voxel particle floating in a pore, centred on a coarse node: every node of it hangs from
    that one coarse node with weight 1, so the coarse basis function moves it rigidly and its float32
    Galerkin block is round-off (~1e-27 of the level's). Inverted, it made the V-cycle return ~1e27
    and CG NaN (the 0.75 µm calendered cathode, stop 34); treated as void on that level, the cube is
    left to the fine smoother, and M⁻¹ on a load on the cube stays within a few times the fine node-block
    Jacobi's D⁻¹ (measured 2.7×; 1e31× before)."""
    n = 16
    lam, mu, khg = (np.zeros((n, n, n), np.float32) for _ in range(3))
    cube = (slice(5, 7),) * 3  # voxels 5, 6: centred on fine node 6, a coarse node
    for part in (np.s_[:4], cube):  # a slab holds the level's stiffness scale; the cube floats
        lam[part], mu[part], khg[part] = 11538.462, 7692.3076, 142.45015  # the NCM of the demo at 0.75 µm
    coef = np.stack([lam, mu, khg])
    mg = ElasticMultigrid(coef, None, np.full(3, 1 / 3), dtype=np.float32)
    assert len(mg.levels) >= 3  # the cube's coarse node sits on an intermediate (inverted, not factored) level
    assert not mg.levels[1].mask[3, 3, 3]
    b = np.zeros((3, n, n, n))
    b[:, 5:8, 5:8, 5:8] = np.random.default_rng(2).standard_normal((3, 3, 3, 3))  # the cube's nodes
    z = np.zeros_like(b)
    mg.apply(b, z)
    d = mg.levels[0].dinv.astype(np.float64)
    jacobi = np.stack([sum(d[FULL[m][k]] * b[k] for k in range(3)) for m in range(3)])
    assert 0 < np.vdot(b, z) < 10 * np.vdot(b, jacobi)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_cycle_residual_left_by_the_smoother_is_b_minus_a_x(degree):
    """The K-cycle takes A z = b − r from the residual the coarse V-cycle's post-smoothing leaves
    (no extra operator application), and the finest post-smoothing skips its last residual update:
    on a coarse level r must equal b − A x after the V-cycle (float64: the coarse solution has
    large near-null-space components, pieces floating at that level, whose float32 A x loses
    digits either way); and a post-smoothing without the residual gives the same x as one with it."""
    shape = (12, 10, 14)
    coef, pvec, q = _material(shape, seed=3)
    mg = ElasticMultigrid(coef, pvec, q, coarse_nodes=8, coarse_degree=degree, degree=degree, order=(0, 1, 2))
    assert len(mg.levels) >= 3
    lev = mg.levels[1]
    b = np.random.default_rng(4).standard_normal((3, *lev.shape)) * lev.mask
    x = np.empty_like(b)
    mg._vcycle(1, b, x, residual=True)
    ax = lev.apply(x, np.empty_like(b))
    np.testing.assert_allclose(lev.r, b - ax, rtol=0, atol=1e-10 * np.abs(b).max())
    fine = mg.levels[0]
    bf = np.random.default_rng(5).standard_normal((3, *shape))
    xs = []
    for residual in (True, False):
        x0 = np.zeros_like(bf)
        r0 = bf.copy()
        mg.smooth(0, bf, x0, r0, residual=residual)
        xs.append(x0)
    np.testing.assert_array_equal(xs[0], xs[1])


# ------------------------------------------------------------------ the solver with the multigrid
def test_calendered_stress_agrees_with_the_fft_solver():
    """Same problem, equal tight tolerance, both preconditioners: the stress fields of a calendered
    electrode agree to 1e-3 in the relative L2 norm (and the remapped labels are identical). The
    bonded skeleton (contacts=False): the contact active set is a discrete open/closed decision per
    voxel, so two solvers may take another path through it near its tolerance."""
    from test_mechanics import synth_electrode

    from twinlab.analyses.mechanics import calender

    lab = synth_electrode((30, 14, 14), fraction=0.38, seed=5)
    kw = dict(ratios=[0.1, 0.2], steps=2, voxel_size_um=(0.5, 0.5, 0.5), thickness_axis=0, collector_side="low",
              workers=1, dtype="float64", tol=1e-8, contacts=False)
    mg = calender(lab, preconditioner="multigrid", **kw)
    fft = calender(lab, preconditioner="fft", **kw)
    assert mg.steps[-1].cg_iterations < fft.steps[-1].cg_iterations / 3
    for a, b in zip(mg.states, fft.states):
        np.testing.assert_array_equal(a.labels, b.labels)
        err = np.linalg.norm(a.stress_mpa - b.stress_mpa) / np.linalg.norm(b.stress_mpa)
        assert err <= 1e-3, err


def _porous_solver(**kw):
    from twinlab.analyses.mechanics import MechanicsSolver, lame_from_young

    rng = np.random.default_rng(9)
    lam, mu = lame_from_young(np.where(rng.random((12, 10, 11)) < 0.4, 0.0, 10e3), 0.3)
    return MechanicsSolver(lam, mu, workers=1, **kw)


def test_cg_stagnation_raises_with_the_residual_history(monkeypatch):
    from twinlab.analyses.mechanics import _fft_solver
    from twinlab.errors import ConvergenceError

    monkeypatch.setattr(_fft_solver, "STAGNATION", 5)
    solver = _porous_solver()
    fixed = np.random.default_rng(0).standard_normal((3, *solver.shape))

    def useless(coef, pvec):  # a preconditioner that ignores the residual: CG cannot progress
        def apply(r, z):
            z[...] = fixed
        return apply

    monkeypatch.setattr(solver, "_preconditioner_for", useless)
    with pytest.raises(ConvergenceError, match=r"stagnated .*residual history \(iteration: relative residual\) 0: 1"):
        solver.solve_increment([0, 0, -0.01, 0, 0, 0])


def test_inexact_newton_cg_stops_on_a_plateau_near_its_target_but_a_linear_solve_raises(monkeypatch):
    """A Newton step's CG may end on a plateau within INEXACT_ACCEPT × its forcing tolerance (the
    Newton loop then checks equilibrium); a plain linear solve must reach its tolerance or raise."""
    from twinlab.analyses.mechanics import _fft_solver
    from twinlab.errors import ConvergenceError

    monkeypatch.setattr(_fft_solver, "STAGNATION", 5)
    solver = _porous_solver()
    fixed = np.random.default_rng(0).standard_normal((3, *solver.shape))

    def useless(coef, pvec):
        def apply(r, z):
            z[...] = fixed
        return apply

    monkeypatch.setattr(solver, "_preconditioner_for", useless)
    b = np.random.default_rng(1).standard_normal((3, *solver.shape)).astype(solver.dtype)
    n = b[0].size
    theta, normal = np.ones(n, solver.dtype), np.zeros((6, n), solver.dtype)
    with pytest.raises(ConvergenceError, match="stagnated"):  # (_cg overwrites its right-hand side)
        solver._cg(b.copy(), theta, normal, rtol=1e-3, maxiter=1000)
    with pytest.raises(ConvergenceError, match="stagnated"):  # a plateau far above the target is no answer
        solver._cg(b.copy(), theta, normal, rtol=1e-3, maxiter=1000, inexact=True)
    monkeypatch.setattr(_fft_solver, "INEXACT_ACCEPT", 1e6)
    x, its = solver._cg(b.copy(), theta, normal, rtol=1e-3, maxiter=1000, inexact=True)
    assert its < 1000 and np.isfinite(x).all()


def test_cg_nonfinite_raises_with_the_residual_history(monkeypatch):
    from twinlab.errors import ConvergenceError

    solver = _porous_solver()

    def broken(coef, pvec):
        def apply(r, z):
            z[...] = np.nan
        return apply

    monkeypatch.setattr(solver, "_preconditioner_for", broken)
    with pytest.raises(ConvergenceError, match="NaN/inf.*residual history"):
        solver.solve_increment([0, 0, -0.01, 0, 0, 0])


def test_cg_preconditioner_breakdown_raises_not_divides_by_zero(monkeypatch):
    """A preconditioner that has no correction for the residual (M r = 0, r ≠ 0: a piece of solid
    held by nothing) raises ConvergenceError with the history, not ZeroDivisionError."""
    from twinlab.errors import ConvergenceError

    solver = _porous_solver()
    calls = []

    def vanishing(coef, pvec):
        def apply(r, z):
            calls.append(1)
            z[...] = r if len(calls) == 1 else 0.0
        return apply

    monkeypatch.setattr(solver, "_preconditioner_for", vanishing)
    with pytest.raises(ConvergenceError, match=r"rᵀMr = 0 at iteration 1.*residual history"):
        solver.solve_increment([0, 0, -0.01, 0, 0, 0])


def test_newton_failure_raises_with_the_residual_history():
    from twinlab.analyses.mechanics import MechanicsSolver, lame_from_young
    from twinlab.errors import ConvergenceError

    lam, mu = lame_from_young(np.full((6, 6, 6), 5e3), 0.4)
    code = np.zeros((6, 6, 6), np.uint8)
    code[:3] = 1  # a yielding half: Newton needs more than one step
    solver = MechanicsSolver(lam, mu, yield_mpa=1.0, code=code, workers=1)
    spent = []
    cg = solver._cg

    def counted(*a, **k):
        x, its = cg(*a, **k)
        spent.append(its)
        return x, its

    solver._cg = counted
    with pytest.raises(ConvergenceError, match="Newton did not converge in 1 .*residual history") as err:
        solver.solve_increment([0, 0, -0.01, 0.002, 0, 0], max_newton=1, tol=1e-10)
    # the failed solve's work is counted: the CG iterations of its one Newton step
    assert len(spent) == 1 and err.value.cg_iterations == spent[0] > 0
    with pytest.raises(ConvergenceError, match="did not reach relative residual") as err:
        solver.solve_increment([0, 0, -0.01, 0.002, 0, 0], maxiter=2, tol=1e-30)
    assert err.value.cg_iterations == 2  # a CG solve that ran out of iterations spent all of them


def test_unknown_preconditioner_is_rejected():
    from twinlab.errors import InputError

    with pytest.raises(InputError, match="preconditioner must be one of"):
        _porous_solver(preconditioner="jacobi")


def test_series_to_dict_never_converts_the_fields():
    """keep_fields=True must not make serialising cost time: the per-voxel states are dropped
    before any conversion (an array whose tolist() raises proves it is never touched)."""
    from twinlab.analyses.mechanics import CalenderSeries, CalenderState

    class Untouchable(np.ndarray):
        def tolist(self):
            raise AssertionError("a per-voxel field was converted to a list")

    field = np.zeros((64, 64, 64), np.float32).view(Untouchable)
    state = CalenderState(labels=field, broken_shell=field, von_mises_mpa=field, stress_mpa=field, strain=field,
                          displacement_um=field)
    series = CalenderSeries(10.0, 2.5, 4.7, 0.4, (), {"tol": 1e-4}, None, (state,) * 6)
    out = series.to_dict()
    assert "states" not in out and out["settings"] == {"tol": 1e-4}


# ------------------------------------------------------------------ reuse of the hierarchy
def _two_materials(seed=11, changed=40, flip=False):
    """A porous cell and the same cell with ``changed`` voxels altered: stiffer solid voxels (the
    pattern of voxels with stiffness kept, as a yielding Newton step changes the tangent), or with
    ``flip`` voxels turned between pore and solid (contact interphase voxels opening and closing)."""
    from twinlab.analyses.mechanics import lame_from_young

    rng = np.random.default_rng(seed)
    e = np.where(rng.random((14, 12, 13)) < 0.35, 0.0, 10e3)
    e2 = e.copy().reshape(-1)
    if flip:
        idx = rng.choice(e.size, changed, replace=False)
        e2[idx] = np.where(e2[idx] > 0, 0.0, 10e3)
    else:
        idx = rng.choice(np.flatnonzero(e2), changed, replace=False)
        e2[idx] *= 3.0
    return lame_from_young(e, 0.3), lame_from_young(e2.reshape(e.shape), 0.3)


def test_reused_hierarchy_gives_the_same_solution():
    """A solver that takes over the previous solver's hierarchy (stiffness values changed, the
    pattern not) refreshes only its finest level, keeps the coarse levels, and solves to the same
    answer as a fresh hierarchy."""
    from twinlab.analyses.mechanics import MechanicsSolver

    (lam, mu), (lam2, mu2) = _two_materials()
    first = MechanicsSolver(lam, mu, workers=1)
    first.solve_increment([0, 0, -0.01, 0, 0, 0], tol=1e-9)
    built = first.hierarchy
    assert built is not None and not built.lagged and built.rate > 0
    coarse = built.levels[1].st.copy()
    reused = MechanicsSolver(lam2, mu2, workers=1, hierarchy=built)
    fresh = MechanicsSolver(lam2, mu2, workers=1)
    a = reused.solve_increment([0, 0, -0.01, 0, 0, 0], tol=1e-9)
    b = fresh.solve_increment([0, 0, -0.01, 0, 0, 0], tol=1e-9)
    assert reused.hierarchy is built and built.lagged  # coarse levels kept, not rebuilt
    np.testing.assert_array_equal(built.levels[1].st, coarse)
    assert not np.array_equal(fresh.hierarchy.levels[1].st, coarse)  # … though the operator changed
    np.testing.assert_allclose(a.stress, b.stress, atol=1e-6 * np.abs(b.stress).max())
    # another grid or voxel size: not taken over
    assert MechanicsSolver(lam2[:-1], mu2[:-1], workers=1, hierarchy=built).hierarchy is None
    assert MechanicsSolver(lam2, mu2, workers=1, voxel_size=(1, 1, 2), hierarchy=built).hierarchy is None


def test_hierarchy_taken_over_with_its_build_coefficients_does_not_lag():
    """A solve that continues the last one with the same stiffness (the contact cap's relaxation)
    takes over a hierarchy built from exactly its coefficients: not lagged (no lagged iteration
    limit, no restart on a rebuilt identical hierarchy); other values lag, and the build's values
    brought back un-lag it."""
    from twinlab.analyses.mechanics import MechanicsSolver

    (lam, mu), (lam2, mu2) = _two_materials()
    first = MechanicsSolver(lam, mu, workers=1)
    ref = first.solve_increment([0, 0, -0.01, 0, 0, 0], tol=1e-9)
    built = first.hierarchy
    again = MechanicsSolver(lam.copy(), mu.copy(), workers=1, hierarchy=built)  # equal values, new arrays
    sol = again.solve_increment([0, 0, -0.01, 0, 0, 0], tol=1e-9)
    assert again.hierarchy is built and not built.lagged
    assert sol.cg_iterations == ref.cg_iterations
    MechanicsSolver(lam2, mu2, workers=1, hierarchy=built).solve_increment([0, 0, -0.01, 0, 0, 0], tol=1e-6)
    assert built.lagged
    built.refresh_fine(again._coef)
    assert not built.lagged


def test_changed_pattern_rebuilds_the_taken_over_hierarchy():
    """Voxels that gained or lost all stiffness (contacts opening and closing): the taken-over
    hierarchy is rebuilt in its buffers — the same levels as a fresh build, and the same answer."""
    from twinlab.analyses.mechanics import MechanicsSolver

    (lam, mu), (lam2, mu2) = _two_materials(flip=True)
    first = MechanicsSolver(lam, mu, workers=1)
    first.solve_increment([0, 0, -0.01, 0, 0, 0], tol=1e-9)
    built = first.hierarchy
    buffer = built.levels[1].st
    reused = MechanicsSolver(lam2, mu2, workers=1, hierarchy=built)
    fresh = MechanicsSolver(lam2, mu2, workers=1)
    a = reused.solve_increment([0, 0, -0.01, 0, 0, 0], tol=1e-9)
    b = fresh.solve_increment([0, 0, -0.01, 0, 0, 0], tol=1e-9)
    assert reused.hierarchy is built and not built.lagged and built.levels[1].st is buffer
    for x, y in zip(built.levels[1:], fresh.hierarchy.levels[1:]):
        np.testing.assert_array_equal(x.st, y.st)
    np.testing.assert_array_equal(built.fine_mask, fresh.hierarchy.fine_mask)
    np.testing.assert_allclose(a.stress, b.stress, atol=1e-6 * np.abs(b.stress).max())


@pytest.mark.parametrize("reuse_rate, rebuilt", [(0.0, False), (1e9, True)])
def test_lagged_hierarchy_is_rebuilt_when_cg_slows_down(monkeypatch, reuse_rate, rebuilt):
    """A yielding solve changes the tangent every Newton step: the hierarchy follows with fine-level
    refreshes while CG keeps REUSE_RATE of its fresh convergence rate, and is rebuilt otherwise
    (REUSE_RATE 0: never; huge: after the first lagged solve)."""
    from twinlab.analyses.mechanics import MechanicsSolver, _fft_solver
    from twinlab.analyses.mechanics._multigrid import ElasticMultigrid

    monkeypatch.setattr(_fft_solver, "REUSE_RATE", reuse_rate)
    calls = {"update": 0, "refresh": 0}
    for name, key in (("update", "update"), ("refresh_fine", "refresh")):
        orig = getattr(ElasticMultigrid, name)

        def spy(self, *a, _orig=orig, _key=key, **k):
            calls[_key] += 1
            return _orig(self, *a, **k)
        monkeypatch.setattr(ElasticMultigrid, name, spy)
    (lam, mu), _ = _two_materials()
    code = np.where(mu > 0, 1, 0).astype(np.uint8)  # perfectly plastic solid: Newton takes several steps
    solver = MechanicsSolver(lam, mu, yield_mpa=20.0, code=code, workers=1)
    sol = solver.solve_increment([0, 0, -0.01, 0.002, 0, 0], tol=1e-8)
    assert sol.newton_iterations >= 3
    ref = MechanicsSolver(lam, mu, yield_mpa=20.0, code=code, workers=1, preconditioner="fft")
    np.testing.assert_allclose(sol.stress, ref.solve_increment([0, 0, -0.01, 0.002, 0, 0], tol=1e-8).stress,
                               atol=1e-5 * np.abs(sol.stress).max())
    # the first build is update() from __init__; every later Newton step refreshes or rebuilds
    later = sol.newton_iterations - 1
    if rebuilt:
        assert calls["update"] > 1 and calls["refresh"] >= 1
    else:
        assert calls["update"] == 1 and calls["refresh"] == later


def test_stalled_lagged_hierarchy_is_rebuilt_and_the_solve_repeated(monkeypatch):
    """If CG with lagged coarse levels fails, the solver rebuilds the hierarchy and solves again
    (once): a stale hierarchy never turns into a ConvergenceError by itself."""
    from twinlab.analyses.mechanics import MechanicsSolver
    from twinlab.errors import ConvergenceError

    (lam, mu), (lam2, mu2) = _two_materials()
    first = MechanicsSolver(lam, mu, workers=1)
    first.solve_increment([0, 0, -0.01, 0, 0, 0])
    solver = MechanicsSolver(lam2, mu2, workers=1, hierarchy=first.hierarchy)
    orig, seen = solver._pcg, []

    def fail_when_lagged(*a, **k):
        seen.append(solver.hierarchy.lagged)
        if solver.hierarchy.lagged:
            raise ConvergenceError("stagnated (test)")
        return orig(*a, **k)
    monkeypatch.setattr(solver, "_pcg", fail_when_lagged)
    sol = solver.solve_increment([0, 0, -0.01, 0, 0, 0])
    assert seen == [True, False] and sol.residual <= 1e-5


def test_contact_passes_share_one_hierarchy_per_increment(monkeypatch):
    """Calendering with contacts solved by passes: every contact pass of an increment starts from the previous
    pass's hierarchy (one allocated per increment) and displacement, and the warm start needs fewer
    CG iterations than the same passes started from Δu = 0 (peer run). With the compaction cap a
    later pass can cost more than the first (its secant-softened contacts add stiffness contrast),
    so passes are compared with themselves, not with the first."""
    from test_mechanics import synth_electrode

    from twinlab.analyses.mechanics import _fft_solver, calender
    from twinlab.analyses.mechanics._multigrid import ElasticMultigrid

    builds, solves = [], []
    orig_init, orig_solve = ElasticMultigrid.__init__, _fft_solver.MechanicsSolver.solve_increment
    cold_start = []  # set: every solve starts from Δu = 0 (the peer run)

    def count_init(self, *a, **k):
        builds.append(1)
        orig_init(self, *a, **k)

    def count_solve(self, *a, **k):
        warm = k.get("u0") is not None
        if cold_start:
            k["u0"] = None
        sol = orig_solve(self, *a, **k)
        if np.any(a[0]):  # a contact pass
            solves.append((warm, sol.cg_iterations))
        return sol
    monkeypatch.setattr(ElasticMultigrid, "__init__", count_init)
    monkeypatch.setattr(_fft_solver.MechanicsSolver, "solve_increment", count_solve)
    lab = synth_electrode((30, 16, 16), fraction=0.38, seed=5)
    kw = dict(ratios=[0.1], steps=2, voxel_size_um=(0.5, 0.5, 0.5), thickness_axis=0, collector_side="low",
              workers=1, contact_passes=3, contact_tol=0.0, contact_law="passes")
    series = calender(lab, **kw)
    increments = series.settings["increments"]
    assert len(solves) > increments  # more than one pass per increment happened
    assert len(builds) == increments
    assert sum(not w for w, _ in solves) == increments  # only each increment's first pass starts cold
    warm = [(w, its) for w, its in solves]
    solves.clear()
    cold_start.append(True)
    calender(lab, **kw)
    assert len(solves) == len(warm)  # same passes
    warm_its = sum(its for w, its in warm if w)
    cold_its = sum(its for (w, _), (_, its) in zip(warm, solves) if w)
    assert warm_its < cold_its



@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(5, 4, 7), (3, 2, 1), (1, 3, 2), (4, 1, 6)])
def test_symmetric_stencil_apply_equals_its_assembled_matrix(shape, threads):
    """A coarse level keeps one 3 × 3 block per symmetric pair of neighbours (the symmetric centre
    block and 13 forward offsets); any such storage is a symmetric operator, and the kernel applies exactly the
    matrix :func:`assemble_stencil` builds from it (both halves of every pair, periodic wrap along
    every axis, axes of 1–2 nodes where +d and −d reach the same node), on one thread and on two (each
    sweeps its own node planes and recomputes what the plane before its first adds to it)."""
    import numba

    from twinlab.analyses.mechanics._multigrid import NST, assemble_stencil, stencil_apply, stencil_residual

    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("numba has fewer threads")
    numba.set_num_threads(threads)
    try:
        rng = np.random.default_rng(5)
        st = rng.standard_normal((shape[0], shape[1], NST, shape[2]))
        centre = st[:, :, :9].reshape(shape[0], shape[1], 3, 3, shape[2])
        st[:, :, :9] = (centre + centre.transpose(0, 1, 3, 2, 4)).reshape(shape[0], shape[1], 9, shape[2])  # symmetric
        a = assemble_stencil(st)
        assert abs(a - a.T).max() <= 1e-14 * abs(a).max()
        x = rng.standard_normal((3, *shape))
        out = stencil_apply(st, x, np.empty_like(x))
        np.testing.assert_allclose(out.reshape(-1), a @ x.reshape(-1), rtol=0, atol=1e-12 * np.abs(out).max())
        b = rng.standard_normal(x.shape)  # the fused residual b − A x, into another array and in place
        res = stencil_residual(st, x, b, np.empty_like(x))
        np.testing.assert_allclose(res, b - out, rtol=0, atol=1e-12 * np.abs(out).max())
        stencil_residual(st, x, b, b)
        np.testing.assert_array_equal(b, res)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_elastic_newton_step_is_solved_to_the_tolerance_not_below_it(monkeypatch):
    """An elastic increment is linear: its one Newton step's CG runs to LINEAR_MARGIN × tol (the
    residual after the step is CG's own), not to the yielding solve's NEWTON_MARGIN: fewer CG
    iterations (peer: the same solve with NEWTON_MARGIN), still within tol, and the same stress to
    the order of tol. On the fine smoother of stop 22 (degree 3): with stop 23's degree 6 this small
    cell's CG reduces the residual by more than the two margins' ratio per iteration, so both solves
    stop at the same iteration and the comparison shows nothing."""
    from twinlab.analyses.mechanics import MechanicsSolver, _fft_solver, _multigrid

    monkeypatch.setattr(_multigrid, "DEGREE", 3)
    (lam, mu), _ = _two_materials()
    strain = [0, 0, -0.01, 0.002, 0, 0]
    tol = 1e-6
    sol = MechanicsSolver(lam, mu, workers=1).solve_increment(strain, tol=tol)
    monkeypatch.setattr(_fft_solver, "LINEAR_MARGIN", _fft_solver.NEWTON_MARGIN)
    peer = MechanicsSolver(lam, mu, workers=1).solve_increment(strain, tol=tol)
    assert sol.newton_iterations == peer.newton_iterations == 1
    assert sol.residual <= tol and peer.residual <= _fft_solver.NEWTON_MARGIN * tol
    assert sol.cg_iterations < peer.cg_iterations
    np.testing.assert_allclose(sol.stress, peer.stress, atol=10 * tol * np.abs(peer.stress).max())


def test_yielding_newton_steps_ask_cg_for_what_the_observed_contraction_can_use(monkeypatch):
    """A perfectly plastic solid converges linearly at first: after the first step each Newton step's CG solves
    only to the adaptive forcing term (``_forcing``, Eisenstat & Walker's choice 2), not to what reaching tol
    would need if the Newton model held (the peer: FORCING_GAMMA 0). Measured (tol 1e-6): 41 CG in 10 Newton
    steps against 102 in 10, the stresses 2e-6 of the largest apart. The same solver with a yield stress it
    does not reach still ends in one Newton step (the first step stays tight)."""
    from twinlab.analyses.mechanics import MechanicsSolver, _fft_solver

    (lam, mu), _ = _two_materials()
    code = np.where(mu > 0, 1, 0).astype(np.uint8)
    strain, tol = [0, 0, -0.01, 0.002, 0, 0], 1e-6
    sol = MechanicsSolver(lam, mu, yield_mpa=20.0, code=code, workers=1).solve_increment(strain, tol=tol)
    monkeypatch.setattr(_fft_solver, "FORCING_GAMMA", 0.0)
    peer = MechanicsSolver(lam, mu, yield_mpa=20.0, code=code, workers=1).solve_increment(strain, tol=tol)
    assert sol.residual <= tol and peer.residual <= tol
    assert sol.newton_iterations >= peer.newton_iterations >= 3
    assert sol.cg_iterations < 0.6 * peer.cg_iterations
    np.testing.assert_allclose(sol.stress, peer.stress, atol=20 * tol * np.abs(peer.stress).max())
    monkeypatch.undo()
    stays_elastic = MechanicsSolver(lam, mu, yield_mpa=1e4, code=code, workers=1).solve_increment(strain, tol=tol)
    assert stays_elastic.newton_iterations == 1


# ------------------------------------------------------------------ rigid pieces (a coarse space)
def _inclusions(shape=(12, 10, 14), seed=21, plastic=False):
    """Stiff cubes (μ 10⁴; one crosses three faces of the periodic cell) and single stiff voxels in a
    soft binder (μ 10) with pores — the particles of a calendered electrode, the majority of its solid."""
    rng = np.random.default_rng(seed)
    mu = np.where(rng.random(shape) < 0.15, 10.0, 0.0)
    for corner, size in [((1, 1, 1), 4), ((6, 2, 8), 4), ((2, 6, 5), 4), ((7, 6, 0), 3), ((10, 8, 11), 3)]:
        mu[np.ix_(*[np.arange(c, c + size) % n for c, n in zip(corner, shape)])] = 1e4
    mu[(rng.random(shape) < 0.02) & (mu < 1e4)] = 1e4
    lam = 1.5 * mu
    h = np.array([1.0, 0.7, 1.3])
    khg = mu / 96 / np.mean(h ** 2)
    if not plastic:
        return (*tangent_coefficients(lam, mu, khg), 0.25 / h)
    n = mu.size
    code = np.where((mu.reshape(-1) == 10.0) & (rng.random(n) < 0.5), 1, 0).astype(np.uint8)
    normal = rng.standard_normal((6, n))
    normal[:3] -= normal[:3].mean(0)
    normal /= np.sqrt((normal[:3] ** 2).sum(0) + 2 * (normal[3:] ** 2).sum(0))
    coef, pvec = tangent_coefficients(lam, mu, khg, theta=np.full(n, 0.5), normal=normal, code=code, reg=0.01)
    return coef, pvec, 0.25 / h


@pytest.mark.parametrize("plastic", [False, True])
def test_rigid_pieces_are_rigid_and_their_galerkin_matrix_is_zt_a_z(plastic, monkeypatch):
    """The pieces' modes are rigid motions (no strain in any element of their piece, on the periodic
    grid too: a cube crossing two faces), the restriction is Zᵀ and the prolongation Z, and the coarse
    matrices are Zᵀ A Z of the assembled operator: the couplings among the large pieces, the diagonal
    blocks of the single voxels."""
    from twinlab.analyses.mechanics import _multigrid

    monkeypatch.setattr(_multigrid, "PIECE_COUPLED_VOXELS", 8)
    coef, pvec, q = _inclusions(plastic=plastic)
    shape = coef.shape[1:]
    rp = _multigrid.RigidPieces(coef, pvec, q)
    lab, count = _multigrid.piece_labels(coef[1])
    large = int((np.bincount(lab.reshape(-1))[1:] >= 8).sum())
    assert rp.coupled == large >= 4 and rp.count == count > large + 5  # the cubes, the single voxels
    assert rp.rotates[rp.coupled:].all() and not rp.rotates[0]  # the largest crosses the cell: translations
    n = 6 * rp.count
    z = np.zeros((n, 3, *shape))
    for c in range(n):
        y = np.zeros((rp.count, 6))
        y.reshape(-1)[c] = 1.0
        _multigrid._pieces_prolong_add(z[c], rp.node, rp.ref, rp.cen, rp.h, y)
    # rigid: the one-point strain and the hourglass modes vanish on every element inside its piece
    g, hgm = _multigrid._element_maps(q)
    corners = [np.roll(rp.node, (-a, -b, -c), axis=(0, 1, 2)) for a, b, c in _multigrid._CORNERS]
    inside = np.all([k == corners[0] for k in corners], axis=0) & (corners[0] > 0)
    for c in range(n):
        if c % 6 >= 3 and not rp.rotates[c // 6]:  # a piece across the cell: its translations only
            continue
        ue = np.stack([np.roll(z[c, m], (-a, -b, -c_), axis=(0, 1, 2)) for m in range(3)
                       for a, b, c_ in _multigrid._CORNERS])  # (24, grid): component-major corners
        own = inside & (corners[0] == c // 6 + 1)
        d = np.tensordot(g, ue[:, own], axes=1)
        strain = d + d[[0, 3, 6, 1, 4, 7, 2, 5, 8]]
        assert np.abs(strain).max() <= 1e-12 and np.abs(np.tensordot(hgm, ue[:, own], axes=1)).max() <= 1e-12
    zm = z.reshape(n, -1).T
    r = np.random.default_rng(3).standard_normal((3, *shape))
    _multigrid._pieces_restrict(r, rp.node, rp.ref, rp.cen, rp.h, rp._part)
    np.testing.assert_allclose(rp._part.sum(axis=0).reshape(-1), zm.T @ r.reshape(-1), rtol=1e-12, atol=1e-9)
    ref = zm.T @ (assemble(coef, pvec, q) @ zm)
    ac = np.zeros((6 * rp.coupled,) * 2)
    blocks = np.zeros((rp.count - rp.coupled, 6, 6))
    _multigrid._pieces_galerkin(coef, pvec if pvec is not None else coef[:1], pvec is not None, rp.node, rp.ref,
                                rp.cen, rp.h, g, hgm, ac, blocks)
    used = np.flatnonzero((np.arange(ac.shape[0]) % 6 < 3) | np.repeat(rp.rotates[:rp.coupled], 6))
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ac[np.ix_(used, used)], ref[np.ix_(used, used)], rtol=0, atol=1e-12 * scale)
    for i, b in enumerate(blocks):
        k = 6 * (rp.coupled + i)
        np.testing.assert_allclose(b, ref[k:k + 6, k:k + 6], rtol=0, atol=1e-12 * scale)


def test_rigid_pieces_cut_the_iterations_of_stiff_particles_in_a_soft_binder():
    """Stiff particles (6³ cubes) joined by a 10³× softer binder (the one-voxel gaps between them) move
    almost as rigid bodies, which the geometric levels cannot represent: the pieces' coarse correction
    needs far fewer CG iterations, to the same answer. A float64 cycle: a float32 one is at its rounding
    floor at tol 1e-8, where the order of the stencil sweep's sums moved the count with pieces from 26 to 27
    (stop 29; an FMA in the sweep did the same at stop 28) against 38 without — rounding noise at the 0.7
    bar. float64 at 1e-9: 27 against 42 with either sweep, stresses 5e-8 apart."""
    from twinlab.analyses.mechanics import MechanicsSolver, _multigrid

    idx = np.indices((21, 14, 21)) % 7
    mu = np.where((idx < 6).all(axis=0), 1e4, 10.0)
    runs = {}
    for pieces in (False, True):
        solver = MechanicsSolver(1.5 * mu, mu, workers=1)
        solver._mg = _multigrid.ElasticMultigrid(solver._coef, None, solver._q, dtype=np.float64, pieces=pieces)
        runs[pieces] = solver.solve_increment([0, 0, -0.01, 0.002, 0, 0], tol=1e-9)
    assert solver.hierarchy.pieces.count == 18
    assert runs[True].cg_iterations <= 0.7 * runs[False].cg_iterations
    np.testing.assert_allclose(runs[True].stress, runs[False].stress, atol=1e-6 * np.abs(runs[False].stress).max())

"""The cracked-plane contact interphase (twinlab.analyses.mechanics._interface) against analytic answers.

Matrices here are engineering-shear Voigt (order 00, 11, 22, 12, 02, 01): C maps engineering strain to stress,
N w = Voigt(sym(w⊗n)), Nᵀσ = σ·n; the module's strains are tensor shears (the solver's), converted with ENG.
"""

import numpy as np
import pytest

from twinlab.analyses.mechanics._laws import traction
from twinlab.analyses.mechanics._interface import (KEPT, OPEN, SLIP, SLIP_FLOOR, STICK, cracked_plane_vectors,
                                                   interface_return, interface_tangent)
from twinlab.errors import InputError

E, NU, H = 1000.0, 0.3, 2.0
LAM, MU = E * NU / ((1 + NU) * (1 - 2 * NU)), E / (2 * (1 + NU))
M = LAM + 2 * MU
C = np.zeros((6, 6))
C[:3, :3] = LAM
C[np.arange(3), np.arange(3)] += 2 * MU
C[np.arange(3, 6), np.arange(3, 6)] = MU
ENG = np.array([1.0, 1, 1, 2, 2, 2])  # engineering shear = 2 × tensor shear
PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def n_matrix(n):
    N = np.zeros((6, 3))
    for c, (i, j) in enumerate(PAIRS):
        N[c, i] += n[j]
        if i != j:
            N[c, j] += n[i]
    return N


def sym_eng(a, b):
    """Engineering Voigt strain of sym(a⊗b)."""
    return n_matrix(b) @ a


def c_eff_reference(n, hA):
    """C − C N (hA + NᵀCN)⁻¹ NᵀC for any (also non-symmetric) crack tangent."""
    N = n_matrix(n)
    CN = C @ N
    return C - CN @ np.linalg.solve(hA + N.T @ CN, CN.T)


def c_eff(p):
    """C − Σ p pᵀ per voxel (m, 6, 6), the KEPT share put back (the exact series form)."""
    return C[None] - np.einsum("eki,ekj->eij", p, p) / (1.0 - KEPT)


def random_normals(rng, m):
    n = rng.normal(size=(3, m))
    return n / np.linalg.norm(n, axis=0)


def frame(n):
    """Two unit tangents of the plane of n."""
    t1 = np.cross(n, [0.3, 0.5, 0.7])
    t1 /= np.linalg.norm(t1)
    return t1, np.cross(n, t1)


def stick_tangent(n, k_n, k_t):
    nn = np.outer(n, n)
    return k_n * nn + k_t * (np.eye(3) - nn)


def voxel_return(eps_eng, n, *, slip=np.zeros(3), gap=0.0, k_n=25.0, k_t=20.0, mu_f=0.3, c=0.5):
    """interface_return for one voxel from an engineering strain; traction σ·n added."""
    s, w, sl, st, A = interface_return((eps_eng / ENG)[:, None], slip[:, None], gap, n[:, None], H, LAM, MU, k_n,
                                       k_t, mu_f, c)
    return s[:, 0], w[:, 0], sl[:, 0], int(st[0]), A[0], traction(s, n[:, None])[:, 0]


def test_vectors_give_the_series_form_of_bulk_and_crack():
    rng = np.random.default_rng(1)
    m = 20
    n = random_normals(rng, m)
    k_n, k_t = rng.uniform(1, 500, m), rng.uniform(1, 500, m)
    A = np.stack([stick_tangent(n[:, e], k_n[e], k_t[e]) for e in range(m)])
    B = rng.normal(size=(m, 3, 3)) * 50
    A_general = A + B @ B.transpose(0, 2, 1)  # any SPD crack tangent
    for tangent in (A, A_general):
        got = c_eff(cracked_plane_vectors(LAM, MU, n, H, tangent))
        for e in range(m):
            N = n_matrix(n[:, e])
            want = np.linalg.inv(np.linalg.inv(C) + N @ np.linalg.inv(H * tangent[e]) @ N.T)
            assert np.abs(got[e] - want).max() < 1e-10 * np.abs(C).max()


def test_stick_closed_form():
    rng = np.random.default_rng(2)
    k_n, k_t = 40.0, 15.0
    for n in random_normals(rng, 5).T:
        got = c_eff(cracked_plane_vectors(LAM, MU, n[:, None], H, stick_tangent(n, k_n, k_t)[None]))[0]
        a = LAM * np.r_[1.0, 1, 1, 0, 0, 0] + 2 * MU * sym_eng(n, n) / ENG  # λ1 + 2μ n⊗n, stress Voigt
        want = C - np.outer(a, a) / (H * k_n + M)
        for t in frame(n):
            s = sym_eng(t, n) / ENG  # sym(t⊗n), tensor components
            want -= 4 * MU ** 2 * np.outer(s, s) / (H * k_t + MU)
        assert np.abs(got - want).max() < 1e-10 * np.abs(C).max()


def test_stiff_crack_is_the_bulk():
    rng = np.random.default_rng(3)
    n = random_normals(rng, 4)
    k = 1e9 * E
    A = np.stack([k * np.eye(3)] * 4)
    got = c_eff(cracked_plane_vectors(LAM, MU, n, H, A))
    assert np.abs(got - C[None]).max() < 1e-8 * np.abs(C).max()


def test_open_crack_is_plane_stress_in_its_plane_and_free_along_its_normal():
    open_A = np.zeros((1, 3, 3))
    x = np.array([1.0, 0.0, 0.0])
    got = c_eff(cracked_plane_vectors(LAM, MU, x[:, None], H, open_A))[0]
    ps = E / (1 - NU ** 2)
    assert np.allclose(got[1:3, 1:3], ps * np.array([[1, NU], [NU, 1]]), rtol=1e-12)
    assert got[3, 3] == pytest.approx(MU, rel=1e-12)
    assert np.abs(got[[0, 4, 5]]).max() < 1e-12 * E
    rng = np.random.default_rng(4)
    n = random_normals(rng, 6)
    p = cracked_plane_vectors(LAM, MU, n, H, np.zeros((6, 3, 3)))
    for e, ce in enumerate(c_eff(p)):
        assert np.abs(ce @ n_matrix(n[:, e])).max() < 1e-12 * E  # no traction on the crack for any strain
    # as returned, the open voxel keeps KEPT of the removed stiffness: positive, negligible
    kept = (C - p[0].T @ p[0]) @ n_matrix(n[:, 0])
    assert 0 < np.abs(kept).max() < 2 * KEPT * np.abs(C).max()


def test_stuck_crack_under_uniaxial_strain_is_bulk_and_spring_in_series():
    rng = np.random.default_rng(5)
    k_n = 30.0
    series = 1.0 / (1.0 / M + 1.0 / (H * k_n))
    for n in random_normals(rng, 5).T:
        v = sym_eng(n, n)  # uniaxial strain along n
        got = c_eff(cracked_plane_vectors(LAM, MU, n[:, None], H, stick_tangent(n, k_n, 10.0)[None]))[0]
        assert v @ got @ v == pytest.approx(series, rel=1e-12)


def test_return_of_a_pressed_crack_is_the_series_spring():
    rng = np.random.default_rng(6)
    k_n = 30.0
    for n in random_normals(rng, 3).T:
        e = -0.01
        s, w, _, st, _, t = voxel_return(e * sym_eng(n, n), n, k_n=k_n)
        t_n = e / (1.0 / M + 1.0 / (H * k_n))
        assert st == STICK
        assert np.allclose(t, t_n * n, rtol=1e-12, atol=1e-12 * abs(t_n))
        assert (w @ n) * k_n == pytest.approx(t_n, rel=1e-12)
        # a gap closes first: open while h|e| < gap, then the spring carries the rest
        gap = 0.5 * H * abs(e)
        assert voxel_return(0.9 * gap / H * sym_eng(-n, n), n, gap=gap)[3] == OPEN
        _, _, _, st, _, t = voxel_return(e * sym_eng(n, n), n, gap=gap, k_n=k_n)
        assert st == STICK and t @ n == pytest.approx((e + gap / H) / (1.0 / M + 1.0 / (H * k_n)), rel=1e-12)


def test_return_of_a_stretched_crack_opens_it_traction_free():
    rng = np.random.default_rng(7)
    for n in random_normals(rng, 3).T:
        eps = 0.01 * sym_eng(n, n) + 0.003 * rng.normal(size=6)
        s, w, sl, st, A, t = voxel_return(eps, n, gap=0.001)
        assert st == OPEN and np.abs(A).max() == 0
        assert np.abs(t).max() < 1e-12 * np.abs(s).max()
        open_c = c_eff_reference(n, np.zeros((3, 3)))  # linear through the origin: the open crack's C_eff
        assert np.allclose(s, open_c @ eps, rtol=0, atol=1e-10 * np.abs(s).max())
        assert np.allclose(sl, w - (w @ n) * n)  # an open crack forgets its slip


def test_return_of_a_sheared_crack_slides_on_the_coulomb_limit():
    rng = np.random.default_rng(8)
    mu_f, c = 0.3, 0.5
    # pressed by less than c (|t_n| 0.48 MPa: the cohesion is mobilised by the pressure) and by more (1.45 MPa)
    for n, e in zip(random_normals(rng, 4).T, (-0.01, -0.03, -0.01, -0.03)):
        t1 = frame(n)[0]
        t_n = e / (1.0 / M + 1.0 / (H * 25.0))
        s, w, sl, st, _, t = voxel_return(e * sym_eng(n, n) + 0.05 * sym_eng(t1, n), n, mu_f=mu_f, c=c)
        assert st == SLIP
        assert t @ n == pytest.approx(t_n, rel=1e-12)  # the normal problem does not see the shear
        t_t = t - (t @ n) * n
        assert np.linalg.norm(t_t) == pytest.approx(min(c, abs(t_n)) + mu_f * abs(t_n), rel=1e-12)
        assert t_t @ t1 == pytest.approx(np.linalg.norm(t_t), rel=1e-12)  # along the shear
        assert np.allclose(t_t, 20.0 * (w - (w @ n) * n - sl), rtol=1e-10)  # the spring holds the limit


def test_return_of_a_sheared_crack_below_the_limit_sticks():
    rng = np.random.default_rng(9)
    k_t, gamma = 20.0, 0.002
    for n in random_normals(rng, 3).T:
        t1 = frame(n)[0]
        s, w, sl, st, _, t = voxel_return(-0.01 * sym_eng(n, n) + gamma * sym_eng(t1, n), n, k_t=k_t)
        assert st == STICK
        want = k_t * H * MU * gamma / (MU + H * k_t)  # bulk shear and tangential spring in series
        assert np.allclose(t - (t @ n) * n, want * t1, rtol=1e-12, atol=1e-12 * want)
        assert np.allclose(sl, 0.0)
        # a slide, then the shear partly unloaded: the crack sticks at its carried slip
        _, _, slid, st, _, _ = voxel_return(-0.01 * sym_eng(n, n) + 0.05 * sym_eng(t1, n), n, k_t=k_t)
        _, _, sl2, st2, _, t2 = voxel_return(-0.01 * sym_eng(n, n) + 0.04 * sym_eng(t1, n), n, slip=slid, k_t=k_t)
        assert st == SLIP and st2 == STICK and np.allclose(sl2, slid, rtol=1e-12)
        assert np.linalg.norm(slid) > 1e-3
        want = k_t * (H * MU * 0.04 * t1 - MU * slid) / (MU + H * k_t)
        assert np.allclose(t2 - (t2 @ n) * n, want, rtol=1e-10)


def finite_difference(eps, n, delta=1e-7, **kw):
    """dσ/dε_eng (6, 6) by central differences at the engineering strain eps."""
    J = np.zeros((6, 6))
    for j in range(6):
        d = np.zeros(6)
        d[j] = delta
        J[:, j] = (voxel_return(eps + d, n, **kw)[0] - voxel_return(eps - d, n, **kw)[0]) / (2 * delta)
    return J


def test_returned_tangent_is_consistent():
    rng = np.random.default_rng(10)
    n = random_normals(rng, 1)[:, 0]
    t1 = frame(n)[0]
    kw = dict(k_n=25.0, k_t=20.0, mu_f=0.3, c=0.5, slip=0.001 * t1)
    for eps, state in ((-0.01 * sym_eng(n, n) + 0.002 * sym_eng(t1, n), STICK),
                       (0.01 * sym_eng(n, n) + 0.02 * sym_eng(t1, n), OPEN)):
        _, _, _, st, A, _ = voxel_return(eps, n, **kw)
        assert st == state
        fd = finite_difference(eps, n, **kw)
        assert np.abs(fd - c_eff(cracked_plane_vectors(LAM, MU, n[:, None], H, A[None]))[0]).max() < 1e-6 * E
    # sliding: the returned tangent is the consistent one less −(dτ_c/dp) k_n d⊗n (non-symmetric; dτ_c/dp = μ_f,
    # or 1 + μ_f below the pressure c where the cohesion is mobilised) plus the floor SLIP_FLOOR k_t d⊗d, so only
    # that symmetric part is consistent
    for e_n in (-0.01, -0.03):  # |t_n| 0.48 (< c) and 1.45 MPa (> c)
        eps = e_n * sym_eng(n, n) + 0.05 * sym_eng(t1, n)
        _, _, _, st, A, t = voxel_return(eps, n, **kw)
        assert st == SLIP
        d = t - (t @ n) * n
        d /= np.linalg.norm(d)
        slope = kw["mu_f"] + (1.0 if abs(t @ n) < kw["c"] else 0.0)
        consistent = A - SLIP_FLOOR * kw["k_t"] * np.outer(d, d) - slope * kw["k_n"] * np.outer(d, n)
        fd = finite_difference(eps, n, **kw)
        assert np.abs(fd - c_eff_reference(n, H * consistent)).max() < 1e-6 * E
        returned = c_eff(cracked_plane_vectors(LAM, MU, n[:, None], H, A[None]))[0]
        assert np.abs(returned - returned.T).max() < 1e-10 * E
        assert np.abs(fd - returned).max() > 1e-3 * E  # the dropped term matters: this is not the full tangent


def test_cracked_voxels_stay_positive_semi_definite_in_every_state():
    rng = np.random.default_rng(11)
    m = 3000
    n = random_normals(rng, m)
    eps = rng.normal(size=(6, m)) * 0.01
    slip = rng.normal(size=(3, m)) * 0.01
    gap = rng.uniform(-0.01, 0.01, m)
    s, w, sl, st, A = interface_return(eps, slip, gap, n, H, LAM, MU, 25.0, 20.0, 0.3, 0.5)
    assert set(np.unique(st)) == {OPEN, STICK, SLIP}
    assert np.abs(A - A.transpose(0, 2, 1)).max() == 0
    # the law holds on every voxel: σ·n = t(w)
    t = traction(s, n)
    t_n = (t * n).sum(axis=0)
    t_t = t - t_n * n
    closed = st != OPEN
    assert np.abs(t[:, ~closed]).max() < 1e-12 * np.abs(s).max()
    assert np.allclose(t_n[closed], 25.0 * (gap + (w * n).sum(axis=0))[closed], rtol=1e-10, atol=1e-12)
    assert np.all(t_n[closed] <= 1e-12)
    size = np.linalg.norm(t_t, axis=0)
    limit = np.minimum(0.5, np.abs(t_n)) + 0.3 * np.abs(t_n)  # the cohesion mobilised by the pressure
    assert np.allclose(size[st == SLIP], limit[st == SLIP], rtol=1e-12)
    assert np.all(size[st == STICK] <= limit[st == STICK] * (1 + 1e-12))
    p = cracked_plane_vectors(LAM, MU, n, H, A)
    eig = np.linalg.eigvalsh(C[None] - np.einsum("eki,ekj->eij", p, p))
    assert eig.min() > 0
    # in float32 (the solver's precision) an open voxel stays positive semi-definite thanks to KEPT
    p32 = p[st == OPEN].astype(np.float32)
    c32 = C.astype(np.float32)[None] - np.einsum("eki,ekj->eij", p32, p32)
    assert np.linalg.eigvalsh(c32.astype(np.float64)).min() > 0  # −3e-4 MPa without KEPT


def test_bad_input_is_refused():
    n = np.array([[1.0], [0.0], [0.0]])
    with pytest.raises(InputError):
        cracked_plane_vectors(LAM, MU, 2 * n, H, np.zeros((1, 3, 3)))
    with pytest.raises(InputError):
        cracked_plane_vectors(LAM, MU, n, H, -1e6 * np.eye(3)[None])
    with pytest.raises(InputError):
        interface_return(np.zeros((6, 1)), np.zeros((3, 1)), 0.0, n, H, LAM, MU, -1.0, 20.0, 0.3, 0.0)
    with pytest.raises(InputError):
        interface_tangent(np.array([STICK]), n, 25.0, np.ones(2), np.zeros((3, 1)), np.zeros((3, 1)))

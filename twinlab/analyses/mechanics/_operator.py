"""Fused element-by-element kernels of the one-point hexahedron (the solver's stiffness operator).

Why a separate module: these kernels are the hot path of every CG iteration, written so that LLVM
vectorises their inner loops (no branches on components, no float64 literals in float32 code).

Structure of the operator
-------------------------
For component ``m`` the 8 corner values ``v_abc`` (``a, b, c ∈ {0, 1}`` along axes 0, 1, 2) of an
element are mapped by a 3-D Walsh–Hadamard butterfly — 1-D forward sums ``S v = v_1 + v_0`` and
differences ``D v = v_1 − v_0`` along each axis — onto the 8 products ``XYZ`` (X, Y, Z ∈ {S, D}):

* ``DSS, SDS, SSD`` are the three gradient components times ``4 h_j`` (the one-point strain);
* ``DDS, DSD, SDD, DDD`` are the four hourglass modes (stiffness ``k_hg`` each);
* ``SSS`` (the mean) carries no energy.

The node forces of an element are the transpose: the same butterfly run backwards on the
generalised forces (``q_j σ_mj`` for the gradient products, ``k_hg · mode`` for the hourglass
products, 0 for ``SSS``). Sums and differences along axes 0 and 1 are computed once per node
column of an element row and shared by all elements of the row; the axis-2 step is the element loop.

Order and parallelism (:func:`_sweep`): element plane ``i`` touches node planes ``i`` and ``i + 1``; the
planes are swept in order within slabs of ~:data:`SLAB` planes, so each node plane is complete (and still
in cache) right after its second element plane — where the multigrid smoother's Chebyshev–Jacobi step
is fused in (:func:`tangent_residual`'s ``step``). The slabs run in parallel, their last planes after
them. Rows of elements that all have zero stiffness (pores, broken shell) are skipped: they contribute
exactly nothing, as before.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["apply_tangent", "apply_tangent_dot", "tangent_residual", "internal_force", "tangent_coefficients",
           "active_rows", "apply_cracks", "jacobi_plane"]


def tangent_coefficients(lam, mu, khg, *, theta=None, normal=None, code=None, reg=0.0):
    """Per-voxel coefficients of the tangent operator for :func:`apply_tangent`.

    The tangent stress of a strain ``ε`` is written as ``σ = L tr(ε) 1 + 2 M ε − (p : ε) p`` with
    ``p = √(2 μ θ) n`` the scaled flow direction of yielded J2 voxels (``θ < 1``): elastic voxels
    have ``L = λ, M = μ, p = 0``; plastic voxels ``M = μ (θ + reg)``, ``L = κ − 2M/3`` (Simo & Hughes
    1998, consistent tangent of the radial return plus the viscous regularisation of
    :func:`._laws.update_stress`, which acts on every voxel with the plastic code).

    Parameters
    ----------
    lam, mu, khg : (n0, n1, n2) arrays
        Lamé constants and hourglass stiffness per voxel (MPa, MPa, MPa/length²).
    theta : (n,) array, optional
        ``σ_y / q_trial`` from the return mapping (1 = elastic response).
    normal : (6, n) array, optional
        Unit deviatoric flow direction, (00, 11, 22, 12, 02, 01), tensor components.
    code : (n,) uint8 array, optional
        Law codes; voxels with code 1 (PLASTIC) get the regularised tangent.
    reg : float
        Viscous regularisation of plastic voxels (fraction of μ).

    Returns
    -------
    coef : (3, n0, n1, n2) array
        ``L, M, k_hg`` stacked (one array: fewer streams for the kernel).
    pvec : (6, n0, n1, n2) array or None
        ``p`` (None when no voxel has yielded: the kernel then skips the rank-one term).
    """
    dt = lam.dtype
    shp = lam.shape
    coef = np.empty((3, *shp), dt)
    coef[0] = lam
    coef[1] = mu
    coef[2] = khg
    if code is None or theta is None:
        return coef, None
    plastic = (code.reshape(shp) == 1)
    if not plastic.any():
        return coef, None
    th = theta.reshape(shp)
    mt = mu * (np.where(plastic, th, 1.0) + np.where(plastic, reg, 0.0))
    kap = lam + 2.0 * mu / 3.0
    coef[0] = np.where(plastic, kap - 2.0 * mt / 3.0, lam)
    coef[1] = np.where(plastic, mt, mu)
    yielded = plastic & (th < 1.0)
    if not yielded.any():
        return coef, None
    scale = np.where(yielded, np.sqrt(np.maximum(2.0 * mu * th, 0.0)), 0.0).astype(dt)
    pvec = (normal.reshape(6, *shp) * scale).astype(dt)
    return coef, pvec


def active_rows(coef, pvec=None):
    """(n0, n1) mask of element rows (i, j, :) with any non-zero stiffness coefficient."""
    act = (coef != 0).any(axis=(0, 3))
    if pvec is not None:
        act |= (pvec != 0).any(axis=(0, 3))
    return np.ascontiguousarray(act)


def apply_tangent(u, coef, pvec, active, q, out):
    """``out = K u``: the tangent stiffness (gradient part and hourglass control) applied to ``u``.

    Parameters
    ----------
    u, out : (3, n0, n1, n2) arrays (node displacements and forces); the kernel computes in
        ``out``'s precision (a float32 ``u`` with a float64 ``out``: forces of the rounded ``u``
        to float64 accuracy)
    coef, pvec : from :func:`tangent_coefficients`
    active : (n0, n1) bool, from :func:`active_rows`
    q : (3,) array of the solver dtype
        ``1/(4 h_j)``: the gradient weights of the one-point hexahedron.
    """
    _sweep(0 if pvec is None else 1, u, coef, coef[:1] if pvec is None else pvec, active, q, out, out, _ZERO,
           out.dtype.type(1), *_no_step(out), out.dtype.type(0), _NO_DOTS)
    return out


def apply_tangent_dot(u, coef, pvec, active, q, out) -> float:
    """:func:`apply_tangent` that also returns ``u · K u`` (float64), summed node plane by node plane while each
    plane is still in cache: CG's ``pᵀ A p`` without a pass of its own over ``p`` and ``q``. The planes' sums
    are added in plane order: the result does not depend on the threads."""
    dots = np.empty(u.shape[1], np.float64)
    _sweep(0 if pvec is None else 1, u, coef, coef[:1] if pvec is None else pvec, active, q, out, out, _ZERO,
           out.dtype.type(1), *_no_step(out), out.dtype.type(0), dots)
    return float(dots.sum())


def tangent_residual(u, b, coef, pvec, active, q, out, step=None, lead=None):
    """``out = b − K u`` in one sweep (``b`` may be ``out``: ``r −= K u`` in place): the multigrid
    smoother's residual updates, without the zeroed force array and the subtraction pass of
    :func:`apply_tangent` followed by ``b − out``. Arguments as there; ``b`` has ``out``'s shape.

    ``step = (dinv, d, x, a, c)``: the smoother's next Chebyshev–Jacobi step fused into the same sweep
    (:func:`jacobi_plane` on each node plane once its residual is complete: ``d ← a d + c D⁻¹ out``,
    ``x += d``): the step's passes over ``out`` and ``d`` come from cache. ``u`` may be ``d`` or ``x``
    (a node plane is updated only after both element planes that read it).

    ``lead = c`` (with ``step``, ``u`` being its ``d``): the smoother's first step from x = 0, ``d = x = c D⁻¹ b``,
    taken on each node plane just before the first element plane reads it — a pre-smoothing without a pass of
    its own for that step."""
    if lead is not None and (step is None or u is not step[1]):
        raise ValueError("a lead step needs the fused step's arrays and u = its d")
    _sweep(0 if pvec is None else 1, u, coef, coef[:1] if pvec is None else pvec, active, q, out, b,
           _IN_PLACE if b is out else _COPY, out.dtype.type(-1),
           *(_no_step(out) if step is None else _step(out, *step)), out.dtype.type(0 if lead is None else lead), _NO_DOTS)
    return out


def internal_force(sig, u, khg, active, q, out):
    """``out = Bᵀ σ + k_hg H Hᵀ u``: node forces of given voxel stresses plus the hourglass forces of ``u``.

    ``sig`` is (6, n0, n1, n2) in the order (00, 11, 22, 12, 02, 01); ``active`` must cover every
    row with a non-zero stress or hourglass stiffness.
    """
    _sweep(2, u, sig, khg[None], active, q, out, out, _ZERO, out.dtype.type(1), *_no_step(out), out.dtype.type(0),
           _NO_DOTS)
    return out


def apply_cracks(u, index, rows, q, out):
    """``out += Bᵀ D B u`` over the listed voxels only: the cracked voxels' tangent correction (:mod:`._interface`).

    ``index`` (m,) flat voxel indices; ``rows`` (m, 20) from :meth:`._interface.CrackedIncrement.operator_rows`:
    ``dλ, dμ`` and three tensors ``p_k`` (6 each, tensor shears), so that ``D : ε = dλ tr(ε) 1 + 2 dμ ε − Σ_k p_k
    (p_k : ε)`` — the cracked tensor minus the isotropic stand-in that :func:`apply_tangent` applies with ``coef``.
    One-point strain of each voxel from its 8 corner nodes (node (i, j, k) is its low corner, periodic) and the
    transpose scatter, as :func:`apply_tangent`'s gradient part (no hourglass: that stays the stand-in's). Serial:
    the cracked voxels are a thin set (interphase layers), and neighbours share nodes.
    """
    _cracks_kernel(u, index, rows, q, out)
    return out


def _no_step(out):
    """:func:`_sweep`'s step arguments for a sweep without a smoother step (placeholders of out's type)."""
    return out, out, out, out.dtype.type(0), out.dtype.type(0), False


def _step(out, dinv, d, x, a, c):
    if not (dinv.dtype == d.dtype == x.dtype == out.dtype):
        raise TypeError("a fused smoother step needs dinv, d and x in the residual's precision")
    return dinv, d, x, out.dtype.type(a), out.dtype.type(c), True


@numba.njit(cache=True)
def jacobi_plane(dinv, r, d, x, a, c, init, i):
    """One Chebyshev step with node-block Jacobi on node plane i: d = a d + c D⁻¹ r; x += d, or x = d
    with ``init`` (d is not read when a = 0, x not with ``init``). ``dinv``: the inverse 3 × 3 node
    blocks, packed (00, 11, 22, 12, 02, 01)."""
    n1, n2 = r.shape[2], r.shape[3]
    first = a == 0
    for j in range(n1):
        for k in range(n2):
            r0 = r[0, i, j, k]
            r1 = r[1, i, j, k]
            r2 = r[2, i, j, k]
            z0 = dinv[0, i, j, k] * r0 + dinv[5, i, j, k] * r1 + dinv[4, i, j, k] * r2
            z1 = dinv[5, i, j, k] * r0 + dinv[1, i, j, k] * r1 + dinv[3, i, j, k] * r2
            z2 = dinv[4, i, j, k] * r0 + dinv[3, i, j, k] * r1 + dinv[2, i, j, k] * r2
            v0 = c * z0
            v1 = c * z1
            v2 = c * z2
            if not first:
                v0 += a * d[0, i, j, k]
                v1 += a * d[1, i, j, k]
                v2 += a * d[2, i, j, k]
            d[0, i, j, k] = v0
            d[1, i, j, k] = v1
            d[2, i, j, k] = v2
            if init:
                x[0, i, j, k] = v0
                x[1, i, j, k] = v1
                x[2, i, j, k] = v2
            else:
                x[0, i, j, k] += v0
                x[1, i, j, k] += v1
                x[2, i, j, k] += v2


# ====================================================================== kernels
@numba.njit(cache=True)
def _cracks_kernel(u, index, rows, q, out):
    n0, n1, n2 = u.shape[1], u.shape[2], u.shape[3]
    d = np.empty((3, 3), np.float64)
    for e in range(index.size):
        v = index[e]
        i = v // (n1 * n2)
        j = (v // n2) % n1
        k = v % n2
        i1 = i + 1 if i + 1 < n0 else 0
        j1 = j + 1 if j + 1 < n1 else 0
        k1 = k + 1 if k + 1 < n2 else 0
        for m in range(3):
            v000 = np.float64(u[m, i, j, k])
            v001 = np.float64(u[m, i, j, k1])
            v010 = np.float64(u[m, i, j1, k])
            v011 = np.float64(u[m, i, j1, k1])
            v100 = np.float64(u[m, i1, j, k])
            v101 = np.float64(u[m, i1, j, k1])
            v110 = np.float64(u[m, i1, j1, k])
            v111 = np.float64(u[m, i1, j1, k1])
            d[m, 0] = q[0] * (v100 + v101 + v110 + v111 - v000 - v001 - v010 - v011)
            d[m, 1] = q[1] * (v010 + v011 + v110 + v111 - v000 - v001 - v100 - v101)
            d[m, 2] = q[2] * (v001 + v011 + v101 + v111 - v000 - v010 - v100 - v110)
        e0 = d[0, 0]
        e1 = d[1, 1]
        e2 = d[2, 2]
        e3 = 0.5 * (d[1, 2] + d[2, 1])
        e4 = 0.5 * (d[0, 2] + d[2, 0])
        e5 = 0.5 * (d[0, 1] + d[1, 0])
        r = rows[e]
        lt = r[0] * (e0 + e1 + e2)
        m2 = 2.0 * r[1]
        s0 = lt + m2 * e0
        s1 = lt + m2 * e1
        s2 = lt + m2 * e2
        s3 = m2 * e3
        s4 = m2 * e4
        s5 = m2 * e5
        for kk in range(3):
            o = 2 + 6 * kk
            pe = (r[o] * e0 + r[o + 1] * e1 + r[o + 2] * e2
                  + 2.0 * (r[o + 3] * e3 + r[o + 4] * e4 + r[o + 5] * e5))
            s0 -= r[o] * pe
            s1 -= r[o + 1] * pe
            s2 -= r[o + 2] * pe
            s3 -= r[o + 3] * pe
            s4 -= r[o + 4] * pe
            s5 -= r[o + 5] * pe
        # node force of corner (a, b, c), component m: Σ_n q_n (±1 along n) σ_mn
        for m in range(3):
            if m == 0:
                g0, g1, g2 = q[0] * s0, q[1] * s5, q[2] * s4
            elif m == 1:
                g0, g1, g2 = q[0] * s5, q[1] * s1, q[2] * s3
            else:
                g0, g1, g2 = q[0] * s4, q[1] * s3, q[2] * s2
            out[m, i, j, k] += -g0 - g1 - g2
            out[m, i, j, k1] += -g0 - g1 + g2
            out[m, i, j1, k] += -g0 + g1 - g2
            out[m, i, j1, k1] += -g0 + g1 + g2
            out[m, i1, j, k] += g0 - g1 - g2
            out[m, i1, j, k1] += g0 - g1 + g2
            out[m, i1, j1, k] += g0 + g1 - g2
            out[m, i1, j1, k1] += g0 + g1 + g2


# An element row (i, j, :) is processed in blocks of NB elements through small flat scratch buffers
# whose row stride W is a compile-time constant. That is what lets LLVM vectorise the loops: every
# access to a buffer is then a constant offset from one base pointer, so its runtime alias checks
# merge into one (with per-row views of runtime stride LLVM gives up: "too many memory checks").
NB = 128
W = NB + 16
# buffer rows: F[4m + t] (t = SS, SD, DS, DD: axis-0/axis-1 sums and differences of component m per
# node column); E[4m + t] each element's share for its c = 0 corner, E[12 + 4m + t] at index kk + 1
# its share for the c = 1 corner; P holds the 9 per-element tangent coefficients of plastic rows.
_NF, _NE, _NP = 12, 24, 9


@numba.njit(cache=True)
def _forward(u, i, i1, j, j1, kb, nb, n2, F):
    """F for node columns kb … kb + nb of element row (i, j) (column n2 wraps to 0)."""
    kw = kb + nb if kb + nb < n2 else 0
    for m in range(3):
        # views starting at kb: a non-negative loop index lets LLVM drop numba's wraparound select
        A = u[m, i, j, kb:]
        B = u[m, i, j1, kb:]
        C = u[m, i1, j, kb:]
        D = u[m, i1, j1, kb:]
        o = 4 * m * W
        for kk in range(nb):
            s0 = C[kk] + A[kk]
            d0 = C[kk] - A[kk]
            s1 = D[kk] + B[kk]
            d1 = D[kk] - B[kk]
            F[o + kk] = s1 + s0
            F[o + W + kk] = s1 - s0
            F[o + 2 * W + kk] = d1 + d0
            F[o + 3 * W + kk] = d1 - d0
        a = u[m, i, j, kw]
        b = u[m, i, j1, kw]
        c = u[m, i1, j, kw]
        d = u[m, i1, j1, kw]
        s0 = c + a
        d0 = c - a
        s1 = d + b
        d1 = d - b
        F[o + nb] = s1 + s0
        F[o + W + nb] = s1 - s0
        F[o + 2 * W + nb] = d1 + d0
        F[o + 3 * W + nb] = d1 - d0


@numba.njit(cache=True, inline="always")
def _c_forward(F, m, kk):
    """The 7 energy-carrying butterfly products of component m at block element kk:
    DSS, SDS, SSD (gradients × 4h) and DDS, DSD, SDD, DDD (hourglass modes)."""
    o = 4 * m * W + kk
    ss0 = F[o]
    ss1 = F[o + 1]
    sd0 = F[o + W]
    sd1 = F[o + W + 1]
    ds0 = F[o + 2 * W]
    ds1 = F[o + 2 * W + 1]
    dd0 = F[o + 3 * W]
    dd1 = F[o + 3 * W + 1]
    return ds1 + ds0, sd1 + sd0, ss1 - ss0, dd1 + dd0, ds1 - ds0, sd1 - sd0, dd1 - dd0


@numba.njit(cache=True, inline="always")
def _c_backward(E, m, kk, g_dss, g_sds, g_ssd, g_dds, g_dsd, g_sdd, g_ddd):
    """Transpose of :func:`_c_forward`: the generalised forces onto the c = 0 / c = 1 corners."""
    o = 4 * m * W + kk
    n = o + 12 * W + 1
    E[o] = -g_ssd
    E[n] = g_ssd
    E[o + W] = g_sds - g_sdd
    E[n + W] = g_sds + g_sdd
    E[o + 2 * W] = g_dss - g_dsd
    E[n + 2 * W] = g_dss + g_dsd
    E[o + 3 * W] = g_dds - g_ddd
    E[n + 3 * W] = g_dds + g_ddd


@numba.njit(cache=True)
def _elements_elastic(F, E, L, M, KH, nb, q0, q1, q2, sg):
    """Isotropic elastic elements: σ = L tr(ε) 1 + 2 M ε, hourglass stiffness KH (rows from kb on); the
    generalised forces × sg (±1: a product by ±1 is exact, so folding the sign in here instead of into each of the
    12 node forces of :func:`_backward` changes no bit)."""
    g0 = sg * q0
    g1 = sg * q1
    g2 = sg * q2
    for kk in range(nb):
        a0, b0, c0, h00, h01, h02, h03 = _c_forward(F, 0, kk)
        a1, b1, c1, h10, h11, h12, h13 = _c_forward(F, 1, kk)
        a2, b2, c2, h20, h21, h22, h23 = _c_forward(F, 2, kk)
        # displacement gradient d[m, n] = q_n · (component m's n-th gradient product)
        d00 = q0 * a0
        d01 = q1 * b0
        d02 = q2 * c0
        d10 = q0 * a1
        d11 = q1 * b1
        d12 = q2 * c1
        d20 = q0 * a2
        d21 = q1 * b2
        d22 = q2 * c2
        l_ = L[kk]
        m_ = M[kk]
        kh = sg * KH[kk]
        ltr = l_ * (d00 + d11 + d22)
        m2 = m_ + m_
        s0 = ltr + m2 * d00
        s1 = ltr + m2 * d11
        s2 = ltr + m2 * d22
        s3 = m_ * (d12 + d21)
        s4 = m_ * (d02 + d20)
        s5 = m_ * (d01 + d10)
        # generalised forces of component m: q_n σ_mn for the gradients, KH · mode for the hourglass
        _c_backward(E, 0, kk, g0 * s0, g1 * s5, g2 * s4, kh * h00, kh * h01, kh * h02, kh * h03)
        _c_backward(E, 1, kk, g0 * s5, g1 * s1, g2 * s3, kh * h10, kh * h11, kh * h12, kh * h13)
        _c_backward(E, 2, kk, g0 * s4, g1 * s3, g2 * s2, kh * h20, kh * h21, kh * h22, kh * h23)


@numba.njit(cache=True)
def _elements_plastic(F, E, P, nb, q0, q1, q2, sg):
    """Elements with the J2 tangent σ = L tr(ε) 1 + 2 M ε − (p : ε) p; coefficients copied into P
    (rows L, M, KH, p0 … p5); forces × sg as in :func:`_elements_elastic`."""
    g0 = sg * q0
    g1 = sg * q1
    g2 = sg * q2
    for kk in range(nb):
        a0, b0, c0, h00, h01, h02, h03 = _c_forward(F, 0, kk)
        a1, b1, c1, h10, h11, h12, h13 = _c_forward(F, 1, kk)
        a2, b2, c2, h20, h21, h22, h23 = _c_forward(F, 2, kk)
        d00 = q0 * a0
        d01 = q1 * b0
        d02 = q2 * c0
        d10 = q0 * a1
        d11 = q1 * b1
        d12 = q2 * c1
        d20 = q0 * a2
        d21 = q1 * b2
        d22 = q2 * c2
        l_ = P[kk]
        m_ = P[W + kk]
        kh = sg * P[2 * W + kk]
        p0 = P[3 * W + kk]
        p1 = P[4 * W + kk]
        p2 = P[5 * W + kk]
        p3 = P[6 * W + kk]
        p4 = P[7 * W + kk]
        p5 = P[8 * W + kk]
        g12 = d12 + d21  # twice the tensor shear strains
        g02 = d02 + d20
        g01 = d01 + d10
        pe = p0 * d00 + p1 * d11 + p2 * d22 + p3 * g12 + p4 * g02 + p5 * g01  # p : ε
        ltr = l_ * (d00 + d11 + d22)
        m2 = m_ + m_
        s0 = ltr + m2 * d00 - p0 * pe
        s1 = ltr + m2 * d11 - p1 * pe
        s2 = ltr + m2 * d22 - p2 * pe
        s3 = m_ * g12 - p3 * pe
        s4 = m_ * g02 - p4 * pe
        s5 = m_ * g01 - p5 * pe
        _c_backward(E, 0, kk, g0 * s0, g1 * s5, g2 * s4, kh * h00, kh * h01, kh * h02, kh * h03)
        _c_backward(E, 1, kk, g0 * s5, g1 * s1, g2 * s3, kh * h10, kh * h11, kh * h12, kh * h13)
        _c_backward(E, 2, kk, g0 * s4, g1 * s3, g2 * s2, kh * h20, kh * h21, kh * h22, kh * h23)


@numba.njit(cache=True)
def _elements_stress(F, E, P, nb, q0, q1, q2, sg):
    """Given stresses (P rows σ_0 … σ_5, KH) and the hourglass forces of the displacement; forces × sg as in
    :func:`_elements_elastic`."""
    g0 = sg * q0
    g1 = sg * q1
    g2 = sg * q2
    for kk in range(nb):
        _, _, _, h00, h01, h02, h03 = _c_forward(F, 0, kk)
        _, _, _, h10, h11, h12, h13 = _c_forward(F, 1, kk)
        _, _, _, h20, h21, h22, h23 = _c_forward(F, 2, kk)
        s0 = P[kk]
        s1 = P[W + kk]
        s2 = P[2 * W + kk]
        s3 = P[3 * W + kk]
        s4 = P[4 * W + kk]
        s5 = P[5 * W + kk]
        kh = sg * P[6 * W + kk]
        _c_backward(E, 0, kk, g0 * s0, g1 * s5, g2 * s4, kh * h00, kh * h01, kh * h02, kh * h03)
        _c_backward(E, 1, kk, g0 * s5, g1 * s1, g2 * s3, kh * h10, kh * h11, kh * h12, kh * h13)
        _c_backward(E, 2, kk, g0 * s4, g1 * s3, g2 * s2, kh * h20, kh * h21, kh * h22, kh * h23)


@numba.njit(cache=True)
def _copy_rows(src, i, j, kb, nb, P, first):
    """P[first + r] ← src[r, i, j, kb : kb + nb] (coefficient rows into the constant-stride buffer)."""
    for r in range(src.shape[0]):
        row = src[r, i, j, kb:]
        o = (first + r) * W
        for kk in range(nb):
            P[o + kk] = row[kk]


@numba.njit(cache=True)
def _backward(out, i, i1, j, j1, kb, nb, E):
    """Scatter-add the block's node forces: node column kb + kk receives E[c = 0 share of
    element kk] + E[c = 1 share of element kk − 1] (index 0 of the latter holds the previous block's
    carry)."""
    for m in range(3):
        o = 4 * m * W
        n = o + 12 * W
        oA = out[m, i, j, kb:]
        oC = out[m, i1, j, kb:]
        oB = out[m, i, j1, kb:]
        oD = out[m, i1, j1, kb:]
        for kk in range(nb):
            rss = E[o + kk] + E[n + kk]
            rsd = E[o + W + kk] + E[n + W + kk]
            rds = E[o + 2 * W + kk] + E[n + 2 * W + kk]
            rdd = E[o + 3 * W + kk] + E[n + 3 * W + kk]
            ts0 = rss - rsd
            td0 = rds - rdd
            ts1 = rss + rsd
            td1 = rds + rdd
            oA[kk] += ts0 - td0
            oC[kk] += ts0 + td0
            oB[kk] += ts1 - td1
            oD[kk] += ts1 + td1


@numba.njit(cache=True)
def _carry(E, prev_nb, wrap):
    """Index 0 of the c = 1 shares ← the previous block's overflow (its last element's share for the first node
    column of this block; zero for a row's first block, ``prev_nb = 0``). With ``wrap`` (after the row's last
    block) the c = 0 shares of column 0 are cleared too, so that a one-column :func:`_backward` adds only the
    row's last c = 1 share, which belongs to node column n2 ≡ 0 (periodic)."""
    for r in range(12):
        if wrap:
            E[r * W] = 0.0
        o = (12 + r) * W
        E[o] = E[o + prev_nb] if prev_nb > 0 else 0.0


@numba.njit(cache=True)
def _plane(kind, u, aux, pvec, active, q, out, i, F, E, P, sg):
    """All element rows of element plane i, their node forces × sg added to out. kind 0: elastic
    tangent (aux = L, M, KH); 1: plastic tangent (aux = L, M, KH; pvec = p); 2: given stresses aux (6)
    and hourglass stiffness pvec[0]."""
    n0, n1, n2 = u.shape[1], u.shape[2], u.shape[3]
    i1 = i + 1 if i + 1 < n0 else 0
    q0, q1, q2 = q[0], q[1], q[2]
    for j in range(n1):
        if not active[i, j]:
            continue
        j1 = j + 1 if j + 1 < n1 else 0
        kb = 0
        nb = 0
        while kb < n2:
            _carry(E, nb, False)
            nb = min(NB, n2 - kb)
            _forward(u, i, i1, j, j1, kb, nb, n2, F)
            if kind == 0:
                _elements_elastic(F, E, aux[0, i, j, kb:], aux[1, i, j, kb:], aux[2, i, j, kb:], nb, q0, q1, q2, sg)
            elif kind == 1:
                _copy_rows(aux, i, j, kb, nb, P, 0)
                _copy_rows(pvec, i, j, kb, nb, P, 3)
                _elements_plastic(F, E, P, nb, q0, q1, q2, sg)
            else:
                _copy_rows(aux, i, j, kb, nb, P, 0)
                _copy_rows(pvec, i, j, kb, nb, P, 6)
                _elements_stress(F, E, P, nb, q0, q1, q2, sg)
            _backward(out, i, i1, j, j1, kb, nb, E)
            kb += nb
        _carry(E, nb, True)
        _backward(out, i, i1, j, j1, 0, 1, E)


#: how :func:`_sweep` starts ``out``: zeroed, a copy of ``b``, or as it is (``b`` is ``out``)
_ZERO, _COPY, _IN_PLACE = 0, 1, 2
#: element planes per slab of :func:`_sweep` (at most; at least 2: see there)
SLAB = 32
#: :func:`_sweep`'s ``dots`` when no plane sums are wanted
_NO_DOTS = np.empty(0, np.float64)


@numba.njit(cache=True)
def _start_plane(out, b, start, i, dinv, d, x, lead):
    """Node plane i of ``out`` before any element adds to it (see _ZERO …); with ``lead`` ≠ 0 the first
    Chebyshev step d = x = lead · D⁻¹ b on it (:func:`tangent_residual`)."""
    if lead != 0:
        jacobi_plane(dinv, b, d, x, lead * 0, lead, True, i)
    if start == _IN_PLACE:
        return
    for m in range(3):
        if start == _ZERO:
            out[m, i] = 0.0
        else:
            out[m, i] = b[m, i]


@numba.njit(cache=True)
def slab_count(n0):
    """How many slabs :func:`_sweep` cuts n0 element planes into: of 2 to :data:`SLAB` planes, an even count
    where n0 ≥ 4 (see there)."""
    return max(1, min(n0 // 2, 2 * -(-n0 // (2 * SLAB))))


@numba.njit(cache=True)
def _slab(t, nslab, n0, out):
    """Element planes [lo, hi) of slab t of nslab, and its scratch buffers F, E, P in out's precision (a
    float32 u with a float64 out: forces computed in float64; a force is a difference of large element
    terms, float32 there is not enough)."""
    return (t * n0 // nslab, (t + 1) * n0 // nslab, np.empty(_NF * W, out.dtype), np.empty(_NE * W, out.dtype),
            np.empty(_NP * W, out.dtype))


@numba.njit(cache=True, fastmath={"reassoc"})  # reassoc: the plane's float64 sum vectorises (as _multigrid._dot)
def _finish_plane(u, out, i, dinv, d, x, a, c, step, dots):
    """What :func:`_sweep` does with node plane i once both its element planes have added to it: the fused
    smoother step, or u · out over the plane into ``dots[i]`` (``dots`` of size 0: none)."""
    if dots.size > 0:
        acc = 0.0
        for m in range(3):
            for j in range(u.shape[2]):
                for k in range(u.shape[3]):
                    acc += np.float64(u[m, i, j, k]) * np.float64(out[m, i, j, k])
        dots[i] = acc
    if step:
        jacobi_plane(dinv, out, d, x, a, c, False, i)


@numba.njit(parallel=True, cache=True)
def _sweep(kind, u, aux, pvec, active, q, out, b, start, sg, dinv, d, x, a, c, step, lead, dots):
    """out = start + sg × (node forces of kind, see :func:`_plane`), start 0 or b (see _ZERO …); with
    ``step``, :func:`jacobi_plane` (dinv, out, d, x, a, c) on every node plane once it is complete, with ``dots``
    (size n0) each node plane's u · out (:func:`_finish_plane`); with ``lead`` ≠ 0 the first step from x = 0 on
    every node plane before any element plane reads it (:func:`_start_plane`).

    Order of work (why): the element planes are cut into slabs of about :data:`SLAB` planes (≥ 2;
    a count that does not depend on the threads, so neither does the summation order), and a slab
    is swept plane after plane: node plane i + 1, written by element plane i, is still in cache when
    element plane i + 1 adds to it (and when the step reads it), so ``u`` and ``out`` stream through
    memory once (the parity order of stop ≤ 28 read both twice). The slabs' planes but the last run
    in parallel; their last element planes, which share a node plane with the next slab's first,
    after them, again in parallel (slabs of ≥ 2 planes keep those apart). The slab count is even (where
    the grid has ≥ 4 planes): 2 threads then get equal shares — 3 slabs of a 65–96-plane grid (the second
    half of a 128³ calendering) kept one of the 2 cores idle for a third of every sweep."""
    n0 = u.shape[1]
    nslab = slab_count(n0)
    for t in numba.prange(nslab):
        lo, hi, F, E, P = _slab(t, nslab, n0, out)
        _start_plane(out, b, start, lo, dinv, d, x, lead)
        for i in range(lo, hi - 1):
            _start_plane(out, b, start, i + 1, dinv, d, x, lead)
            _plane(kind, u, aux, pvec, active, q, out, np.int64(i), F, E, P, sg)
            if i > lo:  # node plane i has both its element planes (i − 1, i)
                _finish_plane(u, out, i, dinv, d, x, a, c, step, dots)
    for t in numba.prange(nslab):
        lo, hi, F, E, P = _slab(t, nslab, n0, out)
        _plane(kind, u, aux, pvec, active, q, out, np.int64(hi - 1), F, E, P, sg)
        if hi - 1 > lo:
            _finish_plane(u, out, hi - 1, dinv, d, x, a, c, step, dots)
        _finish_plane(u, out, hi % n0, dinv, d, x, a, c, step, dots)  # the next slab's first (n0 = 1: the only)

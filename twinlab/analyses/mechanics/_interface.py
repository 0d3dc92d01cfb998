"""Cracked-plane contact interphase: a voxel that holds a frictional crack of a given normal (building block).

Today's calendering interphase (:mod:`._contacts`) is an isotropic one-voxel layer solved by fixed-point passes
that do not converge. This module is the anisotropic law meant to replace it, with its consistent tangent, so that
the increment is solved by an active-set (semi-smooth) Newton method: :class:`CrackSet` hands cracked voxels to
:meth:`.MechanicsSolver.solve_increment` (``cracks=``, stop 28), whose Newton re-runs :func:`interface_return` at
every evaluation (the open/stick/slip set follows each iterate) and whose CG applies the exact tangent
(:func:`._operator.apply_cracks`) on top of an isotropic stand-in (:func:`stand_in`) that the multigrid sees.

Model
-----
An interphase voxel of thickness ``h`` along its contact normal ``n`` (``h = Σ n_i² h_i``, as
:meth:`._contacts.ContactLaw.moduli`) is isotropic bulk (λ, μ) in series with a crack (a zero-thickness interface
element) of normal ``n`` whose displacement jump is ``w`` (a length, opening positive along ``n``). The crack's jump
is smeared over the voxel — the smeared / embedded crack idea of Rots' and de Borst's crack models (Rots, "Computational
modeling of concrete fracture", PhD thesis, TU Delft 1988; de Borst & Nauta, Eng. Comput. 2 (1985) 35 — cited
from memory, not verified here): ::

    ε = ε_bulk + sym(w ⊗ n)/h,     σ = C : ε_bulk,     σ·n = t(w)

so the local equilibrium that fixes ``w`` for a given total voxel strain ``ε`` is ``(C : (ε − sym(w⊗n)/h))·n = t(w)``.
The crack is a penalty (compliant-spring) contact with Coulomb friction, the unilateral condition of
Signorini as in :mod:`._contacts` (Hüeber & Wohlmuth 2005; Hüeber, Stadler & Wohlmuth, SIAM J. Sci. Comput. 30
(2008) 572 for the friction), with normal and tangential stiffness per area ``k_n``, ``k_t`` (MPa/µm), cohesion
``c`` (MPa, the shear traction carried besides friction once pressed by at least ``c``) and friction coefficient
``μ_f``. (``ContactLaw`` stores
them in von Mises units: ``sy = √3 c``, ``slope = √3 μ_f``.) With ``g`` the crack's opening in the reference
state (a gap ≥ 0, or an overlap < 0, a length) and ``s`` its accumulated tangential slip:

* **open** (``g + w_n > 0``): ``t = 0``;
* **stick** (closed): ``t_n = k_n (g + w_n) ≤ 0``, ``t_t = k_t (w_t − s)``, ``|t_t| ≤ τ_c = min(c, |t_n|) + μ_f |t_n|``;
* **slip** (closed): ``t_t = τ_c d`` along the stick trial ``d``, the slip grows by the excess;
* **crushed** (closed, optional ``cap``): the pressure is limited, ``t_n ≥ −p_cap`` — a perfectly plastic normal
  closure (the crushing / rearrangement of the particles around the contact, :func:`._contacts.compaction_pressure`).

The cohesion is mobilised by the pressure, ``min(c, |t_n|)``: full above a pressure ``c``, none at zero pressure, so
the friction limit — and the stress — is continuous where a crack opens (an open crack carries no shear). With the
full cohesion ``c + μ_f |t_n|`` of a Mohr–Coulomb interface a crack closing at zero pressure could hold ``c`` at once
and lose it on opening: the stress jumped at every crack on the open/closed switch, and the semi-smooth Newton
stalled at the out-of-balance force of those jumps (stop 29, small test cathode's first increment: 3–6e-6 for 70
iterations at any tolerance below; with the ramp 6e-8 in 33 iterations; the increment's mean axial stress 5.842
MPa with the full cohesion at tol 1e-5, 5.839 with the ramp at 1e-5 and 5.838 at 1e-7). A regularisation of the law, not a published model: it changes only contacts pressed by less than
``c`` (0.58 MPa for NCM against contact pressures of ~1–100 MPa in calendering).

Because C is isotropic, ``Nᵀ C N = μ I + (λ+μ) n⊗n`` is diagonal in the crack's frame: the normal and tangential
problems decouple and :func:`interface_return` is closed-form (no local iterations): the normal state is exact
(the normal law is monotone), and the Coulomb return is radial (the tangential stiffness of bulk and spring in
series is isotropic in the plane, so the radial return is the exact closest point).

The voxel's tangent for a crack tangent ``dt = A dw`` (:func:`interface_tangent`) is, in engineering-shear Voigt
matrices (N w = Voigt(sym(w⊗n)), Nᵀσ = σ·n) ::

    C_eff = C − C N (h A + Nᵀ C N)⁻¹ Nᵀ C = (C⁻¹ + N (h A)⁻¹ Nᵀ)⁻¹

— the bulk in series with the crack: ``A → ∞`` gives C, ``A = 0`` (open) plane stress in the crack's plane and no
stiffness along its normal, stick along the normal the series modulus ``1/(1/M + 1/(h k_n))``. With
``S = h A + Nᵀ C N = L Lᵀ`` it is ``C − Σ_k p_k ⊗ p_k``, three symmetric tensors ``p = L⁻¹ (C:sym(e_j⊗n))``
(:func:`cracked_plane_vectors`): an operator applies it as ``C:ε − Σ_k p_k (p_k : ε)``.

Conventions: symmetric tensors as 6 rows (00, 11, 22, 12, 02, 01), *tensor* shear components (the solver's,
:mod:`._laws`), so ``a : b = Σ_d a_d b_d + 2 Σ_o a_o b_o``; vectors (3, m); per-voxel constants scalars or (m,).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from ._laws import isotropic_stress, normal_component, traction

#: crack states (:func:`interface_return`); a closed crack whose normal traction sits on its compaction cap has
#: ``CRUSHED`` added (``state & CRUSHED``; ``state & ~CRUSHED`` is STICK or SLIP)
OPEN, STICK, SLIP, CRUSHED = 0, 1, 2, 4
#: stiffness of a sliding crack along its slip direction (and least across it), as a fraction of k_t: the consistent
#: tangent is zero there, and a patch of sliding voxels would be a zero-energy mode of the operator
SLIP_FLOOR = 1e-3
#: share of the crack's stiffness reduction that :func:`cracked_plane_vectors` leaves out (see there)
KEPT = 1e-5
#: stiffness a crushing bridge voxel keeps in its tangent along its flow direction ``Ξ:n``, as a fraction of ``Ξ``'s
#: (:func:`bridge_return`: consistent is 0, and a patch of crushing voxels would then have a zero-energy mode); the
#: passes' ``_contacts.SECANT_FLOOR``. Measured with the bonded Cam-clay bridges (stop 32, s32-cap): at 1e-3
#: (SLIP_FLOOR) Newton stalled at 1.4–2.8e-6 on ``test_plane_newton_converges_at_a_tight_tolerance`` (tol 1e-6); at
#: 1e-2 the default calender of ``tests/test_mechanics.py``'s ``cathode_series`` stalled at 1e-2 (ConvergenceError
#: in its first increment); at 0.1 both slow tests of ``tests/test_crack_interphase.py`` pass (with stop 31's
#: mean-pressure cap, whose deviator stayed elastic, 0.1 drifted −1.2 % on the zero-strain re-solve)
BRIDGE_FLOOR = 0.1


def _sym(w, n):
    """Voigt rows (6, m), tensor components, of ``sym(w ⊗ n)``."""
    return np.stack([w[0] * n[0], w[1] * n[1], w[2] * n[2],
                     0.5 * (w[1] * n[2] + w[2] * n[1]), 0.5 * (w[0] * n[2] + w[2] * n[0]),
                     0.5 * (w[0] * n[1] + w[1] * n[0])])


def _unit_normals(normal):
    n = np.asarray(normal, np.float64)
    if n.ndim != 2 or n.shape[0] != 3:
        raise InputError(f"normals must have shape (3, m), got {n.shape}")
    if not np.all(np.abs((n ** 2).sum(axis=0) - 1.0) < 1e-5):
        raise InputError("interface normals must be unit vectors")
    return n


def _per_voxel(m, **values):
    """Each named constant as a float64 (m,) array; a clear error for a wrong shape."""
    out = []
    for name, v in values.items():
        a = np.asarray(v, np.float64)
        try:
            out.append(np.broadcast_to(a, (m,)))
        except ValueError:
            raise InputError(f"{name} must be a scalar or have shape ({m},), got {a.shape}") from None
    return out


def _outer(a, b):
    """Per-voxel outer products (m, 3, 3) of vectors (3, m)."""
    return a.T[:, :, None] * b.T[:, None, :]


def interface_tangent(state, normal, k_n, k_t, t, w_t):
    """Tangent ``A = dt/dw`` (m, 3, 3) of the crack, symmetric positive semi-definite, per ``state``.

    OPEN: 0. STICK: ``k_n n⊗n + k_t (I − n⊗n)``. SLIP: ``k_n n⊗n + r (P_t − d⊗d)`` with ``r = |t_t| / |w_t|`` (the
    radial return's consistent tangent across the slip direction ``d``), floored at ``SLIP_FLOOR k_t`` across and set
    to ``SLIP_FLOOR k_t`` along ``d`` (consistent: 0). CRUSHED: the normal part ``SLIP_FLOOR k_n`` (consistent: 0).
    The consistent slip tangent also has ``−μ_f k_n d⊗n`` (the limit grows with the pressure; ``−(1 + μ_f) k_n d⊗n``
    below the pressure ``c`` where the cohesion is mobilised, module docstring); it is left out so
    that the operator stays symmetric — a Newton method with this tangent converges linearly, not quadratically,
    while voxels slide.

    ``t`` (3, m): the crack's traction; ``w_t`` (3, m): the tangential jump measured from the slip at the start of
    the return (``w_t − s_old``; only its length is used, by sliding voxels).
    """
    n = _unit_normals(normal)
    m = n.shape[1]
    state = np.broadcast_to(np.asarray(state), (m,))
    k_n, k_t = _per_voxel(m, k_n=k_n, k_t=k_t)
    t = np.asarray(t, np.float64)
    closed = state != OPEN
    crushed = (state & CRUSHED) != 0
    state = state & ~CRUSHED
    nn = _outer(n, n)
    p_t = np.eye(3)[None] - nn
    t_t = t - (t * n).sum(axis=0) * n
    size = np.sqrt((t_t ** 2).sum(axis=0))
    d = t_t / np.where(size > 0, size, 1.0)
    dd = _outer(d, d)
    floor = SLIP_FLOOR * k_t
    w_size = np.sqrt((np.asarray(w_t, np.float64) ** 2).sum(axis=0))
    r = np.maximum(size / np.where(w_size > 0, w_size, np.inf), floor)
    slip = (state == SLIP)[:, None, None]
    tangential = np.where(slip, r[:, None, None] * (p_t - dd) + floor[:, None, None] * dd, k_t[:, None, None] * p_t)
    normal_k = np.where(crushed, SLIP_FLOOR, 1.0) * k_n
    return np.where(closed[:, None, None], normal_k[:, None, None] * nn + tangential, 0.0)


def _cholesky3(s):
    """Lower Cholesky factor (m, 3, 3) of symmetric positive-definite 3×3 matrices ``s`` (m, 3, 3)."""
    L = np.zeros_like(s)
    L[:, 0, 0] = np.sqrt(s[:, 0, 0])
    L[:, 1, 0] = s[:, 1, 0] / L[:, 0, 0]
    L[:, 2, 0] = s[:, 2, 0] / L[:, 0, 0]
    L[:, 1, 1] = np.sqrt(s[:, 1, 1] - L[:, 1, 0] ** 2)
    L[:, 2, 1] = (s[:, 2, 1] - L[:, 2, 0] * L[:, 1, 0]) / L[:, 1, 1]
    L[:, 2, 2] = np.sqrt(s[:, 2, 2] - L[:, 2, 0] ** 2 - L[:, 2, 1] ** 2)
    return L


def cracked_plane_vectors(lam, mu, normal, h_n, A):
    """The three tensors ``p`` (m, 3, 6) of a cracked voxel: ``C_eff : ε = C : ε − Σ_k p_k (p_k : ε)``.

    ``C_eff = C − C N (h A + Nᵀ C N)⁻¹ Nᵀ C`` (module docstring) for isotropic bulk ``lam``, ``mu`` (MPa), crack normals
    ``normal`` (3, m), voxel thickness along the normal ``h_n`` (µm) and crack tangents ``A`` (m, 3, 3) (MPa/µm,
    symmetric positive semi-definite: :func:`interface_tangent`). Rows of ``p`` are symmetric tensors in the solver's
    Voigt order with tensor components (stresses, MPa^½); in an engineering-shear Voigt matrix ``C_eff = C − Σ p pᵀ``.

    ``p`` is ``L⁻¹ (C : sym(e_j ⊗ n))_j`` with ``L Lᵀ = h A + Nᵀ C N`` (a batched 3×3 Cholesky), times
    ``√(1 − KEPT)``: an open crack (A = 0) removes exactly the stiffness along its normal and its transverse
    shears, so ``C − Σ p pᵀ`` is singular, and rounded to float32 (the solver's precision) it comes out indefinite
    (E = 1 GPa, ν 0.3 / 0.45, 20000 random normals: least eigenvalue −3e-4 / −4e-4 MPa, almost every voxel) — a
    CG on an indefinite operator breaks down. Keeping ``KEPT`` of the removed stiffness lifts it to +3e-4 / +3e-4
    MPa at 1e-6 (no margin) and +4e-3 / +3e-3 MPa at 1e-5, hence 1e-5: a spurious open-crack stiffness of 1e-5 of
    the bulk's, far below anything the contacts resolve.
    """
    n = _unit_normals(normal)
    m = n.shape[1]
    lam, mu, h = _per_voxel(m, lam=lam, mu=mu, h_n=h_n)
    A = np.broadcast_to(np.asarray(A, np.float64), (m, 3, 3))
    if np.any(mu <= 0) or np.any(lam + mu <= 0) or np.any(h <= 0):
        raise InputError("a cracked voxel needs a positive shear modulus, λ + μ > 0 and a positive thickness")
    s = h[:, None, None] * A + mu[:, None, None] * np.eye(3)[None] + (lam + mu)[:, None, None] * _outer(n, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        L = _cholesky3(s)
    if not np.all(np.isfinite(L)) or np.any(np.diagonal(L, axis1=1, axis2=2) <= 0):
        raise InputError("h A + NᵀCN is not positive definite: the crack tangent A must be symmetric positive "
                         "semi-definite")
    # rows j of T: the stress C : sym(e_j ⊗ n) = λ n_j 1 + μ (e_j ⊗ n + n ⊗ e_j)
    T = np.empty((m, 3, 6))
    for j in range(3):
        e = np.zeros((3, m))
        e[j] = 1.0
        T[:, j] = isotropic_stress(lam, mu, _sym(e, n)).T
    p = np.empty_like(T)  # forward substitution L p = T
    p[:, 0] = T[:, 0] / L[:, 0, 0, None]
    p[:, 1] = (T[:, 1] - L[:, 1, 0, None] * p[:, 0]) / L[:, 1, 1, None]
    p[:, 2] = (T[:, 2] - L[:, 2, 0, None] * p[:, 0] - L[:, 2, 1, None] * p[:, 1]) / L[:, 2, 2, None]
    return p * np.sqrt(1.0 - KEPT)


def interface_return(eps, slip_old, gap, normal, h_n, lam, mu, k_n, k_t, mu_f, cohesion, cap=np.inf):
    """Stress of cracked voxels at a total strain: the crack's jump from the local equilibrium, Coulomb return.

    ``eps`` (6, m): total voxel strain (tensor shears); ``slip_old`` (3, m): the crack's tangential slip carried from
    the last converged state (µm; its normal part is ignored); ``gap`` (m,): the crack's opening at zero jump (µm:
    ≥ 0 a gap, < 0 an overlap that presses at once); ``normal`` (3, m) unit; ``h_n`` voxel thickness along it (µm);
    ``lam``, ``mu`` bulk Lamé constants (MPa); ``k_n``, ``k_t`` crack stiffness per area (MPa/µm, > 0); ``mu_f``
    friction coefficient, ``cohesion`` the shear traction carried besides friction once pressed by at least as much
    (MPa; ``min(c, |t_n|)``, module docstring); ``cap`` the largest normal pressure
    (MPa; inf: none). Solves
    ``(C : (ε − sym(w⊗n)/h))·n = t(w)`` (module docstring) in closed form.

    Returns ``(sigma (6, m), w (3, m), slip (3, m), state (m,), A (m, 3, 3))``: the voxel's stress, the crack's jump,
    its slip after the return (to carry), OPEN/STICK/SLIP and the crack tangent (:func:`interface_tangent`) for
    :func:`cracked_plane_vectors`. A crack that opens forgets its slip (``slip = w_t``): it closes again stress-free in
    its plane.
    """
    n = _unit_normals(normal)
    m = n.shape[1]
    eps = np.asarray(eps, np.float64)
    if eps.shape != (6, m):
        raise InputError(f"strain must have shape (6, {m}), got {eps.shape}")
    lam, mu, h, k_n, k_t, mu_f, c, g, cap = _per_voxel(m, lam=lam, mu=mu, h_n=h_n, k_n=k_n, k_t=k_t, mu_f=mu_f,
                                                       cohesion=cohesion, gap=gap, cap=cap)
    if (np.any(mu <= 0) or np.any(h <= 0) or np.any(k_n <= 0) or np.any(k_t <= 0) or np.any(mu_f < 0)
            or np.any(c < 0) or not np.all(np.isfinite(g)) or not np.all(cap >= 0)):
        raise InputError("crack law: μ, h_n, k_n, k_t must be > 0, μ_f, cohesion and the cap ≥ 0, the gap finite")
    s_old = np.asarray(slip_old, np.float64)
    s_old = s_old - (s_old * n).sum(axis=0) * n
    # traction of the strain with the crack locked; σ = C:ε − C:sym(w⊗n)/h, and (C:sym(w⊗n))·n = μ w + (λ+μ) w_n n
    t_lock = traction(isotropic_stress(lam, mu, eps), n)
    tl_n = (t_lock * n).sum(axis=0)
    tl_t = t_lock - tl_n * n
    M = lam + 2.0 * mu
    closed = h * tl_n + M * g <= 0.0  # the closed solution's t_n = k_n (h tl_n + M g)/(M + h k_n) presses
    w_n = np.where(closed, h * (tl_n - k_n * g) / (M + h * k_n), h * tl_n / M)
    t_n = np.where(closed, k_n * (g + w_n), 0.0)
    crushed = closed & (t_n < -cap)  # on the cap: the pressure is the cap's, the normal jump from the bulk's share
    t_n = np.where(crushed, -cap, t_n)
    w_n = np.where(crushed, h * (tl_n - t_n) / M, w_n)
    stick_t = k_t * (h * tl_t - mu * s_old) / (mu + h * k_t)  # tangential traction if the crack sticks
    size = np.sqrt((stick_t ** 2).sum(axis=0))
    pressure = np.maximum(-t_n, 0.0)
    limit = np.minimum(c, pressure) + mu_f * pressure  # cohesion mobilised by the pressure (module docstring)
    slides = closed & (size > limit)
    t_t = np.where(slides, limit / np.where(size > 0, size, 1.0), 1.0) * stick_t * closed
    w_t = h * (tl_t - t_t) / mu
    slip = np.where(closed, w_t - t_t / k_t, w_t)
    w = w_n * n + w_t
    sigma = isotropic_stress(lam, mu, eps - _sym(w, n) / h)
    state = (np.where(closed, np.where(slides, SLIP, STICK), OPEN) + np.where(crushed, CRUSHED, 0)).astype(np.int8)
    A = interface_tangent(state, n, k_n, k_t, t_n * n + t_t, w_t - s_old)
    return sigma, w, slip, state, A


def bridge_return(trial, k, g, cap, bond, m):
    """Stress of pore-bridging voxels (CBD, binder) on their compaction cap, and their consistent tangent:
    ``(sigma (6, m), (k_t, g_t) (m,), p (m, 3, 6))``, the tangent being ``iso(k_t, g_t) − p₀ p₀ᵀ``
    (:func:`cracked_plane_vectors`' form, one tensor ``p₀``; the other two 0).

    ``trial`` (6, m): the elastic trial stress (carried stress + ``C : Δε``); ``k``, ``g`` (m,): the voxels' bulk and
    shear moduli; ``cap`` (m,) the compaction pressure ``p_c`` (MPa, the most a bridge carries in isotropic
    compression), ``bond`` the binder's bond strength ``p_t`` (MPa, the most it carries in isotropic tension),
    ``m`` the slope ``M`` of its critical state line (the ellipse's height over its half-width). The yield surface
    is the modified Cam-clay ellipse (Roscoe & Burland, in Engineering Plasticity, Cambridge UP 1968, 535) shifted
    into tension by the bond, as for bonded soils and weak rocks (Gens & Nova, in Geotechnical Engineering of Hard
    Soils – Soft Rocks, Balkema 1993, 485 — both cited from memory, not verified here): with the pressure
    ``p = −tr σ/3`` and ``q = √(3/2 s:s)`` ::

        f = q²/M² + (p − p_c)(p + p_t) = q²/M² + (p − L)² − a² ≤ 0,   L = (p_c − p_t)/2,  a = (p_c + p_t)/2

    perfectly plastic within an increment (``p_c`` follows the packing between increments,
    :func:`._contacts.bridge_caps`), associated flow. So a bridge that crushes under the cap also gives way in shear — the
    passes' crushing bridge softens bulk and shear by one secant factor (:func:`._contacts.crushed_moduli`) — and
    under uniaxial strain its axial stress stays at ``L + a √(1 + 4M²/9)``, ``p_c`` plus a few per cent of ``a``
    (with a cap on the mean pressure alone the deviator stayed elastic and grew without bound: stop 31, a collector
    bridge at a von Mises 463 MPa), while an uncrushed one holds shear up to ``M a`` (the binder holds). ``p_t``
    sets the deviator a bridge keeps in uniaxial flow, ``q = (2/3) M² a/√(1 + 4M²/9)`` ≈ 0.12 ``p_t`` at M 0.63:
    on ``tests/test_mechanics.py``'s ``cathode_series`` p_t 20 / 150 / 400 MPa gave a CBD von Mises of 3 / 9 / 18
    MPa and the roll pressure 1.7 / 2.0 / 2.4 MPa at the first target (stop 32). Tried before (stop 31): the passes'
    secant law itself (no potential) stalled this Newton; a von Mises limit tied to the cap made the bridges near
    voids.

    The return is the closest point in the energy norm (the isotropic C decouples p and s): with the plastic
    multiplier ``x``, ``p − L = (p_tr − L)/(1 + 2 k x)``, ``s = s_tr/(1 + 6 g x/M²)``; ``f(x) = 0`` is convex and
    decreasing in ``x``, so Newton from ``x = 0`` converges monotonically. The consistent tangent is
    ``Ξ − (Ξ:n)⊗(Ξ:n)/(n:Ξ:n)`` with ``n = ∂f/∂σ`` and ``Ξ = (C⁻¹ + x ∂²f/∂σ²)⁻¹`` isotropic (bulk ``k/(1 + 2kx)``,
    shear ``g/(1 + 6gx/M²)``; Simo & Hughes, Computational Inelasticity, Springer 1998, ch. 3); its zero stiffness
    along ``Ξ:n`` is kept at ``BRIDGE_FLOOR`` (``p₀ = √(1 − BRIDGE_FLOOR) Ξ:n/√(n:Ξ:n)``): a patch of crushing voxels
    would otherwise have a zero-energy mode, and smaller floors stalled Newton (there); so Newton converges linearly,
    not quadratically, while bridges crush.
    """
    trial = np.asarray(trial, np.float64)
    m_vox = trial.shape[1]
    k, g, cap, bond, m = _per_voxel(m_vox, k=k, g=g, cap=cap, bond=bond, slope=m)
    centre, half = 0.5 * (cap - bond), 0.5 * (cap + bond)
    p_tr = -(trial[0] + trial[1] + trial[2]) / 3.0
    s_tr = trial.copy()
    s_tr[:3] += p_tr
    q2 = 1.5 * ((s_tr[:3] ** 2).sum(axis=0) + 2.0 * (s_tr[3:] ** 2).sum(axis=0))
    A, B = q2 / m ** 2, (p_tr - centre) ** 2
    crushed = A + B > half ** 2
    x = np.zeros(m_vox)
    a_v, a_s = 2.0 * k, 6.0 * g / m ** 2
    for _ in range(100):  # Newton on f(x) = A/(1 + a_s x)² + B/(1 + a_v x)² − a², from the left: monotone
        cv, cs = 1.0 / (1.0 + a_v * x), 1.0 / (1.0 + a_s * x)
        f = np.where(crushed, A * cs ** 2 + B * cv ** 2 - half ** 2, 0.0)
        if np.all(np.abs(f) <= 1e-12 * half ** 2):
            break
        df = -2.0 * (A * a_s * cs ** 3 + B * a_v * cv ** 3)
        x = np.where(crushed, x - f / np.where(crushed, df, 1.0), 0.0)
    cv, cs = 1.0 / (1.0 + a_v * x), 1.0 / (1.0 + a_s * x)
    p, s = centre + (p_tr - centre) * cv, s_tr * cs
    sigma = s.copy()
    sigma[:3] -= p
    k_t, g_t = k * cv, g * cs
    xi_n = (6.0 / m ** 2) * g_t * s  # Ξ : n, n = ∂f/∂σ = −(2/3)(p − L) 1 + (3/M²) s
    xi_n[:3] -= 2.0 * k_t * (p - centre)
    n_xi_n = 4.0 * k_t * (p - centre) ** 2 + 12.0 * g_t * q2 * cs ** 2 / m ** 4
    scale = np.where(crushed, np.sqrt((1.0 - BRIDGE_FLOOR) / np.where(crushed, n_xi_n, 1.0)), 0.0)
    p_vec = np.zeros((m_vox, 3, 6))
    p_vec[:, 0] = (xi_n * scale).T
    return sigma, (k_t, g_t), p_vec


@dataclass
class CappedBridges:
    """Pore-bridging voxels (CBD, binder) of one increment under their compaction cap (:func:`bridge_return`), solved
    with the cracks (``CrackSet.bridges``): ``index`` (b,) flat voxel indices (elastic voxels, none of them cracked),
    ``cap`` the compaction pressure ``p_c`` (MPa, ≥ 0), ``bond`` the bond strength ``p_t`` (MPa, ≥ 0; ``p_c + p_t``
    > 0), ``slope`` the critical state slope ``M`` (> 0); scalars or (b,)."""

    index: np.ndarray
    cap: np.ndarray
    bond: np.ndarray
    slope: np.ndarray

    def __post_init__(self):
        self.index = np.asarray(self.index, np.int64).reshape(-1)
        self.cap, self.bond, self.slope = (np.ascontiguousarray(a) for a in _per_voxel(
            self.index.size, cap=self.cap, bond=self.bond, slope=self.slope))
        if (np.unique(self.index).size != self.index.size or not np.all(self.cap >= 0)
                or not np.all(self.bond >= 0) or not np.all(self.cap + self.bond > 0)
                or not np.all(self.slope > 0) or not np.all(np.isfinite(self.cap + self.bond + self.slope))):
            raise InputError("capped bridges: each voxel at most once, the cap and the bond finite and ≥ 0 (not both "
                             "0), the critical state slope > 0")


@dataclass
class CrackSet:
    """Cracked voxels of one increment for :meth:`.MechanicsSolver.solve_increment` (``cracks=``).

    ``index`` (m,): flat voxel indices into the solver's grid (each at most once; the voxels must be elastic, their
    λ, μ the bulk's). ``normal`` (3, m) unit crack normals; ``h_n`` voxel thickness along the normal (µm, same
    length unit as the solver's ``voxel_size``); ``k_n``, ``k_t`` crack stiffness per area (MPa/µm); ``mu_f``
    friction coefficient; ``cohesion`` (MPa); ``gap`` the opening of cracks that are open at the start of the
    increment (µm ≥ 0; 0 for closed ones); ``cap`` the compaction cap, the largest normal pressure (MPa; inf:
    none). Constants are scalars or (m,). ``bridges``: pore-bridging voxels solved with the cracks under their own
    compaction cap (:class:`CappedBridges`; None: none).

    Nothing else is carried between increments: with the jump measured from the increment's start, a closed
    crack's start state is in the carried stress ``s_old`` (its traction gives the overlap ``t_n/k_n`` and the
    elastic tangential spring ``−t_t/k_t``), an open crack's in its ``gap`` (:func:`start_state`).
    """

    index: np.ndarray
    normal: np.ndarray
    h_n: np.ndarray
    k_n: np.ndarray
    k_t: np.ndarray
    mu_f: np.ndarray
    cohesion: np.ndarray
    gap: np.ndarray = 0.0
    cap: np.ndarray = np.inf
    bridges: CappedBridges | None = None

    def __post_init__(self):
        self.index = np.asarray(self.index, np.int64).reshape(-1)
        m = self.index.size
        if np.unique(self.index).size != m:
            raise InputError("a voxel is listed twice in the crack set")
        self.normal = _unit_normals(self.normal)
        if self.normal.shape[1] != m:
            raise InputError(f"crack normals must have shape (3, {m}), got {self.normal.shape}")
        self.h_n, self.k_n, self.k_t, self.mu_f, self.cohesion, self.gap, self.cap = (
            np.ascontiguousarray(a) for a in _per_voxel(m, h_n=self.h_n, k_n=self.k_n, k_t=self.k_t,
                                                         mu_f=self.mu_f, cohesion=self.cohesion, gap=self.gap,
                                                         cap=self.cap))
        if (np.any(self.h_n <= 0) or np.any(self.k_n <= 0) or np.any(self.k_t <= 0) or np.any(self.mu_f < 0)
                or np.any(self.cohesion < 0) or np.any(self.gap < 0) or not np.all(np.isfinite(self.gap))
                or not np.all(self.cap >= 0)):
            raise InputError("crack set: h_n, k_n, k_t must be > 0, μ_f, cohesion, the cap and the gap ≥ 0, the "
                             "gap finite")
        if self.bridges is not None and np.isin(self.bridges.index, self.index).any():
            raise InputError("a voxel is both cracked and a capped bridge: a bridge is not a particle, it has no crack")

    def __len__(self):
        return self.index.size

    @property
    def voxels(self) -> np.ndarray:
        """Flat indices of every voxel the set gives a law: the cracked ones, then the capped bridges."""
        return self.index if self.bridges is None else np.concatenate([self.index, self.bridges.index])


def bulk_strain(lam, mu, s):
    """Strain (6, m), tensor shears, of stresses ``s`` (6, m) in isotropic voxels: ``C⁻¹ : s``."""
    s = np.asarray(s, np.float64)
    e = s / (2.0 * mu)
    e[:3] -= (lam / (2.0 * mu * (3.0 * lam + 2.0 * mu))) * (s[0] + s[1] + s[2])
    return e


def start_state(cracks: CrackSet, s_old):
    """The crack's reference opening ``g`` (m,) and slip ``s`` (3, m) at the start of an increment whose jump is
    measured from zero, from the carried stress ``s_old`` (6, m) of the cracked voxels: a pressed crack's overlap
    ``g = t_n/k_n`` (its traction at zero jump), the opening of an open one (``cracks.gap``); the slip that
    reproduces the carried tangential traction, ``s = −t_t/k_t``."""
    n = cracks.normal
    t = traction(np.asarray(s_old, np.float64), n)
    t_n = (t * n).sum(axis=0)
    g = cracks.gap + np.minimum(t_n, 0.0) / cracks.k_n
    return g, -(t - t_n * n) / cracks.k_t


def closed_shear(mu, h_n, k_t):
    """Cross shear modulus (MPa) of a cracked voxel whose crack sticks: bulk ``μ`` and the crack's ``h k_t`` in
    series, ``1/(1/μ + 1/(h k_t))``."""
    return 1.0 / (1.0 / np.asarray(mu, np.float64) + 1.0 / (np.asarray(h_n, np.float64) * k_t))


def stand_in(lam, mu, normal, p):
    """Isotropic Lamé constants (λ_s, μ_s) (m,) that stand in for a cracked voxel's ``C − Σ p pᵀ`` in the multigrid:
    the bulk's shear modulus ``μ_s = μ`` and ``λ_s = max(M_n − 2μ, 0)`` with ``M_n = n⊗n : C_eff : n⊗n`` the cracked
    tensor's constrained modulus along the normal (a compliant crack: 0; a stiff one: the bulk's λ).

    Why not a stand-in spectrally close to the crack (its cross shear, floored): measured on the small test cathode
    (32 µm, 2 µm voxels, 2.3 → 3.0 g/cm³ in 6 increments, one crack per contact face; stop 28) the CG iterations
    fall as the stand-in's shear modulus rises, from stagnation (0.01 × the closed crack's cross shear
    ``1/(1/μ + 1/(h k_t))`` ≈ 0.03 μ) over 9026 (0.1 ×) and 4156 (1 ×) to 2416 at 30 × ≈ μ (2393 with ``μ_s = μ``;
    2592 with the bulk's λ too; 100 ×: 3347). A soft stand-in makes the particles' rigid motions look free to the
    multigrid though the cracks' in-plane stiffness holds them."""
    n = _unit_normals(normal)
    m = n.shape[1]
    lam, mu = _per_voxel(m, lam=lam, mu=mu)
    pn = np.stack([normal_component(p[:, k].T, n) for k in range(3)])  # p_k : n⊗n
    m_n = lam + 2.0 * mu - (pn ** 2).sum(axis=0)
    return np.maximum(m_n - 2.0 * mu, 0.0), mu.copy()


class CrackedIncrement:
    """The cracked voxels' law during one increment of :meth:`.MechanicsSolver.solve_increment`, with the capped
    bridges of the crack set (``cracks.bridges``) after them.

    ``lam``, ``mu`` (n,): the bulk of the set's voxels (``cracks.voxels``: the cracked ones, then the bridges);
    ``s_old`` (6, n): their carried stress. :meth:`stress` returns the stress at a
    strain increment and keeps the tangent's vectors ``p`` for the operator (:meth:`stand_in`,
    :meth:`operator_rows`); :meth:`result` gives what to carry after the increment.
    """

    def __init__(self, cracks: CrackSet, lam, mu, s_old):
        self.cracks = cracks
        self.lam = np.asarray(lam, np.float64)
        self.mu = np.asarray(mu, np.float64)
        if np.any(self.mu <= 0) or np.any(self.lam + self.mu <= 0):
            raise InputError("cracked voxels and capped bridges need bulk stiffness (μ > 0, λ + μ > 0): a pore "
                             "cannot hold a crack")
        m = len(cracks)
        s_old = np.asarray(s_old, np.float64)
        self.eps0 = bulk_strain(self.lam[:m], self.mu[:m], s_old[:, :m])  # the bulk strain at the start (jump 0)
        self.g, self.slip_old = start_state(cracks, s_old[:, :m])
        self.bridge_old = s_old[:, m:]
        self.lam_t, self.mu_t = self.lam.copy(), self.mu.copy()  # the tangent's isotropic part (a bridge's Ξ)
        self.state = self.w = self.p = None

    def stress(self, d_eps):
        """Stress (6, n) at the strain increment ``d_eps`` (6, n): the cracked voxels' :func:`interface_return` of the
        total strain ``C⁻¹ : s_old + Δε``, so that ``σ = s_old + C : (Δε − sym(w⊗n)/h)``, the bridges'
        :func:`bridge_return` of ``s_old + C : Δε``; the tangent follows."""
        c = self.cracks
        m = len(c)
        lam, mu = self.lam[:m], self.mu[:m]
        sigma, self.w, _, self.state, A = interface_return(
            self.eps0 + d_eps[:, :m], self.slip_old, self.g, c.normal, c.h_n, lam, mu, c.k_n, c.k_t, c.mu_f,
            c.cohesion, c.cap)
        self.p = cracked_plane_vectors(lam, mu, c.normal, c.h_n, A)
        if c.bridges is None:
            return sigma
        b = c.bridges
        lam, mu = self.lam[m:], self.mu[m:]
        sig_b, (k_t, g_t), p_b = bridge_return(self.bridge_old + isotropic_stress(lam, mu, d_eps[:, m:]),
                                               lam + 2.0 * mu / 3.0, mu, b.cap, b.bond, b.slope)
        self.p = np.concatenate([self.p, p_b])
        self.lam_t[m:], self.mu_t[m:] = k_t - 2.0 * g_t / 3.0, g_t
        return np.concatenate([sigma, sig_b], axis=1)

    @property
    def yielding(self) -> bool:
        """Whether the last :meth:`stress` found a crack at its Coulomb limit or on its cap, or a bridge on its cap:
        the law on a nonlinear branch."""
        m = len(self.cracks)
        return bool(np.any(self.state > STICK) or np.any(self.p[m:] != 0))  # SLIP, CRUSHED (+ STICK or SLIP)

    def stand_in(self):
        """Isotropic Lamé constants (λ_s, μ_s) (n,) for the multigrid: the cracked voxels' :func:`stand_in`, and a
        bridge's tangent ``Ξ`` with ``p₀``'s volumetric part off its bulk (λ ≥ 0)."""
        m = len(self.cracks)
        lam_s, mu_s = stand_in(self.lam[:m], self.mu[:m], self.cracks.normal, self.p[:m])
        if self.cracks.bridges is None:
            return lam_s, mu_s
        p_vol = self.p[m:, 0, :3].sum(axis=1) / 3.0  # p₀ = p_vol 1 + dev: p₀p₀ᵀ takes p_vol² off the bulk modulus
        lam_b = np.maximum(self.lam_t[m:] - p_vol ** 2, 0.0)
        return np.concatenate([lam_s, lam_b]), np.concatenate([mu_s, self.mu_t[m:]])

    def operator_rows(self, lam_s, mu_s):
        """(n, 20) rows for :func:`._operator.apply_cracks`: ``λ − λ_s``, ``μ − μ_s`` and the 18 components of
        ``p``: the tangent minus the stand-in that the operator's isotropic coefficients already hold."""
        return np.ascontiguousarray(np.concatenate(
            [(self.lam_t - lam_s)[:, None], (self.mu_t - mu_s)[:, None], self.p.reshape(-1, 18)], axis=1))

    def result(self):
        """(state (m,), gap (m,)): OPEN/STICK/SLIP after the increment and the opening of the open cracks (µm;
        0 for closed ones) — the ``gap`` of the next increment's :class:`CrackSet`."""
        w_n = (self.w * self.cracks.normal).sum(axis=0)
        return self.state, np.where(self.state == OPEN, np.maximum(self.g + w_n, 0.0), 0.0)

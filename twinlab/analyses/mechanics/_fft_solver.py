"""Newton–CG solver for small-strain mechanics on a periodic voxel grid.

Two preconditioners for the CG solves: a geometric multigrid on the voxel hierarchy (default,
``preconditioner="multigrid"``, :mod:`._multigrid`: Galerkin coarse stencils, Chebyshev node-block
Jacobi smoothing, K-cycle, a float32 cycle inside a float64 CG; 13–27× fewer iterations on the
porous electrode, see :class:`MechanicsSolver`) and the FFT (Lippmann–Schwinger type) one
described below (``preconditioner="fft"``, the reference).

Discretisation
--------------
Displacements live on the voxel *corners* (nodes), strains and stresses at voxel *centres*.
The strain of a voxel is the gradient of the trilinear interpolant of its 8 corner displacements
evaluated at the centre — the one-point ("reduced") hexahedron, which is exactly the rotated
staggered-grid scheme of Willot (2015) / the HEX8R discretisation of Schneider, Ospald & Kabel
(2016). Its Fourier symbol is

    k_j(ξ) = (2i/h_j) sin(ξ_j/2) cos(ξ_{j+1}/2) cos(ξ_{j+2}/2) exp(i(ξ_0+ξ_1+ξ_2)/2),

which has no Gibbs ringing and stays well posed with voxels of *zero* stiffness (pores, broken
shell): every quantity is a local difference of node values, so a pore voxel simply contributes
nothing. The hourglass (checkerboard) modes with k = 0 carry no strain; they are removed by the
preconditioner and never excited by a load.

Equations
---------
With the prescribed macroscopic strain increment ΔE and the periodic displacement fluctuation Δu,
the voxel strain increment is ``Δε = ΔE + B Δu`` and equilibrium is ``Bᵀ σ(Δε) = 0``. Newton's
method linearises with the consistent tangent and solves each linear system
``Bᵀ C_t B δu = −Bᵀ σ`` by conjugate gradients preconditioned with the exact inverse of the same
operator for a homogeneous isotropic reference medium, applied in Fourier space (a 3×3 closed form
per frequency). This is the displacement form of the CG-accelerated Lippmann–Schwinger schemes
(Zeman et al. 2010; Brisard & Dormieux 2010; de Geus et al. 2017): one iteration costs 3 forward +
3 inverse real FFTs (half the FFTs of a strain-based scheme), one fused element-by-element sweep
of the stiffness operator (:mod:`._operator`: strain, tangent stress, hourglass and node forces
in one pass, no stored stress fields) and a few vector passes.
Measured (tests/benchmarks/bench_mechanics.py --n 128: 130 × 128 × 128 porous electrode with
zero-stiffness pores, 2 cores, peer in the same run, load 0.9–2.5 from other work): float32
65–69 ms per iteration = 0.86–0.98× the forward + inverse FFTs of all 6 strain components
(71–76 ms), float64 136–149 ms = 1.0–1.14× (130–136 ms) — the old per-component gather kernels
made it 3.4× / 2.6×. The solver's own 3 + 3 FFTs are most of an iteration; the operator sweep is
~12 ms (f32) / ~23 ms (f64) of it. CG needs 1090 iterations to a relative residual of 1e-5 on that
electrode (porosity 0.58) in either precision.

The one-point hexahedron's hourglass modes are controlled by a small stiffness on each mode
(:data:`HOURGLASS_COEFF`), which cuts CG iterations ~8–10× on porous electrodes.

All stencil and update kernels are numba ``prange`` loops; FFTs go through ``scipy.fft`` with
``workers``. ``float32`` halves memory and time (dot products are still accumulated in float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.fft as sfft

from ...errors import ConvergenceError, InputError
from ._laws import BRITTLE, ELASTIC, PLASTIC, update_stress, von_mises
from ._multigrid import ElasticMultigrid
from ._multigrid import _dot as _dot_kernel  # one float64-accumulating dot for both solvers
from ._interface import CrackedIncrement, CrackSet, closed_shear
from ._operator import (active_rows, apply_cracks, apply_tangent, apply_tangent_dot, internal_force,
                        tangent_coefficients)

HOURGLASS_COEFF = 1.0 / 96.0
PRECONDITIONERS = ("multigrid", "fft")

#: Newton iterations before ``ConvergenceError``. The cracked plane's Newton converges linearly while cracks slide:
#: re-solved at tol 1e-5 with the loose first step, the small plane series' second increment took exactly 30 steps
#: at stop 36 and 32 at stop 39 on another machine (its rounding, the same code; ~3900 CG, roll 3.5081 MPa as the
#: tight first step's), where a cap of 30 raised at 2.35e-5. A stagnating solve spends ≤ 10 steps more before it.
MAX_NEWTON = 40

__all__ = ["MechanicsSolver", "IncrementSolution", "solve_mechanics", "hourglass_modes", "ELASTIC", "PLASTIC",
           "BRITTLE"]


@dataclass
class IncrementSolution:
    """One converged load increment.

    Attributes
    ----------
    displacement : (3, *shape) array
        Node displacement fluctuation increment Δu (voxel-size units, same length unit as
        ``voxel_size``); node (i, j, k) is the low corner of voxel (i, j, k).
    strain : (6, *shape) array
        Total strain increment Δε = ΔE + BΔu per voxel, order (00, 11, 22, 12, 02, 01), tensor shear.
    stress : (6, *shape) array
        Stress after the increment (MPa), same order.
    cg_iterations, newton_iterations : int
    residual : float
        Final ‖Bᵀσ‖ relative to the increment's reference.
    initial_residual : float
        ‖Bᵀσ‖ at the initial guess ``u0`` relative to the same reference (1 without a guess).
    hourglass_stiffness : (*shape) array or None
        The solve's hourglass stiffness k_hg per voxel, kept when it was given ``hourglass_old``, for
        :meth:`hourglass` (4 B/voxel instead of the 48 of the forces: a calendering increment solves
        several contact passes and needs the forces of the one it keeps only).
    crack_state, crack_gap : (m,) arrays or None
        With ``cracks``: each cracked voxel's state after the increment (``_interface.OPEN/STICK/SLIP``) and
        the opening of its crack if open (length; 0 when closed), the next increment's ``CrackSet.gap``.
    """

    displacement: np.ndarray
    strain: np.ndarray
    stress: np.ndarray
    cg_iterations: int
    newton_iterations: int
    residual: float
    initial_residual: float = 1.0
    hourglass_stiffness: np.ndarray | None = None
    crack_state: np.ndarray | None = None
    crack_gap: np.ndarray | None = None

    @property
    def von_mises(self) -> np.ndarray:
        return von_mises(self.stress)

    def hourglass(self, hourglass_old, dtype=np.float32) -> np.ndarray:
        """Generalised hourglass forces after the increment (3, 4, *shape): the carried ``hourglass_old``
        (its first k layers, as :meth:`MechanicsSolver.solve_increment` took them) plus this increment's
        k_hg × :func:`hourglass_modes` of the displacement; a voxel without stiffness carries none."""
        if self.hourglass_stiffness is None:
            raise InputError("this solution was solved without hourglass_old: it has no hourglass forces")
        khg = self.hourglass_stiffness
        out = hourglass_modes(self.displacement, dtype)
        out *= khg.astype(out.dtype, copy=False)
        k = hourglass_old.shape[2]  # in place: no (3, 4, …) temporary
        np.add(out[:, :, :k], hourglass_old, out=out[:, :, :k], where=khg[:k] > 0)
        return out


class MechanicsSolver:
    """Heterogeneous small-strain solver on a periodic grid with per-voxel material laws.

    Parameters
    ----------
    lam_mpa, mu_mpa : (n0, n1, n2) arrays
        Lamé constants per voxel, MPa (zero for pores: allowed).
    voxel_size : 3 floats
        Edge lengths along the three axes (any length unit; displacements come out in it).
    yield_mpa : array, optional
        J2 yield stress per voxel (MPa), used where ``code == PLASTIC``.
    code : uint8 array, optional
        Law per voxel (``ELASTIC``, ``PLASTIC``, ``BRITTLE``); default all elastic.
    dtype : float32 or float64
        Precision of the returned strain and stress and of the FFT-preconditioned solver (float32
        halves memory and time). The multigrid CG runs in float64 regardless (in float32 it stalled
        near 1e-4 on late Newton steps), with float32 material coefficients and directions; its
        cycle runs in float32.
    workers : int
        Threads for ``scipy.fft`` and the numba kernels.
    plastic_regularization : float
        Shear stiffness fraction of a viscous spring added to plastic voxels on each increment (see
        :func:`._laws.update_stress`); 0 = pure perfect plasticity.
    reference_nu : float
        Poisson ratio of the reference medium of the FFT preconditioner (its modulus is irrelevant:
        CG is invariant to a scaling of the preconditioner).
    hierarchy : ElasticMultigrid, optional
        The multigrid hierarchy of an earlier solver on the same grid (:attr:`hierarchy`), to start
        from instead of allocating one: the next operator of a sequence on one grid (contact passes
        of an increment). Its levels follow the new tangent as described under ``preconditioner``;
        ignored for another grid or voxel size.
    preconditioner : "multigrid" or "fft"
        ``"multigrid"`` (default): a geometric-multigrid K-cycle on the voxel hierarchy
        (:mod:`._multigrid`; when only the stiffness values change — Newton steps of a yielding
        solve — only its finest level follows, and the whole hierarchy is rebuilt once CG converges
        clearly slower than after the last build; when voxels gain or lose all stiffness it is
        rebuilt in its buffers). ``"fft"``: the exact inverse of
        a homogeneous reference medium (Lippmann–Schwinger type; ~750–1100 iterations on a porous
        electrode, each ≈ 1.1 FFT pairs), the reference. Measured to a relative residual of 1e-5
        on the benchmark's porous electrode, same run, quiet 2 cores
        (``bench_mechanics.py --sizes 32,64``), with trilinear coarse spaces: 34 × 32², multigrid
        31 iterations 0.5 s against FFT (float32) 376 iterations 0.6 s; 66 × 64², 97 iterations
        4.1 s against 751 iterations 19.4 s. With the connectivity-aware coarse spaces the
        multigrid needs 21 / 32 / 56 / 40 iterations at 32³ / 48³ / 64³ / 128³ (FFT: 376 / – /
        751 / 1092); with stop 23's fine smoothing degree 6 (:data:`._multigrid.DEGREE`) 47 / 34 at
        64³ / 128³ in the same CPU time, and less than half the iterations in calendering.
    """

    def __init__(self, lam_mpa, mu_mpa, *, voxel_size=(1.0, 1.0, 1.0), yield_mpa=None, code=None,
                 dtype=np.float64, workers: int = 2, reference_nu: float = 0.3,
                 plastic_regularization: float = 0.0, preconditioner: str = "multigrid", hierarchy=None):
        if preconditioner not in PRECONDITIONERS:
            raise InputError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
        self.preconditioner = preconditioner
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise InputError(f"dtype must be float32 or float64, got {dtype}")
        self.field_dtype = dtype  # of the returned strain and stress
        if preconditioner == "multigrid":
            # float32 round-off makes the multigrid-CG residual wander at ~1e-4 (spikes to 1e-2) instead
            # of reaching the tight relative residuals of late Newton steps (3e-5 at tol 1e-4): seen on
            # the test cathodes and, worse, on yielded lithium. The multigrid solves in float64.
            dtype = np.dtype(np.float64)
        # the multigrid keeps float32 material constants as they are (the calender's): the stress
        # update, the forces and the tangent use them alike (every product still formed in float64), and
        # the hierarchy's float32 cycle shares them instead of a copy — 12 instead of 24 + 12 B/voxel
        in32 = all(getattr(a, "dtype", None) == np.float32 for a in (lam_mpa, mu_mpa))
        cdt = np.dtype(np.float32) if preconditioner == "multigrid" and in32 else dtype
        lam = np.ascontiguousarray(lam_mpa, dtype=cdt)
        mu = np.ascontiguousarray(mu_mpa, dtype=cdt)
        if lam.ndim != 3 or lam.shape != mu.shape:
            raise InputError(f"lam and mu must be 3D arrays of one shape, got {lam.shape} and {mu.shape}")
        if not (np.isfinite(lam).all() and np.isfinite(mu).all()):
            raise InputError("material constants contain NaN/inf; check E and ν (ν must be < 0.5)")
        if (mu < 0).any() or (3 * lam + 2 * mu < 0).any():
            raise InputError("negative shear or bulk modulus in the material arrays; check E ≥ 0 and -1 < ν < 0.5")
        if not mu.any():
            raise InputError("every voxel has zero stiffness; there is nothing to carry a load")
        self.shape = lam.shape
        self.dtype = dtype
        self.workers = int(workers)
        h = np.asarray(voxel_size, dtype=float)
        if h.shape != (3,) or (h <= 0).any():
            raise InputError(f"voxel_size must be three positive lengths, got {voxel_size}")
        self.h = h
        self.ih = (1.0 / h).astype(dtype)
        n = lam.size
        self.code = (np.zeros(n, np.uint8) if code is None
                     else np.ascontiguousarray(code, dtype=np.uint8).reshape(-1))
        if self.code.size != n:
            raise InputError("code must have the grid's shape")
        self.sy = (np.full(n, np.inf, cdt) if yield_mpa is None
                   else np.ascontiguousarray(np.broadcast_to(yield_mpa, self.shape), dtype=cdt).reshape(-1))
        if ((self.code == PLASTIC) & ~(self.sy > 0)).any():
            raise InputError("plastic voxels need a positive yield stress")
        self.has_plastic = bool((self.code == PLASTIC).any())
        self.reg = float(plastic_regularization)
        if self.reg < 0:
            raise InputError("plastic_regularization must be >= 0")
        # hourglass control: the one-point hexahedron has zero-energy "hourglass" modes that make thin
        # solid features (one-voxel ligaments between pores) floppy and CG slow (10× more iterations on
        # a porous electrode); a stiffness-based control k = c μ / h̄² on each mode removes them without
        # touching linear fields (exact for homogeneous cells and laminates). c = 1/96 is a quarter of
        # the full-integration trilinear element's shear-type bending stiffness (1/24): enough to cut
        # the iterations ~8×, small enough to keep the Eshelby inclusion stress within ~5 %.
        self._hg_factor = HOURGLASS_COEFF / float(np.mean(h ** 2))
        self._q = (0.25 * self.ih).astype(dtype)  # gradient weights 1/(4 h_j) of the one-point hexahedron
        # elastic tangent coefficients (λ, μ, k_hg stacked for the kernel; the attributes are views, so
        # no copy is kept) and the element rows that carry stiffness (all-pore rows are skipped)
        self._coef, _ = tangent_coefficients(lam, mu, (self._hg_factor * mu).astype(cdt))
        self.lam, self.mu, self.khg = self._coef
        self._active = active_rows(self._coef)
        # built on the first solve (or taken over from a solver of the same grid), brought to a changed
        # tangent by a fine-level refresh or a rebuild (see _preconditioner_for)
        self._mg = None
        if (preconditioner == "multigrid" and hierarchy is not None and hierarchy.shape == self.shape
                and np.allclose(hierarchy.q, self._q)):
            self._mg = hierarchy
        self._mg_coef = None
        self._crack = None  # the cracked voxels of the increment being solved (solve_increment's cracks)
        if preconditioner == "fft":
            self._build_preconditioner(float(reference_nu))

    # ------------------------------------------------------------------ public
    def solve_increment(self, strain_inc_macro, *, stress_old=None, u0=None, tol: float = 1e-5,
                        maxiter: int = 5000, max_newton: int = MAX_NEWTON, hourglass_old=None,
                        cracks: CrackSet | None = None) -> IncrementSolution:
        """Solve one strain-controlled increment.

        Parameters
        ----------
        strain_inc_macro : 6 floats
            Prescribed average strain increment ΔE, order (00, 11, 22, 12, 02, 01), tensor shear.
        stress_old : (6, *shape) array, optional
            Converged stress at the start of the increment (MPa); zero if omitted.
        u0 : (3, *shape) array, optional
            Initial guess for Δu (e.g. the previous increment's solution mapped to this grid); the
            tolerance stays relative to the out-of-balance force at Δu = 0. A C-contiguous array of
            the solver's dtype is **taken over**: it is overwritten and becomes the solution's
            displacement (one displacement field less while the solve runs); pass a copy to keep it.
        tol : float
            Newton stops when ‖Bᵀσ‖ ≤ tol · ‖Bᵀσ‖ at Δu = 0 (the increment's initial out-of-balance
            force); each CG solve runs to the relative residual the Newton step needs (:func:`_forcing`).
        maxiter, max_newton : int
            CG iterations per linear solve and Newton iterations (:data:`MAX_NEWTON`); exceeding either raises
            :class:`~twinlab.errors.ConvergenceError`, whose ``cg_iterations`` counts the CG iterations
            the failed solve spent.
        hourglass_old : (3, 4, k, *shape[1:]) array, optional
            Generalised hourglass forces carried from earlier increments (per voxel and displacement
            component, k_hg × the hourglass modes DDS, DSD, SDD, DDD: :func:`hourglass_modes`) of the
            first ``k ≤ shape[0]`` layers, zero beyond (the calender's coating below its roll: no padded
            copy, 48 B/voxel); a voxel without stiffness (k_hg = 0: a pore, an open contact) carries none.
            The hourglass control is part of the element's response like its stress: an increment that
            starts from the stress of the previous one but measures the hourglass forces from zero again
            drops the part of the equilibrium they carried, and the structure relaxes by it in every
            increment (issue 16: a zero-strain re-solve of a calendered cathode lost 5 % of its roll
            pressure). Given, their node forces join the out-of-balance force, and the solution's
            :meth:`IncrementSolution.hourglass` carries them on — the incremental hourglass forces of
            Flanagan & Belytschko, Int. J. Numer. Meth. Eng. 17 (1981) 679.
        cracks : :class:`._interface.CrackSet`, optional
            Voxels that hold a frictional crack (a contact interphase, :mod:`._interface`): their stress comes
            from :func:`._interface.interface_return` of the strain ``C⁻¹ : s_old + Δε`` (the jump measured from
            the increment's start) instead of the bulk law, at every Newton evaluation, so the open/stick/slip set
            follows the iterates (a semi-smooth Newton method, globalised by the line search of
            :meth:`_crack_line_search`) and the equilibrium residual measures the contact law too. CG applies their exact cracked tangent: the
            operator's isotropic coefficients hold a stand-in (:func:`._interface.stand_in`, chosen at the
            increment's start; the multigrid sees only it; their hourglass stiffness is the stand-in's) and a
            sparse correction (:func:`._operator.apply_cracks`) adds the difference. The solution's
            ``crack_state`` and ``crack_gap`` carry the state on.
        """
        previous = numba.get_num_threads()
        numba.set_num_threads(max(1, min(self.workers, numba.config.NUMBA_NUM_THREADS)))
        try:
            return self._solve_increment(strain_inc_macro, stress_old, u0, tol, maxiter, max_newton, hourglass_old,
                                         cracks)
        finally:
            self._crack = None
            numba.set_num_threads(previous)

    def solve_linear(self, strain_macro, *, rtol: float = 1e-5, maxiter: int = 5000):
        """One linear-elastic CG solve for the fluctuation under ``strain_macro`` (no plasticity).

        Returns ``(displacement, iterations)``; the relative residual ‖b − Ax‖/‖b‖ reaches ``rtol``.
        Used by the benchmark to count CG iterations at a fixed tolerance.
        """
        previous = numba.get_num_threads()
        numba.set_num_threads(max(1, min(self.workers, numba.config.NUMBA_NUM_THREADS)))
        try:
            shp = self.shape
            n = self.lam.size
            e_mac = np.asarray(strain_macro, dtype=self.dtype)
            eps = np.empty((6, *shp), self.dtype)
            _grad(np.zeros((3, *shp), self.dtype), self.ih, e_mac, eps)
            sig = np.empty((6, n), self.dtype)
            normal = np.zeros((6, 1), self.dtype)  # written for plastic voxels only: none here
            theta = np.ones(n, np.float32)
            update_stress(eps.reshape(6, n), np.zeros((6, n), self.dtype), self.lam.reshape(-1),
                          self.mu.reshape(-1), np.full(n, np.inf, np.float32), np.zeros(n, np.uint8), sig, normal,
                          theta, 0.0)
            b = np.empty((3, *shp), self.dtype)
            internal_force(sig.reshape(6, *shp), np.zeros((3, *shp), self.dtype), self.khg,
                           self._force_rows(sig), self._q, b)
            du, its = self._cg(b, theta, normal, rtol=rtol, maxiter=maxiter)
            return -du, its
        finally:
            numba.set_num_threads(previous)

    def _solve_increment(self, strain_inc_macro, stress_old, u0, tol, maxiter, max_newton, hourglass_old=None,
                         cracks=None):
        dt = self.dtype
        shp = self.shape
        n = self.lam.size
        e_mac = np.asarray(strain_inc_macro, dtype=dt)
        if e_mac.shape != (6,) or not np.isfinite(e_mac).all():
            raise InputError(f"strain_inc_macro must be 6 finite numbers, got {strain_inc_macro}")
        # a float32 old stress (the calender's) is read as it is: a float64 copy would add 48 B/voxel
        s_old = (np.zeros((6, n), dt) if stress_old is None
                 else np.ascontiguousarray(stress_old, dtype=np.result_type(stress_old, np.float32)).reshape(6, n))
        u = np.zeros((3, *shp), dt)
        crack = None if cracks is None else self._start_cracks(cracks, s_old)
        khg = self.khg if crack is None else crack.coef[2]  # a cracked voxel's hourglass stiffness is its stand-in's
        f_old = None  # node forces of the carried hourglass forces
        if hourglass_old is not None:
            hourglass_old = np.asarray(hourglass_old)
            q = hourglass_old.shape
            if len(q) != 5 or q[:2] != (3, 4) or q[3:] != shp[1:] or q[2] > shp[0]:
                raise InputError(f"hourglass_old must have shape (3, 4, k, {shp[1]}, {shp[2]}) with k ≤ {shp[0]} "
                                 f"(the solver's first k layers), got {q}")
            f_old = hourglass_node_forces(hourglass_old, khg > 0, dt)
        # the stress is recomputed from u by every evaluation, in the buffer of the strain (the law reads
        # a voxel's strain before it writes its stress; the strain is recomputed once at the end): one
        # (6, n) field instead of two while Newton evaluates, none while CG runs (dropped, allocated again
        # by the next evaluation) — 48 + 96 B/voxel less at the two peaks
        fields = {}
        normal = np.zeros((6, n if self.has_plastic else 1), dt)  # flow directions: plastic voxels only
        theta = np.ones(n, np.float32)  # the tangent's factor (float32 is plenty for a tangent)
        res = np.empty((3, *shp), dt)

        def evaluate():
            if not fields:
                fields["sig"] = np.empty((6, n), dt)
            sig = fields["sig"]
            _grad(u, self.ih, e_mac, sig.reshape(6, *shp))
            d_eps = None if crack is None else sig[:, crack.index].astype(np.float64)
            update_stress(sig, s_old, self.lam.reshape(-1), self.mu.reshape(-1), self.sy, self.code, sig, normal,
                          theta, self.reg)
            if crack is not None:
                sig[:, crack.index] = crack.law.stress(d_eps)
                crack.follow()
            internal_force(sig.reshape(6, *shp), u, khg, self._force_rows(sig), self._q, res)
            if f_old is not None:
                np.add(res, f_old, out=res)
            return _norm(res)

        r_norm = evaluate()
        # scale below which an out-of-balance force is round-off: |σ| · |B|
        floor = (1e-12 if dt == np.float64 else 2e-6) * (_norm(fields["sig"]) + 1e-30) * float(np.abs(self.ih).max())
        # the reference is the out-of-balance force at Δu = 0 even when a guess is given, so that a good
        # guess saves iterations instead of tightening the target
        r_ref = max(r_norm, floor)
        if u0 is not None:
            if isinstance(u0, np.ndarray) and u0.dtype == dt and u0.shape == u.shape and u0.flags.c_contiguous:
                u = u0  # taken over (documented): no second displacement field while this solve runs
            else:
                u[...] = np.asarray(u0, dtype=dt).reshape(3, *shp)
            r_norm = evaluate()
        total_cg = 0
        newton = 0
        history = [r_norm / r_ref]
        nonlinear = self.has_plastic or crack is not None
        # a cracked solve whose start is already on a nonlinear branch (a crack sliding or crushing, a bridge crushing)
        # will not end in one Newton step: its first step need not be solved tightly either (_forcing)
        yielding = crack is not None and crack.law.yielding
        try:
            while r_norm > tol * r_ref and r_norm > floor:
                if newton >= max_newton:
                    raise ConvergenceError(
                        f"Newton did not converge in {max_newton} iterations (residual {r_norm / r_ref:.3g} > {tol:g}); "
                        "use smaller load increments (more steps) or a looser tolerance" + _history(history))
                eta = _forcing(history, tol, nonlinear=nonlinear, yielding=yielding)
                fields.clear()
                du, its = self._cg(res, theta, normal, rtol=eta, maxiter=maxiter, inexact=True)
                total_cg += its
                if crack is not None:
                    r_new = self._crack_line_search(u, du, res, theta, normal, evaluate)
                else:
                    u -= du
                    r_new = evaluate()
                    # backtracking: the stress of perfectly plastic voxels is only piecewise smooth (the tangent
                    # jumps on the yield surface), and a full Newton step can then raise the residual step after
                    # step without converging (lithium at tol 1e-4 stalled near 3e-4); halving the step until the
                    # residual drops restores a monotone descent (an elastic step always lowers it).
                    step = 1.0
                    while r_new > r_norm and step > 1.0 / 16 and np.isfinite(r_new):
                        step *= 0.5
                        u += dt.type(step) * du
                        r_new = evaluate()
                if not np.isfinite(r_new):
                    raise ConvergenceError("the solution became non-finite (NaN/inf); check the material constants"
                                           + _history(history))
                newton += 1
                r_norm = r_new
                history.append(r_norm / r_ref)
        except ConvergenceError as exc:  # the work of a failed solve is counted, not lost: its finished steps' CG
            exc.cg_iterations += total_cg
            raise
        res = du = None
        fd = self.field_dtype  # the caller's precision (the calender's float32: 48 B/voxel less after the solve)
        sig = fields.pop("sig").reshape(6, *shp)
        sig = sig if sig.dtype == fd else sig.astype(fd)
        eps = np.empty((6, *shp), fd)
        _grad(u, self.ih, e_mac, eps)
        khg = None if hourglass_old is None else khg.reshape(shp).copy()  # not a view: the solver may go
        state, gap = (None, None) if crack is None else crack.law.result()
        return IncrementSolution(u, eps, sig, total_cg, newton, float(r_norm / r_ref), history[0], khg, state, gap)

    # ------------------------------------------------------------------ internals
    def _crack_line_search(self, u, du, res, theta, normal, evaluate):
        """Take the Newton step ``u −= s du`` of a cracked solve with the step length ``s`` ≤ 1 from a line search
        on the work of the out-of-balance force along the step, ``g(s) = duᵀ R(u − s du)``; returns the new
        residual norm (``res`` holds the new out-of-balance force, as after :func:`evaluate`).

        Why not the backtracking on ‖R‖ of the other solves: when hundreds of cracks sit on their switching
        surfaces (open/closed, stick/slip, the cap) the semi-smooth Newton direction is often no descent
        direction of ‖R‖, the halving gave up at 1/16 and took a step that raised it, and Newton stagnated (stop
        28: the small test cathode's first plane increment at tol 1e-5 wandered between 1.6e-5 and 4.6e-5 for
        20 iterations, 96 µm seed 3 at 1.33–1.41e-4 vs tol 5e-5). ``g`` is the slope of the incremental energy
        along the step where the law has a potential (the cap, the cohesion, the open cracks, the bulk), and the
        symmetric tangent ``K`` makes ``g(0) = duᵀ K du > 0`` a descent slope: the search finds a step where
        ``|g(s)| ≤ LINE_SEARCH_RATIO · g(0)`` by regula falsi (Illinois) in at most ``LINE_SEARCH_TRIES``
        evaluations — the line search of nonlinear finite elements (Matthies & Strang, Int. J. Numer. Meth. Eng.
        14 (1979) 1613; Crisfield, Non-linear Finite Element Analysis of Solids and Structures, vol. 1, Wiley
        1991, ch. 9 — cited from memory). A full step is taken whenever ``g(1) ≥ −LINE_SEARCH_RATIO · g(0)``
        (the energy still falls, or barely rises), so near the solution the step is Newton's.
        """
        # g(0): the tangent's work duᵀ K du (= duᵀ R for the CG solution; res is free after CG, no extra field)
        g0 = self._apply_dot(du, *self._tangent(theta, normal), res)
        at = 1.0  # the iterate's step length along −du
        u -= du
        r_norm = evaluate()
        g1 = _dot(du, res)
        if not (g0 > 0 and g1 < -LINE_SEARCH_RATIO * g0 and np.isfinite(r_norm)):
            return r_norm
        lo, g_lo, hi, g_hi = 0.0, g0, 1.0, g1  # g changes sign between lo and hi
        for _ in range(LINE_SEARCH_TRIES):
            s = lo + g_lo * (hi - lo) / (g_lo - g_hi)
            u += self.dtype.type(at - s) * du
            at = s
            r_norm = evaluate()
            g = _dot(du, res)
            if abs(g) <= LINE_SEARCH_RATIO * g0 or not np.isfinite(r_norm):
                break
            if g > 0:  # Illinois: halve the kept end's slope so that the bracket shrinks from both sides
                lo, g_lo, g_hi = s, g, 0.5 * g_hi
            else:
                hi, g_hi, g_lo = s, g, 0.5 * g_lo
        return r_norm

    def _build_preconditioner(self, nu0: float) -> None:
        shp = self.shape
        xi = [2 * np.pi * np.fft.fftfreq(shp[0]), 2 * np.pi * np.fft.fftfreq(shp[1]),
              2 * np.pi * np.fft.rfftfreq(shp[2])]
        s = [np.sin(x / 2) for x in xi]
        c = [np.cos(x / 2) for x in xi]
        a0 = (2 / self.h[0]) * s[0][:, None, None] * c[1][None, :, None] * c[2][None, None, :]
        a1 = (2 / self.h[1]) * c[0][:, None, None] * s[1][None, :, None] * c[2][None, None, :]
        a2 = (2 / self.h[2]) * c[0][:, None, None] * c[1][None, :, None] * s[2][None, None, :]
        a2sum = a0 ** 2 + a1 ** 2 + a2 ** 2
        # |symbol|² of the four hourglass functionals: 4 sin² along the axes in the mode, 4 cos² along the rest
        S = [4 * x ** 2 for x in s]
        C = [4 * x ** 2 for x in c]
        hg = (S[0][:, None, None] * S[1][None, :, None] * C[2][None, None, :]
              + S[0][:, None, None] * C[1][None, :, None] * S[2][None, None, :]
              + C[0][:, None, None] * S[1][None, :, None] * S[2][None, None, :]
              + S[0][:, None, None] * S[1][None, :, None] * S[2][None, None, :])
        # reference medium μ0 = 1, λ0 from ν0; operator α I + β a aᵀ with α = |a|² + k0 Σ|H|², β = λ0 + μ0
        lam0 = 2 * nu0 / (1 - 2 * nu0)
        alpha = a2sum + self._hg_factor * hg
        beta = lam0 + 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(alpha > 1e-12 * alpha.max(), 1.0 / alpha, 0.0)
            cc = np.where(alpha > 1e-12 * alpha.max(), beta / (alpha + beta * a2sum), 0.0)
        self._avec = np.stack([a0, a1, a2]).astype(self.dtype)
        self._g = g.astype(self.dtype)
        self._pc = cc.astype(self.dtype)

    def _start_cracks(self, cracks, s_old):
        """The cracked voxels' increment (:class:`_Cracked`): their law from the carried stress and the operator's
        coefficients with their stand-in and hourglass stiffness."""
        if not isinstance(cracks, CrackSet):
            raise InputError(f"cracks must be a CrackSet, got {type(cracks).__name__}")
        idx = cracks.voxels
        if idx.size and (idx.min() < 0 or idx.max() >= self.lam.size):
            raise InputError("crack (or capped bridge) voxel indices lie outside the grid")
        if (self.code[idx] != ELASTIC).any():
            raise InputError("cracked voxels and capped bridges must be elastic (their bulk law is isotropic "
                             "elasticity)")
        law = CrackedIncrement(cracks, self.lam.reshape(-1)[idx], self.mu.reshape(-1)[idx], s_old[:, idx])
        coef = self._coef.copy()
        # hourglass stiffness from the closed crack's cross shear 1/(1/μ + 1/(h k_t)), not from the stand-in nor
        # the state: it is part of the discrete energy, and the answer must not depend on the preconditioner (a
        # capped bridge keeps its bulk's)
        g_closed = closed_shear(law.mu[:len(cracks)], cracks.h_n, cracks.k_t)
        coef[2].reshape(-1)[cracks.index] = self._hg_factor * g_closed
        self._crack = _Cracked(law, idx, coef, active_rows(coef))
        return self._crack

    def _force_rows(self, sig):
        """Element rows with stiffness or with a non-zero stress (a zero-stiffness voxel may carry an
        old stress). One component at a time: a (6, n) mask would add 6 B/voxel at an evaluation."""
        rows = (self._active if self._crack is None else self._crack.active).copy()
        for c in sig.reshape(6, *self.shape):
            rows |= (c != 0).any(axis=-1)
        return rows

    def _tangent(self, theta, normal):
        """Coefficients of the tangent operator at the current plastic state (see
        :func:`._operator.tangent_coefficients`)."""
        base, active = (self._coef, self._active) if self._crack is None else (self._crack.coef, self._crack.active)
        if not self.has_plastic:
            return base, None, active
        coef, pvec = tangent_coefficients(base[0], base[1], base[2], theta=theta, normal=normal, code=self.code,
                                          reg=self.reg)
        return coef, pvec, active_rows(coef, pvec)

    @property
    def hierarchy(self):
        """The multigrid hierarchy (None before the first solve or with the FFT preconditioner), to
        hand to the next solver of a sequence (``MechanicsSolver(..., hierarchy=...)``)."""
        return self._mg

    def _apply_dot(self, u, coef, pvec, active, out) -> float:
        """``out = A u`` for the tangent ``coef, pvec`` (:meth:`_tangent`) with the cracked voxels' correction of
        the increment being solved (:func:`._operator.apply_cracks`), and ``uᵀ A u``: the operator of CG and of the
        crack line search. Without cracks in one sweep (:func:`._operator.apply_tangent_dot`; with them the sweep
        and the correction, then the dot)."""
        if self._crack is None:
            return apply_tangent_dot(u, coef, pvec, active, self._q, out)
        apply_tangent(u, coef, pvec, active, self._q, out)
        apply_cracks(u, self._crack.index, self._crack.rows, self._q, out)
        return _dot(u, out)

    def _preconditioner_for(self, coef, pvec, *, rebuild=False):
        """The z = M⁻¹ r callable for the current tangent.

        The multigrid hierarchy is built once; when the tangent changes (Newton steps of a yielding
        solve, a hierarchy taken over from the previous contact pass) only its finest level follows
        (:meth:`ElasticMultigrid.refresh_fine`, which rebuilds every level itself when the pattern of
        voxels with stiffness changed) as long as CG, with the coarse levels so lagged, still
        converges at least ``REUSE_RATE`` × as fast per iteration as right after the last build;
        otherwise (or with ``rebuild``) every level is rebuilt."""
        if self.preconditioner == "fft":
            def fft(r, z):
                rh = sfft.rfftn(r, axes=(1, 2, 3), workers=self.workers)
                _apply_reference_inverse(rh, self._avec, self._g, self._pc)
                z[...] = sfft.irfftn(rh, s=self.shape, axes=(1, 2, 3), workers=self.workers)
            return fft
        mg = self._mg
        if mg is None:
            # a float32 cycle inside the float64 CG (flexible β): half the memory traffic of the cycle
            mg = self._mg = ElasticMultigrid(coef, pvec, self._q, dtype=np.float32)
        elif rebuild or (coef is not self._mg_coef and mg.lagged and mg.rate is not None
                         and mg.last_rate < REUSE_RATE * mg.rate):
            mg.update(coef, pvec)
        elif coef is not self._mg_coef:
            mg.refresh_fine(coef, pvec)
        self._mg_coef = coef
        return mg.apply

    def _record_rate(self, rel, its):
        """Note CG's mean convergence rate −ln(residual)/iteration on the hierarchy (the first solve
        after a build sets the reference the lagged ones are judged by)."""
        mg = self._mg
        if mg is None or its == 0 or not rel > 0:
            return
        rate = -np.log(rel) / its
        if mg.lagged:
            mg.last_rate = rate
        elif mg.rate is None:
            mg.rate = mg.last_rate = rate

    def _cg(self, b, theta, normal, *, rtol, maxiter, inexact=False):
        """Preconditioned CG for (Bᵀ C_t B) x = b; returns (x, iterations).

        Flexible (Polak–Ribière) β, so a float32 V-cycle may be slightly non-symmetric. Raises
        :class:`ConvergenceError` with the residual history on breakdown, divergence, stagnation
        (no 1 % gain of the best residual in ``STAGNATION`` iterations) or after ``maxiter``. With
        ``inexact`` (a Newton step) a plateau within ``INEXACT_ACCEPT`` × ``rtol`` ends the solve instead:
        the Newton loop then judges the step by the equilibrium residual. ``b`` is overwritten (the
        callers recompute it) unless the hierarchy lags, when a failed solve may start again from it.
        """
        if _norm(b) == 0:
            return np.zeros_like(b), 0
        coef, pvec, active = self._tangent(theta, normal)
        existed = self._mg is not None  # a hierarchy from an earlier solve that may now lag
        precondition = self._preconditioner_for(coef, pvec)
        mg = self._mg if existed else None
        limit = None
        if mg is not None and mg.lagged and mg.rate and REUSE_RATE > 0:
            # lagged coarse levels get the iterations a fresh hierarchy would need at REUSE_RATE of its rate
            limit = int(np.ceil(np.log(1.0 / rtol) / (REUSE_RATE * mg.rate))) + 2
        try:
            # CG's residual in b's memory (24 B/voxel less) unless a lagged solve may have to start again
            x, its, r = self._pcg(b, coef, pvec, active, precondition, rtol=rtol, maxiter=maxiter, inexact=inexact,
                                  limit=limit, consume=not (mg is not None and mg.lagged))
        except ConvergenceError as exc:
            if not (mg is not None and mg.lagged):
                raise
            # start again (e.g. a contact that closed joined two particles); the lost iterations still count
            x, its, r = np.zeros_like(b), exc.cg_iterations, b
        if r is None:
            return x, its
        # the lagged coarse levels were not good enough: rebuild them and solve for what is left
        precondition = self._preconditioner_for(coef, pvec, rebuild=True)
        left = _norm(r) / _norm(b)
        dx, more, _ = self._pcg(r, coef, pvec, active, precondition, rtol=min(rtol / left, 0.5),
                                maxiter=maxiter, inexact=inexact)
        x += dx
        return x, its + more

    def _pcg(self, b, coef, pvec, active, precondition, *, rtol, maxiter, inexact, limit=None, consume=False):
        """The CG iteration of :meth:`_cg` with a given preconditioner: ``(x, iterations, None)``, or
        ``(x, limit, residual)`` when ``limit`` iterations did not reach ``rtol``. With ``consume`` the
        residual is kept in ``b``."""
        x = np.zeros_like(b)
        b_norm = _norm(b)
        r = b if consume else b.copy()
        # the multigrid's directions in its float32: z is rounded there anyway, and x, r and q = A p
        # stay float64 (q is computed in float64 from the rounded p, so r stays b − A x): 24 B/voxel less
        z = np.empty(b.shape, b.dtype if self._mg is None else self._mg.dtype)
        precondition(r, z)
        p = z.copy()
        rz = _dot(r, z)
        q = np.empty_like(b)
        history = [1.0]
        best, best_it = 1.0, 0
        for it in range(1, maxiter + 1):
            if rz == 0.0:  # rᵀ M r = 0 for r ≠ 0: α would be 0 and the next β 0/0
                raise _cg_error(
                    f"conjugate gradients broke down (rᵀMr = 0 at iteration {it - 1}, relative residual "
                    f"{history[-1]:.3g}): the preconditioner has no correction for the residual, as for a piece "
                    "of solid held by nothing; check that every particle touches its neighbours, the collector "
                    "or the roll" + _history(history), it - 1)
            pq = self._apply_dot(p, coef, pvec, active, q)
            if not (pq > 0):
                if not np.isfinite(pq):
                    raise _cg_error("conjugate gradients produced NaN/inf; check the material constants"
                                    + _history(history), it)
                raise _cg_error(
                    f"conjugate gradients broke down (pᵀAp = {pq:.3g} ≤ 0 at iteration {it}); the tangent "
                    "is not positive: check for negative moduli" + _history(history), it)
            alpha = rz / pq
            r_norm = _axpy2(x, p, r, q, self.dtype.type(alpha))  # a float64 α would promote the loop
            rel = r_norm / b_norm
            history.append(rel)
            if rel <= rtol:
                self._record_rate(rel, it)
                return x, it, None
            if limit is not None and it >= limit:
                return x, it, r
            if not np.isfinite(r_norm) or rel > DIVERGENCE:
                raise _cg_error(f"conjugate gradients diverged (relative residual {rel:.3g} at iteration "
                                f"{it}); check the material constants" + _history(history), it)
            if rel < 0.99 * best:
                best, best_it = rel, it
            elif it - best_it >= STAGNATION:
                if inexact and best <= INEXACT_ACCEPT * rtol:
                    # an inexact Newton step needs only the order of its forcing tolerance; the Newton
                    # loop accepts the step only if the out-of-balance force falls (a float32 plateau just
                    # above the target stopped the demo cathode's contact solve at 3.15e-5 vs 3e-5)
                    self._record_rate(best, it)
                    return x, it, None
                raise _cg_error(
                    f"conjugate gradients stagnated at relative residual {best:.3g} (target {rtol:.2g}): no "
                    f"progress in {STAGNATION} iterations; check for extreme stiffness contrast or try the other "
                    "preconditioner ('fft' / 'multigrid')" + _history(history), it)
            precondition(r, z)
            rz_new, zq = _dot_pair(z, r, q)
            beta = -alpha * zq / rz  # Polak–Ribière (= rz_new / rz for an exact symmetric M)
            _xpby(z, p, self.dtype.type(max(beta, 0.0)))
            rz = rz_new
        raise _cg_error(
            f"conjugate gradients did not reach relative residual {rtol:.2g} in {maxiter} iterations "
            f"(reached {history[-1]:.3g}); raise maxiter or check for extreme stiffness contrast" + _history(history),
            maxiter)


@dataclass
class _Cracked:
    """The cracked voxels of an increment (:meth:`MechanicsSolver._start_cracks`): their law, the operator's
    coefficients ``coef`` (with its ``active`` rows) whose cracked voxels hold the isotropic stand-in of the last
    evaluation's tangent, and the correction ``rows`` of :func:`._operator.apply_cracks` to the exact tangent."""

    law: CrackedIncrement
    index: np.ndarray
    coef: np.ndarray
    active: np.ndarray
    rows: np.ndarray | None = None

    def follow(self):
        """After an evaluation: the correction rows to the new tangent, and the stand-in (a new ``coef`` only when
        it changed: the multigrid then refreshes its fine level)."""
        lam_s, mu_s = self.law.stand_in()
        self.rows = self.law.operator_rows(lam_s, mu_s)
        flat = self.coef.reshape(3, -1)
        if np.array_equal(flat[0, self.index], lam_s.astype(flat.dtype)) and np.array_equal(
                flat[1, self.index], mu_s.astype(flat.dtype)):
            return
        self.coef = self.coef.copy()
        self.coef[0].reshape(-1)[self.index] = lam_s
        self.coef[1].reshape(-1)[self.index] = mu_s


#: a cracked solve's line search (:meth:`MechanicsSolver._crack_line_search`) accepts a step once the work of the
#: out-of-balance force along it has fallen to this fraction of its start …
LINE_SEARCH_RATIO = 0.5
#: … or after this many evaluations beyond the full step
LINE_SEARCH_TRIES = 6
#: CG gives up when the best residual has not improved by 1 % for this many iterations
STAGNATION = 200
#: a multigrid hierarchy whose coarse levels lag behind the tangent is rebuilt once CG's convergence
#: rate per iteration falls below this fraction of the rate right after the last build
REUSE_RATE = 0.7
#: a Newton step's CG solves to this fraction of what reaching ``tol`` needs: room for the nonlinear
#: remainder of a yielding solve …
NEWTON_MARGIN = 0.3
#: … and for round-off only in a linear (elastic) one, which then ends in one step. Demo cathode
#: (fresh-clone twin, 10 increments, 40 solves, all one Newton step): 2300 CG with 0.3, 1865 with 0.8
LINEAR_MARGIN = 0.8
#: a yielding solve's Newton steps after the first solve CG to FORCING_GAMMA × the square of the last step's
#: contraction of the out-of-balance force (:func:`_forcing`), if that is looser than the margin asks …
FORCING_GAMMA = 0.9
#: … and no Newton step's CG to more than this. Stop 33, the plane's answers move with the Newton path by a few %
#: at tol 1e-4 (the small test cathode's roll at 3.0 g/cm³, tol 2.5e-5 / 1e-5: main 30.40 / 30.09 MPa, cap 0.05
#: 31.13 / 30.09, 0.03 29.83 / 30.05): 0.5 stalled its Newton at tol 1e-6 (``test_plane_newton_converges_at_a_tight_
#: tolerance``: 2e-6 after 30 steps); 0.1 (the old cap) lost 1.02 % of the roll pressure on a re-solve (``test_a_
#: converged_plane_increment_holds_its_roll_pressure_when_re_solved``, bar 1 %; main 0.53, 0.03 0.60 %); 0.05 moved
#: 3.5 % between the two tolerances (``test_plane_calendering_converges_with_the_newton_tolerance``, bar 2 %)
FORCING_MAX = 0.03
#: … unless the last step contracted the out-of-balance force well (ratio ρ = r_k/r_{k−1}): then up to this, as long
#: as it is at most ``FORCING_SHARE`` × (1 − ρ). An inexact Newton step contracts by about ρ + η (Dembo, Eisenstat &
#: Steihaug, SIAM J. Numer. Anal. 19 (1982) 400 — cited from memory), so η then takes at most half of what Newton
#: gains, and where the plane's Newton crawls (ρ ≥ 0.88, tight tolerances) the cap stays ``FORCING_MAX``. Stop 37,
#: the demo's calender stage: 1875 → 1324 CG, 88 → 90 Newton. A flat 0.1 (1128 CG) stalled the tolerance test's
#: series at 1e-5 (30 Newton steps, 1.09e-5) and moved the re-solve test's third re-solve 0.51 % (bar 0.5 %); 0.1
#: with the share stalled the 1e-6 test (its residual bumps up after a good step); 0.06 with it passes all four
#: (``test_crack_interphase.py`` --runslow), as it does with a share of 0.3 (1e-6 passed, re-solve −0.98 %).
FORCING_LOOSE = 0.06
FORCING_SHARE = 0.5
INEXACT_ACCEPT = 10.0  # a Newton step's CG may stop on a plateau within this factor of its target
#: … or when the residual grows this much above the right-hand side
DIVERGENCE = 1e6


def hourglass_modes(u, dtype=None):
    """The four hourglass modes of each voxel (3, 4, *shape): per displacement component, the butterfly
    products DDS, DSD, SDD, DDD of its 8 corner node values (:mod:`._operator`; node (i, j, k) is the low
    corner of voxel (i, j, k), periodic; D a forward difference, S a forward sum along an axis, in that
    order). ``k_hg`` × these are the voxel's generalised hourglass forces."""
    dtype = u.dtype if dtype is None else np.dtype(dtype)
    out = np.empty((3, 4, *u.shape[1:]), dtype)
    _hourglass_modes(u, out)
    return out


def hourglass_node_forces(q, where, dtype):
    """Node forces (3, *where.shape) of generalised hourglass forces ``q`` (3, 4, k, …) of the voxels
    ``where`` in the first ``k`` layers (zero beyond), summed in ``dtype``: the transpose of
    :func:`hourglass_modes` (with it, ``k_hg`` H Hᵀ u of :func:`internal_force`)."""
    f = np.empty((3, *where.shape), dtype)
    if q.dtype.itemsize > f.dtype.itemsize:  # rounded to dtype first, as a copy into dtype's arrays would
        q = q.astype(f.dtype)
    _hourglass_forces(q, where, f, f.dtype.type(0))
    return f


def weighted_corner_mean(u, mu):
    """Voxel-centre values (3, …) of the node field ``u``: the mean of the voxel's 8 corner nodes, each weighted
    by the sum of ``mu`` over the 8 voxels around it (the plain mean where all eight weigh nothing), in ``u``'s
    dtype (node (i, j, k) is the low corner of voxel (i, j, k), periodic)."""
    w = np.empty(mu.shape, u.dtype)
    _node_weights(mu, w, w.dtype.type(0))
    out = np.empty(u.shape, u.dtype)
    _weighted_mean(u, w, out)
    return out


def _cg_error(message: str, iterations: int) -> ConvergenceError:
    """A CG failure that carries the iterations it spent."""
    exc = ConvergenceError(message)
    exc.cg_iterations = int(iterations)
    return exc


def _forcing(history, tol, *, nonlinear, yielding=False):
    """Relative residual that a Newton step's CG solves to (the forcing term η of inexact Newton), from the relative
    out-of-balance forces ``history`` of the steps so far.

    Never tighter than what the step needs to reach ``tol`` overall if the Newton model held, ``margin · tol ·
    r_ref/r``, with ``NEWTON_MARGIN`` room for the nonlinear remainder of a yielding (or cracked) solve and
    ``LINEAR_MARGIN`` for round-off only in a linear one, which then ends in one step. A yielding solve's first step
    is that tight too, so that an increment that stays elastic ends in one step, unless a cracked solve is
    ``yielding`` from its start (at its initial guess a crack slides or crushes, a bridge crushes): it takes several
    Newton steps whatever its first one asks, and that step solves to ``FORCING_MAX`` (stop 34: the demo cathode's
    plane increments spent 50–115 CG on a first step asked 3e-5 that contracted by 0.04–0.06, and 3 CG at 0.03
    for 0.06; the demo's calender stage 3421 → 1947 CG, at stop 36 2730 → 1875; the small study calender of
    ``pipeline._demo_study`` 1068 → 1135. A bulk-plastic solve keeps the tight first step: on a small perfectly
    plastic cell the loose one took 15–17 Newton steps where the tight one took 10–16, for 40–54 CG against
    35–62). Its later steps ask for no more
    than the last step's contraction ``r_k/r_{k−1}`` shows Newton can use: Eisenstat & Walker's "choice 2"
    ``η = γ (r_k/r_{k−1})²`` (Eisenstat & Walker, SIAM J. Sci. Comput. 17 (1996) 16; Kelley, Iterative Methods for
    Linear and Nonlinear Equations, SIAM 1995, ch. 6 — cited from memory), capped at ``FORCING_MAX`` (below which
    their safeguard ``γ η_{k−1}²`` where it exceeds 0.1 never acts), or at up to ``FORCING_LOOSE`` after a step that
    contracted well (``FORCING_SHARE``). Where Newton converges quadratically the ratio
    is small and the step is solved tightly; where it contracts linearly — the demo cathode's plane increments at
    0.7–0.8 per step while bridges crush on their tangent floor (``_interface.BRIDGE_FLOOR``) — the steps solved
    to 2e-3…1e-2 spent 20–150 CG each for a contraction that 6–10 CG at η 0.1 give as well (stop 33)."""
    r = history[-1]
    margin = NEWTON_MARGIN if nonlinear else LINEAR_MARGIN
    eta = max(margin * tol / r, margin * tol)
    cap = FORCING_MAX
    if nonlinear and len(history) > 1:
        ratio = r / history[-2]
        eta = max(eta, FORCING_GAMMA * ratio ** 2)
        cap = min(FORCING_LOOSE, max(FORCING_MAX, FORCING_SHARE * (1.0 - ratio)))
    elif nonlinear and yielding:
        eta = FORCING_MAX
    return min(cap, eta)


def _history(history, count: int = 12) -> str:
    """The relative residual history, sampled to ``count`` values, for an error message."""
    n = len(history)
    idx = sorted(set(np.linspace(0, n - 1, min(n, count)).round().astype(int).tolist()))
    return "; residual history (iteration: relative residual) " + ", ".join(f"{i}: {history[i]:.3g}" for i in idx)


def solve_mechanics(youngs_mpa, poisson, strain_macro, *, voxel_size=(1.0, 1.0, 1.0), yield_mpa=None,
                    plastic=None, increments: int = 1, tol: float = 1e-5, dtype=np.float64,
                    maxiter: int = 5000, workers: int = 2, preconditioner: str = "multigrid") -> IncrementSolution:
    """Solve a heterogeneous periodic cell under a prescribed average strain.

    Parameters
    ----------
    youngs_mpa, poisson : (n0, n1, n2) arrays or scalars broadcastable to ``youngs_mpa``
        Young's modulus (MPa; 0 = pore) and Poisson's ratio per voxel.
    strain_macro : 6 floats
        Prescribed average strain, order (00, 11, 22, 12, 02, 01), tensor shear.
    yield_mpa, plastic : arrays, optional
        J2 yield stress and a boolean mask of perfectly plastic voxels.
    increments : int
        Number of equal load increments (needed for path-dependent plasticity).
    preconditioner : "multigrid" (default) or "fft"
        See :class:`MechanicsSolver`.

    Returns
    -------
    IncrementSolution
        With ``strain`` the *total* strain and ``stress`` the final stress; displacements summed.
    """
    e = np.asarray(youngs_mpa, dtype=float)
    nu = np.broadcast_to(np.asarray(poisson, dtype=float), e.shape)
    if ((nu <= -1) | (nu >= 0.5)).any():
        raise InputError("Poisson's ratio must lie in (-1, 0.5)")
    lam = e * nu / ((1 + nu) * (1 - 2 * nu))
    mu = e / (2 * (1 + nu))
    code = None
    if plastic is not None:
        code = np.where(np.broadcast_to(plastic, e.shape), PLASTIC, ELASTIC).astype(np.uint8)
    solver = MechanicsSolver(lam, mu, voxel_size=voxel_size, yield_mpa=yield_mpa, code=code, dtype=dtype,
                             workers=workers, preconditioner=preconditioner)
    step = np.asarray(strain_macro, dtype=float) / int(increments)
    stress = None
    disp = None
    strain = None
    cg = newton = 0
    sol = None
    for _ in range(int(increments)):
        sol = solver.solve_increment(step, stress_old=stress, tol=tol, maxiter=maxiter)
        stress = sol.stress
        disp = sol.displacement if disp is None else disp + sol.displacement
        strain = sol.strain if strain is None else strain + sol.strain
        cg += sol.cg_iterations
        newton += sol.newton_iterations
    return IncrementSolution(disp, strain, stress, cg, newton, sol.residual)


# ====================================================================== numba kernels
@numba.njit(cache=True, inline="always")
def _corners(u, m, i, i1, j, j1, k, k1):
    """Component m of the node field u at the 8 corners of voxel (i, j, k), v_abc at (i + a, j + b, k + c) (node
    (i, j, k) is the voxel's low corner; i1, j1, k1 the periodic next indices): v000, v001, v010, v011, v100,
    v101, v110, v111."""
    return (u[m, i, j, k], u[m, i, j, k1], u[m, i, j1, k], u[m, i, j1, k1],
            u[m, i1, j, k], u[m, i1, j, k1], u[m, i1, j1, k], u[m, i1, j1, k1])


@numba.njit(parallel=True, cache=True)
def _grad(u, ih, e_mac, out):
    """out = e_mac + sym grad(u) at voxel centres (one-point trilinear hexahedron)."""
    n0, n1, n2 = u.shape[1], u.shape[2], u.shape[3]
    q0, q1, q2 = 0.25 * ih[0], 0.25 * ih[1], 0.25 * ih[2]
    for i in numba.prange(n0):
        i1 = i + 1 if i + 1 < n0 else 0
        d = np.empty((3, 3), dtype=u.dtype)
        for j in range(n1):
            j1 = j + 1 if j + 1 < n1 else 0
            for k in range(n2):
                k1 = k + 1 if k + 1 < n2 else 0
                for m in range(3):
                    v000, v001, v010, v011, v100, v101, v110, v111 = _corners(u, m, i, i1, j, j1, k, k1)
                    d[m, 0] = q0 * (v100 + v101 + v110 + v111 - v000 - v001 - v010 - v011)
                    d[m, 1] = q1 * (v010 + v011 + v110 + v111 - v000 - v001 - v100 - v101)
                    d[m, 2] = q2 * (v001 + v011 + v101 + v111 - v000 - v010 - v100 - v110)
                out[0, i, j, k] = e_mac[0] + d[0, 0]
                out[1, i, j, k] = e_mac[1] + d[1, 1]
                out[2, i, j, k] = e_mac[2] + d[2, 2]
                out[3, i, j, k] = e_mac[3] + 0.5 * (d[1, 2] + d[2, 1])
                out[4, i, j, k] = e_mac[4] + 0.5 * (d[0, 2] + d[2, 0])
                out[5, i, j, k] = e_mac[5] + 0.5 * (d[0, 1] + d[1, 0])


@numba.njit(parallel=True, cache=True)
def _apply_reference_inverse(rh, nvec, g, c):
    """In place: r̂ ← g (r̂ − c a (a·r̂)), the reference operator's inverse per frequency."""
    n0, n1, n2 = rh.shape[1], rh.shape[2], rh.shape[3]
    for i in numba.prange(n0):
        for j in range(n1):
            for k in range(n2):
                a = nvec[0, i, j, k]
                b = nvec[1, i, j, k]
                d = nvec[2, i, j, k]
                w = a * rh[0, i, j, k] + b * rh[1, i, j, k] + d * rh[2, i, j, k]
                gg = g[i, j, k]
                cw = c[i, j, k] * w
                rh[0, i, j, k] = gg * (rh[0, i, j, k] - a * cw)
                rh[1, i, j, k] = gg * (rh[1, i, j, k] - b * cw)
                rh[2, i, j, k] = gg * (rh[2, i, j, k] - d * cw)


# reductions: "reassoc" lets LLVM vectorise the float64 accumulation (the sum order changes, the
# accuracy does not: partial sums are still float64)
@numba.njit(parallel=True, cache=True, fastmath={"reassoc"})
def _axpy2(x, p, r, q, alpha):
    """x += αp; r −= αq; returns ‖r‖ (accumulated in float64)."""
    xf = x.reshape(-1)
    pf = p.reshape(-1)
    rf = r.reshape(-1)
    qf = q.reshape(-1)
    a = alpha
    acc = 0.0
    for i in numba.prange(xf.size):
        xf[i] += a * pf[i]
        v = rf[i] - a * qf[i]
        rf[i] = v
        acc += np.float64(v) * np.float64(v)
    return np.sqrt(acc)


@numba.njit(parallel=True, cache=True, fastmath={"reassoc"})
def _dot_pair(z, r, q):
    """(z·r, z·q) in one pass over z (accumulated in float64): CG's two products with the new direction."""
    zf = z.reshape(-1)
    rf = r.reshape(-1)
    qf = q.reshape(-1)
    zr = 0.0
    zq = 0.0
    for i in numba.prange(zf.size):
        v = np.float64(zf[i])
        zr += v * np.float64(rf[i])
        zq += v * np.float64(qf[i])
    return zr, zq


@numba.njit(parallel=True, cache=True)
def _xpby(z, p, beta):
    """p = z + βp."""
    zf = z.reshape(-1)
    pf = p.reshape(-1)
    for i in numba.prange(zf.size):
        pf[i] = zf[i] + beta * pf[i]


def _dot(a, b) -> float:
    return float(_dot_kernel(a, b))


def _norm(a) -> float:
    return float(np.sqrt(_dot_kernel(a, a)))


@numba.njit(parallel=True, cache=True)
def _hourglass_modes(u, out):
    """out[m, :, voxel] = DDS, DSD, SDD, DDD of u[m]'s 8 corner values: each product taken axis 0, 1, 2 in turn,
    a difference or sum of the one before at the voxel's two corners along the axis (the association order of
    the per-axis butterflies it replaced, so the values are the same to the bit)."""
    n0, n1, n2 = u.shape[1], u.shape[2], u.shape[3]
    for i in numba.prange(n0):
        i1 = i + 1 if i + 1 < n0 else 0
        for j in range(n1):
            j1 = j + 1 if j + 1 < n1 else 0
            for k in range(n2):
                k1 = k + 1 if k + 1 < n2 else 0
                for m in range(3):
                    v000, v001, v010, v011, v100, v101, v110, v111 = _corners(u, m, i, i1, j, j1, k, k1)
                    d00, d01, d10, d11 = v100 - v000, v101 - v001, v110 - v010, v111 - v011  # D along 0 at (j, k)
                    dd0, dd1 = d10 - d00, d11 - d01  # then D along 1, at k and k + 1
                    out[m, 0, i, j, k] = dd1 + dd0
                    out[m, 3, i, j, k] = dd1 - dd0
                    out[m, 1, i, j, k] = (d11 + d01) - (d10 + d00)
                    a00, a01, a10, a11 = v100 + v000, v101 + v001, v110 + v010, v111 + v011
                    out[m, 2, i, j, k] = (a11 - a01) - (a10 - a00)


@numba.njit(cache=True, inline="always")
def _hg(q, where, m, c, i, j, k, zero):
    """Voxel (i, j, k)'s hourglass force q[m, c] in the dtype of ``zero`` (zero past q's layers or off ``where``)."""
    if i < q.shape[2] and where[i, j, k]:
        return q[m, c, i, j, k] + zero
    return zero


@numba.njit(cache=True, inline="always")
def _hg_plane(q, where, m, i, j, k, km, zero):
    """The transposed butterflies of node (·, ·, k) from voxel row (i, j): (DDS + DDD along 2, DSD along 2, SDD
    along 2) — the last axis' transposes, g(k − 1) ± g(k)."""
    a = ((_hg(q, where, m, 0, i, j, km, zero) + _hg(q, where, m, 0, i, j, k, zero))
         + (_hg(q, where, m, 3, i, j, km, zero) - _hg(q, where, m, 3, i, j, k, zero)))
    e1 = _hg(q, where, m, 1, i, j, km, zero) - _hg(q, where, m, 1, i, j, k, zero)
    e2 = _hg(q, where, m, 2, i, j, km, zero) - _hg(q, where, m, 2, i, j, k, zero)
    return a, e1, e2


@numba.njit(cache=True, inline="always")
def _hg_plane_sums(q, where, m, i, j, jm, k, km, zero):
    """Node (·, j, k)'s transposed butterflies from voxel plane i after axes 2 and 1: (DDS, DDD, DSD) → d, SDD → e."""
    a_m, e1_m, e2_m = _hg_plane(q, where, m, i, jm, k, km, zero)
    a, e1, e2 = _hg_plane(q, where, m, i, j, k, km, zero)
    return (a_m - a) + (e1_m + e1), e2_m - e2


@numba.njit(parallel=True, cache=True)
def _hourglass_forces(q, where, out, zero):
    """out[m, node] = Hᵀ q[m] over the 8 voxels around the node (the transpose of :func:`_hourglass_modes`, each
    axis' transpose g(i − 1) ± g(i) taken 2, 1, 0 in turn: the association order of the per-axis butterflies it
    replaced)."""
    n0, n1, n2 = where.shape
    for i in numba.prange(n0):
        im = i - 1 if i > 0 else n0 - 1
        for j in range(n1):
            jm = j - 1 if j > 0 else n1 - 1
            for k in range(n2):
                km = k - 1 if k > 0 else n2 - 1
                for m in range(3):
                    d_m, e_m = _hg_plane_sums(q, where, m, im, j, jm, k, km, zero)
                    d, e = _hg_plane_sums(q, where, m, i, j, jm, k, km, zero)
                    out[m, i, j, k] = (d_m - d) + (e_m + e)


@numba.njit(parallel=True, cache=True)
def _node_weights(mu, w, zero):
    """w[node] = the sum of mu over the 8 voxels around the node (axis 0, 1, 2 in turn, as the butterflies)."""
    n0, n1, n2 = mu.shape
    for i in numba.prange(n0):
        im = i - 1 if i > 0 else n0 - 1
        for j in range(n1):
            jm = j - 1 if j > 0 else n1 - 1
            for k in range(n2):
                km = k - 1 if k > 0 else n2 - 1
                b0 = (((mu[im, jm, km] + zero) + (mu[i, jm, km] + zero))
                      + ((mu[im, j, km] + zero) + (mu[i, j, km] + zero)))
                b1 = ((mu[im, jm, k] + zero) + (mu[i, jm, k] + zero)) + ((mu[im, j, k] + zero) + (mu[i, j, k] + zero))
                w[i, j, k] = b0 + b1


@numba.njit(parallel=True, cache=True)
def _weighted_mean(u, w, out):
    """out[m, voxel] = Σ w u[m] / Σ w over the voxel's 8 corners (the plain mean where Σ w = 0); sums along axis 0,
    1, 2 in turn, as the butterflies."""
    n0, n1, n2 = w.shape
    for i in numba.prange(n0):
        i1 = i + 1 if i + 1 < n0 else 0
        for j in range(n1):
            j1 = j + 1 if j + 1 < n1 else 0
            for k in range(n2):
                k1 = k + 1 if k + 1 < n2 else 0
                w000, w001, w010, w011 = w[i, j, k], w[i, j, k1], w[i, j1, k], w[i, j1, k1]
                w100, w101, w110, w111 = w[i1, j, k], w[i1, j, k1], w[i1, j1, k], w[i1, j1, k1]
                den = ((w111 + w011) + (w101 + w001)) + ((w110 + w010) + (w100 + w000))
                for m in range(3):
                    v000, v001, v010, v011, v100, v101, v110, v111 = _corners(u, m, i, i1, j, j1, k, k1)
                    if den > 0:
                        num = (((v111 * w111 + v011 * w011) + (v101 * w101 + v001 * w001))
                               + ((v110 * w110 + v010 * w010) + (v100 * w100 + v000 * w000)))
                        out[m, i, j, k] = num / den
                    else:
                        out[m, i, j, k] = (((v111 + v011) + (v101 + v001)) + ((v110 + v010) + (v100 + v000))) / 8

"""Per-voxel constitutive laws for the FFT solver (numba kernels, vectorised over voxels).

Storage convention: symmetric tensors as 6 arrays in the order (00, 11, 22, 12, 02, 01) of the
solver's grid axes, *tensor* components (not engineering shear), so ``a:b = Σ_d a_d b_d + 2 Σ_o a_o b_o``.

Every voxel carries a law code:

* ``ELASTIC`` – isotropic linear elastic (λ, μ; zero for pores and broken shell);
* ``PLASTIC`` – J2 perfect plasticity with radial return (yield ``sy``), e.g. lithium metal;
* ``BRITTLE`` – linear elastic until the von Mises stress exceeds its strength; the switch to
  zero stiffness is applied by the driver *between* load increments (so each increment is a
  well-posed problem), the kernel itself treats it as elastic.

Units: stress in MPa, moduli in MPa.
"""

from __future__ import annotations

import numba
import numpy as np

ELASTIC, PLASTIC, BRITTLE = 0, 1, 2
_SQ32 = np.sqrt(1.5)


def lame_from_young(e_mpa: float, nu: float) -> tuple[float, float]:
    """Lamé constants (λ, μ) in MPa from Young's modulus (MPa) and Poisson's ratio."""
    lam = e_mpa * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
    mu = e_mpa / (2.0 * (1.0 + nu))
    return lam, mu


def von_mises(stress: np.ndarray) -> np.ndarray:
    """Von Mises equivalent stress of a (6, …) stress field (same unit as the input)."""
    s = stress
    p = (s[0] + s[1] + s[2]) / 3.0
    dev2 = (s[0] - p) ** 2 + (s[1] - p) ** 2 + (s[2] - p) ** 2 + 2.0 * (s[3] ** 2 + s[4] ** 2 + s[5] ** 2)
    return np.sqrt(1.5 * dev2)


def isotropic_stress(lam, mu, de):
    """Stress (6, m) of the strain ``de`` (6, m; tensor shear components) in isotropic voxels."""
    s = 2.0 * mu * de
    s[:3] += lam * (de[0] + de[1] + de[2])
    return s


def traction(s, n):
    """Traction ``σ·n`` (3, m) of symmetric tensors ``s`` (6, m) on the planes of normals ``n`` (3, m)."""
    return np.stack([s[0] * n[0] + s[5] * n[1] + s[4] * n[2],
                     s[5] * n[0] + s[1] * n[1] + s[3] * n[2],
                     s[4] * n[0] + s[3] * n[1] + s[2] * n[2]])


def normal_component(t: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``n·t·n`` of symmetric tensors ``t`` (6, m) in the order (00, 11, 22, 12, 02, 01)."""
    return (n[0] ** 2 * t[0] + n[1] ** 2 * t[1] + n[2] ** 2 * t[2]
            + 2.0 * (n[1] * n[2] * t[3] + n[0] * n[2] * t[4] + n[0] * n[1] * t[5]))


@numba.njit(parallel=True, cache=True, fastmath=False)
def update_stress(strain_inc, stress_old, lam, mu, sy, code, stress_out, normal, theta, reg):
    """Stress after a strain increment from the converged state ``stress_old`` (flat arrays).

    ``strain_inc``, ``stress_old``, ``stress_out``, ``normal``: (6, n); ``lam``, ``mu``, ``sy``,
    ``theta``: (n,); ``code``: (n,) uint8. For plastic voxels that yield, ``normal`` receives the
    unit deviatoric flow direction and ``theta = σ_y / q_trial`` (the consistent tangent's factor);
    ``theta = 1`` marks an elastic response. ``reg`` ≥ 0 adds, in plastic voxels, a parallel viscous
    shear spring ``2 reg μ dev(Δε)`` on the increment (a regularisation that keeps the tangent
    positive definite where perfectly plastic material meets free surfaces; 0 = pure J2).
    """
    n = strain_inc.shape[1]
    for i in numba.prange(n):
        l = lam[i]
        m = mu[i]
        e0 = strain_inc[0, i]
        e1 = strain_inc[1, i]
        e2 = strain_inc[2, i]
        tr = e0 + e1 + e2
        s0 = stress_old[0, i] + l * tr + 2.0 * m * e0
        s1 = stress_old[1, i] + l * tr + 2.0 * m * e1
        s2 = stress_old[2, i] + l * tr + 2.0 * m * e2
        s3 = stress_old[3, i] + 2.0 * m * strain_inc[3, i]
        s4 = stress_old[4, i] + 2.0 * m * strain_inc[4, i]
        s5 = stress_old[5, i] + 2.0 * m * strain_inc[5, i]
        theta[i] = 1.0
        if code[i] == 1:
            p = (s0 + s1 + s2) / 3.0
            d0 = s0 - p
            d1 = s1 - p
            d2 = s2 - p
            norm = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2 + 2.0 * (s3 * s3 + s4 * s4 + s5 * s5))
            q = 1.2247448713915890 * norm
            if q > sy[i] and norm > 0.0:
                f = sy[i] / q
                theta[i] = f
                normal[0, i] = d0 / norm
                normal[1, i] = d1 / norm
                normal[2, i] = d2 / norm
                normal[3, i] = s3 / norm
                normal[4, i] = s4 / norm
                normal[5, i] = s5 / norm
                s0 = p + f * d0
                s1 = p + f * d1
                s2 = p + f * d2
                s3 = f * s3
                s4 = f * s4
                s5 = f * s5
            if reg > 0.0:
                g = 2.0 * reg * m
                t3 = tr / 3.0
                s0 += g * (e0 - t3)
                s1 += g * (e1 - t3)
                s2 += g * (e2 - t3)
                s3 += g * strain_inc[3, i]
                s4 += g * strain_inc[4, i]
                s5 += g * strain_inc[5, i]
        stress_out[0, i] = s0
        stress_out[1, i] = s1
        stress_out[2, i] = s2
        stress_out[3, i] = s3
        stress_out[4, i] = s4
        stress_out[5, i] = s5

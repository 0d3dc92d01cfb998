"""Particle contacts and sub-voxel shells of a calendered electrode (SCIENCE.md §6).

Contact interphase
------------------
Voxels of two touching particles share faces and would be welded into one elastic body. Every
particle voxel that shares a face with a *different* particle instance, with the current
collector or with the roll gets an interphase law instead — the voxel-scale version of the
unilateral contact interphase of FFT / voxel-FE homogenisation of granular and cracked media
(a thin layer that is soft in the normal direction, yields in shear and carries no tension:
e.g. the "cohesive/contact interphase" of Sinchuk, Bonnet, Kabel et al. for FFT solvers, and the
crushable interphase layers of voxel models of granular compaction; the unilateral condition is
the Signorini condition solved by a primal active set, Hüeber & Wohlmuth 2005). Per interphase
voxel:

* **compressive and closed**: elastic with a compliant modulus (``twinlab.materials``
  "NCM_contact", with its sources) up to a frictional limit, perfectly plastic above it
  (tangential sliding): Drucker–Prager, von Mises stress ≤ c + √3 μ p (cohesion c, friction μ,
  pressure p), the smooth cone that matches Coulomb friction in shear; the hydrostatic part stays elastic, so the normal response is a compliant
  spring per unit area ``E_c/h``. The plastic return is explicit, between solves (like the
  brittle switch): a closed voxel whose von Mises stress exceeds the yield has its deviator scaled
  back to it (the out-of-balance force enters the next solve through its old stress) and, while it
  sits on the yield surface, a sliding shear modulus ``SLIDE_FACTOR × μ_c`` at constant bulk
  modulus — so every solve is linear (no Newton iterations on thousands of yielding contact
  voxels) and the solver's operator is unchanged;
* **open** (the normal traction ``n·σ·n`` became tensile, or an initial gap has not closed yet):
  no stiffness and no stress — it transmits nothing, like a pore; it carries a normal gap (strain
  units, ``gap ≥ 0``) that each increment's normal strain changes, and it closes again when the gap
  reaches zero.

Within an increment the open/closed set is found by re-solving the increment (primal active set)
until no more than ``tol`` of the interphase voxels change (0 → exact), then the remaining changes
are applied *between* increments. Contacts that form during the remap (new faces between
instances) are interphase voxels from the next increment on; voxels that lost every foreign face
become ordinary particle voxels again.

Sub-voxel shells
----------------
A lithium particle's Li2CO3 passivation (~100 nm) is a state of its surface voxels, not a voxel
phase: a shell phase on input is turned into lithium (its stiffness is that of a 100 nm film:
negligible in volume) and each former shell voxel carries a flag "shell intact/broken". An intact
patch is a membrane smeared over its surface voxel: the voxel is elastic with
``E_s t_s / h`` (film modulus × film thickness / voxel size), so the membrane force per unit
length, ``E_s t_s ε``, does not depend on the voxel size; a broken patch is plain lithium.
A surface patch breaks when the film's stress exceeds its strength (200 MPa): the membrane
stress ``E_s/(1−ν_s) · ε_m`` from the largest in-plane (tangential) principal strain ``ε_m`` of
the surface voxel, or the normal contact traction ``−n·σ·n`` pressing the film. Neither depends on
the voxel size (a strain and a traction), unlike a voxel shell whose load grows with its
thickness.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from ._laws import ELASTIC, PLASTIC, lame_from_young

#: particle phases: the phases whose instances make contacts
PARTICLE_PHASES = ("active", "lithium", "shell")
#: shear modulus of a sliding (yielded) contact voxel as a fraction of its elastic one
SLIDE_FACTOR = 0.2


# ---------------------------------------------------------------------- instances
def particle_instances(lab: np.ndarray, particle_values, *, instances: np.ndarray | None = None,
                       core_values=()) -> np.ndarray:
    """Particle instance id per voxel (0 = not a particle), thickness axis first.

    ``instances`` (e.g. a twin's ``labels/particles``) wins where it labels a particle voxel;
    otherwise particles are the 6-connected components of the particle phases. ``core_values``
    (lithium inside a shell) are labelled by the components of the cores alone and every other
    particle voxel (the shell) takes the nearest core's id, so particles whose shells touch are
    still two particles.
    """
    part = np.isin(lab, list(particle_values))
    out = np.zeros(lab.shape, np.int32)
    if instances is not None:
        out[part] = np.asarray(instances, np.int64)[part].astype(np.int32)
    todo = part & (out == 0)
    if not todo.any():
        return out
    offset = int(out.max())
    core = todo & np.isin(lab, list(core_values)) if core_values else np.zeros(lab.shape, bool)
    if core.any():
        cl, _ = ndimage.label(core)
        _, idx = ndimage.distance_transform_edt(cl == 0, return_indices=True)
        near = cl[tuple(idx)]
        comp = np.where(todo, near, 0)
        rest = todo & (comp == 0)
        if rest.any():
            rl, _ = ndimage.label(rest)
            comp[rest] = rl[rest] + int(comp.max())
    else:
        comp, _ = ndimage.label(todo)
    out[todo] = comp[todo] + offset
    return out


def _shifted(a, ax, shift, fill):
    """``a`` shifted by one voxel along ``ax`` (periodic on axes 1, 2; ``fill`` beyond axis 0's ends)."""
    if ax != 0:
        return np.roll(a, shift, axis=ax)
    out = np.empty_like(a)
    if shift == 1:
        out[1:] = a[:-1]
        out[0] = fill
    else:
        out[:-1] = a[1:]
        out[-1] = fill
    return out


def foreign_faces(inst: np.ndarray, fixed: np.ndarray, *, top_is_roll: bool):
    """Interphase voxels and their outward normals.

    A particle voxel is an interphase voxel when one of its 6 face neighbours is another particle
    instance, the fixed collector, or (``top_is_roll``) the roll above the last layer. The normal
    is the normalised sum of the unit vectors toward those neighbours (axis order of the array).

    Returns
    -------
    mask : bool array
    normal : (3, m) float32 array for the voxels of ``mask`` in C order
    """
    part = inst > 0
    acc = np.zeros((3, *inst.shape), np.float32)
    hit = np.zeros(inst.shape, bool)
    for ax in range(3):
        for shift in (1, -1):
            nb = _shifted(inst, ax, shift, 0)
            other = part & (nb > 0) & (nb != inst)
            if fixed is not None:
                other |= part & _shifted(fixed, ax, shift, False)
            if ax == 0 and shift == -1 and top_is_roll:
                other[-1] |= part[-1]
            # np.roll(+1) brings the neighbour at index i−1: the direction toward it is −e_ax
            acc[ax] += np.where(other, -float(shift), 0.0).astype(np.float32)
            hit |= other
    n = acc[:, hit]
    norm = np.sqrt((n ** 2).sum(axis=0))
    flat = norm == 0  # neighbours on opposite faces only: take the first axis that has one
    norm[flat] = 1.0
    n /= norm
    if flat.any():
        n[:, flat] = 0.0
        n[0, flat] = 1.0
    return hit, n


def surface_normals(inst: np.ndarray, mask: np.ndarray):
    """Outward normals (3, m) of ``mask`` voxels: the normalised sum of unit vectors toward face
    neighbours that are not the same particle; (0, 0, 0) for voxels with none."""
    acc = np.zeros((3, *inst.shape), np.float32)
    for ax in range(3):
        for shift in (1, -1):
            nb = _shifted(inst, ax, shift, -1)
            acc[ax] += np.where(nb != inst, -float(shift), 0.0).astype(np.float32)
    n = acc[:, mask]
    norm = np.sqrt((n ** 2).sum(axis=0))
    ok = norm > 0
    n[:, ok] /= norm[ok]
    return n


def normal_component(t: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``n·t·n`` of symmetric tensors ``t`` (6, m) in the order (00, 11, 22, 12, 02, 01)."""
    return (n[0] ** 2 * t[0] + n[1] ** 2 * t[1] + n[2] ** 2 * t[2]
            + 2.0 * (n[1] * n[2] * t[3] + n[0] * n[2] * t[4] + n[0] * n[1] * t[5]))


def _limit(s, sy, slope):
    """Drucker–Prager von Mises limit ``sy + slope · p`` (p = pressure, compression positive, ≥ 0)."""
    p = np.maximum(-(s[0] + s[1] + s[2]) / 3.0, 0.0)
    return sy + slope * p


def _von_mises(s):
    p = (s[0] + s[1] + s[2]) / 3.0
    return np.sqrt(1.5 * ((s[0] - p) ** 2 + (s[1] - p) ** 2 + (s[2] - p) ** 2 + 2.0 * (s[3] ** 2 + s[4] ** 2 + s[5] ** 2)))


def _isotropic(lam, mu, e_nn, n):
    """Stress (6, m) of the strain ``e_nn n⊗n`` in an isotropic material."""
    s = np.empty((6, n.shape[1]))
    for c, (i, j) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
        s[c] = 2.0 * mu * e_nn * n[i] * n[j] + (lam * e_nn if i == j else 0.0)
    return s


# ---------------------------------------------------------------------- contact law
@dataclasses.dataclass
class ContactLaw:
    """Interphase constants per particle phase value (MPa), from the materials library."""

    lam: np.ndarray  # (256,) by label value
    mu: np.ndarray
    sy: np.ndarray  # von Mises limit at zero pressure (cohesion)
    code: np.ndarray
    slope: np.ndarray  # Drucker–Prager slope: the limit grows by slope × pressure (√3 × friction)

    @classmethod
    def from_materials(cls, by_value: dict[int, object]) -> "ContactLaw":
        lam, mu = np.zeros(256), np.zeros(256)
        sy = np.full(256, np.inf)
        code = np.zeros(256, np.uint8)
        slope = np.zeros(256)
        for v, mat in by_value.items():
            lam[v], mu[v] = lame_from_young(mat.youngs_modulus_gpa * 1e3, mat.poisson_ratio)
            if mat.yield_strength_mpa is not None:
                sy[v], code[v] = mat.yield_strength_mpa, PLASTIC
            if getattr(mat, "friction_coefficient", None) is not None:
                slope[v] = np.sqrt(3.0) * mat.friction_coefficient
        return cls(lam, mu, sy, code, slope)


def solve_with_contacts(make_solver, d_e, lam, mu, sy, code, s_old, *, lab, inst, fixed, gap, law: ContactLaw,
                        nt: int, tol_active: float, max_passes: int, tol, maxiter, top_is_roll: bool = True,
                        override=None):
    """Solve one increment with the unilateral contact interphase (primal active set).

    ``lam``, ``mu``, ``sy``, ``code``, ``s_old`` are the cell arrays (the coating in the first ``nt``
    layers, the roll above); they are modified in place for the interphase voxels. ``gap`` (coating
    shape, float32) is the carried normal gap of open interphase voxels (≥ 0; NaN = closed).
    ``override`` = (mask, λ, μ): interphase voxels in ``mask`` (coating grid) take these elastic
    constants instead of the law's (intact membrane shells).

    Returns ``(solution, gap_new, info)``: ``gap_new`` is the gap after the increment (NaN where
    closed, on the coating grid), ``info`` counts interphase voxels, open ones and passes.
    """
    mask, normal = foreign_faces(inst, fixed[:nt] if fixed is not None else None, top_is_roll=top_is_roll)
    idx = np.nonzero(mask)
    vals = lab[idx]
    c_lam, c_mu = law.lam[vals], law.mu[vals]
    c_sy = law.sy[vals]
    c_slope = law.slope[vals]
    if override is not None:
        om = override[0][idx]
        c_lam = np.where(om, override[1], c_lam)
        c_mu = np.where(om, override[2], c_mu)
        c_sy = np.where(om, np.inf, c_sy)
    g0 = gap[idx].astype(float)
    is_open = np.isfinite(g0)  # carried state: open with a gap, or closed (NaN)
    g0 = np.where(is_open, g0, 0.0)
    # a contact formed by the remap (was bulk or pore before) starts closed with its carried stress
    base_stress = s_old[(slice(None),) + idx].astype(float)
    sliding = _von_mises(base_stress) >= 0.99 * _limit(base_stress, c_sy, c_slope)
    k_c = c_lam + 2.0 * c_mu / 3.0
    mu_eff = np.where(sliding, SLIDE_FACTOR * c_mu, c_mu)
    lam_eff = k_c - 2.0 * mu_eff / 3.0
    passes = 0
    cg = newton = 0
    u_prev = None
    while True:
        passes += 1
        lam[idx] = np.where(is_open, 0.0, lam_eff)
        mu[idx] = np.where(is_open, 0.0, mu_eff)
        sy[idx] = np.inf
        code[idx] = ELASTIC
        # closed voxels that were open at the start close their gap first: eigenstress C:(g n⊗n)
        start = np.where(is_open, 0.0, base_stress)
        was_open = np.isfinite(gap[idx])
        shut = ~is_open & was_open
        if shut.any():
            start[:, shut] = _isotropic(lam_eff[shut], mu_eff[shut], g0[shut], normal[:, shut])
        s_old[(slice(None),) + idx] = start
        # from the previous pass's displacement: only a few interphase voxels changed, so Newton starts
        # near the answer (the tolerance stays relative to the out-of-balance force at Δu = 0)
        sol = make_solver(lam, mu, sy, code).solve_increment(d_e, stress_old=s_old, tol=tol, maxiter=maxiter,
                                                             u0=u_prev)
        cg += sol.cg_iterations
        newton += sol.newton_iterations
        de_nn = normal_component(sol.strain[(slice(None),) + idx].astype(float), normal)
        s_nn = normal_component(sol.stress[(slice(None),) + idx].astype(float), normal)
        now_open = np.where(is_open, g0 + de_nn > 0, s_nn > 0)
        changed = int((now_open != is_open).sum())
        if changed <= tol_active * max(1, is_open.size) or passes >= max_passes:
            break
        is_open = now_open
        u_prev, sol = sol.displacement, None  # the next pass starts here; its stress and strain are freed first
    # state after the increment: open voxels carry their gap (positive), closed ones NaN
    g_new = np.full(gap.shape, np.nan, np.float32)
    opening = np.where(is_open, g0 + de_nn, s_nn / np.maximum(lam_eff + 2 * mu_eff, 1e-30))
    final_open = now_open
    g_new[idx] = np.where(final_open, np.maximum(opening, 0.0), np.nan)
    # no traction across an open contact; closed ones return to the yield surface
    sig = sol.stress[:, :nt]
    sel = tuple(i[final_open] for i in idx)
    sig[(slice(None),) + sel] = 0
    closed = ~final_open & np.isfinite(c_sy)
    if closed.any():
        cs = tuple(i[closed] for i in idx)
        s_c = sig[(slice(None),) + cs].astype(float)
        q = _von_mises(s_c)
        lim = _limit(s_c, c_sy[closed], c_slope[closed])
        f = np.where(q > lim, lim / np.maximum(q, 1e-30), 1.0)
        p = (s_c[0] + s_c[1] + s_c[2]) / 3.0
        for k in range(3):
            s_c[k] = p + f * (s_c[k] - p)
        s_c[3:] *= f
        sig[(slice(None),) + cs] = s_c
    info = {"interphase": int(mask.sum()), "open": int(final_open.sum()), "passes": passes, "cg": cg,
            "newton": newton}
    return sol, g_new, mask, info


# ---------------------------------------------------------------------- sub-voxel shells
def shell_fracture(strain_total, stress, inst, shelled, broken, *, e_shell_mpa, nu_shell, strength_mpa):
    """New broken flags of sub-voxel shells (surface patches) after an increment.

    A shell patch (voxel with ``shelled``) breaks when its membrane stress
    ``E_s/(1−ν_s) · ε_m`` (``ε_m`` the largest principal strain in the surface plane) or the
    contact traction ``−n·σ·n`` exceeds ``strength_mpa``. Patches without a surface normal (inner
    layers of a thick shell) use the largest principal strain.
    """
    cand = shelled & ~broken
    if not cand.any():
        return broken
    idx = np.nonzero(cand)
    n = surface_normals(inst, cand)
    eps = strain_total[(slice(None),) + idx].astype(float)
    m = eps.shape[1]
    e = np.empty((m, 3, 3))
    e[:, 0, 0], e[:, 1, 1], e[:, 2, 2] = eps[0], eps[1], eps[2]
    e[:, 1, 2] = e[:, 2, 1] = eps[3]
    e[:, 0, 2] = e[:, 2, 0] = eps[4]
    e[:, 0, 1] = e[:, 1, 0] = eps[5]
    nt = n.T.astype(float)
    p = np.eye(3)[None] - nt[:, :, None] * nt[:, None, :]
    et = p @ e @ p
    e_m = np.linalg.eigvalsh(et)[:, -1]
    membrane = e_shell_mpa / (1.0 - nu_shell) * e_m
    traction = -normal_component(stress[(slice(None),) + idx].astype(float), n)
    has_n = (n ** 2).sum(axis=0) > 0
    traction = np.where(has_n, traction, 0.0)
    brk = (membrane > strength_mpa) | (traction > strength_mpa)
    out = broken.copy()
    out[tuple(i[brk] for i in idx)] = True
    return out


# ---------------------------------------------------------------------- state carried through calendering
@dataclasses.dataclass
class ContactState:
    """Per-voxel contact and shell state carried with the material (coating grid, thickness first).

    ``inst``: particle instance ids; ``gap``: normal gap of open interphase voxels (NaN = closed or
    no contact); ``shelled``: voxels that carry a sub-voxel shell (membrane mode); ``law``: the
    interphase constants (None = contacts off); ``shell_value``/``lithium_value``: label values.
    """

    inst: np.ndarray
    gap: np.ndarray
    shelled: np.ndarray | None
    law: ContactLaw | None
    law_names: dict
    shell_value: int | None = None
    lithium_value: int | None = None
    shell_material: object = None
    last_info: dict | None = None

    @property
    def membrane(self) -> bool:
        return self.shelled is not None

    def crop(self, top: int) -> None:
        self.inst = self.inst[:top].copy()
        self.gap = self.gap[:top].copy()
        if self.shelled is not None:
            self.shelled = self.shelled[:top].copy()

    def take(self, take, src) -> None:
        """Move the state with the material (``take(arr, src, fill)`` gathers by remap sources)."""
        self.inst = take(self.inst, src, 0)
        self.gap = take(self.gap, src, np.float32(np.nan))
        if self.shelled is not None:
            self.shelled = take(self.shelled, src, False)

    def output_labels(self, lab: np.ndarray) -> np.ndarray:
        """Labels with the sub-voxel shell shown as the shell phase on its surface voxels."""
        if self.shelled is None:
            return lab
        out = lab.copy()
        out[self.shelled] = self.shell_value
        return out


def setup_state(lab, inst_in, *, names: dict, materials: dict, contacts: bool, contact_materials, shells: str,
                get_material):
    """The :class:`ContactState` of a coating (``lab`` is modified in place: membrane shells → lithium).

    ``names`` maps label value → phase name of the values present; ``materials`` phase name →
    Material. Returns None when the labels hold no particle phase.
    """
    val = {n: v for v, n in names.items()}
    pvals = [val[n] for n in PARTICLE_PHASES if n in val]
    if not pvals:
        return None
    shell_v, li_v = val.get("shell"), val.get("lithium")
    core = [li_v] if (shell_v is not None and li_v is not None) else []
    inst = particle_instances(lab, pvals, instances=inst_in, core_values=core)
    shelled = None
    shell_mat = None
    if shells == "membrane" and shell_v is not None and li_v is not None:
        shelled = lab == shell_v
        lab[shelled] = li_v
        shell_mat = materials.get("shell")
    law = None
    law_names = {}
    if contacts:
        defaults = {"active": "NCM_contact", "lithium": materials.get("lithium"), "shell": materials.get("shell")}
        overrides = dict(contact_materials or {})
        by_value = {}
        for n in PARTICLE_PHASES:
            if n not in val or (n == "shell" and shelled is not None):
                continue
            m = overrides.get(n, defaults[n])
            m = get_material(m) if isinstance(m, str) else m
            by_value[val[n]] = m
            law_names[n] = m.name
        law = ContactLaw.from_materials(by_value)
    return ContactState(inst=inst, gap=np.full(lab.shape, np.nan, np.float32), shelled=shelled, law=law,
                        law_names=law_names, shell_value=shell_v, lithium_value=li_v, shell_material=shell_mat)

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

* **compressive and closed**: elastic with a compliant modulus up to a frictional limit, perfectly
  plastic above it (tangential sliding): Coulomb friction on the contact plane (:func:`contact_limit`),
  the shear traction ``|τ| ≤ c + μ p_n`` (cohesion c, friction μ, normal pressure ``p_n = −n·σ·n``); the
  normal traction and the stresses in the contact plane stay elastic, so the normal response is a
  compliant spring. Its stiffness is a property of the contact, per unit area: ``k_n`` (``twinlab.materials``
  "NCM_contact", with its sources); the two interphase voxels of a face (edge h along the normal) in
  series get the modulus ``E_c = 2 h k_n`` (:meth:`ContactLaw.moduli`), so the same contact is as stiff
  at every voxel size (a fixed E_c made it twice as stiff at 1 µm as at 2 µm). (A von Mises / Drucker–Prager limit on the whole deviator, used before,
  yields under a purely normal load too — uniaxial strain has a deviator — and let the jammed packing
  densify at the friction stress: roll pressure 28 / 46 MPa at 3.4 / 3.8 g/cm³ on the benchmark cathode,
  38.6 / 65.0 with the contact-plane law, issue 16.) A contact law without friction but with a yield stress
  (lithium metal) yields by its von Mises stress instead, like the metal. The plastic return is a start-stress
  correction between solves: a closed voxel whose trial shear traction exceeds the limit has it scaled back
  (:func:`contact_return`), and the next pass starts from that correction (:func:`friction_slip`), so the
  passes end on the limit in equilibrium (frictional contacts; the yielding ones are returned after the last
  solve only) and,
  while it sits on the limit, a sliding shear modulus ``SLIDE_FACTOR × μ_c`` at constant bulk
  modulus — so every solve is linear (no Newton iterations on thousands of yielding contact
  voxels) and the solver's operator is unchanged;
* **open** (the normal traction ``n·σ·n`` became tensile, or an initial gap has not closed yet):
  no stiffness and no stress — it transmits nothing, like a pore; it carries a normal gap (strain
  units, ``gap ≥ 0``) that each increment's normal strain changes, and it closes again when the gap
  reaches zero.

Within an increment the open/closed set (and the compaction cap's crushing set, below) is found by
re-solving the increment (primal active set) until no more than ``tol`` of the interphase voxels change
(0 → exact). The increment's state is its last solve's: the last test's changes are counted, not
applied to the stress, and reach the next increment through the state it starts from. Open and closed voxels are tested alike, on their trial normal
traction (start stress while closed + contact stiffness × the strain the solve gave them); a voxel
that changed state and back is locked (it sits at the edge of contact: each state's solve says the
other; the first closing of a voxel open on its carried gap does not count): it may still open, never
close again, so no contact ends closed in tension; a voxel solved open that the last test closes carries its overlap
(a negative gap) into the next increment, which starts it with that compression. Contacts that
form during the remap (new faces between instances) are interphase voxels from the next increment
on; voxels that lost every foreign face become ordinary particle voxels again.

Compaction cap (SCIENCE notes)
------------------------------
A contact of a powder phase, and the CBD/binder bridging it, carries at most the compaction pressure
of the packing around it (:func:`compaction_pressure`, a function of the local packing fraction φ of
the particle skeleton, :func:`packing_fraction`): the low pressure of rearrangement below the jamming
fraction (random loose packing of frictional spheres, 0.555: Onoda & Liniger 1990), with φ linear in
ln P as in stage I of the compaction of granules (Frey & Halloran 1984; Reed 1995) — NCM secondary
particles are granules of primary crystallites — then Heckel's law (Heckel 1961) once the packing is
jammed. It is what makes calendering densify by pore closure at low pressure first and build stress
where the particles are jammed. Published calendering pressures of NCM cathodes, which the roll
pressure of a generated NCM622 cathode is checked against (``tests/test_contacts.py::PUBLISHED_MPA``,
slow test ``test_roll_pressure_rises_nonlinearly_within_published_calendering_pressures``): line loads
of ~100–2000 N/mm densify NCM cathodes from ~2.3 to 3.0–3.8 g/cm³, porosity falling exponentially with
the line load (Meyer, Bockholt, Haselrieder & Kwade, J. Mater. Process. Technol. 249 (2017) 172;
Schreiner et al., Energy Technol. 7 (2019) 1900840 for NMC-622); over a nip √(R Δh) of 1–5 mm that is
a mean pressure of the order of 10¹–10³ MPa; DEM of NMC-622 compaction (Sangrós Giménez et al., Adv.
Powder Technol. 30 (2019)) and FEM with particle fracture (Guichard et al., arXiv:2601.02879, 2026:
rearrangement, fracture at moderate pressure, then crushing) give the same order and sequence. The
rearrangement constants of NCM (P_j 10 MPa, m 0.03) are calibrated to that band, not measured.
The cap is a perfectly plastic limit on the contact's mean stress, solved with the active set (its
return mapping in each pass, :func:`crush_test`); a crushing contact softens isotropically by its secant
factor, its start pressure re-based each pass so that it ends on the cap. The packing is judged at the
increment's end: increments are kept below the strain :attr:`ContactLaw.increment_strain` so the state
does not depend on their number.

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
thickness. A patch whose voxel is an open contact (a neighbour less than a voxel away: a void in the
solve, its strain the opening) is free surface all the same, and its film stretches with its particle
(:meth:`ContactState.strain_films`); judged on the void's zero strain, such films never broke, and as
the share of the surface within a voxel of a neighbour grows with the voxel size, the coarse grid kept
more films intact (issue 16, stop 33).

Each patch draws its strength from the film's Weibull distribution at the characteristic strength
σ0, whatever its area: failure judged patch by patch, the broken share of a surface under a uniform
film stress σ is then 1 − exp(−(σ/σ0)^m) on every grid. Weakest-link scaling σ0 (A/A0)^(−1/m)
(Weibull 1951) is the strength of one body of area A; per patch it would make that share
1 − exp(−(A/A0)(σ/σ0)^m), growing with the voxel's area — it moved the first post-jam increment of
the generated anode (seed 1) from intact 0.397 | 0.403 at 6 | 4 µm to 0.397 | 0.464 (A0 the 6 µm
patch; stop 33).

The film covers the particle's whole surface, whatever the voxels did: the remap moves voxels one by
one (a push chain through a particle, the overlap of two clumps after a DEM stage) and can bury a
surface patch inside its particle and expose a core voxel at a contact, the collector or the pore
space — lithium would then touch lithium or the collector around intact shells (the activation of
an anode with every shell intact was 0.5–0.9). After every remap :meth:`ContactState.cover_surfaces`
puts the film back on exactly the surface voxels of each shelled particle, each patch with the state
(intact/broken, Weibull strength) of the nearest patch of its particle that the remap buried.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from ..._morphology import face_neighbour
from ...errors import ConvergenceError, InputError
from ._interface import CRUSHED, OPEN, SLIP, CappedBridges, CrackSet
from ._laws import ELASTIC, PLASTIC, isotropic_stress, lame_from_young, normal_component, traction

#: particle phases: the phases whose instances make contacts
PARTICLE_PHASES = ("active", "lithium", "shell")
#: pore-bridging phases: bonded to the particles, but crushed with their contacts (compaction cap)
BRIDGE_PHASES = ("cbd", "binder")
#: shear modulus of a sliding (yielded) contact voxel as a fraction of its elastic one
SLIDE_FACTOR = 0.2
#: lowest secant factor of a crushing contact's stiffness (:func:`crush_test`): a lower one adds a
#: stiffness contrast that stalls the CG
SECANT_FLOOR = 0.1
#: a crushing voxel whose secant factor changes by more than this fraction in a pass counts as a change of
#: the active set
SECANT_CHANGE = 0.01


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


def roll_reach(inst: np.ndarray, solid: np.ndarray, floor_min: int) -> tuple[np.ndarray, np.ndarray]:
    """The roll body over a coating with a rough top (thickness axis first, axes 1 and 2 periodic).

    A flat roll touches a particle wherever its surface rises within the roll's travel, at any depth below
    the grid's top; a roll that is only the layers above the grid reaches the top layer alone, so its
    contact patch on a particle is the particle's cross-section in that layer — where the jam falls between
    the layer planes, not how far the roll travels (LMP free-top anode at the jam, seed 1: contactable area
    16 000 | 25 000 | 4 300 µm² at 6 | 4 | 3 µm for the 37 000 µm² the DEM spheres' cut at the increment's
    travel gives; tests/benchmarks/MEASUREMENTS.md, stop 32). The roll body therefore fills each column of
    pore cells down to one layer above the highest voxel of the column and its 8 lateral neighbours (never
    below ``floor_min``: where the roll stops). That underside meets particle voxels (``inst > 0``) only at
    their top faces, edges or corners — never a lateral face, which stays free — so it pushes, never drags;
    it keeps a pore layer above the other ``solid`` voxels (binder, CBD: no contact law, welded they would pull
    on the roll), which the particles' contacts load.

    Returns ``(floor, under)``: the first layer of the roll body per column (n1, n2) and the particle voxels
    whose top nodes it touches (the column tops just below a neighbourhood's underside), each a contact with the
    roll along +axis 0 (:func:`foreign_faces`), its gap the distance from its top face to the roll plane
    (:func:`roll_gaps`)."""
    n0 = solid.shape[0]
    depth = np.arange(n0)[:, None, None]
    part = inst > 0

    def highest(mask):
        return np.where(mask.any(axis=0), n0 - 1 - np.argmax(mask[::-1], axis=0), -1)

    top = np.maximum(highest(part), highest(solid & ~part) + 1)  # a layer of clearance over the bonded solid
    floor = np.maximum(ndimage.maximum_filter(top, size=3, mode="wrap") + 1, floor_min)
    touch = ndimage.minimum_filter(floor, size=3, mode="wrap")  # the lowest underside over a column's top nodes
    under = part & (depth == top[None]) & (touch[None] == depth + 1)
    return floor, under


def roll_gaps(under: np.ndarray, roll_below: float, carried: np.ndarray) -> np.ndarray:
    """The ``carried`` gaps (strain units, NaN closed) with whole-voxel gaps for the roll contacts ``under``
    (:func:`roll_reach`) below the last layer: the distance (layers: strain units, as
    :meth:`._rearrange.DemPacking.contact_gaps` measures the roll's) from each one's top face to the roll plane,
    ``roll_below`` layers below the grid's top. The last layer's carried state stands (its sub-voxel gap or
    closed contact)."""
    gap = carried.copy()
    i = np.nonzero(under[:-1])
    gap[i] = under.shape[0] - roll_below - (i[0] + 1)
    return gap


def roll_faces(part: np.ndarray, under_roll: np.ndarray | None) -> np.ndarray:
    """The particle voxels (``part``) whose top face (+axis 0) meets the roll: those of the grid's last layer, or
    with a roll body those it reaches (``under_roll``, :func:`roll_reach`). One rule for the contacts
    (:func:`foreign_faces`) and the DEM's gaps (:meth:`._rearrange.DemPacking.contact_gaps`)."""
    if under_roll is not None:
        return part & under_roll
    faces = np.zeros(part.shape, bool)
    faces[-1] = part[-1]
    return faces


def foreign_faces(inst: np.ndarray, fixed: np.ndarray, *, top_is_roll: bool, under_roll: np.ndarray | None = None):
    """Interphase voxels and their outward normals.

    A particle voxel is an interphase voxel when one of its 6 face neighbours is another particle
    instance, the fixed collector, or (``top_is_roll``) the roll: above the last layer, or the roll body
    over the voxels ``under_roll`` (:func:`roll_reach`). The normal
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
            nb = face_neighbour(inst, ax, shift, 0)
            other = part & (nb > 0) & (nb != inst)
            if fixed is not None:
                other |= part & face_neighbour(fixed, ax, shift, False)
            if ax == 0 and shift == -1 and top_is_roll:
                other |= roll_faces(part, under_roll)
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
            nb = face_neighbour(inst, ax, shift, -1)
            acc[ax] += np.where(nb != inst, -float(shift), 0.0).astype(np.float32)
    n = acc[:, mask]
    norm = np.sqrt((n ** 2).sum(axis=0))
    ok = norm > 0
    n[:, ok] /= norm[ok]
    return n


def particle_surface(inst: np.ndarray) -> np.ndarray:
    """Voxels of a particle with a face neighbour that is not the same particle: another particle,
    pore, binder, the collector, or nothing (beyond the first and last layer of axis 0: collector
    side and roll); axes 1 and 2 periodic."""
    part = inst > 0
    surf = np.zeros(inst.shape, bool)
    for ax in range(3):
        for shift in (1, -1):
            surf |= part & (face_neighbour(inst, ax, shift, 0) != inst)
    return surf


def _von_mises(s):
    p = (s[0] + s[1] + s[2]) / 3.0
    return np.sqrt(1.5 * ((s[0] - p) ** 2 + (s[1] - p) ** 2 + (s[2] - p) ** 2 + 2.0 * (s[3] ** 2 + s[4] ** 2 + s[5] ** 2)))


def contact_limit(s, n, sy, slope):
    """What slides or yields in a closed contact voxel, and its limit: ``(q (m,), limit (m,), τ (3, m))``.

    A frictional contact (``slope > 0``) obeys Coulomb friction on its contact plane (normal ``n``): the
    tangential traction ``τ = σ·n − (n·σ·n) n`` is bounded by ``c + μ p_n``, ``p_n = −n·σ·n`` the
    contact's normal pressure (≥ 0), μ the friction coefficient and ``c`` the cohesion — the law of the
    tangential contact force of DEM calendering models (|F_t| ≤ μ F_n: Cundall & Strack, Géotechnique 29 (1979) 47;
    Sangrós Giménez et al. 2019 for NMC-622) and of frictional contact in FE/FFT (Hüeber, Stadler &
    Wohlmuth, SIAM J. Sci. Comput. 30 (2008) 572); the law's constants are von Mises ones (``sy`` = √3 c,
    ``slope`` = √3 μ), so the limit is ``(sy + slope p_n)/√3`` and ``q = |τ|``. A contact without friction
    but with a yield stress (lithium metal: a cold-welded contact yields like the metal) is limited by its
    von Mises stress: ``q`` the von Mises stress, the limit ``sy``.
    """
    t = traction(s, n)
    s_nn = (t * n).sum(axis=0)
    tau = t - s_nn * n
    fric = slope > 0
    q = np.where(fric, np.sqrt((tau ** 2).sum(axis=0)), _von_mises(s))
    lim = np.where(fric, (sy + slope * np.maximum(-s_nn, 0.0)) / np.sqrt(3.0), sy)
    return q, lim, tau


def contact_return(s, n, sy, slope):
    """Stress (6, m) of closed contact voxels returned to :func:`contact_limit`.

    Frictional contacts: the shear traction on the contact plane is scaled back to its Coulomb limit; the
    normal traction and the stresses in the contact plane are kept. Only the contact plane slides: a contact
    pressed along its normal (uniaxial strain, no shear on the plane) stays elastic however large its stress
    deviator — a von Mises (Drucker–Prager) limit on the whole deviator would let it flow out sideways and
    the jammed packing densify at the friction stress. Yielding (frictionless) contacts: the deviator is
    scaled back to the von Mises limit (radial return)."""
    q, lim, tau = contact_limit(s, n, sy, slope)
    over = q > lim
    k = np.where(over, lim / np.maximum(q, 1e-30), 1.0)
    fric = slope > 0
    out = s.copy()
    # frictional: σ −= d⊗n + n⊗d with d the removed shear traction
    d = np.where(fric & over, 1.0 - k, 0.0) * tau
    out[0] -= 2.0 * d[0] * n[0]
    out[1] -= 2.0 * d[1] * n[1]
    out[2] -= 2.0 * d[2] * n[2]
    out[3] -= d[1] * n[2] + d[2] * n[1]
    out[4] -= d[0] * n[2] + d[2] * n[0]
    out[5] -= d[0] * n[1] + d[1] * n[0]
    # yielding: radial return of the deviator
    f = np.where(~fric, k, 1.0)
    p = (out[0] + out[1] + out[2]) / 3.0
    for c in range(3):
        out[c] = p + f * (out[c] - p)
    out[3:] *= f
    return out


def relieve_particle_residuals(stress, inst, bodies) -> None:
    """Start an increment's elastic particles from the stress their contacts set, without remap residue.

    ``stress`` (6, …) is modified in place: every voxel of ``bodies`` (a particle's elastic body — its
    voxels outside the contact interphase) takes its particle's mean stress (per ``inst`` id). A linear
    elastic body has one stress field for given surface tractions (Kirchhoff's uniqueness theorem) and
    keeps no memory; its mean stress is fixed by the tractions alone (``V σ̄ = ∮ sym(x ⊗ t) dA``). The
    stress carried from increment to increment is not that field once the remap has moved the voxels
    (push chains reshape the particles, rigid rotations leave the tensors unrotated): the difference is an
    incompatible, self-equilibrated residue that each solve only partly relaxes and that accumulates —
    on the benchmark cathode (seed 1, 48 µm, 2 µm voxels, 3.0 g/cm³) it was flat in the distance from the
    contacts and made 69 % of the active volume "crackable" (>100 MPa), 51 % without it. Starting from the
    mean, the increment's solve rebuilds the particle's elastic field from its contact tractions (the
    contact-zone stress then decays away from the contacts). The interphase voxels keep their stress (the
    contact law's state), as do plastic particles (lithium: its residual stress is real). The calender resets
    only the particles the last remap reshaped (:func:`reshaped_particles`): a particle moved as a whole carries
    its elastic field unchanged, and resetting it too put every increment's start out of equilibrium with the
    contacts — each solve rebuilt the field with less load, and a zero-strain re-solve lost 7–13 % of the roll
    pressure every time (stop 26, issue 16).

    Not a physical relaxation: a real secondary particle's contact zone flattens by local crushing of its
    primary crystallites (the compaction cap of the contact interphase), which caps the contact pressure but
    leaves the body carrying the elastic field of its present contact forces — the state the reset restores;
    the residue has no counterpart in a real particle (it comes from rounding the motion into whole cells).
    Nor is it what makes the answer depend on the number of increments (stop 27, benchmark cathode seed 1,
    48 µm, 2 µm voxels, 4 vs 16 steps, at 3.0 g/cm³: > 100 MPa 50.7 → 65.0 % resetting the reshaped
    particles, 62.1 → 74.6 % resetting none, 45.4 → 56.6 % resetting every particle; roll pressure 37.2 →
    46.6, 40.7 → 54.4, 35.6 → 45.2 MPa)."""
    ids = inst[bodies]
    if ids.size == 0:
        return
    _, mean = particle_mean_stress(stress, inst, bodies)
    for c in range(stress.shape[0]):
        stress[c][bodies] = mean[c][ids]


def reshaped_particles(source, inst, old_shape):
    """Per particle id (0 … max id): True for the particles whose voxels the remap did not all move by one
    common offset (``source``: flat index into the old grid of shape ``old_shape`` of the voxel now in each
    cell, -1 for none; ``inst`` the instance ids on the new grid; laterally periodic).

    A particle translated as a whole carries its stress field with it, still the elastic field of its
    contacts; one whose voxels moved by different offsets (the affine compression rounded into whole cells
    within it, a push chain through it) has a new shape and carries the remap's residue
    (:func:`relieve_particle_residuals`). The two grids differ in their number of layers only."""
    n = int(inst.max()) + 1 if inst.size else 1
    taken = (source >= 0) & (inst > 0)
    ids = inst[taken]
    new_pos = np.nonzero(taken)
    old_pos = np.unravel_index(source[taken], old_shape)
    out = np.zeros(n, bool)
    for ax in range(3):
        off = new_pos[ax] - old_pos[ax]
        if ax:  # periodic: the short way round
            off = off - source.shape[ax] * np.round(off / source.shape[ax]).astype(off.dtype)
        lo = np.full(n, np.iinfo(np.int64).max)
        hi = np.full(n, np.iinfo(np.int64).min)
        np.minimum.at(lo, ids, off)
        np.maximum.at(hi, ids, off)
        out |= hi > lo
    return out


def particle_mean_stress(stress, inst, mask):
    """Per particle id (0 … max id in ``mask``): the number of its ``mask`` voxels and its mean stress
    over them, ``(count (n,), mean (6, n))`` (float64; 0 for ids without voxels)."""
    ids = inst[mask]
    n = int(ids.max()) + 1 if ids.size else 1
    count = np.bincount(ids, minlength=n).astype(np.float64)
    mean = np.stack([np.bincount(ids, weights=stress[c][mask].astype(np.float64), minlength=n)
                     for c in range(stress.shape[0])]) / np.maximum(count, 1.0)
    return count, mean


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
    sy: np.ndarray  # friction limit at zero pressure, von Mises units (√3 × the shear cohesion c)
    code: np.ndarray
    slope: np.ndarray  # the limit grows by slope × normal pressure (√3 × the Coulomb friction coefficient μ)
    jam: np.ndarray = None  # jamming packing fraction of the compaction cap (NaN: no cap)
    crush: np.ndarray = None  # crushing strength σ_c of the compaction cap (MPa)
    rearr: np.ndarray = None  # rearrangement pressure at jamming P_j (MPa)
    rslope: np.ndarray = None  # rearrangement slope m (packing fraction per e-fold of pressure)
    bridges: tuple = ()  # label values of the pore-bridging phases (CBD, binder) that share the cap
    bond: np.ndarray = None  # bond strength p_t (MPa) of the bridges joined to these particles (bonded Cam-clay)
    per_area: np.ndarray = None  # True: a normal stiffness per contact area; lam, mu are per µm of voxel edge
    voxel_um: tuple = (1.0, 1.0, 1.0)  # voxel edges (µm) along the cell axes

    @classmethod
    def from_materials(cls, by_value: dict[int, object], *, voxel_um=None) -> "ContactLaw":
        """The law of each label value's contact material. A material with a normal stiffness per contact
        area k_n (``normal_stiffness_gpa_um``) gets the interphase modulus ``E = 2 h k_n`` at the voxel edge
        ``h`` along the contact normal (:meth:`moduli`): two interphase voxels in series, so the contact's
        normal spring per unit area is ``E/(2h) = k_n`` at every voxel size (``voxel_um``, one edge or three
        along the cell axes, is then required); others get their material's modulus."""
        lam, mu = np.zeros(256), np.zeros(256)
        sy = np.full(256, np.inf)
        code = np.zeros(256, np.uint8)
        slope = np.zeros(256)
        jam, crush = np.full(256, np.nan), np.zeros(256)
        rearr, rslope, bond = np.zeros(256), np.ones(256), np.zeros(256)
        per_area = np.zeros(256, bool)
        for v, mat in by_value.items():
            k_n = getattr(mat, "normal_stiffness_gpa_um", None)
            if k_n is not None:  # per µm of voxel edge: scaled by the edge along each voxel's normal
                if voxel_um is None:
                    raise InputError(f"contact material {mat.name!r} has a normal stiffness per area: "
                                     "the contact law needs the voxel size")
                lam[v], mu[v] = lame_from_young(2.0 * k_n * 1e3, mat.poisson_ratio)
                per_area[v] = True
            else:
                lam[v], mu[v] = lame_from_young(mat.youngs_modulus_gpa * 1e3, mat.poisson_ratio)
            if mat.yield_strength_mpa is not None:
                sy[v], code[v] = mat.yield_strength_mpa, PLASTIC
            if getattr(mat, "friction_coefficient", None) is not None:
                slope[v] = np.sqrt(3.0) * mat.friction_coefficient
            if getattr(mat, "jamming_fraction", None) is not None and getattr(mat, "crush_strength_mpa", None):
                jam[v], crush[v] = mat.jamming_fraction, mat.crush_strength_mpa
                if getattr(mat, "rearrangement_pressure_mpa", None):
                    rearr[v], rslope[v] = mat.rearrangement_pressure_mpa, mat.rearrangement_slope
                bond[v] = getattr(mat, "bridge_bond_mpa", None) or 0.0
        voxel = (1.0, 1.0, 1.0) if voxel_um is None else tuple(float(x) for x in np.broadcast_to(voxel_um, 3))
        return cls(lam, mu, sy, code, slope, jam, crush, rearr, rslope, bond=bond, per_area=per_area,
                   voxel_um=voxel)

    def moduli(self, vals, normal):
        """Lamé constants (MPa) of interphase voxels of label values ``vals`` with normals ``normal`` (3, m):
        a per-area law's scaled by the voxel edge along the normal, ``Σ n_i² h_i``."""
        lam, mu = self.lam[vals], self.mu[vals]
        if self.per_area is None or not self.per_area[vals].any():
            return lam, mu
        h_n = (np.asarray(normal, float) ** 2 * np.asarray(self.voxel_um)[:, None]).sum(axis=0)
        scale = np.where(self.per_area[vals], h_n, 1.0)
        return lam * scale, mu * scale

    def bridge_cap(self):
        """(jamming fraction, crushing strength, rearrangement pressure, rearrangement slope, cohesion) of
        the bridges' cap: the capped particle phase's (the bridges join those particles; they give way
        when the particles move)."""
        v = int(self.capped[0])
        return (float(self.jam[v]), float(self.crush[v]), float(self.rearr[v]), float(self.rslope[v]),
                float(self.sy[v]) if np.isfinite(self.sy[v]) else 0.0)

    def bridge_yield(self):
        """(bond strength p_t (MPa), critical state slope M) of the bridges' bonded Cam-clay ellipse
        (:func:`._interface.bridge_return`): the capped particle phase's bond and, from its friction coefficient
        ``μ_f = tan φ``, the slope of Mohr–Coulomb's triaxial compression meridian ``M = 6 sin φ/(3 − sin φ)`` (the
        bridges slide with the particles they join)."""
        v = int(self.capped[0])
        sin_phi = np.sin(np.arctan(self.slope[v] / np.sqrt(3.0)))
        return float(self.bond[v]), float(6.0 * sin_phi / (3.0 - sin_phi))

    def cap(self, phi, vals):
        """Compaction pressure (MPa) and tangent of contacts of label values ``vals`` at packing ``phi``."""
        return compaction_pressure(phi, self.jam[vals], self.crush[vals], self.rearr[vals], self.rslope[vals])

    @property
    def increment_strain(self) -> float | None:
        """Largest thickness strain of one load increment with the compaction cap (None: no cap).

        The cap is judged on the packing fraction expected at the end of the increment (affine) and
        the stiffness is a secant: both are accurate while the pressure of the steepest stage changes
        by at most ~e-fold in an increment, i.e. while φ grows by less than the rearrangement slope
        ``m``: a compaction strain ``m/φ_j`` (0.054 for NCM). Without that, the state at a target
        depends on how many increments reached it."""
        v = self.capped
        v = v[self.rearr[v] > 0] if v.size else v
        return float(np.min(self.rslope[v] / self.jam[v])) if v.size else None

    @property
    def capped(self) -> np.ndarray:
        """Label values whose contacts have a compaction cap."""
        return np.flatnonzero(np.isfinite(self.jam)) if self.jam is not None else np.zeros(0, int)


def compaction_pressure(phi, jam, crush, rearr=0.0, slope=1.0):
    """Compaction cap of a contact (MPa): the pressure at which it crushes, and its tangent (MPa).

    Two stages, as in the compaction of granules (NCM secondary particles are granules of primary
    crystallites): below the jamming packing fraction ``jam`` the particles around the contact rearrange
    into the neighbouring pores against friction and the binder, and the packing fraction grows with the
    logarithm of the pressure (stage I of the density–log-pressure compaction diagram of granules: Frey &
    Halloran, J. Am. Ceram. Soc. 67 (1984) 199; Reed, Principles of Ceramic Processing, 2nd ed. 1995,
    ch. 20): ``P = P_j exp((φ − jam)/m)`` with ``P_j = rearr`` the pressure at which rearrangement ends and
    ``m = slope`` the packing-fraction gain per e-fold of pressure. Above it the powder compacts by particle
    deformation and fracture, Heckel's law ``ln(1/(1 − φ)) = K P + A`` with ``K = 1/(3 σ_c)`` (Heckel 1961),
    continued from ``P_j`` at ``φ = jam``: ``P = P_j + 3 σ_c ln((1 − jam)/(1 − φ))``. The law is continuous
    and its slope grows at jamming (the pressure–density curve is convex). The tangent is the modulus
    ``dP/d(−ε_v) = φ dP/dφ`` (a volumetric strain ``ε_v`` of the packing changes φ by ``−φ ε_v``). NaN
    ``jam`` (no cap): infinite pressure. ``rearr = 0``: no pressure below jamming. ``crush`` infinite: no
    crushing above jamming (a rearrangement-only cap, for particles whose deformation the voxels resolve).

    Parameters
    ----------
    phi : array of float
        Local packing fraction of the particle skeleton (see :func:`packing_fraction`).
    jam, crush : array of float
        Jamming fraction and crushing strength (MPa) per voxel.
    rearr, slope : array of float
        Rearrangement pressure at jamming ``P_j`` (MPa) and rearrangement slope ``m`` (> 0) per voxel.
    """
    phi = np.asarray(phi, float)
    capped = np.isfinite(jam)
    j = np.where(capped, jam, 0.0)
    pj = np.where(capped, np.broadcast_to(np.asarray(rearr, float), phi.shape), 0.0)
    m = np.maximum(np.broadcast_to(np.asarray(slope, float), phi.shape), 1e-12)
    over = capped & (phi > j)
    ph = np.clip(phi, 0.0, 1.0 - 1e-6)
    p_r = pj * np.exp(np.minimum(ph - j, 0.0) / m)
    c = np.where(over, crush, 0.0)  # an infinite σ_c (no crushing above jamming) only where it applies
    p_h = 3.0 * c * np.log(np.maximum(1.0 - j, 1e-12) / (1.0 - ph))
    p = np.where(over, pj + p_h, p_r)
    k = np.where(over, 3.0 * c * ph / (1.0 - ph), p_r * ph / m)
    return np.where(capped, p, np.inf), np.where(capped, k, np.inf)


def packing_fraction(skeleton: np.ndarray, region: np.ndarray, width: int) -> np.ndarray:
    """Local packing fraction of the particle skeleton: the share of ``skeleton`` voxels among the
    ``region`` (coating) voxels of a ``width``-voxel cube around each voxel (periodic in-plane; the
    cube is cut at the coating's faces, so a voxel next to the collector or the roll sees only
    coating)."""
    w = max(int(width) | 1, 1)
    mode = ("constant", "wrap", "wrap")
    num = ndimage.uniform_filter((skeleton & region).astype(np.float32), size=w, mode=mode)
    den = ndimage.uniform_filter(region.astype(np.float32), size=w, mode=mode)
    return np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def jamming_width(inst: np.ndarray, lab: np.ndarray, values) -> int:
    """Width (voxels) of the neighbourhood over which a contact's packing is judged: two mean
    particle diameters (volume-weighted equivalent diameter of the instances of ``values``), the
    scale over which a particle finds room to move aside (odd, ≥ 3)."""
    sel = np.isin(lab, list(values)) & (inst > 0)
    if not sel.any():
        return 3
    vol = np.bincount(inst[sel]).astype(float)
    vol = vol[vol > 0]
    d = (6.0 * vol / np.pi) ** (1.0 / 3.0)
    return max(int(round(2.0 * float((vol * d).sum() / vol.sum()))) | 1, 3)


def crush_test(start, k_el, cap, trace_de):
    """The compaction cap's return mapping on a solve's strain: ``(crushing (m,), f (m,))``.

    A capped voxel of start stress ``start`` (6, m) and elastic bulk modulus ``k_el`` crushes when its
    elastic trial pressure ``p_start − k_el tr(Δε)`` exceeds ``cap`` (a perfectly plastic cap on the mean
    stress: its pressure ends on the cap). ``f`` is its secant factor, the fraction of the elastic pressure
    increment that reaches the cap, ``(cap − p_start)/(p_tr − p_start)`` in [``SECANT_FLOOR``, 1] — a
    crushing granule softens isotropically (:func:`crushed_moduli`); 1 where it does not crush."""
    p_start = -(start[0] + start[1] + start[2]) / 3.0
    dp = -k_el * trace_de
    crushing = p_start + dp > cap
    f = np.where(crushing, np.clip((cap - p_start) / np.maximum(dp, 1e-30), SECANT_FLOOR, 1.0), 1.0)
    return crushing, f


def crushed_moduli(lam, mu, crushing, f):
    """Lamé constants of capped voxels in a solve: a crushing one is softened isotropically by its secant
    factor ``f`` (bulk and shear: a crushing granule gives way as a whole); the others keep theirs."""
    return np.where(crushing, f * lam, lam), np.where(crushing, f * mu, mu)


def crushed_start(start, cap, crushing, k_t, trace):
    """Start stress (6, m) of capped voxels in a solve: a crushing one starts from its deviator at the pressure
    that puts it on the cap at the volume change ``trace`` (the previous solve's) with its bulk modulus
    ``k_t`` in this solve, ``cap + k_t trace``, so it ends on the cap when the solve's volume change repeats
    the previous one's (the passes' fixed point)."""
    out = np.array(start, float, copy=True)
    excess = np.where(crushing, -(out[0] + out[1] + out[2]) / 3.0 - (cap + k_t * trace), 0.0)
    out[:3] += excess
    return out


def friction_slip(trial, normal, sy, slope, on):
    """The friction return of elastic trial stresses (6, m) as a start-stress correction: ``contact_return(trial)
    − trial`` for the voxels ``on`` (closed frictional contacts), 0 elsewhere.

    The passes of :func:`solve_with_contacts` start a closed frictional contact from its start stress plus the
    previous pass's correction, so that their fixed point is the return mapping of the increment's elastic
    trial (the shear traction on its Coulomb limit) *in equilibrium*, as the compaction cap's re-based start
    pressure does for the cap. The correction is traceless with no normal traction (it removes shear on the
    contact plane), so the open/closed test and the cap are unchanged by it. Returned once after the last
    solve instead (stop 25), the limit was met without equilibrium and every increment started from an
    out-of-balance force that the next solve relaxed: a zero-strain re-solve of a calendered cathode lost 6–8 %
    of its roll pressure to it (seed 1, 48 µm, 3.0 g/cm³; issue 16)."""
    out = np.zeros_like(trial)
    if on.any():
        out[:, on] = contact_return(trial[:, on], normal[:, on], sy[on], slope[on]) - trial[:, on]
    return out


def solve_with_contacts(make_solver, d_e, lam, mu, sy, code, s_old, *, lab, inst, fixed, gap, law: ContactLaw,
                        nt: int, tol_active: float, max_passes: int, tol, maxiter, top_is_roll: bool = True,
                        override=None, phi=None, interphase=None, hourglass_old=None):
    """Solve one increment with the unilateral contact interphase (primal active set).

    ``lam``, ``mu``, ``sy``, ``code``, ``s_old`` are the cell arrays (the coating in the first ``nt``
    layers, the roll above); they are modified in place for the interphase voxels. ``gap`` (coating
    shape, float32) is the carried normal gap of open interphase voxels (> 0), or the overlap (≤ 0) of
    one that closed after its increment's last solve; NaN = closed.
    ``override`` = (mask, λ, μ): interphase voxels in ``mask`` (coating grid) take these elastic
    constants instead of the law's (intact membrane shells). ``phi`` (coating grid): the local
    packing fraction of the skeleton (:func:`packing_fraction`) for the compaction cap of the
    law's capped phases (None: no cap). ``interphase``: the increment's ``(mask, normal)`` of
    :func:`foreign_faces` for these ``inst``, ``fixed`` and ``top_is_roll``, when the caller has it (None: found here).
    ``hourglass_old``: the carried hourglass forces of the cell (``MechanicsSolver.solve_increment``); every pass
    starts from them (an open voxel, without stiffness, carries none).

    Compaction cap: a closed interphase voxel (and a pore-bridging CBD/binder voxel) whose elastic trial
    pressure exceeds :func:`compaction_pressure` (plus the cohesion) crushes, below jamming (rearrangement,
    a low pressure) as above it (Heckel): a perfectly plastic cap on its mean stress. The crushing set is
    part of the active set: each pass solves a crushing voxel with its secant stiffness (:func:`crush_test`,
    :func:`crushed_moduli`) from a start pressure re-based on the previous pass's volume change
    (:func:`crushed_start`), so the passes' fixed point has crushed contacts on their caps *in equilibrium*;
    a crushing voxel still off its cap by more than ``SECANT_CHANGE`` counts as a change. (Before, the
    pressure left above the cap by the floored secant was returned after the passes and relaxed once, and
    returned again unrelaxed, issue 16.) A tangent without bulk stiffness (the perfectly plastic cap's
    consistent one) was tried first: it leaves the corner nodes of crushing surface voxels all but free, and
    the benchmark cathode's solves returned garbage displacements (active mean von Mises 10³–10⁴ MPa, stop
    25). A crushing voxel keeps a stiffness ≥ ``SECANT_FLOOR`` of its elastic one: it is never a void, and a
    particle held only by crushing contacts does not float.

    The passes end when at most ``tol_active`` of the interphase voxels change state (open/closed,
    crushing or not, or a secant factor by more than ``SECANT_CHANGE``) or after ``max_passes`` solves.
    **The increment's state is its last solve's**: the last test's changes are not applied to the stress;
    they are counted (``unresolved``, with the share of the interphase's normal load they carry,
    ``unresolved_load``) and handed to the next increment through the state it starts from (an overlap
    as a negative gap; a closed voxel in tension or above its cap with its solved stress, which the next
    increment's first test sees). The friction return (:func:`contact_return`) is part of the passes for
    frictional contacts (:func:`friction_slip`: a contact whose shear traction it moves by more than
    ``SECANT_CHANGE`` of its limit counts as a change) and is applied once more after the last solve, which
    then moves little; a yielding (lithium) contact is returned after the last solve only.

    Returns ``(solution, gap_new, mask, info)``: ``gap_new`` is the gap (or pending overlap) after the
    increment (NaN where closed, on the coating grid), ``mask`` the interphase voxels; ``info`` counts
    interphase voxels, open and crushing ones, passes, ``failed_passes`` (re-solves that stalled; the
    previous pass is kept), ``unresolved`` and ``unresolved_load``, ``residual_load`` and ``locked_load`` (how far
    the last solve is from the law: :func:`law_residual`), and CG and Newton iterations (all solves, failed ones
    included).

    The passes do not reach their fixed point on a calendered cathode (stop 27, benchmark cathode seed 1, 48 µm,
    2 µm voxels, 14 increments): every increment uses all 5 passes; per pass 500–1700 closed contacts (30–60 %
    of the interphase) move their friction correction by more than ``SECANT_CHANGE`` of their limit, 50–400
    voxels flip open/closed and up to ~500 crushing ones move their secant factor or sit off their cap (the
    bridges: 10–360 CBD voxels, a negligible load) — the initial-stiffness iteration
    of the friction and cap returns converges linearly (the law residual falls by ~0.8 per pass) and the edge
    voxels chatter until locked. With more passes the residual falls (median 0.08 at 5, 0.03 at 10, 0.02 at 20)
    but the lock holds more pressed voxels open (``locked_load`` 0.01–0.04 → 0.03–0.16), so the answers move
    with the pass budget (roll pressure at 3.0 g/cm³: 29.8 / 33.2 / 27.0 MPa at 5 / 10 / 20 passes) and with
    any change of the iterates (CG tolerance 2e-4 / 1e-4 / 5e-5 at 5 passes: 35.2 / 29.8 / 37.2 MPa; without
    contacts the same tolerances move it by < 0.3 %). Tried and dropped (stop 27): a softer pass stiffness
    (the floor for crushing voxels, ``SLIDE_FACTOR`` shear for sliding ones, start re-based on the law's stress
    — diverges: below the closed branch's tangent the elastic unloading overshoots), Aitken-relaxation of the
    law residual (ω collapses to its lower bound: the residual oscillates), over-relaxing the friction
    correction (ω 1.7: larger residual), an edge state for the locked voxels instead of the lock (held with their
    closed stiffness at the law's stress: diverged on the zero-strain re-solve case; closed with the normal gap
    that zeroes their traction: roll pressure at 5 vs 10 passes still 9–11 % apart at 3.4–3.8 g/cm³).
    """
    mask, normal = interphase if interphase is not None else foreign_faces(
        inst, fixed[:nt] if fixed is not None else None, top_is_roll=top_is_roll)
    idx = np.nonzero(mask)
    vals = lab[idx]
    c_lam, c_mu = law.moduli(vals, normal)
    c_sy = law.sy[vals]
    c_slope = law.slope[vals]
    if override is not None:
        om = override[0][idx]
        c_lam = np.where(om, override[1], c_lam)
        c_mu = np.where(om, override[2], c_mu)
        c_sy = np.where(om, np.inf, c_sy)
    g0 = gap[idx].astype(float)
    # carried state: a finite gap g (strain units) is an open contact (g > 0) or a pending closure (g ≤ 0: the
    # overlap of a contact that closed after the last solve of its increment); NaN is closed with its stress
    carried = np.isfinite(g0)
    g0 = np.where(carried, g0, 0.0)
    is_open = carried & (g0 > 0)
    # a contact formed by the remap (was bulk or pore before) starts closed with its carried stress
    base_stress = s_old[(slice(None),) + idx].astype(float)
    q0, lim0, _ = contact_limit(base_stress, normal, c_sy, c_slope)
    sliding = q0 >= 0.99 * lim0
    k_c = c_lam + 2.0 * c_mu / 3.0
    mu_eff = np.where(sliding, SLIDE_FACTOR * c_mu, c_mu)
    lam_eff = k_c - 2.0 * mu_eff / 3.0
    # the start stress of a voxel while closed: its carried stress, or — for a carried gap — the eigenstress
    # C:(g n⊗n) that closes it (tensile for g > 0: the gap closes first; compressive for an overlap g ≤ 0)
    closed_start = base_stress.copy()
    if carried.any():
        closed_start[:, carried] = _isotropic(lam_eff[carried], mu_eff[carried], g0[carried], normal[:, carried])
    # compaction cap: crush pressure per interphase voxel (inf where the phase has none)
    if phi is not None and law.jam is not None and np.isfinite(law.jam[vals]).any():
        p_cap, _ = law.cap(phi[idx], vals)
        p_cap = p_cap + np.where(np.isfinite(c_sy), c_sy, 0.0)  # the cohesion is the floor
    else:
        p_cap = np.full(vals.shape, np.inf)
    # the first pass is elastic: a contact that crushes from the start (its carried stress above the cap) does
    # from the second on. Starting from the crushing set at once made the first solve stall where many crushing
    # voxels, without bulk stiffness, meet (demo cathode, degree 3 and 6), and a stalled first pass has no
    # previous pass to fall back on
    crushing, f = np.zeros(vals.shape, bool), np.ones(vals.shape)
    bridge = _Bridges(lab, law, phi, lam, mu, s_old) if (phi is not None and law.bridges) else None
    # the voxels whose stiffness and start stress the passes set, and whose stress the limits return
    touched = idx if bridge is None else tuple(np.concatenate([a, b]) for a, b in zip(idx, bridge.idx))
    on = (slice(None),) + touched
    passes = failed_passes = 0
    cg = newton = 0
    u_prev = None
    # state changes of each voxel in this increment's passes. A voxel open on its carried gap starts open by
    # that state, not by a solve: its first closing is the contact growing, not a correction, and is not
    # counted. Counted, the second pass's overshoot (a growing contact's first pass closes too wide, the
    # second reopens some voxels inside it) used up the lock's allowance, and voxels inside the contact were
    # frozen open at their next closing: holes at zero stress (Hertz R = 16 with fine smoothing degree 6: at
    # the centre, peak 142.8 vs 181.4 MPa; degree 3 had its hole elsewhere, R = 20 two at the centre)
    flips = np.where(is_open, -1, 0).astype(np.int8)
    crush_flips = np.zeros(vals.shape, np.int8)
    tr_prev = np.zeros(vals.shape)  # the previous solve's volume change of each voxel (crushed_start)
    # the friction return of the previous pass's elastic trial, moved into the start of the next (friction_slip)
    frictional = c_slope > 0
    slip = np.zeros((6, vals.size))
    while True:
        passes += 1
        c_lam_p, c_mu_p = crushed_moduli(lam_eff, mu_eff, crushing, f)
        start = crushed_start(closed_start + slip, p_cap, crushing, f * k_c, tr_prev)
        lam[idx] = np.where(is_open, 0.0, c_lam_p)
        mu[idx] = np.where(is_open, 0.0, c_mu_p)
        sy[idx] = np.inf
        code[idx] = ELASTIC
        # closed voxels that were open at the start close their gap first: eigenstress C:(g n⊗n); crushing
        # ones start at their cap
        s_old[(slice(None),) + idx] = np.where(is_open, 0.0, start)
        if bridge is not None:
            bridge.set(lam, mu, s_old)
        # from the previous pass's displacement: only a few interphase voxels changed, so Newton starts
        # near the answer (the tolerance stays relative to the out-of-balance force at Δu = 0). A copy:
        # the solver takes its u0 over, and the previous pass's displacement is the stalled re-solve's fallback
        try:
            trial = make_solver(lam, mu, sy, code).solve_increment(
                d_e, stress_old=s_old, tol=tol, maxiter=maxiter, u0=None if u_prev is None else u_prev.copy(),
                hourglass_old=hourglass_old)
        except ConvergenceError as exc:
            if passes == 1:
                raise
            # a re-solve whose softened contacts leave a particle all but floating can stall: keep the
            # previous pass and the state, stiffness and start stress it was solved with
            cg += exc.cg_iterations
            failed_passes += 1
            lam[touched], mu[touched], s_old[on] = solved_with[:3]
            is_open, crushing, f = solved_with[3:]
            if bridge is not None:
                bridge.crushing, bridge.f = bridge_solved
            break
        sol = trial
        solved_with = (lam[touched].copy(), mu[touched].copy(), s_old[on].copy(), is_open, crushing, f)
        bridge_solved = None if bridge is None else (bridge.crushing, bridge.f)
        cg += sol.cg_iterations
        newton += sol.newton_iterations
        de = sol.strain[(slice(None),) + idx].astype(float)
        # the contact law's test on the solve's strain, for open and closed voxels alike: crushing (the cap's
        # return mapping on the elastic trial) and the trial normal traction of the closed state — for a
        # voxel solved closed in the state the test finds, exactly its solved n·σ·n; for one solved open,
        # what it would carry if closed. (One criterion for both states: the old one tested open voxels on
        # their normal strain, closed ones on their stress, which disagree through the lateral strains)
        tr = de[0] + de[1] + de[2]
        now_crushing, f_new = crush_test(closed_start, k_c, p_cap, tr)
        t_lam, t_mu = crushed_moduli(lam_eff, mu_eff, now_crushing, f_new)
        trial = crushed_start(closed_start, p_cap, now_crushing, f_new * k_c, tr) + isotropic_stress(t_lam, t_mu, de)
        t_nn = normal_component(trial, normal)
        new_s = sol.stress[(slice(None),) + idx].astype(float)
        off_cap = np.abs(-(new_s[0] + new_s[1] + new_s[2]) / 3.0 - p_cap) > SECANT_CHANGE * np.abs(p_cap)
        now_open = t_nn > 0
        # a voxel that changed state and back and wants to change again (open → closed → open → closed) sits at
        # the edge of contact: each state's solve says the other. It is locked (one correction back is allowed:
        # the first pass overshoots at a growing contact's rim): it may open, never close again — kept closed in
        # the state it was solved with (until stop 24), it carried that solve's tension (demo cathode: 97–418
        # voxels per increment, median ≤ 18 MPa, at most 685 MPa), and the demo's crackable volume at 3.0 g/cm³
        # spread 27.2–34.6 % over smoothing degree 3/6 and contact tolerances (30.1–33.0 % locked open). Left to alternate,
        # 100–130 voxels of the benchmark cathode flipped in every pass however many passes ran (12 tried), and each
        # increment ended with an arbitrary part of them open and their stress dropped — a loss per increment,
        # so the stress at a density depended on the number of increments (issue 16: seed 1, 16x4 vs 16x8,
        # crackable >100/>150 MPa at 3.0 g/cm³ 40.2/21.5 vs 30.6/14.6 %)
        flips += now_open != is_open
        now_open = np.where(flips > 2, is_open | now_open, now_open)
        # the same for the crushing set: at the edge of crushing each state's solve says the other
        crush_flips += now_crushing != crushing
        now_crushing = np.where(crush_flips > 2, crushing, now_crushing) & ~now_open
        # the friction return of this pass's trial: the next pass's start correction; a closed contact whose
        # shear traction it moves by more than SECANT_CHANGE of its limit counts as a change
        slip_new = friction_slip(trial, normal, c_sy, c_slope, frictional & ~now_open)
        _, lim_t, _ = contact_limit(trial, normal, c_sy, c_slope)
        slid = np.sqrt((traction(slip_new - slip, normal) ** 2).sum(axis=0)) > SECANT_CHANGE * lim_t
        moved = (now_open != is_open) | (now_crushing != crushing) | (
            now_crushing & crushing & ((np.abs(f_new - f) > SECANT_CHANGE * f) | off_cap)) | (slid & ~now_open)
        changed = int(moved.sum())
        if bridge is not None:
            changed += bridge.update(sol.strain)
        if changed <= tol_active * max(1, is_open.size) or passes >= max_passes:
            break
        is_open, crushing, f, tr_prev, slip = now_open, now_crushing, f_new, tr, slip_new
        # the next pass starts here; the previous solution is kept as the fallback of a stalled re-solve
        u_prev = sol.displacement
    # state after the increment: the last solve's. An open voxel carries its gap t_nn/M (> 0); one solved open
    # that the last test closes carries its overlap (t_nn/M ≤ 0: the next increment starts it with that
    # compression); one solved closed carries its stress (NaN), in tension or above its cap where the last test
    # says it opens or crushes (unresolved: the next increment's first test sees it)
    g_new = np.full(gap.shape, np.nan, np.float32)
    g_new[idx] = np.where(is_open, t_nn / np.maximum(lam_eff + 2.0 * mu_eff, 1e-30), np.nan)
    # what the last test would change, not solved: its voxels and the share of the contacts' normal load that
    # changes with them (the test state's normal traction against the solved one)
    unresolved = (now_open != is_open) | (now_crushing != crushing)
    t_solved = normal_component(sol.stress[(slice(None),) + idx].astype(float), normal)
    t_test = np.where(now_open, 0.0, t_nn)
    load = np.abs(t_solved).sum()
    unresolved_load = float(np.abs(t_test - t_solved)[unresolved].sum() / load) if load > 0 else 0.0
    # the law's stress: the trial returned to the friction/yield limit (frictional contacts: this pass's return,
    # slip_new; yielding ones here)
    closed_law = trial + slip_new
    limited = np.isfinite(c_sy) & ~frictional & ~now_open
    closed_law[:, limited] = contact_return(trial[:, limited], normal[:, limited], c_sy[limited], c_slope[limited])
    residual_load, locked_load = law_residual(sol.stress[(slice(None),) + idx].astype(float), closed_law, now_open,
                                              t_nn, flips > 2, normal)
    # the friction limit: closed contacts return to it after the last solve too (what the passes left over the
    # limit, within SECANT_CHANGE of it for frictional contacts; yielding ones only here: their out-of-balance
    # force enters the next increment through its start stress). A relaxation solve after the passes (as the
    # cap's until stop 24) cost a third of the demo cathode's CG; the return inside the passes (stop 26) saved CG
    # on the benchmark cathode (seed 1, 48 µm: 761 vs 1025 CG to 3.0 g/cm³)
    closed = ~is_open & np.isfinite(c_sy)
    if closed.any():
        cs = (slice(None),) + tuple(i[closed] for i in idx)
        sig = sol.stress[:, :nt]
        sig[cs] = contact_return(sig[cs].astype(float), normal[:, closed], c_sy[closed], c_slope[closed])
    info = {"interphase": int(mask.sum()), "open": int(is_open.sum()), "passes": passes, "cg": cg,
            "newton": newton, "crushing": int(crushing.sum()), "failed_passes": failed_passes,
            "unresolved": int(unresolved.sum()), "unresolved_load": unresolved_load, "residual_load": residual_load,
            "locked_load": locked_load}
    return sol, g_new, mask, info


#: ``CalenderOptions.contact_law``: the isotropic interphase solved by passes (:func:`solve_with_contacts`), the
#: cracked plane solved inside the solver's Newton (:func:`solve_with_planes`), or "auto": the plane wherever every
#: particle phase has a crack form (:func:`contact_law_used`)
CONTACT_LAWS = ("auto", "passes", "plane")


def has_crack_form(law: ContactLaw, vals, codes) -> bool:
    """Whether contacts of particle label values ``vals`` (solver law codes ``codes``) have the cracked plane's form:
    a normal stiffness per contact area (``normal_stiffness_gpa_um``, NCM_contact) on elastic particles. Lithium
    contacts (a yielding interphase, membrane shells) have none: the passes solve them."""
    return law.per_area is not None and bool(law.per_area[vals].all()) and bool((np.asarray(codes) == ELASTIC).all())


def contact_law_used(requested: str, law: ContactLaw, vals, codes) -> str:
    """The contact law an electrode is solved with: ``requested`` (``CalenderOptions.contact_law``) unless "auto",
    which is "plane" where the contacts of every particle phase present (label values ``vals``, codes ``codes``) have
    a crack form (:func:`has_crack_form`: the NCM cathode) and "passes" where they do not (the LMP anode)."""
    if requested != "auto":
        return requested
    return "plane" if has_crack_form(law, vals, codes) else "passes"


def cracked_side(inst, held, *, top_is_roll: bool):
    """The voxels that hold a contact's crack (:func:`crack_set`): of two touching particles only the one with the
    higher instance id (a particle voxel with a face neighbour of a lower id), and every particle voxel on the
    ``held`` voxels (collector, with ``neck_contacts`` the CBD/binder) or (``top_is_roll``) under the roll.

    One side: every node of the contact face then belongs to the other particle's bulk. With a crack in both voxels
    of a face (as :func:`foreign_faces` makes the isotropic interphase, 2 k_n each) the nodes between two open cracks
    have no stiffness along the normal but the crack's ``KEPT`` and the hourglass control; with a soft stand-in
    (0.1 of the bulk μ) CG stagnated on the bench cathode. Measured later with the bulk stand-in
    (:func:`._interface.stand_in`; small test cathode, 2.6 / 3.0 g/cm³, stop 28): both sides converge, roll pressure
    77 / 194 MPa with 6631 CG, one side 122 / 355 MPa with 2393 CG (the passes: 11 / 47 MPa, 1004 CG). One side is
    kept for its CG, but it is not symmetric: which particle holds the crack follows the instance numbering, and
    the answer depends on it. (Those figures had the particles' bulk in the contact zone, which welded them at the
    contacts' rims; :func:`solve_with_planes` now softens it.)"""
    part = inst > 0
    keep = np.zeros(inst.shape, bool)
    for ax in range(3):
        for shift in (1, -1):
            nb = face_neighbour(inst, ax, shift, 0)
            keep |= part & (nb > 0) & (nb < inst)
            if held is not None:
                keep |= part & face_neighbour(held, ax, shift, False)
    if top_is_roll:
        keep[-1] |= part[-1]
    return keep


def crack_set(lab, law: ContactLaw, interphase, gap, code, cell_shape, phi=None):
    """The :class:`._interface.CrackSet` of an increment's interphase (``interphase`` = ``(mask, normal)`` of
    :func:`foreign_faces` on the coating grid of ``lab`` and ``gap``; ``code`` the cell's law codes, flat indices
    into the cell ``cell_shape``, the coating in its first layers).

    Each voxel is its particle's bulk (the solver's λ, μ at the voxel) in series with a crack of the face's normal;
    ``interphase`` holds one voxel per contact face (:func:`cracked_side`), so the crack has the law's normal
    stiffness per area ``k_n`` (``ContactLaw`` keeps per-area laws as ``E = 2 k_n`` per µm of voxel edge, two
    isotropic interphase voxels in series), and ``k_t = k_n`` — an assumption (Mindlin's ratio
    ``2(1 − ν)/(2 − ν)`` ≈ 0.82 for ν 0.3 is the elastic spheres' value, not verified for rough NCM contacts).
    Coulomb friction ``μ_f = slope/√3`` and cohesion ``c = sy/√3`` (the law's von Mises units). ``gap`` (coating
    grid, strain units, NaN = closed) gives open cracks their opening ``g h_n``. ``phi`` (coating grid): the local
    packing fraction for the compaction cap of capped phases, here a limit on the crack's normal pressure
    (:func:`compaction_pressure` plus the cohesion, as :func:`solve_with_contacts` caps the interphase's mean
    pressure; None: no cap) and for the pore-bridging voxels (``law.bridges``, CBD/binder), which the set carries as
    :class:`._interface.CappedBridges` with the passes' cap (:func:`bridge_caps`) as the compaction pressure of their
    bonded Cam-clay ellipse (:meth:`ContactLaw.bridge_yield`). Only per-area laws (NCM_contact):
    a lithium contact (yielding, membrane shells) has no crack form here (InputError)."""

    mask, normal = interphase
    idx = np.nonzero(mask)
    vals = lab[idx]
    if not has_crack_form(law, vals, code[idx]):
        raise InputError("contact_law='plane' needs contact materials with a normal stiffness per area "
                         "(normal_stiffness_gpa_um, e.g. NCM_contact) on elastic particles; lithium contacts "
                         "(yielding, membrane shells) are solved by the passes only (contact_law='passes')")
    lam_c, mu_c = law.lam[vals], law.mu[vals]
    k = 0.5 * mu_c * (3.0 * lam_c + 2.0 * mu_c) / (lam_c + mu_c)  # the law's E per µm is 2 k_n
    h_n = (normal ** 2 * np.asarray(law.voxel_um)[:, None]).sum(axis=0)
    g = gap[idx].astype(float)
    g = np.where(np.isfinite(g) & (g > 0), g * h_n, 0.0)
    cohesion = law.sy[vals] / np.sqrt(3.0)
    cap = np.full(vals.shape, np.inf)
    if phi is not None and law.jam is not None and np.isfinite(law.jam[vals]).any():
        cap = law.cap(phi[idx], vals)[0] + np.where(np.isfinite(law.sy[vals]), law.sy[vals], 0.0)
    flat = np.ravel_multi_index(idx, cell_shape)
    bridges = None
    if phi is not None and law.bridges:
        b_idx, b_cap = bridge_caps(lab, law, phi)
        bridges = CappedBridges(np.ravel_multi_index(b_idx, cell_shape), b_cap, *law.bridge_yield())
    return CrackSet(flat, normal, h_n, k, k, law.slope[vals] / np.sqrt(3.0), cohesion, g, cap, bridges)


def solve_with_planes(make_solver, d_e, lam, mu, sy, code, s_old, *, lab, inst, held, gap, law: ContactLaw,
                      interphase, tol, maxiter, hourglass_old=None, phi=None):
    """Solve one increment with the cracked-plane interphase (``CalenderOptions.contact_law = "plane"``).

    The interphase voxels (``interphase`` = ``(mask, normal)`` of :func:`foreign_faces` for ``inst`` and ``held``
    with the roll on top, coating grid) on one side of each contact (:func:`cracked_side`) keep their particle's
    bulk and carry a frictional crack (:func:`crack_set`, :mod:`._interface`); one solve, whose Newton
    finds the open/stick/slip set with the displacements (``MechanicsSolver.solve_increment(cracks=)``): no passes,
    no lock, the law holds exactly at every voxel (``residual_load`` 0) and the equilibrium to ``tol``. The state
    carried to the next increment is the stress (a closed crack's tractions) and ``gap`` (an open crack's opening
    in strain units of the voxel's thickness along its normal; NaN = closed), as the passes carry it. The cell
    arrays are not modified. ``phi``: the packing fraction for the compaction cap, a limit on each crack's normal
    pressure (:func:`crack_set`). The interphase voxels of both sides keep the law's soft isotropic moduli (as the
    passes' interphase, ``E_c = 2 h k_n``) under the one-sided crack: with the particles' bulk there the contacts'
    rims welded the particles through shared nodes (roll pressure 7–9× the passes', independent of k_n and the
    cap; stop 28, s28-stiff). The calender gives the particle faces toward CBD/binder cracks too (``held``), and the
    bridges themselves are plastic on a bonded Cam-clay ellipse whose compaction pressure is the passes' cap, inside
    the same Newton (:class:`._interface.CappedBridges`, :func:`._interface.bridge_return`, :func:`bridge_caps`):
    uncapped, the CBD on the collector took 97 % of the load at 280–715 MPa and propped the particles up, through
    the edge and corner nodes it shares with particle cores past the faces' cracks (stop 30, s30-hot); with a cap on
    its mean stress alone its deviator stayed elastic (von Mises 463 MPa; stop 31, s31-cap). Lithium contacts
    raise.

    Returns ``(solution, gap_new, mask, info)`` like :func:`solve_with_contacts` (``passes`` 1; ``sliding`` the
    cracks at their Coulomb limit, ``crushing`` those on their cap).
    """

    mask, normal = interphase
    # the contact zone is soft in every direction on both sides of a face, as the passes' interphase (the law's
    # moduli, E_c = 2 h k_n): with the particles' bulk there, the nodes a contact shares around its rim weld the two
    # particles, and the roll pressure did not follow k_n nor the cap (stop 28, small test cathode: k_n × 0.1 / × 10
    # moved it −1 % / +5 %, the cap 3–26 %; 122 / 355 MPa at 2.6 / 3.0 g/cm³ against the passes' 11 / 47)
    idx = np.nonzero(mask)
    lam, mu = lam.copy(), mu.copy()
    lam[idx], mu[idx] = law.moduli(lab[idx], normal)
    side = cracked_side(inst, held, top_is_roll=True)
    normal = normal[:, side[mask]]
    mask = mask & side
    cracks = crack_set(lab, law, (mask, normal), gap, code, lam.shape, phi)
    sol = make_solver(lam, mu, sy, code).solve_increment(d_e, stress_old=s_old, tol=tol, maxiter=maxiter,
                                                         hourglass_old=hourglass_old, cracks=cracks)
    is_open = sol.crack_state == OPEN
    g_new = np.full(gap.shape, np.nan, np.float32)
    g_new[np.nonzero(mask)] = np.where(is_open, sol.crack_gap / cracks.h_n, np.nan)
    crushing = (sol.crack_state & CRUSHED) != 0
    info = {"interphase": len(cracks), "open": int(is_open.sum()),
            "sliding": int(((sol.crack_state & ~CRUSHED) == SLIP).sum()), "crushing": int(crushing.sum()),
            "passes": 1, "cg": sol.cg_iterations, "newton": sol.newton_iterations, "failed_passes": 0,
            "unresolved": 0, "unresolved_load": 0.0, "residual_load": 0.0, "locked_load": 0.0}
    return sol, g_new, mask, info


def law_residual(solved, closed_law, law_open, t_nn, locked, normal):
    """How far an increment's last solve is from the contact law: ``(residual_load, locked_load)``, shares of the
    interphase's normal load ``Σ|n·σ·n|`` of the solved stress.

    ``residual_load``: ``Σ |(σ_law − σ) · n|`` over the interphase voxels, the traction by which the solved stress
    ``solved`` (6, m) misses the law's stress for the same strain — ``closed_law`` (the closed state's elastic
    trial, on its compaction cap and returned to its friction limit) where the law's state is closed, 0 where
    ``law_open``. It is the out-of-balance load the next solve would have to carry (0 at the passes' fixed point).
    ``locked_load``: ``Σ −t_nn`` of the voxels the lock holds open (``locked & law_open``) though their closed
    trial ``t_nn`` presses (< 0): the penetration the lock leaves, which the residual does not see. Measured on the
    benchmark cathode (seed 1, 48 µm, 2 µm voxels, 2.3 → 3.8 g/cm³ in 14 increments; stop 27): after 5 passes
    residual 0.025–0.25 (median 0.08) and locked 0.01–0.04; after 20 passes residual 0.001–0.05 but locked
    0.03–0.16 — every pass locks more edge voxels."""
    load = float(np.abs(normal_component(solved, normal)).sum())
    if load <= 0:
        return 0.0, 0.0
    law = np.where(law_open, 0.0, closed_law)
    residual = np.sqrt((traction(law - solved, normal) ** 2).sum(axis=0)).sum()
    pressed = locked & law_open & (t_nn < 0)
    return float(residual / load), float(-t_nn[pressed].sum() / load)


def bridge_caps(lab, law: ContactLaw, phi):
    """The pore-bridging voxels (CBD, binder: ``law.bridges``) of ``lab`` and their compaction cap: ``(idx, cap)``,
    the voxels' indices (``np.nonzero``) and the largest mean pressure each carries (MPa): the capped particle
    phase's :func:`compaction_pressure` at the local packing ``phi`` plus its cohesion (:meth:`ContactLaw.bridge_cap`),
    as for the contacts the bridge joins. One cap for both contact laws (the passes' :class:`_Bridges`, the plane's
    :class:`._interface.CappedBridges`)."""
    idx = np.nonzero(np.isin(lab, law.bridges))
    jam, crush, rearr, rslope, coh = law.bridge_cap()
    n = idx[0].size
    cap, _ = compaction_pressure(phi[idx], np.full(n, jam), np.full(n, crush), rearr, rslope)
    return idx, cap + coh


class _Bridges:
    """The compaction cap of the pore-bridging voxels (CBD, binder) inside the contact active set.

    The carbon-binder domain that joins two particles is part of their contact: its pressure is capped
    by the same compaction pressure as the particle contacts (below the skeleton's jamming fraction the
    particles rearrange and the nanoporous CBD is squeezed into the pores at the low rearrangement
    pressure; Heckel above), with the same return mapping and tangent in the passes (:func:`crush_test`).
    Tension and shear stay bonded (the binder holds).
    """

    def __init__(self, lab, law, phi, lam, mu, s_old):
        self.idx, self.cap = bridge_caps(lab, law, phi)
        n = self.cap.size
        self.lam0, self.mu0 = lam[self.idx].copy(), mu[self.idx].copy()
        self.k0 = self.lam0 + 2.0 * self.mu0 / 3.0
        self.base = s_old[(slice(None),) + self.idx].astype(float)
        self.crushing, self.f = np.zeros(n, bool), np.ones(n)  # elastic first pass, as the contacts
        self.trace = np.zeros(n)

    def set(self, lam, mu, s_old):
        lam[self.idx], mu[self.idx] = crushed_moduli(self.lam0, self.mu0, self.crushing, self.f)
        s_old[(slice(None),) + self.idx] = crushed_start(self.base, self.cap, self.crushing, self.f * self.k0,
                                                         self.trace)

    def update(self, strain) -> int:
        """The cap's test on a pass's strain; returns how many bridge voxels changed (crushing or not, or
        their secant factor by more than ``SECANT_CHANGE``)."""
        e = strain[(slice(None),) + self.idx].astype(float)
        trace = e[0] + e[1] + e[2]
        crushing, f = crush_test(self.base, self.k0, self.cap, trace)
        moved = (crushing != self.crushing) | (crushing & self.crushing & (
            np.abs(f * trace - self.f * self.trace) > SECANT_CHANGE * np.abs(f * trace)))
        self.crushing, self.f, self.trace = crushing, f, trace
        return int(moved.sum())


# ---------------------------------------------------------------------- sub-voxel shells
def shell_fracture(strain_total, stress, inst, shelled, broken, *, e_shell_mpa, nu_shell, strength_mpa):
    """New broken flags of sub-voxel shells (surface patches) after an increment.

    A shell patch (voxel with ``shelled``) breaks when its membrane stress
    ``E_s/(1−ν_s) · ε_m`` (``ε_m`` the largest principal strain in the surface plane of
    ``strain_total``, the film's strain: :meth:`ContactState.strain_films`) or the
    contact traction ``−n·σ·n`` exceeds ``strength_mpa`` (MPa: one value, or one per voxel — a
    patch's own strength drawn from the film's Weibull distribution). Patches without a surface normal (inner
    layers of a thick shell) use the largest principal strain.
    """
    cand = shelled & ~broken
    if not cand.any():
        return broken
    idx, _, membrane, traction = film_loads(strain_total, stress, inst, cand, e_shell_mpa=e_shell_mpa,
                                            nu_shell=nu_shell)
    strength = np.broadcast_to(np.asarray(strength_mpa, float), cand.shape)[idx]
    brk = (membrane > strength) | (traction > strength)
    out = broken.copy()
    out[tuple(i[brk] for i in idx)] = True
    return out


def film_loads(strain_total, stress, inst, patches, *, e_shell_mpa, nu_shell):
    """``(idx, ε_m, membrane, traction)`` of the shell patches ``patches`` (bool mask): their indices,
    the largest principal strain in the surface plane ``ε_m`` (the largest principal strain where a
    patch has no surface normal), the membrane stress ``E_s/(1−ν_s) · ε_m`` and the contact traction
    ``−n·σ·n`` (0 without a normal), MPa — what :func:`shell_fracture` compares with the strength."""
    idx = np.nonzero(patches)
    n = surface_normals(inst, patches)
    eps = strain_total[(slice(None),) + idx].astype(float)
    e = np.empty((eps.shape[1], 3, 3))
    e[:, 0, 0], e[:, 1, 1], e[:, 2, 2] = eps[0], eps[1], eps[2]
    e[:, 1, 2] = e[:, 2, 1] = eps[3]
    e[:, 0, 2] = e[:, 2, 0] = eps[4]
    e[:, 0, 1] = e[:, 1, 0] = eps[5]
    nt = n.T.astype(float)
    p = np.eye(3)[None] - nt[:, :, None] * nt[:, None, :]
    e_m = np.linalg.eigvalsh(p @ e @ p)[:, -1]
    membrane = e_shell_mpa / (1.0 - nu_shell) * e_m
    pressure = -normal_component(stress[(slice(None),) + idx].astype(float), n)
    pressure = np.where((n ** 2).sum(axis=0) > 0, pressure, 0.0)
    return idx, e_m, membrane, pressure


def nearest_own_voxel(inst: np.ndarray, targets: np.ndarray, sources):
    """For each particle with voxels in ``targets``: ``(box, here, src)`` — its bounding box (slices of
    ``inst``), its target voxels there (mask over the box) and, per target voxel, the index (in the box) of the
    nearest voxel of ``sources(box, mine)`` (a mask over the box; ``mine`` = the particle's voxels there).
    Particles whose sources are empty are left out."""
    boxes = ndimage.find_objects(inst)
    for pid in np.unique(inst[targets]).tolist():
        sl = boxes[pid - 1]
        mine = inst[sl] == pid
        src = sources(sl, mine)
        if not src.any():
            continue
        here = targets[sl] & mine
        _, near = ndimage.distance_transform_edt(~src, return_indices=True)
        yield sl, here, tuple(n[here] for n in near)


# ---------------------------------------------------------------------- state carried through calendering
@dataclasses.dataclass
class ContactState:
    """Per-voxel contact and shell state carried with the material (coating grid, thickness first).

    ``inst``: particle instance ids; ``gap``: normal gap of open interphase voxels (> 0; ≤ 0: the overlap
    of a pending closure; NaN = closed or no contact); ``shelled``: voxels that carry a sub-voxel shell
    (membrane mode); ``law``: the interphase constants (None = contacts off);
    ``shell_value``/``lithium_value``: label values.
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
    jam_width: int = 3  # voxels: the neighbourhood of a contact's packing fraction (compaction cap)
    shell_scatter: np.ndarray | None = None  # per shell patch: strength / characteristic strength (Weibull)
    filmed: np.ndarray | None = None  # per particle id: True for the particles that carry a film
    film_strain: np.ndarray | None = None  # (6, …) per shell patch: the strain its film has taken (strain_films)
    reshaped: np.ndarray | None = None  # per particle id: True where the last remap reshaped it (reshaped_particles)
    neck_contacts: bool = False  # particle faces toward CBD/binder are interphase too (CalenderOptions.neck_contacts)
    contact_law: str = "passes"  # CalenderOptions.contact_law: "passes" (solve_with_contacts) or "plane"

    def packing(self, lab: np.ndarray, n_coll: int) -> np.ndarray | None:
        """Local packing fraction of the capped phases' skeleton on the coating grid (None: no cap)."""
        if self.law is None or self.law.capped.size == 0:
            return None
        region = np.zeros(lab.shape, bool)
        region[n_coll:] = True
        return packing_fraction(np.isin(lab, self.law.capped), region, self.jam_width)

    @property
    def membrane(self) -> bool:
        return self.shelled is not None

    def crop(self, top: int) -> None:
        self.inst = self.inst[:top].copy()
        self.gap = self.gap[:top].copy()
        if self.shelled is not None:
            self.shelled = self.shelled[:top].copy()
        if self.shell_scatter is not None:
            self.shell_scatter = self.shell_scatter[:top].copy()
        if self.film_strain is not None:
            self.film_strain = self.film_strain[:, :top].copy()

    def take(self, take, src) -> None:
        """Move the state with the material (``take(arr, src, fill)`` gathers by remap sources)."""
        self.inst = take(self.inst, src, 0)
        self.gap = take(self.gap, src, np.float32(np.nan))
        if self.shelled is not None:
            self.shelled = take(self.shelled, src, False)
        if self.shell_scatter is not None:
            self.shell_scatter = take(self.shell_scatter, src, np.float32(1.0))
        if self.film_strain is not None:
            self.film_strain = take(self.film_strain, src, np.float32(0.0))

    def strain_films(self, d_eps: np.ndarray, opened: np.ndarray | None = None) -> np.ndarray:
        """The film strain of every shell patch after an increment's strain ``d_eps`` (6, …): the film
        takes its surface voxel's strain from the moment it lies on it, so it is the sum of the increments
        its patch has felt as a film (:meth:`cover_surfaces` carries it with the film), not the voxel's
        total strain — a voxel the remap brings to the surface arrives with the plastic strain it took
        inside its particle, which the film laid on it never felt (stop 23: on the generated LMP anode
        200–380 fresh patches per increment were over their strength before any load, 35–60 % of each
        increment's breaks, once per increment: more breaks per strain on the finer grid, which needs
        more increments).

        ``opened`` (bool, coating grid): the increment's open contact voxels. Such a voxel is a void in the
        solve and its strain the contact's opening, not material (``d_eps`` is zero there), yet the film on it
        is the particle's free surface, a neighbour a gap away: it takes the strain increment of the nearest
        patch of its own particle whose voxel carried material. A gap below one voxel is what makes a voxel
        face a contact, so the share of a particle's surface on open contacts grows with the voxel size — at
        the first post-jam increment of the generated LMP anode (seed 1) 24 % of the patches at 6 µm, 17 % at
        4 µm —, and films there that never strained left the coarse grid 0.04–0.07 more intact (stop 33;
        issue 16's two-voxel condition). Updated in place and returned."""
        if opened is not None and (opened & self.shelled).any():
            d_eps = d_eps.copy()
            for sl, here, src in nearest_own_voxel(self.inst, opened & self.shelled,
                                                   lambda sl, mine: mine & self.shelled[sl] & ~opened[sl]):
                d = d_eps[(slice(None), *sl)]
                d[:, here] = d[(slice(None), *src)]
        self.film_strain[:, self.shelled] += d_eps[:, self.shelled].astype(self.film_strain.dtype)
        return self.film_strain

    def cover_surfaces(self, broken: np.ndarray) -> np.ndarray:
        """Put the film back on the surface of every filmed particle after a remap (module docs).

        ``shelled`` becomes exactly the surface voxels (:func:`particle_surface`) of the filmed
        particles; a newly exposed surface voxel takes the broken flag, the Weibull strength and the
        film strain of the nearest patch of its own particle that the remap buried (the film it pushed
        inward), or else of the nearest surface patch, or is intact and unstrained if the particle had
        none. Returns the new broken flags (on film patches only).
        """
        if self.shelled is None:
            return broken
        ids = np.where(self.inst < self.filmed.size, self.inst, 0)
        surf = particle_surface(self.inst) & self.filmed[ids]
        new = surf & ~self.shelled
        out = broken & surf
        scatter, film = self.shell_scatter, self.film_strain
        if new.any():
            def former(sl, mine):  # the film the remap displaced inward comes back out first
                patches = self.shelled[sl] & mine
                buried = patches & ~surf[sl]
                return buried if buried.any() else patches

            # a particle without a former patch is skipped: its new patches are intact, at the characteristic strength
            for sl, here, src in nearest_own_voxel(self.inst, new, former):
                out[sl][here] = broken[sl][src]
                if scatter is not None:
                    scatter[sl][here] = scatter[sl][src]
                if film is not None:
                    f = film[(slice(None), *sl)]
                    f[:, here] = f[(slice(None), *src)]
        if scatter is not None:
            scatter[~surf] = 1.0
        if film is not None:
            film[:, ~surf] = 0.0
        self.shelled = surf
        return out

    def output_labels(self, lab: np.ndarray) -> np.ndarray:
        """Labels with the sub-voxel shell shown as the shell phase on its surface voxels."""
        if self.shelled is None:
            return lab
        out = lab.copy()
        out[self.shelled] = self.shell_value
        return out


def setup_state(lab, inst_in, *, names: dict, materials: dict, contacts: bool, contact_materials, shells: str,
                get_material, seed: int = 0, voxel_um=None):
    """The :class:`ContactState` of a coating (``lab`` is modified in place: membrane shells → lithium).

    ``names`` maps label value → phase name of the values present; ``materials`` phase name →
    Material; ``voxel_um`` the voxel edges along the coating's axes (the per-area contact stiffness).
    Returns None when the labels hold no particle phase.
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
    scatter = None
    if shells == "membrane" and shell_v is not None and li_v is not None:
        shelled = lab == shell_v
        lab[shelled] = li_v
        shell_mat = materials.get("shell")
        m = getattr(shell_mat, "weibull_modulus", None)
        if m:  # each surface patch its own strength: σ0 (−ln U)^(1/m), seeded (Weibull's distribution)
            scatter = np.ones(lab.shape, np.float32)
            scatter[shelled] = np.random.default_rng(seed).weibull(m, int(shelled.sum()))
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
        law = ContactLaw.from_materials(by_value, voxel_um=voxel_um)
        law.bridges = tuple(val[n] for n in BRIDGE_PHASES if n in val) if law.capped.size else ()
    width = jamming_width(inst, lab, law.capped) if law is not None and law.capped.size else 3
    filmed = None
    if shelled is not None:  # the particles whose surface carries the film (by instance id)
        filmed = np.zeros(int(inst.max()) + 1, bool)
        filmed[np.unique(inst[shelled])] = True
        filmed[0] = False
    return ContactState(inst=inst, gap=np.full(lab.shape, np.nan, np.float32), shelled=shelled, law=law,
                        law_names=law_names, shell_value=shell_v, lithium_value=li_v, shell_material=shell_mat,
                        jam_width=width, shell_scatter=scatter, filmed=filmed,
                        film_strain=None if shelled is None else np.zeros((6, *lab.shape), np.float32))

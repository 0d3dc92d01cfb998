"""Per-step stress metrics of a calendered electrode (SCIENCE.md §6) and the result records."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..._results import Result, to_jsonable
from ._contacts import particle_mean_stress
from ._laws import von_mises


@dataclasses.dataclass(frozen=True)
class CalenderStep(Result):
    """The state of the electrode at one calendering target.

    Thickness is the coating's (without collector), along the thickness axis; the ratio is
    ``1 − h/h0`` and the density ``ρ0 h0 / h`` (constant loading); both are the *achieved* values
    (the thickness is a whole number of voxel layers). Profiles run from the collector side
    (bin 0) to the roll side, in ``len(profile)`` equal bins of the coating thickness.

    Attributes
    ----------
    crackable_volume_pct : dict
        threshold (MPa, as a string) → % of active-material voxels whose von Mises stress exceeds it.
    crackable_profile_pct : dict
        threshold → list of the same percentage per thickness bin.
    crackable_particles_pct : dict or None
        threshold → % of the same active voxels that lie in particles whose *mean* stress (the stress
        their contact forces set, :func:`particle_crackable`) has a von Mises stress above it; None without
        particle instances.
    crackable_particles_se_pct : dict or None
        threshold → standard error (percentage points) of ``crackable_particles_pct`` from the finite
        number of particles in the window (:func:`particle_crackable`); None without particle instances.
    contact_voxels_pct : float or None
        With the cracked-plane contact law (``contact_law="plane"``): % of the active voxels of the stress
        statistics that are contact voxels (a face toward another particle, the collector, the roll or the
        CBD; they hold the law's soft moduli under the crack and are counted in ``crackable_volume_pct``).
        None otherwise (the passes leave their interphase out of the statistics).
    crackable_cores_pct : dict or None
        With the cracked plane: ``crackable_volume_pct`` over the active voxels without the contact voxels
        (a diagnosis: it depends on the voxel size, the counted figure does not — issue 16, stop 30).
    shell_intact_fraction : float or None
        Fraction of shell voxels not broken (None when the twin has no shell phase).
    contact_collector_rel, contact_electrolyte_rel : float or None
        Relative contact area particle (lithium)–collector and particle–electrolyte through broken
        shell: voxel faces between lithium (or broken shell touching lithium) and the collector /
        the pore space, divided by all such faces lithium or shell present to the collector / pore
        space (0 = fully passivated, 1 = fully exposed).
    solid_voxels : dict
        phase name → voxel count (conserved exactly by the remap).
    roll_pressure_mpa : float
        Macroscopic calendering pressure: mean normal stress on the roll (compression positive,
        MPa) in the increment that reached this target (0 before any increment). Multiply by the
        roll–electrode contact length for the press's line load.
    contacts_open_fraction : float or None
        Fraction of the contact interphase voxels open (no traction) after that increment.
    edge_margin : int
        Voxels next to the lateral faces left out of the stress statistics (VMS, crackable).
        The contact interphase voxels are left out as well (their stress is the contact law's).
    """

    target: str
    ratio: float
    density_g_cm3: float
    thickness_um: float
    thickness_voxels: int
    porosity: float
    solid_voxels: dict
    increments: int
    cg_iterations: int
    newton_iterations: int
    electrode_strain_share: float
    von_mises_active_mean_mpa: float | None
    von_mises_active_max_mpa: float | None
    von_mises_solid_mean_mpa: float
    crackable_volume_pct: dict
    crackable_profile_pct: dict
    shell_intact_fraction: float | None
    shell_broken_voxels: int
    contact_collector_rel: float | None
    contact_electrolyte_rel: float | None
    twin_path: str | None = None
    roll_pressure_mpa: float | None = None
    contacts_open_fraction: float | None = None
    edge_margin: int = 0
    crackable_particles_pct: dict | None = None
    crackable_particles_se_pct: dict | None = None
    contact_voxels_pct: float | None = None
    crackable_cores_pct: dict | None = None


@dataclasses.dataclass(frozen=True)
class CalenderSeries(Result):
    """A calendering run: the starting state, one :class:`CalenderStep` per target, and (in memory)
    the fields of each target in ``states`` (not part of ``to_dict()``)."""

    thickness0_um: float
    density0_g_cm3: float
    solid_density_g_cm3: float
    porosity0: float
    steps: tuple
    settings: dict
    output: str | None = None
    states: tuple = dataclasses.field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        # the per-voxel states are not part of the JSON form: skip them before anything is
        # converted (tolist() of every field made serialising take minutes and hundreds of MiB)
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "states"}


@dataclasses.dataclass(frozen=True)
class CalenderState:
    """Fields of the electrode at one target, in the input's axes and orientation.

    ``labels`` are the compressed phase labels (coating + collector, cropped at the new top);
    ``broken_shell`` is True on broken shell voxels; ``von_mises_mpa``; ``stress_mpa`` and
    ``strain`` are (6, …) in the order (zz, yy, xx, yx, zx, zy) of the array axes (0, 1, 2) —
    i.e. (00, 11, 22, 12, 02, 01), tensor shear — accumulated over the increments and carried with
    the material; ``displacement_um`` (3, …) is each voxel's accumulated displacement since the
    start, per array axis; ``image`` is the gray image moved with the material (or None);
    ``particles`` the particle instance ids where the shells are sub-voxel films (``shells="membrane"``
    with a shell phase: the conductive analysis's particle rule), else None.
    """

    labels: np.ndarray
    broken_shell: np.ndarray
    von_mises_mpa: np.ndarray
    stress_mpa: np.ndarray | None
    strain: np.ndarray | None
    displacement_um: np.ndarray | None
    image: np.ndarray | None = None
    particles: np.ndarray | None = None


def crackable(vms: np.ndarray, active: np.ndarray, thresholds, *, n_coll: int, bins: int):
    """Overall and per-thickness-bin % of active voxels above each threshold (axis 0 = thickness)."""
    n_act = int(active.sum())
    overall, profile = {}, {}
    depth = vms.shape[0] - n_coll
    edges = np.linspace(0, depth, bins + 1).round().astype(int) + n_coll
    for thr in thresholds:
        key = f"{float(thr):g}"
        above = active & (vms > thr)
        overall[key] = 100.0 * int(above.sum()) / n_act if n_act else 0.0
        prof = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            a = int(active[lo:hi].sum())
            prof.append(100.0 * int(above[lo:hi].sum()) / a if a else 0.0)
        profile[key] = prof
    return overall, profile


def particle_crackable(stress: np.ndarray, inst: np.ndarray, active: np.ndarray, thresholds) -> tuple[dict, dict]:
    """% of the ``active`` voxels that lie in particles (``inst`` ids > 0) whose mean stress over their
    ``active`` voxels has a von Mises stress above each threshold (``stress`` (6, …), MPa), and the
    standard error of that % from sampling a finite number of particles: ``(pct, se)``, both threshold →
    percentage points.

    Why beside the voxel measure (:func:`crackable`): a particle's mean stress is fixed by its contact
    forces alone — for a body in equilibrium, V σ̄ = ∮ sym(x ⊗ t) dA (divergence theorem) — which is what a
    single-particle crush test loads (a force between two platens; for a sphere of diameter d between two
    point loads F the mean stress is uniaxial along the load, F d / V = 6F/(πd²)). A crush strength
    published as Hiramatsu–Oka's 2.8F/(πd²) (or as F over the particle's cross-section, 4F/(πd²)) is
    therefore the threshold (6/2.8) × (or 1.5 ×) that value on this measure. The voxel measure also counts
    the contact zones of a particle: the stress field near a contact decays as F/r² (Boussinesq), so a
    particle whose mean stress is below a threshold has much of its volume above it. On the benchmark
    cathode (issue 16, seed 1, 48 µm, 3.0 g/cm³) the voxel measure gives 50 % above 100 MPa at 2 µm and at
    1 µm voxels alike, of which 87 % (2 µm; 73 % at 1 µm) lies in particles whose mean stress is below
    100 MPa; the spread within a particle (median von Mises stress of the voxel stress minus its particle's
    mean: 82 and 81 MPa) does not depend on the voxel size. A resolved elastic sphere pressed through a
    contact has 20–25 % of its volume above 1.5 × its mean axial stress at 4 to 12 voxels radius
    (tests/test_contacts.py ``_press``). The calender passes each particle's voxels without its contact
    interphase (one voxel thick at any voxel size, with the contact law's stress) — seed 1, one 48 µm window
    of a cathode generated at 1 µm, calendered at 1 µm and on 2 µm bins with stop 24's contact solve:
    > 100 MPa 26.5 ± 7.3 and 28.0 ± 9.4 % at 3.0 g/cm³, 68.7 and 72.2 % at 3.4; with the interphase voxels
    in the means 26.4 and 14.9 %, 61.8 and 47.5 %. With stop 25's contact solve the two differ at 3.0
    g/cm³ (43.9 ± 7.9 vs 28.2 ± 9.0 %), as the roll pressure does (55.6 vs 38.5 MPa; issue 16).

    The standard error: the % is a ratio of sums over particles (cluster sampling, the particles the
    clusters), p = Σ y_i / Σ V_i with V_i a particle's voxels and y_i = V_i where its mean stress is over
    the threshold; its sampling variance is n/(n − 1) Σ (y_i − p V_i)² / (Σ V_i)² over the n particles
    (Cochran, Sampling Techniques, 3rd ed. 1977, §6.3 and §9.4: ratio estimate of a proportion from
    clusters of unequal size) — √(p(1 − p)/(n − 1)) for n equal particles. The volume of a calendering
    window lies in few large particles (issue 16, stop 25: the generated NCM622 cathode at 2 µm voxels has
    an effective number (Σ V_i)²/Σ V_i² of 9–32 particles in a 48 µm window at 2.6–3.8 g/cm³, 32–45 in a
    64 µm and 93–101 in a 96 µm window at 3.0 g/cm³), so the % moves by whole particles: compare windows,
    seeds or increment counts only beyond this error (there, over seeds 1–3, the error's root mean square
    was 9/5/4 points at 3.0 g/cm³ in the three windows against a seed-to-seed standard deviation of 13/8/3). It is the error of a
    finite sample at a fixed stress field, not of the stress level itself (which also differs between
    windows: their roll pressures do)."""
    count, mean = particle_mean_stress(stress, inst, active)
    count[0] = 0  # voxels without a particle id are in no particle
    vms = von_mises(mean)
    total = max(float(int(active.sum())), 1.0)
    n = int((count > 0).sum())
    pct, se = {}, {}
    for t in thresholds:
        key = f"{float(t):g}"
        over = count * (vms > t)
        p = float(over.sum()) / total
        pct[key] = 100.0 * p
        resid = (over - p * count)[count > 0]
        se[key] = 100.0 * float(np.sqrt(n / (n - 1) * (resid ** 2).sum())) / total if n > 1 else 0.0
    return pct, se


def shell_contacts(labels: np.ndarray, broken: np.ndarray, *, pore: int, shell: int | None, lithium: int | None,
                   collector: int | None):
    """Relative particle–collector and particle–electrolyte contact through broken shell.

    Axes 1, 2 are not wrapped (faces at the array border are ignored).
    """
    if shell is None or lithium is None:
        return None, None
    li = labels == lithium
    sh = labels == shell
    open_shell = sh & broken
    # broken shell voxels that touch lithium conduct/expose it
    touching = open_shell & _touches(li)
    exposed = li | touching
    cover = li | sh

    def faces(a, b):
        n = 0
        for lo, hi in _face_neighbours():
            n += int((a[lo] & b[hi]).sum()) + int((b[lo] & a[hi]).sum())
        return n

    pores = labels == pore
    total_e = faces(cover, pores)
    rel_e = faces(exposed, pores) / total_e if total_e else None
    rel_c = None
    if collector is not None:
        coll = labels == collector
        total_c = faces(cover, coll)
        rel_c = faces(exposed, coll) / total_c if total_c else None
    return rel_c, rel_e


def _touches(mask: np.ndarray) -> np.ndarray:
    out = np.zeros_like(mask)
    for lo, hi in _face_neighbours():
        out[lo] |= mask[hi]
        out[hi] |= mask[lo]
    return out


def _face_neighbours():
    """Per axis, the index of every voxel (``lo``) and of its face neighbour one step up that axis (``hi``)."""
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax] = slice(None, -1)
        hi[ax] = slice(1, None)
        yield tuple(lo), tuple(hi)

"""Pore network of a twin: SNOW extraction into OpenPNM, network metrics, connectivity matrix.

Conventions
-----------
* Axes are (z, y, x). All lengths of :class:`PoreNetwork` are in micrometres (``pore.coords``,
  diameters), areas in µm², volumes in µm³; :meth:`PoreNetwork.to_openpnm` converts to SI
  (metres), as OpenPNM expects.
* Boundary pores (porespy's convention: 3 voxels deep, one per face-touching pore cross-section)
  sit on the two faces normal to the thickness axis: ``pore.boundary_low`` (index 0 side) and
  ``pore.boundary_high``. Everything else is ``pore.internal``.
* Anisotropic voxels are handled natively: the distance transform is anisotropic, ``sigma``
  and ``r_max`` are in voxels of the *finest* axis, and all geometry is converted with the
  per-axis voxel size. An isotropic volume gives exactly porespy's ``snow2`` network.
* Network tortuosity uses the field's convention ``D_eff = (ε / τ²) D`` with ε the pore volume
  fraction of the image: ``tortuosity_tau`` is τ, ``tortuosity_factor`` is τ². It is a
  *network estimate* (``estimate``, ``bias_note``): the voxel solve of
  :mod:`twinlab.analyses.transport` is the reference.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .._chunked import is_dask
from .._results import Result
from .._validation import AXES, VoxelSize, axis_index, require_ndim, require_positive
from ..errors import InputError, MissingDependencyError
from ..phases import DEFAULT_PHASES, PhaseTable
from . import _snow

__all__ = ["PoreNetwork", "NetworkMetrics", "NetworkTortuosity", "ConnectivityMatrix", "NetworkAnalysis",
           "extract_network", "compute_network_metrics", "compute_network_tortuosity",
           "compute_connectivity_matrix", "plot_connectivity", "analyze_twin"]


# ====================================================================================== results
@dataclass(frozen=True)
class PoreNetwork(Result):
    """A pore network as flat OpenPNM-style arrays (``pore.*``, ``throat.*``), lengths in µm.

    ``arrays`` holds at least ``pore.coords`` (Np, 3 as z, y, x), ``throat.conns`` (Nt, 2, lower
    index first), ``pore.region_volume``, ``pore.volume``, ``pore.equivalent_diameter``,
    ``pore.inscribed_diameter``, ``pore.internal``, ``pore.boundary_low``/``_high``,
    ``throat.cross_sectional_area``, ``throat.inscribed_diameter``, ``throat.total_length``,
    ``throat.conduit_lengths`` (Nt, 3: pore1, throat, pore2), ``throat.diffusive_size_factors``
    (Nt, 3, µm: area/length of each conduit part).

    ``unresolved_pore_fraction``: the fraction of the pore volume thinner than the watershed's smallest
    pore — farther than 2 voxels from every voxel where the blurred distance transform reaches 2 voxels,
    the least value a marker can have (porespy's ``find_peaks`` counts solid as 2). That pore space
    cannot hold a pore of its own: the watershed gives it to the neighbouring pores. When it is large,
    pores that thin out under compression merge into their neighbours instead of shrinking, so the
    number of pores falls faster than the pore volume and the mean equivalent radius can *grow*: the
    network's pore count and mean radii then follow the voxel size, not the pore space (issue 16). A
    cathode calendered 2.3 → 3.8 g/cm³ reads 0.38/0.50/0.63/0.75/0.81 at 1 µm voxels (its mean
    equivalent radius grows from 3.0 g/cm³) and its remap alone ≤ 0.34 at 0.5 µm (the radius falls at
    every step); above ~0.5, use finer voxels before reading the pore count or a number-mean radius.
    """

    arrays: Mapping[str, np.ndarray] = field(repr=False)
    shape: tuple[int, int, int]
    voxel_size_um: tuple[float, float, float]
    thickness_axis: int
    porosity: float
    unresolved_pore_fraction: float
    params: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    @property
    def num_pores(self) -> int:
        return int(len(self.arrays["pore.coords"]))

    @property
    def num_throats(self) -> int:
        return int(len(self.arrays["throat.conns"]))

    def coordination(self) -> np.ndarray:
        """Number of throats of each pore."""
        return np.bincount(self.arrays["throat.conns"].ravel(), minlength=self.num_pores)

    def to_dict(self) -> dict[str, Any]:
        # the arrays go to the twin as arrays (save_result(arrays=...)), not into the JSON
        return {"num_pores": self.num_pores, "num_throats": self.num_throats,
                "num_internal_pores": int(self.arrays["pore.internal"].sum()), "shape": list(self.shape),
                "voxel_size_um": list(self.voxel_size_um), "thickness_axis": AXES[self.thickness_axis],
                "porosity": self.porosity, "unresolved_pore_fraction": self.unresolved_pore_fraction,
                "params": dict(self.params)}

    def to_openpnm(self):
        """A real ``openpnm.network.Network`` with the arrays in SI units (m, m², m³).

        Adds ``pore.diameter`` (= inscribed), ``throat.diameter`` (= inscribed, capped by the
        smaller pore), labels ``pore.internal``, ``pore.boundary``, ``pore.<axis>min/max``
        (porespy's names) and ``pore.inlet``/``pore.outlet`` (low/high thickness face).
        """
        try:
            op = _import_openpnm()
        except ImportError:  # pragma: no cover - network extra
            raise MissingDependencyError("OpenPNM is needed here: pip install 'twinlab[network]'") from None
        a = self.arrays
        pn = op.network.Network(coords=a["pore.coords"] * 1e-6, conns=a["throat.conns"])
        for key, value in a.items():
            if key in ("pore.coords", "throat.conns"):
                continue
            value = np.asarray(value)
            if value.dtype != bool:
                value = value * _SI_SCALE.get(key, 1.0)
            pn[key] = value
        pn["pore.diameter"] = pn["pore.inscribed_diameter"]
        pn["throat.diameter"] = pn["throat.inscribed_diameter"]
        pn["pore.boundary"] = ~a["pore.internal"]
        name = AXES[self.thickness_axis]
        pn[f"pore.{name}min"] = a["pore.boundary_low"]
        pn[f"pore.{name}max"] = a["pore.boundary_high"]
        pn["pore.inlet"] = a["pore.boundary_low"]
        pn["pore.outlet"] = a["pore.boundary_high"]
        return pn


_SI_SCALE = {"pore.region_volume": 1e-18, "pore.volume": 1e-18, "pore.equivalent_diameter": 1e-6,
             "pore.inscribed_diameter": 1e-6, "pore.local_peak": 1e-6, "pore.surface_area": 1e-12,
             "throat.cross_sectional_area": 1e-12, "throat.inscribed_diameter": 1e-6,
             "throat.global_peak": 1e-6, "throat.perimeter": 1e-6, "throat.total_length": 1e-6,
             "throat.direct_length": 1e-6, "throat.conduit_lengths": 1e-6,
             "throat.diffusive_size_factors": 1e-6}


@dataclass(frozen=True)
class NetworkMetrics(Result):
    """Topology and size statistics of a network (internal pores unless said otherwise).

    ``coordination_hist[k]`` = number of internal pores with k throats; radii in µm.
    ``mean_equivalent_radius_um`` is the number mean of the pores' volume-equivalent sphere radius:
    when a pore space is compressed, pores that thin out below the watershed's smallest pore lose their
    marker and the watershed gives their volume to their neighbours, so the survivors grow
    (``unresolved_pore_fraction``; issue 16: a cathode calendered at 1 µm voxels from 3.0 to 3.8 g/cm³
    keeps 52 of 188 pores; of the 152 pores that lost their marker, tracked member to member, 150 went on
    as ≥ 25 % of a neighbour's volume and 2 closed, so the mean rises 4.46 → 4.92 µm while the pore
    volume falls to 0.36×. Finer voxels lower the floor but do not remove it: a 30 µm cathode calendered
    at 0.5 µm loses its smallest pores, inscribed radius ~2.6 voxels, each step — from 2.6 to 3.0 g/cm³
    95 of 227, 63 into neighbours — and the mean holds level, 2.693 µm, while the k-th largest pore
    shrinks at every rank); ``mean_inscribed_radius_um``, the number mean of the largest sphere
    inscribed in each pore (the pore size of pore-network models, OpenPNM's ``pore.diameter``),
    follows the shrinking of the pores that remain — until most of them are near the smallest pore
    the watershed resolves (an inscribed radius of ~1.4–2 voxels at porespy's ``r_max``/``sigma``):
    then the pores that shrink below it drop out of the number mean and the survivors hold it level
    or raise it while every pore shrinks (issue 16: a cathode calendered at 1 µm voxels from 3.4 to
    3.8 g/cm³ keeps 49 of 102 pores, 78 % of them at ≤ 2.45 voxels; the k-th largest pore is no larger
    at 3.8 than at 3.4 at every rank — the 49 largest 2.62 → 2.29 µm — yet the number mean rises from
    2.27 to 2.29 µm; the volume mean falls from 2.55 to 2.49 µm). ``volume_mean_inscribed_radius_um``
    weights each pore by its volume (Σ V r / Σ V: the inscribed radius of the pore a pore voxel lies
    in, the way a porosimetry or local-thickness size distribution counts pore volume, not pores):
    pores at the resolution limit hold little of the pore volume, so it depends little on how many
    of them the watershed keeps.
    """

    num_internal_pores: int
    num_boundary_pores: int
    num_throats: int
    mean_coordination: float
    mean_coordination_boundary: float
    coordination_hist: tuple[int, ...]
    mean_equivalent_radius_um: float
    mean_inscribed_radius_um: float
    volume_mean_inscribed_radius_um: float
    radius_bins_um: tuple[float, ...]
    radius_hist: tuple[int, ...]
    num_clusters: int
    num_isolated_clusters: int  # clusters touching neither thickness face
    num_isolated_pores: int  # internal pores with no throat
    num_dead_end_pores: int  # internal pores with exactly one throat
    spanning_volume_fraction: float  # internal pore volume in clusters touching both faces
    unresolved_pore_fraction: float  # PoreNetwork's: pore volume thinner than the watershed's smallest pore


NETWORK_BIAS_NOTE = (
    "network estimate, not the reference: each throat carries the conductance of its narrowest "
    "(inscribed) cross-section over the conduit, and pore bodies are idealised, so the network "
    "under-estimates diffusive conductance and its tau^2 reads higher than the voxel solve's "
    "(transport.tortuosity.tortuosity_factor) on the same pore space; compare network values "
    "with each other and quote the voxel value")


@dataclass(frozen=True)
class NetworkTortuosity(Result):
    """Fickian diffusion through the network between the two thickness faces (ΔC = 1).

    Convention ``D_eff = (ε/τ²) D``; ``inf`` when no cluster spans the thickness.
    """

    diffusivity_m2_s: float
    effective_diffusivity_m2_s: float
    formation_factor: float  # D / D_eff
    tortuosity_factor: float  # τ² (network estimate)
    tortuosity_tau: float  # τ
    porosity: float  # ε used in τ² = ε D / D_eff: the pore volume fraction of the image
    rate_mol_s: float
    num_pores_solved: int
    num_pores_trimmed: int
    faces: str
    estimate: str = "pore-network model (SNOW network, OpenPNM Fickian diffusion)"
    convention: str = "D_eff = porosity * D / tau^2; tortuosity_factor = tau^2, tortuosity_tau = tau"
    bias_note: str = NETWORK_BIAS_NOTE


@dataclass(frozen=True)
class ConnectivityMatrix(Result):
    """Connectivity matrix statistic (SCIENCE.md §4).

    Pores are numbered 0…N−1 by lexicographic order of their centroid with ``order`` giving the
    key priority (default z, then y, then x). Each throat (i, j) gives dots (i, j) and (j, i);
    each dot is projected on the line normal to the diagonal, ``p = (i − j)/√2``, and normalised
    by the largest possible value ``(N − 1)/√2`` so ``p ∈ [−1, 1]``. ``pdf_x``/``pdf_y`` are a
    Gaussian KDE (Scott's bandwidth) of the projections; ``std`` is the standard deviation of
    that density, ``std_samples`` the one of the projections themselves.
    """

    order: tuple[str, ...]
    num_pores: int
    rows: np.ndarray = field(repr=False)
    cols: np.ndarray = field(repr=False)
    projections: np.ndarray = field(repr=False)
    pdf_x: np.ndarray = field(repr=False)
    pdf_y: np.ndarray = field(repr=False)
    std: float
    std_samples: float

    def to_dict(self) -> dict[str, Any]:
        return {"order": list(self.order), "num_pores": self.num_pores, "num_dots": int(len(self.rows)),
                "std": self.std, "std_samples": self.std_samples}


@dataclass(frozen=True)
class NetworkAnalysis(Result):
    """What ``analyze_twin`` stores: the network summary, metrics, tortuosity, connectivity."""

    network: dict[str, Any]
    metrics: NetworkMetrics
    tortuosity: NetworkTortuosity
    connectivity: dict[str, Any]


# ====================================================================================== extraction
def extract_network(
    labels: Any,
    *,
    phase: str = "pore",
    phases: PhaseTable = DEFAULT_PHASES,
    voxel_size_um: Any = 1.0,
    thickness_axis: int | str = "y",
    sigma: float = 0.4,
    r_max: float = 4,
    boundary_faces: bool = True,
    chunks: int | None = None,
    halo: int | None = None,
    fragments: str = "porespy",
    threads: int | None = None,
) -> PoreNetwork:
    """Partition the pore phase with SNOW (watershed) and build its pore network.

    Parameters
    ----------
    labels : (Z, Y, X) integer phase labels or boolean pore mask (True = pore), numpy or dask.
    phase, phases : which phase is the pore space (ignored for a boolean mask).
    voxel_size_um : (dz, dy, dx) in µm, one number, "a,b,c" or a :class:`VoxelSize`.
    thickness_axis : the electrode thickness direction; boundary pores go on its two faces.
    sigma, r_max : porespy's Gaussian blur of the distance transform and peak-search radius,
        in voxels of the finest axis (defaults as porespy's ``snow2``).
    boundary_faces : add boundary pores on the two faces normal to ``thickness_axis``.
    chunks : ``None`` computes the whole volume in memory. An integer processes slabs of that
        many layers along the thickness axis with ``halo`` layers of overlap on each side
        (default ``2 · max distance + 32``, checked) and stitches them into one network;
        only one extended slab is in memory at a time (dask input is read slab by slab).
    fragments : ``"porespy"`` gives pore fragments that hold no marker to the nearest region
        through the solid, as porespy's unmasked watershed does (needed for the same network);
        ``"drop"`` leaves them out of every pore (no throats through solid).
    threads : threads for the distance transforms (default: all CPUs).

    Returns
    -------
    PoreNetwork
    """
    require_ndim(labels, 3, name="labels")
    vs = VoxelSize.parse(voxel_size_um)
    ax = axis_index(thickness_axis)
    if fragments not in ("porespy", "drop"):
        raise InputError(f"fragments={fragments!r}; use 'porespy' or 'drop'")
    require_positive(r_max, "r_max")
    if sigma < 0:
        raise InputError(f"sigma must be ≥ 0 voxels, got {sigma}")
    mask = _pore_mask(labels, phase, phases)
    perm = [ax] + [i for i in range(3) if i != ax]
    mask_t = mask.transpose(perm) if is_dask(mask) else np.ascontiguousarray(np.moveaxis(mask, ax, 0))
    vs_t = np.asarray(vs.as_tuple())[perm]
    threads = int(threads or os.cpu_count() or 1)
    n_pore, n_all = _count(mask_t)
    if n_pore == 0:
        raise InputError(f"the volume holds no {phase!r} voxels; check the phase name/table or the segmentation")
    if n_pore == n_all:
        raise InputError(f"the {phase!r} phase fills the whole volume: a pore network needs solid walls; "
                         "check the segmentation or the phase name")
    if min(mask.shape) < 3:
        raise InputError(f"volume {tuple(mask.shape)} is too small for a network; it needs ≥ 3 voxels per axis")
    if chunks is None and is_dask(mask_t):
        mask_t = mask_t.compute()
    if chunks is not None:
        chunks = int(chunks)
        if chunks < 8:
            raise InputError(f"chunks={chunks} layers is too thin; use ≥ 8 (typically 64–256)")
        if halo is None:
            halo = _default_halo(mask_t, vs_t, threads)
    arrays, info = _snow.extract_arrays(mask_t, voxel_size_um=vs_t, sigma=float(sigma), r_max=float(r_max),
                                        threads=threads, boundary=boundary_faces, slab=chunks, halo=halo,
                                        fragments=fragments)
    if len(arrays["pore.coords"]) == 0:
        raise InputError("no pore was found (no distance-transform peak): the pore space is too small or thin "
                         "for a network at this resolution; use a larger volume or smaller r_max/sigma")
    inv = np.argsort(perm)
    for key in ("pore.coords", "pore.local_peak", "throat.global_peak"):
        arrays[key] = arrays[key][:, inv]
    _add_conduits(arrays)
    params = {"phase": phase, "sigma": sigma, "r_max": r_max, "boundary_faces": boundary_faces, "chunks": chunks,
              "halo": info["halo"], "fragments": fragments, "method": "snow2 (twinlab fast implementation)"}
    return PoreNetwork(arrays=arrays, shape=tuple(int(s) for s in mask.shape), voxel_size_um=vs.as_tuple(),
                       thickness_axis=ax, porosity=n_pore / n_all,
                       unresolved_pore_fraction=info["unresolved_fraction"], params=params)


def _pore_mask(labels: Any, phase: str, phases: PhaseTable):
    dtype = np.dtype(labels.dtype)
    if dtype == bool:
        return labels
    if not np.issubdtype(dtype, np.integer):
        raise InputError(f"labels must be integer phase labels or a boolean pore mask, got dtype {dtype}")
    return labels == phases.value(phase)


def _count(mask) -> tuple[int, int]:
    if is_dask(mask):
        return int(mask.sum().compute()), int(mask.size)
    return int(np.count_nonzero(mask)), int(mask.size)


def _default_halo(mask_t, vs_t, threads) -> int:
    # the halo must hold the largest distance twice (peak trimming looks one pore radius past
    # a neighbour) plus the saddle search (20) and the peak ball; measured on a thin sample
    import edt

    n0 = mask_t.shape[0]
    step = max(1, n0 // 4)
    dmax = 0.0
    anis = tuple(float(v) for v in vs_t / vs_t.min())
    for s in range(0, n0, step):
        block = np.ascontiguousarray(np.asarray(mask_t[s:min(s + 32, n0)]), dtype=bool)
        dmax = max(dmax, float(edt.edt(block, anisotropy=anis, parallel=threads).max()))
    return int(2 * np.ceil(dmax) + 32)


def _add_conduits(a: dict[str, np.ndarray]) -> None:
    """Throat lengths and a robust spheres-and-cylinders conduit model (µm).

    Pore halves are cylinders of the pore's inscribed radius and length min(r, distance from the
    pore centroid to the throat peak); the throat is a cylinder of its inscribed radius (capped by
    the smaller pore) with the remaining length (≥ 1e-3 of the pore-to-pore length).
    """
    c = a["pore.coords"]
    conns = a["throat.conns"]
    tp = a["throat.global_peak"]
    p1 = np.linalg.norm(c[conns[:, 0]] - tp, axis=1)
    p2 = np.linalg.norm(c[conns[:, 1]] - tp, axis=1)
    total = p1 + p2
    a["throat.total_length"] = total
    a["throat.direct_length"] = np.linalg.norm(c[conns[:, 0]] - c[conns[:, 1]], axis=1)
    r = a["pore.inscribed_diameter"] / 2
    r1, r2 = r[conns[:, 0]], r[conns[:, 1]]
    rt = np.minimum(a["throat.inscribed_diameter"] / 2, np.minimum(r1, r2))
    l1 = np.minimum(r1, p1)
    l2 = np.minimum(r2, p2)
    lt = np.maximum(total - l1 - l2, 1e-3 * np.maximum(total, 1e-12))
    tiny = 1e-3 * np.maximum(total, 1e-12)
    l1, l2 = np.maximum(l1, tiny), np.maximum(l2, tiny)
    a["throat.conduit_lengths"] = np.stack([l1, lt, l2], axis=1)
    a["throat.diffusive_size_factors"] = np.stack(
        [np.pi * r1 ** 2 / l1, np.pi * np.maximum(rt, 1e-12) ** 2 / lt, np.pi * r2 ** 2 / l2], axis=1)


# ====================================================================================== metrics
def compute_network_metrics(net: PoreNetwork, *, radius_bins: int = 20) -> NetworkMetrics:
    """Coordination, equivalent radius, clusters, dead ends and spanning volume of ``net``."""
    a = net.arrays
    internal = a["pore.internal"]
    cn = net.coordination()
    ci = cn[internal]
    req = a["pore.equivalent_diameter"][internal] / 2
    rin = a["pore.inscribed_diameter"][internal] / 2
    hist_r, edges = np.histogram(req, bins=radius_bins) if len(req) else (np.zeros(0, int), np.zeros(1))
    labels, n_clusters = _clusters(net)
    low = np.zeros(n_clusters, bool)
    high = np.zeros(n_clusters, bool)
    low[labels[a["pore.boundary_low"]]] = True
    high[labels[a["pore.boundary_high"]]] = True
    spanning = (low & high)[labels]
    vol = a["pore.region_volume"]
    total = vol[internal].sum()
    ccl = np.unique(labels[internal])
    return NetworkMetrics(
        num_internal_pores=int(internal.sum()), num_boundary_pores=int((~internal).sum()),
        num_throats=net.num_throats, mean_coordination=float(ci.mean()) if len(ci) else 0.0,
        mean_coordination_boundary=float(cn[~internal].mean()) if (~internal).any() else 0.0,
        coordination_hist=tuple(int(v) for v in np.bincount(ci)), mean_equivalent_radius_um=float(req.mean()),
        mean_inscribed_radius_um=float(rin.mean()) if len(rin) else 0.0,
        volume_mean_inscribed_radius_um=float((vol[internal] * rin).sum() / total) if total > 0 else 0.0,
        radius_bins_um=tuple(float(v) for v in edges), radius_hist=tuple(int(v) for v in hist_r),
        num_clusters=int(len(ccl)), num_isolated_clusters=int((~low[ccl] & ~high[ccl]).sum()),
        num_isolated_pores=int((ci == 0).sum()), num_dead_end_pores=int((ci == 1).sum()),
        spanning_volume_fraction=float(vol[internal & spanning].sum() / total) if total > 0 else 0.0,
        unresolved_pore_fraction=net.unresolved_pore_fraction,
    )


def _clusters(net: PoreNetwork) -> tuple[np.ndarray, int]:
    n = net.num_pores
    c = net.arrays["throat.conns"]
    g = sp.coo_matrix((np.ones(len(c)), (c[:, 0], c[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[::-1]


def _import_openpnm():
    """``openpnm``, with pypardiso (which it imports) shown MKL's runtime where this environment keeps it,
    in ``<sys.prefix>/lib``: without ``PYPARDISO_MKL_RT`` pypardiso searches every file under
    ``<sys.prefix>/lib*`` for it (measured 0.9 s of the demo's network stage; the library it finds first,
    the shortest path, is this one)."""
    if "PYPARDISO_MKL_RT" not in os.environ:
        found = sorted(glob.glob(os.path.join(glob.escape(sys.prefix), "lib", "libmkl_rt.so*")), key=len)
        if found:
            os.environ["PYPARDISO_MKL_RT"] = found[0]
    import openpnm

    return openpnm


def compute_network_tortuosity(net: PoreNetwork, *, diffusivity_m2_s: float = 1e-9) -> NetworkTortuosity:
    """Fickian diffusion on the network (OpenPNM) from the low to the high thickness face.

    Clusters that do not touch both faces are trimmed first (``op.topotools.find_clusters`` +
    ``trim``) so the linear system is never singular. ``D_eff = rate · L / (A · ΔC)`` with L the
    sample length along the thickness axis and A its cross-section; ``τ² = ε D / D_eff``.
    """
    op = _import_openpnm()

    require_positive(diffusivity_m2_s, "diffusivity_m2_s")
    a = net.arrays
    if not (a["pore.boundary_low"].any() and a["pore.boundary_high"].any()):
        raise InputError("network tortuosity needs boundary pores on both thickness faces; "
                         "extract with boundary_faces=True (and a pore phase touching both faces)")
    ax = net.thickness_axis
    length = net.shape[ax] * net.voxel_size_um[ax] * 1e-6
    area = np.prod([n * d for i, (n, d) in enumerate(zip(net.shape, net.voxel_size_um)) if i != ax]) * 1e-12
    pn = net.to_openpnm()
    labels = op.topotools.find_clusters(pn, mask=np.ones(pn.Nt, bool)).pore_labels
    span = np.intersect1d(np.unique(labels[pn["pore.inlet"]]), np.unique(labels[pn["pore.outlet"]]))
    keep = np.isin(labels, span)
    n_all = pn.Np
    if not keep.any():
        inf = float("inf")
        return NetworkTortuosity(diffusivity_m2_s, 0.0, inf, inf, inf, net.porosity, 0.0, 0, n_all, _faces(net))
    if (~keep).any():
        op.topotools.trim(network=pn, pores=np.flatnonzero(~keep))
    phase = op.phase.Phase(network=pn)
    phase["pore.diffusivity"] = diffusivity_m2_s
    phase.add_model(propname="throat.diffusive_conductance",
                    model=op.models.physics.diffusive_conductance.generic_diffusive)
    fd = op.algorithms.FickianDiffusion(network=pn, phase=phase)
    fd.set_value_BC(pores=pn.pores("inlet"), values=1.0)
    fd.set_value_BC(pores=pn.pores("outlet"), values=0.0)
    fd.run()
    rate = float(fd.rate(pores=pn.pores("inlet"))[0])
    d_eff = rate * length / area  # ΔC = 1 mol m⁻³
    tau2 = net.porosity * diffusivity_m2_s / d_eff if d_eff > 0 else float("inf")
    return NetworkTortuosity(diffusivity_m2_s=diffusivity_m2_s, effective_diffusivity_m2_s=d_eff,
                             formation_factor=diffusivity_m2_s / d_eff if d_eff > 0 else float("inf"),
                             tortuosity_factor=tau2, tortuosity_tau=float(np.sqrt(tau2)), porosity=net.porosity,
                             rate_mol_s=rate, num_pores_solved=int(pn.Np), num_pores_trimmed=int(n_all - pn.Np),
                             faces=_faces(net))


def _faces(net: PoreNetwork) -> str:
    name = AXES[net.thickness_axis]
    return f"C=1 on {name}=0 face, C=0 on {name}={net.shape[net.thickness_axis] - 1} face"


# ====================================================================================== connectivity
def compute_connectivity_matrix(net: PoreNetwork | tuple[np.ndarray, np.ndarray], *,
                                order: Sequence[str] = ("z", "y", "x"), include_boundary: bool = False,
                                grid_points: int = 401) -> ConnectivityMatrix:
    """Connectivity matrix and its band statistic (see :class:`ConnectivityMatrix`).

    ``net`` is a :class:`PoreNetwork` or a ``(coords (N, 3) z/y/x, conns (M, 2))`` pair.
    Boundary pores are left out unless ``include_boundary``.
    """
    from scipy.stats import gaussian_kde

    if isinstance(net, PoreNetwork):
        coords, conns = net["pore.coords"], net["throat.conns"]
        keep = np.ones(len(coords), bool) if include_boundary else net["pore.internal"]
    else:
        coords, conns = (np.asarray(v) for v in net)
        keep = np.ones(len(coords), bool)
    keys = [axis_index(o) for o in order]
    if sorted(keys) != [0, 1, 2]:
        raise InputError(f"order {order!r} must name z, y and x once each")
    idx = np.flatnonzero(keep)
    n = len(idx)
    # lexsort sorts by its last key first: pass the keys in reverse priority
    rank = np.empty(len(coords), np.int64)
    rank[idx] = np.argsort(np.lexsort([coords[idx, k] for k in reversed(keys)]), kind="stable")
    tk = keep[conns[:, 0]] & keep[conns[:, 1]]
    i, j = rank[conns[tk, 0]], rank[conns[tk, 1]]
    rows, cols = np.concatenate([i, j]), np.concatenate([j, i])
    if n < 2 or len(rows) == 0:
        raise InputError(f"the connectivity matrix needs ≥ 2 connected pores; this network has {n} pores and "
                         f"{len(rows) // 2} throats between them")
    proj = (rows - cols) / (n - 1)  # ((i − j)/√2) / ((N − 1)/√2)
    x = np.linspace(-1, 1, grid_points)
    if np.ptp(proj) == 0:
        y = np.zeros_like(x)
        y[np.argmin(np.abs(x - proj[0]))] = 1 / (x[1] - x[0])
    else:
        y = gaussian_kde(proj)(x)
    w = y / np.trapezoid(y, x)
    mean = np.trapezoid(w * x, x)
    std = float(np.sqrt(max(np.trapezoid(w * (x - mean) ** 2, x), 0.0)))
    return ConnectivityMatrix(order=tuple(AXES[k] for k in keys), num_pores=n, rows=rows, cols=cols,
                              projections=proj, pdf_x=x, pdf_y=y, std=std, std_samples=float(proj.std()))


def plot_connectivity(result: ConnectivityMatrix, *, title: str | None = None):
    """A matplotlib ``Figure`` (Agg, no pyplot state): the dot matrix and the projection density."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.scatter(result.cols, result.rows, s=1, c="k", marker=".", linewidths=0)
    ax1.set_xlim(-0.5, result.num_pores - 0.5)
    ax1.set_ylim(result.num_pores - 0.5, -0.5)
    ax1.set_aspect("equal")
    ax1.set_xlabel(f"pore j (order {'/'.join(result.order)})")
    ax1.set_ylabel("pore i")
    ax1.set_title("connectivity matrix")
    ax2.plot(result.pdf_x, result.pdf_y, "k-")
    ax2.set_xlim(-1, 1)
    ax2.set_xlabel("normalised projection normal to the diagonal")
    ax2.set_ylabel("probability density")
    ax2.set_title(f"std = {result.std:.4f}")
    if title:
        fig.suptitle(title)
    return fig


# ====================================================================================== twin
def analyze_twin(twin, *, phase: str = "pore", labels: str = "phases", sigma: float = 0.4, r_max: float = 4,
                 chunks: int | None = None, fragments: str = "porespy", diffusivity_m2_s: float = 1e-9,
                 **_: Any) -> NetworkAnalysis:
    """Extract the network of ``twin``'s ``labels`` layer, compute metrics, tortuosity and the
    connectivity matrix, and store them as result ``network`` (arrays ``pore.*``, ``throat.*``,
    ``connectivity.*``). The network spans the electrode planes of :mod:`twinlab.analyses.electrode`
    (no current collector: the boundary pores sit on the collector-side and top faces of the pore
    space); stored positions are in the twin's frame."""
    from ..twin import Step
    from .electrode import electrode_labels

    lab, (start, stop) = electrode_labels(twin, phase, labels)
    net = extract_network(lab, phase=phase, phases=twin.phases, voxel_size_um=twin.voxel_size,
                          thickness_axis=twin.thickness_axis, sigma=sigma, r_max=r_max, chunks=chunks,
                          fragments=fragments)
    metrics = compute_network_metrics(net)
    tort = compute_network_tortuosity(net, diffusivity_m2_s=diffusivity_m2_s) if metrics.spanning_volume_fraction \
        > 0 else NetworkTortuosity(diffusivity_m2_s, 0.0, *(float("inf"),) * 3, net.porosity, 0.0, 0,
                                   net.num_pores, _faces(net))
    try:
        conn = compute_connectivity_matrix(net)
        conn_d = conn.to_dict()
        conn_arrays = {"connectivity.pdf_x": conn.pdf_x, "connectivity.pdf_y": conn.pdf_y,
                       "connectivity.rows": conn.rows, "connectivity.cols": conn.cols}
    except InputError as exc:
        conn_d, conn_arrays = {"error": str(exc)}, {}
    result = NetworkAnalysis(network=net.to_dict(), metrics=metrics, tortuosity=tort, connectivity=conn_d)
    params = {"phase": phase, "labels": labels, "sigma": sigma, "r_max": r_max, "chunks": chunks,
              "fragments": fragments, "diffusivity_m2_s": diffusivity_m2_s, "cropped_planes": [start, stop]}
    offset = np.zeros(3)
    offset[twin.thickness_axis] = start * twin.voxel_size.as_tuple()[twin.thickness_axis]
    arrays = {k: (v + offset if k in _POSITIONS else v) for k, v in net.arrays.items()}
    twin.save_result("network", result, step=Step("network", params), arrays={**arrays, **conn_arrays})
    return result


_POSITIONS = ("pore.coords", "pore.local_peak", "throat.global_peak")  # (n, 3) µm, shifted into the twin's frame

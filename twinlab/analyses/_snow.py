"""Fast SNOW pore partitioning and region-to-network geometry (private to :mod:`.network`).

The algorithm is porespy's ``snow2`` (Gostick, Phys. Rev. E 96, 023307, 2017) step by step:
distance transform → Gaussian blur → peaks of the blurred transform in a ball of radius
``r_max`` → trim saddle points → trim peaks nearer to another peak than to solid → marker
watershed of ``-dt`` → region adjacency and geometry (``regions_to_network``), with boundary
pores on the two faces normal to the thickness axis built as porespy's ``add_boundary_regions``
builds them (3 voxels deep). What differs is how it runs:

* ``edt`` with threads and float32, anisotropic natively (distances in units of the finest
  voxel edge, so an isotropic volume gives exactly porespy's numbers);
* peaks, saddle trimming and all region/throat reductions are single numba passes over the
  voxels instead of a Python loop with a binary dilation per pore;
* the watershed is masked to the pore phase (voxels porespy floods through the solid only
  change pore fragments that hold no marker; those stay unlabelled here);
* everything works on a *slab* (a core range along axis 0 plus a halo), so the same code runs
  on the whole volume (one slab, no halo) or slab by slab on a dask volume larger than memory.
  Pores are identified across slabs by their marker (the flat index of the marker's first
  voxel), which numbers them exactly as porespy numbers a whole-volume watershed.

Internally axis 0 is the thickness axis; :mod:`.network` moves axes in and out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cc3d
import edt as _edt
import numba
import numpy as np
import scipy.ndimage as ndi
from scipy.spatial import KDTree
from skimage.segmentation import watershed

BOUNDARY_WIDTH = 3  # voxels, as porespy's snow2 default
SADDLE_MAXITER = 20  # porespy trim_saddle_points default
#: porespy's ``find_peaks`` counts solid as 2 in its maximum filter ("so peaks are not found at the
#: void/solid interface"), so no marker sits where the blurred distance transform is below 2 voxels:
#: pore space farther than that from every such voxel cannot become a pore of its own.
PEAK_FLOOR = 2.0


# ====================================================================================== slab partition
@dataclass
class SlabStats:
    """Per-region and per-throat partial sums of one slab (keys are global marker ids)."""

    ids: np.ndarray  # (n,) uint64 global marker id of each local region
    count: np.ndarray  # voxels
    csum: np.ndarray  # (n, 3) sums of voxel indices (global, axis 0 = thickness)
    ldt_max: np.ndarray  # max of the region's own distance transform (finest-voxel units)
    ldt_arg: np.ndarray  # global flat index of its first maximum
    surf: np.ndarray  # voxels with a face neighbour outside the region
    t_a: np.ndarray  # (m,) global ids of the lower pore of each throat
    t_b: np.ndarray
    t_count: np.ndarray  # voxels of the higher pore that touch the lower one (porespy's rule)
    t_area: np.ndarray  # same, weighted by the touching face's area (µm²)
    t_dtmax: np.ndarray  # max distance transform over those voxels
    t_arg: np.ndarray  # global flat index of its first maximum
    t_perim: np.ndarray  # voxels with dt < 2 (porespy's perimeter count)
    dt_max: float  # max dt over the core (used to check the halo)


def ball_offsets(r_max: float, anis: np.ndarray) -> np.ndarray:
    """Offsets of porespy's ``ps_round(r_max)`` ball (distance < r_max), anisotropic-aware."""
    reach = [int(math.ceil(r_max / a)) for a in anis]
    grid = np.mgrid[tuple(slice(-r, r + 1) for r in reach)].reshape(3, -1).T
    d = np.sqrt(((grid * anis) ** 2).sum(axis=1))
    return np.ascontiguousarray(grid[d < r_max].astype(np.int64))


def partition_slab(mask: np.ndarray, *, anis: np.ndarray, sigma: float, r_max: float, threads: int,
                   offset0: int = 0, full_shape: tuple[int, int, int] | None = None,
                   fragments: str = "porespy"):
    """SNOW partition of a C-contiguous boolean slab.

    Returns ``(regions int32, dt float32, gids uint64, unresolved int64)``: local region labels
    (0 = not pore), the distance transform in finest-voxel units, per local label ``k`` (index
    ``k``) the global marker id, and per layer the pore voxels below the peak floor
    (:func:`unresolved_layers`). ``offset0`` is the global axis-0 index of the slab's first layer.
    """
    full_shape = full_shape or mask.shape
    dt = _edt.edt(mask, anisotropy=tuple(float(a) for a in anis), parallel=threads)
    if sigma > 0:
        blurred = ndi.gaussian_filter(dt, sigma=tuple(sigma / a for a in anis))
        blurred *= mask
    else:
        blurred = dt.copy()
    peaks = _find_peaks(blurred, mask, ball_offsets(r_max, anis))
    unresolved = unresolved_layers(blurred, mask, anis, threads)
    del blurred
    peaks = _trim_saddle_points(peaks, dt)
    peaks = _trim_nearby_peaks(peaks, dt, anis)
    markers, n = cc3d.connected_components(peaks, connectivity=26, return_N=True)
    markers = markers.astype(np.int32, copy=False)
    del peaks
    first = _first_index(markers, n)
    z, rest = np.divmod(first, mask.shape[1] * mask.shape[2])
    gids = ((z + offset0) * (full_shape[1] * full_shape[2]) + rest).astype(np.uint64)
    gids = np.concatenate([[np.uint64(0)], gids])
    # negate in place: a -dt copy would cost 4 more bytes per voxel at the memory peak
    np.negative(dt, out=dt)
    regions = watershed(dt, markers, mask=mask).astype(np.int32, copy=False)
    np.negative(dt, out=dt)
    del markers
    if fragments == "porespy":
        _fill_fragments(regions, mask)
    return regions, dt, gids, unresolved


def unresolved_layers(blurred: np.ndarray, mask: np.ndarray, anis: np.ndarray, threads: int) -> np.ndarray:
    """Per layer of axis 0, the pore voxels at least :data:`PEAK_FLOOR` (finest voxels) from every voxel
    where the blurred distance transform reaches it: no marker can sit in a ball around them, so the
    watershed gives them to the neighbouring pores. With an unblurred transform these are exactly the pore
    voxels that no ball of radius 2 voxels inside the pore space covers (its morphological opening)."""
    reach = _edt.edt(blurred < PEAK_FLOOR, anisotropy=tuple(float(a) for a in anis), parallel=threads)
    return np.count_nonzero(mask & (reach >= PEAK_FLOOR), axis=(1, 2)).astype(np.int64)


def _fill_fragments(regions: np.ndarray, mask: np.ndarray) -> None:
    """Give marker-less pore fragments the labels porespy's unmasked watershed gives them.

    porespy floods the solid as well: after the pore space, the solid and the fragments form
    one plateau flooded breadth-first (6-connected) from every labelled pore voxel, so each
    fragment voxel takes the label of the labelled voxel nearest in taxicab distance (ties may
    differ). Running that flood on the whole volume is 5–6× slower than the masked watershed,
    so it runs here only in boxes around the fragments.
    """
    frag = mask & (regions == 0)
    if not frag.any():
        return
    lab, n = cc3d.connected_components(frag, connectivity=26, return_N=True)
    for i, sl in enumerate(ndi.find_objects(lab)):
        if sl is None:
            continue
        pad = 4
        while True:
            box = tuple(slice(max(s.start - pad, 0), min(s.stop + pad, dim)) for s, dim in zip(sl, regions.shape))
            sub = regions[box]
            if not (sub > 0).any():
                if all(b.start == 0 and b.stop == dim for b, dim in zip(box, regions.shape)):
                    break
                pad *= 2
                continue
            dist, ind = ndi.distance_transform_cdt(sub == 0, metric="taxicab", return_indices=True)
            here = lab[box] == i + 1
            # a source outside the box could be nearer than one inside: grow the box
            edge = min(min(b.start, dim - b.stop) if (b.start > 0 or b.stop < dim) else 1 << 30
                       for b, dim in zip(box, regions.shape))
            if dist[here].max() <= pad or edge >= 1 << 30:
                sub[here] = sub[tuple(ix[here] for ix in ind)]
                break
            pad *= 2


def slab_stats(regions: np.ndarray, dt: np.ndarray, gids: np.ndarray, *, core: tuple[int, int], offset0: int,
               anis: np.ndarray, face_areas: np.ndarray, threads: int,
               full_shape: tuple[int, int, int]) -> SlabStats:
    """Reduce one slab's core layers ``core=(c0, c1)`` to per-region and per-throat partial sums."""
    n = len(gids) - 1
    ldt = _edt.edt(regions, anisotropy=tuple(float(a) for a in anis), black_border=True, parallel=threads)
    plane = full_shape[1] * full_shape[2]
    count, csum, ldt_max, ldt_arg, surf = _region_kernel(regions, ldt, n, core[0], core[1], offset0, plane)
    del ldt
    pa, pb, pv, parea = _throat_voxels(regions, gids, core[0], core[1], face_areas)
    ta, tb, tcount, tarea, tdt, targ, tper = _group_throats(pa, pb, pv, parea, dt, gids, offset0, plane)
    keep = count > 0
    sl = dt[core[0]:core[1]]
    return SlabStats(ids=gids[1:][keep], count=count[keep], csum=csum[keep], ldt_max=ldt_max[keep],
                     ldt_arg=ldt_arg[keep], surf=surf[keep], t_a=ta, t_b=tb, t_count=tcount, t_area=tarea,
                     t_dtmax=tdt, t_arg=targ, t_perim=tper, dt_max=float(sl.max()) if sl.size else 0.0)


def merge_stats(parts: list[SlabStats]) -> dict[str, np.ndarray]:
    """Combine slab partial sums into one table per pore (sorted by id) and per throat."""
    ids = np.concatenate([p.ids for p in parts])
    uid, inv = np.unique(ids, return_inverse=True)
    n = len(uid)
    count = np.bincount(inv, weights=np.concatenate([p.count for p in parts]), minlength=n)
    csum = np.stack([np.bincount(inv, weights=np.concatenate([p.csum[:, k] for p in parts]), minlength=n)
                     for k in range(3)], axis=1)
    surf = np.bincount(inv, weights=np.concatenate([p.surf for p in parts]), minlength=n)
    lmax, larg = _group_argmax(inv, np.concatenate([p.ldt_max for p in parts]),
                               np.concatenate([p.ldt_arg for p in parts]), n)
    ga = np.concatenate([p.t_a for p in parts])
    gb = np.concatenate([p.t_b for p in parts])
    ta = np.minimum(np.searchsorted(uid, ga), max(n - 1, 0))
    tb = np.minimum(np.searchsorted(uid, gb), max(n - 1, 0))
    # a neighbour whose marker no slab owns can only come from a halo too thin; drop it
    ok = (uid[ta] == ga) & (uid[tb] == gb) if n else np.zeros(0, bool)
    parts_t = {k: np.concatenate([getattr(p, k) for p in parts])[ok]
               for k in ("t_count", "t_area", "t_perim", "t_dtmax", "t_arg")}
    ta, tb = ta[ok], tb[ok]
    key = ta.astype(np.int64) * n + tb
    ukey, tinv = np.unique(key, return_inverse=True)
    m = len(ukey)
    tcount = np.bincount(tinv, weights=parts_t["t_count"], minlength=m)
    tarea = np.bincount(tinv, weights=parts_t["t_area"], minlength=m)
    tper = np.bincount(tinv, weights=parts_t["t_perim"], minlength=m)
    tdt, targ = _group_argmax(tinv, parts_t["t_dtmax"], parts_t["t_arg"], m)
    conns = np.stack([ukey // n, ukey % n], axis=1).astype(np.int64)
    return {"ids": uid, "count": count, "centroid": csum / np.maximum(count, 1)[:, None], "surf": surf,
            "ldt_max": lmax, "ldt_arg": larg, "conns": conns, "t_count": tcount, "t_area": tarea,
            "t_perim": tper, "t_dtmax": tdt, "t_arg": targ}


def boundary_face(regions_face: np.ndarray, regions_next: np.ndarray, mask_slab: np.ndarray, *, low: bool,
                  anis: np.ndarray, threads: int):
    """Boundary pores of one face, as porespy's ``add_boundary_regions`` makes them.

    ``regions_face``/``regions_next``: local labels of the face layer and the layer inside it;
    ``mask_slab``: the pore mask from the face inwards (deep enough to hold the largest
    distance, face layer first). Returns per boundary pore: owner local label, area (voxels),
    2D centroid, local inscribed dt max, and for its throat: dt max over the face, its first
    position (2D flat) and the dt < 2 count.
    """
    # a face voxel is dropped when any 26-neighbour (in the face or the next layer) differs
    two = np.stack([regions_face, regions_next])
    pad = np.pad(two, ((0, 0), (1, 1), (1, 1)), mode="edge")
    inner = np.zeros(regions_face.shape, bool)
    h, w = regions_face.shape
    for dz in (0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                inner |= pad[dz, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] != regions_face
    core = (regions_face > 0) & ~inner
    comp, nb = cc3d.connected_components(core, connectivity=4, return_N=True)
    comp = comp.astype(np.int32)
    if nb == 0:
        return None
    idx = np.arange(1, nb + 1)
    owner = ndi.maximum(regions_face, comp, idx).astype(np.int64)
    area = np.bincount(comp.ravel(), minlength=nb + 1)[1:].astype(np.float64)
    yy, xx = np.indices(comp.shape)
    cy = np.bincount(comp.ravel(), weights=yy.ravel(), minlength=nb + 1)[1:] / area
    cx = np.bincount(comp.ravel(), weights=xx.ravel(), minlength=nb + 1)[1:] / area
    # the boundary slab's own inscribed distance: 3 extruded layers, black border all round
    ext = np.ascontiguousarray(np.repeat(comp[None], BOUNDARY_WIDTH, axis=0))
    ldt = _edt.edt(ext, anisotropy=tuple(float(a) for a in anis), black_border=True, parallel=threads)
    lmax = ndi.maximum(ldt.max(axis=0), comp, idx)
    # the distance transform in the layer next to the face, in the edge-padded image
    padded = np.concatenate([np.repeat(mask_slab[:1], BOUNDARY_WIDTH, axis=0), mask_slab])
    dtp = _edt.edt(np.ascontiguousarray(padded), anisotropy=tuple(float(a) for a in anis), parallel=threads)
    layer = dtp[BOUNDARY_WIDTH - 1]
    del dtp
    tmax, targ = _group_argmax(comp.ravel() - 1, layer.ravel().astype(np.float64),
                               np.arange(comp.size, dtype=np.int64), nb, mask=comp.ravel() > 0)
    tper = np.bincount(comp.ravel(), weights=(layer.ravel() < 2), minlength=nb + 1)[1:]
    return {"owner": owner, "area": area, "c1": cy, "c2": cx, "ldt_max": lmax, "t_dtmax": tmax,
            "t_arg": targ, "t_perim": tper}


# ====================================================================================== numba kernels
@numba.njit(cache=True)
def _reflect(i, n):
    # scipy.ndimage mode='reflect' (d c b a | a b c d | d c b a)
    while i < 0 or i >= n:
        if i < 0:
            i = -i - 1
        else:
            i = 2 * n - i - 1
    return i


@numba.njit(parallel=True, cache=True)
def _find_peaks_kernel(b, im, offs, out):
    nz, ny, nx = b.shape
    no = offs.shape[0]
    for z in numba.prange(nz):
        for y in range(ny):
            for x in range(nx):
                if not im[z, y, x]:
                    continue
                v = b[z, y, x]
                ok = True
                for k in range(no):
                    zz = _reflect(z + offs[k, 0], nz)
                    yy = _reflect(y + offs[k, 1], ny)
                    xx = _reflect(x + offs[k, 2], nx)
                    # solid counts as PEAK_FLOOR so no peak sits at the pore/solid interface (porespy)
                    w = b[zz, yy, xx] if im[zz, yy, xx] else np.float32(PEAK_FLOOR)
                    if w > v:
                        ok = False
                        break
                out[z, y, x] = ok


def _find_peaks(blurred: np.ndarray, mask: np.ndarray, offs: np.ndarray) -> np.ndarray:
    # test the 26 nearest offsets first: most voxels fail there and leave the loop early
    order = np.argsort((offs ** 2).sum(axis=1), kind="stable")
    out = np.zeros(mask.shape, bool)
    _find_peaks_kernel(blurred, mask, np.ascontiguousarray(offs[order]), out)
    return out


@numba.njit(cache=True)
def _saddle_kernel(flat_sorted, starts, dt, out, maxiter):
    nz, ny, nx = dt.shape
    ncl = starts.shape[0] - 1
    for c in range(ncl):
        cur = flat_sorted[starts[c]:starts[c + 1]].copy()
        # bounding box of the cluster padded by maxiter + 1 holds every dilation
        z0 = ny0 = nx0 = 1 << 62
        z1 = y1 = x1 = -1
        for f in cur:
            z = f // (ny * nx)
            y = (f // nx) % ny
            x = f % nx
            z0 = min(z0, z); z1 = max(z1, z)
            ny0 = min(ny0, y); y1 = max(y1, y)
            nx0 = min(nx0, x); x1 = max(x1, x)
        pad = maxiter + 1
        bz0 = max(z0 - pad, 0); by0 = max(ny0 - pad, 0); bx0 = max(nx0 - pad, 0)
        bz1 = min(z1 + pad + 1, nz); by1 = min(y1 + pad + 1, ny); bx1 = min(x1 + pad + 1, nx)
        sy = by1 - by0; sx = bx1 - bx0
        mark = np.zeros((bz1 - bz0) * sy * sx, np.int32)
        it = 0
        keep = False
        while it < maxiter:
            it += 1
            tag = 2 * it  # dilation mark; tag + 1 marks the current set
            dil = []
            for f in cur:
                z = f // (ny * nx); y = (f // nx) % ny; x = f % nx
                for dz in range(-1, 2):
                    zz = z + dz
                    if zz < 0 or zz >= nz:
                        continue
                    for dy in range(-1, 2):
                        yy = y + dy
                        if yy < 0 or yy >= ny:
                            continue
                        for dx in range(-1, 2):
                            xx = x + dx
                            if xx < 0 or xx >= nx:
                                continue
                            li = ((zz - bz0) * sy + (yy - by0)) * sx + (xx - bx0)
                            if mark[li] != tag:
                                mark[li] = tag
                                dil.append(zz * ny * nx + yy * nx + xx)
            vmax = np.float32(0.0)
            for f in dil:
                v = dt.flat[f]
                if v > vmax:
                    vmax = v
            for f in cur:
                z = f // (ny * nx); y = (f // nx) % ny; x = f % nx
                mark[((z - bz0) * sy + (y - by0)) * sx + (x - bx0)] = tag + 1
            ext = []
            overlap = False
            same = True
            for f in dil:
                v = dt.flat[f]
                if v == vmax and v > 0:
                    ext.append(f)
                    z = f // (ny * nx); y = (f // nx) % ny; x = f % nx
                    if mark[((z - bz0) * sy + (y - by0)) * sx + (x - bx0)] == tag + 1:
                        overlap = True
                    else:
                        same = False
            if same and len(ext) == cur.shape[0]:
                keep = True  # a true peak
                break
            if not overlap:
                break  # a saddle point
            cur = np.empty(len(ext), np.int64)
            for i in range(len(ext)):
                cur[i] = ext[i]
        if keep:
            for f in cur:
                out.flat[f] = True


def _trim_saddle_points(peaks: np.ndarray, dt: np.ndarray) -> np.ndarray:
    labels, n = cc3d.connected_components(peaks, connectivity=6, return_N=True)
    flat = np.flatnonzero(labels)
    lab = labels.ravel()[flat]
    order = np.argsort(lab, kind="stable")
    starts = np.searchsorted(lab[order], np.arange(1, n + 2))
    out = np.zeros(peaks.shape, bool)
    _saddle_kernel(flat[order].astype(np.int64), starts.astype(np.int64), dt, out, SADDLE_MAXITER)
    return out & peaks


def _trim_nearby_peaks(peaks: np.ndarray, dt: np.ndarray, anis: np.ndarray, f: float = 1.0) -> np.ndarray:
    labels, n = cc3d.connected_components(peaks, connectivity=26, return_N=True)
    if n < 2:
        return peaks
    flat = np.flatnonzero(labels)
    lab = labels.ravel()[flat].astype(np.int64)
    coords = np.unravel_index(flat, peaks.shape)
    cnt = np.bincount(lab, minlength=n + 1)[1:]
    crds = np.stack([np.bincount(lab, weights=c, minlength=n + 1)[1:] / cnt for c in coords], axis=1)
    crds = crds.astype(int)
    L = dt[tuple(crds.T)] + np.arange(n) * 1e-6  # porespy's jiggle keeps ties repeatable
    dist, nn = KDTree(crds * anis).query(crds * anis, k=2)
    hits = np.where(dist[:, 1] <= f * L)[0]
    nearest = nn[:, 1]
    drop = np.unique([i if L[i] < L[nearest[i]] else nearest[i] for i in hits]).astype(np.int64)
    if drop.size == 0:
        return peaks
    lut = np.zeros(n + 1, bool)
    lut[drop + 1] = True
    return peaks & ~lut[labels]


@numba.njit(cache=True)
def _first_index_kernel(markers, n, out):
    flat = markers.ravel()
    for i in range(flat.size):
        m = flat[i]
        if m > 0 and out[m - 1] < 0:
            out[m - 1] = i


def _first_index(markers: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -1, np.int64)
    _first_index_kernel(markers, n, out)
    return out


@numba.njit(cache=True)
def _region_kernel_impl(regions, ldt, n, c0, c1, offset0, plane, count, csum, lmax, larg, surf):
    nz, ny, nx = regions.shape
    for z in range(c0, c1):
        gz = z + offset0
        for y in range(ny):
            for x in range(nx):
                r = regions[z, y, x]
                if r == 0:
                    continue
                k = r - 1
                count[k] += 1
                csum[k, 0] += gz
                csum[k, 1] += y
                csum[k, 2] += x
                v = ldt[z, y, x]
                if v > lmax[k]:
                    lmax[k] = v
                    larg[k] = gz * plane + y * nx + x
                # surface voxel: a face neighbour outside the region (the image edge counts)
                s = (z == 0 or regions[z - 1, y, x] != r or z == nz - 1 or regions[z + 1, y, x] != r
                     or y == 0 or regions[z, y - 1, x] != r or y == ny - 1 or regions[z, y + 1, x] != r
                     or x == 0 or regions[z, y, x - 1] != r or x == nx - 1 or regions[z, y, x + 1] != r)
                if s:
                    surf[k] += 1


def _region_kernel(regions, ldt, n, c0, c1, offset0, plane):
    count = np.zeros(n, np.int64)
    csum = np.zeros((n, 3), np.float64)
    lmax = np.full(n, -1.0, np.float64)
    larg = np.zeros(n, np.int64)
    surf = np.zeros(n, np.int64)
    _region_kernel_impl(regions, ldt, n, c0, c1, offset0, plane, count, csum, lmax, larg, surf)
    return count, csum, lmax, larg, surf


@numba.njit(cache=True)
def _throat_voxels_impl(regions, gids, c0, c1, face_areas, out_a, out_b, out_v, out_area, fill):
    # porespy counts, for the pair (i < j), the voxels of region j face-adjacent to region i;
    # first call (fill=False) counts the entries, the second writes them
    nz, ny, nx = regions.shape
    nbr = np.empty(6, np.int64)
    area = np.empty(6, np.float64)
    k = 0
    for z in range(c0, c1):
        for y in range(ny):
            for x in range(nx):
                r = regions[z, y, x]
                if r == 0:
                    continue
                g = gids[r]
                m = 0
                for d in range(6):
                    zz, yy, xx = z, y, x
                    if d == 0:
                        zz -= 1
                    elif d == 1:
                        zz += 1
                    elif d == 2:
                        yy -= 1
                    elif d == 3:
                        yy += 1
                    elif d == 4:
                        xx -= 1
                    else:
                        xx += 1
                    if zz < 0 or zz >= nz or yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                        continue
                    q = regions[zz, yy, xx]
                    if q == 0 or q == r or gids[q] >= g:
                        continue
                    fa = face_areas[d // 2]
                    found = -1
                    for t in range(m):
                        if nbr[t] == q:
                            found = t
                    if found < 0:
                        nbr[m] = q
                        area[m] = fa
                        m += 1
                    elif fa > area[found]:
                        area[found] = fa
                for t in range(m):
                    if fill:
                        out_a[k] = nbr[t]
                        out_b[k] = r
                        out_v[k] = (z * ny + y) * nx + x
                        out_area[k] = area[t]
                    k += 1
    return k


def _throat_voxels(regions, gids, c0, c1, face_areas):
    fa = np.asarray(face_areas, np.float64)
    e = np.zeros(0, np.int64)
    n = _throat_voxels_impl(regions, gids, c0, c1, fa, e, e, e, np.zeros(0), False)
    a, b, v = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    ar = np.empty(n, np.float64)
    _throat_voxels_impl(regions, gids, c0, c1, fa, a, b, v, ar, True)
    return a, b, v, ar


def _group_throats(pa, pb, pv, parea, dt, gids, offset0, plane):
    if pa.size == 0:
        e = np.zeros(0)
        ei = np.zeros(0, np.int64)
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64), e, e, e, ei, e
    ga, gb = gids[pa], gids[pb]
    key = pa * (len(gids)) + pb
    ukey, inv = np.unique(key, return_inverse=True)
    m = len(ukey)
    vals = dt.ravel()[pv].astype(np.float64)
    ny_nx = dt.shape[1] * dt.shape[2]
    z, rest = np.divmod(pv, ny_nx)
    gflat = (z + offset0) * plane + rest
    tmax, targ = _group_argmax(inv, vals, gflat, m)
    first = np.zeros(m, np.int64)
    first[inv[::-1]] = np.arange(len(inv))[::-1]
    return (ga[first], gb[first], np.bincount(inv, minlength=m).astype(np.float64),
            np.bincount(inv, weights=parea, minlength=m), tmax, targ,
            np.bincount(inv, weights=(vals < 2), minlength=m))


def _group_argmax(inv, vals, pos, n, mask=None):
    """Per group: the max value and the smallest position holding it (porespy's first maximum)."""
    if mask is not None:
        inv, vals, pos = inv[mask], vals[mask], pos[mask]
    order = np.lexsort((pos, -vals, inv))
    inv_s = inv[order]
    first = np.ones(len(order), bool)
    first[1:] = inv_s[1:] != inv_s[:-1]
    vmax = np.full(n, -np.inf)
    arg = np.zeros(n, np.int64)
    vmax[inv_s[first]] = vals[order][first]
    arg[inv_s[first]] = pos[order][first]
    return vmax, arg


# ====================================================================================== drivers
def extract_arrays(mask, *, voxel_size_um, sigma: float, r_max: float, threads: int, boundary: bool,
                   slab: int | None = None, halo: int | None = None, keep_regions: bool = False,
                   fragments: str = "porespy"):
    """SNOW network of ``mask`` (axis 0 = thickness) as flat OpenPNM-style arrays in µm.

    ``mask`` is a numpy array (whole-volume path) or anything sliceable along axis 0 that
    yields numpy slabs (e.g. a dask array) when ``slab`` is given: then the volume is
    processed ``slab`` layers at a time with ``halo`` extra layers on each side, and only
    one extended slab is in memory at once. Returns ``(arrays, info)``.
    """
    shape = tuple(int(s) for s in mask.shape)
    vs = np.asarray(voxel_size_um, float)
    dmin = float(vs.min())
    anis = vs / dmin
    face_areas = np.array([vs[1] * vs[2], vs[0] * vs[2], vs[0] * vs[1]])
    n0 = shape[0]
    if slab is None or slab >= n0:
        bounds = [(0, n0)]
        halo = 0
    else:
        bounds = [(s, min(s + slab, n0)) for s in range(0, n0, slab)]
    parts, faces, regions_out, dt_max, n_unresolved, n_pore = [], {}, None, 0.0, 0, 0
    for s0, s1 in bounds:
        e0, e1 = max(0, s0 - halo), min(n0, s1 + halo)
        ext = np.ascontiguousarray(np.asarray(mask[e0:e1]), dtype=bool)
        regions, dt, gids, unresolved = partition_slab(ext, anis=anis, sigma=sigma, r_max=r_max,
                                                       threads=threads, offset0=e0, full_shape=shape,
                                                       fragments=fragments)
        n_unresolved += int(unresolved[s0 - e0:s1 - e0].sum())
        n_pore += int(np.count_nonzero(ext[s0 - e0:s1 - e0]))
        st = slab_stats(regions, dt, gids, core=(s0 - e0, s1 - e0), offset0=e0, anis=anis,
                        face_areas=face_areas, threads=threads, full_shape=shape)
        dt_max = max(dt_max, st.dt_max)
        if len(bounds) > 1 and st.dt_max > halo:
            from ..errors import InputError
            raise InputError(f"the chunk halo ({halo} layers) is thinner than the largest pore distance "
                             f"({st.dt_max:.1f}); use a larger halo (≥ {2 * math.ceil(st.dt_max) + 30}) "
                             "or bigger chunks")
        parts.append(st)
        if boundary:
            deep = min(e1 - e0, int(math.ceil(float(dt.max()) / anis[0])) + 3)
            if s0 == 0:
                nxt = regions[1] if regions.shape[0] > 1 else np.zeros_like(regions[0])
                faces["low"] = _face_with_gids(boundary_face(regions[0], nxt, ext[:deep], low=True, anis=anis,
                                                             threads=threads), gids)
            if s1 == n0:
                nxt = regions[-2] if regions.shape[0] > 1 else np.zeros_like(regions[-1])
                flip = np.ascontiguousarray(ext[::-1][:deep])
                faces["high"] = _face_with_gids(boundary_face(regions[-1], nxt, flip, low=False, anis=anis,
                                                              threads=threads), gids)
        if keep_regions and len(bounds) == 1:
            regions_out = (regions, gids)
        del regions, dt, ext
    merged = merge_stats(parts)
    arrays = _assemble(merged, faces, shape=shape, vs=vs, dmin=dmin, face_areas=face_areas)
    info = {"dt_max_um": dt_max * dmin, "n_slabs": len(bounds), "halo": halo,
            "unresolved_fraction": n_unresolved / max(n_pore, 1)}
    if regions_out is not None:
        regions, gids = regions_out
        lut = np.zeros(len(gids), np.int64)
        lut[1:] = np.searchsorted(merged["ids"], gids[1:]) + 1
        info["regions"] = lut.astype(np.uint32)[regions]
    return arrays, info


def _face_with_gids(face, gids):
    if face is not None:
        face["owner_gid"] = gids[face["owner"]]
    return face


def _assemble(m, faces, *, shape, vs, dmin, face_areas):
    n_int = len(m["ids"])
    vox = float(np.prod(vs))
    coords = m["centroid"] * vs
    vol = m["count"] * vox
    idia = 2 * np.maximum(m["ldt_max"], 0) * dmin
    lpk = np.stack(np.unravel_index(m["ldt_arg"], shape), axis=1) * vs
    conns = m["conns"]
    tpk = np.stack(np.unravel_index(m["t_arg"], shape), axis=1).astype(float) * vs if len(conns) else \
        np.zeros((0, 3))
    low_sub = np.bincount(conns[:, 0], weights=m["t_count"], minlength=n_int) if len(conns) else 0
    surf = np.maximum(m["surf"] - low_sub, 0) * float(np.mean(face_areas))
    t_area, t_dia, t_per = m["t_area"], 2 * m["t_dtmax"] * dmin, m["t_perim"] * dmin
    b_coords, b_vol, b_idia, b_label = [], [], [], []
    bt = {"conns": [], "area": [], "dia": [], "peak": [], "per": []}
    nb_total = 0
    for side in ("low", "high"):
        f = faces.get(side)
        if f is None:
            continue
        nb = len(f["area"])
        pos0 = -(BOUNDARY_WIDTH + 1) / 2 if side == "low" else shape[0] - 1 + (BOUNDARY_WIDTH + 1) / 2
        c = np.stack([np.full(nb, pos0), f["c1"], f["c2"]], axis=1) * vs
        # the face arrays of the high side were built on the flipped slab: coordinates in-plane unchanged
        b_coords.append(c)
        b_vol.append(f["area"] * BOUNDARY_WIDTH * vox)
        b_idia.append(2 * f["ldt_max"] * dmin)
        b_label.append(np.full(nb, 0 if side == "low" else 1))
        owner = np.searchsorted(m["ids"], f["owner_gid"])
        idx = n_int + nb_total + np.arange(nb)
        bt["conns"].append(np.stack([owner, idx], axis=1))
        bt["area"].append(f["area"] * face_areas[0])
        bt["dia"].append(2 * f["t_dtmax"] * dmin)
        t1, t2 = np.unravel_index(f["t_arg"], shape[1:])
        t0 = np.full(nb, -1.0 if side == "low" else float(shape[0]))
        bt["peak"].append(np.stack([t0, t1, t2], axis=1) * vs)
        bt["per"].append(f["t_perim"] * dmin)
        nb_total += nb
    cat = (lambda a, b: np.concatenate([a] + b) if b else a)
    a = {}
    a["pore.coords"] = cat(coords, b_coords)
    a["pore.region_volume"] = cat(vol, b_vol)
    a["pore.volume"] = a["pore.region_volume"].copy()
    a["pore.equivalent_diameter"] = 2 * (3 * a["pore.region_volume"] / (4 * np.pi)) ** (1 / 3)
    a["pore.inscribed_diameter"] = cat(idia, b_idia)
    a["pore.local_peak"] = cat(lpk, b_coords)
    a["pore.surface_area"] = cat(surf, [np.zeros(len(c)) for c in b_coords])
    a["pore.internal"] = np.arange(n_int + nb_total) < n_int
    side = np.full(n_int + nb_total, -1)
    if b_label:
        side[n_int:] = np.concatenate(b_label)
    a["pore.boundary_low"] = side == 0
    a["pore.boundary_high"] = side == 1
    a["throat.conns"] = cat(conns, bt["conns"]).astype(np.int64).reshape(-1, 2)
    a["throat.cross_sectional_area"] = cat(t_area, bt["area"])
    a["throat.inscribed_diameter"] = cat(t_dia, bt["dia"])
    a["throat.global_peak"] = cat(tpk, bt["peak"]).reshape(-1, 3)
    a["throat.perimeter"] = cat(t_per, bt["per"])
    a["throat.voxel_count"] = cat(m["t_count"], [x / face_areas[0] for x in bt["area"]])
    return a

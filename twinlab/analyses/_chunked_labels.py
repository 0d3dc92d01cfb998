"""Connected-component labels of a dask mask, chunk by chunk (the lazy path of
:func:`twinlab.analyses.conductive.label_network`).

Each chunk is labelled with :func:`scipy.ndimage.label`, its labels offset to be globally unique;
the equivalences across every chunk face are found from the two facing planes (full-extent planes,
so the edge and corner neighbours of 18/26-connectivity are seen too) and merged with a union-find,
here :func:`scipy.sparse.csgraph.connected_components`; the relabelling is lazy. The result equals
the whole-array labelling up to renumbering (tested on odd chunks). Memory: one chunk plus the
chunk-face planes of one slab of chunks.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["label_chunks", "shifted_pair"]


def label_chunks(mask: da.Array, structure: np.ndarray) -> tuple[da.Array, int]:
    """Chunk labels merged across chunk faces. Streams one slab of chunks (one index along axis 0)
    at a time: only that slab's faces and the previous slab's high plane are held, so memory is
    bounded by a slab's faces however large the volume (all faces at once were ~1/10 of the
    volume in int64 at 64³ chunks)."""
    blocks = mask.to_delayed()
    grid = blocks.shape
    sub = (1,) + grid[1:]

    def first_pass(block: np.ndarray):
        lab, n = ndi.label(block, structure=structure)
        faces = {(ax, end): np.take(lab, 0 if end == 0 else -1, axis=ax) for ax in range(3) for end in (0, 1)}
        return int(n), faces

    offsets = np.zeros(grid, dtype=np.int64)
    total = 0
    edges: list[np.ndarray] = []
    previous_high = None
    for iz in range(grid[0]):
        outs = dask.compute(*[dask.delayed(first_pass)(b) for b in blocks[iz].ravel()])
        faces = np.empty(sub, dtype=object)
        for flat, (n, f) in enumerate(outs):
            idx = (0,) + np.unravel_index(flat, grid[1:])
            offsets[(iz,) + idx[1:]] = total
            faces[idx] = {k: np.where(v > 0, v.astype(np.int64) + total, 0) for k, v in f.items()}
            total += n
        del outs
        for ax in (1, 2):  # faces between chunks inside the slab
            others = [a for a in range(3) if a != ax]
            for i in range(grid[ax] - 1):
                edges.append(_face_edges(_assemble_plane(faces, ax, i, 1, others, sub),
                                         _assemble_plane(faces, ax, i + 1, 0, others, sub), ax, others, structure))
        low = _assemble_plane(faces, 0, 0, 0, [1, 2], sub)
        if previous_high is not None:  # the face to the previous slab
            edges.append(_face_edges(previous_high, low, 0, [1, 2], structure))
        previous_high = _assemble_plane(faces, 0, 0, 1, [1, 2], sub)
        del faces
    mapping = np.zeros(total + 1, dtype=np.int64)
    n_final = 0
    if total:
        code = np.unique(np.concatenate(edges)) if edges else np.zeros(0, np.int64)
        r, c = code // _PAIR_BASE, code % _PAIR_BASE
        graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r - 1, c - 1)), shape=(total, total))
        n_final, comp = connected_components(graph, directed=False)
        # number clusters by first appearance (block order), for a stable display
        _, first = np.unique(comp, return_index=True)
        order = np.argsort(np.argsort(first))
        mapping[1:] = order[comp] + 1
    out_dtype = np.int32 if n_final < 2**31 - 1 else np.int64

    def relabel(block: np.ndarray, block_info=None) -> np.ndarray:
        loc = tuple(block_info[0]["chunk-location"])
        lab, _ = ndi.label(block, structure=structure)
        lab = lab.astype(np.int64)
        lab[lab > 0] += offsets[loc]
        return mapping[lab].astype(out_dtype)

    return mask.map_blocks(relabel, dtype=out_dtype), int(n_final)



_PAIR_BASE = 2**31  # a label pair (a, b) is coded a * base + b


def _face_edges(lo: np.ndarray, hi: np.ndarray, ax: int, others: list[int], structure: np.ndarray) -> np.ndarray:
    """Distinct label pairs (coded) joined across a face: +1 along ``ax`` and any in-plane shift the
    structure allows; a face holds ~area voxel pairs but few distinct labels."""
    codes = []
    for off in np.argwhere(structure):
        if off[ax] != 2:
            continue
        a, b = shifted_pair(lo, hi, [int(off[a]) - 1 for a in others])
        keep = (a > 0) & (b > 0)
        codes.append(np.unique(a[keep] * _PAIR_BASE + b[keep]))
    return np.concatenate(codes) if codes else np.zeros(0, np.int64)


def _assemble_plane(faces, ax: int, i: int, end: int, others: list[int], grid) -> np.ndarray:
    """Glue the ``end`` planes of all chunks with index ``i`` along ``ax`` into one full-extent plane."""
    rows = []
    for j in range(grid[others[0]]):
        row = []
        for k in range(grid[others[1]]):
            idx = [0, 0, 0]
            idx[ax], idx[others[0]], idx[others[1]] = i, j, k
            row.append(faces[tuple(idx)][(ax, end)])
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def shifted_pair(lo: np.ndarray, hi: np.ndarray, shift: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Views of ``lo`` at p and ``hi`` at p + shift over the positions where both exist."""
    sl_lo, sl_hi = [], []
    for s, n in zip(shift, lo.shape):
        sl_lo.append(slice(max(0, -s), n - max(0, s)))
        sl_hi.append(slice(max(0, s), n - max(0, -s)))
    return lo[tuple(sl_lo)].ravel(), hi[tuple(sl_hi)].ravel()

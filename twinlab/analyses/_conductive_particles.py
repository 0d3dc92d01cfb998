"""The particle rule: conductive clusters of lithium particles under sub-voxel films (SCIENCE.md §7).

The calender's default LMP shell is a ~100 nm Li2CO3 film, a state of each particle's surface
voxels (``shells="membrane"``, mechanics/_contacts.py), not a phase: its surface voxels are lithium
carrying an intact/broken flag and are shown as the shell phase. Pass the particle instances
(``particles=``, the calender's ``CalenderState.particles`` or a step twin's ``labels/particles``)
and the clusters are decided per particle, not per voxel:

* two lithium particles **touch** where a voxel of one is a 26-neighbour of a voxel of the other
  (the default ``connectivity`` of this rule): the voxelised particles, taken as closed cubes, share
  a face, an edge or a corner. A sub-voxel contact between two spheres digitises into a face, an
  edge or a corner depending on how the grid cuts it, so a face-only rule follows the grid (stop 29:
  6-connected voxel activation at the percolation threshold 0.54 vs 0.73 at 6 vs 4 µm voxels; stop 30,
  this rule on the same states: 0.83 vs 0.90 with face contacts only, 0.995 vs 0.943 with edge or
  corner contacts too — 18 and 26 give the same there);
* they are **electronically joined** where they touch and the film is broken on both sides of that
  contact: each particle has at least one broken patch (shell voxel) among its voxels that touch the
  other particle. A contact is one interface below the voxel size: both films must have cracked
  there, but which of their voxels face each other is the grid's choice, not the contact's (on a
  3 µm grid the broken patches of a diagonal chain of touching spheres do not face each other while
  the particles share faces: tests/test_conductive.py). A film intact on either side insulates; a
  particle with no film at all (no shell voxel) is bare lithium and conducts wherever it touches;
* a particle **joins the collector** where one of its broken patches touches a collector voxel (26-
  neighbour), or lies on the collector face with ``collector="face"``;
* clusters are the connected components of that particle graph, and the activation keeps its
  definition with each particle's whole volume as lithium (its film voxels are lithium under a
  sub-voxel film: the calender turns them into lithium).

:func:`twinlab.analyses.conductive.conductive_clusters` (``particles=``) applies this rule; it owns the
rest (phases, collector, statistics).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .._validation import require_integer_labels
from ..errors import InputError
from ._chunked_labels import shifted_pair


def film_clusters(particles, broken, *, film, particle_voxels, adjacent, structure):
    """Clusters of particles under sub-voxel films (the rule of the module docs).

    ``broken``: the broken film patches; ``film``: every patch (shell voxel); ``particle_voxels``:
    lithium and film voxels, each of which must carry a particle id; ``adjacent``: voxels that touch
    the collector. Returns (cluster id per voxel, n clusters, particle voxels per cluster id 0..n,
    percolating flag per cluster id 0..n).
    """
    if particles.shape != particle_voxels.shape:
        raise InputError(f"particles has shape {particles.shape}, labels {particle_voxels.shape}; pass the particle "
                         "instances of the same twin step")
    require_integer_labels(particles)
    inst = np.where(particle_voxels, particles, 0)
    orphans = int(np.count_nonzero(particle_voxels & (inst <= 0)))
    if orphans:
        raise InputError(f"{orphans} lithium/shell voxels carry no particle id (particles ≤ 0 there): every "
                         "particle voxel must belong to a particle for the particle rule")
    ids, node_of = np.unique(inst[particle_voxels], return_inverse=True)
    node = np.full(inst.shape, -1, np.int64)
    node[particle_voxels] = node_of
    filmed = np.zeros(ids.size, bool)
    filmed[node[film]] = True
    # the voxels through which a particle conducts at a contact: its broken patches, or all of it if bare
    opening = broken.astype(bool) & particle_voxels
    opening[particle_voxels] |= ~filmed[node_of]
    graph = _open_contacts(node, opening, structure, ids.size)
    n, comp = connected_components(graph, directed=False)
    labels = np.zeros(inst.shape, np.int32)
    labels[particle_voxels] = comp[node_of] + 1
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    perc = np.zeros(n + 1, bool)
    perc[np.unique(labels[adjacent & opening])] = True
    perc[0] = False
    return labels, n, sizes, perc


def _open_contacts(node, opening, structure, n):
    """Sparse graph of particle pairs joined at a contact: the pair touches (voxels that are neighbours
    in ``structure``) and each side has an opening voxel among its voxels that touch the other."""
    opened = []  # (particle, the particle it touches) where the first has an opening voxel on that contact
    centre = np.array(structure.shape) // 2
    for off in np.argwhere(structure) - centre:
        if tuple(off) <= (0, 0, 0):  # each neighbour pair once: the lexicographically positive half
            continue
        a, b = shifted_pair(node, node, [int(o) for o in off])
        oa, ob = shifted_pair(opening, opening, [int(o) for o in off])
        touch = (a >= 0) & (b >= 0) & (a != b)
        a, b, oa, ob = a[touch], b[touch], oa[touch], ob[touch]
        opened.append(a[oa] * n + b[oa])
        opened.append(b[ob] * n + a[ob])
    codes = np.unique(np.concatenate(opened)) if opened else np.zeros(0, np.int64)
    src, dst = codes // n, codes % n
    both = np.isin(dst * n + src, codes)  # open from the other side too
    return coo_matrix((np.ones(int(both.sum()), np.int8), (src[both], dst[both])), shape=(n, n))


def film_particles(twin: Any) -> Any:
    """A calendered step twin's particle instances where its shells were sub-voxel films (the calender
    writes ``labels/particles`` with ``labels/broken_shell`` only then), else None."""
    if twin.has_labels("broken_shell") and twin.has_labels("particles"):
        return twin.labels("particles")
    return None

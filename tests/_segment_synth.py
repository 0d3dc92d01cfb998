"""Small synthetic electrodes with ground truth for the segmentation tests (no generator needed).

Overlapping spheres of active material (instances kept), a carbon-binder domain in the necks
between particles (pore voxels inside the morphological closing of the active phase, plus
a few blobs near the surface), pore elsewhere. Phase values follow DEFAULT_PHASES (0 pore,
1 active, 2 cbd).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def make_electrode(shape=(48, 96, 96), *, target_active=0.5, rmin=6.0, rmax=11.0, max_overlap=0.1,
                   cbd_closing=3, cbd_shell=2, blob_fraction=0.3, seed=0):
    rng = np.random.default_rng(seed)
    inst = np.zeros(shape, np.uint32)
    k = 0
    filled = 0
    total = int(np.prod(shape))
    for _ in range(5000):
        if filled >= target_active * total:
            break
        r = rng.uniform(rmin, rmax)
        c = rng.uniform(0, 1, 3) * np.array(shape)
        sl = tuple(slice(max(0, int(ci - r - 1)), min(s, int(ci + r + 2))) for ci, s in zip(c, shape))
        g = [np.arange(s.start, s.stop).reshape([-1 if a == ax else 1 for a in range(3)]) for ax, s in enumerate(sl)]
        m = sum((gi - ci) ** 2 for gi, ci in zip(g, c)) <= r * r
        sub = inst[sl]
        if not m.any() or (sub[m] > 0).mean() > max_overlap:
            continue
        k += 1
        new = m & (sub == 0)
        sub[new] = k
        filled += int(new.sum())
    active = inst > 0
    ball = ndi.generate_binary_structure(3, 1)
    closed = ndi.binary_closing(active, structure=ball, iterations=cbd_closing, border_value=0)
    near = ndi.binary_dilation(active, structure=ball, iterations=cbd_shell) & ~active
    field = ndi.gaussian_filter(rng.normal(size=shape), 2.0)
    blobs = field > np.quantile(field, 1.0 - blob_fraction)
    cbd = (closed & ~active) | (near & blobs)
    phases = np.zeros(shape, np.uint8)
    phases[active] = 1
    phases[cbd] = 2
    return phases, inst

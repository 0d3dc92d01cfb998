"""Populate numba's on-disk caches for every kernel the CLI runs, so a user's first command pays
no compilation (``make setup`` runs ``python -m twinlab._warmup``).

Every numba kernel of twinlab is ``cache=True``: the machine code of each signature it is called
with is written next to its module (``__pycache__``; numba falls back to ``~/.cache/numba`` or
``$NUMBA_CACHE_DIR`` where that is not writable) and reused by later processes. Compiling happens
on the first call of each signature, so the warm-up runs the demo's whole chain — reconstruct
(align, destripe, NLM denoise), segment, every analysis, calendering of a composite cathode and of a
plastic lithium-metal anode (the default multigrid-preconditioned mechanics; the optional FFT
preconditioner compiles on its first use) — on tiny synthetic volumes (~seconds of work, the rest
is compilation).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def warm_up(folder: Path) -> float:
    """Run the chain on tiny volumes in ``folder``; returns the wall time (s)."""
    import numpy as np
    import tifffile

    from .datasets.generators import make_cathode, make_lmp_anode
    from .datasets.simulators import render_fibsem
    from .pipeline import parse_config, run_sample

    start = time.perf_counter()
    cathode = make_cathode(shape=(20, 60, 20), voxel_size_um=2.0, seed=0)
    stack = render_fibsem(cathode.phases, voxel_size_um=cathode.voxel_size, seed=0)
    tifffile.imwrite(folder / "cathode.tif", np.asarray(stack.raw))
    anode = make_lmp_anode(shape=(28, 56, 28), seed=0)
    tifffile.imwrite(folder / "anode.tif", anode.phases)
    vs = list(cathode.voxel_size.as_tuple())
    runs = [
        {"name": "warm_cathode", "output": str(folder / "cathode.twin.zarr"),
         "input": {"path": str(folder / "cathode.tif"), "voxel_size": vs},
         "design": "ncm622", "thickness_axis": "y", "collector_side": "low", "chunks": 16,
         "segment": {"phases": ["pore", "cbd", "active", "collector"]},
         "calender": {"ratios": [0.1], "steps": 1, "analyses": ["conductive"], "options": {"window": 16}}},
        {"name": "warm_anode", "output": str(folder / "anode.twin.zarr"),
         "input": {"path": str(folder / "anode.tif"), "kind": "labels",
                   "voxel_size": list(anode.voxel_size.as_tuple())},
         "design": "lmp", "thickness_axis": "y", "collector_side": "low", "chunks": 16,
         "analyses": {"run": ["rev", "morphology", "transport", "conductive"]},
         "calender": {"ratios": [0.1], "steps": 1, "analyses": ["conductive"], "options": {"window": 16}}},
    ]
    for cfg in runs:
        run_sample(parse_config(cfg), overwrite=True)
    _warm_transport_levels()
    return time.perf_counter() - start


def _warm_transport_levels() -> None:
    """The transport multigrid's kernels on a level between the finest and the factorised coarsest
    (their float32 right-hand sides are a signature of their own): the chain's tiny volumes coarsen once
    straight to the direct solve (≤ ``COARSE_CELLS`` cells), so a volume of over 8× that is solved here;
    without it the demo's first transport stage compiled them (+18 s, stop 35)."""
    import math

    from .analyses._multigrid import COARSE_CELLS
    from .analyses.transport import compute_conductivity, compute_tortuosity
    from .datasets.generators import make_cathode

    n = math.ceil((16 * COARSE_CELLS) ** (1 / 3))
    phases = make_cathode(shape=(n, n, n), voxel_size_um=1.0, seed=0).phases
    compute_tortuosity(phases, phase="pore", axis=0)  # in-plane: the collector covers a y face
    compute_conductivity(phases, axis=0)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="twinlab-warmup-") as tmp:
        seconds = warm_up(Path(tmp))
    print(f"twinlab warm-up: numba caches populated in {seconds:.0f} s")


if __name__ == "__main__":
    main()

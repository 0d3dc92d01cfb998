"""File ▸ Open Sample: the synthetic NCM622 cathode (FIB-SEM stack + truth) and LMP anode.

Each sample is written once as a twin in the user cache (``~/.cache/twinlab/samples`` or
``$TWINLAB_SAMPLE_CACHE``) and opened from there, so every widget can write results back to it.
"""

from __future__ import annotations

import os
from pathlib import Path

from twinlab.datasets.registry import save_sample
from twinlab.twin import Twin

from ._reader import twin_layers


def _cache() -> Path:
    return Path(os.environ.get("TWINLAB_SAMPLE_CACHE", Path.home() / ".cache" / "twinlab" / "samples"))


def sample_twin(name: str) -> Twin:
    path = _cache() / f"{name}.twin.zarr"
    try:
        return Twin.open(path)
    except Exception:  # missing or damaged: (re)write it
        return save_sample(name, path, overwrite=True)


def cathode_sample() -> list:
    return twin_layers(sample_twin("demo_cathode_fibsem"))


def lmp_anode_sample() -> list:
    return twin_layers(sample_twin("demo_lmp_anode"))

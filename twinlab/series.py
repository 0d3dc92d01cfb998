"""A calendering series folder on disk: its member twins, in calendering order.

Owned here (not by the report or the pipeline) because the pipeline, the study and the report
all read series folders, and the report must not depend on the modules that write them.
"""

from __future__ import annotations

import os
from pathlib import Path

from .twin import Twin


def open_series(folder: str | os.PathLike) -> list[Twin]:
    """The twins of a calendering series folder, in calendering order (as the solver wrote them)."""
    folder = Path(folder)
    twins = [Twin.open(p) for p in sorted(folder.glob("*.twin.zarr"))]
    return sorted(twins, key=series_position)


def series_position(twin: Twin) -> float:
    """A member's place in its series: its calendering ratio (or density), 0 when it has none."""
    if "calender" in twin.result_names:
        r = twin.load_result("calender")
        for key in ("ratio", "calendering_ratio", "density_g_cm3"):
            if isinstance(r.get(key), (int, float)):
                return float(r[key])
    return 0.0


__all__ = ["open_series", "series_position"]

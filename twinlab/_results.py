"""Frozen result dataclasses and their JSON form.

Every analysis returns a frozen dataclass deriving from :class:`Result`; ``to_dict()``
gives plain JSON types (numpy values converted, ``inf`` kept as the string "inf"), which
is what the twin stores and what ``--json`` prints.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples, paths and dataclasses to plain JSON types."""
    if hasattr(obj, "to_dict") and not isinstance(obj, type):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # JSON has no inf/nan; "inf" reads back unambiguously with float()
    if isinstance(obj, Path):
        return str(obj)
    return obj


@dataclasses.dataclass(frozen=True)
class Result:
    """Base of analysis results: a frozen dataclass with ``to_dict()``.

    Large arrays (fields, per-voxel data) do not belong in a result; keep them as separate
    outputs and store them with ``Twin.write_field`` / ``Twin.save_result(arrays=...)``.
    """

    def to_dict(self) -> dict[str, Any]:
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


def format_value(value: Any, *, missing: str = "-") -> str:
    """A table cell: floats to 4 significant digits, ``missing`` for None, anything else as str."""
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def text_table(rows: list[tuple[str, ...]]) -> str:
    """Rows of strings (the first is the header) as aligned plain-text columns; the last column is
    left ragged so long paths or messages do not widen the others."""
    if not rows:
        return ""
    n = len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(n - 1)]
    return "\n".join("  ".join([r[i].ljust(widths[i]) for i in range(n - 1)] + [r[-1]]).rstrip() for r in rows)

"""Analyses of a twin. Each module owns one topic and exposes public functions on arrays plus
``analyze_twin(twin, **options) -> Result``, which reads what it needs from the twin, stores
its result (and any fields) back in the twin with provenance, and returns the result.

The registry below is how the CLI (`twinlab analyze --only …`) and the pipeline find them.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from .._validation import require_3d_volume
from ..errors import InputError

#: analysis name → module that defines ``analyze_twin``
ANALYSES: dict[str, str] = {
    "rev": "twinlab.analyses.rev",
    "morphology": "twinlab.analyses.morphology",
    "network": "twinlab.analyses.network",
    "transport": "twinlab.analyses.transport",
    "cracks": "twinlab.analyses.cracks",
    "conductive": "twinlab.analyses.conductive",
}

#: analyses that need a 3D volume: a one-slice (2D) twin is refused with a one-line error
#: (paths, surfaces and sampling windows have no 2D meaning); cracks per particle work on a slice
NEEDS_3D = frozenset({"rev", "morphology", "network", "transport", "conductive"})


def check_analysis_names(names: Any, *, where: str = "analyses") -> list[str]:
    """Refuse unknown analysis names up front (before the first analysis runs)."""
    names = list(names)
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise InputError(f"{where}: unknown analysis {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(ANALYSES)}")
    return names


def run_analysis(name: str, twin: Any, **options: Any) -> Any:
    """Run analysis ``name`` on ``twin``; options it does not accept are ignored (shared CLI flags)."""
    if name not in ANALYSES:
        raise InputError(f"unknown analysis {name!r}; choose from {', '.join(ANALYSES)}")
    if name in NEEDS_3D:
        require_3d_volume(twin.shape, analysis=f"analysis {name!r}")
    func = importlib.import_module(ANALYSES[name]).analyze_twin
    params = inspect.signature(func).parameters
    accepts_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in options.items() if v is not None and (accepts_all or k in params)}
    return func(twin, **kwargs)

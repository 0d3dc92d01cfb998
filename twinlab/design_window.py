"""The design window: the range of a calendering variable where every user criterion holds.

A :class:`Criterion` bounds one tabulated quantity (``crackable_100_mpa <= 5 %``,
``electronic_conductivity >= 1 S/m``). :func:`design_window` checks every criterion on every row
of a study table (rows = calendered members, sorted by the variable ``x``: density or ratio) and
returns the longest run of consecutive members where all hold, with the criterion that limits
each end: the one that fails on the neighbouring member just outside the window. An end with no
neighbour is *open*: the window may extend beyond the studied range. A value that was not
computed fails its criterion (a window is only claimed where it was checked).

Example
-------
>>> rows = [{"density": d, "crackable_100_mpa": c} for d, c in ((2.6, 0.0), (2.8, 2.0), (3.0, 9.0))]
>>> w = design_window(rows, [parse_criterion("crackable_100_mpa<=5%", {"crackable_100_mpa": "%"})],
...                   x_key="density", x_unit="g/cm³")
>>> (w.low, w.high, w.high_limit[0]["key"])
(2.6, 2.8, 'crackable_100_mpa')
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ._results import Result
from .errors import InputError

#: Spellings of the same unit → the catalogue's spelling.
_UNIT_ALIASES = {"": "1", "-": "1", "1": "1", "%": "%", "pct": "%", "s/m": "S/m", "sm-1": "S/m", "ms/cm": "mS/cm",
                 "um": "µm", "µm": "µm", "micrometer": "µm", "mpa": "MPa", "g/cm3": "g/cm³", "g/cm³": "g/cm³",
                 "m2/m3": "m²/m³", "m²/m³": "m²/m³", "1/m": "m²/m³", "mah/cm2": "mAh/cm²", "mah/cm²": "mAh/cm²"}
#: (given unit, quantity unit) → factor from the given to the quantity's unit.
_CONVERSIONS = {("%", "1"): 0.01, ("1", "%"): 100.0, ("mS/cm", "S/m"): 0.1}
_OPS = {"<=": "max", "≤": "max", ">=": "min", "≥": "min"}


@dataclass(frozen=True)
class Criterion:
    """``key`` must stay at most (``kind="max"``) or at least (``"min"``) ``limit`` in ``unit``."""

    key: str
    kind: str  # "max" | "min"
    limit: float
    unit: str

    def holds(self, value: Any) -> bool:
        v = _as_float(value)
        if v is None or math.isnan(v):
            return False
        return v <= self.limit if self.kind == "max" else v >= self.limit

    def deviation(self, value: Any) -> float | None:
        """Signed distance by which ``value`` violates the limit (> 0 = violated), in ``unit``."""
        v = _as_float(value)
        if v is None or math.isnan(v):
            return None
        return v - self.limit if self.kind == "max" else self.limit - v

    def text(self) -> str:
        return f"{self.key} {'≤' if self.kind == 'max' else '≥'} {self.limit:g} {_unit_text(self.unit)}".rstrip()

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "limit": self.limit, "unit": self.unit, "text": self.text()}


@dataclass(frozen=True)
class DesignWindow(Result):
    """The window ``[low, high]`` of ``x_key`` (members' values; None when empty) and its limits.

    ``low_limit`` / ``high_limit``: the criteria that fail on the member just outside each end,
    each ``{"key", "text", "value", "deviation", "at"}``; ``None`` when that end is open (the
    window reaches the studied range's end). ``checks``: per member, per criterion pass/fail.
    """

    x_key: str
    x_unit: str
    criteria: tuple[dict, ...]
    low: float | None
    high: float | None
    members: tuple[float, ...]  # x of the members inside the window
    low_limit: tuple[dict, ...] | None
    high_limit: tuple[dict, ...] | None
    checks: tuple[dict, ...] = field(repr=False, default=())
    note: str = ""

    @property
    def empty(self) -> bool:
        return self.low is None

    def line(self) -> str:
        """The window in one line, e.g. ``design window: 2.80–3.20 g/cm³ (3 of 8 members); low end
        limited by q_eff_fraction_2C ≥ 0.9 (0.86 at 2.60), high end by crackable_100_mpa ≤ 5 % (7.1 at 3.40)``."""
        unit = _unit_text(self.x_unit)
        if not self.criteria:
            return "design window: no criteria given"
        if self.empty:
            return f"design window: empty — {self.note}"
        n = len(self.checks)
        span = f"{self.low:.3g}–{self.high:.3g} {unit}".rstrip() if self.high != self.low else \
            f"{self.low:.3g} {unit} only".rstrip()
        return (f"design window: {span} ({len(self.members)} of {n} members); "
                f"{_end_text('low', self.low_limit)}, {_end_text('high', self.high_limit)}")


def parse_value(text: str | float, unit: str, *, what: str) -> float:
    """A number with an optional unit (``"5"``, ``"5 %"``, ``"0.9"``, ``"90%"``, ``"1 S/m"``) in ``unit``."""
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*", str(text))
    if not m:
        raise InputError(f"{what}: {text!r} is not a number (optionally followed by a unit, e.g. '5 %')")
    value, want = float(m.group(1)), _canonical_unit(unit)
    if not m.group(2):
        return value  # a bare number is in the quantity's own unit
    given = _canonical_unit(m.group(2))
    if given == want:
        return value
    factor = _CONVERSIONS.get((given, want))
    if factor is None:
        raise InputError(f"{what}: unit {m.group(2)!r} does not fit this quantity, which is in "
                         f"{_unit_text(want) or 'no unit (a fraction)'}; e.g. '{value:g} {_unit_text(want)}'".rstrip())
    return value * factor


def parse_criterion(text: str, units: Mapping[str, str]) -> Criterion:
    """``"KEY<=VALUE[UNIT]"`` or ``"KEY>=VALUE[UNIT]"`` → :class:`Criterion`; ``units`` maps the
    known quantity keys to their units (the study's columns)."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(<=|>=|≤|≥)\s*(.+?)\s*", text)
    if not m:
        raise InputError(f"criterion {text!r} must read QUANTITY<=VALUE or QUANTITY>=VALUE, e.g. "
                         "'crackable_100_mpa<=5%'")
    key, op, value = m.groups()
    return make_criterion(key, _OPS[op], value, units)


def make_criterion(key: str, kind: str, value: str | float, units: Mapping[str, str]) -> Criterion:
    """A criterion on ``key`` (which must be one of ``units``), ``value`` parsed in its unit."""
    if key not in units:
        raise InputError(f"unknown quantity {key!r} in a criterion; the study tabulates: {', '.join(sorted(units))}")
    unit = units[key]
    return Criterion(key, kind, parse_value(value, unit, what=f"criterion on {key}"), _canonical_unit(unit) or unit)


def design_window(rows: Sequence[Mapping[str, Any]], criteria: Sequence[Criterion], *, x_key: str,
                  x_unit: str) -> DesignWindow:
    """The longest run of consecutive rows (sorted by ``x_key``) where every criterion holds.

    Ties between equally long runs go to the lower ``x``. With no criteria every row passes.
    """
    ordered = sorted(rows, key=lambda r: float(r[x_key]))
    xs = [float(r[x_key]) for r in ordered]
    checks = []
    passing = []
    for row, x in zip(ordered, xs):
        entry = {"x": x, "results": []}
        ok = True
        for c in criteria:
            value = row.get(c.key)
            holds = c.holds(value)
            ok &= holds
            entry["results"].append({"key": c.key, "text": c.text(), "value": _as_float(value), "holds": holds,
                                     "deviation": c.deviation(value)})
        entry["passed"] = ok
        checks.append(entry)
        passing.append(ok)
    best: tuple[int, int] | None = None
    i = 0
    while i < len(passing):
        if passing[i]:
            j = i
            while j + 1 < len(passing) and passing[j + 1]:
                j += 1
            if best is None or j - i > best[1] - best[0]:
                best = (i, j)
            i = j + 1
        else:
            i += 1
    crit = tuple(c.to_dict() for c in criteria)
    if best is None:
        return DesignWindow(x_key, x_unit, crit, None, None, (), None, None, tuple(checks), _empty_note(checks))
    lo, hi = best
    note = "" if sum(passing) == hi - lo + 1 else \
        f"members outside the window also pass at {x_key} = {', '.join(f'{x:g}' for x, p in zip(xs, passing) if p and not xs[lo] <= x <= xs[hi])}"
    return DesignWindow(x_key, x_unit, crit, xs[lo], xs[hi], tuple(xs[lo:hi + 1]),
                        _failures(checks[lo - 1]) if lo > 0 else None,
                        _failures(checks[hi + 1]) if hi + 1 < len(checks) else None, tuple(checks), note)


# ====================================================================================== helpers
def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _canonical_unit(unit: str) -> str | None:
    key = unit.strip().replace(" ", "").replace("⁻¹", "-1")
    return _UNIT_ALIASES.get(key.lower(), _UNIT_ALIASES.get(key, key or None))


def _unit_text(unit: str) -> str:
    return "" if unit == "1" else unit


def _failures(check: dict) -> tuple[dict, ...]:
    return tuple({**r, "at": check["x"]} for r in check["results"] if not r["holds"])


def _end_text(end: str, limits: tuple[dict, ...] | None) -> str:
    if limits is None:
        return f"{end} end open (the studied range ends there: extend it)"
    parts = [f"{r['text']} ({_value_text(r['value'])} at {r['at']:.3g})" for r in limits]
    return f"{end} end limited by {'; '.join(parts)}"


def _value_text(value: float | None) -> str:
    return "not computed" if value is None else f"{value:.3g}"


def _empty_note(checks: list[dict]) -> str:
    if not checks:
        return "no members"
    counts: dict[str, int] = {}
    for entry in checks:
        for r in entry["results"]:
            counts.setdefault(r["text"], 0)
            counts[r["text"]] += r["holds"]
    return "no member meets every criterion (" + ", ".join(f"{t} holds on {n} of {len(checks)}"
                                                          for t, n in counts.items()) + ")"


__all__ = ["Criterion", "DesignWindow", "design_window", "make_criterion", "parse_criterion", "parse_value"]

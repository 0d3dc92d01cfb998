"""Is the phase order right? A segmentation's phase fractions against the expected ones.

Threshold methods name the grey-level classes in the order the user lists the phases (dark →
bright). When the image's real order differs (e.g. pore < active < CBD instead of pore < CBD <
active), every voxel is still classified, just under the wrong names: the fractions of two
phases come out exchanged. The check compares the fractions of the histogram's classes with
the expected ones (the twin's design; without one, the NCM622 preset for a cathode of a known
NCM material) and warns when exchanging two phases' names fits far better than the order given.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Mapping, Sequence

from ..phases import PhaseTable

#: a swap is reported when it cuts the summed absolute fraction error by more than this …
MIN_GAIN = 0.1
#: … and to less than this share of the error of the order given
MAX_RATIO = 0.5
_NCM = ("NCM622", "NCM811")


def expected_fractions(design: Any, phases: Sequence[str], table: PhaseTable) -> tuple[dict[str, float], str] | None:
    """Expected volume fractions (CBD as the nanoporous domain a segmentation sees) and their source."""
    from ..design import ElectrodeDesign, ncm622_cathode

    if design is not None:
        d = design if isinstance(design, ElectrodeDesign) else ElectrodeDesign.from_dict(design)
        return d.volume_fractions(cbd_as="domain"), f"the design {d.name or ''}".strip()
    if "active" in phases and "cbd" in phases and table["active"].material in _NCM:
        return ncm622_cathode().volume_fractions(cbd_as="domain"), "a typical NCM622 cathode (no design in the twin)"
    return None


def check_phase_order(fractions: Mapping[str, float], phases: Sequence[str], *, expected: Mapping[str, float],
                      source: str = "the design", ordered: bool = True) -> tuple[str, ...]:
    """Warnings (empty when none) for a likely swap of two phases' names.

    Parameters
    ----------
    fractions : segmented volume fraction per phase name
    phases : the phases as given to the segmentation (dark → bright when ``ordered``)
    expected : expected volume fraction per phase name
    source : what ``expected`` comes from, for the message
    ordered : threshold methods (the fix is a new dark → bright order); False for a classifier
    """
    common = [p for p in phases if p in expected and p in fractions]
    if len(common) < 2:
        return ()
    seg_total = sum(fractions[p] for p in common) or 1.0
    exp_total = sum(expected[p] for p in common) or 1.0
    seg = {p: fractions[p] / seg_total for p in common}
    exp = {p: expected[p] / exp_total for p in common}

    def error(assign: Mapping[str, float]) -> float:
        return sum(abs(assign[p] - exp[p]) for p in common)

    given = error(seg)
    best = None
    for a, b in combinations(common, 2):
        swapped = dict(seg, **{a: seg[b], b: seg[a]})
        e = error(swapped)
        if best is None or e < best[0]:
            best = (e, a, b)
    assert best is not None
    e, a, b = best
    if not (given - e > MIN_GAIN and e < MAX_RATIO * given):
        return ()
    fix = ("list --phases dark → bright as " + ",".join(b if p == a else a if p == b else p for p in phases)
           if ordered else "check the scribbles of these two phases")
    return (f"phase order looks swapped: segmented {a} {seg[a]:.3f}, {b} {seg[b]:.3f} but {source} expects "
            f"{a} {exp[a]:.3f}, {b} {exp[b]:.3f}; exchanging {a} and {b} fits far better (summed fraction "
            f"error {given:.2f} → {e:.2f}): {fix}, or check the image",)

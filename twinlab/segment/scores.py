"""Agreement of a segmentation with a ground truth: per-phase Dice, instance matching, ARI."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._results import Result
from ..errors import InputError


def dice(pred: Any, truth: Any, *, values: Any = None) -> dict[int, float]:
    """Dice coefficient 2|A∩B| / (|A| + |B|) per label value (default: every value in ``truth``).

    A value absent from both arrays gets NaN.
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise InputError(f"shapes differ: {pred.shape} vs {truth.shape}")
    if values is None:
        values = np.unique(truth)
    out = {}
    for v in np.atleast_1d(values):
        a = pred == v
        b = truth == v
        denom = int(a.sum()) + int(b.sum())
        out[int(v)] = float(2 * np.count_nonzero(a & b) / denom) if denom else float("nan")
    return out


@dataclasses.dataclass(frozen=True)
class InstanceMatch(Result):
    """Instance agreement: truth objects matched one-to-one at IoU ≥ ``iou_threshold``."""

    n_true: int
    n_pred: int
    n_matched: int
    fraction_matched: float  # of the true objects
    mean_matched_iou: float
    adjusted_rand_index: float  # over all voxels, background included
    iou_threshold: float


def match_instances(pred: Any, truth: Any, *, iou_threshold: float = 0.5) -> InstanceMatch:
    """Match predicted instances to true ones (IoU > 0.5 makes matches unique) and compute the ARI."""
    from sklearn.metrics import adjusted_rand_score

    pred = np.asarray(pred).ravel().astype(np.int64)
    truth = np.asarray(truth).ravel().astype(np.int64)
    if pred.shape != truth.shape:
        raise InputError(f"shapes differ: {pred.shape} vs {truth.shape}")
    if not 0 < iou_threshold <= 1:
        raise InputError(f"iou_threshold must lie in (0, 1], got {iou_threshold}")
    t_ids, t_sizes = np.unique(truth[truth > 0], return_counts=True)
    p_ids, p_sizes = np.unique(pred[pred > 0], return_counts=True)
    both = (truth > 0) & (pred > 0)
    pairs, inter = np.unique(np.stack([truth[both], pred[both]]), axis=1, return_counts=True)
    ts = dict(zip(t_ids.tolist(), t_sizes.tolist()))
    ps = dict(zip(p_ids.tolist(), p_sizes.tolist()))
    best: dict[int, float] = {}
    for (t, p), i in zip(pairs.T.tolist(), inter.tolist()):
        iou = i / (ts[t] + ps[p] - i)
        if iou >= iou_threshold and iou > best.get(t, 0.0):
            best[t] = iou
    ari = float(adjusted_rand_score(truth, pred))
    n = len(ts)
    return InstanceMatch(n, len(ps), len(best), len(best) / n if n else float("nan"),
                         float(np.mean(list(best.values()))) if best else float("nan"), ari, iou_threshold)

"""Segmentation: gray values → named phases → instance labels.

* :func:`segment_phases` (multi-Otsu, Gaussian mixture, trainable random-forest classifier) with
  the fit/apply split (:func:`fit_multiotsu`, :func:`fit_gmm`, :func:`train_classifier`,
  :class:`PhaseModel`) that makes chunked results equal to whole-volume ones;
* :func:`split_particles` / :func:`split_pores` — distance-transform watershed, chunked with
  halos and label stitching for dask volumes;
* :func:`refine_fibsem_labels` — FIB-SEM shine-through and partial-volume correction of threshold
  labels (:mod:`.fibsem`), on by default in :func:`segment_twin`;
* :func:`clean_labels`, :func:`detect_collector`;
* :func:`dice`, :func:`match_instances` — agreement with a ground truth.

The design check (segmented vs theoretical fractions) is :func:`twinlab.analyses.rev.check_design`.
"""

from .classify import (
    DEFAULT_SEGMENT_PHASES,
    METHODS,
    PhaseModel,
    apply_phase_model,
    fit_gmm,
    fit_multiotsu,
    model_from_thresholds,
    sample_values,
    segment_phases,
    train_classifier,
)
from .cleanup import CollectorInfo, clean_labels, detect_collector
from .fibsem import PartialVolumeFix, ShineThroughFit, correct_shine_through, resolve_partial_volume
from .features import compute_features, feature_halo, feature_names
from .instances import merge_cracked_fragments, split_particles, split_pores
from .scores import InstanceMatch, dice, match_instances
from ._twin import SegmentReport, confine_collector, refine_fibsem_labels, segment_twin

__all__ = [
    "DEFAULT_SEGMENT_PHASES", "METHODS", "PhaseModel", "apply_phase_model", "fit_gmm", "fit_multiotsu",
    "model_from_thresholds", "sample_values", "segment_phases", "train_classifier", "CollectorInfo",
    "clean_labels", "detect_collector", "compute_features", "feature_halo", "feature_names",
    "split_particles", "split_pores", "merge_cracked_fragments", "InstanceMatch", "dice", "match_instances",
    "SegmentReport", "confine_collector", "segment_twin",
    "refine_fibsem_labels", "correct_shine_through", "resolve_partial_volume", "ShineThroughFit", "PartialVolumeFix",
]

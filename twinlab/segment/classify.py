"""Phase segmentation: gray values → named phases (uint8 values of the phase table).

Three methods, all "fit on a sample, apply everywhere":

* ``multiotsu`` — multi-level Otsu thresholds (``skimage.filters.threshold_multiotsu``);
* ``gmm`` — a 1D Gaussian mixture (scikit-learn), turned into the thresholds where the
  posteriors of neighbouring components cross (so the labelling is monotone in gray value);
* ``classifier`` — a random forest on multiscale features (:mod:`.features`) trained from
  user scribbles.

The fitted :class:`PhaseModel` is small and frozen; applying it is voxel-wise (thresholds)
or uses a fixed halo (classifier features), so the labels never depend on the chunking.
The fit reads a seeded set of sub-volumes whose positions depend only on the shape and the
seed, not on the chunks, so a dask volume is never loaded whole.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from .._chunked import apply_kernel, is_dask
from .._results import Result
from ..errors import InputError
from ..phases import DEFAULT_PHASES, PhaseTable
from .features import DEFAULT_SIGMAS, compute_features, feature_halo, feature_names

METHODS = ("multiotsu", "gmm", "classifier")
DEFAULT_SEGMENT_PHASES = ("pore", "cbd", "active")  # dark → bright in FIB-SEM backscatter images
_MAX_FIT_VOXELS = 1 << 22  # fit on the whole volume below ~4 M voxels, else on sampled sub-volumes
_TILE = 96  # numpy inputs to the classifier are processed in tiles of this edge (bounded memory)


@dataclasses.dataclass(frozen=True)
class PhaseModel(Result):
    """A fitted phase segmentation model; ``predict(image)`` applies it (numpy or dask).

    Attributes
    ----------
    method : "multiotsu", "gmm" or "classifier"
    phases : phase names, dark → bright for threshold methods, scribble order for the classifier
    values : the uint8 label value of each phase (from the phase table)
    thresholds : gray-value thresholds between consecutive phases (threshold methods); a voxel
        with gray value ``g`` gets phase ``k = number of thresholds < g``
    gmm_means, gmm_stds, gmm_weights : the mixture components (``gmm`` only), sorted by mean
    sigmas : feature scales in voxels (classifier only)
    offset, scale : fixed standardisation of the gray values before feature extraction
    """

    method: str
    phases: tuple[str, ...]
    values: tuple[int, ...]
    thresholds: tuple[float, ...] | None = None
    gmm_means: tuple[float, ...] | None = None
    gmm_stds: tuple[float, ...] | None = None
    gmm_weights: tuple[float, ...] | None = None
    sigmas: tuple[float, ...] | None = None
    offset: float = 0.0
    scale: float = 1.0
    n_training_voxels: int = 0
    classifier: Any = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["classifier"] = None if self.classifier is None else type(self.classifier).__name__
        return d

    @property
    def halo(self) -> int:
        return feature_halo(self.sigmas) if self.method == "classifier" else 0

    def predict(self, image: Any) -> Any:
        """Label ``image`` (numpy → numpy, dask → lazy dask) with this model's phase values."""
        return apply_phase_model(image, self)


# ============================================================================ public functions
def segment_phases(
    image: Any,
    *,
    method: str = "multiotsu",
    phases: Sequence[str] = DEFAULT_SEGMENT_PHASES,
    thresholds: Sequence[float] | None = None,
    classifier: PhaseModel | None = None,
    sample_chunks: int = 16,
    sample_size: int = 64,
    seed: int = 0,
    phase_table: PhaseTable = DEFAULT_PHASES,
) -> Any:
    """Segment a grayscale image (2D or 3D, numpy or dask) into named phases.

    Parameters
    ----------
    image : array (z, y, x) or (y, x)
        Preprocessed gray values.
    method : {"multiotsu", "gmm", "classifier"}
        Ignored when ``thresholds`` or ``classifier`` is given.
    phases : names of the phases, ordered dark → bright (threshold methods).
    thresholds : optional explicit gray-value thresholds (``len(phases) - 1`` increasing numbers).
    classifier : a :class:`PhaseModel` from :func:`train_classifier` (or any fitted model).
    sample_chunks, sample_size : the fit reads ``sample_chunks`` seeded sub-volumes of edge
        ``sample_size`` voxels when the image has more than ~4 M voxels, else the whole image.
    seed : seed of the sampling and of the mixture fit.
    phase_table : maps names to the uint8 label values written (default: pore 0, active 1, cbd 2).

    Returns
    -------
    labels : uint8 array of the image's shape, numpy or lazy dask like the input.
    """
    if classifier is not None:
        model = classifier
    elif thresholds is not None:
        model = model_from_thresholds(thresholds, phases=phases, phase_table=phase_table)
    elif method == "multiotsu":
        model = fit_multiotsu(image, phases=phases, sample_chunks=sample_chunks, sample_size=sample_size,
                              seed=seed, phase_table=phase_table)
    elif method == "gmm":
        model = fit_gmm(image, phases=phases, sample_chunks=sample_chunks, sample_size=sample_size,
                        seed=seed, phase_table=phase_table)
    elif method == "classifier":
        raise InputError("method 'classifier' needs a trained model: call train_classifier(image, scribbles) "
                         "and pass it as classifier=..., or on the CLI give --scribbles FILE")
    else:
        raise InputError(f"unknown segmentation method {method!r}; choose one of {', '.join(METHODS)}")
    return apply_phase_model(image, model)


def model_from_thresholds(thresholds: Sequence[float], *, phases: Sequence[str] = DEFAULT_SEGMENT_PHASES,
                          phase_table: PhaseTable = DEFAULT_PHASES) -> PhaseModel:
    """A threshold model from explicit gray values (``len(phases) - 1`` increasing numbers)."""
    names, values = _phase_values(phases, phase_table)
    try:
        t = tuple(float(v) for v in thresholds)
    except (TypeError, ValueError):
        raise InputError(f"thresholds must be numbers, got {thresholds!r}") from None
    if len(t) != len(names) - 1:
        raise InputError(f"{len(names)} phases need {len(names) - 1} thresholds, got {len(t)}")
    if any(b <= a for a, b in zip(t, t[1:])) or not all(np.isfinite(t)):
        raise InputError(f"thresholds must be finite and strictly increasing, got {t}")
    return PhaseModel("thresholds", names, values, thresholds=t)


def fit_multiotsu(image: Any, *, phases: Sequence[str] = DEFAULT_SEGMENT_PHASES, sample_chunks: int = 16,
                  sample_size: int = 64, seed: int = 0, nbins: int = 256,
                  phase_table: PhaseTable = DEFAULT_PHASES) -> PhaseModel:
    """Multi-Otsu thresholds fitted on a seeded sample of the image (see :func:`segment_phases`)."""
    from skimage.filters import threshold_multiotsu

    names, values = _phase_values(phases, phase_table)
    sample = sample_values(image, sample_chunks=sample_chunks, sample_size=sample_size, seed=seed)
    _require_contrast(sample, len(names))
    try:
        t = threshold_multiotsu(sample.astype(np.float64), classes=len(names), nbins=nbins)
    except ValueError as exc:
        raise InputError(f"multi-Otsu cannot split this image into {len(names)} phases ({exc}); "
                         "use fewer phases or give explicit thresholds") from None
    return PhaseModel("multiotsu", names, values, thresholds=tuple(float(v) for v in t),
                      n_training_voxels=int(sample.size))


def fit_gmm(image: Any, *, phases: Sequence[str] = DEFAULT_SEGMENT_PHASES, sample_chunks: int = 16,
            sample_size: int = 64, seed: int = 0, max_samples: int = 200_000, covariance: str = "tied",
            phase_table: PhaseTable = DEFAULT_PHASES) -> PhaseModel:
    """A Gaussian mixture of the gray values, one component per phase (sorted by mean).

    ``covariance="tied"`` (default) gives all components one variance: partial-volume voxels
    at blurred phase boundaries otherwise inflate one component's variance and drag the
    boundary towards the other phase. ``"full"`` fits one variance per component.

    The mixture is started from the multi-Otsu class means and converted into thresholds at
    the gray values where the posteriors of consecutive components are equal, so a brighter
    voxel never gets a darker phase (a raw argmax would give a wide component both tails).
    """
    from sklearn.mixture import GaussianMixture

    names, values = _phase_values(phases, phase_table)
    n = len(names)
    sample = sample_values(image, sample_chunks=sample_chunks, sample_size=sample_size, seed=seed)
    _require_contrast(sample, n)
    x = sample.astype(np.float64).ravel()
    if x.size > max_samples:
        x = np.random.default_rng(seed).choice(x, size=max_samples, replace=False)
    start = fit_multiotsu(x, phases=names, phase_table=phase_table).thresholds
    cls = np.digitize(x, start)
    means_init = np.array([x[cls == k].mean() if np.any(cls == k) else np.nan for k in range(n)])
    if np.isnan(means_init).any():
        means_init = np.quantile(x, (np.arange(n) + 0.5) / n)
    if covariance not in ("tied", "full"):
        raise InputError(f"covariance must be 'tied' or 'full', got {covariance!r}")
    gmm = GaussianMixture(n_components=n, covariance_type=covariance, random_state=seed,
                          means_init=means_init.reshape(-1, 1), reg_covar=1e-6 * float(np.var(x) + 1e-12),
                          max_iter=200)
    gmm.fit(x.reshape(-1, 1))
    order = np.argsort(gmm.means_.ravel())
    mu = gmm.means_.ravel()[order]
    cov = np.broadcast_to(np.asarray(gmm.covariances_).ravel(), (n,))
    sd = np.sqrt(cov[order])
    w = gmm.weights_[order]
    t = tuple(_posterior_crossing(mu[k], sd[k], w[k], mu[k + 1], sd[k + 1], w[k + 1]) for k in range(n - 1))
    if any(b <= a for a, b in zip(t, t[1:])):
        raise InputError(f"the Gaussian mixture did not separate {n} phases (component means {mu.tolist()}); "
                         "use method='multiotsu', fewer phases, or a classifier")
    return PhaseModel("gmm", names, values, thresholds=t, gmm_means=tuple(mu.tolist()),
                      gmm_stds=tuple(sd.tolist()), gmm_weights=tuple(w.tolist()), n_training_voxels=int(x.size))


def train_classifier(
    image: Any,
    scribbles: Any,
    *,
    phases: Sequence[str] = DEFAULT_SEGMENT_PHASES,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    n_estimators: int = 60,
    max_depth: int | None = 16,
    max_samples_per_phase: int = 20_000,
    seed: int = 0,
    phase_table: PhaseTable = DEFAULT_PHASES,
) -> PhaseModel:
    """Train a random-forest pixel classifier from a few scribbles.

    Parameters
    ----------
    image : array (numpy or dask), 2D or 3D
    scribbles : integer array of the image's shape; 0 = unlabelled, ``k`` (1 … len(phases))
        marks voxels of ``phases[k - 1]`` (the napari Labels-layer convention; phase *values*
        cannot be used because pore is 0).
    sigmas : feature scales in voxels; the features of a voxel use the voxels within
        ``4 · max(sigmas)`` of it.
    n_estimators, max_depth : forest size.
    max_samples_per_phase : scribbled voxels per phase used for training (seeded subsample).

    Raises
    ------
    InputError
        If a phase has no scribble, scribble values exceed the number of phases, or shapes differ.
    """
    from sklearn.ensemble import RandomForestClassifier

    names, values = _phase_values(phases, phase_table)
    sigmas = tuple(float(s) for s in sigmas)
    if tuple(np.shape(scribbles)) != tuple(np.shape(image)):
        raise InputError(f"scribbles have shape {np.shape(scribbles)}, the image {np.shape(image)}; "
                         "draw them on the same grid")
    if not np.issubdtype(np.dtype(scribbles.dtype), np.integer):
        raise InputError(f"scribbles must be integers (0 = unlabelled, 1..{len(names)}), got {scribbles.dtype}")
    offset, scale = _standardisation(image, seed=seed)
    halo = feature_halo(sigmas)
    feats, targets = [], []
    for core, ext, inner in _tiles(np.shape(image), halo, _TILE):
        s = np.asarray(scribbles[core])
        if not s.any():
            continue
        block = (np.asarray(image[ext], dtype=np.float32) - offset) / scale
        f = compute_features(block, sigmas)[inner]
        mask = s > 0
        feats.append(f[mask])
        targets.append(s[mask])
    y = np.concatenate(targets) if targets else np.zeros(0, dtype=np.int64)
    present = np.bincount(y, minlength=len(names) + 1)
    if y.size and y.max() > len(names):
        raise InputError(f"scribble value {int(y.max())} exceeds the {len(names)} phases {list(names)}; "
                         f"use 1..{len(names)} (0 = unlabelled)")
    missing = [names[k - 1] for k in range(1, len(names) + 1) if present[k] == 0]
    if missing:
        raise InputError(f"no scribbles for phase(s) {', '.join(missing)}; draw a few strokes of every phase "
                         f"(scribble value k marks phases[k-1] of {list(names)})")
    X = np.concatenate(feats)
    rng = np.random.default_rng(seed)
    keep = np.concatenate([_subsample(np.flatnonzero(y == k), max_samples_per_phase, rng)
                           for k in range(1, len(names) + 1)])
    rf = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=1,
                                class_weight="balanced")
    rf.fit(X[keep], y[keep] - 1)
    return PhaseModel("classifier", names, values, sigmas=sigmas, offset=offset, scale=scale,
                      n_training_voxels=int(keep.size), classifier=rf)


def apply_phase_model(image: Any, model: PhaseModel) -> Any:
    """Apply a fitted model blockwise (numpy → numpy, dask → lazy dask; uint8 labels)."""
    if np.ndim(image) not in (2, 3):
        raise InputError(f"image must be 2D or 3D, got shape {np.shape(image)}")
    lut = np.asarray(model.values, dtype=np.uint8)
    if model.method != "classifier":
        thresholds = np.asarray(model.thresholds, dtype=np.float64)
        return apply_kernel(_threshold_block, image, depth=0, dtype=np.uint8, what="threshold",
                            thresholds=thresholds, lut=lut)
    halo = model.halo
    kwargs = dict(model=model, lut=lut)
    if is_dask(image):
        return apply_kernel(_classify_block, image, depth=halo, dtype=np.uint8, what="feature stack", **kwargs)
    image = np.asarray(image)
    out = np.empty(image.shape, dtype=np.uint8)
    # tile numpy inputs with the same halo rule as apply_kernel: identical to one whole call
    for core, ext, inner in _tiles(image.shape, halo, _TILE):
        out[core] = _classify_block(image[ext], **kwargs)[inner]
    return out


def sample_values(image: Any, *, sample_chunks: int = 16, sample_size: int = 64, seed: int = 0,
                  max_voxels: int = _MAX_FIT_VOXELS) -> np.ndarray:
    """Gray values to fit on: the whole image if small, else seeded sub-volumes (chunk-independent)."""
    shape = tuple(np.shape(image))
    if int(np.prod(shape)) <= max_voxels:
        return np.asarray(image).ravel()
    if sample_chunks < 1 or sample_size < 2:
        raise InputError(f"sample_chunks must be ≥ 1 and sample_size ≥ 2, got {sample_chunks}, {sample_size}")
    rng = np.random.default_rng(seed)
    edge = [min(sample_size, n) for n in shape]
    parts = []
    for _ in range(sample_chunks):
        start = [int(rng.integers(0, n - e + 1)) for n, e in zip(shape, edge)]
        parts.append(np.asarray(image[tuple(slice(s, s + e) for s, e in zip(start, edge))]).ravel())
    return np.concatenate(parts)


# ============================================================================ helpers
def _phase_values(phases: Sequence[str], table: PhaseTable) -> tuple[tuple[str, ...], tuple[int, ...]]:
    if isinstance(phases, str):
        phases = [p.strip() for p in phases.split(",") if p.strip()]
    names = tuple(phases)
    if len(names) < 2:
        raise InputError(f"segmentation needs at least two phases, got {list(names)}; e.g. pore,cbd,active")
    if len(set(names)) != len(names):
        raise InputError(f"phase names repeat: {list(names)}")
    return names, tuple(table.value(n) for n in names)


def _require_contrast(sample: np.ndarray, n: int) -> None:
    if sample.size == 0:
        raise InputError("the image is empty")
    lo, hi = float(np.min(sample)), float(np.max(sample))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError("the image contains NaN/Inf; replace or crop them before segmenting")
    if hi <= lo:
        raise InputError(f"the image holds a single gray value ({lo:g}): a one-phase volume cannot be split "
                         f"into {n} phases; check the input (crop, contrast) or give explicit thresholds")


def _posterior_crossing(m1: float, s1: float, w1: float, m2: float, s2: float, w2: float) -> float:
    """Gray value in [m1, m2] where w1·N(m1, s1) = w2·N(m2, s2) (the Bayes boundary)."""
    def diff(x: np.ndarray) -> np.ndarray:
        return (np.log(w1) - np.log(s1) - 0.5 * ((x - m1) / s1) ** 2) - (np.log(w2) - np.log(s2) - 0.5 * ((x - m2) / s2) ** 2)

    x = np.linspace(m1, m2, 4001)
    d = diff(x)
    sign = np.flatnonzero(np.diff(np.sign(d)) != 0)
    if sign.size == 0:  # one component dominates the whole interval: fall back to the weighted midpoint
        return float((m1 * s2 + m2 * s1) / (s1 + s2))
    i = sign[0]
    x0, x1, d0, d1 = x[i], x[i + 1], d[i], d[i + 1]
    return float(x0 - d0 * (x1 - x0) / (d1 - d0))


def _standardisation(image: Any, *, seed: int) -> tuple[float, float]:
    s = sample_values(image, seed=seed).astype(np.float64)
    if s.size == 0:
        raise InputError("the image is empty")
    scale = float(np.std(s))
    return float(np.mean(s)), (scale if scale > 0 else 1.0)


def _subsample(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return idx if idx.size <= n else np.sort(rng.choice(idx, size=n, replace=False))


def _threshold_block(block: np.ndarray, *, thresholds: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return lut[np.digitize(block, thresholds)]


def _classify_block(block: np.ndarray, *, model: PhaseModel, lut: np.ndarray) -> np.ndarray:
    x = (np.asarray(block, dtype=np.float32) - np.float32(model.offset)) / np.float32(model.scale)
    f = compute_features(x, model.sigmas)
    pred = model.classifier.predict(f.reshape(-1, f.shape[-1]))
    return lut[pred.astype(np.intp)].reshape(block.shape)


def _tiles(shape: Sequence[int], halo: int, tile: int):
    """(core, extended, inner) slices over a grid of tiles; halos clipped at the outer faces."""
    grids = [range(0, n, tile) for n in shape]
    for starts in np.ndindex(*[len(g) for g in grids]):
        core, ext, inner = [], [], []
        for ax, i in enumerate(starts):
            a = i * tile
            b = min(a + tile, shape[ax])
            ea, eb = max(0, a - halo), min(shape[ax], b + halo)
            core.append(slice(a, b))
            ext.append(slice(ea, eb))
            inner.append(slice(a - ea, a - ea + (b - a)))
        yield tuple(core), tuple(ext), tuple(inner)


__all__ = ["PhaseModel", "segment_phases", "fit_multiotsu", "fit_gmm", "train_classifier", "apply_phase_model",
           "model_from_thresholds", "sample_values", "feature_names", "METHODS", "DEFAULT_SEGMENT_PHASES"]

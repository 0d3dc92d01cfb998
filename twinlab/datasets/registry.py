"""Registry of sample data: the bundled real samples and on-the-fly synthetic demos.

``load(name)`` returns a :class:`Sample` (array + voxel size where the source states one +
metadata with licence and provenance); ``list_samples()`` describes every entry without
loading it. Real samples are read from the repository's top-level ``datasets/`` folder
(override with the environment variable ``TWINLAB_DATASETS``); synthetic entries are
generated deterministically (fixed seed) when asked for.

>>> s = load("demo_lmp_anode")
>>> s.array.dtype.name, s.voxel_size.as_tuple()
('uint8', (2.0, 2.0, 2.0))
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._results import Result, to_jsonable
from .._validation import VoxelSize
from ..errors import InputError, ReadError

__all__ = ["Sample", "load", "list_samples", "save_sample", "datasets_dir", "DEMO_VOXEL_SIZE", "DEMO_SHAPE"]

#: The embedded demo cathode's grid: 8 × the FIB-SEM voxel of SCIENCE.md §2 (slice/pixel = 32.5/37.22 nm),
#: fine enough that the CBD is resolved (its segmentation measures it, README "The demo's design check"):
#: the whole NCM622 coating cross-section (6 µm of Al foil + 86 µm coating + free space, 94.7 µm) by
#: 30.4 × 31.3 µm (slices × pixels) in-plane, about two of the 14 µm particles across.
DEMO_VOXEL_SIZE = VoxelSize(0.26, 0.2978, 0.2978)
DEMO_SHAPE = (117, 318, 105)
_DEMO_COLLECTOR_UM = 6.0  # the part of the 15 µm Al foil inside the field of view
#: Rows of the milled fiducial cap above the demo's field (render_fibsem's fiducial_px): registration on it
#: is static, so the slow drift the sample's own structure cannot reveal is undone too (README, demo).
_DEMO_FIDUCIAL_PX = 32


@dataclasses.dataclass(frozen=True)
class Sample(Result):
    """One sample: its main array, voxel size and metadata.

    Attributes
    ----------
    name : str
    array : ndarray
        The main array ((z, y, x) volume, or a stack of independent 2D images — see
        ``metadata["axes"]``).
    voxel_size : VoxelSize or None
        µm; ``None`` where the source states none (give one when importing).
    metadata : dict
        ``description``, ``kind`` ("real" or "synthetic"), ``licence``, ``provenance`` (also as
        ``source``),
        ``values`` (meaning of label values), ``files`` and, for synthetic samples, the design
        and realised fractions.
    extras : dict of ndarrays
        Companion arrays: ground truth (``phases``, ``particles``, ``masks``), simulator truth
        (``clean``, ``shifts``).
    """

    name: str
    array: np.ndarray
    voxel_size: VoxelSize | None
    metadata: dict[str, Any]
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Summary without the arrays."""
        return to_jsonable({
            "name": self.name, "shape": list(self.array.shape), "dtype": str(self.array.dtype),
            "voxel_size": self.voxel_size.to_dict() if self.voxel_size else None,
            "metadata": self.metadata,
            "extras": {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)}
                       for k, v in self.extras.items()},
        })


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    kind: str  # "real" | "synthetic"
    description: str
    shape: tuple[int, ...]
    dtype: str
    voxel_size: VoxelSize | None
    licence: str
    provenance: str
    loader: Callable[["_Entry"], Sample]
    folder: str | None = None
    files: tuple[str, ...] = ()
    values: dict[str, str] = dataclasses.field(default_factory=dict)
    axes: str = "zyx"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "description": self.description,
                "shape": list(self.shape), "dtype": self.dtype, "axes": self.axes,
                "voxel_size": self.voxel_size.to_dict() if self.voxel_size else None,
                "licence": self.licence, "provenance": self.provenance, "source": self.provenance,
                "values": dict(self.values),
                "files": [f"{self.folder}/{f}" for f in self.files] if self.folder else []}


def datasets_dir() -> Path:
    """The folder holding the bundled real samples (``TWINLAB_DATASETS`` or ``<repo>/datasets``)."""
    env = os.environ.get("TWINLAB_DATASETS")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "datasets"
    if not path.is_dir():
        raise ReadError(
            f"the sample folder {path} does not exist: the real samples ship with a twinlab repository "
            "checkout (top-level datasets/); set TWINLAB_DATASETS to that folder, or use a synthetic "
            "sample such as 'demo_cathode'")
    return path


def list_samples() -> list[dict[str, Any]]:
    """Describe every registered sample (nothing is read or generated)."""
    return [e.describe() for e in _REGISTRY.values()]


def load(name: str) -> Sample:
    """Load a bundled real sample or generate a synthetic one by name (see :func:`list_samples`)."""
    try:
        entry = _REGISTRY[name]
    except KeyError:
        raise InputError(f"no sample named {name!r}; available: {', '.join(_REGISTRY)} "
                         "(twinlab datasets list)") from None
    return entry.loader(entry)


def save_sample(name: str, path: Any, *, voxel_size: Any = None, overwrite: bool = False) -> Any:
    """Write a 3D sample as a twin store: the array as the image, ground truth as label layers.

    Synthetic phase samples also get ``labels/phases`` (the array itself) and ``labels/particles``;
    the FIB-SEM demo gets its truth ``phases`` and ``particles`` (0 on the rows of its fiducial cap).
    ``voxel_size`` (µm, "DZ,DY,DX") is required where the source states none.
    """
    from ..twin import Step, create_twin

    sample = load(name)
    if sample.array.ndim != 3 or "independent" in str(sample.metadata.get("axes", "")):
        raise InputError(f"sample {name!r} is not a 3D volume ({sample.metadata.get('axes')}); load it with "
                         "twinlab.datasets.load and treat its images one by one")
    vs = VoxelSize.parse(voxel_size) if voxel_size is not None else sample.voxel_size
    if vs is None:
        raise InputError(f"sample {name!r} states no voxel size; give one (--voxel-size DZ,DY,DX in µm)")
    labels = {k: v for k, v in sample.extras.items() if k in ("phases", "particles")}
    cap = int((sample.metadata.get("fibsem") or {}).get("fiducial_rows") or 0)
    if cap:  # the fiducial cap rendered above the field (rows of axis 1) has no truth: 0 there
        labels = {k: np.pad(v, ((0, 0), (cap, 0), (0, 0))) for k, v in labels.items()}
    image = sample.array.astype(np.uint8) if sample.array.dtype == bool else sample.array
    if sample.metadata.get("kind") == "synthetic" and sample.array.dtype == np.uint8:
        labels = {"phases": sample.array, **labels}
    meta = sample.metadata
    return create_twin(path, image, voxel_size=vs, labels=labels or None,
                       thickness_axis=meta.get("thickness_axis", "y"), collector_side=meta.get("collector_side", "low"),
                       design=meta.get("design"), cbd_as=meta.get("cbd_as") if "phases" in labels else None,
                       sources=[{"dataset": name, "licence": meta.get("licence"),
                                                            "source": meta.get("provenance")}],
                       step=Step("datasets.save_sample", {"name": name}), overwrite=overwrite)


# ====================================================================================== loaders
def _file(entry: _Entry, filename: str) -> Path:
    path = datasets_dir() / entry.folder / filename
    if not path.is_file():
        raise ReadError(f"sample file {path} is missing; restore it from the repository (git checkout datasets/) "
                        f"or see datasets/README.md for its source")
    return path


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile
    try:
        return np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile raises several types for corrupt files
        raise ReadError(f"cannot read {path} as TIFF ({type(exc).__name__}: {exc})") from None


def _meta(entry: _Entry, **more: Any) -> dict[str, Any]:
    meta = entry.describe()
    meta.pop("name")
    meta.update(more)
    return meta


def _load_berea(entry: _Entry) -> Sample:
    path = _file(entry, entry.files[0])
    try:
        with np.load(path) as npz:
            im = np.asarray(npz["im"])
    except (OSError, ValueError, KeyError) as exc:
        raise ReadError(f"cannot read key 'im' from {path} ({exc})") from None
    return Sample(entry.name, im, entry.voxel_size, _meta(entry, porosity=float(im.mean())))


def _load_superres_volume(entry: _Entry) -> Sample:
    return Sample(entry.name, _read_tiff(_file(entry, entry.files[0])), None, _meta(entry))


def _load_superres_sections(entry: _Entry) -> Sample:
    return Sample(entry.name, _read_tiff(_file(entry, entry.files[0])), None, _meta(entry))


def _load_xct(entry: _Entry) -> Sample:
    ims = np.stack([_read_tiff(_file(entry, f)) for f in ("im_1.tif", "im_2.tif")])
    masks = np.stack([_read_tiff(_file(entry, f)) for f in ("mask_1.tif", "mask_2.tif")])
    return Sample(entry.name, ims, None, _meta(entry), {"masks": masks})


def _demo_cathode_electrode():
    from .generators import make_cathode
    # the foil at low y (under the fiducial cap), the top of the domain above the 86 µm coating empty (the free
    # surface is visible); the CBD phase is the nanoporous carbon-binder domain, the mid-grey phase a FIB-SEM image
    # shows (SCIENCE.md). With the free surface under the cap instead, the one aligned row the cap's blurred edge
    # leaves after cropping is labelled solid, and the design check then counts the empty rows above the coating
    # as coating porosity (pore +0.017; measured): a limit of the fiducial crop, README "Known limits"
    return make_cathode(shape=DEMO_SHAPE, voxel_size_um=DEMO_VOXEL_SIZE, collector_um=_DEMO_COLLECTOR_UM,
                        cbd_as="domain", seed=0)


def _synthetic_meta(entry: _Entry, gen: Any, **more: Any) -> dict[str, Any]:
    return _meta(entry, design=gen.design.to_dict(), fractions=gen.fractions, target_fractions=gen.target_fractions,
                 cbd_as=gen.cbd_as, thickness_axis=gen.thickness_axis_name, collector_side=gen.collector_side,
                 coating_range=list(gen.coating_range), n_particles=int(gen.radii_um.size), seed=gen.seed,
                 notes=gen.notes, **more)


def _load_demo_cathode(entry: _Entry) -> Sample:
    gen = _demo_cathode_electrode()
    return Sample(entry.name, gen.phases, gen.voxel_size, _synthetic_meta(entry, gen),
                  {"particles": gen.particles})


def _load_demo_cathode_fibsem(entry: _Entry) -> Sample:
    from .simulators import render_fibsem
    gen = _demo_cathode_electrode()
    stack = render_fibsem(gen.phases, voxel_size_um=gen.voxel_size, fiducial_px=_DEMO_FIDUCIAL_PX, seed=0)
    meta = _synthetic_meta(entry, gen, fibsem=stack.to_dict())
    return Sample(entry.name, stack.raw, gen.voxel_size, meta,
                  {"phases": gen.phases, "particles": gen.particles, "clean": stack.clean,
                   "shifts": stack.shifts})


def _load_demo_lmp(entry: _Entry) -> Sample:
    from .generators import make_lmp_anode
    gen = make_lmp_anode(seed=0)
    return Sample(entry.name, gen.phases, gen.voxel_size, _synthetic_meta(entry, gen), {"particles": gen.particles})


_PHASE_VALUES = {"0": "pore", "1": "active", "2": "cbd", "3": "collector", "4": "shell", "5": "lithium",
                 "6": "binder"}
_SYNTH = "synthetic, generated by twinlab.datasets (seed 0); BSD-3-Clause like twinlab"
_REGISTRY: dict[str, _Entry] = {e.name: e for e in (
    _Entry("berea", "real", "Berea sandstone micro-CT, segmented (True = pore)", (200, 200, 200), "bool",
           VoxelSize.isotropic(5.345), "MIT, Copyright (c) 2018 PMEAL",
           "PMEAL/OpenPNM @ c6c2d5c, tests/fixtures/berea_100_to_300.npz; voxel 5.345 µm as stated by the "
           "source's test script", _load_berea, "berea", ("berea_100_to_300.npz",), {"True": "pore", "False": "solid"}),
    _Entry("superres_nmc", "real", "NMC battery cathode volume segmented into 2 phases", (128, 128, 128), "uint8",
           None, "MIT, Copyright (c) 2021 Amir Dahari",
           "amirDahari1/SuperRes @ a0b1925, data/SEM_lr_input.tif; voxel size not stated by the source",
           _load_superres_volume, "superres_nmc", ("SEM_lr_input.tif",), {"0": "pore (60.2 %)", "128": "solid (39.8 %)"}),
    _Entry("superres_nmc_sections", "real", "four segmented SEM cross-sections of an NMC cathode (3 phases)",
           (4, 427, 427), "float32", None, "MIT, Copyright (c) 2021 Amir Dahari",
           "amirDahari1/SuperRes (history), data/sem_image_stack.tif; pixel size not stated by the source",
           _load_superres_sections, "superres_nmc", ("sem_image_stack.tif",),
           {"0": "14.8 %", "1": "55.5 %", "2": "29.7 % (particles, binder, pore: order not stated by the source)"},
           axes="nyx (independent 2D sections)"),
    _Entry("xct_cell", "real", "two raw lab X-ray CT slices of a cylindrical Li-ion cell (jelly roll) with "
           "hand-made binary masks (extras['masks']): raw image + truth for 2D segmentation", (2, 576, 576),
           "uint16", None, "MIT, Copyright (c) 2025 University College London, Department of Chemical Engineering",
           "MPJ-Imaging/battery_xct_workflows @ 074f577, data/ (im_1, im_2, mask_1, mask_2); pixel size not stated",
           _load_xct, "xct_cell", ("im_1.tif", "im_2.tif", "mask_1.tif", "mask_2.tif"),
           {"masks 0": "background", "masks 255": "foreground (~22 %)"}, axes="nyx (independent 2D slices)"),
    _Entry("demo_cathode", "synthetic", "embedded default: uncalendered NCM622 cathode (96:2:2 wt%, 2.3 g/cm³, CBD as "
           "the nanoporous domain) phase labels with particle instance labels (extras['particles']); collector at "
           "low y", DEMO_SHAPE, "uint8", DEMO_VOXEL_SIZE, _SYNTH, "twinlab.datasets.make_cathode(ncm622_cathode(2.3), "
           f"shape={DEMO_SHAPE}, voxel_size_um={DEMO_VOXEL_SIZE.as_tuple()}, collector_um={_DEMO_COLLECTOR_UM}, "
           "cbd_as='domain', seed=0)", _load_demo_cathode, values=_PHASE_VALUES),
    _Entry("demo_cathode_fibsem", "synthetic", "the demo cathode rendered as a raw FIB-SEM stack (noise, curtaining, "
           f"drift, shading, shine-through) with a milled fiducial cap ({_DEMO_FIDUCIAL_PX} rows above the field); "
           "truth in extras: phases, particles, clean, shifts",
           (DEMO_SHAPE[0], _DEMO_FIDUCIAL_PX + DEMO_SHAPE[1], DEMO_SHAPE[2]), "uint16", DEMO_VOXEL_SIZE, _SYNTH,
           "twinlab.datasets.render_fibsem(load('demo_cathode').array, fiducial_px="
           f"{_DEMO_FIDUCIAL_PX}, seed=0) with the simulator's default artefacts", _load_demo_cathode_fibsem,
           values={"grey": "uint16 full scale"}),
    _Entry("demo_lmp_anode", "synthetic", "uncalendered lithium-metal-powder anode (Li : PVdF-HFP 95:5, 84 µm on Cu), "
           "1-voxel Li2CO3 shells; particle instance labels in extras['particles']", (100, 48, 100), "uint8",
           VoxelSize.isotropic(2.0), _SYNTH, "twinlab.datasets.make_lmp_anode(lmp_anode(), seed=0)", _load_demo_lmp,
           values=_PHASE_VALUES),
)}

"""The one module that chains the stages: reconstruct → checks → analyses → calendering → report.

A run is described by a validated :class:`SampleConfig` (TOML or YAML, see
:func:`load_config`). :func:`run_sample` executes it and writes one twin; every parameter goes
into the twin's provenance (the whole config as the final ``pipeline`` step), so a run can be
reproduced from the twin alone. The twin is built under a temporary name and renamed into
place only when every stage has finished: a twin at the output path is always complete.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ._memory import release_free_memory, return_freed_heap_promptly, reuse_large_buffers
from ._outputs import check_replaceable, clean_stale, make_staging, publish
from ._results import Result, format_value, text_table
from ._settings import read_settings, resolve_path
from ._validation import VoxelSize, check_options
from .errors import InputError, OutputExistsError, TwinlabError
from .quantities import summarize  # noqa: F401  (the flat key table; re-exported for callers)
from .twin import Step, Twin, create_twin, describe_sources

PIPELINE_STEP = "pipeline"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputConfig(_Model):
    """Where the grey values come from: a file/folder, or a bundled/synthetic dataset by name."""

    path: Path | None = None
    dataset: str | None = None
    kind: Literal["image", "labels"] = "image"  # "labels": the input already holds phase labels
    phase_map: str | dict[int, str] | None = None  # kind "labels": VALUE=PHASE pairs (twinlab.labelmap)
    phases: list[str] = Field(default_factory=list)  # kind "labels": NAME:MATERIAL of your own phases
    voxel_size: str | list[float] | float | None = None
    unit: str = "um"
    key: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "InputConfig":
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of input.path or input.dataset")
        return self


class PreprocessConfig(_Model):
    enabled: bool = True
    # "flatten" is opt-in: on fields with real large-scale structure (collector, free space above the coating)
    # a background estimate takes structure for shading (demo pore/active Dice 0.61/0.55 with it, 0.88/0.86 without)
    steps: list[str] = Field(default_factory=lambda: ["align", "destripe", "denoise"])
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)


class SegmentConfig(_Model):
    method: Literal["multiotsu", "gmm"] = "multiotsu"
    phases: list[str] = Field(default_factory=lambda: ["pore", "cbd", "active"])
    particles: bool | None = None  # None: split only a particulate phase (NCM, Li powder; not fibres)
    options: dict[str, Any] = Field(default_factory=dict)


class AnalysesConfig(_Model):
    run: list[str] = Field(default_factory=lambda: ["rev", "morphology", "network", "transport", "cracks",
                                                     "conductive"])
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)


class CalenderConfig(_Model):
    ratios: list[Annotated[float, Field(ge=0, lt=1)]] | None = None
    densities: list[Annotated[float, Field(gt=0)]] | None = None
    steps: int = Field(4, ge=1)
    analyses: list[str] = Field(default_factory=lambda: ["conductive"])  # run on every calendered twin
    options: dict[str, Any] = Field(default_factory=dict)  # CalenderOptions fields, checked by check_config

    @model_validator(mode="after")
    def _one_target(self) -> "CalenderConfig":
        if (self.ratios is None) == (self.densities is None):
            raise ValueError("give exactly one of calender.ratios or calender.densities")
        return self


class SampleConfig(_Model):
    """Everything one sample's run needs. Paths are relative to the config file's folder."""

    name: str
    input: InputConfig
    output: Path
    thickness_axis: Literal["z", "y", "x"] = "y"
    collector_side: Literal["low", "high"] = "low"
    design: str | dict[str, Any] | None = None  # preset name ("ncm622", "lmp"), a TOML path, or a table
    chunks: int = Field(128, ge=1)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    analyses: AnalysesConfig = Field(default_factory=AnalysesConfig)
    calender: CalenderConfig | None = None
    report: bool = True


@dataclass(frozen=True)
class StageTiming(Result):
    stage: str
    seconds: float
    peak_rss_gib: float


@dataclass(frozen=True)
class SampleRun(Result):
    """What :func:`run_sample` did: the twin, the calendered series, the report, stage timings."""

    name: str
    twin: str
    series: str | None
    report: str | None
    stages: tuple[StageTiming, ...]
    summary: dict[str, Any] = field(default_factory=dict)
    series_summary: tuple[dict[str, Any], ...] = ()  # one row per calendered member, in calendering order
    skipped: bool = False
    # empty segmented phases, a failed or not checkable design check (report.check_failures)
    failed_checks: tuple[str, ...] = ()


# ====================================================================================== configs
def load_config(path: str | os.PathLike, **overrides: Any) -> SampleConfig:
    """Read a TOML or YAML sample config; relative paths are resolved against its folder."""
    path = Path(path)
    data = read_settings(path)
    data.update(overrides)
    return parse_config(data, base=path.parent)


def parse_config(data: dict[str, Any], *, base: str | os.PathLike | None = None) -> SampleConfig:
    """Validate a config mapping: every field, name and option is checked here, before any work.

    ``base`` is the folder relative paths are resolved against (:func:`resolve_path`).
    """
    try:
        config = SampleConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"invalid pipeline config: {problems}") from None
    if base is not None:
        config = _resolve_paths(config, base)
    _check_config(config)
    return config


def _resolve_paths(config: SampleConfig, base: str | os.PathLike) -> SampleConfig:
    def rel(p: Path | None) -> Path | None:
        return None if p is None else resolve_path(p, base)

    updates: dict[str, Any] = {"output": rel(config.output),
                               "input": config.input.model_copy(update={"path": rel(config.input.path)})}
    if isinstance(config.design, str) and config.design.endswith(".toml"):
        updates["design"] = str(rel(Path(config.design)))
    return config.model_copy(update=updates)


def _check_config(config: SampleConfig) -> None:
    """What the field types cannot say: names of analyses, phases, designs and steps, and the
    options of every step, checked against the functions that will receive them."""
    from .analyses import ANALYSES, check_analysis_names
    from .phases import DEFAULT_PHASES
    from .preprocess import check_step_options, parse_steps
    from .segment import segment_twin

    if config.input.voxel_size is not None:
        VoxelSize.parse(config.input.voxel_size, unit=config.input.unit)
    if config.design is not None:
        resolve_design(config.design)
    if config.preprocess.enabled:
        parse_steps(config.preprocess.steps)
        check_step_options(config.preprocess.options)
    unknown = [p for p in config.segment.phases if p not in DEFAULT_PHASES]
    if unknown:
        raise InputError(f"segment.phases: unknown phase(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(DEFAULT_PHASES.names)}")
    check_options(segment_twin, config.segment.options, "segment.options",
                  reserved=("method", "phases", "particles"))
    check_analysis_names(config.analyses.run, where="analyses.run")
    check_analysis_names(list(config.analyses.options), where="analyses.options")
    for name, options in config.analyses.options.items():
        check_options(_analysis_function(ANALYSES[name]), options, f"analyses.options.{name}")
    if config.calender is not None:
        from .analyses.mechanics import CalenderOptions

        check_analysis_names(config.calender.analyses, where="calender.analyses")
        CalenderOptions.from_mapping(config.calender.options)  # names and values, before any work


def _analysis_function(module: str) -> Any:
    import importlib

    return importlib.import_module(module).analyze_twin


def resolve_design(spec: str | dict[str, Any] | None):
    """A design preset name, TOML path or inline table → ElectrodeDesign (or None)."""
    from . import design as designs

    if spec is None:
        return None
    if isinstance(spec, dict):
        return designs.ElectrodeDesign.from_dict(spec)
    presets = {"ncm622": designs.ncm622_cathode, "ncm622_cathode": designs.ncm622_cathode,
               "lmp": designs.lmp_anode, "lmp_anode": designs.lmp_anode}
    if spec in presets:
        return presets[spec]()
    if spec.endswith(".toml"):
        return designs.load_design(spec)
    raise InputError(f"unknown design {spec!r}; use a preset ({', '.join(presets)}), a .toml file or a table")


# ====================================================================================== running
def is_complete(path: str | os.PathLike) -> bool:
    """True if ``path`` is a twin whose pipeline run finished (the last step written)."""
    try:
        twin = Twin.open(path)
    except TwinlabError:
        return False
    return any(p["step"] == PIPELINE_STEP for p in twin.provenance)


def is_finished(config: SampleConfig) -> bool:
    """True if every output of ``config`` is there: a complete twin and, if asked for, its report."""
    final = Path(config.output)
    return is_complete(final) and (not config.report or report_path(final).is_file())


def run_sample(config: SampleConfig, *, overwrite: bool = False, progress: bool = False) -> SampleRun:
    """Run one sample end to end into ``config.output`` (and ``<output>.series/``, ``<output>.report/``).

    Everything is built inside one marked staging folder beside the output and published when
    complete (series first, then the twin, whose pipeline step marks the run finished; the report
    last). A finished twin is not recomputed without ``overwrite``: a rerun only writes what is
    missing (the report of a run killed while writing it). ``overwrite`` replaces only twinlab
    outputs (:func:`twinlab._outputs.check_replaceable`), never a user's folder.
    """
    return_freed_heap_promptly()
    final = Path(config.output)
    series_final = series_dir(final) if config.calender is not None else None
    targets = [t for t in (final, series_final) if t is not None]
    for target in targets:  # staging folders of killed runs on this output
        clean_stale(target)
    if not overwrite and is_complete(final):
        series = series_final if series_final is not None and series_final.is_dir() else None
        report = report_path(final) if config.report else None
        if report is not None and not report.is_file():  # e.g. killed while writing the report
            report = write_report_for(final, series)
        return SampleRun(name=config.name, twin=str(final), series=str(series) if series else None,
                         report=str(report) if report else None, stages=(), skipped=True)
    for target in targets:  # before any work: even --overwrite replaces only what twinlab wrote
        check_replaceable(target)
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{final} exists but is not a finished pipeline twin; pass --overwrite to redo it")
    staging = make_staging(final.parent, final.name, "run")
    staged_twin = staging / final.name
    staged_series = staging / series_final.name if series_final is not None else None
    timer = _StageTimer()
    try:
        with timer("reconstruct"):
            twin = _reconstruct(config, staged_twin, scratch=staging / "stream", progress=progress)
        if config.input.kind == "image":
            with timer("segment"):
                _segment(twin, config.segment)
        for name in config.analyses.run:
            with timer(name):
                _analyze(twin, name, config.analyses.options.get(name, {}))
        if config.calender is not None:
            with timer("calender"):
                reuse_large_buffers()  # an in-memory solver: its FFT buffers are reused, not re-faulted
                try:
                    _calender(twin, config.calender, staged_series, final)
                finally:
                    return_freed_heap_promptly()
        twin.update_metadata(step=Step(PIPELINE_STEP, {"config": config.model_dump(mode="json"),
                                                       "stages": [s.to_dict() for s in timer.stages]}))
        if staged_series is not None:  # the twin last: a complete twin at `final` means the run finished
            publish(staged_series, series_final)
        publish(staged_twin, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    report = None
    if config.report:
        with timer("report"):
            report = str(write_report_for(final, series_final))
    from .report import check_failures

    done = Twin.open(final)
    return SampleRun(name=config.name, twin=str(final), series=str(series_final) if series_final else None,
                     report=report, stages=tuple(timer.stages), summary=summarize(done),
                     series_summary=tuple(summarize_series(series_final)) if series_final else (),
                     failed_checks=tuple(check_failures(done)))


class _StageTimer:
    """Wall time and peak RSS (sampled every 20 ms in a thread: this process, children included) per stage."""

    def __init__(self) -> None:
        self.stages: list[StageTiming] = []

    def __call__(self, stage: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.start = time.perf_counter()
                self.peak = _rss_gib()
                self.done = threading.Event()
                self.thread = threading.Thread(target=self._sample, daemon=True)
                self.thread.start()
                return self

            def _sample(self) -> None:
                while not self.done.wait(0.02):
                    self.peak = max(self.peak, _rss_gib())

            def __exit__(self, *exc: Any) -> None:
                self.done.set()
                self.thread.join()
                peak = max(self.peak, _rss_gib())
                release_free_memory()
                timer.stages.append(StageTiming(stage, round(time.perf_counter() - self.start, 3), round(peak, 3)))

        return _Ctx()


def _rss_gib() -> float:
    proc = psutil.Process()
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**30


def _reconstruct(config: SampleConfig, staging: Path, *, scratch: Path, progress: bool) -> Twin:
    from .preprocess import preprocess_volume, stream_to_zarr

    data, voxel, sources, meta = _load_input(config.input, chunks=config.chunks)
    raw = data
    design = resolve_design(config.design) if config.design is not None else meta.get("design")
    params: dict[str, Any] = {"input": config.input.model_dump(mode="json"), "voxel_size_um": voxel.to_dict()}
    labels = phases = None
    if config.input.kind == "labels":  # a segmented volume: it is both the image and the phases
        from .labelmap import map_labels
        from .phases import parse_phase_materials

        mapped = map_labels(data, config.input.phase_map, materials=parse_phase_materials(config.input.phases))
        labels, phases = {"phases": mapped.labels}, mapped.phases
        step = Step("import_labels", {**params, "fractions": mapped.fractions})
    elif config.preprocess.enabled and config.preprocess.steps:
        result = preprocess_volume(data, voxel_size=voxel, steps=config.preprocess.steps, chunks=config.chunks,
                                   options=config.preprocess.options, scratch=scratch / "slices")
        # computed row of chunks by row into a scratch store first: one store of the whole graph lets the
        # scheduler run ahead and hold many float32 intermediates (see preprocess.stream_to_zarr)
        data = stream_to_zarr(result.image, scratch / "image", progress=progress)
        voxel = result.voxel_size
        step = Step("preprocess", {**params, **result.params})
    else:
        step = Step("import", params)
    twin = create_twin(staging, data, voxel_size=voxel, thickness_axis=config.thickness_axis,
                       collector_side=config.collector_side, design=design.to_dict() if design is not None else None,
                       labels=labels, phases=phases, sources=sources, step=step, chunks=config.chunks,
                       progress=progress)
    shutil.rmtree(scratch, ignore_errors=True)
    middle = data.shape[0] // 2
    twin.save_result("slices", {"z": middle}, step=Step("slices", {"z": middle}),
                     arrays={"raw": np.asarray(raw[middle])})
    return twin


def _load_input(cfg: InputConfig, *, chunks: int):
    import dask.array as da

    if cfg.path is not None:
        from .io import read_volume

        vol = read_volume(cfg.path, voxel_size=cfg.voxel_size, unit=cfg.unit, key=cfg.key, chunks=chunks)
        return vol.data, vol.voxel_size, describe_sources(list(vol.sources)), vol.metadata
    from .datasets import load

    sample = load(cfg.dataset)
    voxel = VoxelSize.parse(cfg.voxel_size, unit=cfg.unit) if cfg.voxel_size is not None else sample.voxel_size
    if voxel is None:
        raise InputError(f"dataset {cfg.dataset!r} states no voxel size; set input.voxel_size")
    meta = dict(sample.metadata)
    design = meta.get("design")
    if isinstance(design, dict):
        meta["design"] = resolve_design(design)
    array = da.from_array(sample.array, chunks=chunks)
    return array, voxel, [{"dataset": cfg.dataset, **{k: v for k, v in meta.items() if k in ("licence", "source")}}], meta


def _segment(twin: Twin, cfg: SegmentConfig) -> None:
    from .segment import segment_twin

    # segment_twin stores its report as the result "segment": empty phases, warnings, FIB-SEM corrections
    segment_twin(twin, method=cfg.method, phases=cfg.phases, particles=cfg.particles, **cfg.options)


def _analyze(twin: Twin, name: str, options: dict[str, Any]) -> Any:
    from .analyses import run_analysis

    return run_analysis(name, twin, **options)


def _calender(twin: Twin, cfg: CalenderConfig, out: Path, final_twin: Path) -> Path:
    from .analyses.mechanics import calender
    from .series import open_series

    calender(twin, ratios=cfg.ratios, densities=cfg.densities, steps=cfg.steps, options=cfg.options, output=out,
             overwrite=True, source_twin=str(final_twin))
    for member in open_series(out):
        for name in cfg.analyses:
            _analyze(member, name, {})
    return out


def series_dir(twin_path: Path) -> Path:
    """Where a sample's calendering series lives: ``X.twin.zarr`` → ``X.series.zarr``."""
    return twin_path.with_name(twin_path.name.removesuffix(".twin.zarr").removesuffix(".zarr") + ".series.zarr")


def report_path(twin_path: Path) -> Path:
    """``X.twin.zarr`` → ``X.report/report.html`` (figures beside it)."""
    return twin_path.with_name(twin_path.name.removesuffix(".twin.zarr").removesuffix(".zarr") + ".report") \
        / "report.html"


def write_report_for(twin_path: Path, series: Path | None) -> Path:
    from .report import write_report

    return write_report(Twin.open(twin_path), report_path(twin_path), series=series)


def summarize_series(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Headline numbers of each member of a calendering series: target, ratio, density, porosity,
    active-material von Mises mean, crackable volume per threshold (by voxel, and by particle mean stress
    with its sampling error where the series has particle instances), intact shell fraction and,
    where the member was analysed, the conductive activation."""
    from .series import open_series

    rows = []
    for member in open_series(folder):
        cal = member.load_result("calender")
        row = {key: cal.get(key) for key in ("target", "ratio", "density_g_cm3", "porosity",
                                             "von_mises_active_mean_mpa", "shell_intact_fraction")}
        if row["von_mises_active_mean_mpa"] is not None:  # no active material: nothing can crack
            row.update({f"crackable_{t}_mpa_pct": v for t, v in (cal.get("crackable_volume_pct") or {}).items()})
            row.update({f"crackable_particles_{t}_mpa_pct": v
                        for t, v in (cal.get("crackable_particles_pct") or {}).items()})
            row.update({f"crackable_particles_{t}_mpa_se_pct": v
                        for t, v in (cal.get("crackable_particles_se_pct") or {}).items()})
        if "conductive" in member.result_names:
            row["activation"] = member.load_result("conductive").get("activation")
        rows.append(row)
    return rows


# ====================================================================================== demo
@dataclass(frozen=True)
class DemoRun(Result):
    cathode: SampleRun
    anode: SampleRun
    ebac: dict[str, Any]
    seconds: float
    study: Any = None  # twinlab.study.Study of the cathode: the design window
    #: (part, wall s) in order: every stage of both samples, the study's, the EBAC maps, and what lies between
    #: them ("other"); they sum to ``seconds`` plus the python start and imports (the first part, where known)
    parts: tuple[tuple[str, float], ...] = ()

    def table(self) -> str:
        """The demo's story in a few aligned tables: where everything is, stage times, the headline
        analyses of each twin and its calendering series (``--json`` prints everything)."""
        runs = (self.cathode, self.anode)
        parts = [text_table([("sample", "twin", "series", "report")]
                            + [(r.name, r.twin, r.series or "-", r.report or "-") for r in runs])]
        for r in runs:
            stages = ", ".join(f"{s.stage} {s.seconds:.1f}" for s in r.stages)
            peak = max((s.peak_rss_gib for s in r.stages), default=float("nan"))
            parts.append(f"{r.name} stages (s): {stages}; peak RSS {peak:.2f} GiB")
            parts += [f"{r.name} check: {c}" for c in r.failed_checks]  # each line says FAILED / NOT CHECKABLE
        parts.append(text_table([tuple(h for h, _ in _TWIN_HEADLINE)]
                                + [tuple(format_value(r.summary.get(k)) if k else r.name for _, k in _TWIN_HEADLINE)
                                   for r in runs]))
        for r in runs:
            if r.series_summary:
                keys = [k for k in _SERIES_HEADLINE if any(k in row for row in r.series_summary)]
                keys += [k for k in r.series_summary[0] if k.startswith("crackable_")]
                parts.append(f"{r.name} calendering series")
                parts.append(text_table([tuple(keys)] + [tuple(format_value(row.get(k)) for k in keys)
                                                         for row in r.series_summary]))
        if self.ebac:
            parts.append("EBAC maps (simulated) of the anode series: "
                         + "; ".join(f"{k} {', '.join(format_value(v) for v in vals)}" for k, vals in self.ebac.items()))
        if self.study is not None:
            seconds = sum(self.study.stage_seconds.values()) or self.study.seconds
            parts.append(f"calendering design study of a generated NCM622 cathode ({len(self.study.rows)} densities, "
                         f"{seconds:.1f} s; report {self.study.report})")
            parts.append(self.study.table())  # ends with the design window in one line
        parts.append(f"demo finished in {self.seconds:.1f} s")
        if self.parts:
            total = sum(sec for _, sec in self.parts)
            parts.append(text_table([("where the time went", "s", "%")]
                                    + [(name, f"{sec:.1f}", f"{100 * sec / total:.0f}") for name, sec in self.parts]
                                    + [("total", f"{total:.1f}", "100")]))
        return "\n\n".join(parts)


_TWIN_HEADLINE = (("sample", None), ("porosity", "morphology.fractions.porosity"),
                  ("tau2_voxel", "transport.tortuosity.tortuosity_factor"),
                  ("tau2_network_est", "network.tortuosity.tortuosity_factor"),
                  ("sigma_S/m", "transport.conductivity.effective_conductivity_s_m"),
                  ("pores", "network.network.num_pores"), ("coordination", "network.metrics.mean_coordination"),
                  ("crack_%", "cracks.crack_volume_percent"), ("activation", "conductive.activation"))
_SERIES_HEADLINE = ("ratio", "density_g_cm3", "porosity", "von_mises_active_mean_mpa", "shell_intact_fraction",
                    "activation")




def demo_configs(out: Path) -> tuple[SampleConfig, SampleConfig]:
    """The embedded default: a synthetic NCM622 FIB-SEM stack through the whole chain, and a
    lithium-metal-powder anode calendered 10–40 % for the activation curve."""
    cathode = parse_config({
        "name": "demo_cathode", "output": str(out / "demo_cathode.twin.zarr"),
        "input": {"dataset": "demo_cathode_fibsem"},
        "design": "ncm622", "thickness_axis": "y", "collector_side": "low", "chunks": 64,
        # the default reconstruction (align on the stack's milled fiducial, destripe, denoise; segment with the
        # shine-through and partial-volume corrections) and the default design check (CBD as the nanoporous domain)
        "segment": {"phases": ["pore", "cbd", "active", "collector"]},
        # mechanics on 3 × 3 × 3 bins (0.78 × 0.89 × 0.89 µm, phase volumes kept): the solver's cost grows with
        # the volume, and the 0.3 µm grid the CBD needs is finer than the calendering physics does; the segmented
        # twin records its CBD as the nanoporous domain, weighed as such in the densities
        "calender": {"densities": [3.0, 3.6], "steps": 4, "analyses": ["conductive"], "options": {"voxel_um": 0.9}},
    })
    anode = parse_config({
        "name": "demo_lmp_anode", "output": str(out / "demo_lmp_anode.twin.zarr"),
        "input": {"dataset": "demo_lmp_anode", "kind": "labels"},
        "design": "lmp", "thickness_axis": "y", "collector_side": "low", "chunks": 64,
        "analyses": {"run": ["rev", "morphology", "transport", "conductive"]},
        # with the DEM rearrangement stage (issue 16): a loose powder first rearranges with its shells intact;
        # the stress solve alone would take every increment by deforming the particles, breaking most shells
        # in the first 10 % (intact 0.25 at 10 %, activation 0.99: the step the issue was about)
        "calender": {"ratios": [0.1, 0.2, 0.3, 0.4], "steps": 4, "analyses": ["conductive"],
                     "options": {"window": 64, "rearrange": "dem"}},
    })
    return cathode, anode


def run_demo(out: str | os.PathLike = "out/demo", *, progress: bool = False,
             started: float | None = None) -> DemoRun:
    """Run the demo end to end into ``out`` (overwriting a previous demo there).

    ``started``: when the process started (``time.time()`` clock); the python start and imports before
    this call are then the first of the timed parts (``DemoRun.parts``).
    """
    start = time.perf_counter()
    clock = _PartClock(started)
    out = Path(out)
    cathode_cfg, anode_cfg = demo_configs(out)
    cathode = run_sample(cathode_cfg, overwrite=True, progress=progress)
    clock.sample(cathode)
    # the anode's report is written once, after the EBAC maps it shows
    anode = run_sample(anode_cfg.model_copy(update={"report": False}), overwrite=True, progress=progress)
    clock.sample(anode)
    study = _demo_study(out, clock)
    ebac = _demo_ebac(Path(anode.series)) if anode.series else {}
    clock.mark("EBAC maps of the anode series")
    if anode_cfg.report:
        report = write_report_for(Path(anode.twin), Path(anode.series) if anode.series else None)
        anode = replace(anode, report=str(report))
        clock.mark(f"{anode.name} report")
    headline = {k: v for k, v in ebac.items() if k in ("labels", "connected_fraction", "conductive_area_fraction",
                                                          "penetration_depth_um")}
    clock.mark("other")
    return DemoRun(cathode=cathode, anode=anode, ebac=headline, seconds=round(time.perf_counter() - start, 1),
                   study=study, parts=tuple((name, round(sec, 2)) for name, sec in clock.parts))


class _PartClock:
    """The demo's wall time as consecutive parts: each runs from the end of the one before, so nothing
    the user waits for goes uncounted."""

    def __init__(self, started: float | None) -> None:
        self.parts: list[tuple[str, float]] = []
        if started is not None:
            self.parts.append(("python start and imports", max(time.time() - started, 0.0)))
        self.last = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.parts.append((name, now - self.last))
        self.last = now

    def stages(self, prefix: str, seconds: list[tuple[str, float]]) -> None:
        """Timed stages (``seconds``: (stage, s) pairs), and the rest of the time since the last part as "other"."""
        now = time.perf_counter()
        self.parts += [(f"{prefix} {stage}", sec) for stage, sec in seconds]
        # stage times may be rounded (the study's to 10 ms): a remainder below that is rounding, not time
        self.parts.append((f"{prefix} other", max(now - self.last - sum(sec for _, sec in seconds), 0.0)))
        self.last = now

    def sample(self, run: SampleRun) -> None:
        """A sample's stages, and the rest of its run (staging, publishing, summaries) as "other"."""
        self.stages(run.name, [(s.stage, s.seconds) for s in run.stages])


#: The demo's design study: a small generated NCM622 cathode (the demo cathode's recipe, 16 × 32 × 16
#: voxels of 2 µm: the compression solver's cost grows with the volume and `make demo` must stay within
#: minutes; ~20 s CPU), six densities, and criteria a cathode maker might set. A real study:
#: ``twinlab study X.twin.zarr --densities 2.5:4.0:0.1 --max-crackable 5 --min-q-eff-fraction 0.9 --c-rate 2``.
DEMO_STUDY = {"densities": [2.4, 2.5, 2.6, 2.7, 2.8, 2.9], "analyses": ["morphology", "network", "transport", "conductive"],
              "c_rates": [1.0, 2.0], "criteria": ["q_eff_fraction_1C>=0.6", "electronic_conductivity>=1.5e-3 S/m"]}


def _demo_study(out: Path, clock: _PartClock | None = None):
    from .datasets import make_cathode
    from .design import ncm622_cathode
    from .design_window import parse_criterion
    from .study import run_study, study_quantities

    cfg = DEMO_STUDY
    e = make_cathode(ncm622_cathode(2.3), shape=(16, 32, 16), voxel_size_um=2.0, collector_um=4.0, seed=3)
    twin = create_twin(out / "demo_study_cathode.twin.zarr", e.phases * 60, voxel_size=2.0, labels={"phases": e.phases},
                       design=e.design.to_dict(), cbd_as=e.cbd_as, thickness_axis="y", collector_side="low",
                       overwrite=True,
                       step=Step("generate", {"generator": "make_cathode", "design": "ncm622", "seed": 3}))
    if clock is not None:
        clock.mark("design study: generate its cathode")
    units = {k: q.unit for k, q in study_quantities(cfg["analyses"], strengths_mpa=(100.0, 150.0),
                                                    c_rates=cfg["c_rates"]).items()}
    study = run_study(twin, output=out / "demo_study", densities=cfg["densities"], analyses=cfg["analyses"],
                      c_rates=cfg["c_rates"], overwrite=True,
                      criteria=[parse_criterion(c, units) for c in cfg["criteria"]])
    if clock is not None:
        clock.stages("design study", list(study.stage_seconds.items()))
    return study


def _demo_ebac(series: Path) -> dict[str, Any]:
    """EBAC maps of the calendered anode: simulated from each step's conductive clusters (a stand-in
    for measured maps, which the same analysis reads from TIFF), analysed and compared."""
    from .analyses.ebac import analyze_ebac, compare_ebac
    from .datasets.simulators import render_ebac
    from .series import open_series

    results, labels = [], []
    for member in open_series(series):
        phases = np.asarray(member.labels("phases"))
        clusters = np.asarray(member.labels("clusters"))
        percolating = member.load_result_arrays("conductive")["percolating_ids"]
        conductive = np.isin(clusters, percolating) & (clusters > 0)
        z = phases.shape[0] // 2
        vs = member.voxel_size
        ebac_map = render_ebac(phases, conductive, phases=member.phases, axis="z", index=z,
                               thickness_axis=member.thickness_axis, collector_side=member.collector_side,
                               pixel_size_um=(vs.dy, vs.dx), seed=z)
        # in a (y, x) section the thickness axis y runs down the image: collector "low" = top edge
        edge = "top" if member.collector_side == "low" else "bottom"
        result = analyze_ebac(ebac_map.image, pixel_size_um=vs.dy, collector_side=edge)
        member.save_result("ebac", result, step=Step("ebac", {"source": "simulated from clusters", "slice_z": z}))
        results.append(result)
        labels.append(f"{member.load_result('calender')['ratio']:.2f}")
    if len(results) < 2:
        return {}
    return compare_ebac(results, labels).to_dict()

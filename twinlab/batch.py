"""Many samples on dask.distributed: resumable, concurrency-safe, one bad sample never stops the rest.

A manifest (TOML/YAML) names an output folder, shared defaults and the samples::

    output_dir = "out/batch"
    [defaults]                      # any SampleConfig field, merged into every sample
    preprocess = { steps = ["denoise"] }
    [[samples]]
    name = "cathode_2p3"
    input = { path = "stacks/c23.tif", voxel_size = "0.0325,0.03722,0.03722" }

Each sample's twin is ``<output_dir>/<name>.twin.zarr``. A sample whose twin is complete is
skipped (no recomputation). Before working on a sample a process *claims* it by creating
``<output_dir>/.claims/<name>.claim`` with ``O_CREAT | O_EXCL``; a claim whose process is gone
(killed, crashed) is stale and is taken over, so an interrupted batch restarted finishes the
rest. Twins are renamed into place only when complete (see :mod:`twinlab.pipeline`), so a
``kill -9`` at any moment loses only the sample in flight.

The scheduler is a LocalCluster by default or any running scheduler by address (``--scheduler
tcp://host:8786``): a SLURM/PBS cluster from ``dask-jobqueue`` or a Kubernetes/cloud one from
``dask-gateway`` exposes such an address — start it, then pass ``cluster.scheduler_address``.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ._outputs import check_replaceable, owner_stamp, stamp_is_stale
from ._results import Result, text_table
from .errors import InputError, TwinlabError
from ._settings import read_settings, resolve_path
from .pipeline import is_complete, is_finished, parse_config, run_sample, series_dir

CLAIMS = ".claims"
#: a sample name is a plain file name: it cannot leave the output folder or hide in it
SAMPLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class SampleOutcome(Result):
    name: str
    status: str  # "done" | "skipped" | "failed" | "claimed-elsewhere"
    twin: str | None = None
    seconds: float = 0.0
    error: str | None = None
    input: str | None = None


@dataclass(frozen=True)
class BatchSummary(Result):
    output_dir: str
    outcomes: tuple[SampleOutcome, ...]
    scheduler: str
    dashboard: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def table(self) -> str:
        rows = [("sample", "status", "seconds", "detail")]
        for o in self.outcomes:
            rows.append((o.name, o.status, f"{o.seconds:.1f}", o.error or o.twin or ""))
        return text_table(rows)


@dataclass(frozen=True)
class Manifest:
    output_dir: Path
    samples: tuple[dict[str, Any], ...]
    base: Path


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check a manifest: names, paths (relative ones against the manifest's folder) and
    every sample's config, so that a mistake stops the batch before any work."""
    path = Path(path)
    data = read_settings(path)
    samples = data.get("samples")
    if not samples or not isinstance(samples, list):
        raise InputError(f"{path.name} lists no [[samples]]")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise InputError(f"[defaults] in {path.name} must be a table of settings")
    base = resolve_path(".", path.parent)
    output_dir = resolve_path(data.get("output_dir", "batch-out"), base)
    names = set()
    for i, sample in enumerate(samples):
        if not isinstance(sample, dict) or "name" not in sample:
            raise InputError(f"sample #{i + 1} in {path.name} has no name")
        sample_twin_path(output_dir, sample["name"])
        if sample["name"] in names:
            raise InputError(f"sample name {sample['name']!r} appears twice in {path.name}")
        names.add(sample["name"])
    merged = [_deep_merge(defaults, sample) for sample in samples]
    for sample in merged:
        try:
            parse_config({**sample, "output": str(sample_twin_path(output_dir, sample["name"]))}, base=base)
        except InputError as exc:
            raise InputError(f"sample {sample['name']!r} in {path.name}: {exc}") from None
    return Manifest(output_dir=output_dir, samples=tuple(merged), base=base)


def sample_twin_path(output_dir: str | os.PathLike, name: Any) -> Path:
    """``<output_dir>/<name>.twin.zarr`` for a valid sample name (letters, digits, ``.``, ``_``, ``-``;
    starting with a letter or digit): never a path outside ``output_dir``, never a hidden one."""
    if not isinstance(name, str) or not SAMPLE_NAME.fullmatch(name):
        raise InputError(f"sample name {name!r} is not a plain file name; use letters, digits, '.', '_' and '-' "
                         "(starting with a letter or digit, at most 128 characters)")
    return Path(output_dir) / f"{name}.twin.zarr"


def run_batch(
    manifest: str | os.PathLike | Manifest,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str = "auto",
    progress: bool = False,
    on_update: Callable[[SampleOutcome], None] | None = None,
) -> BatchSummary:
    """Run every sample of ``manifest`` on dask.distributed and write ``batch-summary.json`` + ``.txt``."""
    from distributed import as_completed

    from ._cluster import cluster_client

    man = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    for sample in man.samples:  # before any work: a sample's outputs may only replace twinlab outputs
        twin_path = sample_twin_path(man.output_dir, sample["name"])
        check_replaceable(twin_path)
        if sample.get("calender") is not None:
            check_replaceable(series_dir(twin_path))
    man.output_dir.mkdir(parents=True, exist_ok=True)
    (man.output_dir / CLAIMS).mkdir(exist_ok=True)
    outcomes: list[SampleOutcome] = []
    with cluster_client(scheduler, workers=workers, threads_per_worker=threads_per_worker,
                        memory_limit=memory_limit) as client:
        dashboard = client.dashboard_link
        futures = {client.submit(process_sample, sample, str(man.output_dir), str(man.base), pure=False,
                                 key=f"twinlab-sample-{sample['name']}-{time.time_ns()}"): sample["name"]
                   for sample in man.samples}
        bar = _progress_bar(len(futures)) if progress else None
        for future in as_completed(futures):
            name = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # the worker died (e.g. out of memory): report, go on
                outcome = SampleOutcome(name=name, status="failed", error=f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            if on_update:
                on_update(outcome)
            if bar:
                bar(outcome)
    order = {s["name"]: i for i, s in enumerate(man.samples)}
    outcomes.sort(key=lambda o: order[o.name])
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    summary = BatchSummary(output_dir=str(man.output_dir), outcomes=tuple(outcomes),
                           scheduler=scheduler or f"LocalCluster({workers} workers)", dashboard=dashboard,
                           counts=counts)
    _write_atomic(man.output_dir / "batch-summary.json", json.dumps(summary.to_dict(), indent=2))
    _write_atomic(man.output_dir / "batch-summary.txt", summary.table() + "\n")
    return summary


def process_sample(sample: dict[str, Any], output_dir: str, base: str) -> SampleOutcome:
    """Run one sample if it is not done and not claimed by a live process (runs on a worker)."""
    import dask

    name = sample["name"]
    out = Path(output_dir)
    twin_path = sample_twin_path(out, name)
    source = str(sample.get("input", {}).get("path") or sample.get("input", {}).get("dataset"))
    try:
        config = parse_config({**sample, "output": str(twin_path)}, base=base)
    except TwinlabError as exc:
        return SampleOutcome(name=name, status="failed", input=source, error=str(exc))
    if is_finished(config):
        return SampleOutcome(name=name, status="skipped", twin=str(twin_path), input=source)
    claim = out / CLAIMS / f"{name}.claim"
    claim.parent.mkdir(parents=True, exist_ok=True)
    if not _claim(claim):
        return SampleOutcome(name=name, status="claimed-elsewhere", input=source,
                             error=f"being processed by another batch ({claim.read_text(errors='replace').strip()})")
    start = time.perf_counter()
    try:
        if is_finished(config):  # finished by another process between our check and our claim
            return SampleOutcome(name=name, status="skipped", twin=str(twin_path), input=source)
        # inside a worker, array work runs on the worker's own threads, not back on the cluster;
        # a complete twin is kept (only its missing report is written), anything else of ours redone
        with dask.config.set(scheduler="threads"):
            run_sample(config, overwrite=not is_complete(twin_path))
        return SampleOutcome(name=name, status="done", twin=str(twin_path), input=source,
                             seconds=round(time.perf_counter() - start, 2))
    except TwinlabError as exc:
        return SampleOutcome(name=name, status="failed", input=source, error=str(exc),
                             seconds=round(time.perf_counter() - start, 2))
    except Exception as exc:  # a bug or an unexpected file problem: keep the batch going, report it
        return SampleOutcome(name=name, status="failed", input=source, error=f"{type(exc).__name__}: {exc}",
                             seconds=round(time.perf_counter() - start, 2))
    finally:
        claim.unlink(missing_ok=True)


def _claim(path: Path) -> bool:
    """Create the claim file exclusively; take over a stale claim whose process is gone."""
    me = owner_stamp()
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _stale(path):
                return False
            stale = path.with_name(f"{path.name}.stale-{os.getpid()}")
            try:
                os.rename(path, stale)  # only one process wins the takeover
            except FileNotFoundError:
                continue
            stale.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        return True
    return False


def _stale(path: Path) -> bool:
    try:
        return stamp_is_stale(path.read_text())
    except OSError:
        return False  # being written right now


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _progress_bar(total: int) -> Callable[[SampleOutcome], None]:
    from rich.progress import Progress

    progress = Progress()
    task = progress.add_task("samples", total=total)
    progress.start()

    def update(outcome: SampleOutcome) -> None:
        progress.update(task, advance=1, description=f"{outcome.name}: {outcome.status}")
        if progress.finished:
            progress.stop()

    return update


__all__ = ["BatchSummary", "Manifest", "SampleOutcome", "load_manifest", "process_sample", "run_batch",
           "sample_twin_path"]

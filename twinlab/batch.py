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
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ._results import Result, text_table
from .errors import InputError, TwinlabError
from .pipeline import _read_mapping, is_complete, parse_config, run_sample

CLAIMS = ".claims"


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
    path = Path(path)
    data = _read_mapping(path)
    samples = data.get("samples")
    if not samples:
        raise InputError(f"{path.name} lists no [[samples]]")
    defaults = data.get("defaults", {})
    out = Path(data.get("output_dir", "batch-out"))
    output_dir = out if out.is_absolute() else path.parent / out
    merged = []
    names = set()
    for i, sample in enumerate(samples):
        if "name" not in sample:
            raise InputError(f"sample #{i + 1} in {path.name} has no name")
        if sample["name"] in names:
            raise InputError(f"sample name {sample['name']!r} appears twice in {path.name}")
        names.add(sample["name"])
        merged.append(_deep_merge(defaults, sample))
    return Manifest(output_dir=output_dir, samples=tuple(merged), base=path.parent)


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
    twin_path = out / f"{name}.twin.zarr"
    source = str(sample.get("input", {}).get("path") or sample.get("input", {}).get("dataset"))
    if is_complete(twin_path):
        return SampleOutcome(name=name, status="skipped", twin=str(twin_path), input=source)
    claim = out / CLAIMS / f"{name}.claim"
    claim.parent.mkdir(parents=True, exist_ok=True)
    if not _claim(claim):
        return SampleOutcome(name=name, status="claimed-elsewhere", input=source,
                             error=f"being processed by another batch ({claim.read_text(errors='replace').strip()})")
    start = time.perf_counter()
    try:
        if is_complete(twin_path):  # finished by another process between our check and our claim
            return SampleOutcome(name=name, status="skipped", twin=str(twin_path), input=source)
        config = parse_config({**sample, "output": str(twin_path)}, base=Path(base))
        # inside a worker, array work runs on the worker's own threads, not back on the cluster
        with dask.config.set(scheduler="threads"):
            run_sample(config, overwrite=True)
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
    me = f"{socket.gethostname()} {os.getpid()} {time.time():.0f}"
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
        host, pid, _ = path.read_text().split()
    except (OSError, ValueError):
        return False  # being written right now
    if host != socket.gethostname():
        return False  # another machine's claim: cannot check, respect it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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


__all__ = ["BatchSummary", "Manifest", "SampleOutcome", "load_manifest", "process_sample", "run_batch"]

"""`twinlab run` (one sample end to end), `twinlab batch` (many, on dask.distributed), `twinlab demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import app, emit


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Sample config (TOML or YAML): input, voxel size, steps, analyses.")],
    overwrite: Annotated[bool, typer.Option(help="Redo a sample whose twin already exists.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Run one sample end to end: reconstruct → checks → analyses → calendering → report."""
    from ..pipeline import load_config, run_sample

    result = run_sample(load_config(config), overwrite=overwrite, progress=not json_)
    emit(result, as_json=json_, title=f"twin: {result.twin}")


@app.command()
def batch(
    manifest: Annotated[Path, typer.Argument(help="Manifest (TOML/YAML): output_dir, \\[defaults], \\[\\[samples]] (see README).")],
    scheduler: Annotated[Optional[str], typer.Option(help="Address of a running dask scheduler "
                                                     "(e.g. from dask-jobqueue/dask-gateway); default: a LocalCluster.")] = None,
    workers: Annotated[int, typer.Option(help="LocalCluster worker processes.")] = 2,
    threads_per_worker: Annotated[int, typer.Option(help="Threads per worker.")] = 1,
    memory_limit: Annotated[str, typer.Option(help="Memory limit per worker, e.g. 4GiB (LocalCluster).")] = "auto",
    json_: Annotated[bool, typer.Option("--json", help="Print the batch summary as JSON.")] = False,
) -> None:
    """Process many samples on dask.distributed; resumable, skips finished twins, reports failures."""
    from ..batch import run_batch

    summary = run_batch(manifest, scheduler=scheduler, workers=workers, threads_per_worker=threads_per_worker,
                        memory_limit=memory_limit, progress=not json_,
                        on_update=None if json_ else lambda o: typer.echo(f"{o.name}: {o.status}", err=True))
    if json_:
        emit(summary, as_json=True)
    else:
        typer.echo(f"dashboard: {summary.dashboard}")
        typer.echo(summary.table())
        typer.echo(f"summary: {Path(summary.output_dir) / 'batch-summary.json'}")
    if summary.counts.get("failed"):
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder for the demo twins and report.")] = Path("out/demo"),
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The main job on the embedded default sample (a synthetic NCM622 FIB-SEM stack)."""
    import psutil

    from ..pipeline import run_demo

    # the python start and imports before this line are the first part of the demo's time table
    result = run_demo(out, progress=not json_, started=psutil.Process().create_time())
    if json_:
        emit(result, as_json=True)
    else:
        typer.echo(result.table())


@app.command()
def report(
    twin: Annotated[Path, typer.Argument(help="A *.twin.zarr store with analysis results.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="HTML file to write; figures go to "
                                                   "figures/*.png beside it. Default: <twin>.report/report.html")] = None,
    series: Annotated[Optional[Path], typer.Option(help="Calendering series folder (default: <twin>.series.zarr "
                                                   "when it exists).")] = None,
) -> None:
    """A self-contained HTML report of a twin (and its calendering series) with every figure as PNG."""
    from ..errors import InputError
    from ..pipeline import report_path, series_dir
    from ..report import write_report

    if series is None and series_dir(twin).is_dir():
        series = series_dir(twin)
    if series is not None and not series.is_dir():
        raise InputError(f"series folder {series} does not exist; pass the folder `twinlab calender -o` wrote")
    path = write_report(twin, output or report_path(twin), series=series)
    typer.echo(str(path))

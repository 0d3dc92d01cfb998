"""``twinlab calender``: virtual calendering of a twin to target ratios or densities."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ._app import app, emit


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--{what} takes comma-separated numbers, e.g. 0.1,0.2,0.3; got {text!r}") from None


@app.command("calender")
def calender_cmd(
    twin: Path = typer.Argument(..., help="Input twin store (X.twin.zarr) with a 'phases' label image."),
    ratio: Optional[str] = typer.Option(None, "--ratio", help="Calendering ratios 1 − h/h0, e.g. 0.1,0.2,0.3,0.4."),
    density: Optional[str] = typer.Option(None, "--density", help="Target densities in g/cm³, e.g. 2.8,3.4,3.6."),
    out: Path = typer.Option(..., "-o", "--output", help="Output series folder (one twin per target)."),
    steps: int = typer.Option(10, "--steps", help="Load increments for the whole compression."),
    dtype: str = typer.Option("float32", "--dtype", help="Solver precision: float32 or float64."),
    workers: int = typer.Option(2, "--workers", help="Threads for FFTs and kernels."),
    window: Optional[int] = typer.Option(None, "--window", help="Compress only a centred in-plane window of "
                                         "N×N voxels (full thickness): faster, recorded in provenance."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Compress a twin along its thickness axis (FFT mechanics, volume-conserving voxel move) and write
    one compressed twin per target with von Mises stress, broken-shell mask and the step result."""
    from ..analyses.mechanics import calender
    from ..analyses.mechanics.calender import check_calender_request

    ratios, densities = _floats(ratio, "ratio"), _floats(density, "density")
    check_calender_request(ratios=ratios, densities=densities, steps=steps, dtype=dtype, output=out,
                           overwrite=overwrite)  # before the progress bar: a refusal is one line
    with typer.progressbar(length=1, label="calendering", file=None if not as_json else _Null()) as bar:
        state = {"total": None}

        def progress(done: int, total: int, message: str) -> None:
            if state["total"] is None:
                bar.length = total
                state["total"] = total
            bar.label = f"increment {done}/{total} ({message})"
            bar.update(1)

        series = calender(twin, ratios=ratios, densities=densities, steps=steps, output=out, overwrite=overwrite,
                          dtype=dtype, workers=workers, window=window, keep_fields=False,
                          progress=progress)
    emit(series, as_json=as_json, title=None if as_json else f"calendered series written to {out}")


class _Null:
    def write(self, *_):
        return 0

    def flush(self):
        pass

    def isatty(self):
        return False

"""``twinlab calender``: virtual calendering of a twin to target ratios or densities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

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


def parse_options(items: list[str], flag: str = "--option", given: dict[str, Any] | None = None) -> dict[str, Any]:
    """``KEY=VALUE`` flags (values read as JSON when they parse, else text) plus the options set by
    their own flags (``given``) → a calender options mapping, for
    :meth:`~twinlab.analyses.mechanics.CalenderOptions.from_mapping` (which checks names and values)."""
    out = dict(given or {})
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"{flag} takes KEY=VALUE, e.g. window=32; got {item!r}")
        if key in out:
            raise InputError(f"calender option {key} is given twice; give it once")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@app.command("calender")
def calender_cmd(
    twin: Path = typer.Argument(..., help="Input twin store (X.twin.zarr) with a 'phases' label image."),
    ratio: Optional[str] = typer.Option(None, "--ratio", help="Calendering ratios 1 − h/h0, e.g. 0.1,0.2,0.3,0.4."),
    density: Optional[str] = typer.Option(None, "--density", help="Target densities in g/cm³, e.g. 2.8,3.4,3.6."),
    out: Path = typer.Option(..., "-o", "--output", help="Output series folder (one twin per target)."),
    steps: int = typer.Option(10, "--steps", help="Load increments for the whole compression."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Solver precision: float32 or float64."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Threads for FFTs and kernels."),
    window: Optional[int] = typer.Option(None, "--window", help="Compress only a centred in-plane window of "
                                         "N×N voxels (full thickness): faster, recorded in provenance."),
    option: Optional[list[str]] = typer.Option(
        None, "--option", help="KEY=VALUE calendering option (repeatable; values read as JSON), e.g. tol=1e-5, "
        "preconditioner=multigrid, contacts=false: any field of twinlab.analyses.mechanics.CalenderOptions."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Compress a twin along its thickness axis (FFT mechanics, volume-conserving voxel move) and write
    one compressed twin per target with von Mises stress, broken-shell mask and the step result."""
    from ..analyses.mechanics import CalenderOptions, calender
    from ..analyses.mechanics.calender import check_calender_request

    ratios, densities = _floats(ratio, "ratio"), _floats(density, "density")
    flags = {"dtype": dtype, "workers": workers, "window": window}
    options = CalenderOptions.from_mapping(parse_options(
        option or [], given={"keep_fields": False, **{k: v for k, v in flags.items() if v is not None}}))
    check_calender_request(ratios=ratios, densities=densities, steps=steps, output=out,
                           overwrite=overwrite)  # before the progress bar: a refusal is one line
    with typer.progressbar(length=1, label="calendering", file=None if not as_json else _Null()) as bar:
        state = {"total": None}

        def progress(done: int, total: int, message: str) -> None:
            if state["total"] is None:
                bar.length = total
                state["total"] = total
            bar.label = f"increment {done}/{total} ({message})"
            bar.update(1)

        series = calender(twin, ratios=ratios, densities=densities, steps=steps, options=options, output=out,
                          overwrite=overwrite, progress=progress)
    emit(series, as_json=as_json, title=None if as_json else f"calendered series written to {out}")


class _Null:
    def write(self, *_):
        return 0

    def flush(self):
        pass

    def isatty(self):
        return False

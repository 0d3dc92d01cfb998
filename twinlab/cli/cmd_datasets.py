"""``twinlab datasets``: list the bundled and synthetic samples, show one, save one as a twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from ._app import app, emit

datasets_app = typer.Typer(help="Bundled real samples and synthetic demo electrodes (twinlab.datasets).",
                           no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List every sample: name, kind, shape, voxel size, licence."""
    from ..datasets import list_samples

    samples = list_samples()
    if as_json:
        emit(samples, as_json=True)
        return
    for s in samples:
        vs = s["voxel_size"]
        size = "voxel size not stated" if vs is None else f"voxel {vs['dz']:g},{vs['dy']:g},{vs['dx']:g} µm"
        shape = "×".join(str(n) for n in s["shape"])
        typer.echo(f"{s['name']:<22} {s['kind']:<9} {shape:<13} {s['dtype']:<8} {size}  — {s['description']}")


@datasets_app.command("show")
def show_cmd(name: str = typer.Argument(..., help="Sample name (see `twinlab datasets list`)."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Load (or generate) one sample and print its shape, voxel size, value counts and metadata."""
    from ..datasets import load

    sample = load(name)
    info = sample.to_dict()
    info["value_counts"] = _value_counts(sample.array)
    emit(info, as_json=as_json, title=None if as_json else f"sample {name}")


@datasets_app.command("save")
def save_cmd(name: str = typer.Argument(..., help="Sample name (see `twinlab datasets list`)."),
             out: Path = typer.Argument(..., help="Output twin store, e.g. demo.twin.zarr."),
             voxel_size: str = typer.Option(None, "--voxel-size", help="DZ,DY,DX in µm where the sample states none."),
             overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Write a 3D sample as a twin store (with its ground-truth label layers, if any)."""
    from ..datasets.registry import save_sample

    twin = save_sample(name, out, voxel_size=voxel_size, overwrite=overwrite)
    emit({"twin": str(twin.path), "shape": list(twin.shape), "labels": twin.label_names}, as_json=as_json)


def _value_counts(array: np.ndarray) -> dict[str, int] | None:
    """Counts of each value for label-like arrays (≤ 16 distinct values), else None."""
    if array.dtype.kind not in "biuf" or array.size == 0:
        return None
    flat = array.ravel()
    values = np.unique(flat[:: max(1, flat.size // 100_000)])
    if values.size > 16:
        return None
    values, counts = np.unique(flat, return_counts=True)
    if values.size > 16:
        return None
    return {str(v.item()): int(c) for v, c in zip(values, counts)}

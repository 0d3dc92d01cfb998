"""``twinlab datasets``: list the samples, show one, save one as a twin, generate a synthetic electrode."""

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


@datasets_app.command("generate")
def generate_cmd(
    kind: str = typer.Argument(..., help="cathode (NCM622 composite), lmp (lithium metal powder anode) or "
                               "dry (PTFE-fibrillated dry-film cathode)."),
    out: Path = typer.Argument(..., help="Output twin store, e.g. cathode.twin.zarr."),
    density: float = typer.Option(None, "--density", help="Cathode electrode density, g/cm³ (default: the preset's)."),
    ratio: float = typer.Option(0.0, "--ratio", help="LMP calendering ratio 1 − h/h0 (0–0.45)."),
    design: Path = typer.Option(None, "--design", help="Design TOML (twinlab.design.load_design) instead of the preset."),
    shape: str = typer.Option(None, "--shape", help="NZ,NY,NX voxels (collector included)."),
    voxel_size: str = typer.Option(None, "--voxel-size", help="DZ,DY,DX or one value, µm (cathode 0.5, lmp 2)."),
    cbd_as: str = typer.Option("solid", "--cbd-as", help="Cathode CBD volume: solid or domain (nanoporous)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Generate a synthetic electrode with ground truth and write it as a twin (labels phases + particles)."""
    from ..datasets import make_cathode, make_dry_film, make_lmp_anode
    from ..design import load_design
    from ..errors import InputError

    opts = {"seed": seed, "design": load_design(design) if design else None}
    if shape:
        try:
            opts["shape"] = [int(v) for v in shape.split(",")]
        except ValueError:
            raise InputError(f"--shape must be NZ,NY,NX integers, got {shape!r}") from None
    if voxel_size:
        opts["voxel_size_um"] = voxel_size
    if kind == "cathode":
        gen = make_cathode(density_g_cm3=density, cbd_as=cbd_as, **opts)
    elif kind == "lmp":
        gen = make_lmp_anode(ratio=ratio, **opts)
    elif kind == "dry":
        gen = make_dry_film(density_g_cm3=density, **opts)
    else:
        raise InputError(f"unknown electrode kind {kind!r}; use cathode, lmp or dry")
    twin = gen.to_twin(out, overwrite=overwrite)
    emit({"twin": str(twin.path), **gen.to_dict()}, as_json=as_json)


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

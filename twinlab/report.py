"""Figures and a self-contained HTML report, rebuilt from what a twin (and its series) stores.

Each figure builder reads results from the twin (``twin.load_result``) and returns a matplotlib
figure, or ``None`` when the analysis it shows was not run (the report then lists it as not
computed). :func:`write_report` saves every figure as PNG beside the HTML and embeds the same
PNGs (base64) so the HTML file alone is complete.
"""

from __future__ import annotations

import base64
import html
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")  # the report never needs a display  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from . import __version__  # noqa: E402
from .twin import Twin  # noqa: E402

FigureBuilder = Callable[[Twin, list[Twin]], "Figure | None"]


@dataclass(frozen=True)
class ReportFigure:
    key: str
    title: str
    png: bytes | None  # None: not computed for this twin


def build_figures(twin: Twin, series: list[Twin] | None = None) -> list[ReportFigure]:
    series = series or []
    out = []
    for key, title, builder in FIGURES:
        fig = builder(twin, series)
        out.append(ReportFigure(key, title, _png(fig) if fig is not None else None))
    return out


def write_report(twin: Twin | str | os.PathLike, path: str | os.PathLike, *,
                 series: str | os.PathLike | list[Twin] | None = None) -> Path:
    """Write ``path`` (HTML, self-contained) and ``<path's folder>/figures/*.png``; return the HTML path."""
    twin = twin if isinstance(twin, Twin) else Twin.open(twin)
    members = open_series(series) if series is not None and not isinstance(series, list) else (series or [])
    path = Path(path)
    folder = path.parent
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    figures = build_figures(twin, members)
    for f in figures:
        if f.png is not None:
            _write_atomic(folder / "figures" / f"{f.key}.png", f.png)
    _write_atomic(path, _html(twin, figures, members).encode())
    return path


def open_series(folder: str | os.PathLike) -> list[Twin]:
    """The twins of a calendering series folder, in calendering order (as the solver wrote them)."""
    folder = Path(folder)
    twins = [Twin.open(p) for p in sorted(folder.glob("*.twin.zarr"))]
    return sorted(twins, key=lambda t: _series_position(t))


def _series_position(twin: Twin) -> float:
    for name in ("calender",):
        if name in twin.result_names:
            r = twin.load_result(name)
            for key in ("ratio", "calendering_ratio", "density_g_cm3"):
                if isinstance(r.get(key), (int, float)):
                    return float(r[key])
    return 0.0


# ====================================================================================== figures
def _fig(ncols: int = 1, width: float = 5.0, height: float = 3.6) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def fig_slices(twin: Twin, series: list[Twin]) -> Figure | None:
    """Middle slice (along z) of the stored raw slice, the processed image and the phases."""
    panels: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    z = twin.shape[0] // 2
    if "slices" in twin.result_names:
        raw = twin.load_result_arrays("slices").get("raw")
        if raw is not None:
            panels.append(("raw", raw, {"cmap": "gray"}))
    panels.append(("processed" if any(p["step"] == "preprocess" for p in twin.provenance) else "image",
                   np.asarray(twin.image()[z]), {"cmap": "gray"}))
    if "phases" in twin.label_names:
        from matplotlib.colors import ListedColormap

        phases = twin.phases
        lut = np.zeros((max(p.value for p in phases) + 1, 4))
        for p in phases:
            lut[p.value] = np.asarray(p.color) / 255
            lut[p.value, 3] = 1.0
        panels.append(("segmented", np.asarray(twin.labels("phases")[z]),
                       {"cmap": ListedColormap(lut), "vmin": 0, "vmax": len(lut) - 1, "interpolation": "nearest"}))
    fig, axes = _fig(len(panels), 3.6, 3.6)
    for ax, (title, img, kw) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img, **kw)
        ax.set_title(f"{title} (z = {z})")
        ax.set_axis_off()
    return fig


def fig_fractions(twin: Twin, series: list[Twin]) -> Figure | None:
    check = _result(twin, "rev", "design")
    if not check:
        return None
    names = list(check["phases"])
    x = np.arange(len(names))
    fig, ax = _fig()
    ax.bar(x - 0.2, [check["segmented"][n] for n in names], 0.4, label="segmented")
    ax.bar(x + 0.2, [check["theoretical"][n] for n in names], 0.4, label=f"design (CBD as {check['cbd_as']})")
    ax.set_xticks(x, names)
    ax.set_ylabel("volume fraction")
    ax.set_title(f"volume fractions vs design — {'pass' if check['passed'] else 'FAIL'} at ±{check['tolerance']:g}")
    ax.legend()
    return fig


def fig_rev(twin: Twin, series: list[Twin]) -> Figure | None:
    stats = _result(twin, "rev", "statistical")
    if not stats:
        return None
    fig, ax = _fig()
    for s in stats:
        ax.plot(s["sizes_um"], [float(v) for v in s["relative_spread"]], marker="o", label=s["property"])
    ax.axhline(stats[0]["tolerance"], color="k", ls="--", lw=1, label="tolerance")
    ax.set_xlabel("sub-volume edge (µm)")
    ax.set_ylabel("relative spread (std/mean)")
    ratio = _result(twin, "rev", "size_ratio")
    title = "statistical REV"
    if ratio:
        title += f"; size ratio {min(ratio['ratio']):.1f} (criterion > {ratio['criterion']:g})"
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def fig_network(twin: Twin, series: list[Twin]) -> Figure | None:
    metrics = _result(twin, "network", "metrics")
    if not metrics:
        return None
    fig, (ax1, ax2) = _fig(2, 4.5)
    edges = np.asarray(metrics["radius_bins_um"], dtype=float)
    counts = np.asarray(metrics["radius_hist"], dtype=float)
    ax1.bar(edges[:-1], counts, width=np.diff(edges), align="edge", edgecolor="k", lw=0.3)
    ax1.axvline(metrics["mean_equivalent_radius_um"], color="r", ls="--", label="mean")
    ax1.set_xlabel("equivalent pore radius (µm)")
    ax1.set_ylabel("pores")
    ax1.legend()
    hist = np.asarray(metrics["coordination_hist"], dtype=float)
    ax2.bar(np.arange(hist.size), hist, edgecolor="k", lw=0.3)
    ax2.set_xlabel("coordination number")
    ax2.set_ylabel("internal pores")
    ax2.set_title(f"mean {metrics['mean_coordination']:.2f}")
    return fig


def fig_connectivity(twin: Twin, series: list[Twin]) -> Figure | None:
    conn = _result(twin, "network", "connectivity")
    if not conn or "std" not in conn:
        return None
    arrays = twin.load_result_arrays("network")
    fig, (ax1, ax2) = _fig(2, 4.5, 4.0)
    ax1.scatter(arrays["connectivity.rows"], arrays["connectivity.cols"], s=1, c="k")
    ax1.set_xlabel("pore i (Cartesian order)")
    ax1.set_ylabel("pore j")
    ax1.set_aspect("equal")
    ax1.invert_yaxis()
    ax1.set_title(f"connectivity matrix ({conn['num_pores']} pores)")
    ax2.plot(arrays["connectivity.pdf_x"], arrays["connectivity.pdf_y"])
    ax2.set_xlabel("normalised projection normal to the diagonal")
    ax2.set_ylabel("probability density")
    ax2.set_title(f"band std {conn['std']:.3f}")
    return fig


def fig_transport(twin: Twin, series: list[Twin]) -> Figure | None:
    members = [t for t in [twin, *series] if "transport" in t.result_names]
    if not members:
        return None
    fig, (ax1, ax2) = _fig(2, 4.5)
    for t in members:
        tort = t.load_result("transport")["tortuosity"]
        if "per_axis" in tort:
            axes_, values = ["z", "y", "x"], [_num(v) for v in tort["tortuosity_factor"]]
        else:
            axes_, values = [tort["axis"]], [_num(tort["tortuosity_factor"])]
        ax1.plot(axes_, values, marker="o", ls="none" if len(values) == 1 else "-", label=t.name)
    ax1.set_ylabel("tortuosity factor τ² (D_eff = ε D / τ²)")
    ax1.set_xlabel("axis")
    ax1.legend(fontsize=7)
    conds = [(t.name, t.load_result("transport").get("conductivity")) for t in members]
    conds = [(n, c) for n, c in conds if c]
    if conds:
        ax2.bar([n for n, _ in conds], [_num(c["effective_conductivity_s_m"]) for _, c in conds])
        ax2.set_ylabel("effective electronic conductivity (S/m)")
        ax2.tick_params(axis="x", labelrotation=30, labelsize=7)
    else:
        ax2.set_axis_off()
    return fig


def fig_stress(twin: Twin, series: list[Twin]) -> Figure | None:
    steps = [(t, t.load_result("calender")) for t in series if "calender" in t.result_names]
    if not steps:
        return None
    fig, (ax1, ax2) = _fig(2, 4.5)
    for t, step in steps:
        if "von_mises_mpa" in t.field_names:
            vm = np.asarray(t.read_field("von_mises_mpa"), dtype=np.float64)
            phases = np.asarray(t.labels("phases"))
            solid = vm[phases != t.phases.value("pore")] if "pore" in t.phases else vm.ravel()
            solid = solid[np.isfinite(solid) & (solid > 0)]
            if solid.size:
                ax1.hist(solid, bins=np.logspace(np.log10(max(solid.min(), 1e-3)), np.log10(solid.max() + 1e-9), 40),
                         histtype="step", label=f"{step['density_g_cm3']:.2f} g/cm³")
    ax1.set_xscale("log")
    ax1.set_xlabel("von Mises stress in the solid (MPa)")
    ax1.set_ylabel("voxels")
    ax1.legend(fontsize=7)
    density = [s["density_g_cm3"] for _, s in steps]
    for threshold in steps[0][1]["crackable_volume_pct"]:
        ax2.plot(density, [s["crackable_volume_pct"][threshold] for _, s in steps], marker="o",
                 label=f"> {threshold} MPa")
    ax2.set_xlabel("electrode density (g/cm³)")
    ax2.set_ylabel("crackable active volume (%)")
    ax2.legend(fontsize=8)
    return fig


def fig_crack_profiles(twin: Twin, series: list[Twin]) -> Figure | None:
    cracks = _result(twin, "cracks")
    steps = [t.load_result("calender") for t in series if "calender" in t.result_names]
    if not cracks and not steps:
        return None
    fig, ax = _fig()
    if cracks and cracks["crack_volume_um3"] > 0:
        ax.plot(_rel(cracks["depth_um"]), cracks["profile_percent"], marker="o", label="crack volume (observed)")
    if steps:
        last = steps[-1]
        threshold = next(iter(last["crackable_profile_pct"]))
        prof = np.asarray(last["crackable_profile_pct"][threshold], dtype=float)
        share = 100 * prof / prof.sum() if prof.sum() > 0 else prof
        ax.plot((np.arange(prof.size) + 0.5) / prof.size, share, marker="s",
                label=f"crackable > {threshold} MPa (simulated, {last['density_g_cm3']:.2f} g/cm³)")
    ax.set_xlabel("relative depth from the collector")
    ax.set_ylabel("share of volume per bin (%)")
    ax.set_title("cracks vs crackable volume — different quantities: observed cracks vs where cracking can start",
                 fontsize=8)
    ax.legend(fontsize=7)
    return fig


def fig_activation(twin: Twin, series: list[Twin]) -> Figure | None:
    points = [(t.load_result("calender")["ratio"], t.load_result("conductive")["activation"]) for t in series
              if "calender" in t.result_names and "conductive" in t.result_names]
    if points and "conductive" in twin.result_names:  # the uncalendered twin is the curve's ratio-0 point
        points.insert(0, (0.0, twin.load_result("conductive")["activation"]))
    if len(points) < 3:
        return None
    from .analyses.conductive import activation_curve

    curve = activation_curve(points)
    fig, ax = _fig()
    ax.plot(curve.x, curve.activation, marker="o")
    ax.axvline(curve.threshold, color="r", ls="--", label=f"steepest rise at {curve.threshold:.2f}")
    ax.set_xlabel("calendering ratio")
    ax.set_ylabel("predicted activation (collector-connected fraction)")
    ax.legend()
    return fig


def fig_ebac(twin: Twin, series: list[Twin]) -> Figure | None:
    members = [t for t in [twin, *series] if "ebac" in t.result_names]
    if not members:
        return None
    fig, ax = _fig()
    for t in members:
        r = t.load_result("ebac")
        depth, mean, std = (np.asarray(r[k], dtype=float) for k in ("depth_um", "profile_mean", "profile_std"))
        ax.plot(depth, mean, label=t.name)
        ax.fill_between(depth, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("depth from the collector (µm)")
    ax.set_ylabel("EBAC intensity (mean ± std over the width)")
    ax.legend(fontsize=7)
    return fig


#: (key, title, builder) in report order; later issues append their figures here.
FIGURES: list[tuple[str, str, FigureBuilder]] = [
    ("slices", "Slices: raw, processed, segmented", fig_slices),
    ("fractions", "Volume fractions vs design", fig_fractions),
    ("rev", "REV curves", fig_rev),
    ("network", "Pore radius and coordination number", fig_network),
    ("connectivity", "Connectivity matrix and band PDF", fig_connectivity),
    ("transport", "Tortuosity and conductivity", fig_transport),
    ("stress", "von Mises stress and crackable volume vs density", fig_stress),
    ("crack_profiles", "Crack vs crackable profiles", fig_crack_profiles),
    ("activation", "Activation curve", fig_activation),
    ("ebac", "EBAC line scans", fig_ebac),
]


# ====================================================================================== helpers
def _result(twin: Twin, name: str, key: str | None = None) -> Any:
    if name not in twin.result_names:
        return None
    result = twin.load_result(name)
    return result.get(key) if key is not None else result


def _num(value: Any) -> float:
    return float(value)  # stored inf/nan come back as strings; float() reads them


def _rel(depth: Any) -> np.ndarray:
    d = np.asarray(depth, dtype=float)
    return d / (d[-1] + (d[1] - d[0]) / 2 if d.size > 1 else 1.0)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _html(twin: Twin, figures: list[ReportFigure], series: list[Twin]) -> str:
    from .pipeline import summarize

    esc = html.escape
    rows = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(_fmt(v))}</td></tr>" for k, v in summarize(twin).items())
    blocks = []
    for f in figures:
        if f.png is None:
            blocks.append(f'<section id="{f.key}"><h2>{esc(f.title)}</h2><p class="missing">not computed '
                          "for this twin</p></section>")
        else:
            data = base64.b64encode(f.png).decode()
            blocks.append(f'<section id="{f.key}"><h2>{esc(f.title)}</h2>'
                          f'<img alt="{esc(f.title)}" src="data:image/png;base64,{data}"></section>')
    steps = "".join(f"<li>{esc(p['step'])} <small>{esc(p.get('time', ''))}</small></li>" for p in twin.provenance)
    checks = "".join(f"<li>{esc(c)}</li>" for c in check_failures(twin))
    members = "".join(f"<li>{esc(t.name)}</li>" for t in series)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>twinlab report — {esc(twin.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}th,td{{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:90%}}
img{{max-width:100%}}.missing{{color:#888}}</style></head>
<body><h1>twinlab report — {esc(twin.name)}</h1>
<p>twin <code>{esc(str(twin.path))}</code>, twinlab {esc(__version__)}</p>
<h2>Checks</h2><ul class="checks">{checks or '<li>no failed check</li>'}</ul>
<h2>Summary</h2><table>{rows}</table>
{''.join(blocks)}
<h2>Calendering series</h2><ul>{members or '<li>none</li>'}</ul>
<h2>Provenance</h2><ol>{steps}</ol>
</body></html>
"""


def check_failures(twin: Twin) -> list[str]:
    """Every failed check stored in a twin, one line each: empty segmented phases (result "segment")
    and a failed design check (result "rev"). Shown at the top of the report, never left out."""
    out = []
    seg = _result(twin, "segment")
    if seg and seg.get("empty_phases"):
        out.append(f"segmentation: empty phase(s) {', '.join(seg['empty_phases'])} — {seg.get('warnings', '')}")
    design = _result(twin, "rev", "design")
    if design and not design.get("passed", True):
        out.append(design.get("message") or "design check FAILED")
    return out


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

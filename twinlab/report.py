"""Figures and self-contained HTML reports written for people, from what they are given.

Two reports:

* :func:`write_report` — one twin (and its calendering series): a headline table of the seed
  quantities with units and the design check (pass/fail with the deviations) on the first screen,
  then the figures, and every stored number in a collapsed appendix.
* :func:`write_study_report` — a calendering design study (:class:`StudyReportData`, built by
  :mod:`twinlab.study`): the design window in one line, a headline table per member with the
  criteria check, every quantity against density (or ratio) with the window shaded, the Bruggeman
  fit, connectivity band PDFs, crackable profiles, the LMP activation, and the full table in the
  appendix.

Each figure is saved as PNG and SVG in ``figures/`` beside the HTML and embedded (PNG, base64),
so the HTML file alone is complete. The report renders; it computes nothing it is not given
beyond reading the twin's stored results (it imports no orchestration module).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
# Figure objects, never pyplot: no display and no global backend switch (a notebook that imports the
# report keeps its inline backend)
from matplotlib.figure import Figure

from . import __version__
from ._results import format_value
from .quantities import QUANTITIES, summarize, twin_quantities
from .series import open_series  # noqa: F401  (re-exported: older callers import it from here)
from .twin import Twin

FigureBuilder = Callable[[Twin, list[Twin]], "Figure | None"]

#: The seed-style quantities of a twin's headline table, in order (see twinlab.quantities).
HEADLINE = ("porosity", "tortuosity_factor", "tortuosity_tau", "electronic_conductivity", "specific_surface",
            "contact_active_cbd", "mean_coordination", "mean_pore_radius", "connectivity_band_std",
            "crack_volume", "activation")


@dataclass(frozen=True)
class ReportFigure:
    key: str
    title: str
    png: bytes | None  # None: not computed for this twin
    svg: bytes | None = None


def build_figures(twin: Twin, series: list[Twin] | None = None) -> list[ReportFigure]:
    series = series or []
    return [_render(key, title, builder(twin, series)) for key, title, builder in FIGURES]


def write_report(twin: Twin | str | os.PathLike, path: str | os.PathLike, *,
                 series: str | os.PathLike | list[Twin] | None = None) -> Path:
    """Write ``path`` (HTML, self-contained) and ``<path's folder>/figures/*.png|svg``; return the HTML path."""
    twin = twin if isinstance(twin, Twin) else Twin.open(twin)
    members = open_series(series) if series is not None and not isinstance(series, list) else (series or [])
    path = Path(path)
    figures = build_figures(twin, members)
    _save_figures(path.parent, figures)
    _write_atomic(path, _twin_html(twin, figures, members).encode())
    return path


@dataclass(frozen=True)
class StudyReportData:
    """Everything a study report shows (plain data: the report reads no twin for it).

    ``columns``: dicts with key/label/unit/description; ``rows``: one dict per member (key → value);
    ``window``: :class:`twinlab.design_window.DesignWindow` as a dict; ``bruggeman``: the fit dict
    with ``points`` [[ε, τ²], …]; ``band_pdfs``: label → (x, pdf); ``crackable_profiles``: label →
    {strength: profile from the collector (bin 0) to the top}.
    """

    title: str
    x_key: str
    x_unit: str
    columns: Sequence[Mapping[str, str]]
    rows: Sequence[Mapping[str, Any]]
    window: Mapping[str, Any]
    window_line: str
    bruggeman: Mapping[str, Any] | None = None
    band_pdfs: Mapping[str, tuple[Sequence[float], Sequence[float]]] = field(default_factory=dict)
    crackable_profiles: Mapping[str, Mapping[str, Sequence[float]]] = field(default_factory=dict)
    lmp: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)
    appendix: Mapping[str, Any] = field(default_factory=dict)


def write_study_report(data: StudyReportData, path: str | os.PathLike) -> Path:
    """The study report at ``path`` (HTML) with ``figures/*.png|svg`` beside it; returns the HTML path."""
    path = Path(path)
    figures = [_render(key, title, builder(data)) for key, title, builder in STUDY_FIGURES]
    _save_figures(path.parent, figures)
    _write_atomic(path, _study_html(data, figures).encode())
    return path


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
    vs = twin.voxel_size
    fig, axes = _fig(len(panels), 3.6, 3.6)
    for ax, (title, img, kw) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img, extent=(0, img.shape[1] * vs.dx, img.shape[0] * vs.dy, 0), **kw)
        ax.set_title(f"{title} (z = {z})")
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")
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
    ax.set_xlabel("phase (name)")
    ax.set_ylabel("volume fraction (–)")
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
    ax.set_ylabel("relative spread std/mean (–)")
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
    ax1.set_ylabel("pores (count)")
    ax1.legend()
    hist = np.asarray(metrics["coordination_hist"], dtype=float)
    ax2.bar(np.arange(hist.size), hist, edgecolor="k", lw=0.3)
    ax2.set_xlabel("coordination number (–)")
    ax2.set_ylabel("internal pores (count)")
    ax2.set_title(f"mean {metrics['mean_coordination']:.2f}")
    return fig


def fig_connectivity(twin: Twin, series: list[Twin]) -> Figure | None:
    conn = _result(twin, "network", "connectivity")
    if not conn or "std" not in conn:
        return None
    arrays = twin.load_result_arrays("network")
    fig, (ax1, ax2) = _fig(2, 4.5, 4.0)
    ax1.scatter(arrays["connectivity.rows"], arrays["connectivity.cols"], s=1, c="k")
    ax1.set_xlabel("pore index i, Cartesian order (–)")
    ax1.set_ylabel("pore index j (–)")
    ax1.set_aspect("equal")
    ax1.invert_yaxis()
    ax1.set_title(f"connectivity matrix ({conn['num_pores']} pores)")
    ax2.plot(arrays["connectivity.pdf_x"], arrays["connectivity.pdf_y"])
    ax2.set_xlabel("projection normal to the diagonal, normalised (–)")
    ax2.set_ylabel("probability density (–)")
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
        eps = tort["per_axis"][0]["porosity"] if "per_axis" in tort else tort["porosity"]
        ax1.plot(axes_, values, marker="o", ls="none" if len(values) == 1 else "-",
                 label=f"{t.name} (ε={_num(eps):.3g})")
    ax1.set_ylabel("tortuosity factor τ² (–)")  # voxel solve; D_eff = ε D / τ²
    ax1.set_xlabel("solve axis (z, y, x)")
    ax1.legend(fontsize=7)
    conds = [(t.name, t.load_result("transport").get("conductivity")) for t in members]
    conds = [(n, c) for n, c in conds if c]
    if conds:
        ax2.bar([n for n, _ in conds], [_num(c["effective_conductivity_s_m"]) for _, c in conds])
        ax2.set_ylabel("effective electronic conductivity (S/m)")
        ax2.set_xlabel("twin (name)")
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
    ax1.set_ylabel("voxels (count)")
    ax1.legend(fontsize=7)
    density = [s["density_g_cm3"] for _, s in steps]
    for threshold in steps[0][1]["crackable_volume_pct"]:
        line, = ax2.plot(density, [s["crackable_volume_pct"][threshold] for _, s in steps], marker="o",
                         label=f"> {threshold} MPa")
        if all(s.get("crackable_particles_pct") for _, s in steps):  # series with particle instances
            # error bars: the sampling error of the window's few particles (stored from stop 25 on)
            se = [(s.get("crackable_particles_se_pct") or {}).get(threshold, 0.0) for _, s in steps]
            ax2.errorbar(density, [s["crackable_particles_pct"][threshold] for _, s in steps], yerr=se, marker="o",
                         linestyle="--", capsize=3, color=line.get_color(),
                         label=f"> {threshold} MPa (particle mean stress ± sampling error)")
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
    ax.set_xlabel("depth from the collector / thickness (–)")
    ax.set_ylabel("share of volume per bin (%)")
    ax.set_title("cracks vs crackable volume — different quantities: observed cracks vs where cracking can start",
                 fontsize=8)
    ax.legend(fontsize=7)
    return fig


def fig_crack_fractions(twin: Twin, series: list[Twin]) -> Figure | None:
    """Histogram of per-particle crack fractions (particle damage), from the ``cracks`` result."""
    cracks = _result(twin, "cracks")
    if not cracks or not cracks.get("particle_crack_fraction"):
        return None
    frac = 100 * np.asarray(cracks["particle_crack_fraction"], dtype=float)
    frac = frac[np.isfinite(frac)]  # NaN: face-cut sheets too thin to show a crack (crack_volume)
    if frac.size == 0:
        return None
    fig, ax = _fig()
    ax.hist(frac, bins=np.linspace(0, max(5.0, float(frac.max())), 21))
    unit = "(2D section: area %)" if cracks.get("dimensions") == "2D" else "(%)"
    ax.set_xlabel(f"crack fraction of the particle envelope {unit}")
    ax.set_ylabel("particles (count)")
    ax.set_title(f"particle damage: {cracks['cracked_particles']} of {cracks['n_particles']} particles cracked "
                 "(> 0.5 %)", fontsize=8)
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
    ax.set_xlabel("calendering ratio 1 − h/h0 (–)")
    ax.set_ylabel("predicted activation (–)")
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
    ax.set_ylabel("EBAC intensity, mean ± std (a.u.)")
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
    ("crack_fractions", "Per-particle crack fraction", fig_crack_fractions),
    ("activation", "Activation curve", fig_activation),
    ("ebac", "EBAC line scans", fig_ebac),
]


# ====================================================================================== study figures
def _unit_label(unit: str) -> str:
    return "–" if unit == "1" else unit


def _x_label(data: StudyReportData) -> str:
    return ("electrode density (g/cm³)" if data.x_key == "density" else "calendering ratio 1 − h/h0 (–)")


def _series(data: StudyReportData, key: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([float(r[data.x_key]) for r in data.rows])
    y = np.array([np.nan if r.get(key) is None else float(r[key]) for r in data.rows])
    y[~np.isfinite(y)] = np.nan
    return x, y


def _shade_window(ax: Any, data: StudyReportData) -> None:
    lo, hi = data.window.get("low"), data.window.get("high")
    if lo is None:
        return
    xs = sorted(float(r[data.x_key]) for r in data.rows)
    pad = 0.5 * min(np.diff(xs)) if len(xs) > 1 else 0.01
    ax.axvspan(lo - pad, hi + pad, color="#2ca02c", alpha=0.15, lw=0)


def _fixed_grid(fig: Figure, nrows: int, ncols: int) -> dict[str, float]:
    """Margins and gaps (in inches: room for 7-pt tick labels and an 8-pt axis label) of a grid of
    equal small panels. Constrained layout would find about the same, at the cost of drawing the
    figure's text once more (about a second for the study's grid of ~30 panels)."""
    width, height = fig.get_size_inches()
    left, right, bottom, top, gap_x, gap_y = 0.8, 0.15, 0.45, 0.4, 0.85, 0.5
    panel_w = (width - left - right - (ncols - 1) * gap_x) / ncols
    panel_h = (height - bottom - top - (nrows - 1) * gap_y) / nrows
    return {"left": left / width, "right": 1 - right / width, "bottom": bottom / height, "top": 1 - top / height,
            "wspace": gap_x / panel_w, "hspace": gap_y / panel_h}


def fig_study_quantities(data: StudyReportData) -> Figure | None:
    """Every tabulated quantity against the calendering variable, the design window shaded and each
    criterion's limit dashed."""
    cols = [c for c in data.columns if c["key"] not in (data.x_key, "member")
            and np.isfinite(_series(data, c["key"])[1]).any()]
    if not cols or not data.rows:
        return None
    ncols = 4
    nrows = math.ceil(len(cols) / ncols)
    fig = Figure(figsize=(4.0 * ncols, 2.8 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, gridspec_kw=_fixed_grid(fig, nrows, ncols))).ravel()
    limits = {c["key"]: c for c in data.window.get("criteria", ())}
    for ax, col in zip(axes, cols):
        x, y = _series(data, col["key"])
        _shade_window(ax, data)
        ax.plot(x, y, marker="o", ms=3)
        if col["key"] in limits:
            ax.axhline(limits[col["key"]]["limit"], color="r", ls="--", lw=1)
        ax.set_xlabel(_x_label(data), fontsize=8)
        ax.set_ylabel(f"{col['key']} ({_unit_label(col['unit'])})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(cols):]:
        ax.set_axis_off()
    fig.suptitle("green: design window; red dashed: criterion limit", fontsize=9,
                 y=1 - 0.12 / fig.get_size_inches()[1])  # inside the fixed top margin
    return fig


def fig_bruggeman(data: StudyReportData) -> Figure | None:
    fit = data.bruggeman
    if not fit or "exponent" not in fit:
        return None
    pts = np.asarray(fit["points"], dtype=float)
    eps = np.linspace(pts[:, 0].min() * 0.95, min(pts[:, 0].max() * 1.05, 0.999), 50)
    fig, ax = _fig()
    ax.loglog(pts[:, 0], pts[:, 1], "o", label="members")
    ax.loglog(eps, eps ** (1 - fit["exponent"]), "-",
              label=f"fit τ² = ε^(1−α), α = {fit['exponent']:.2f} (R² {fit['r_squared']:.2f})")
    ax.loglog(eps, eps ** -0.5, ":", color="gray", label="Bruggeman α = 1.5")
    ax.set_xlabel("porosity ε (–)")
    ax.set_ylabel("tortuosity factor τ² (–)")
    ax.legend(fontsize=8)
    return fig


def fig_band_pdfs(data: StudyReportData) -> Figure | None:
    if not data.band_pdfs:
        return None
    fig, ax = _fig()
    for label, (x, y) in data.band_pdfs.items():
        ax.plot(x, y, label=label)
    ax.set_xlabel("projection normal to the diagonal, normalised (–)")
    ax.set_ylabel("probability density (–)")
    ax.legend(fontsize=8, title=_x_label(data), title_fontsize=8)
    return fig


def fig_crackable_profiles(data: StudyReportData) -> Figure | None:
    if not data.crackable_profiles:
        return None
    fig, ax = _fig()
    for label, profiles in data.crackable_profiles.items():
        strength, prof = next(iter(profiles.items()))
        prof = np.asarray(prof, dtype=float)
        ax.plot((np.arange(prof.size) + 0.5) / prof.size, prof, marker="o", label=f"{label}, > {strength} MPa")
    ax.set_xlabel("depth from the collector / thickness (–)")
    ax.set_ylabel("crackable active volume per bin (%)")
    ax.legend(fontsize=8)
    return fig


def fig_study_activation(data: StudyReportData) -> Figure | None:
    keys = [k for k in ("activation", "shell_intact_fraction", "contact_collector_rel", "contact_electrolyte_rel")
            if np.isfinite(_series(data, k)[1]).any()]
    if "activation" not in keys:
        return None
    fig, ax = _fig(width=6.0)
    _shade_window(ax, data)
    for k in keys:
        ax.plot(*_series(data, k), marker="o", label=QUANTITIES[k].label)
    ax.set_xlabel(_x_label(data))
    ax.set_ylabel("fraction (–)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    return fig


STUDY_FIGURES: list[tuple[str, str, Callable[[StudyReportData], "Figure | None"]]] = [
    ("quantities", "Every quantity against the calendering variable", fig_study_quantities),
    ("bruggeman", "Bruggeman fit of the tortuosity factor", fig_bruggeman),
    ("band_pdfs", "Connectivity-matrix band PDFs of three members", fig_band_pdfs),
    ("crackable_profiles", "Crackable volume through the thickness, densest members", fig_crackable_profiles),
    ("activation", "Activation, intact shells and contact areas", fig_study_activation),
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


def _render(key: str, title: str, fig: Figure | None) -> ReportFigure:
    if fig is None:
        return ReportFigure(key, title, None, None)
    out = {}
    for fmt in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=110, metadata={"Date": None} if fmt == "svg" else None)
        out[fmt] = buf.getvalue()
        # the first save placed the axes (constrained layout: a third of a figure's drawing time); the second
        # keeps that placement instead of solving it again
        fig.set_layout_engine("none")
    return ReportFigure(key, title, out["png"], out["svg"])


def _save_figures(folder: Path, figures: list[ReportFigure]) -> None:
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    for f in figures:
        if f.png is not None:
            _write_atomic(folder / "figures" / f"{f.key}.png", f.png)
            _write_atomic(folder / "figures" / f"{f.key}.svg", f.svg)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ====================================================================================== HTML
_CSS = """body{font-family:sans-serif;max-width:1150px;margin:1em auto;color:#222;font-size:14px}
h1{font-size:20px;margin:.2em 0}h2{font-size:16px;margin:1em 0 .3em}p.meta{color:#666;margin:.2em 0 .6em;font-size:12px}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:1px 7px;text-align:left;font-size:12px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.headline{border:3px solid #1f6fb2}table.headline th{background:#e4eef8}
table.headline td:last-child{min-width:18em}
.first{display:flex;gap:1.5em;align-items:flex-start;flex-wrap:wrap}
.pass{color:#176b2c;font-weight:bold}.fail{color:#b00020;font-weight:bold}
.window{font-size:15px;padding:.4em .6em;background:#eef7ee;border-left:4px solid #2ca02c;margin:.4em 0}
img{max-width:100%}.missing{color:#888}figure{margin:0}
figcaption{font-size:12px;color:#555}details{margin-top:2em}summary{cursor:pointer;font-weight:bold}
table.raw{border:2px solid #7a3e9d}"""


def _page(title: str, first_screen: str, body: str, appendix: str) -> str:
    esc = html.escape
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<link rel="icon" href="data:,"><style>{_CSS}</style></head>
<body><h1>{esc(title)}</h1>
{first_screen}
{body}
<details id="appendix"><summary>Appendix: every stored number (raw keys)</summary>
{appendix}
</details>
</body></html>
"""


def _figure_blocks(figures: list[ReportFigure]) -> str:
    esc = html.escape
    blocks = []
    for f in figures:
        if f.png is None:
            blocks.append(f'<section id="{f.key}"><h2>{esc(f.title)}</h2><p class="missing">not computed '
                          "for this twin</p></section>")
        else:
            data = base64.b64encode(f.png).decode()
            blocks.append(f'<section id="{f.key}"><h2>{esc(f.title)}</h2><figure>'
                          f'<img alt="{esc(f.title)}" src="data:image/png;base64,{data}">'
                          f'<figcaption>also as <a href="figures/{f.key}.png">PNG</a> and '
                          f'<a href="figures/{f.key}.svg">SVG</a></figcaption></figure></section>')
    return "\n".join(blocks)


def _raw_table(items: Mapping[str, Any]) -> str:
    esc = html.escape
    rows = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(_cell(v))}</td></tr>" for k, v in items.items())
    return f'<table class="raw">{rows}</table>'


def _twin_html(twin: Twin, figures: list[ReportFigure], series: list[Twin]) -> str:
    esc = html.escape
    values = twin_quantities(twin)
    rows = []
    for key in HEADLINE:
        q = QUANTITIES[key]
        value = values.get(key)
        rows.append(f'<tr><th title="{esc(q.description)}">{esc(q.label)}</th>'
                    f'<td class="num">{esc(_cell(value) if value is not None else "not computed")}</td>'
                    f"<td>{esc(_unit_label(q.unit))}</td></tr>")
    headline = ('<table class="headline" id="headline"><tr><th>quantity</th><th>value</th><th>unit</th></tr>'
                + "".join(rows) + "</table>")
    first = (f'<p class="meta">twin <code>{esc(str(twin.path))}</code> · shape {twin.shape} · voxel '
             f"{esc(str(twin.voxel_size.as_tuple()))} µm · twinlab {esc(__version__)}</p>"
             f'<div class="first"><div><h2>Headline</h2>{headline}</div>'
             f"<div><h2>Design check</h2>{_design_check_html(_result(twin, 'rev', 'design'))}</div></div>")
    checks = "".join(f"<li>{esc(c)}</li>" for c in check_failures(twin))
    first += f'<h2>Checks</h2><ul class="checks">{checks or "<li>no failed check</li>"}</ul>'
    notes = "".join(f"<li>{esc(n)}</li>" for n in report_notes(twin))
    if notes:  # a likely phase swap or a 2D twin must be seen before any number is trusted
        first += f'<h2>Warnings and notes</h2><ul class="notes">{notes}</ul>'
    members = "".join(f"<li>{esc(t.name)}</li>" for t in series)
    steps = "".join(f"<li>{esc(p['step'])} <small>{esc(p.get('time', ''))}</small></li>" for p in twin.provenance)
    body = (_figure_blocks(figures) + f"<h2>Calendering series</h2><ul>{members or '<li>none</li>'}</ul>"
            f"<h2>Provenance</h2><ol>{steps}</ol>")
    return _page(f"twinlab report — {twin.name}", first, body, _raw_table(summarize(twin)))


def _design_check_html(check: Mapping[str, Any] | None) -> str:
    esc = html.escape
    if not check:
        return '<p class="missing">no design check stored (run <code>twinlab check --design …</code>)</p>'
    tol = float(check["tolerance"])
    rows = []
    skipped = check.get("not_checkable") or {}
    for name in check["phases"]:
        ok = check["passed_phases"].get(name)
        cell = ("<td class='missing'>not checkable</td>" if name in skipped
                else f"<td class='{'pass' if ok else 'fail'}'>{'pass' if ok else 'FAIL'}</td>")
        rows.append(f"<tr><th>{esc(name)}</th><td class='num'>{float(check['segmented'][name]):.3f}</td>"
                    f"<td class='num'>{float(check['theoretical'][name]):.3f}</td>"
                    f"<td class='num'>{float(check['deviation'][name]):+.3f}</td>{cell}</tr>")
    verdict = "pass" if check["passed"] else "fail"
    # a check with phases it could not compare is never shown as a plain pass
    badge = (f"<span class='missing'>NOT CHECKABLE: {esc(', '.join(skipped))}</span> · " if skipped else "")
    why = "".join(f"<p><b>{esc(n)} not checkable</b>: {esc(r)}</p>" for n, r in skipped.items())
    return (f"<p>{badge}<span class='{verdict}'>{verdict.upper()}</span>: {'the other ' if skipped else ''}volume "
            f"fractions within ±{tol:g} of the design (CBD compared as {esc(str(check['cbd_as']))})</p>{why}"
            '<table id="design-check"><tr><th>phase</th><th>segmented (–)</th><th>design (–)</th>'
            f"<th>deviation (–)</th><th>±{tol:g}</th></tr>{''.join(rows)}</table>")


def _study_html(data: StudyReportData, figures: list[ReportFigure]) -> str:
    esc = html.escape
    units = {c["key"]: c["unit"] for c in data.columns}
    crit_keys = [c["key"] for c in data.window.get("criteria", ())]
    qeff = sorted((k for k in units if k.startswith("q_eff_fraction_")), key=lambda k: float(k.split("_")[-1][:-1]))
    crack = [k for k in units if k.startswith("crackable_")][:1]
    wanted = ["porosity", "tortuosity_factor", "electronic_conductivity", *qeff[-1:], *crack, "activation",
              "shell_intact_fraction", *crit_keys]
    keys = [data.x_key] + list(dict.fromkeys(k for k in wanted if k in units and k != data.x_key))
    checks = {round(float(c["x"]), 9): c for c in data.window.get("checks", ())}
    inside = {round(float(x), 9) for x in data.window.get("members", ())}
    head = "".join(f"<th>{esc(k)} ({esc(_unit_label(units[k]))})</th>" for k in keys)
    body = []
    for row in data.rows:
        x = round(float(row[data.x_key]), 9)
        cells = "".join(f"<td class='num'>{esc(_cell(row.get(k)))}</td>" for k in keys)
        body.append(f"<tr>{cells}<td>{_check_cell(checks.get(x), x in inside)}</td></tr>")
    headline = (f'<table class="headline" id="headline"><tr>{head}<th>design check</th></tr>'
                + "".join(body) + "</table>")
    criteria = ", ".join(c["text"] for c in data.window.get("criteria", ())) or "none given"
    first = (f'<p class="meta">twinlab {esc(__version__)} · criteria: {esc(criteria)}</p>'
             f'<div class="window" id="window">{esc(data.window_line)}</div>'
             f"<h2>Headline</h2>{headline}")
    full_head = "".join(f"<th>{esc(c['key'])} ({esc(_unit_label(c['unit']))})</th>" for c in data.columns)
    full_rows = "".join("<tr>" + "".join(f"<td class='num'>{esc(_cell(r.get(c['key'])))}</td>" for c in data.columns)
                        + "</tr>" for r in data.rows)
    defs = "".join(f"<tr><th>{esc(c['key'])}</th><td>{esc(_unit_label(c['unit']))}</td><td>{esc(c['label'])}: "
                   f"{esc(c['description'])}</td></tr>" for c in data.columns)
    appendix = (f'<h2>Full table</h2><table class="raw"><tr>{full_head}</tr>{full_rows}</table>'
                f'<h2>Quantities</h2><table class="raw"><tr><th>key</th><th>unit</th><th>meaning</th></tr>{defs}</table>'
                f"<h2>Settings</h2><pre>{esc(json.dumps(data.appendix, indent=1, default=str))}</pre>")
    return _page(data.title, first, _figure_blocks(figures), appendix)


def _check_cell(check: Mapping[str, Any] | None, in_window: bool) -> str:
    esc = html.escape
    if check is None or not check["results"]:
        return "<span class='missing'>no criteria</span>"
    if check["passed"]:
        return f"<span class='pass'>pass</span>{' · in window' if in_window else ''}"
    fails = []
    for r in check["results"]:
        if not r["holds"]:
            need = r["text"].split(" ", 1)[1]  # "≥ 1 S/m"
            got = "not computed" if r["deviation"] is None else f"{_cell(r['value'])}"
            off = "" if r["deviation"] is None else f" (off by {r['deviation']:.2g})"
            fails.append(f"{r['key']} {got}, needs {need}{off}")
    return f"<span class='fail'>fail</span>: {esc('; '.join(fails))}"


def check_failures(twin: Twin) -> list[str]:
    """Every failed check stored in a twin, one line each: empty segmented phases (result "segment")
    and a failed design check, or one with phases it could not check (result "rev"). Shown at the
    top of the report, never left out."""
    out = []
    seg = _result(twin, "segment")
    if seg and seg.get("empty_phases"):
        out.append(f"segmentation FAILED: empty phase(s) {', '.join(seg['empty_phases'])}")
    design = _result(twin, "rev", "design")
    if design and (not design.get("passed", True) or design.get("not_checkable")):
        out.append(design.get("message") or "design check FAILED")
    return out




def _cell(value: Any) -> str:
    return format_value(value, missing="–")


def report_notes(twin: Twin) -> list[str]:
    """Warnings (a likely phase swap, a 2D twin) and notes the numbers need beside them (the
    network τ² is an estimate with a known bias; skipped or bounded solves)."""
    out = []
    if 1 in twin.shape:
        out.append(f"2D data: a single slice {list(twin.shape)}; fractions are area fractions and 3D analyses "
                   "(network, transport, REV, calendering) were not run")
    if "segment" in twin.result_names:
        out += [f"warning: {w}" for w in twin.load_result("segment").get("warnings", [])]
    if "network" in twin.result_names:
        tort = twin.load_result("network").get("tortuosity") or {}
        if "bias_note" in tort:
            out.append(f"network tortuosity factor τ² = {_cell(_num(tort['tortuosity_factor']))} "
                       f"({tort.get('estimate', 'network estimate')}): {tort['bias_note']}")
    if "transport" in twin.result_names:
        out += [f"transport: {n}" for n in twin.load_result("transport").get("notes", [])]
    return out

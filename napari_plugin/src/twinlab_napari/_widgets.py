"""Docked widgets (magicgui): thin front ends over :mod:`twinlab_napari._compute`.

Every widget works on a layer opened from a twin (its ``metadata['twin_path']``). Long work runs
in a napari thread worker with a progress bar; each widget has a Cancel button that stops the job
at its next check, before anything is written, so a cancelled job leaves the twin unchanged.
"""

from __future__ import annotations

import inspect
import pathlib
import threading
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from magicgui import magicgui
from magicgui.widgets import Container, Label, PushButton

from . import _compute

if TYPE_CHECKING:
    import napari


class Job:
    """One background job per widget: start, cancel, and hand results back on the GUI thread."""

    def __init__(self, widget: Container):
        self.widget = widget
        self.cancel_event = threading.Event()
        self.worker: Any = None
        self.plot: Any = None
        self.status = Label(value="")
        cancel = PushButton(text="Cancel")
        cancel.changed.connect(self.cancel)
        widget.extend([cancel, self.status])

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise _compute.Cancelled("cancelled by the user")

    def cancel(self) -> None:
        self.cancel_event.set()
        self.status.value = "cancelling…"

    def start(self, func: Callable[[], Any], on_done: Callable[[Any], None], label: str) -> Any:
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self.cancel_event.clear()
        self.status.value = f"{label}…"
        bar = progress(total=0, desc=label)
        worker = create_worker(func)

        def finished(result: Any) -> None:
            bar.close()
            self.status.value = "done"
            on_done(result)

        def failed(exc: Exception) -> None:
            bar.close()
            self.status.value = "cancelled" if isinstance(exc, _compute.Cancelled) else f"error: {exc}"

        worker.returned.connect(finished)
        worker.errored.connect(failed)
        worker.start()
        self.worker = worker
        return worker


def _twin_path(layer: Any) -> str:
    from twinlab.errors import InputError

    path = (getattr(layer, "metadata", None) or {}).get("twin_path")
    if not path:
        raise InputError("choose a layer opened from a *.twin.zarr (File ▸ Open, or drag the twin in)")
    return path


def _add(viewer: "napari.Viewer", layers: list[_compute.LayerData]) -> None:
    for data, kwargs, kind in layers:
        name = kwargs.get("name")
        if name in viewer.layers:
            viewer.layers.remove(name)
        getattr(viewer, f"add_{kind}")(data, **kwargs)


# ============================================================================ widgets
def _make(viewer: "napari.Viewer", func: Callable[..., None], **options: Any) -> Any:
    """A magicgui widget for ``func(job, **params)`` with a Cancel button and a status line."""
    holder: dict[str, Job] = {}

    def call(*args: Any, **params: Any) -> None:
        func(holder["job"], viewer, *args, **params)

    call.__signature__ = _signature_without_job(func)  # type: ignore[attr-defined]
    call.__name__ = func.__name__
    widget = magicgui(call, **options)
    holder["job"] = Job(widget)
    widget.job = holder["job"]  # type: ignore[attr-defined]
    return widget


def _signature_without_job(func: Callable[..., Any]) -> inspect.Signature:
    sig = inspect.signature(func, eval_str=False)
    return sig.replace(parameters=list(sig.parameters.values())[2:])


def _preprocess(job: Job, viewer: Any, image: "napari.layers.Image", steps: str = "denoise",
                whole_volume: bool = False) -> None:
    """Preview on the slab around the current slice, or (``whole_volume``) write back to the twin."""
    names = [s.strip() for s in steps.split(",") if s.strip()]
    if whole_volume:
        path = _twin_path(image)
        job.start(lambda: _compute.preprocess_twin(path, steps=names, check_cancel=job.check),
                  lambda layer: _add(viewer, [layer]), "preprocessing")
        return
    z = int(viewer.dims.current_step[0])
    data = image.data[0] if image.multiscale else image.data
    voxel = tuple(image.scale)
    job.start(lambda: _compute.preview_preprocess(data, voxel_size=voxel, z=z, steps=names),
              lambda slab: _add(viewer, [(slab, {"name": "preview", "scale": voxel,
                                                 "translate": (max(0, z - 6) * voxel[0], 0, 0)}, "image")]),
              "preview")


def _segment(job: Job, viewer: Any, image: "napari.layers.Image", method: str = "multiotsu",
             phases: str = "pore,cbd,active", scribbles: "napari.layers.Labels | None" = None) -> None:
    """Segment into the named phases (dark → bright) and store labels/phases in the twin."""
    path = _twin_path(image)
    names = [p.strip() for p in phases.split(",") if p.strip()]
    data = image.data[0] if image.multiscale else image.data
    marks = None if scribbles is None else np.asarray(scribbles.data)

    def work() -> _compute.LayerData:
        labels = _compute.segment_image(data, method=method, phases=names, scribbles=marks)
        job.check()
        return _compute.save_labels(path, "phases", labels, {"method": method, "phases": names})

    job.start(work, lambda layer: _add(viewer, [layer]), "segmenting")


def _checks(job: Job, viewer: Any, labels: "napari.layers.Labels", design: str = "ncm622") -> None:
    """REV (size ratio and statistical) and the design check, with a small plot."""
    path = _twin_path(labels)
    job.start(lambda: _compute.run_checks(path, design=design or None),
              lambda result: _show_plot(viewer, job, _rev_figure(result), result["message"]), "checks")


def _network(job: Job, viewer: Any, labels: "napari.layers.Labels") -> None:
    """Pores as points sized by diameter, throats as vectors, and the coordination histogram."""
    path = _twin_path(labels)

    def done(out: Any) -> None:
        layers, metrics = out
        _add(viewer, layers)
        _show_plot(viewer, job, _coordination_figure(metrics), f"mean coordination {metrics['mean_coordination']:.2f}")

    job.start(lambda: _compute.network_layers(path), done, "network")


def _transport(job: Job, viewer: Any, labels: "napari.layers.Labels") -> None:
    """Tortuosity factor and effective conductivity along z, y and x."""
    path = _twin_path(labels)

    def done(table: dict[str, Any]) -> None:
        job.status.value = "; ".join(
            f"{a}: τ² (factor)={float(row['tortuosity_factor']):.3g} at ε={float(row['porosity']):.3g}"
            + (f", σ={row['conductivity_s_m']:.3g} S/m" if "conductivity_s_m" in row else "")
            if "tortuosity_factor" in row else f"{a}: {row['note'][:60]}"
            for a, row in table.items())

    job.start(lambda: _compute.transport_per_axis(path), done, "transport")


def _calender(job: Job, viewer: Any, labels: "napari.layers.Labels", ratios: str = "0.1,0.2,0.3",
              steps: int = 3, window: int = 0) -> None:
    """Compress to the ratios; show compressed labels, von Mises stress and the crackable volume.
    ``window``: compress only a centred in-plane window of that many voxels (0: the whole twin)."""
    from twinlab.analyses.mechanics import CalenderOptions

    path = _twin_path(labels)
    values = [float(r) for r in ratios.split(",") if r.strip()]

    def done(out: Any) -> None:
        layers, results = out
        _add(viewer, layers)
        job.status.value = "; ".join(
            f"r={s['ratio']:.2f}: crackable " + ", ".join(f">{k} MPa {v:.1f}%" for k, v in s["crackable_volume_pct"].items())
            for s in results)

    job.start(lambda: _compute.calender_layers(path, ratios=values, steps=steps,
                                               options=CalenderOptions(window=window or None), check_cancel=job.check),
              done, "calendering")


def _clusters(job: Job, viewer: Any, labels: "napari.layers.Labels") -> None:
    """Conductive clusters, the collector-connected ones highlighted."""
    path = _twin_path(labels)

    def done(out: Any) -> None:
        layers, result = out
        _add(viewer, layers)
        job.status.value = (f"{result['n_clusters']} clusters, {result['n_percolating']} collector-connected; "
                            f"activation {100 * result['activation']:.1f} %")

    job.start(lambda: _compute.cluster_layers(path), done, "clusters")


def _ebac(job: Job, viewer: Any, path: pathlib.Path = pathlib.Path("."), pixel_size_um: float = 0.05,
          collector_side: str = "bottom") -> None:
    """Load an EBAC map: conductive map, collector-connected fraction and the line scan."""

    def done(out: Any) -> None:
        layers, result = out
        _add(viewer, layers)
        _show_plot(viewer, job, _ebac_figure(result), f"connected fraction {result['connected_fraction']:.2f}")

    job.start(lambda: _compute.ebac_layers(str(path), pixel_size_um=pixel_size_um, collector_side=collector_side),
              done, "EBAC")


def preprocess_widget(napari_viewer: "napari.Viewer") -> Any:
    return _make(napari_viewer, _preprocess, call_button="Run")


def segment_widget(napari_viewer: "napari.Viewer") -> Any:
    return _make(napari_viewer, _segment, call_button="Segment",
                 method={"choices": ["multiotsu", "gmm", "classifier"]})


def checks_widget(napari_viewer: "napari.Viewer") -> Any:
    return _make(napari_viewer, _checks, call_button="Run checks")


def network_widget(napari_viewer: "napari.Viewer") -> Any:
    return _make(napari_viewer, _network, call_button="Extract network")


def transport_widget(napari_viewer: "napari.Viewer") -> Any:
    return _make(napari_viewer, _transport, call_button="Compute")


def calender_widget(napari_viewer: "napari.Viewer") -> Any:
    return _make(napari_viewer, _calender, call_button="Calender")


def clusters_widget(napari_viewer: "napari.Viewer") -> Any:
    return _make(napari_viewer, _clusters, call_button="Find clusters")


def ebac_widget(napari_viewer: "napari.Viewer") -> Any:
    return _make(napari_viewer, _ebac, call_button="Analyse map",
                 path={"mode": "r", "filter": "*.tif *.tiff *.png"},
                 collector_side={"choices": ["bottom", "top", "left", "right"]})


# ============================================================================ helpers
def _show_plot(viewer: Any, job: Job, fig: Any, message: str) -> None:
    """Show ``fig`` under the widget (replacing an earlier plot) and ``message`` in its status line."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

    job.status.value = message
    canvas = FigureCanvasQTAgg(fig)
    canvas.setMinimumHeight(220)
    if job.plot is not None:
        job.widget.native.layout().removeWidget(job.plot)
        job.plot.deleteLater()
    job.widget.native.layout().addWidget(canvas)
    job.plot = canvas


def _rev_figure(result: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2.5), layout="constrained")
    ax = fig.subplots()
    for s in result["statistical"]:
        ax.plot(s["sizes_um"], [float(v) for v in s["relative_spread"]], marker="o", label=s["property"])
    ax.set_xlabel("sub-volume edge (µm)")
    ax.set_ylabel("relative spread")
    ax.legend(fontsize=6)
    return fig


def _coordination_figure(metrics: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2.5), layout="constrained")
    ax = fig.subplots()
    ax.bar(range(len(metrics["coordination_hist"])), metrics["coordination_hist"])
    ax.set_xlabel("coordination number")
    return fig


def _ebac_figure(result: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(result["depth_um"], result["profile_mean"])
    ax.set_xlabel("depth from collector (µm)")
    ax.set_ylabel("intensity")
    return fig

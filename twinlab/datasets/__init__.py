"""Sample data: synthetic electrodes with ground truth, image simulators, bundled real samples.

- :func:`make_cathode`, :func:`make_lmp_anode`, :func:`make_dry_film` — design-driven synthetic electrodes
  (phase + particle instance labels, particle list, realised vs design fractions).
- :func:`render_fibsem`, :func:`render_ebac` — image simulators (``simulators.py``).
- :func:`load`, :func:`list_samples` — the registry of bundled real samples and on-the-fly
  synthetic demos (``"demo_cathode"`` is the embedded default of the README demo).
"""

from .generators import (LMP_MODES, NCM_MODES, GeneratedElectrode, LogNormalMode, make_cathode, make_dry_film,
                         make_lmp_anode)
from .registry import Sample, datasets_dir, list_samples, load
from .simulators import EbacMap, FibsemStack, render_ebac, render_fibsem

__all__ = [
    "GeneratedElectrode", "LogNormalMode", "NCM_MODES", "LMP_MODES", "make_cathode", "make_lmp_anode", "make_dry_film",
    "Sample", "datasets_dir", "list_samples", "load",
    "FibsemStack", "EbacMap", "render_fibsem", "render_ebac",
]

"""Mechanics of the twin: an FFT-based small-strain solver and virtual calendering.

Public API: :func:`solve_mechanics`, :class:`MechanicsSolver` (the voxel solver) and
:func:`calender` (strain-controlled compression of an electrode twin, SCIENCE.md §6) with its
:class:`CalenderOptions`.
"""

from ._fft_solver import IncrementSolution, MechanicsSolver, solve_mechanics
from ._laws import lame_from_young, von_mises
from ._metrics import CalenderSeries, CalenderState, CalenderStep
from ._options import CalenderOptions
from .calender import calender

__all__ = ["calender", "CalenderOptions", "CalenderSeries", "CalenderState", "CalenderStep", "IncrementSolution",
           "MechanicsSolver", "solve_mechanics", "lame_from_young", "von_mises"]

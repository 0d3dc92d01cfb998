"""Shared fixtures: tiny deterministic volumes and twins; options for heavier tests."""

from __future__ import annotations

import numpy as np
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def gray_volume(rng: np.random.Generator) -> np.ndarray:
    """A (23, 31, 37) uint16 volume: odd sizes so chunk borders fall unevenly."""
    return rng.integers(0, 4000, size=(23, 31, 37), dtype=np.uint16)


@pytest.fixture
def phase_volume(rng: np.random.Generator) -> np.ndarray:
    """A (23, 31, 37) uint8 three-phase volume (0 pore, 1 active, 2 cbd)."""
    return rng.integers(0, 3, size=(23, 31, 37), dtype=np.uint8)


@pytest.fixture
def make_twin(tmp_path):
    """Factory: write a small twin from arrays and return the opened Twin."""
    from twinlab.twin import create_twin

    counter = iter(range(1000))

    def _make(image: np.ndarray, *, voxel_size=(0.05, 0.04, 0.04), **kwargs):
        return create_twin(tmp_path / f"t{next(counter)}.twin.zarr", image, voxel_size=voxel_size, **kwargs)

    return _make

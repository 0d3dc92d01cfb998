"""What a twin's CBD voxels stand for (``Twin.cbd_as``) is recorded with its phase labels and read by the
design check and calendering as their default, so a segmented FIB-SEM twin (CBD = the nanoporous domain)
is not weighed as if its CBD were solid."""

from __future__ import annotations

import numpy as np
import pytest

from twinlab.analyses.mechanics import calender
from twinlab.analyses.rev import analyze_twin
from twinlab.datasets import make_cathode
from twinlab.design import DEFAULT_CBD_NANOPOROSITY, ncm622_cathode
from twinlab.errors import InputError
from twinlab.segment import segment_twin
from twinlab.twin import Step, create_twin


@pytest.fixture(scope="module")
def generated():
    return make_cathode(ncm622_cathode(2.3), shape=(20, 40, 20), voxel_size_um=1.0, collector_um=2.0,
                        cbd_as="domain", seed=4)


def _density0(twin, **options) -> float:
    """The starting density calender works from (its density check runs before any solve)."""
    with pytest.raises(InputError, match="below the current") as err:
        calender(twin, densities=[0.1], steps=1, **options)
    return float(str(err.value).split("below the current ")[1].split(" g/cm³")[0])


def test_generator_segmentation_and_imports_record_it(tmp_path, generated):
    twin = generated.to_twin(tmp_path / "gen.twin.zarr")
    assert twin.cbd_as == "domain"
    # a hand correction of the phase labels keeps the record; new labels from elsewhere do not know it
    twin.write_labels("phases", generated.phases, step=Step("edit", {}))
    assert twin.reload().cbd_as == "domain"
    imported = create_twin(tmp_path / "imp.twin.zarr", generated.phases * 60, voxel_size=1.0,
                           labels={"phases": generated.phases})
    assert imported.cbd_as is None
    # segmenting the image: the CBD a grey image shows is the domain
    segment_twin(imported, phases=["pore", "cbd", "active", "collector"], refine=False)
    assert imported.reload().cbd_as == "domain"
    with pytest.raises(InputError, match="cbd_as must be 'solid' or 'domain'"):
        imported.update_metadata(cbd_as="film")


def test_calender_and_design_check_default_to_the_twins_record(tmp_path, generated):
    domain = generated.to_twin(tmp_path / "d.twin.zarr")
    solid = create_twin(tmp_path / "s.twin.zarr", generated.phases * 60, voxel_size=1.0,
                        labels={"phases": generated.phases}, design=generated.design.to_dict(), cbd_as="solid")
    # calender: the twin's record, unless asked otherwise
    rho_domain, rho_solid = _density0(domain), _density0(solid)
    assert rho_domain == pytest.approx(_density0(solid, cbd_as="domain"))
    assert rho_solid == pytest.approx(_density0(domain, cbd_as="solid"))
    assert rho_domain == pytest.approx(2.3, abs=0.03) and rho_solid > rho_domain + 0.1
    # the design check: the twin's record (the CBD compared as the domain passes, as solid it cannot)
    assert analyze_twin(domain, n_samples=4).design.cbd_as == "domain"
    assert analyze_twin(solid, n_samples=4).design.cbd_as == "solid"


def test_calendered_members_keep_the_record(tmp_path, generated):
    twin = generated.to_twin(tmp_path / "d.twin.zarr")
    series = calender(twin, densities=[2.45], steps=1, output=tmp_path / "series", contacts=False)
    assert series.settings["cbd_as"] == "domain"
    from twinlab.twin import Twin

    member = Twin.open(next((tmp_path / "series").glob("*.twin.zarr")))
    assert member.cbd_as == "domain"


def test_a_domain_without_design_weighs_the_default_nanoporosity(generated):
    lab = generated.phases
    kw = dict(voxel_size_um=1.0, thickness_axis="y", collector_side="low")
    solid = _density0(lab, **kw)
    domain = _density0(lab, cbd_as="domain", **kw)
    coating = lab[:, int((lab == 3).any(axis=(0, 2)).sum()):]  # above the foil
    top = int(np.flatnonzero(((coating == 1) | (coating == 2)).any(axis=(0, 2))).max()) + 1
    coating = coating[:, :top]
    cbd_share = (coating == 2).sum() / np.isin(coating, (1, 2)).sum()
    assert domain == pytest.approx(solid * (1 - DEFAULT_CBD_NANOPOROSITY * cbd_share), abs=2e-3)

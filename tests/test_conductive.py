"""Conductive clusters, activation and the chunked labelling (twinlab.analyses.conductive)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from twinlab.analyses.conductive import activation_curve, conductive_clusters, label_network
from twinlab.errors import InputError

PORE, ACTIVE, CBD, COLLECTOR, SHELL, LI = 0, 1, 2, 3, 4, 5


# ------------------------------------------------------------------------------ constructed volumes
def _box_chain(gaps: dict[int, int]) -> tuple[np.ndarray, list[int]]:
    """Five 6×7×6 active boxes stacked along y on a 3-voxel collector; ``gaps[k]`` = phase of the
    one-voxel layer between box k and k+1 (absent: the boxes touch face to face)."""
    lab = np.zeros((12, 3 + 5 * 8 + 2, 12), np.uint8)
    lab[:, :3, :] = COLLECTOR
    sizes = []
    y = 3
    for k in range(5):
        lab[3:9, y:y + 7, 3:9] = ACTIVE
        sizes.append(6 * 7 * 6)
        if k in gaps:
            lab[3:9, y + 7, 3:9] = gaps[k]
            y += 8
        else:
            y += 7
    return lab, sizes


def test_chain_touching_collector_is_fully_connected():
    lab, _ = _box_chain({})
    r = conductive_clusters(lab)
    assert r.n_clusters == 1 and r.n_percolating == 1
    assert r.activation == 1.0
    assert r.mode == "composite"


def test_chain_with_one_broken_link_gives_exact_fraction():
    lab, sizes = _box_chain({2: PORE})  # boxes 0,1,2 connected; 3,4 cut off by a pore layer
    r = conductive_clusters(lab, voxel_size_um=(0.5, 0.5, 0.5))
    assert r.n_clusters == 2 and r.n_percolating == 1
    assert r.activation == pytest.approx(sum(sizes[:3]) / sum(sizes), abs=1e-15)
    assert r.connected_target_volume_um3 == pytest.approx(sum(sizes[:3]) * 0.125)
    # labelled field: the cut-off boxes carry the non-percolating id
    assert set(np.unique(r.labels[lab == ACTIVE])) == {1, 2}


def test_cbd_bridges_a_gap_and_counts_as_network_not_target():
    lab, sizes = _box_chain({2: CBD, 3: PORE})
    r = conductive_clusters(lab)
    assert r.activation == pytest.approx(sum(sizes[:4]) / sum(sizes), abs=1e-15)
    # the cluster volume includes the CBD layer, the target volume does not
    big = int(np.argmax(r.cluster_volume_um3))
    assert r.cluster_volume_um3[big] == r.cluster_target_volume_um3[big] + 36
    # without CBD as a conductor the bridge is gone
    r2 = conductive_clusters(lab, conducting=("active",))
    assert r2.activation == pytest.approx(sum(sizes[:3]) / sum(sizes), abs=1e-15)


def test_connectivity_edge_contact():
    lab = np.zeros((5, 8, 5), np.uint8)
    lab[:, 0, :] = COLLECTOR
    lab[2, 1:4, 2] = ACTIVE
    lab[3, 4:7, 3] = ACTIVE  # touches the first rod only along an edge (diagonal in z-x)
    lab[2, 4, 2] = PORE
    assert conductive_clusters(lab, connectivity=6).activation == pytest.approx(0.5)
    assert conductive_clusters(lab, connectivity=26).activation == pytest.approx(1.0)


def _lmp_chain(broken_links: set[int], one_sided: set[int] = frozenset()) -> tuple[np.ndarray, np.ndarray]:
    """Four Li boxes (5×5×5) each wrapped in a 1-voxel shell, stacked on a collector. Link k joins
    particle k−1 and k (link 0: particle 0 and the collector). Broken links get broken-shell
    voxels on both facing shells (only the lower one for links in ``one_sided``)."""
    lab = np.zeros((9, 2 + 4 * 7 + 1, 9), np.uint8)
    broken = np.zeros(lab.shape, np.uint8)
    lab[:, :2, :] = COLLECTOR
    for k in range(4):
        y0 = 2 + 7 * k
        lab[1:8, y0:y0 + 7, 1:8] = SHELL
        lab[2:7, y0 + 1:y0 + 6, 2:7] = LI
    for k in broken_links:
        y0 = 2 + 7 * k
        broken[3:6, y0, 3:6] = 1  # bottom shell of particle k
        if k > 0 and k not in one_sided:
            broken[3:6, y0 - 1, 3:6] = 1  # top shell of particle k−1
    return lab, broken


def test_lmp_chain_all_broken_and_one_intact_link():
    lab, broken = _lmp_chain({0, 1, 2, 3})
    r = conductive_clusters(lab, broken_shell=broken)
    assert r.mode == "lmp" and r.target == "lithium"
    assert r.activation == 1.0
    lab, broken = _lmp_chain({0, 1, 3})  # link 2 intact: particles 2, 3 isolated
    r = conductive_clusters(lab, broken_shell=broken)
    assert r.activation == pytest.approx(0.5, abs=1e-15)
    assert r.n_clusters == 2 and r.n_percolating == 1


def test_lmp_shell_broken_on_one_side_only_still_insulates():
    lab, broken = _lmp_chain({0, 1, 2, 3}, one_sided={2})
    assert conductive_clusters(lab, broken_shell=broken).activation == pytest.approx(0.5, abs=1e-15)
    # and without any broken shell nothing is connected: intact shells insulate
    assert conductive_clusters(lab, broken_shell=np.zeros_like(broken)).activation == 0.0
    assert conductive_clusters(lab, conducting=("lithium",)).activation == 0.0


# ------------------------------------------------------------------------------ LMP calendering series
def _lmp_lattice(seed: int = 7, n=(3, 5, 4), radius: int = 5):
    """Li spheres (radius−1) in 1-voxel shells on a simple-cubic lattice whose shells touch, collector
    at y = 0..1. Returns labels, the contacts (voxel patches of both shells) with their particle
    pairs (−1 = collector), Li voxel count per particle and a uniform random number per contact."""
    s = 2 * radius + 1
    shape = (n[0] * s, 2 + n[1] * s, n[2] * s)
    lab = np.zeros(shape, np.uint8)
    lab[:, :2, :] = COLLECTOR
    zz, yy, xx = np.indices(shape)
    centres, li_voxels = {}, {}
    pid = 0
    for i in range(n[0]):
        for j in range(n[1]):
            for k in range(n[2]):
                c = (radius + i * s, 2 + radius + j * s, radius + k * s)
                d2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
                lab[d2 <= radius**2] = SHELL
                lab[d2 <= (radius - 1) ** 2] = LI
                centres[(i, j, k)] = (pid, np.array(c))
                li_voxels[pid] = int((d2 <= (radius - 1) ** 2).sum())
                pid += 1
    contacts = []
    for (i, j, k), (p, c) in centres.items():
        if j == 0:
            contacts.append((p, -1, c - np.array([0, radius, 0]) - np.array([0, 0.5, 0])))
        for d in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
            q = centres.get((i + d[0], j + d[1], k + d[2]))
            if q is not None:
                contacts.append((p, q[0], (c + q[1]) / 2.0))
    u = np.random.default_rng(seed).random(len(contacts))
    return lab, contacts, li_voxels, u


def _broken_for(lab, contacts, u, p):
    broken = np.zeros(lab.shape, np.uint8)
    zz, yy, xx = np.indices(lab.shape)
    for (a, b, mid), ui in zip(contacts, u):
        if ui < p:
            near = (zz - mid[0]) ** 2 + (yy - mid[1]) ** 2 + (xx - mid[2]) ** 2 <= 2.6**2
            broken[near & (lab == SHELL)] = 1
    return broken


def _expected_activation(contacts, li_voxels, u, p) -> float:
    parent = {k: k for k in [*li_voxels, -1]}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for (a, b, _), ui in zip(contacts, u):
        if ui < p:
            parent[find(a)] = find(b)
    root = find(-1)
    return sum(v for k, v in li_voxels.items() if find(k) == root) / sum(li_voxels.values())


def test_lmp_series_gives_monotone_nonlinear_activation_with_threshold():
    lab, contacts, li_voxels, u = _lmp_lattice()
    ratios = np.linspace(0.0, 1.0, 11)  # share of contacts whose shells broke, grows with calendering
    series = []
    for p in ratios:
        r = conductive_clusters(lab, broken_shell=_broken_for(lab, contacts, u, p))
        # voxel clusters reproduce the particle-graph percolation exactly
        assert r.activation == pytest.approx(_expected_activation(contacts, li_voxels, u, p), abs=1e-12)
        series.append((p * 45.0, r))  # as calendering ratio in %, 0–45 %
    curve = activation_curve(series, x_name="calendering ratio (%)")
    assert curve.activation[0] == 0.0 and curve.activation[-1] == 1.0
    assert curve.monotone
    assert curve.linear_r2 < 0.95  # not a straight line
    a = np.array(curve.activation)
    assert np.max(np.diff(a)) > 2.5 * (a[-1] - a[0]) / (len(a) - 1)  # a steep step, not a ramp
    assert 0 < curve.threshold < 45
    k = int(np.argmax(np.diff(a)))
    assert curve.slope_threshold == pytest.approx((curve.x[k] + curve.x[k + 1]) / 2)


def test_activation_curve_locates_logistic_midpoint():
    x = np.linspace(0, 40, 9)
    a = 1.0 / (1.0 + np.exp(-(x - 22.0) / 3.0))
    c = activation_curve(zip(x, a), method="logistic")
    assert c.threshold == pytest.approx(22.0, abs=0.05)
    assert c.slope_threshold == pytest.approx(22.5)  # midpoint of the 20–25 interval
    flat = activation_curve([(0, 0.0), (1, 0.0), (2, 0.0)])
    assert np.isnan(flat.threshold) and "does not rise" in flat.note
    with pytest.raises(InputError, match="at least 3"):
        activation_curve([(0, 0.1), (1, 0.2)])
    with pytest.raises(InputError, match="repeated"):
        activation_curve([(0, 0.1), (0, 0.2), (1, 0.3)])


# ------------------------------------------------------------------------------ chunked == whole
@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_chunked_labelling_equals_whole(connectivity, rng):
    mask = rng.random((23, 31, 37)) < (0.32 if connectivity == 6 else 0.15)
    whole, n = label_network(mask, connectivity=connectivity)
    ref, nref = ndi.label(mask, structure=ndi.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity]))
    assert n == nref and np.array_equal(whole, ref)
    lazy, nc = label_network(da.from_array(mask, chunks=(7, 11, 9)), connectivity=connectivity)
    assert isinstance(lazy, da.Array)
    chunked = lazy.compute()
    assert nc == n
    assert np.array_equal(chunked > 0, mask)
    pairs = set(zip(whole[mask].tolist(), chunked[mask].tolist()))
    assert len(pairs) == n  # a bijection between the two numberings
    assert len({a for a, _ in pairs}) == n and len({b for _, b in pairs}) == n


def test_chunked_clusters_equal_whole(rng):
    lab = rng.choice([PORE, ACTIVE, CBD], size=(21, 29, 19), p=[0.55, 0.3, 0.15]).astype(np.uint8)
    lab[:, :2, :] = COLLECTOR
    whole = conductive_clusters(lab)
    chunked = conductive_clusters(da.from_array(lab, chunks=(5, 8, 7)))
    assert isinstance(chunked.labels, da.Array)
    assert chunked.activation == pytest.approx(whole.activation, abs=1e-15)
    assert chunked.n_clusters == whole.n_clusters and chunked.n_percolating == whole.n_percolating
    assert sorted(chunked.cluster_volume_um3) == sorted(whole.cluster_volume_um3)
    # collector as the face: same on chunks
    wf = conductive_clusters(lab, collector="face", thickness_axis="y", collector_side="low")
    cf = conductive_clusters(da.from_array(lab, chunks=(5, 8, 7)), collector="face")
    assert cf.activation == pytest.approx(wf.activation, abs=1e-15)


# ------------------------------------------------------------------------------ bad input
def test_no_active_phase_is_a_clear_error():
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[:, 0] = COLLECTOR
    lab[2:4, 2:4, 2:4] = CBD
    with pytest.raises(InputError, match="no 'active' voxels"):
        conductive_clusters(lab)


def test_no_collector_is_a_clear_error_and_face_works():
    lab, _ = _box_chain({})
    lab[lab == COLLECTOR] = PORE
    with pytest.raises(InputError, match="collector is needed for percolation"):
        conductive_clusters(lab)
    # the volume's low-y face as collector: the chain starts 3 voxels above it, so nothing touches it
    assert conductive_clusters(lab, collector="face").activation == 0.0
    lab[:, :3, :] = ACTIVE
    assert conductive_clusters(lab, collector="face").activation == 1.0


def test_bad_options():
    lab, _ = _box_chain({})
    with pytest.raises(InputError, match="connectivity"):
        conductive_clusters(lab, connectivity=8)
    with pytest.raises(InputError, match="broken_shell has shape"):
        conductive_clusters(lab, broken_shell=np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(InputError, match="unknown phase"):
        conductive_clusters(lab, conducting=("graphite",))
    with pytest.raises(InputError, match="cannot also be a conducting"):
        conductive_clusters(lab, conducting=("active", "collector"))
    with pytest.raises(InputError, match="collector_side"):
        conductive_clusters(lab, collector="face", collector_side="bottom")
    with pytest.raises(InputError, match="3D"):
        conductive_clusters(lab[0])


# ------------------------------------------------------------------------------ twin
def test_analyze_twin_stores_result_and_cluster_labels(make_twin):
    from twinlab.analyses import run_analysis

    lab, broken = _lmp_chain({0, 1, 3})
    twin = make_twin(lab.astype(np.uint16), labels={"phases": lab, "broken_shell": broken})
    r = run_analysis("conductive", twin)
    assert r.activation == pytest.approx(0.5)
    twin = twin.reload()
    assert twin.load_result("conductive")["activation"] == pytest.approx(0.5)
    stored = twin.labels("clusters").compute()
    assert np.array_equal(stored > 0, np.isin(lab, [LI]) | ((lab == SHELL) & (broken == 1)))
    # a composite twin without foil: the collector face is used (auto) and the result says so
    lab2, _ = _box_chain({})
    lab2[:, :3, :] = ACTIVE
    twin2 = make_twin(lab2.astype(np.uint16), labels={"phases": lab2})
    r2 = run_analysis("conductive", twin2)
    assert r2.collector == "face:low" and r2.activation == 1.0


def test_lmp_mode_is_detected_from_the_content():
    lab, broken = _lmp_chain({0, 1, 2, 3})
    r = conductive_clusters(lab)  # no broken-shell record: an uncalendered LMP anode, all shells intact
    assert r.mode == "lmp" and r.activation == 0.0
    r = conductive_clusters(da.from_array(lab, chunks=9), broken_shell=da.from_array(broken, chunks=9))
    assert r.mode == "lmp" and r.activation == 1.0


# ------------------------------------------------------------------------------ generated electrodes
def test_generated_cathode_chunked_equals_whole():
    from twinlab.datasets.generators import make_cathode

    g = make_cathode(shape=(40, 96, 64), voxel_size_um=0.5, seed=1)
    whole = conductive_clusters(g.phases, voxel_size_um=g.voxel_size)
    chunked = conductive_clusters(da.from_array(g.phases, chunks=(13, 29, 23)), voxel_size_um=g.voxel_size)
    assert chunked.activation == pytest.approx(whole.activation, abs=1e-15)
    assert sorted(chunked.cluster_volume_um3) == sorted(whole.cluster_volume_um3)
    assert whole.activation > 0.9  # a packed cathode on its foil is nearly all connected
    assert whole.activation < 1.0 or whole.n_clusters == 1


def _break_contacts(phases: np.ndarray, particles: np.ndarray, min_contact_voxels: int) -> np.ndarray:
    """Shell voxels at a contact (face neighbour of another particle or of the collector) break when
    the contact's shell area (voxels, both sides) reaches ``min_contact_voxels``: calendering
    flattens the particles, contacts grow, and the stress they carry breaks the shell."""
    shell = phases == SHELL
    codes, voxel_idx = [], []
    n = int(particles.max()) + 2
    for ax in range(3):
        for step in (1, -1):
            nb_part = np.roll(particles, step, axis=ax)
            nb_phase = np.roll(phases, step, axis=ax)
            other = np.where(nb_phase == COLLECTOR, n - 1, nb_part)
            m = shell & (((nb_part != particles) & (nb_part > 0)) | (nb_phase == COLLECTOR))
            edge = [slice(None)] * 3
            edge[ax] = 0 if step == 1 else -1
            m[tuple(edge)] = False  # no wrap-around contacts
            idx = np.flatnonzero(m)
            a, b = particles.ravel()[idx], other.ravel()[idx]
            codes.append(np.minimum(a, b) * n + np.maximum(a, b))
            voxel_idx.append(idx)
    codes_all = np.concatenate(codes)
    uniq, inverse, counts = np.unique(codes_all, return_inverse=True, return_counts=True)
    broken = np.zeros(phases.size, np.uint8)
    broken[np.concatenate(voxel_idx)[counts[inverse] >= min_contact_voxels]] = 1
    return broken.reshape(phases.shape)


def test_generated_lmp_calendering_series():
    """make_lmp_anode at growing calendering ratio, shells broken where contacts grow large: the
    predicted activation rises from 0 to 1 in a step, monotone, and the threshold is reported."""
    from twinlab.datasets.generators import make_lmp_anode

    series = []
    for ratio in (0.0, 0.1, 0.2, 0.25, 0.3, 0.4):
        g = make_lmp_anode(ratio=ratio, voxel_size_um=3.0, seed=1)
        broken = _break_contacts(g.phases, g.particles, 120)
        series.append((100 * ratio, conductive_clusters(g.phases, broken_shell=broken)))
    curve = activation_curve(series, x_name="calendering ratio (%)")
    assert curve.monotone
    assert curve.activation[0] < 0.05 and curve.activation[-1] > 0.95
    assert curve.linear_r2 < 0.9
    assert 10 < curve.threshold < 40


def test_cli_analyze_only_cracks_and_conductive(make_twin):
    import json

    from typer.testing import CliRunner

    from twinlab.cli import app

    lab, sizes = _box_chain({2: PORE})
    lab[5, 20, 5] = PORE  # one crack voxel inside box 2 (an enclosed void)
    particles = ndi.label(lab == ACTIVE)[0].astype(np.int32)  # two particles: boxes 0–2 and 3–4
    twin = make_twin(lab.astype(np.uint16), voxel_size=1.0, labels={"phases": lab, "particles": particles})
    res = CliRunner().invoke(app, ["analyze", str(twin.path), "--only", "cracks,conductive", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["conductive"]["activation"] == pytest.approx((sum(sizes[:3]) - 1) / (sum(sizes) - 1))
    assert out["cracks"]["crack_volume_um3"] == 1.0
    assert "labels" not in out["conductive"] and "crack_mask" not in out["cracks"]


def test_activation_from_a_calendering_series(tmp_path):
    """The compression solver's output shapes: an in-memory CalenderSeries (steps + states) and a
    series folder of step twins (index.json + one twin per target)."""
    from types import SimpleNamespace

    from twinlab.analyses.conductive import activation_from_calender
    from twinlab.twin import Step, create_twin

    lab, contacts, li_voxels, u = _lmp_lattice()
    ratios = [0.1, 0.2, 0.3, 0.4]
    shares = [0.1, 0.3, 0.5, 0.9]  # broken contacts grow with the calendering ratio
    steps = [SimpleNamespace(ratio=r, density_g_cm3=0.3 + r, twin_path=None) for r in ratios]
    states = [SimpleNamespace(labels=lab, broken_shell=_broken_for(lab, contacts, u, p).astype(bool))
              for p in shares]
    curve = activation_from_calender(SimpleNamespace(steps=steps, states=states))
    expected = [_expected_activation(contacts, li_voxels, u, p) for p in shares]
    assert curve.x == pytest.approx(ratios)
    assert curve.activation == pytest.approx(expected, abs=1e-12)
    # the same as step twins on disk
    folder = tmp_path / "series"
    folder.mkdir()
    index = {"steps": []}
    for r, st in zip(ratios, states):
        path = folder / f"ratio_{r:.2f}.twin.zarr"
        twin = create_twin(path, lab.astype(np.uint16), voxel_size=2.0,
                           labels={"phases": lab, "broken_shell": st.broken_shell.astype(np.uint8)},
                           step=Step("calender", {"ratio": r}))
        twin.save_result("calender", {"ratio": r, "density_g_cm3": 0.3 + r}, step=Step("calender", {}))
        index["steps"].append({"ratio": r, "twin_path": str(path)})
    (folder / "index.json").write_text(__import__("json").dumps(index))
    on_disk = activation_from_calender(folder, x="density")
    assert on_disk.x == pytest.approx([0.3 + r for r in ratios])
    assert on_disk.activation == pytest.approx(expected, abs=1e-12)
    with pytest.raises(InputError, match="no fields"):
        activation_from_calender(SimpleNamespace(steps=steps, states=()))
    with pytest.raises(InputError, match="index.json"):
        activation_from_calender(tmp_path)


def test_broken_shell_mask_on_a_cathode_keeps_the_composite_network():
    """Every calendered twin carries a broken-shell mask; a cathode (no lithium) stays active ∪ CBD."""
    lab = np.zeros((6, 10, 6), np.uint8)
    lab[:, :2] = 3  # collector at low y
    lab[:, 2:8, 2:4] = 1  # an active column on the collector
    res = conductive_clusters(lab, broken_shell=np.zeros_like(lab), thickness_axis="y", collector_side="low")
    assert res.target == "active" and list(res.conducting) == ["active", "cbd"]
    assert res.activation == 1.0


# ------------------------------------------------------------------------------ sub-voxel films: the particle rule
def _film_chain(h: float, broken_sides: dict[int, tuple[bool, bool]] | None = None, *, n: int = 4,
                radius_um: float = 9.0, overlap_um: float = 0.3, patch_um: float = 3.0):
    """Li spheres (radius 9 µm) in a chain along the space diagonal, each overlapping the next by 0.3 µm and the
    first resting on a 6 µm collector (low y), voxelised at ``h`` µm (voxel centre inside the sphere), the
    film a state of each particle's surface voxels (shown as shell; the calender's membrane shells). Contact k
    joins particle k−1 and k (contact 0: particle 0 and the collector); ``broken_sides[k]`` = (film of the
    lower particle broken, of the upper) within 3 µm of the contact point (default: every contact broken on
    both sides). Returns labels, particle ids (1..n), broken-film mask and voxels per particle."""
    from twinlab.analyses.mechanics._contacts import particle_surface

    u = np.ones(3) / np.sqrt(3.0)
    shape = tuple(int(round(b / h)) for b in (60.0, 78.0, 60.0))
    centre = (np.indices(shape).transpose(1, 2, 3, 0) + 0.5) * h
    c0 = np.array([12.0, 6.0 + 0.2 + radius_um, 12.0])
    centres = [c0 + k * (2 * radius_um - overlap_um) * u for k in range(n)]
    particles = np.zeros(shape, np.int32)
    for k, c in enumerate(centres):
        particles[((centre - c) ** 2).sum(-1) <= radius_um**2] = k + 1
    film = particle_surface(particles)
    lab = np.where(film, SHELL, np.where(particles > 0, LI, PORE)).astype(np.uint8)
    lab[:, :int(round(6.0 / h))] = COLLECTOR
    points = [centres[0] - [0, radius_um, 0]] + [(centres[k - 1] + centres[k]) / 2 for k in range(1, n)]
    broken = np.zeros(shape, bool)
    for k, point in enumerate(points):
        lower, upper = (broken_sides or {}).get(k, (True, True))
        near = film & (((centre - point) ** 2).sum(-1) <= patch_um**2)
        broken |= near & (((particles == k) & lower) | ((particles == k + 1) & upper))
    return lab, particles, broken, np.bincount(particles.ravel(), minlength=n + 1)[1:]


def _film_activation(lab, particles, broken, **kw):
    return conductive_clusters(lab, broken_shell=broken, particles=particles, thickness_axis="y",
                               collector_side="low", **kw)


@pytest.mark.parametrize("h", [2.0, 3.0])
def test_film_particles_join_where_both_films_are_broken_at_their_contact(h):
    """All four contacts broken on both sides: one percolating cluster, activation 1. Contact 2 intact, or broken
    on one side only (the lower particle's film, then the upper's): particles 2 and 3 are cut off, the activation
    is exactly the volume share of particles 0 and 1 (a particle counts with its film voxels: they are lithium
    under a sub-voxel film); contact 0 intact on the particle's side: nothing reaches the collector."""
    lab, particles, broken, vol = _film_chain(h)
    r = _film_activation(lab, particles, broken, voxel_size_um=h)
    assert r.activation == 1.0 and r.n_clusters == 1 and r.n_percolating == 1 and r.connectivity == 26
    assert r.target_volume_um3 == pytest.approx(vol.sum() * h**3)
    assert set(np.unique(r.labels[particles > 0])) == {1} and not r.labels[particles == 0].any()
    for sides in [(False, False), (True, False), (False, True)]:
        lab, particles, broken, vol = _film_chain(h, {2: sides})
        r = _film_activation(lab, particles, broken)
        assert r.activation == pytest.approx(vol[:2].sum() / vol.sum(), abs=1e-15), sides
        assert r.n_clusters == 2 and r.n_percolating == 1
        assert set(np.unique(r.labels[particles == 3])) == set(np.unique(r.labels[particles == 4])) != \
            set(np.unique(r.labels[particles == 1]))
    lab, particles, broken, _ = _film_chain(h, {0: (False, False)})  # (the collector has no film: its side is moot)
    assert _film_activation(lab, particles, broken).activation == 0.0
    lab, particles, broken, _ = _film_chain(h, {0: (False, True)})  # the particle's film broken at the collector
    assert _film_activation(lab, particles, broken).activation == 1.0


def test_film_contacts_that_meet_at_voxel_edges_and_corners_give_the_same_activation_on_two_grids():
    """The same diagonal chain at 2 and 3 µm voxels, every film broken at every contact: the particle rule gives
    activation 1 on both grids. The voxel rule (broken film voxels as a 6-connected network, the rule before stop
    30) follows each grid's digitisation: the spheres' contacts meet at voxel edges and corners, so it reports
    1 at 2 µm but 0.30 at 3 µm — the grid dependence stop 29 measured on the calendered anode at the percolation
    threshold (0.54 vs 0.73 at 6 vs 4 µm)."""
    voxel_rule = []
    for h in (2.0, 3.0):
        lab, particles, broken, _ = _film_chain(h)
        assert _film_activation(lab, particles, broken).activation == 1.0
        voxel_rule.append(conductive_clusters(lab, broken_shell=broken, thickness_axis="y",
                                              collector_side="low").activation)
    assert voxel_rule[0] == 1.0 and voxel_rule[1] < 0.5, voxel_rule
    # at 3 µm the particles do share voxel faces, but their broken patches do not face each other: the particle
    # rule joins them with face contacts too (a contact is one interface, its films broken somewhere on each side)
    lab, particles, broken, _ = _film_chain(3.0)
    assert _film_activation(lab, particles, broken, connectivity=6).activation == 1.0


def test_film_particle_rule_reproduces_the_particle_graph_percolation_on_a_lattice():
    """The lattice of shelled spheres with random broken contacts (films broken on both sides of a contact): the
    particle rule gives exactly the union-find percolation of the broken contacts, each particle weighted with
    its whole volume (lithium + film voxels), at every share of broken contacts."""
    from twinlab.analyses.mechanics._contacts import particle_instances

    lab, contacts, li_voxels, u = _lmp_lattice()
    particles = particle_instances(lab, (SHELL, LI), core_values=(LI,))
    # lattice particle p (lattice order = C order of the cores' first voxels) → its instance's whole volume
    li_ids = particles.ravel()[np.flatnonzero(lab.ravel() == LI)]
    _, first = np.unique(li_ids, return_index=True)
    vol = np.bincount(particles.ravel())
    whole = {p: int(vol[i]) for p, i in enumerate(li_ids[np.sort(first)])}
    assert sorted(whole) == sorted(li_voxels) and all(whole[p] > li_voxels[p] for p in whole)
    for p in (0.0, 0.3, 0.5, 0.7, 1.0):
        r = conductive_clusters(lab, broken_shell=_broken_for(lab, contacts, u, p), particles=particles)
        assert r.activation == pytest.approx(_expected_activation(contacts, whole, u, p), abs=1e-12), p


def test_film_particles_bare_lithium_and_the_collector_at_a_corner():
    """A particle without a film (no shell voxel) conducts wherever it touches; a filmed particle only through a
    broken patch at that contact, also at the collector when it touches it at a voxel corner only."""
    lab = np.zeros((8, 12, 8), np.uint8)
    lab[:, :2] = COLLECTOR
    particles = np.zeros(lab.shape, np.int32)
    particles[2:5, 2:5, 2:5] = 1  # on the collector (face)
    particles[2:5, 5:8, 2:5] = 2  # on particle 1 (face)
    lab[particles > 0] = SHELL
    lab[3, 3, 3] = lab[3, 6, 3] = LI
    broken = np.zeros(lab.shape, bool)
    broken[3, 2, 3] = True  # particle 1's film at the collector
    assert _film_activation(lab, particles, broken).activation == pytest.approx(27 / 54)
    bare = lab.copy()
    bare[particles == 2] = LI  # particle 2 is bare lithium: particle 1's broken patch at the contact suffices
    broken[3, 4, 3] = True
    assert _film_activation(bare, particles, broken).activation == 1.0
    assert _film_activation(lab, particles, broken).activation == pytest.approx(27 / 54)  # 2's film intact
    # a particle touching the collector at one voxel corner only, its film broken there
    lab2 = np.zeros((6, 8, 6), np.uint8)
    lab2[:, :2] = COLLECTOR
    lab2[:, 1] = PORE
    lab2[0, 1, 0] = COLLECTOR
    particles2 = np.zeros(lab2.shape, np.int32)
    particles2[1:4, 2:5, 1:4] = 1
    lab2[particles2 > 0] = SHELL
    lab2[2, 3, 2] = LI
    corner = np.zeros(lab2.shape, bool)
    corner[1, 2, 1] = True
    assert _film_activation(lab2, particles2, corner).activation == 1.0
    assert _film_activation(lab2, particles2, corner, connectivity=18).activation == 0.0
    assert _film_activation(lab2, particles2, np.zeros_like(corner)).activation == 0.0


def test_film_particle_rule_bad_input():
    lab, particles, broken, _ = _film_chain(3.0)
    with pytest.raises(InputError, match="with broken_shell"):
        conductive_clusters(lab, particles=particles, thickness_axis="y", collector_side="low")
    cathode, _ = _box_chain({})
    with pytest.raises(InputError, match="target is lithium"):
        conductive_clusters(cathode, broken_shell=np.zeros_like(cathode), particles=np.ones_like(cathode))
    with pytest.raises(InputError, match="particles has shape"):
        _film_activation(lab, particles[:-1], broken)
    orphan = particles.copy()
    orphan[particles == 2] = 0
    with pytest.raises(InputError, match="carry no particle id"):
        _film_activation(lab, orphan, broken)
    with pytest.raises(InputError, match="integer"):
        _film_activation(lab, particles.astype(float), broken)
    with pytest.raises(InputError, match="connectivity"):
        _film_activation(lab, particles, broken, connectivity=4)
    # dask inputs are computed: the same result
    lazy = _film_activation(da.from_array(lab, chunks=8), da.from_array(particles, chunks=8), broken)
    assert lazy.activation == _film_activation(lab, particles, broken).activation == 1.0

"""Particle size draws and sphere packing by collective rearrangement (private).

Packing model
-------------
Spheres are dropped at random positions with their radii scaled down, then an overlap-removal
loop (collective rearrangement in the spirit of Jodrey & Tory 1985 / force-biased packing)
pushes every overlapping pair apart along the line of centres — the smaller sphere moves more,
in inverse proportion to volume — while the radii grow back to their drawn values. The box is
periodic in the two in-plane axes (a piece of a wide sheet) and walled along the thickness
axis (collector below, roll/free surface above). Overlap candidates come from a scipy cKDTree
per radius class, so small and large particles do not inflate each other's neighbour lists.
The loop stops when the largest overlap is below ``overlap_tol`` × the smaller radius of the
pair, or after ``max_iter`` sweeps (the overlap reached is returned and reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import math

import numba

from ..errors import InputError


class _norm:
    """Standard normal pdf/cdf (scipy.stats costs seconds to import)."""

    @staticmethod
    def pdf(x: float) -> float:
        return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)

    @staticmethod
    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@dataclass(frozen=True)
class LogNormalMode:
    """One mode of a particle size distribution.

    Parameters
    ----------
    mean_diameter_um : float
        Number-mean diameter of the mode (µm): ``exp(μ + σ²/2)`` of the log-normal.
    log_sigma : float
        σ, the standard deviation of ln(diameter) (dimensionless spread; 0 = monodisperse).
    weight_fraction : float
        Share of this mode in the active material by weight (= by volume: same material).
    truncate_sigma : float
        Draws beyond ±truncate_sigma standard deviations in log space are redrawn (keeps rare
        giants out of small domains). The underlying normal is widened and shifted so that the
        truncated distribution has exactly the requested number-mean and log-spread. A domain too
        small for the largest particles truncates further (the largest draws are capped).
    """

    mean_diameter_um: float
    log_sigma: float = 0.25
    weight_fraction: float = 1.0
    truncate_sigma: float = 2.5

    def __post_init__(self) -> None:
        d = self.mean_diameter_um
        if not (np.isfinite(d) and d > 0):
            raise InputError(f"particle mean diameter must be a positive number of µm, got {d!r}")
        if not (np.isfinite(self.log_sigma) and 0 <= self.log_sigma <= 2):
            raise InputError(f"log_sigma (spread of ln D) must lie in [0, 2], got {self.log_sigma!r}")
        if not (np.isfinite(self.weight_fraction) and 0 <= self.weight_fraction <= 1):
            raise InputError(f"mode weight_fraction must lie in [0, 1], got {self.weight_fraction!r}")
        if not self.truncate_sigma > 0:
            raise InputError(f"truncate_sigma must be positive, got {self.truncate_sigma!r}")

    @property
    def _sigma(self) -> float:
        """σ of the untruncated normal whose ±truncate_sigma-truncation has std ``log_sigma``."""
        a = self.truncate_sigma
        shrink = 1.0 - 2.0 * a * _norm.pdf(a) / (2.0 * _norm.cdf(a) - 1.0)
        return self.log_sigma / math.sqrt(shrink)

    @property
    def log_mu(self) -> float:
        """μ of ln(D) such that the truncated distribution's number-mean is ``mean_diameter_um``."""
        s, a = self._sigma, self.truncate_sigma
        # E[e^X] of N(μ, s²) truncated to μ ± a s is e^(μ + s²/2) (Φ(a − s) − Φ(−a − s)) / (Φ(a) − Φ(−a))
        factor = (_norm.cdf(a - s) - _norm.cdf(-a - s)) / (_norm.cdf(a) - _norm.cdf(-a))
        return float(math.log(self.mean_diameter_um) - 0.5 * s * s - math.log(factor))

    @property
    def max_diameter_um(self) -> float:
        return float(math.exp(self.log_mu + self.truncate_sigma * self._sigma))

    def draw(self, rng: np.random.Generator, n: int, *, max_diameter_um: float = np.inf) -> np.ndarray:
        """``n`` diameters (µm) from the truncated log-normal, also capped at ``max_diameter_um``."""
        if self.log_sigma == 0:
            if self.mean_diameter_um > max_diameter_um:
                raise InputError(f"particles of {self.mean_diameter_um:g} µm do not fit in the domain")
            return np.full(n, self.mean_diameter_um)
        s = self._sigma
        lo = -self.truncate_sigma * s
        hi = min(self.truncate_sigma * s, math.log(max_diameter_um) - self.log_mu)
        if hi <= lo:
            raise InputError(f"particles of the {self.mean_diameter_um:g} µm mode do not fit in the domain "
                             f"(largest allowed {max_diameter_um:.3g} µm); enlarge the domain")
        out = np.empty(0)
        while out.size < n:
            z = rng.normal(0.0, s, size=2 * (n - out.size) + 16)
            out = np.concatenate([out, z[(z >= lo) & (z <= hi)]])
        return np.exp(self.log_mu + out[:n])


def check_modes(modes: tuple[LogNormalMode, ...]) -> tuple[LogNormalMode, ...]:
    modes = tuple(modes)
    if not modes or not all(isinstance(m, LogNormalMode) for m in modes):
        raise InputError("modes must be a non-empty sequence of LogNormalMode")
    total = sum(m.weight_fraction for m in modes)
    if abs(total - 1.0) > 1e-4:
        raise InputError(f"particle mode weight fractions sum to {100 * total:g} %, not 100 %; "
                         "e.g. 0.8 and 0.2 for an 8:2 bimodal powder")
    return modes


def draw_population(rng: np.random.Generator, modes: tuple[LogNormalMode, ...], volume_um3: float, *,
                    max_diameter_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Draw diameters until each mode holds its weight share of ``volume_um3`` of spheres.

    Returns (diameters µm, mode index). The last sphere of each mode is kept only if that brings
    the mode's volume closer to its target.
    """
    diameters, which = [], []
    for k, mode in enumerate(modes):
        target = mode.weight_fraction * volume_um3
        if target <= 0:
            continue
        mean_vol = np.pi / 6 * mode.mean_diameter_um ** 3 * np.exp(4.5 * mode.log_sigma ** 2)
        batch = max(16, int(1.3 * target / mean_vol) + 16)
        d = np.empty(0)
        while True:
            d = np.concatenate([d, mode.draw(rng, batch, max_diameter_um=max_diameter_um)])
            cum = np.cumsum(np.pi / 6 * d ** 3)
            if cum[-1] >= target:
                break
        n = int(np.searchsorted(cum, target))  # cum[n] >= target
        if n > 0 and abs(cum[n - 1] - target) < abs(cum[n] - target):
            n -= 1
        else:
            n += 1
        diameters.append(d[:n])
        which.append(np.full(n, k, dtype=np.int16))
    return np.concatenate(diameters), np.concatenate(which)


@dataclass(frozen=True)
class Packing:
    centres_um: np.ndarray  # (N, 3), inside the box
    radii_um: np.ndarray  # (N,)
    max_overlap: float  # largest overlap depth / smaller radius of the pair
    mean_overlap: float  # mean of the same over overlapping pairs (0 if none)
    iterations: int


def pack_spheres(radii_um: np.ndarray, box_um: tuple[float, float, float], *, thickness_axis: int,
                 rng: np.random.Generator, overlap_tol: float = 0.05, max_iter: int = 2000) -> Packing:
    """Pack spheres of the given radii in ``box_um`` (periodic in-plane, walled along thickness).

    All spheres start at full size at uniformly random positions; each sweep moves both members
    of every overlapping pair apart by twice their overlap depth in total (over-relaxation: with
    many neighbours a factor 1 creeps), the smaller one more (weights ∝ the other's volume). The
    over-relaxation is lowered step-wise if a dense packing does not settle. Stops when every
    overlap is ≤ ``overlap_tol`` × the smaller radius of the pair, or after ``max_iter`` sweeps.
    """
    radii = np.asarray(radii_um, dtype=np.float64)
    box = np.asarray(box_um, dtype=np.float64)
    t = int(thickness_axis)
    n = radii.size
    if np.any(2 * radii > box[t]):
        raise InputError(f"a particle of diameter {2 * radii.max():.3g} µm does not fit in the coating "
                         f"thickness {box[t]:.3g} µm; enlarge the domain or lower the particle sizes")
    pos = rng.random((n, 3)) * box
    pos[:, t] = radii + rng.random(n) * (box[t] - 2 * radii)
    periodic = np.array([i != t for i in range(3)])
    # cell edge ~ the smaller particles' diameter: big spheres register in every cell they cover
    cell = max(2 * float(np.quantile(radii, 0.5)), box.max() / 200)
    ncell = np.maximum(1, np.floor(box / cell)).astype(np.int64)
    # spatial order → neighbours sit close in memory (particles move little per sweep)
    key = np.floor(pos / (box / ncell)).astype(np.int64)
    order = np.lexsort((key[:, 2], key[:, 1], key[:, 0]))
    pos = np.ascontiguousarray(pos[order])
    r = np.ascontiguousarray(radii[order])
    stats = np.zeros(2)
    push = 2.0
    worst, mean, it = np.inf, 0.0, 0
    for it in range(1, max_iter + 1):
        _relax_sweep(pos, r, box, t, periodic, ncell, push, stats)
        worst, mean = float(stats[0]), float(stats[1])
        if worst <= overlap_tol:
            break
        if it % 250 == 0 and push > 1.2:
            push -= 0.3
    out = np.empty_like(pos)
    out[order] = pos
    return Packing(out, radii.copy(), worst, mean, it)


def pack_spheres_best(radii_um: np.ndarray, box_um, *, thickness_axis: int, rng: np.random.Generator,
                      overlap_tol: float = 0.05, attempts: int = 4, **kwargs) -> Packing:
    """:func:`pack_spheres`, restarted from new random positions (few-particle packings can jam
    against the walls) up to ``attempts`` times while the overlap tolerance is not met; the
    packing with the smallest largest overlap wins. Large packings (> 5000 spheres) get one try."""
    best = None
    tries = attempts if np.size(radii_um) <= 5000 else 1
    for _ in range(tries):
        p = pack_spheres(radii_um, box_um, thickness_axis=thickness_axis, rng=rng, overlap_tol=overlap_tol, **kwargs)
        if best is None or p.max_overlap < best.max_overlap:
            best = p
        if best.max_overlap <= overlap_tol:
            break
    return best


@numba.njit(cache=True)
def _cell_range(x, r, boxlen, ncell, periodic):
    """Cells (possibly out of range, to wrap) covered by [x − r, x + r] along one axis."""
    h = boxlen / ncell
    lo = int(np.floor((x - r) / h))
    hi = int(np.floor((x + r) / h))
    if not periodic:
        lo = max(lo, 0)
        hi = min(hi, ncell - 1)
    elif hi - lo + 1 > ncell:
        lo, hi = 0, ncell - 1
    return lo, hi


@numba.njit(cache=True)
def _relax_sweep(pos, r, box, t, periodic, ncell, push, stats):
    """One overlap-removal sweep in place; stats ← (max, mean) relative overlap before the move."""
    n = r.size
    n0, n1, n2 = ncell[0], ncell[1], ncell[2]
    total = n0 * n1 * n2
    counts = np.zeros(total + 1, dtype=np.int64)
    for p in range(2):  # pass 0 counts, pass 1 fills (CSR cell lists)
        if p == 1:
            for c in range(total):
                counts[c + 1] += counts[c]
            members = np.empty(counts[total], dtype=np.int64)
            fill = counts[:total].copy()
        for i in range(n):
            a0, b0 = _cell_range(pos[i, 0], r[i], box[0], n0, periodic[0])
            a1, b1 = _cell_range(pos[i, 1], r[i], box[1], n1, periodic[1])
            a2, b2 = _cell_range(pos[i, 2], r[i], box[2], n2, periodic[2])
            for c0 in range(a0, b0 + 1):
                for c1 in range(a1, b1 + 1):
                    for c2 in range(a2, b2 + 1):
                        c = ((c0 % n0) * n1 + (c1 % n1)) * n2 + (c2 % n2)
                        if p == 0:
                            counts[c + 1] += 1
                        else:
                            members[fill[c]] = i
                            fill[c] += 1
    seen = np.full(n, -1, dtype=np.int64)
    disp = np.zeros((n, 3))
    worst = 0.0
    acc = 0.0
    npairs = 0
    vec = np.empty(3)
    for i in range(n):
        a0, b0 = _cell_range(pos[i, 0], r[i], box[0], n0, periodic[0])
        a1, b1 = _cell_range(pos[i, 1], r[i], box[1], n1, periodic[1])
        a2, b2 = _cell_range(pos[i, 2], r[i], box[2], n2, periodic[2])
        for c0 in range(a0, b0 + 1):
            for c1 in range(a1, b1 + 1):
                for c2 in range(a2, b2 + 1):
                    c = ((c0 % n0) * n1 + (c1 % n1)) * n2 + (c2 % n2)
                    for k in range(counts[c], counts[c + 1]):
                        j = members[k]
                        if j <= i or seen[j] == i:
                            continue
                        seen[j] = i
                        d2 = 0.0
                        for ax in range(3):
                            v = pos[j, ax] - pos[i, ax]
                            if periodic[ax]:
                                v -= box[ax] * np.round(v / box[ax])
                            vec[ax] = v
                            d2 += v * v
                        rs = r[i] + r[j]
                        if d2 >= rs * rs:
                            continue
                        d = np.sqrt(d2)
                        depth = rs - d
                        rel = depth / min(r[i], r[j])
                        worst = max(worst, rel)
                        acc += rel
                        npairs += 1
                        vi = r[i] ** 3
                        vj = r[j] ** 3
                        wi = vj / (vi + vj)
                        wj = vi / (vi + vj)
                        if d < 1e-12:  # coincident centres: split along an arbitrary axis
                            vec[0], vec[1], vec[2], d = 1.0, 0.0, 0.0, 1.0
                        for ax in range(3):
                            u = vec[ax] / d * push * depth
                            disp[i, ax] -= u * wi
                            disp[j, ax] += u * wj
    for i in range(n):
        for ax in range(3):
            x = pos[i, ax] + disp[i, ax]
            if periodic[ax]:
                x = x % box[ax]
            elif ax == t:
                x = min(max(x, r[i]), box[ax] - r[i])
            pos[i, ax] = x
    stats[0] = worst
    stats[1] = acc / npairs if npairs > 0 else 0.0

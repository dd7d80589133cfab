r"""Coverage: which (relative distance ``d``, scale ``g``) pairs training shows — the analysis behind notebook 02.

At inference with scale ``g`` a model reads a window of ``L·g`` tokens, so every query–key pair has a relative
distance ``d ∈ [0, L·g)`` and the rotary angle difference is :math:`(d/g)\,\theta_j` (Eq. 2 with Eq. 5). Say
training *covers* the pair ``(d, g)`` when some training iteration ran with scale ``g`` and held a query and an
earlier (or the same) key whose position ids differ by ``d``. Then

* no scaling covers ``g = 1`` and ``d ≤ R − 1`` only;
* PI (Eq. 3–4) with one fixed ``g`` covers that one ``g``, and ``d ≤ R − 1``;
* E² (Eq. 6) draws many ``g``; without sinks its offset is a pure shift that RoPE cannot see
  (Eq. 2), so it still reaches only ``d ≤ R − 1``; with sinks, a sink key ``n`` and a query ``m``
  are ``m + t − n`` apart (Eq. 8), and over the offsets of Eq. (7) that reaches ``d = L·g − 1`` —
  the whole window that inference at scale ``g`` needs. This is why one short run serves every
  window, and why the sinks matter (Table 5).

:func:`coverage` computes this over thousands of iterations sampled by :func:`e2llm_lite.augment.sample`
(nothing here re-implements the sampler) as plain arrays; :func:`distance_intervals` is the exact
per-iteration step (the differences of two runs of consecutive integers form one run, so a window needs only a
few intervals, not ``R²`` pairs). :func:`e2llm_lite.pictures.plot_coverage` draws the result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from e2llm_lite import augment
from e2llm_lite.validation import check_int

__all__ = ["position_runs", "distance_intervals", "Coverage", "coverage", "bin_coverage"]


def position_runs(ids: torch.Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
    """Maximal runs of consecutive integers in strictly increasing ``ids``: array ``(n_runs, 2)`` of
    inclusive ``[first, last]``. E²'s window ``0..3, 4+t..R−1+t`` is two runs (one when t = 0)."""
    a = np.asarray(torch.as_tensor(ids).cpu(), dtype=np.int64).ravel()
    if a.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    step = np.diff(a)
    if (step <= 0).any():
        i = int(np.argmax(step <= 0))
        raise ValueError(f"position ids must be strictly increasing, got {a[i]} then {a[i + 1]} at index {i}")
    cut = np.flatnonzero(step != 1)  # a run ends where the next id is not id + 1
    starts = np.concatenate(([0], cut + 1))
    ends = np.concatenate((cut, [a.size - 1]))
    return np.stack((a[starts], a[ends]), axis=1)


def distance_intervals(query_ids, key_ids=None) -> np.ndarray:
    """All causal relative distances ``q − k ≥ 0`` (q a query id, k a key id) as merged inclusive
    intervals ``(n, 2)``. ``key_ids`` defaults to ``query_ids`` (self-attention of one window).

    Steps: 1) split both into runs of consecutive ids; 2) the differences of run ``[b0, b1]`` minus
    run ``[a0, a1]`` are exactly the integers ``[b0 − a1, b1 − a0]``; keep the part ``≥ 0``;
    3) merge overlapping or touching intervals.
    """
    q_runs = position_runs(query_ids)
    k_runs = q_runs if key_ids is None else position_runs(key_ids)
    # 2) one interval per (query run, key run) pair
    lo = (q_runs[:, None, 0] - k_runs[None, :, 1]).ravel()
    hi = (q_runs[:, None, 1] - k_runs[None, :, 0]).ravel()
    keep = hi >= 0
    iv = np.stack((np.maximum(lo[keep], 0), hi[keep]), axis=1)
    if iv.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    # 3) merge
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    merged = [iv[0].tolist()]
    for a, b in iv[1:].tolist():
        if a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return np.asarray(merged, dtype=np.int64)


@dataclass
class Coverage:
    """Which (relative distance d, scale g) pairs ``n_iter`` sampled training iterations showed."""

    scheme: str  # scheme name in augment.SCHEMES
    scales: np.ndarray  # (G,) the scales 1..G_max (row index = g - 1)
    counts: np.ndarray  # (G, D) int32: iterations whose window held distance d at scale g
    iterations: np.ndarray  # (G,) int64: iterations that drew scale g
    base_window: int  # L
    train_len: int  # R
    n_sink: int  # sinks in the window (0 = offsets are a pure shift)
    n_iter: int  # iterations sampled
    seed: int  # seed of the sampler stream
    exclude_sink_keys: bool = False  # True: ignore query -> sink-key pairs (what sinks add)
    extra: dict = field(default_factory=dict)

    @property
    def covered(self) -> np.ndarray:
        """(G, D) bool: seen at least once."""
        return self.counts > 0

    @property
    def needed(self) -> np.ndarray:
        """(G, D) bool: distances inference at scale g needs, ``d < L·g`` (window of L·g tokens)."""
        d = np.arange(self.counts.shape[1])
        return d[None, :] < self.base_window * self.scales[:, None]

    def max_distance(self, g: int) -> int:
        """Largest distance covered at scale ``g`` (−1 when the scale never came up)."""
        row = np.flatnonzero(self.counts[int(g) - 1])
        return int(row[-1]) if row.size else -1

    def fraction_of_needed(self) -> float:
        """Share of the needed pairs ``{(d, g): d < L·g, g ≤ G_max}`` that training covered."""
        need = self.needed
        return float((self.covered & need).sum() / need.sum())

    def summary(self) -> dict:
        return {
            "scheme": self.scheme,
            "n_iter": self.n_iter,
            "seed": self.seed,
            "L": self.base_window,
            "R": self.train_len,
            "n_sink": self.n_sink,
            "exclude_sink_keys": self.exclude_sink_keys,
            "scales_drawn": [int(g) for g, c in zip(self.scales, self.iterations) if c > 0],
            "max_distance_by_g": {int(g): self.max_distance(int(g)) for g in self.scales},
            "fraction_of_needed_covered": round(self.fraction_of_needed(), 6),
            **self.extra,
        }


def coverage(
    cfg: augment.AugmentConfig,
    scheme: str = "e2",
    n_iter: int = 2000,
    seed: int = 0,
    exclude_sink_keys: bool = False,
    g_max: int | None = None,
) -> Coverage:
    """Sample ``n_iter`` iterations of ``scheme`` with :func:`augment.sample` and record, for every
    scale ``g ≤ g_max`` (default ``cfg.g_max``) and distance ``d < L·g_max``, in how many iterations
    the window held a query–key pair ``d`` apart while training at scale ``g``.

    Pure: the same arguments give the same arrays. Cost: O(n_iter · runs²), not O(n_iter · R²).
    """
    n_iter = check_int("n_iter", n_iter, 1)
    g_top = int(g_max if g_max is not None else cfg.g_max)
    if g_top < 1:
        raise ValueError(f"g_max must be >= 1, got g_max={g_max!r}")
    D = cfg.base_window * g_top  # distances 0 .. L*g_max - 1
    diff = np.zeros((g_top, D + 1), dtype=np.int64)  # difference array: +1 at lo, -1 at hi+1
    iters = np.zeros(g_top, dtype=np.int64)
    gen = augment.make_generator(seed)
    for _ in range(n_iter):
        draw = augment.sample(cfg, gen, batch_size=1, scheme=scheme)
        g = int(draw.scale[0])
        if g > g_top:
            raise ValueError(f"scheme {scheme!r} drew g={g} > g_max={g_top}; pass a larger g_max")
        ids = draw.position_ids[0]
        keys = ids[cfg.n_sink :] if exclude_sink_keys else ids
        iters[g - 1] += 1
        for lo, hi in distance_intervals(ids, keys):
            diff[g - 1, lo] += 1
            diff[g - 1, min(hi, D - 1) + 1] -= 1
    counts = np.cumsum(diff[:, :D], axis=1).astype(np.int32)
    return Coverage(
        scheme=scheme,
        scales=np.arange(1, g_top + 1),
        counts=counts,
        iterations=iters,
        base_window=cfg.base_window,
        train_len=cfg.train_len,
        n_sink=cfg.n_sink,
        n_iter=n_iter,
        seed=seed,
        exclude_sink_keys=exclude_sink_keys,
    )


def bin_coverage(cov: Coverage, bin_width: int) -> np.ndarray:
    """(G, ceil(D / bin_width)) float: share of the distances in each bin that were covered."""
    bin_width = check_int("bin_width", bin_width, 1)
    G, D = cov.counts.shape
    nb = -(-D // bin_width)
    pad = np.zeros((G, nb * bin_width), dtype=bool)
    pad[:, :D] = cov.covered
    width = np.full(nb, bin_width)
    width[-1] = D - bin_width * (nb - 1)
    return pad.reshape(G, nb, bin_width).sum(-1) / width

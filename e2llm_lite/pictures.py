r"""Pictures of RoPE, PI and E² — plot helpers and the *coverage* computation behind notebook 02.

Everything here draws data that comes from :mod:`e2llm_lite.rope` (scores, Eq. 1–4) and
:mod:`e2llm_lite.augment` (the sampler of Algorithm 1, Eq. 5–7); nothing re-implements them.

**Coverage** (notebook 02). At inference with scale ``g`` a model reads a window of ``L·g`` tokens,
so every query–key pair has a relative distance ``d ∈ [0, L·g)`` and the rotary angle difference is
:math:`(d/g)\,\theta_j` (Eq. 2 with Eq. 5). Say training *covers* the pair ``(d, g)`` when some
training iteration ran with scale ``g`` and held a query and an earlier (or the same) key whose
position ids differ by ``d``. Then

* no scaling covers ``g = 1`` and ``d ≤ R − 1`` only;
* PI (Eq. 3–4) with one fixed ``g`` covers that one ``g``, and ``d ≤ R − 1``;
* E² (Eq. 6) draws many ``g``; without sinks its offset is a pure shift that RoPE cannot see
  (Eq. 2), so it still reaches only ``d ≤ R − 1``; with sinks, a sink key ``n`` and a query ``m``
  are ``m + t − n`` apart (Eq. 8), and over the offsets of Eq. (7) that reaches ``d = L·g − 1`` —
  the whole window that inference at scale ``g`` needs. This is why one short run serves every
  window, and why the sinks matter (Table 5).

:func:`coverage` computes this over thousands of sampled iterations as plain arrays;
:func:`distance_intervals` is the exact per-iteration step (the differences of two runs of
consecutive integers form one run, so a window needs only a few intervals, not ``R²`` pairs).

**Plots** return ``(fig, ax)`` with a fixed size; :func:`save_figure` writes ``figures/<name>.png``
and ``figures/<name>.json`` (the data shown) atomically. ``scripts/regen_figures.py`` regenerates
every figure by executing the notebooks that draw them.
"""
from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from e2llm_lite import augment
from e2llm_lite import rope
from e2llm_lite.atomic_files import atomic_write
from e2llm_lite.validation import check_int

__all__ = [
    "FIGSIZE",
    "TALL_FIGSIZE",
    "repo_root",
    "figures_dir",
    "display_path",
    "save_figure",
    "fixed_draw",
    "position_runs",
    "distance_intervals",
    "Coverage",
    "coverage",
    "bin_coverage",
    "score_curve",
    "plot_position_indices",
    "plot_scores",
    "plot_coverage",
    "MARKERS",
    "plain_log_axis",
    "coinciding_lines",
    "distinguish_lines",
]

FIGSIZE = (8.0, 3.4)  # every single-row figure: width, height in inches (d2l's one-size habit)
TALL_FIGSIZE = (8.0, 6.4)  # multi-panel figures (Fig. 2/3, coverage)
BLUE = "#1f5fbf"  # the paper's "blue dots"
ENV_FIGURES = "E2LLM_FIGURES_DIR"  # environment variable that overrides where figures are written


# --- where figures go ------------------------------------------------------------------------


def repo_root(start: str | os.PathLike | None = None) -> Path | None:
    """The e2llm-lite checkout that contains ``start`` (default: cwd), or None outside one.

    Notebooks run with cwd ``notebooks/`` under nbval and with the repo root elsewhere; walking up to
    the ``pyproject.toml`` that names ``e2llm-lite`` finds the root from either.
    """
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        pp = d / "pyproject.toml"
        if pp.is_file() and 'name = "e2llm-lite"' in pp.read_text(encoding="utf-8", errors="ignore"):
            return d
    return None


def figures_dir(create: bool = True) -> Path:
    """``$E2LLM_FIGURES_DIR`` if set, else ``<repo>/figures``, else ``./figures`` (e.g. on Colab)."""
    env = os.environ.get(ENV_FIGURES)
    root = repo_root()
    d = Path(env) if env else (root / "figures" if root else Path.cwd() / "figures")
    if create:
        d.mkdir(parents=True, exist_ok=True)
    return d


def display_path(path: str | os.PathLike) -> str:
    """A path to print in notebooks: relative to the repo root (or cwd), never a machine path."""
    p = Path(path).resolve()
    for base in (repo_root(), Path.cwd().resolve(), figures_dir(create=False).resolve().parent):
        if base is not None:
            try:
                return p.relative_to(base).as_posix()
            except ValueError:
                pass
    return p.name


def _jsonable(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def save_figure(fig, name: str, data: Mapping, directory: str | os.PathLike | None = None, dpi: int = 110) -> Path:
    """Write ``<dir>/<name>.png`` and ``<dir>/<name>.json`` (``data``: what the figure shows).

    Both files are written to a temporary name first and moved into place (atomic). Returns the
    PNG path. ``name`` must be a plain file stem such as ``"fig2_position_indices"``.
    """
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"figure name must be a plain file stem like 'fig2_position_indices', got {name!r}")
    d = Path(directory) if directory is not None else figures_dir()
    d.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    # no Software/date metadata: the same figure gives the same bytes
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    png = d / f"{name}.png"
    atomic_write(png, buf.getvalue())
    payload = {"figure": f"{name}.png", **_jsonable(dict(data))}
    atomic_write(d / f"{name}.json", (json.dumps(payload, indent=1) + "\n").encode())
    return png


# --- draws with a chosen (g, t) ----------------------------------------------------------------


def fixed_draw(base_window: int, train_len: int, g: int, t: int = 0, n_sink: int = 4) -> augment.Draw:
    """One iteration with a *chosen* scale and offset (for sliders), built by ``augment``'s own
    :func:`~e2llm_lite.augment.e2_position_ids`; ``t`` must lie in ``[0, L·g − R]`` (Eq. 7)."""
    cfg = augment.AugmentConfig(base_window=base_window, train_len=train_len, g_max=max(int(g), 1), n_sink=n_sink)
    t_max = augment.max_offset(cfg.base_window, int(g), cfg.train_len)  # raises when R > L*g
    if not 0 <= int(t) <= t_max:
        raise ValueError(f"offset t must be in [0, L*g - R] = [0, {t_max}] (Eq. 7), got t={t}")
    pos = augment.e2_position_ids(train_len, int(t), n_sink)[None]  # (1, R)
    return augment.Draw(
        scale=torch.tensor([int(g)]), offset=torch.tensor([int(t)]), position_ids=pos, scheme="fixed"
    )


# --- coverage: which (relative distance, g) pairs training shows --------------------------------


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


# --- scores (Eq. 2) ------------------------------------------------------------------------------


def score_curve(q: torch.Tensor, k: torch.Tensor, distances, g: float = 1.0, base: float = 10000.0) -> np.ndarray:
    """Eq. (2) as a function of distance: ``a(d) = rope.score(q, k, d/g, 0)`` for each ``d``.

    ``g = 1`` is plain RoPE; ``g > 1`` is PI's squeezed position (Eq. 3–4). ``q``, ``k``: ``(dim,)``.
    """
    d = torch.as_tensor(distances)
    return rope.score(q, k, rope.pi_positions(d, g), 0.0, base).numpy()  # (N,)


# --- plots ---------------------------------------------------------------------------------------


def _plt():
    import matplotlib.pyplot as plt

    return plt


# --- readable axes: plain log ticks, lines that coincide -------------------------------------------------

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")  # one per line, in drawing order
_DASHES = ("-", "--", ":", "-.")


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Plain-number ticks for a log axis over data ``[lo, hi]`` (both > 0): the first tick is <= lo and the last
    >= hi, so every point lies inside the labelled range. Under ~half a decade: evenly spaced nice numbers
    (30, 32, 34 … or 30, 40, 50 …; an end tick may sit half a step out when that is a round number, as 25 before
    30, 40 …); wider: 1-2-3-5 or 1-2-5 per decade."""
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"log ticks need 0 < lo <= hi, got lo={lo!r}, hi={hi!r}")
    if hi / lo < 1.05:  # one value (or nearly): widen a little around it
        lo, hi = lo / 1.1, hi * 1.1
    span = math.log10(hi / lo)
    if span <= 0.45:
        from matplotlib.ticker import MaxNLocator

        inner = MaxNLocator(nbins=6, steps=[1, 2, 5, 10]).tick_values(lo, hi)
        step = float(inner[1] - inner[0])
        mant = round(step / 10 ** math.floor(math.log10(step)), 6)
        end = step / 2 if mant in (1.0, 2.0) else step  # half of 10 is 5 and of 2 is 1; half of 5 is not round
        t0 = max(math.floor(lo / end + 1e-9) * end, end)
        t1 = math.ceil(hi / end - 1e-9) * end
        ticks = [t0] + [float(t) for t in inner if t0 < t < t1] + [t1]
    else:
        mant = (1.0, 2.0, 3.0, 5.0) if span <= 1.4 else (1.0, 2.0, 5.0) if span <= 3 else (1.0,)
        cands = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2) for m in mant]
        t0 = max(c for c in cands if c <= lo * (1 + 1e-9))
        t1 = min(c for c in cands if c >= hi * (1 - 1e-9))
        ticks = [c for c in cands if t0 <= c <= t1]
    return [float(f"{t:.10g}") for t in ticks]


def _data_values(ax, axis: str) -> np.ndarray:
    """Finite data coordinates along ``axis`` of the lines (data transform) and bars of ``ax``."""
    vals = []
    for ln in ax.get_lines():
        if ln.get_transform() is ax.transData:
            vals.append(np.asarray(ln.get_ydata() if axis == "y" else ln.get_xdata(), dtype=float).ravel())
    for p in ax.patches:  # bars: their far end (the near end sits on the axis)
        if hasattr(p, "get_height"):
            vals.append(np.array([p.get_y() + p.get_height() if axis == "y" else p.get_x() + p.get_width()], float))
    v = np.concatenate(vals) if vals else np.zeros(0)
    return v[np.isfinite(v)]


def plain_log_axis(ax, axis: str = "y", values=None) -> list[float]:
    """Log scale on ``axis`` of ``ax`` whose ticks read as plain numbers (30, 40, 60 …, never "6×10¹") and
    whose labelled range holds every point: the first tick is at or below the smallest value, the last at or
    above the largest. ``values``: the data to cover (default: the axes' lines and bars). Call
    ``fig.tight_layout()`` afterwards (the tick labels changed width). Returns the ticks (none, and only the log
    scale set, when there is no positive value: a report drawn from partial results must not fail on it)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    v = np.asarray(_data_values(ax, axis) if values is None else values, dtype=float).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    getattr(ax, f"set_{axis}scale")("log")
    if v.size == 0:
        return []
    ticks = _log_ticks(float(v.min()), float(v.max()))
    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_locator(FixedLocator(ticks))
    a.set_major_formatter(FuncFormatter(lambda t, _: f"{t:.0f}" if t >= 1e5 else f"{t:g}"))  # 1000000, not 1e+06
    a.set_minor_locator(NullLocator())
    pad = 10 ** (0.03 * math.log10(ticks[-1] / ticks[0]))  # end ticks (and markers on them) stay inside
    getattr(ax, f"set_{axis}lim")(ticks[0] / pad, ticks[-1] * pad)
    return ticks


def _labelled_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_transform() is ax.transData and not ln.get_label().startswith("_")
            and len(ln.get_xdata()) > 0]


def coinciding_lines(ax, tol: float = 0.015) -> list[list[int]]:
    """Groups (indices into the labelled data lines of ``ax``, drawing order) of lines that would be drawn on
    top of each other: the same x values, y values apart by at most ``tol`` of the axes height at three in
    four of them and by at most ``4·tol`` at every one (measured on the axes' current scale and limits)."""
    lines = _labelled_lines(ax)
    to_axes = ax.transData + ax.transAxes.inverted()
    pts = []
    for ln in lines:
        xy = np.column_stack((np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)))
        xy = xy[np.isfinite(xy).all(1)]
        with np.errstate(all="ignore"):
            ya = to_axes.transform(xy)[:, 1] if len(xy) else np.zeros(0)
        pts.append((xy[:, 0], ya))
    parent = list(range(len(lines)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            (xi, yi), (xj, yj) = pts[i], pts[j]
            if not (len(xi) and len(xi) == len(xj) and np.array_equal(xi, xj)):
                continue
            gap = np.abs(yi - yj)
            if np.mean(gap <= tol) >= 0.75 and np.nanmax(gap) <= 4 * tol:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(lines)):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def distinguish_lines(ax, markers: bool = True, tol: float = 0.015, dashes: bool = True) -> list[list[str]]:
    """Make every labelled line of ``ax`` tell apart from the others: with ``markers`` each line gets its own
    marker shape (:data:`MARKERS`); lines that coincide (:func:`coinciding_lines`) are drawn as a wide, pale
    first line with the others on top (dashed or dotted unless ``dashes`` is False, for figures whose line
    styles already mean something), with smaller markers, and their legend labels say "(≈ first line)".
    Call before ``ax.legend()``. Returns the coinciding groups as labels."""
    lines = _labelled_lines(ax)
    if markers:
        for i, ln in enumerate(lines):
            ln.set_marker(MARKERS[i % len(MARKERS)])
    groups = coinciding_lines(ax, tol)
    for grp in groups:
        lead = lines[grp[0]]
        lead_label = lead.get_label()
        lead.set_linewidth(2.6 * max(lead.get_linewidth(), 1.0))
        lead.set_alpha(0.45)
        if markers:
            lead.set_markersize(1.5 * lead.get_markersize())
        for k, j in enumerate(grp[1:], start=1):
            ln = lines[j]
            if dashes:
                ln.set_linestyle(_DASHES[k % len(_DASHES)])
            ln.set_zorder(lead.get_zorder() + k)
            if markers:
                ln.set_markersize(max(3.0, ln.get_markersize() * (1 - 0.15 * k)))
            ln.set_label(f"{ln.get_label()} (≈ {lead_label})")
    return [[lines[i].get_label() for i in g] for g in groups]


def plot_position_indices(
    draws: Sequence[augment.Draw],
    base_window: int,
    labels: Sequence[str] | None = None,
    zoom: float | None = 4.0,
    n_sink: int | None = None,
    title: str | None = None,
):
    """Paper Fig. 2/3: one row per iteration. Left: the trained position ids ``m + t`` (blue dots)
    inside the interpolated window ``[0, L·g)`` (grey), the first ``n_sink`` ids (sinks) marked red;
    right (unless ``zoom`` is None): the rotary positions ``(m + t)/g`` in ``[0, zoom)`` — spacing
    ``1/g`` shows the density. Returns ``(fig, axes)`` (``axes`` has one or two entries)."""
    if not draws:
        raise ValueError("need at least one draw to plot")
    if zoom is not None and not zoom > 0:
        raise ValueError(f"zoom must be > 0 or None, got zoom={zoom!r}")
    plt = _plt()
    n = len(draws)
    size = TALL_FIGSIZE if n > 3 else (TALL_FIGSIZE[0], 1.2 + 1.1 * n)
    if zoom is None:
        fig, ax = plt.subplots(figsize=size)
        axes = [ax]
    else:
        fig, axes = plt.subplots(1, 2, figsize=size, gridspec_kw={"width_ratios": [3, 1.3]})
        ax, az = axes
    top = 0
    for i, dr in enumerate(draws):
        g = int(dr.scale[0])
        ids = dr.position_ids[0].numpy()
        window = base_window * g
        top = max(top, window)
        y = n - 1 - i
        ax.barh(y, window, height=0.5, color="0.88", zorder=0, label="interpolated window [0, L·g)" if i == 0 else None)
        ax.scatter(ids, np.full(ids.shape, y), s=1.5, color=BLUE, zorder=2, linewidths=0,
                   label="trained position ids" if i == 0 else None)
        if n_sink:
            ax.scatter(ids[:n_sink], np.full(n_sink, y + 0.18), s=14, marker="v", color="crimson", zorder=3,
                       label=f"{n_sink} sinks (t = 0)" if i == 0 else None)
        if zoom is not None:
            sc = dr.scaled_positions[0].numpy()
            near = sc[sc < zoom]
            az.scatter(near, np.full(near.shape, y), s=9, color=BLUE, linewidths=0)
    lab = labels or [f"g={int(d.scale[0])}, t={int(d.offset[0])}" for d in draws]
    for a in axes:
        a.set_yticks(range(n))
        a.set_ylim(-0.6, n - 0.2)
    ax.set_yticklabels(list(reversed(lab)))
    ax.set_xlim(-0.02 * top, top * 1.02)  # a margin left of 0: the sink markers at ids 0..n_sink-1 stay whole
    ax.set_xlabel("position index m + t in the interpolated window [0, L·g)")
    ax.legend(loc="upper right", fontsize=7, framealpha=0.9, ncol=3)
    if zoom is not None:
        az.set_yticklabels([])
        az.set_xlim(-0.03 * zoom, zoom)
        az.set_xlabel("rotary position (m + t)/g")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig, axes


def plot_scores(distances, curves: Mapping[str, np.ndarray], seen: int | None = None, title: str | None = None,
                ylabel: str = "score a(d)", vlines: Mapping[str, float] | None = None, logx: bool = False,
                hband: tuple[str, float, float] | None = None):
    """Score-vs-distance curves (from :func:`score_curve`); distances ``< seen`` are shaded as the
    range training showed, ``vlines`` marks named distances (e.g. ``L' = g·L``), ``hband =
    (name, lo, hi)`` draws a horizontal band (e.g. the values a curve took in training).
    Returns ``(fig, ax)``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    d = np.asarray(distances)
    if seen is not None:
        ax.axvspan(d.min(), min(seen, d.max()), color="0.9", zorder=0, label=f"seen in training (d < {seen})")
    for i, (name, y) in enumerate(curves.items()):
        ax.plot(d, y, lw=0.8, color=f"C{i}", label=name)
    for name, x in (vlines or {}).items():
        ax.axvline(x, color="crimson", ls="--", lw=1.0, label=name)
    if hband is not None:
        name, lo, hi = hband
        ax.axhline(lo, color="k", ls=":", lw=1.0, label=name)
        ax.axhline(hi, color="k", ls=":", lw=1.0)
    if logx:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("symlog", linthresh=1.0)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0, 1, 10, 100 (not 10⁰, 10¹)
    ax.set_xlabel("relative distance d = m − n (tokens)")
    ax.set_ylabel(ylabel)
    ax.set_xlim(d.min(), d.max())
    if title:
        ax.set_title(title, fontsize=11)
    distinguish_lines(ax, markers=False)  # curves that coincide: pale wide line under a dashed one, "≈" in the legend
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # beside the data, not on it
    fig.tight_layout()
    return fig, ax


def plot_coverage(covs: Sequence[Coverage], labels: Sequence[str] | None = None, bin_width: int = 512,
                  title: str | None = None):
    """One heat map per scheme: rows g, columns relative distance (binned), colour = share of the
    distances in a bin that training covered; the red line is ``d = L·g − 1``, the window that
    inference at scale g needs. Returns ``(fig, axes)``."""
    if not covs:
        raise ValueError("need at least one Coverage to plot")
    plt = _plt()
    n = len(covs)
    fig, axes = plt.subplots(n, 1, figsize=TALL_FIGSIZE, sharex=True, squeeze=False, layout="constrained")
    axes = axes[:, 0]
    for i, (cov, a) in enumerate(zip(covs, axes)):
        G, D = cov.counts.shape
        img = bin_coverage(cov, bin_width)
        im = a.imshow(img, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1,
                      extent=(0, D, 0.5, G + 0.5), interpolation="nearest")
        # staircase at d = L*g: row g spans y in [g - 1/2, g + 1/2]
        xs = np.repeat(cov.base_window * cov.scales, 2)
        ys = np.stack((cov.scales - 0.5, cov.scales + 0.5), axis=1).ravel()
        a.plot(xs, ys, color="crimson", lw=1.0, label="d = L·g (window inference at g needs)" if i == 0 else None)
        name = labels[i] if labels else cov.scheme
        a.set_title(f"{name}: {100 * cov.fraction_of_needed():.1f}% of needed (d, g) covered", fontsize=9, loc="left")
        a.set_ylabel("g")
    axes[-1].set_xlabel("relative distance d (tokens)")
    fig.colorbar(im, ax=list(axes), shrink=0.6, label="share of bin covered")
    # the key goes under the figure, off the heat maps (inside, it hid the staircase of the first panel)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig, axes

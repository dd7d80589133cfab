r"""Pictures of RoPE, PI and E²: the drawing helpers of notebooks 01–02 and the readable axes every figure uses.

Everything here draws data that comes from :mod:`e2llm_lite.rope` (scores, Eq. 1–4), :mod:`e2llm_lite.augment`
(the sampler of Algorithm 1, Eq. 5–7) and :mod:`e2llm_lite.coverage` (which (distance, g) pairs training
shows); nothing re-implements them.

* :func:`fixed_draw` (one iteration with a chosen g and t, for sliders) and :func:`score_curve` (Eq. 2 as a
  function of distance): the data of the plots;
* :func:`plot_position_indices` (Figs. 2–3), :func:`plot_scores`, :func:`plot_coverage`: return ``(fig, ax)``
  with a fixed size (:data:`FIGSIZE`, :data:`TALL_FIGSIZE`);
* :func:`plain_log_axis` (log ticks that read as plain numbers) and :func:`distinguish_lines` (lines that
  coincide drawn apart and named so): used by the figures of ``eval`` and the studies too.

Figures are written by :func:`e2llm_lite.figure_files.save_figure`. The notebooks reach everything through
this one module: it also names the figure-file helpers (``save_figure``, ``figures_dir``, ``display_path``,
``repo_root``) and the coverage functions it draws (``coverage``, ``bin_coverage``, ``position_runs``,
``distance_intervals``).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch

from e2llm_lite import augment
from e2llm_lite import rope
from e2llm_lite.coverage import Coverage, bin_coverage, coverage, distance_intervals, position_runs
from e2llm_lite.figure_files import display_path, figures_dir, repo_root, save_figure

__all__ = [
    "FIGSIZE",
    "TALL_FIGSIZE",
    "BLUE",
    "fixed_draw",
    "score_curve",
    "plot_position_indices",
    "plot_scores",
    "plot_coverage",
    "MARKERS",
    "plain_log_axis",
    "coinciding_lines",
    "distinguish_lines",
    # named here for the notebooks (one import): figure files and the coverage that plot_coverage draws
    "repo_root",
    "figures_dir",
    "display_path",
    "save_figure",
    "Coverage",
    "coverage",
    "bin_coverage",
    "position_runs",
    "distance_intervals",
]

FIGSIZE = (8.0, 3.4)  # every single-row figure: width, height in inches (d2l's one-size habit)
TALL_FIGSIZE = (8.0, 6.4)  # multi-panel figures (Fig. 2/3, coverage)
BLUE = "#1f5fbf"  # the paper's "blue dots"


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
        scale=torch.tensor([int(g)]), shift=torch.tensor([int(t)]), position_ids=pos, scheme="fixed"
    )


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
    lab = labels or [f"g={int(d.scale[0])}, t={int(d.shift[0])}" for d in draws]
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

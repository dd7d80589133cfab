"""The figures of ``e2llm-lite reproduce``: the perplexity tables as figures (:func:`save_grid`), Figs. 4–6 in
miniature and the scale families' figure.

Each plot helper returns ``(fig, ax)``, has a fixed size and, given a ``path``, writes a PNG atomically
(:func:`e2llm_lite.figure_files.save_figure`) and closes the figure. Axes use the package's readable ticks and
lines (:func:`e2llm_lite.pictures.plain_log_axis`, :func:`~e2llm_lite.pictures.distinguish_lines`). The claims,
their verdicts and ``REPORT.md`` are :mod:`e2llm_lite.studies.miniature.report`'s.
"""
from __future__ import annotations

from pathlib import Path

from e2llm_lite.atomic_files import atomic_write, save_json
from e2llm_lite.figure_files import save_figure
from e2llm_lite.pictures import distinguish_lines, plain_log_axis
from e2llm_lite.scaling import FAMILIES

__all__ = ["log_y", "save_grid", "plot_fig4", "plot_fig5", "plot_fig6", "plot_families"]


def _finish(fig, ax, path, title: str, legend_below: bool = False):
    """Common end of the line plots: title, grid, legend (inside, or under the axes in two columns with
    ``legend_below``: for keys too big to find an empty corner), save (and close) when ``path`` is given."""
    import matplotlib.pyplot as plt

    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend_below:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
        plt.close(fig)
    return fig, ax


def log_y(ax, label: str = "perplexity") -> None:
    """Log y axis whose ticks read as plain numbers (30, 35, 40 …) instead of clipped "3.4×10¹" minor
    labels, with a tick at or below the lowest point and one at or above the highest (every point inside the
    labelled range; :func:`e2llm_lite.pictures.plain_log_axis`), and a y label; call ``fig.tight_layout()``
    afterwards (the tick labels changed width)."""
    plain_log_axis(ax, "y")
    ax.set_ylabel(label)


def _k_label(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def save_grid(grid, json_path, stem, title: str) -> None:
    """``grid`` (:class:`e2llm_lite.eval.perplexity.PplGrid`) -> JSON at ``json_path``, ``stem.md`` and ``stem.png``."""
    import matplotlib.pyplot as plt

    save_json(grid.to_dict(), json_path)
    stem = Path(stem)
    md = f"### {title}\n\n" + grid.to_markdown() + "\n"
    atomic_write(stem.with_suffix(".md"), md)
    fig, ax = grid.plot(None, title=title)
    log_y(ax)
    # one marker per row, lines that coincide drawn apart and named so ("≈") in the key, which sits under the
    # axes: inside it hid lines (and Table 3's E² line sat unseen under P(g) ∝ 1/g's)
    distinguish_lines(ax)
    rows = -(-len(ax.get_legend_handles_labels()[1]) // 2)
    fig.set_size_inches(8.0, 4.0 + 0.17 * rows)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    save_figure(fig, stem.with_suffix(".png"))
    plt.close(fig)


def plot_fig4(res: dict, path=None):
    """Fig. 4 analogue: perplexity at L and 8·L (g = length/L) against E² fine-tuning steps."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for k in res["keys"]:
        pts = [(p["step"], p[k]) for p in res["points"] if k in p]
        ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o", label=k.replace("ppl@", "PPL at "))
    from matplotlib.ticker import MaxNLocator

    # matplotlib's default ticks, whole numbers only: steps (the quick profile's 0–2 read "0.25, 0.50 …")
    ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], integer=True))
    ax.set_xlabel("E² fine-tuning step")
    ax.set_ylabel("perplexity (g = length / L)")
    return _finish(fig, ax, path, "Fig. 4 in miniature: quality vs fine-tuning steps")


def plot_fig5(res: dict, path=None):
    """Fig. 5 analogue: E² perplexity vs length at fixed scales up to and past G_max."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    for g, vals in res["ppl"].items():
        seen = "seen" if int(g) <= res["g_max"] else "unseen"
        ax.plot(res["lengths"], vals, marker="o", label=f"g = {g} ({seen})")
    ax.plot(res["lengths"], res["auto"], marker="s", ls="--", color="k", label="g = length / L")
    ax.set_xscale("log", base=2)
    log_y(ax)
    ax.set_xticks(res["lengths"], [_k_label(n) for n in res["lengths"]])  # "6K", "8K": no overlap at the right end
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("evaluation window (tokens)")
    return _finish(fig, ax, path, f"Fig. 5 in miniature: scales past G_max = {res['g_max']}")


def plot_fig6(grids: dict, path=None):
    """Fig. 6 analogue: one exact-match heatmap (depth × length) per model."""
    import matplotlib.pyplot as plt

    from e2llm_lite.eval.retrieval import plot_heatmap

    n = len(grids)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    for ax, (label, grid) in zip(axes[0], grids.items()):
        plot_heatmap(grid, ax=ax, title=label)
        for t in ax.texts:  # the cell numbers: legible when the row of panels is shown at page width
            t.set_fontsize(9)
        ax.set_xticks(range(len(grid["lengths"])), [_k_label(n) for n in grid["lengths"]])  # "1K", "2K": no overlap
    fig.suptitle("Fig. 6 in miniature: passkey exact match", fontsize=12)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
        plt.close(fig)
    return fig, axes


def plot_families(res: dict, path=None):
    """``table3_families.png``: E² per family (solid), zero-shot NTK / YaRN on the base (dashed), PI, and the
    control's perplexity at L (grey line) — perplexity against evaluation length."""
    import matplotlib.pyplot as plt

    colors = {"linear": "#1f5fbf", "ntk": "#d95f02", "yarn": "#1b9e77"}
    fig, ax = plt.subplots(figsize=(8.0, 5.0))
    lengths = res["lengths"]
    for name, vals in zip(res["rows"], res["ppl"]):
        fam = next((f for f in colors if name.startswith(f"E²-{f} (g = length")), None)
        # the zero-shot rows are labelled with each family's display label (e2llm_lite.scaling.FAMILIES)
        zero = next((f for f, fm in FAMILIES.items() if f in colors and name.startswith(f"base + {fm.label} zero-shot")), None)
        if fam:
            ax.plot(lengths, vals, marker="o", color=colors[fam], label=name)
        elif zero:
            ax.plot(lengths, vals, marker=".", ls="--", color=colors[zero], alpha=0.8, label=name)
        elif name.startswith("PI"):
            ax.plot(lengths, vals, marker="s", color="0.35", label=name)
        elif name.startswith("none,"):  # the control (not its zero-shot rows)
            ax.axhline(vals[0], color="0.6", lw=1, label=f"control at L ({vals[0]:.2f})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_xlabel("evaluation window (tokens)")
    ax.set_ylabel("perplexity")
    # markers and dashes already say E² / zero-shot / PI: coinciding lines (E²-ntk and E²-yarn in the quick
    # profile) get a pale wide first line and "≈" in the key
    distinguish_lines(ax, markers=False, dashes=False)
    return _finish(fig, ax, path, "E² over RoPE scale families (g = length / L)", legend_below=True)

"""The retrieval study's figures: ``retrieval_fig6.png`` (one Fig. 6 heatmap per method) and
``retrieval_steps.png`` (exact match vs E² fine-tuning steps, linear vs YaRN).

Each takes the study's summary (:func:`e2llm_lite.studies.retrieval.report.summarise`), returns ``(fig, ax)``
and, given a ``path``, writes a PNG atomically (:func:`e2llm_lite.figure_files.save_figure`).
"""
from __future__ import annotations

from e2llm_lite.figure_files import save_figure
from e2llm_lite.pictures import MARKERS, distinguish_lines
from e2llm_lite.studies.retrieval.report import scale_rule

__all__ = ["plot_fig6", "plot_steps"]


def _title(method: str, res: dict) -> str:
    L, p = res["L"], res["profile"]
    fam = res["grids"][method]["family"]
    what = {"base": "retrieval base, no fine-tuning (zero-shot)",
            "base + YaRN": "retrieval base, no fine-tuning (zero-shot)",
            "PI": f"base + PI fine-tune (trained g = {p['pi_scale']})",
            "E²-linear": f"base + E² fine-tune (g ∈ 1..{p['g_max']}, linear)",
            "E²-yarn": f"base + E² fine-tune (g ∈ 1..{p['g_max']}, YaRN)"}[method]
    return f"{method}: {what}\neval: {fam}, {scale_rule(res['grids'][method], L)}"


def plot_fig6(res: dict, path=None):
    """One Fig. 6 heatmap per method on one colour scale (0–100 % exact match): a grid of two columns (one row
    of five was 22 inches wide, unreadable at page width), the colour bar and a key in the last cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = res["grids"]
    ncols = 2
    nrows = -(-(len(grids) + 1) // ncols)  # one cell more for the colour bar
    fig, axes = plt.subplots(nrows, ncols, figsize=(9.0, 3.3 * nrows + 0.6), squeeze=False, layout="constrained")
    cells = list(axes.ravel())
    im = None
    for ax, (m, g) in zip(cells, grids.items()):
        acc = [[100 * a for a in row] for row in g["accuracy"]]
        im = ax.imshow(acc, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(g["lengths"])), [str(n) for n in g["lengths"]])
        ax.set_yticks(range(len(g["depths"])), [f"{round(100 * d)}%" for d in g["depths"]])
        for di, row in enumerate(acc):
            for li, v in enumerate(row):
                ax.text(li, di, f"{v:.0f}", ha="center", va="center", fontsize=10)
        ax.set_xlabel("context length (tokens)")
        ax.set_title(_title(m, res), fontsize=9.5)
    for row in axes:
        row[0].set_ylabel("needle depth")
    key = cells[len(grids)]
    key.axis("off")
    cax = key.inset_axes((0.08, 0.62, 0.84, 0.09))
    fig.colorbar(im, cax=cax, orientation="horizontal", label="exact match (%)")
    top = max(max(g["lengths"]) for g in grids.values()) // res["L"]
    key.text(0.08, 0.38, f"each cell: % of {res['profile']['n_per_cell']} passkey prompts answered exactly,\n"
                         f"the needle at that depth (row) of a prompt\nof that length (column); "
                         f"L = {res['L']}, lengths 1·L … {top}·L", transform=key.transAxes, va="top", fontsize=9)
    for ax in cells[len(grids) + 1:]:
        ax.axis("off")
    fig.suptitle(f"Fig. 6 on the retrieval base ({res['profile']['num_layers']}-layer Llama, L = {res['L']}): "
                 f"passkey exact match, n = {res['profile']['n_per_cell']} per cell", fontsize=11)
    if path is not None:
        save_figure(fig, path)
    return fig, axes


def plot_steps(res: dict, path=None):
    """Exact match at each curve length vs E² fine-tuning steps, linear vs yarn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    colors, marks = {}, {}
    for run, style in (("e2-linear", "-"), ("e2-yarn", "--")):
        pts = res["curves"][run]["points"]
        steps = [x["step"] for x in pts]
        keys = sorted((k for k in pts[0] if k.startswith("exact@")), key=lambda k: int(k.split("@")[1]))
        for k in keys:
            n = int(k.split("@")[1])
            marks.setdefault(n, MARKERS[len(marks) % len(MARKERS)])  # colour and marker: the length
            line, = ax.plot(steps, [100 * x[k] for x in pts], style, marker=marks[n], ms=4, color=colors.get(n),
                            label=f"E²-{run.split('-')[1]} @ {n} ({n // res['L']}·L)")
            colors[n] = line.get_color()
    ax.set_xlabel("E² fine-tuning steps (step 0 = retrieval base, zero-shot)")
    ax.set_ylabel("passkey exact match (%)")
    ax.set_ylim(-3, 103)
    distinguish_lines(ax, markers=False, dashes=False)  # the E²-linear curves at 8·L and 16·L lie on 0 together
    ax.set_title(f"Exact match vs E² steps on the retrieval base (L = {res['L']}); "
                 f"n = {res['profile']['curve_n']} per point", fontsize=9.5)
    ax.legend(fontsize=7.5, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig, ax

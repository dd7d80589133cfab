"""The real-model study's figures: ``real_curve.png`` (passkey and perplexity during E² fine-tuning, the paper's
Fig. 4 analogue) and ``real_before_after.png`` (base vs PI vs E² at every scale).

Both take their data keyed by the label each model has in the report (:mod:`e2llm_lite.studies.real_model.report`
writes the prose and tables beside them), write a PNG atomically (:func:`e2llm_lite.figure_files.save_figure`)
and close the figure.
"""
from __future__ import annotations

import os

from e2llm_lite.figure_files import save_figure
from e2llm_lite.pictures import plain_log_axis

__all__ = ["plot_curve", "plot_before_after"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curve(curves: dict[str, list[dict]], gs: list[str], n_samples: int, pk_length: int,
               path: str | os.PathLike) -> None:
    """Passkey exact (of ``n_samples``) and perplexity at ``pk_length`` tokens against fine-tuning steps, one line
    per (run, g): ``curves`` maps a run's label to its points (``{"step", "passkey_g<g>", "ppl_g<g>"}``)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    # passkey counts are small integers: curves at the same count would hide one another, so each is nudged
    # by a few hundredths (said in the axis label); the report's table has the exact counts
    n_lines = len(curves) * len(gs)
    nudge = 0.03 * (n_lines - 1)
    for j, (label, pts) in enumerate(curves.items()):
        for gi, g in enumerate(gs):
            xs = [q["step"] for q in pts]
            kw = dict(marker="o" if j == 0 else "s", ls="-" if j == 0 else "--", label=f"{label}, g = {g}")
            dy = 0.06 * (j * len(gs) + gi) - nudge
            axes[0].plot(xs, [None if (v := q.get("passkey_g" + g)) is None else v + dy for q in pts], **kw)
            axes[1].plot(xs, [q.get("ppl_g" + g) for q in pts], **kw)
    axes[0].set(xlabel="fine-tuning step", ylabel=f"passkey exact (of {n_samples})",
                title=f"passkey at {pk_length} tokens" + (f" (lines nudged ±{nudge:.2f})" if nudge else ""),
                ylim=(-0.15 - nudge, n_samples + 0.15 + nudge), yticks=list(range(n_samples + 1)))
    axes[1].set(xlabel="fine-tuning step", ylabel="perplexity", title="held-out stdlib file")
    plain_log_axis(axes[1])  # 5, 10, 20, 50 … (not "6×10¹"), every point inside the labelled range
    for a in axes:
        a.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    fig.suptitle("SmolLM2-135M during E² LoRA fine-tuning (cf. paper Fig. 4)")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    save_figure(fig, path)
    plt.close(fig)


def plot_before_after(models: dict[str, dict], length: str, gs: list[str], pk_gs: list[str], n_pk: int,
                      pk_length: int, path: str | os.PathLike) -> None:
    """Bars per model (``models``: label -> its results): perplexity at ``length`` tokens at each of ``gs``, and
    passkey exact (of ``n_pk``) at ``pk_length`` tokens at each of ``pk_gs``."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / len(models)
    for i, (label, m) in enumerate(models.items()):
        axes[0].bar([j + i * width for j in range(len(gs))], [m["ppl"][length][g] for g in gs], width, label=label)
        axes[1].bar([j + i * width for j in range(len(pk_gs))], [m["passkey"]["by_g"][g]["exact"] for g in pk_gs], width,
                    label=label)
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(gs))], [f"g={g}" for g in gs])
    axes[1].set_xticks([j + 0.4 - width / 2 for j in range(len(pk_gs))], [f"g={g}" for g in pk_gs])
    axes[0].set(ylabel="perplexity", title=f"perplexity at {length} tokens")
    plain_log_axis(axes[0])
    # a little room above n_pk: bars of a full score stood flush with the frame
    axes[1].set(ylabel=f"exact (of {n_pk})", title=f"passkey at {pk_length} tokens", ylim=(0, 1.05 * n_pk))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("SmolLM2-135M: base vs PI vs E² (same LoRA budget; g applied by each model's family)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path)
    plt.close(fig)

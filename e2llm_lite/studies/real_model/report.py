"""``figures/REPORT_real.md``: the real-model study's tables and prose, every verdict generated from the numbers.

:func:`write_report` reads a results dict (``results/real/real_profile.json``, written by
:mod:`e2llm_lite.studies.real_model.run`) and writes the report: the perplexity and passkey table of every model;
verdicts — does zero-shot scaling break the base, does E² lower the damage, what it costs at g = 1, E² vs PI on
the same budget, E² with g applied by another family vs linear and vs that family zero-shot; perplexity and
passkey past the native window; the fine-tuning curve; wall times. A sentence that states a direction is chosen
by the numbers it quotes. The figures beside it are drawn by :mod:`e2llm_lite.studies.real_model.plots`.
"""
from __future__ import annotations

import os
from pathlib import Path

from e2llm_lite.atomic_files import atomic_write
from e2llm_lite.scaling import get_family
from e2llm_lite.studies.real_model.plots import plot_before_after, plot_curve

__all__ = ["write_report"]


_NAMES = {"base": "base (zero-shot g)", "pi": "PI (g = 4)", "e2": "E²"}


def _name(k: str) -> str:
    """Report label of a model key: base, base-<family>, e2, e2-<family>, pi."""
    if k in _NAMES:
        return _NAMES[k]
    head, fam = k.split("-", 1)
    label = get_family(fam).label  # the family's own display name (e2llm_lite.scaling)
    return f"base + {label} (zero-shot g)" if head == "base" else f"E²-{label}"


def _fmt(x, d=1):
    return "–" if x is None else f"{x:.{d}f}"


def write_report(res: dict, fig_dir: str | os.PathLike) -> str:
    """``figures/REPORT_real.md`` and ``figures/real_*.png`` from a results dict; prose from the numbers."""
    fig_dir = Path(fig_dir)
    s, models, beyond = res["schedule"], res["models"], res.get("beyond", {})
    lines = ["## A real pretrained model: SmolLM2-135M on a CPU", ""]
    if not models:
        lines.append("_No phase has finished yet._")
        return atomic_write(fig_dir / "REPORT_real.md", "\n".join(lines) + "\n")
    order = ["base"] + sorted(k for k in models if k.startswith("base-")) + ["pi", "e2"] + sorted(
        k for k in models if k.startswith("e2-"))
    names = [k for k in order if k in models]
    m0 = models[names[0]]
    lengths = list(m0["ppl"].keys())
    gs = list(m0["ppl"][lengths[0]].keys())
    pk_gs = list(m0["passkey"]["by_g"].keys())
    n_pk = m0["passkey"]["by_g"][pk_gs[0]]["n"]
    mach = res["machine"]
    lines += [
        f"SmolLM2-135M-Instruct (window L = 8192) on a {mach['cpu_count']}-core CPU shared with other jobs "
        f"(the call that wrote this report used {mach['torch_threads']} torch thread(s); the budget note below says what "
        f"the fine-tunes used). Fine-tunes: LoRA r = {s['lora_r']} on q/k/v/o, R = {s['train_len']}, "
        f"batch = one stdlib text row + one passkey row, {s['steps']} steps, lr {s['lr']:g}; E² draws g from 1..{s['g_max']} "
        f"with offsets and {s['n_sink']} sinks, PI uses g = {s['pi_g']}. Perplexity: {s['ppl_docs']} held-out stdlib "
        f"file(s), one window per length. Passkey: LongLoRA's prompt, greedy, exact match, {n_pk} prompts "
        f"({len(s['pk_depths'])} depths × {s['pk_per_cell']}) at {s['pk_length']} tokens, the same prompts for every g.",
        "",
        "| model | " + " | ".join(f"PPL {int(n) / 1024:g}K g={g}" for n in lengths for g in gs) + " | "
        + " | ".join(f"passkey g={g}" for g in pk_gs) + " |",
        "|---|" + "---:|" * (len(lengths) * len(gs) + len(pk_gs)),
    ]
    for k in names:
        m = models[k]
        row = [_fmt(m["ppl"][n][g], 2) for n in lengths for g in gs]
        row += [f"{m['passkey']['by_g'][g]['exact']}/{m['passkey']['by_g'][g]['n']}" for g in pk_gs]
        lines.append(f"| {_name(k)} | " + " | ".join(row) + " |")
    lines.append("")
    # verdicts from the numbers
    L2, g1, gmax = lengths[-1], gs[0], gs[-1]
    k2 = f"{int(L2) / 1024:g}K"
    b = models.get("base")
    pk = lambda m, g: m["passkey"]["by_g"].get(g, {}).get("exact")  # noqa: E731
    if b:
        ratio = b["ppl"][L2][gmax] / b["ppl"][L2][g1]
        verb = "breaks" if ratio > 1.5 else "barely changes"
        lines.append(
            f"**Zero-shot scaling {verb} the base.** At {k2} tokens its perplexity goes "
            f"{_fmt(b['ppl'][L2][g1], 2)} (g = {g1}) → {_fmt(b['ppl'][L2][gmax], 2)} (g = {gmax}, ×{ratio:.1f}); passkey "
            + ", ".join(f"{pk(b, g)}/{n_pk} at g = {g}" for g in pk_gs) + ".")
        lines.append("")
    if b and "e2" in models:
        e = models["e2"]
        up = [g for g in gs[1:] if e["ppl"][L2][g] < b["ppl"][L2][g]]
        verdict = ("lowers the damage at every g > 1" if len(up) == len(gs) - 1 else
                   "lowers it at some scales" if up else "does not lower it")
        lines.append(
            f"**E² {verdict}.** After {e['steps']} steps, perplexity at {k2}: "
            + "; ".join(f"g = {g}: {_fmt(b['ppl'][L2][g], 2)} → {_fmt(e['ppl'][L2][g], 2)}" for g in gs)
            + ". Passkey exact: " + ", ".join(f"g = {g}: {pk(b, g)} → {pk(e, g)}/{n_pk}" for g in pk_gs) + ".")
        lines.append("")
        d1 = 100 * (e["ppl"][L2][g1] / b["ppl"][L2][g1] - 1)
        lines.append(f"**Short-context cost:** at g = {g1} E²'s perplexity is {d1:+.0f} % relative to the base "
                     f"(the paper reports about +2 % on Llama-2 7B with full fine-tuning).")
        lines.append("")
    if "pi" in models and "e2" in models:
        p, e = models["pi"], models["e2"]
        wins = [g for g in gs if e["ppl"][L2][g] < p["ppl"][L2][g]]
        lines.append(
            f"**E² vs PI, same steps and tokens:** E² has the lower perplexity at {len(wins)} of {len(gs)} scales "
            f"({', '.join('g = ' + g for g in wins) or 'none'}). "
            + "; ".join(f"g = {g}: PPL {_fmt(p['ppl'][L2][g], 2)} (PI) vs {_fmt(e['ppl'][L2][g], 2)} (E²)" for g in gs)
            + ". Passkey: " + ", ".join(f"g = {g}: {pk(p, g)} (PI) vs {pk(e, g)} (E²) of {n_pk}" for g in pk_gs) + ".")
        lines.append("")
    # beyond the paper: E² with g applied by another family (does it close the short-context cost?)
    for k in [k for k in names if k.startswith("e2-")]:
        f, e, lab = models[k], models.get("e2"), _name(k)
        if not (b and e):
            continue
        c_lin, c_f = e["ppl"][L2][g1] / b["ppl"][L2][g1], f["ppl"][L2][g1] / b["ppl"][L2][g1]
        long_lin = min(e["ppl"][L2][g] for g in gs[1:]) if len(gs) > 1 else None
        long_f = min(f["ppl"][L2][g] for g in gs[1:]) if len(gs) > 1 else None
        closes = "closes" if c_f <= 1.03 else "narrows" if c_f < c_lin else "does not narrow"
        lines.append(
            f"**{lab} vs E² (linear), same draws and budget.** Short-context cost, PPL at g = {g1} ÷ base at g = {g1} "
            f"({_fmt(e['ppl'][L2][g1], 2)} ÷ {_fmt(b['ppl'][L2][g1], 2)} and {_fmt(f['ppl'][L2][g1], 2)} ÷ "
            f"{_fmt(b['ppl'][L2][g1], 2)}): {c_lin:.3f} (linear) vs {c_f:.3f} ({lab}) — {lab} {closes} the gap to the paper's 1.02"
            + (" (below 1: the fine-tune also adapts the model to the domain of the held-out files, the standard "
               "library, which the base was not trained on alone). " if c_f < 1 else ". ")
            + ("PPL at g > 1: " + "; ".join(f"g = {g}: {_fmt(e['ppl'][L2][g], 2)} vs {_fmt(f['ppl'][L2][g], 2)}"
                                             for g in gs[1:]) + f" (best {_fmt(long_lin, 2)} vs {_fmt(long_f, 2)}). "
               if long_lin is not None else "")
            + "Passkey: " + ", ".join(f"g = {g}: {pk(e, g)} vs {pk(f, g)} of {n_pk}" for g in pk_gs) + ".")
        zs = models.get("base-" + k.split("-", 1)[1])
        if zs:
            lines.append(
                f"The training-free peer, the base with {get_family(k.split('-', 1)[1]).label} applied zero-shot: PPL "
                + "; ".join(f"g = {g}: {_fmt(zs['ppl'][L2][g], 2)}" for g in gs)
                + "; passkey " + ", ".join(f"g = {g}: {pk(zs, g)}/{n_pk}" for g in pk_gs) + ".")
        lines.append("")
    long = {k: v for k, v in res.get("long", {}).items() if not k.startswith("_")}
    if long:
        n_long = s.get("long_ppl_length")
        lines += [f"**Perplexity past the native window** ({n_long} tokens, {n_long / 8192:g} × the window L = 8192; one window over "
                  f"{', '.join(res['long'].get('_files', []))}):", "",
                  "| model | family | " + " | ".join(f"g = {g}" for g in sorted({g for v in long.values() for g in v['ppl']}, key=int))
                  + " | seconds |", "|---|---|" + "---:|" * (len({g for v in long.values() for g in v['ppl']}) + 1)]
        all_g = sorted({g for v in long.values() for g in v["ppl"]}, key=int)
        for k in [k for k in order if k in long]:
            v = long[k]
            lines.append(f"| {_name(k)} | {v['family']} | " + " | ".join(_fmt(v["ppl"].get(g), 2) for g in all_g)
                         + f" | {v['seconds']} |")
        lines.append("")
    if res.get("note"):
        lines += ["", f"_Budget: {res['note']}_"]
    lines.append("")
    # curve: every E² run (linear and each family), from its own zero-shot start
    curves = {}
    for k in [k for k in names if k == "e2" or k.startswith("e2-")]:
        if models[k].get("curve"):
            z = models.get("base" if k == "e2" else "base-" + k.split("-", 1)[1]) or {}
            c0 = z.get("curve0", {})
            curves[k] = ([{"step": 0, **c0}] if c0 else []) + models[k]["curve"]
    if curves:
        ns = res.get("curve_samples", s.get("curve_samples"))
        first = next(iter(curves.values()))
        cg = [k[len("passkey_g"):] for k in first[-1] if k.startswith("passkey_g")]
        lines += [f"**Curve (Fig. 4 analogue).** Passkey exact (of {ns}) and PPL at {s['pk_length']} tokens during "
                  f"fine-tuning (step 0 = the base with that run's family):", "",
                  "| run | step | " + " | ".join(f"passkey g={g} | PPL g={g}" for g in cg) + " |",
                  "|---|---:|" + "---:|---:|" * len(cg)]
        for k, pts in curves.items():
            for pnt in pts:
                lines.append(f"| {_name(k)} | {pnt['step']} | " + " | ".join(
                    f"{pnt.get('passkey_g' + g, '–')} | {_fmt(pnt.get('ppl_g' + g), 2)}" for g in cg) + " |")
        lines.append("")
        plot_curve({_name(k): pts for k, pts in curves.items()}, cg, ns, s["pk_length"], fig_dir / "real_curve.png")
        lines.append("![curve](real_curve.png)")
        lines.append("")
    # before/after bars
    plot_before_after({_name(k): models[k] for k in names}, L2, gs, pk_gs, n_pk, s["pk_length"],
                      fig_dir / "real_before_after.png")
    lines += ["![before/after](real_before_after.png)", ""]
    # beyond the window
    rows = [(k, x) for k in order for x in beyond.get(k, [])]
    if rows or beyond.get("_skipped"):
        lines += [f"**Past the native window** ({s['beyond_length']} tokens = {s['beyond_length'] / 8192:g} × L, g = {s['beyond_g']}; "
                  "greedy, one prefill + a few tokens):", "", "| model | key | answer | exact | seconds |", "|---|---|---|---|---:|"]
        for k, x in rows:
            lines.append(f"| {_name(k)} | {x['key']} | `{x['answer'].strip()!r}` | {'yes' if x['exact'] else 'no'} | {x['seconds']} |")
        if s["beyond_length"] < 2 * 8192:
            lines.append(f"\n{s['beyond_length']} tokens rather than 16K (2 × L): at the measured speed a 16K sample did "
                         f"not fit this run's budget on the shared CPU.")
        for msg in beyond.get("_skipped", []):
            lines.append(f"\n_Skipped: {msg}._")
        lines.append("")
    wall = {k: v for k in names if k != "base" and (v := models[k].get("train_wall_s_this_call")) is not None}
    if wall:
        lines.append("Wall times (s): " + ", ".join(
            f"{_name(k)} training {v} (steps {models[k].get('resumed_from', 0) + 1}–{models[k].get('steps')} in the last call)"
            for k, v in wall.items())
                     + (f"; base evaluation {models['base'].get('wall_s')}" if "base" in models else "") + ".")
    return atomic_write(fig_dir / "REPORT_real.md", "\n".join(lines) + "\n")

"""``figures/REPORT_retrieval.md``: the retrieval study's summary, verdicts and report, every number read from
its results.

:func:`summarise` collects the phases' results (the base, the fine-tunes, the curve's step 0, the grids) into
what the figures and the report need, and computes the verdicts from the numbers: does the base retrieve inside
its window (the precondition); does E²-linear's retrieval decay with more E² steps (the mean exact match of the
curve's second half below its first half by more than two standard errors); does E²-yarn keep it and carry it
further than E²-linear; does E²-yarn fine-tuning beat YaRN applied zero-shot. :func:`write_report` writes the
report; the figures are :mod:`e2llm_lite.studies.retrieval.plots`'.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict

from e2llm_lite.atomic_files import atomic_write
from e2llm_lite.studies.retrieval.profiles import RetrievalProfile

__all__ = ["summarise", "scale_rule", "write_report"]


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _by_length(grid: dict) -> list[float]:
    """Exact match per length, averaged over depths."""
    return [_mean([row[li] for row in grid["accuracy"]]) for li in range(len(grid["lengths"]))]


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1.0 / n) / n)  # floor: one sample's worth at p = 0 or 1


def summarise(p: RetrievalProfile, base: dict, fts: dict, step0: dict, grids: dict) -> dict:
    """Everything the figures and the report need, with the verdicts computed from the numbers."""
    L = p.L
    by_len = {m: _by_length(g) for m, g in grids.items()}
    lengths = grids["base"]["lengths"]
    beyond = [li for li, n in enumerate(lengths) if n > L]
    n_cells = p.n_per_cell * len(p.depths)
    curves = {}
    n_pts = p.curve_n * len(p.curve_mults)  # prompts behind one curve point
    for run in ("e2-linear", "e2-yarn"):
        pts = [{"step": 0, **step0[run]}] + fts[run]["curve"]
        means = [x["mean_exact"] for x in pts]
        peak_i = max(range(len(means)), key=lambda i: means[i])
        # decay: the second half of the fine-tuning curve (step 0 excluded) below the first half by > 2 standard
        # errors — robust to the point-to-point noise a single "peak vs last" comparison mistakes for a trend
        tuned = means[1:] or means
        h = max(1, len(tuned) // 2)
        first, second = _mean(tuned[:h]), _mean(tuned[-h:])
        # the spread between checkpoints (not only the binomial error of n_pts prompts) sets the noise of a half-mean
        spread = lambda xs: sum((x - _mean(xs)) ** 2 for x in xs) / max(1, len(xs) - 1)  # noqa: E731
        se = math.sqrt(max(spread(tuned[:h]), _se(first, n_pts) ** 2) / h + max(spread(tuned[-h:]), _se(second, n_pts) ** 2) / h)
        curves[run] = {"points": pts, "peak": means[peak_i], "peak_step": pts[peak_i]["step"], "final": means[-1],
                       "step0": means[0], "first_half": first, "second_half": second, "se_halves": se,
                       "half_steps": [pts[1]["step"] if len(pts) > 1 else 0, pts[-1]["step"]],
                       "decays": bool(first - second > 2 * se), "n_per_point": n_pts,
                       "min_after_step0": min(tuned), "max_after_step0": max(tuned)}
    lin, yarn = curves["e2-linear"], curves["e2-yarn"]
    far = [li for li, n in enumerate(lengths) if n >= 4 * L]
    far_mean = {m: _mean([by_len[m][li] for li in far]) for m in grids}
    se_far = lambda a, b: _se(_mean([a, b]), n_cells * len(far)) * math.sqrt(2)  # noqa: E731
    gap = far_mean["E²-yarn"] - far_mean["E²-linear"]
    gap_zs = far_mean["E²-yarn"] - far_mean.get("base + YaRN", float("nan"))
    half = lambda c: (f"{100 * c['first_half']:.0f} % in the first half of fine-tuning, {100 * c['second_half']:.0f} % "  # noqa: E731
                      f"in the second (± {100 * c['se_halves']:.0f}), range {100 * c['min_after_step0']:.0f}–"
                      f"{100 * c['max_after_step0']:.0f} %, peak {100 * c['peak']:.0f} % at step {c['peak_step']}, "
                      f"last {100 * c['final']:.0f} %, step 0 (zero-shot) {100 * c['step0']:.0f} %")
    se_late = math.hypot(yarn["se_halves"], lin["se_halves"]) / math.sqrt(2)  # ~ the two second-half errors
    verdicts = {
        "base_learned": {"holds": base["in_window_exact"] >= 0.9,
                         "text": f"the base retrieves {100 * base['in_window_exact']:.0f} % exactly at L = {L} "
                                 f"(n = {base['check_n']}; threshold 90 %)"},
        "yarn_further": {"holds": gap > 2 * se_far(far_mean["E²-yarn"], far_mean["E²-linear"]),
                         "text": f"mean exact at ≥ 4·L: E²-yarn {100 * far_mean['E²-yarn']:.0f} % vs E²-linear "
                                 f"{100 * far_mean['E²-linear']:.0f} % (difference {100 * gap:+.0f} points, "
                                 f"± {100 * se_far(far_mean['E²-yarn'], far_mean['E²-linear']):.0f} one standard error)"},
        "linear_decays": {"holds": lin["decays"], "text": "E²-linear mean exact at " + ", ".join(
            f"{k}·L" for k in p.curve_mults) + ": " + half(lin)},
        "yarn_holds": {"holds": (not yarn["decays"]) and yarn["second_half"] - lin["second_half"] > 2 * se_late,
                             "text": "E²-yarn: " + half(yarn) + f"; second half {100 * (yarn['second_half'] - lin['second_half']):+.0f} "
                                     f"points vs E²-linear (± {100 * se_late:.0f})"},
    }
    if "base + YaRN" in far_mean:
        verdicts["e2_beyond_zero_shot_yarn"] = {
            "holds": gap_zs > 2 * se_far(far_mean["E²-yarn"], far_mean["base + YaRN"]),
            "text": f"mean exact at ≥ 4·L: E²-yarn {100 * far_mean['E²-yarn']:.0f} % vs the base with YaRN applied "
                    f"zero-shot {100 * far_mean['base + YaRN']:.0f} % (difference {100 * gap_zs:+.0f} points)"}
    return {"profile": json.loads(json.dumps(asdict(p))), "L": L, "base": base, "finetune": fts, "grids": grids,
            "by_length": by_len, "far_mean": far_mean, "beyond_lengths": [lengths[i] for i in beyond],
            "curves": curves, "verdicts": verdicts}


def scale_rule(grid: dict, L: int) -> str:
    """How a grid applied g: one fixed scale or g = length / L."""
    return f"g = {grid['fixed_g']:g} at every length" if grid.get("fixed_g") else f"g = length / {L}"


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}"


def _yes(v: dict) -> str:
    return "**yes**" if v["holds"] else "**no**"


def _reading(res: dict) -> str:
    """One paragraph that answers the study's question from the verdicts."""
    v, c, fm = res["verdicts"], res["curves"], res["far_mean"]
    lin, yarn = c["e2-linear"], c["e2-yarn"]
    out = ["**Reading.**"]
    if not v["base_learned"]["holds"]:
        return "**Reading.** The base does not retrieve inside its window, so nothing past L can be read from this run."
    out.append(f"E²-linear {'decays' if lin['decays'] else 'does not decay'} over fine-tuning here "
               f"({100 * lin['first_half']:.0f} % → {100 * lin['second_half']:.0f} % mean exact at the curve lengths, "
               f"checkpoints ranging {100 * lin['min_after_step0']:.0f}–{100 * lin['max_after_step0']:.0f} %);")
    out.append(f"E²-yarn {'keeps' if v['yarn_holds']['holds'] else 'does not keep'} retrieval "
               f"({100 * yarn['first_half']:.0f} % → {100 * yarn['second_half']:.0f} %) and "
               f"{'carries' if v['yarn_further']['holds'] else 'does not carry'} it further than E²-linear "
               f"({100 * fm['E²-yarn']:.0f} % vs {100 * fm['E²-linear']:.0f} % at ≥ 4·L in Fig. 6).")
    if "e2_beyond_zero_shot_yarn" in v:
        zs = fm["base + YaRN"]
        if v["e2_beyond_zero_shot_yarn"]["holds"]:
            out.append(f"E² training adds to what YaRN gives zero-shot ({100 * zs:.0f} % on the untouched base).")
        else:
            out.append(f"But the untouched base with YaRN applied zero-shot already retrieves {100 * zs:.0f} % at ≥ 4·L "
                       f"(step 0 of the curve: {100 * yarn['step0']:.0f} %): the gain is the family's (YaRN leaves "
                       "RoPE's fastest frequencies unscaled and interpolates only the slow ones), and E² fine-tuning "
                       "keeps it rather than creates it.")
    return " ".join(out)


def write_report(res: dict, path) -> str:
    """``REPORT_retrieval.md``: every number and verdict read from ``res`` (the summary of :func:`summarise`)."""
    p, L, base, v = res["profile"], res["L"], res["base"], res["verdicts"]
    lengths = res["grids"]["base"]["lengths"]
    fts = res["finetune"]
    lines = [
        "# Retrieval that can be measured: Fig. 6 on a base trained for retrieval",
        "",
        f"Generated by `e2llm-lite reproduce --only retrieval --profile {p['name']}` "
        f"(`e2llm_lite/studies/retrieval/`) from `results/retrieval/*.json`; every number below is read "
        f"from those files.",
        "",
        "The miniature's language-model base retrieves nothing even inside its window, so its Fig. 6 is empty. "
        f"This study uses a **second base, the retrieval base**: a {p['num_layers']}-layer Llama "
        f"({base['params']:,} parameters, hidden {p['hidden_size']}, the shipped 2,048-token BPE) pre-trained at "
        f"L = {L} for {p['pre_steps']} steps with {p['pre_passkey']} of {p['pre_batch']} rows per batch passkey "
        f"samples (digit-free stdlib filler, `PASSKEY=<5 digits>` at a random depth, the marker repeated at the "
        f"end; answer cross-entropy × {p['passkey_weight']:g} added to the LM loss), peak lr {p['pre_lr']:g}, cosine. "
        f"**Every figure and table here uses this retrieval base**, not the shipped LM base.",
        "",
        "In-window exact match during pre-training (" + str(p["pre_check_n"]) + " prompts at L, depths evenly "
        "spread): " + ", ".join(f"step {s_} {_pct(x)} %" for s_, x in base.get("exact_curve", [])) + "; final check on "
        f"{base['check_n']} other prompts: {_pct(base['in_window_exact'])} %.",
        "",
        "## Verdicts",
        "",
        "| question | answer | evidence |",
        "|---|---|---|",
        f"| does the base retrieve inside its window (the precondition)? | {_yes(v['base_learned'])} | {v['base_learned']['text']} |",
        f"| does E²-linear's retrieval decay with more E² steps? | {_yes(v['linear_decays'])} | {v['linear_decays']['text']} |",
        f"| does E²-yarn keep retrieval through fine-tuning (no decay, and above E²-linear)? | {_yes(v['yarn_holds'])} | {v['yarn_holds']['text']} |",
        f"| does E²-yarn carry retrieval further than E²-linear? | {_yes(v['yarn_further'])} | {v['yarn_further']['text']} |",
    ]
    if "e2_beyond_zero_shot_yarn" in v:
        lines.append(f"| does E²-yarn fine-tuning beat YaRN applied zero-shot to the base? | "
                     f"{_yes(v['e2_beyond_zero_shot_yarn'])} | {v['e2_beyond_zero_shot_yarn']['text']} |")
    lines += [
        "",
        "A decay counts when the mean exact match (all curve lengths) over the second half of the fine-tuning "
        "curve is below that over the first half by more than two standard errors (from the spread between "
        f"checkpoints, at least the binomial error of n = {res['curves']['e2-linear']['n_per_point']} prompts per "
        "point); yarn \"keeps\" retrieval when it does not decay and its second half is above linear's by more "
        "than two standard errors.",
        "",
        _reading(res),
        "",
        f"## Fig. 6: exact match by length (mean over {len(p['depths'])} depths, n = {p['n_per_cell']} per cell)",
        "",
        "![Fig. 6](retrieval_fig6.png)",
        "",
        "| method | evaluated with | " + " | ".join(f"{n} ({n // L}·L)" for n in lengths) + " |",
        "|---|---|" + "---|" * len(lengths),
    ]
    for m, g in res["grids"].items():
        lines.append(f"| {m} | {g['family']}, {scale_rule(g, L)} | " + " | ".join(f"{_pct(x)} %" for x in res["by_length"][m]) + " |")
    lines += [
        "",
        "Answer NLL (teacher-forced cross-entropy of the answer tokens, nats per token, mean over depths) — "
        "a graded view of the same prompts where exact match is 0:",
        "",
        "| method | " + " | ".join(str(n) for n in lengths) + " |",
        "|---|" + "---|" * len(lengths),
    ]
    for m, g in res["grids"].items():
        nll = [_mean([row[li] for row in g["answer_nll"]]) for li in range(len(lengths))]
        lines.append(f"| {m} | " + " | ".join(f"{x:.2f}" for x in nll) + " |")
    lines += [
        "",
        "## Exact match vs E² steps",
        "",
        "![exact vs steps](retrieval_steps.png)",
        "",
    ]
    lin_pts, yarn_pts = res["curves"]["e2-linear"]["points"], res["curves"]["e2-yarn"]["points"]
    keys = sorted((k for k in lin_pts[0] if k.startswith("exact@")), key=lambda k: int(k.split("@")[1]))
    lines.append("| step | " + " | ".join(f"linear {k.split('@')[1]}" for k in keys) + " | linear mean | "
                 + " | ".join(f"yarn {k.split('@')[1]}" for k in keys) + " | yarn mean |")
    lines.append("|---|" + "---|" * (2 * len(keys) + 2))
    for a, b in zip(lin_pts, yarn_pts):
        lines.append(f"| {a['step']} | " + " | ".join(f"{_pct(a[k])}" for k in keys) + f" | {_pct(a['mean_exact'])} | "
                     + " | ".join(f"{_pct(b[k])}" for k in keys) + f" | {_pct(b['mean_exact'])} |")
    lines += [
        "",
        "Step 0 is the retrieval base evaluated zero-shot with each run's family. "
        f"Prompts: {p['curve_n']} per length, depths evenly spread over [0, 1], the same at every step and for both runs.",
        "",
        "## Fine-tuning (same token budget each)",
        "",
        "| run | scheme | family | rows × length | tokens per step | passkey rows | steps | loss first → last 10 | wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run, f in fts.items():
        pk = f"{f['passkey_rows']} per batch" + ("" if f["passkey_every"] == 1 else f" every {f['passkey_every']}th")
        lines.append(f"| {run} | {f['scheme']} | {f['family']} | {f['batch']} × {f['train_len']} | {f['tokens_per_step']:,} | "
                     f"{pk} | {f['steps']} | {f['loss_first']:.2f} → {f['loss_last_10']:.2f} | {f['wall_s']:.0f} s |")
    lines += [
        "",
        f"Fine-tuning: lr {p['ft_lr']:g} (constant after {p['ft_warmup']} warm-up steps), G_max = {p['g_max']}, "
        f"{p['n_sink']} sink tokens, passkey share {p['pk_frac']:g} of rows (task data mixed in as in the paper's "
        f"§4.1); PI uses g = {p['pi_scale']}.",
        "",
        "## Wall times",
        "",
        f"- pre-training the retrieval base: {base['wall_s']['pretrain']:.0f} s ({p['pre_steps']} steps; "
        f"in-window check included: {base['wall_s']['total']:.0f} s)",
    ]
    for run, f in fts.items():
        lines.append(f"- fine-tune {run}: {f['wall_s']:.0f} s" + (" (resumed: this call's part only)" if f["resumed_from"] else ""))
    for m, g in res["grids"].items():
        lines.append(f"- Fig. 6 grid {m}: {g['wall_s']:.0f} s")
    lines += [f"- measured on {res.get('threads', '?')} torch thread(s), Python {res.get('python', '?')}, "
              f"torch {res.get('torch', '?')}, a shared 2-core CPU", ""]
    text = "\n".join(lines)
    atomic_write(path, text)
    return text

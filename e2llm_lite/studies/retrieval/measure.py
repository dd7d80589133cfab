"""How the retrieval study measures a model: the Fig. 6 grid and the exact-match-vs-steps curve.

Prompts are the ``"miniature"`` passkey style of :mod:`e2llm_lite.eval.retrieval`; each cell's prompts depend
only on (seed, length, depth), so every method sees the same prompts. A grid cell records exact match
(:func:`~e2llm_lite.eval.retrieval.retrieval_accuracy`) and the teacher-forced answer NLL (:func:`scored`), a
graded view where exact match is 0. The scale ``g`` is applied with its family
(:func:`e2llm_lite.hf.rope_scale`) around every measurement.
"""
from __future__ import annotations

import torch

from e2llm_lite import hf
from e2llm_lite.eval import retrieval as Rv
from e2llm_lite.eval.retrieval import passkey_sample, retrieval_accuracy
from e2llm_lite.validation import check_int

__all__ = ["scored", "evaluate_grid", "curve_samples", "curve_point"]


def _answer_nll(model, samples) -> float:
    """Mean teacher-forced cross-entropy of the answer tokens given the prompt (nats per token)."""
    ids = torch.stack([s.full_ids for s in samples])  # (B, n)
    a = samples[0].answer_ids.numel()
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -a - 1 : -1]  # (B, A, V)
    return float(torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), ids[:, -a:].reshape(-1)))


def scored(model, samples) -> tuple[float, float]:
    """(exact-match accuracy, answer NLL) of ``samples`` at the scale already applied to ``model``."""
    acc = retrieval_accuracy(model, samples, g=None, batch_size=8)
    groups: dict[int, list] = {}
    for s in samples:  # answers differ in token count: NLL per group of equal shapes, weighted by tokens
        groups.setdefault(s.answer_ids.numel(), []).append(s)
    was = model.training
    model.eval()
    try:
        tot = sum(_answer_nll(model, g[i : i + 8]) * len(g[i : i + 8]) * a
                  for a, g in groups.items() for i in range(0, len(g), 8))
    finally:
        model.train(was)
    return acc, tot / sum(s.answer_ids.numel() for s in samples)


def evaluate_grid(model, tokenizer, filler, L: int, mults, depths, n_per_cell: int, family: str = "linear",
                  seed: int = 0, fixed_g: float | None = None) -> dict:
    """Fig. 6 grid: exact match (and answer NLL) per (depth, length = k·L) with ``g = k`` of ``family``
    (or one ``fixed_g`` at every length: a PI model's own scale).

    Each cell's prompts depend only on (seed, length, depth), so every method sees the same prompts."""
    n_per_cell = check_int("n_per_cell", n_per_cell, 1)
    lengths = [int(k) * L for k in mults]
    gs = [float(fixed_g) if fixed_g is not None else n / L for n in lengths]
    acc = [[0.0] * len(lengths) for _ in depths]
    nll = [[0.0] * len(lengths) for _ in depths]
    for li, n in enumerate(lengths):
        with hf.rope_scale(model, gs[li], family=family, base_window=L):
            for di, d in enumerate(depths):
                gen = torch.Generator().manual_seed(Rv._cell_seed(seed, n, d))
                samples = [passkey_sample(tokenizer, filler, n, float(d), gen, "miniature") for _ in range(n_per_cell)]
                acc[di][li], nll[di][li] = scored(model, samples)
    return {"style": "miniature", "family": family, "L": L, "lengths": lengths, "depths": [float(d) for d in depths],
            "g": gs, "fixed_g": fixed_g, "accuracy": acc, "answer_nll": nll, "n_per_cell": n_per_cell, "seed": seed}


def curve_samples(tokenizer, filler, L: int, mults, n: int, seed: int) -> dict[int, list]:
    """The fixed prompts of the exact-vs-steps curve: ``n`` per length, depths spread evenly over [0, 1]."""
    out = {}
    for k in mults:
        gen = torch.Generator().manual_seed(Rv._cell_seed(seed + 7, k * L, 0.5))
        out[k * L] = [passkey_sample(tokenizer, filler, k * L, i / max(1, n - 1), gen, "miniature") for i in range(n)]
    return out


def curve_point(model, samples: dict[int, list], L: int, family: str) -> dict:
    """``{"exact@<n>": …, "mean_exact": …}`` over the curve prompts, each length at g = n / L of ``family``."""
    rec = {}
    for n, ss in samples.items():
        with hf.rope_scale(model, n / L, family=family, base_window=L):
            rec[f"exact@{n}"] = retrieval_accuracy(model, ss, g=None, batch_size=8)
    rec["mean_exact"] = sum(rec.values()) / len(rec)
    return rec

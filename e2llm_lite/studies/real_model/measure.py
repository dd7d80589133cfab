"""How the real-model study measures a model: perplexity and passkey tables at chosen scales, and samples past
the native window.

Every measurement applies ``g`` with a scale family (:func:`scaled`: :func:`e2llm_lite.hf.rope_scale`, a no-op
at g = 1) around the project's evaluators — :func:`e2llm_lite.eval.perplexity.perplexity` on held-out stdlib
files (:func:`eval_docs`) and LongLoRA's passkey prompt from :mod:`e2llm_lite.eval.retrieval`, scored by greedy
exact match with a KV cache whose prefill scores only the last position (:func:`greedy`). The prompts of a
(length, depth) cell depend only on the seed, so every model and every ``g`` sees the same prompts. Used by the
runner (:mod:`e2llm_lite.studies.real_model.run`) and the live demo (:mod:`e2llm_lite.studies.real_model.demo`).
"""
from __future__ import annotations

import contextlib
import time

import torch

from e2llm_lite import data as D
from e2llm_lite import hf
from e2llm_lite.eval import perplexity as P
from e2llm_lite.eval import retrieval as Rv

__all__ = ["eval_docs", "scaled", "ppl_table", "passkey_samples", "passkey_table", "exact_hits", "greedy",
           "beyond_window"]


def eval_docs(tokenizer, length: int, n: int) -> tuple[list[torch.Tensor], list[str]]:
    """``n`` held-out stdlib files of at least ``length`` tokens (first ``length`` tokens of each)."""
    corpus = D.load_corpus(None, split="heldout")
    return D.eval_segments(tokenizer, corpus, length, n)


def scaled(model, g: float, family: str = "linear"):
    """``rope_scale`` of ``family`` at ``g`` (a no-op at g = 1)."""
    return hf.rope_scale(model, float(g), family=family) if float(g) != 1.0 else contextlib.nullcontext(model)


def ppl_table(model, docs: list[torch.Tensor], gs, lengths, family: str = "linear") -> dict:
    """``{length: {g: ppl}}``: perplexity of the first ``length`` tokens of each doc, one window each,
    with each ``g`` applied by scale ``family``."""
    out = {}
    for n in lengths:
        segs = [d[:n] for d in docs if len(d) >= n]
        row = {}
        for g in gs:
            with scaled(model, g, family):
                row[str(g)] = round(P.perplexity(model, segs, window=n, g=1.0).ppl, 3)
        out[str(n)] = row
    return out


def passkey_samples(tokenizer, length: int, depths, per_depth: int, seed: int) -> list:
    """``per_depth`` LongLoRA passkey prompts of ``length`` tokens at each depth; a (length, depth) cell's prompts
    depend only on ``seed``."""
    out = []
    for d in depths:
        gen = torch.Generator().manual_seed(Rv._cell_seed(seed, length, float(d)))
        out += [Rv.passkey_sample(tokenizer, "", length, float(d), gen, style="longlora") for _ in range(per_depth)]
    return out


def passkey_table(model, tokenizer, length: int, depths, gs, per_cell: int, seed: int = 0,
                  family: str = "linear") -> dict:
    """Exact match per (g, depth) on LongLoRA's passkey prompt at ``length`` tokens; same prompts for every g."""
    samples = passkey_samples(tokenizer, length, depths, per_cell, seed)
    table = {}
    for g in gs:
        hits = exact_hits(model, samples, g, family)
        per = [hits[i * per_cell : (i + 1) * per_cell] for i in range(len(depths))]
        table[str(g)] = {"exact": sum(hits), "n": len(hits), "by_depth": [sum(p) / len(p) for p in per]}
    return {"length": length, "depths": [float(d) for d in depths], "per_cell": per_cell, "by_g": table}


def exact_hits(model, samples, g: float, family: str = "linear") -> list[bool]:
    """Greedy exact match of each sample's answer at scale ``g`` (as ``retrieval_accuracy``, cheaper prefill)."""
    was = model.training
    model.eval()
    hits = []
    try:
        for smp in samples:
            with scaled(model, g, family):
                toks, _ = greedy(model, smp.input_ids, smp.answer_ids.numel())
            hits.append(toks == smp.answer_ids.tolist())
    finally:
        model.train(was)
    return hits


def greedy(model, ids: torch.Tensor, n_new: int) -> tuple[list[int], float]:
    """Greedy tokens after ``ids`` (1-D) with a KV cache; the prefill scores only the last position."""
    cache_kw = Rv._cache_kwarg(model)
    x = ids[None]
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=True, logits_to_keep=1)
        toks = [int(out.logits[0, -1].argmax())]
        past = Rv._cache_of(out)
        for _ in range(n_new - 1):
            n = x.shape[1] + len(toks)
            out = model(input_ids=torch.tensor([[toks[-1]]]), attention_mask=torch.ones(1, n, dtype=torch.long),
                        use_cache=True, **{cache_kw: past})
            past = Rv._cache_of(out)
            toks.append(int(out.logits[0, -1].argmax()))
    return toks, time.perf_counter() - t0


def beyond_window(model, tokenizer, length: int, g: int, n: int, seed: int = 0, extra_tokens: int = 4,
                  family: str = "linear") -> list[dict]:
    """Passkey samples of ``length`` tokens (past the native window) generated at scale ``g``, timed."""
    depths = [0.5] if n == 1 else [i / (n - 1) for i in range(n)]
    out = []
    for s in passkey_samples(tokenizer, length, depths, 1, seed + 1):
        was = model.training
        model.eval()
        with scaled(model, g, family):
            toks, secs = greedy(model, s.input_ids, s.answer_ids.numel() + extra_tokens)
        model.train(was)
        k = s.answer_ids.numel()
        out.append({"length": length, "g": g, "family": family, "depth": s.depth, "key": s.key, "exact": toks[:k] == s.answer_ids.tolist(),
                    "answer": tokenizer.decode(toks), "seconds": round(secs, 1)})
    return out

"""The retrieval base: a 2-layer Llama pre-trained to retrieve a passkey inside its window, and its recipe.

The miniature's language-model base retrieves nothing even inside its window, so a method cannot carry
retrieval past it. This base is pre-trained at ``L`` on the shipped 2,048-token BPE with passkey rows mixed into
every batch (:func:`e2llm_lite.eval.retrieval.passkey_mix`: ``pre_passkey`` of ``pre_batch`` rows, their answer
cross-entropy added to the LM loss), AdamW with a cosine schedule, through the project's one loop
(:func:`e2llm_lite.train.loop.train`, scheme ``none``; exact resume from its checkpoints). The in-window exact
match is probed every ``pre_check_every`` steps and measured at the end on ``check_n`` other prompts: the gate
for everything the study does after it. Its shape and recipe are the ``pre_*`` fields and sizes of a
:class:`~e2llm_lite.studies.retrieval.profiles.RetrievalProfile`; the pieces are :mod:`e2llm_lite.train.pretrain`'s.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from e2llm_lite.augment import AugmentConfig
from e2llm_lite.eval import retrieval as Rv
from e2llm_lite.eval.retrieval import passkey_mix, passkey_sample, retrieval_accuracy
from e2llm_lite.models import load_base
from e2llm_lite.studies.retrieval.measure import scored
from e2llm_lite.studies.retrieval.profiles import RetrievalProfile
from e2llm_lite.train.loop import TrainConfig, train
from e2llm_lite.train.pretrain import BaseSpec, save_base

__all__ = ["base_spec", "pretrain_base"]


def base_spec(p: RetrievalProfile, vocab_size: int) -> BaseSpec:
    """The retrieval base's shape and pre-training recipe from the profile ``p``."""
    return BaseSpec(vocab_size=vocab_size, hidden_size=p.hidden_size, num_layers=p.num_layers,
                    num_heads=p.num_heads, intermediate_size=p.intermediate_size, base_window=p.L,
                    steps=p.pre_steps, batch_size=p.pre_batch, lr=p.pre_lr, warmup_steps=p.pre_warmup,
                    seed=p.seed, n_passkey=p.pre_passkey, passkey_weight=p.passkey_weight)


def pretrain_base(p: RetrievalProfile, tok, filler: str, train_data: Callable[[], tuple], work: Path, progress: bool = True) -> dict:
    """Pre-train the base of profile ``p`` at L with passkey rows in every batch (checkpoints in
    ``work/ckpt/base``), save it to ``work/base`` and measure its in-window exact match on held-out ``filler``.

    ``train_data()``: the train split and its packed tokens, ``(corpus, stream)``
    (:func:`e2llm_lite.train.pretrain.train_tokens`); called once the clock runs, so encoding counts as
    pre-training time. Returns the record of ``results/retrieval/base.json``."""
    L = p.L
    work = Path(work)
    t0 = time.perf_counter()
    spec = base_spec(p, tok.vocab_size)
    corpus, stream = train_data()
    model = spec.model()
    for q in model.parameters():
        q.requires_grad_(True)
    data = passkey_mix(tok, corpus, stream, L, p.pre_batch, p.pre_passkey, p.seed, spec.filler_chars)
    cfg = TrainConfig(steps=p.pre_steps, lr=p.pre_lr, warmup_steps=p.pre_warmup, schedule="cosine",
                      weight_decay=spec.weight_decay, batch_size=p.pre_batch, seed=p.seed, scheme="none",
                      augment=AugmentConfig(base_window=L, train_len=L, g_max=1),
                      checkpoint_dir=str(work / "ckpt" / "base"), checkpoint_every=p.checkpoint_every,
                      log_every=10)
    gen = torch.Generator().manual_seed(Rv._cell_seed(p.seed + 5, L, 0.0))
    probe = [passkey_sample(tok, filler, L, i / max(1, p.pre_check_n - 1), gen, "miniature")
             for i in range(p.pre_check_n)]

    def on_step(step, m, rec):  # the learning curve of the task, in window
        if step % p.pre_check_every and step != p.pre_steps:
            return None
        return {"exact@L": retrieval_accuracy(m, probe, g=None, batch_size=8)}

    res = train(model, data, cfg, progress=progress, on_step=on_step,
                extra_loss=data.answer_loss(p.passkey_weight))
    t_train = time.perf_counter() - t0
    hist = res.history
    meta = {"spec": asdict(spec), "params": sum(q.numel() for q in model.parameters()),
            "train_tokens": int(len(stream)), "loss_first": hist[0]["loss"],
            "loss_last_50": sum(h["loss"] for h in hist[-50:]) / len(hist[-50:]),
            "resumed_from": res.resumed_from}
    save_base(model, tok, work / "base", meta)
    gen = torch.Generator().manual_seed(Rv._cell_seed(p.seed + 3, L, 0.0))
    samples = [passkey_sample(tok, filler, L, float(torch.rand((), generator=gen)), gen, "miniature")
               for _ in range(p.check_n)]
    exact, nll = scored(load_base(work / "base")[0], samples)  # as saved: bfloat16 weights, run in float32
    return dict(meta, L=L, in_window_exact=exact, in_window_answer_nll=nll, check_n=p.check_n,
                loss_curve=[[h["step"], round(h["loss"], 4)] for h in hist[:: max(1, len(hist) // 60)]],
                exact_curve=[[h["step"], h["exact@L"]] for h in hist if "exact@L" in h],
                wall_s={"pretrain": round(t_train, 1), "total": round(time.perf_counter() - t0, 1)},
                threads=torch.get_num_threads())

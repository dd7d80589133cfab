r"""``e2llm-lite pretrain``: rebuild the miniature's shipped base model from scratch, deterministically.

The CPU miniature needs what the paper starts from: a model pre-trained at a short window ``L`` that
*uses* its window and breaks past it. Recipe (chosen by probes on a 2-core CPU; each lever and what it did is in
the miniature's lab log, ``docs/miniature_lab_log.md``):

1. corpus: the standard library's ``.py`` files, train split (:mod:`e2llm_lite.data`);
2. tokenizer: a byte-level BPE of 2,048 tokens trained locally — ~3 characters per token, so a
   window of ``L = 256`` holds ~60 lines of code and a longer context helps prediction;
3. model: a ``transformers`` Llama (4 layers, hidden 128, 4 heads, SwiGLU, RMSNorm, RoPE θ = 10⁴)
   of ~1.4 M parameters, pre-trained on packed random windows of ``L`` tokens with plain RoPE
   (scheme ``none``), AdamW, cosine learning rate. ``n_passkey`` > 0 mixes passkey rows
   (:mod:`e2llm_lite.eval.retrieval`, "miniature" style, extra cross-entropy on the answer) into each
   batch. Measured: 2 of 8 rows for 900 steps taught no retrieval (0 % exact at L) and left the LM at
   PPL 146 @L — the answer loss competed with language modelling on a tight budget — so the shipped
   base is a pure LM (``n_passkey = 0``);
4. ship: tokenizer JSON, weights as bfloat16 safetensors (~2.8 MB) and config in
   ``e2llm_lite/assets/base/``, plus ``pretrain.json`` (recipe, losses, wall time, Python version).

Every random choice is seeded (model init, window order), so the same command on the same Python and
torch versions rebuilds the same base; ``--resume`` is automatic from the run folder's checkpoint. The pieces
(:class:`~e2llm_lite.train.pretrain.BaseSpec`, whose defaults are this recipe, ``train_tokens``, ``save_base``)
live in :mod:`e2llm_lite.train.pretrain`, shared with the retrieval study's base; the passkey rows of
``n_passkey`` come from :func:`e2llm_lite.eval.retrieval.passkey_mix`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from e2llm_lite import data as D
from e2llm_lite.augment import AugmentConfig
from e2llm_lite.eval.retrieval import passkey_mix
from e2llm_lite.models import load_base  # noqa: F401  (re-exported: reads what save_base wrote)
from e2llm_lite.train.loop import TrainConfig, train
from e2llm_lite.train.pretrain import BaseSpec, save_base, train_tokens

__all__ = ["BaseSpec", "pretrain", "load_base", "add_arguments", "run"]


def pretrain(spec: BaseSpec, run_dir: str | os.PathLike, out: str | os.PathLike | None = None, progress: bool = True,
             corpus: str | os.PathLike | None = None) -> dict:
    """Pre-train the base per ``spec`` in ``run_dir`` (checkpoints, token cache); save it to ``out``.

    ``corpus``: None = the standard library's ``.py`` files; a file/folder (every UTF-8 file) or a
    ``datasets`` name otherwise (a new BPE is trained on it)."""
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    # 1) corpus and tokenizer
    corpus = D.load_corpus(corpus, split="train", exts=(".py",) if corpus is None else None)
    tok_path = run_dir / "tokenizer.json"
    if tok_path.is_file():
        tok = D.BPETokenizer.from_file(tok_path)
    else:
        tok = D.train_bpe(corpus.docs, spec.vocab_size, max_chars=spec.bpe_chars)
        tok.save(tok_path)
    t_tok = time.perf_counter()
    stream = train_tokens(tok, corpus, cache=run_dir / "train_tokens.safetensors")
    t_enc = time.perf_counter()
    # 2) model and data
    model = spec.model()
    L = spec.base_window
    data = passkey_mix(tok, corpus, stream, L, spec.batch_size, spec.n_passkey, spec.seed, spec.filler_chars)
    cfg = TrainConfig(
        steps=spec.steps, lr=spec.lr, warmup_steps=spec.warmup_steps, schedule="cosine",
        weight_decay=spec.weight_decay, batch_size=spec.batch_size, seed=spec.seed, scheme="none",
        augment=AugmentConfig(base_window=L, train_len=L, g_max=1), checkpoint_dir=str(run_dir / "ckpt"),
        checkpoint_every=100, log_every=10,
    )
    # 3) train
    res = train(model, data, cfg, progress=progress, extra_loss=data.answer_loss(spec.passkey_weight))
    t_end = time.perf_counter()
    hist = res.history
    meta = {
        "spec": asdict(spec),
        "params": sum(p.numel() for p in model.parameters()),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "train_tokens": int(len(stream)),
        "corpus": dict(corpus.meta, source=corpus.source),
        "tokenizer_chars_per_token": round(corpus.n_chars / max(1, len(stream)), 3),
        "loss_first": hist[0]["loss"] if hist else None,
        "loss_last_50": sum(h["loss"] for h in hist[-50:]) / max(1, len(hist[-50:])),
        "loss_curve": [[h["step"], round(h["loss"], 4)] for h in hist[:: max(1, len(hist) // 60)]],
        "wall_s": {
            "tokenizer": round(t_tok - t0, 1),
            "encode": round(t_enc - t_tok, 1),
            "train_this_call": round(t_end - t_enc, 1),
            "total_this_call": round(t_end - t0, 1),
        },
        "resumed_from": res.resumed_from,
        "threads": torch.get_num_threads(),
    }
    if out is not None:
        save_base(model, tok, out, meta)
    return meta


def add_arguments(p: argparse.ArgumentParser) -> None:
    from e2llm_lite.validation import int_arg, out_folder_arg, path_arg

    p.add_argument("--run-dir", type=out_folder_arg("--run-dir"), default="runs/pretrain", help="checkpoints and token cache (resumable)")
    p.add_argument("--out", type=out_folder_arg("--out"), default=None, help="where to write the base (default: RUN_DIR/base)")
    p.add_argument("--install", action="store_true", help="also copy the base into the package assets")
    p.add_argument("--steps", type=int_arg("--steps", 1), default=BaseSpec.steps, help="optimizer steps")
    p.add_argument("--seed", type=int_arg("--seed", 0), default=BaseSpec.seed, help="seed (model init, window order)")
    p.add_argument("--corpus", type=path_arg("--corpus"), default=None, help="text file or folder, or a `datasets` name (default: stdlib .py files)")
    p.add_argument("--threads", type=int_arg("--threads", 1), default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.install and args.corpus is not None:
        raise ValueError("--install replaces the shipped stdlib base; it cannot be combined with --corpus")
    spec = BaseSpec(steps=args.steps, seed=args.seed)
    out = Path(args.out) if args.out else Path(args.run_dir) / "base"
    meta = pretrain(spec, args.run_dir, out, progress=not args.no_progress, corpus=args.corpus)
    print(f"base written to {out}: {meta['params']:,} parameters, final loss {meta['loss_last_50']:.3f}, "
          f"{meta['wall_s']['total_this_call']:.0f} s")
    if args.install:
        for name in ("config.json", "model.safetensors", "tokenizer.json", "pretrain.json"):
            shutil.copyfile(out / name, D.BASE_ASSETS / name)
        print(f"installed into {D.BASE_ASSETS}/")
    return 0

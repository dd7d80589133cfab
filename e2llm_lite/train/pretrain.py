r"""Pre-training a small base from scratch: the pieces the studies share.

A study that needs a model of its own (the miniature's 1.4 M-parameter language model,
:mod:`e2llm_lite.studies.miniature.pretrain`; the retrieval study's 2-layer base,
:mod:`e2llm_lite.studies.retrieval.base`) builds it from these:

* :class:`BaseSpec` — the model's shape and its pre-training recipe (defaults: the miniature's shipped base);
* :func:`train_tokens` — the packed token stream of a corpus, cached as safetensors;
* :func:`save_base` — config, weights (bfloat16 safetensors), tokenizer and a ``pretrain.json`` written as one
  folder, atomically; :func:`e2llm_lite.models.load_base` reads it back.

The training itself is the project's one loop (:func:`e2llm_lite.train.loop.train`, scheme ``none``); batches
with passkey rows mixed in come from :func:`e2llm_lite.eval.retrieval.passkey_mix` (the task is the eval wing's,
so a study — which may use both wings — puts the two together).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from e2llm_lite import data as D
from e2llm_lite.models import tiny_model

__all__ = ["BaseSpec", "train_tokens", "save_base"]


@dataclass
class BaseSpec:
    """A from-scratch base model and its pre-training recipe (defaults: the miniature's shipped base)."""

    vocab_size: int = 2048  # BPE tokens (the lever that mattered most: docs/miniature_lab_log.md)
    hidden_size: int = 128  # model width
    num_layers: int = 4  # transformer blocks
    num_heads: int = 4  # attention heads (head dim 32 -> 16 RoPE frequencies)
    intermediate_size: int = 384  # SwiGLU width
    base_window: int = 256  # L: the pre-training window
    rope_theta: float = 10000.0  # RoPE base (Eq. 1)
    steps: int = 1200  # optimizer steps (16 × 256 × 1200 ≈ 4.9 M tokens, about half an epoch)
    batch_size: int = 16  # sequences of L tokens per step
    lr: float = 2e-3  # peak learning rate (tiny models take large ones)
    warmup_steps: int = 60  # linear warm-up
    weight_decay: float = 0.1  # AdamW
    seed: int = 0  # model init, window order
    bpe_chars: int = 8_000_000  # characters of train text the BPE is trained on
    n_passkey: int = 0  # rows per batch that are passkey samples (0: the miniature's base is a pure LM)
    passkey_weight: float = 1.0  # extra cross-entropy weight on the passkey answer tokens
    filler_chars: int = 200_000  # haystack text for passkey samples (train split, digits removed)

    def model(self):
        return tiny_model(
            "llama", seed=self.seed, vocab_size=self.vocab_size, hidden_size=self.hidden_size,
            num_layers=self.num_layers, num_heads=self.num_heads, intermediate_size=self.intermediate_size,
            base_window=self.base_window, rope_theta=self.rope_theta,
        )


def train_tokens(tokenizer, corpus: "D.Corpus", cache: str | os.PathLike | None = None, max_chars: int | None = None) -> torch.Tensor:
    """The packed token stream of ``corpus`` (documents joined by end-of-text), cached as safetensors."""
    from safetensors.torch import load_file, save_file

    if cache is not None and Path(cache).is_file():
        return load_file(str(cache))["tokens"]
    docs, total = [], 0
    for d in corpus.docs:
        if max_chars is not None and total >= max_chars:
            break
        docs.append(d)
        total += len(d)
    parts = []
    for ids in D.encode_docs(tokenizer, docs):
        parts += [ids, torch.tensor([tokenizer.eos_id], dtype=torch.int64)]
    stream = torch.cat(parts)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{cache}.tmp"
        save_file({"tokens": stream}, tmp)
        os.replace(tmp, cache)
    return stream


def save_base(model, tokenizer, out: str | os.PathLike, meta: dict, dtype=torch.bfloat16) -> str:
    """Write ``config.json``, ``model.safetensors`` (``dtype``), ``tokenizer.json``, ``pretrain.json`` atomically."""
    from safetensors.torch import save_file

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text(model.config.to_json_string(), encoding="utf-8")
    save_file({k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    tokenizer.save(tmp / "tokenizer.json")
    (tmp / "pretrain.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
    return str(out)

"""Benchmark: :func:`e2llm_lite.eval.perplexity.perplexity` against a naive per-window loop.

The naive loop is how LongLoRA's ``eval.py`` and the Hugging Face perplexity guide evaluate: one
window at a time (no batching), ``model(input_ids, labels=…)`` on every window, so the logits of
*every* position are projected onto the vocabulary and the cross-entropy is recomputed for the whole
window even when only ``stride`` tokens are scored. Our evaluator batches windows of equal length
and projects only the scored positions (``logits_to_keep``). Both must give the same numbers — the
script asserts it — and the JSON records tokens/s of each and the ratio.

Not a test (timings vary by machine). Run::

    python benchmarks/bench_eval.py            # the miniature's shape, real held-out text when present
    python benchmarks/bench_eval.py --quick    # a smaller run
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from e2llm_lite import data as D
from e2llm_lite import hf
from e2llm_lite.eval.perplexity import perplexity
from e2llm_lite.models import tiny_model

HERE = Path(__file__).resolve().parent


def naive_nll(model, docs, window: int, stride: int, convention: str, g: float = 1.0) -> tuple[float, int]:
    """LongLoRA / HF-guide loop: each window alone, loss from ``labels`` (context tokens masked with -100)."""
    total, count = 0.0, 0
    with torch.no_grad(), hf.rope_scale(model, g):
        for doc in docs:
            prev_end = 0
            for begin in range(0, len(doc), stride):
                end = min(begin + window, len(doc))
                ids = doc[begin:end][None]  # (1, T)
                labels = ids.clone()
                if convention == "new":
                    labels[:, : -(end - prev_end)] = -100  # score only the tokens new to this window
                out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
                k = int((labels[:, 1:] != -100).sum())  # HF shifts labels by one inside the loss
                total += out.loss.item() * k
                count += k
                prev_end = end
                if end == len(doc):
                    break
    return total / count, count


def bench(model, model_name: str, docs, window: int, stride: int, conv: str, tokens_per_batch: int) -> dict:
    """Time ours and the naive loop on the same windows; assert the same tokens and NLL."""
    g = hf.scale_for_length(window, hf.base_window_of(model))
    bs = max(1, tokens_per_batch // window)
    perplexity(model, docs[:1], window, stride, g=g, convention=conv, batch_size=bs)  # warm-up
    t0 = time.perf_counter()
    ours = perplexity(model, docs, window, stride, g=g, convention=conv, batch_size=bs)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_nll, ref_n = naive_nll(model, docs, window, stride, conv, g)
    t_naive = time.perf_counter() - t0
    assert ref_n == ours.n_tokens, (ref_n, ours.n_tokens)
    assert abs(ref_nll - ours.nll) <= 1e-5 * abs(ref_nll), (ref_nll, ours.nll)
    row = dict(model=model_name, vocab=int(model.config.vocab_size), window=window, stride=stride, convention=conv,
               g=g, batch_size=bs, n_tokens=ours.n_tokens, ppl=round(ours.ppl, 4),
               naive_ppl=round(math.exp(ref_nll), 4), ours_s=round(t_ours, 3), naive_s=round(t_naive, 3),
               ours_tok_s=round(ours.n_tokens / t_ours), naive_tok_s=round(ref_n / t_naive),
               speedup=round(t_naive / t_ours, 2))
    print(json.dumps(row), flush=True)
    return row


def load_docs(tokenizer, n_docs: int, length: int) -> tuple[list[torch.Tensor], str]:
    try:
        texts = D.load_corpus(split="heldout").docs
        docs = D.long_segments(D.encode_docs(tokenizer, texts, min_len=length), length, max_docs=n_docs)
        return docs, "stdlib held-out"
    except ValueError:
        gen = torch.Generator().manual_seed(0)
        return [torch.randint(0, tokenizer.vocab_size, (length,), generator=gen) for _ in range(n_docs)], "random tokens"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer documents and configurations")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    p.add_argument("--tokens-per-batch", type=int, default=1024, help="windows per forward = max(1, this // window)")
    p.add_argument("--out", default=str(HERE / "bench_eval.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    # 1) model and data: the miniature's base when shipped, else the same shape randomly initialised
    try:
        from e2llm_lite.models import load_base

        model, tok, _ = load_base()
        model_name = "miniature base (assets)"
    except (ValueError, OSError, ImportError):
        tok = D.load_tokenizer("bpe") if (D.ASSETS / "tokenizer.json").is_file() else D.ByteTokenizer()
        model = tiny_model(vocab_size=tok.vocab_size, hidden_size=128, num_layers=4, num_heads=4,
                           intermediate_size=384, base_window=256)
        model_name = "random init, miniature shape"
    n_docs, length = (2, 2048) if args.quick else (4, 4096)
    docs, data_name = load_docs(tok, n_docs, length)
    configs = [(256, 64, "new"), (256, 64, "all"), (1024, 256, "new"), (1024, 256, "all")]
    if args.quick:
        configs = configs[2:]

    # 2) time both, assert identical numbers
    rows = [bench(model, model_name, docs, w, st, conv, args.tokens_per_batch) for w, st, conv in configs]
    # the same protocol with Llama-2's vocabulary (32,000): the logits of every position, which the naive
    # loop projects and scores, then dominate — as they do in memory for a 7B model at 32K tokens
    big = tiny_model(vocab_size=32000, hidden_size=128, num_layers=4, num_heads=4, intermediate_size=384,
                     base_window=256)
    gen = torch.Generator().manual_seed(0)
    big_docs = [torch.randint(0, 32000, (length,), generator=gen) for _ in range(2)]
    rows += [bench(big, "random init, vocab 32000", big_docs, w, st, conv, args.tokens_per_batch)
             for w, st, conv in configs[-2:]]

    # 3) save
    result = dict(
        data=data_name, n_docs=len(docs), doc_tokens=length, tokens_per_batch=args.tokens_per_batch,
        threads=args.threads, device="cpu", machine=platform.machine(), python=sys.version.split()[0],
        torch=torch.__version__, results=rows,
    )
    tmp = f"{args.out}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"wrote {os.path.relpath(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

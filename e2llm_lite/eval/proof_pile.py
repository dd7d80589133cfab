r"""Table 3's protocol (arXiv 2401.06951, §5.3): perplexity on proof-pile, 4K … 64K, one command.

The paper: "We randomly select 128 documents from the dataset, each containing no fewer than 64K
tokens … We apply the sliding window method with a window size of 256 tokens" — the protocol of
LongLoRA's ``eval.py`` (its ``sliding_window = 256`` is the **stride**; the **window** is the
evaluation context length, a column of Table 3). What this module fixes, and what it leaves named:

* **Selection** (:func:`select_documents`): documents with at least ``min_tokens`` = 65,536 tokens
  under the model's tokenizer, in dataset order; then ``n_docs`` = 128 of them drawn with
  ``random.Random(seed).sample`` and kept in dataset order. Every column scores the same tokens: the
  first ``min_tokens`` of each selected document (:func:`e2llm_lite.data.long_segments`). Texts whose
  UTF-8 length is below ``min_tokens`` bytes are skipped before tokenising — a tokenizer's ids each
  cover at least one byte (byte-level BPE, SentencePiece with byte fallback), so none of them can
  reach ``min_tokens``; the BOS a tokenizer may add is counted like any other id.
* **Windows and scoring**: :func:`e2llm_lite.eval.perplexity.ppl_grid` with ``stride = 256``, under
  both conventions it names — ``"all"`` (every token of every window, LongLoRA's ``eval.py``) and
  ``"new"`` (only the tokens new to each window, the Hugging Face guide's sliding window).
* **Rows**: any list of ``(model, g)`` — Table 3's "E²-LLM-16K/32K/64K" are one model with
  ``g = 4, 8, 16``; ``g="auto"`` picks ``⌈window / L⌉`` per column (§4.2.3); rows stop at their
  own maximum length ("–" in the paper).
* **Scale family** (``family=linear|ntk|yarn``, ``e2llm-lite eval --task proofpile --family``): how
  each cell's ``g`` moves the RoPE frequencies (:mod:`e2llm_lite.scaling`). ``linear`` (the paper)
  is :func:`~e2llm_lite.eval.perplexity.ppl_grid` with its own ``g``; ``ntk`` / ``yarn`` run each
  cell inside :func:`e2llm_lite.hf.rope_scale` ``(model, g, family, base_window=L)`` with the
  evaluator's ``g = 1``, as ``e2llm-lite eval --task ppl --family`` does.

The data: ``datasets.load_dataset(PROOF_PILE, split="test")`` by default. ``datasets`` ≥ 4 no longer
runs loading scripts, which ``hoskinson-center/proof-pile`` uses; pass ``data_files`` (local or
``hf://`` JSON-lines files with a ``text`` field) when the default cannot be loaded. Offline, a local
JSON-lines file in the same format stands in (the tests do that).
"""
from __future__ import annotations

import os
import contextlib
import random
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

from e2llm_lite.atomic_files import atomic_write, save_json
from e2llm_lite.data import long_segments
from e2llm_lite.eval.perplexity import PplGrid, perplexity, ppl_grid, resolve_g
from e2llm_lite.hf import base_window_of, rope_base, rope_scale, rotary_modules
from e2llm_lite.scaling import check_family
from e2llm_lite.validation import check_int

__all__ = ["PROOF_PILE", "TABLE3_LENGTHS", "TABLE3_STRIDE", "PAPER_TABLE3", "load_texts", "select_documents",
           "load_proof_pile", "table3", "family_grid", "paper_markdown"]

PROOF_PILE = "hoskinson-center/proof-pile"
#: Table 3's columns (evaluation windows) and the paper's sliding-window stride
TABLE3_LENGTHS = (4096, 8192, 16384, 32768, 65536)
TABLE3_STRIDE = 256
#: the paper's Table 3 (PPL; None = "–"), per base size, rows in the paper's order
PAPER_TABLE3: dict[str, dict[str, tuple]] = {
    "7B": {
        "Llama-2, none (4K)": (2.92, None, None, None, None),
        "Vicuna-v1.5-16K, PI (16K)": (3.48, 3.17, 3.95, None, None),
        "LongChat-v1.5-32K, PI (32K)": (3.54, 3.18, 2.91, 2.73, None),
        "E2-LLM-16K (4K, g=4)": (2.96, 2.71, 2.54, None, None),
        "E2-LLM-32K (4K, g=8)": (2.99, 2.74, 2.56, 2.46, None),
        "E2-LLM-64K (4K, g=16)": (3.06, 2.81, 2.62, 2.51, 2.56),
    },
    "13B": {
        "Llama-2, none (4K)": (2.78, None, None, None, None),
        "Vicuna-v1.5-16K, PI (16K)": (3.27, 2.97, 2.78, None, None),
        "E2-LLM-16K (4K, g=4)": (2.82, 2.59, 2.43, None, None),
        "E2-LLM-32K (4K, g=8)": (2.85, 2.61, 2.44, 2.34, None),
        "E2-LLM-64K (4K, g=16)": (2.91, 2.67, 2.49, 2.39, 2.44),
    },
}


def load_texts(path: str = PROOF_PILE, split: str = "test", data_files=None, text_field: str = "text") -> list[str]:
    """The ``text`` column of a ``datasets`` split: a Hub name, ``"json"`` with ``data_files``, or a local
    ``.jsonl`` path (read with the ``json`` builder)."""
    import datasets

    if data_files is None and Path(path).is_file():
        path, data_files = "json", str(path)
    if path == "json" and data_files is None:
        raise ValueError("path='json' needs data_files (a JSON-lines file with a text field)")
    if data_files is not None:
        ds = datasets.load_dataset(path if path != PROOF_PILE else "json", data_files={split: data_files}, split=split)
    else:
        ds = datasets.load_dataset(path, split=split)
    if text_field not in ds.column_names:
        raise ValueError(f"no column {text_field!r} in {path} ({split}); columns: {ds.column_names}")
    return list(ds[text_field])


def select_documents(tokenizer, texts: Sequence[str], n_docs: int = 128, min_tokens: int = TABLE3_LENGTHS[-1],
                     seed: int = 0) -> tuple[list[torch.Tensor], list[int]]:
    """Table 3's selection: ``n_docs`` random documents of ``>= min_tokens`` tokens (fixed ``seed``).

    Returns the first ``min_tokens`` ids of each picked document and the picked indices into ``texts``
    (ascending). Fewer eligible documents than ``n_docs``: all of them (the count is in the result).
    """
    n_docs = check_int("n_docs", n_docs, 1)
    min_tokens = check_int("min_tokens", min_tokens, 2)
    # a token covers >= 1 UTF-8 byte (+ a BOS), so shorter texts cannot qualify: skip tokenising them
    candidates = [i for i, t in enumerate(texts) if len(t.encode("utf-8")) >= min_tokens - 1]
    batch = [texts[i] for i in candidates]
    ids = tokenizer.encode_batch(batch) if hasattr(tokenizer, "encode_batch") else [tokenizer.encode(t) for t in batch]
    eligible = {i: e for i, e in zip(candidates, ids) if len(e) >= min_tokens}
    if not eligible:
        longest = max((len(e) for e in ids), default=0)
        raise ValueError(f"no document has {min_tokens} tokens (longest: {longest}); lower min_tokens")
    picked = sorted(random.Random(seed).sample(sorted(eligible), min(n_docs, len(eligible))))
    docs = long_segments([torch.tensor(eligible[i], dtype=torch.int64) for i in picked], min_tokens)
    return docs, picked


def load_proof_pile(tokenizer, n_docs: int = 128, min_tokens: int = TABLE3_LENGTHS[-1], seed: int = 0,
                    path: str = PROOF_PILE, split: str = "test", data_files=None,
                    text_field: str = "text") -> tuple[list[torch.Tensor], dict]:
    """:func:`load_texts` then :func:`select_documents`; returns ``(docs, provenance)``."""
    texts = load_texts(path, split, data_files, text_field)
    docs, picked = select_documents(tokenizer, texts, n_docs, min_tokens, seed)
    meta = dict(data=str(path), data_files=None if data_files is None else str(data_files), split=split,
                n_texts=len(texts), n_docs=len(docs), min_tokens=min_tokens, seed=seed, picked=picked)
    return docs, meta


def table3(models: Mapping[str, tuple], docs: Sequence[torch.Tensor], lengths: Iterable[int] = TABLE3_LENGTHS,
           stride: int = TABLE3_STRIDE, conventions: Sequence[str] = ("all", "new"), *, base_window: int | None = None,
           batch_size: int = 1, progress: bool = False, out_dir: str | os.PathLike | None = None,
           meta: dict | None = None, family: str = "linear") -> dict[str, PplGrid]:
    """The Table-3 grid under each convention: ``{convention: PplGrid}``.

    ``models`` as in :func:`~e2llm_lite.eval.perplexity.ppl_grid`: name -> ``(model, g)`` or
    ``(model, g, max_length)``. ``family`` applies each cell's g (module docstring; ``meta`` records it).
    With ``out_dir``: ``table3_<convention>.{json,md,png}`` per convention and ``table3_paper.md``
    (the paper's numbers in the same layout).
    """
    check_family(family)
    lengths = list(lengths)
    grids = {}
    for conv in conventions:
        if family == "linear":
            grids[conv] = ppl_grid(models, docs, lengths, stride, convention=conv, base_window=base_window,
                                   batch_size=batch_size, progress=progress, meta=dict(meta or {}, family=family),
                                   out_dir=out_dir, stem=f"table3_{conv}")
        else:
            grids[conv] = family_grid(models, docs, lengths, stride, family, convention=conv, base_window=base_window,
                                      batch_size=batch_size, progress=progress, meta=meta)
            if out_dir is not None:
                grids[conv].save(out_dir, f"table3_{conv}")
    if out_dir is not None:
        atomic_write(Path(out_dir) / "table3_paper.md", paper_markdown() + "\n")
        save_json({"paper": {k: {r: list(v) for r, v in rows.items()} for k, rows in PAPER_TABLE3.items()},
                   "lengths": list(TABLE3_LENGTHS)}, Path(out_dir) / "table3_paper.json")
    return grids


def family_grid(models: Mapping[str, tuple], docs: Sequence[torch.Tensor], lengths: Iterable[int],
                stride: int | None, family: str, *, convention: str = "new", base_window: int | None = None,
                batch_size: int = 1, progress: bool = False, meta: dict | None = None) -> PplGrid:
    """:func:`~e2llm_lite.eval.perplexity.ppl_grid` with each cell's g applied by scale family ``family``.

    Cell ``(row, n)``: ``g = resolve_g(model, rule, n, L)``, then :func:`perplexity` (its own g = 1) inside
    ``rope_scale(model, g, family, base_window=L)`` (nothing at g = 1, the identity in every family);
    ``L = base_window`` or the model's ``max_position_embeddings``. Rows stop at their ``max_length``.
    """
    check_family(family)
    lengths = [check_int("length", n, 2) for n in lengths]
    rows, ppl, gs, ns = [], [], [], []
    windows = set()
    for name, spec in models.items():
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise ValueError(f"models[{name!r}] must be (model, g_rule) or (model, g_rule, max_length), got {spec!r}")
        model, rule = spec[0], spec[1]
        max_len = spec[2] if len(spec) == 3 else None
        L = int(base_window) if base_window is not None else base_window_of(model)
        windows.add(L)
        for m in rotary_modules(model) if family != "linear" else ():  # ntk / yarn need rope_type='default'
            rope_base(m, L)  # a one-line ValueError before any cell runs
        row_p, row_g, row_n = [], [], []
        for n in lengths:
            if max_len is not None and n > max_len:
                row_p.append(None), row_g.append(None), row_n.append(None)
                continue
            g = resolve_g(model, rule, n, L)
            scaled = rope_scale(model, g, family=family, base_window=L) if g != 1.0 else contextlib.nullcontext()
            with scaled:
                r = perplexity(model, docs, n, stride, g=None, convention=convention, batch_size=batch_size,
                               progress=progress)
            row_p.append(r.ppl), row_g.append(g), row_n.append(r.n_tokens)
        rows.append(name), ppl.append(row_p), gs.append(row_g), ns.append(row_n)
    extra = {"family": family, "base_window": windows.pop() if len(windows) == 1 else sorted(windows)}
    return PplGrid(rows, lengths, ppl, gs, ns, stride, convention, {**(meta or {}), **extra})


def paper_markdown() -> str:
    """The paper's Table 3 in the layout of :meth:`PplGrid.to_markdown`."""
    cols = ["4K", "8K", "16K", "32K", "64K"]
    lines = []
    for size, rows in PAPER_TABLE3.items():
        lines += [f"Paper, Table 3, Llama-2 {size} (proof-pile, 128 docs >= 64K tokens, stride 256)", "",
                  "| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        lines += [f"| {name} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in vals) + " |"
                  for name, vals in rows.items()]
        lines.append("")
    return "\n".join(lines).rstrip()


# --- e2llm-lite eval --task proofpile ------------------------------------------------------------


def run_cli(args, load_model) -> int:
    """``e2llm-lite eval --task proofpile``: Table 3 for every ``--model`` (comma-separated) × ``--g`` rule."""
    lengths = list(args.lengths or TABLE3_LENGTHS)
    min_tokens = args.doc_tokens or max(lengths)
    specs = [s for s in args.model.split(",") if s]
    loaded = [(s, *load_model(s, args.tokenizer, args.device, args.dtype, args.trust_remote_code, args.base)) for s in specs]
    data = PROOF_PILE if args.data == "stdlib" else args.data
    docs, meta = load_proof_pile(loaded[0][2], n_docs=args.n_docs or 128, min_tokens=min_tokens, seed=args.seed,
                                 path=data, split=args.hf_split or "test", text_field=args.text_field)
    family = getattr(args, "family", "linear")
    suffix = "" if family == "linear" else f", {family}"
    rows = {}
    for spec, model, _ in loaded:
        name = Path(spec).stem if Path(spec).is_file() else (Path(spec).name or spec)
        L = args.base_window or base_window_of(model)
        for g in args.g:
            label = f"{name} ({'g=auto' if g == 'auto' else 'g=1' if g is None else f'g={g:g}'}{suffix})"
            # a fixed g serves up to g·L tokens: Table 3's E²-LLM-16K (g = 4) row stops at 16K ("–")
            rows[label] = (model, g) if g == "auto" else (model, g, int((g or 1) * L))
    grids = table3(rows, docs, lengths, args.stride or TABLE3_STRIDE, (args.convention,), base_window=args.base_window,
                   batch_size=args.batch_size, progress=not args.no_progress, out_dir=args.out, meta=meta,
                   family=family)
    for grid in grids.values():
        print(grid.to_markdown())
    print()
    print(paper_markdown())
    return 0

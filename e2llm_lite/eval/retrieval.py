r"""Passkey retrieval and needle-in-a-haystack — the paper's Fig. 6, scored by exact match.

A long-context model should *use* its context, not only keep perplexity low. Retrieval tests put one
fact (the **needle**: a key) at a relative **depth** ``d ∈ [0, 1]`` of a long irrelevant text (the
**haystack**), ask for it at the end, and check the model's greedy continuation. Here the score is
**exact match** of the generated answer tokens with the key's tokens — local, free and reproducible,
unlike the popular needle-in-a-haystack harness that grades answers with a paid LLM judge.

Three prompt styles share one sampler, :func:`passkey_sample`:

* ``"miniature"`` — a format a ~1 M-parameter model can learn (in a probe during development, a
  2-layer, 0.56 M-parameter byte-level model reached 100 % exact at its 128-token window after ~2,000
  steps with :func:`passkey_batch` rows and their answer cross-entropy): filler text with
  every digit removed, a marked key line ``"\nPASSKEY=12345\n"`` inserted at depth ``d``, and the
  marker repeated at the end (``"\nPASSKEY="``) to be completed with the key. The key is tokenised
  the same way in the key line and in the answer, so retrieval is a pure copy.
* ``"longlora"`` — LongLoRA's ``passkey_retrivial.py`` prompt: a task description, the "The grass is
  green. …" garbage repeated, the line "The pass key is K. Remember it. K is the pass key." and the
  question "What is the pass key? The pass key is"; keys in 1 … 50000 as there.
* ``"needle"`` — a fabricated fact ("The special magic number for Vienna is: 48213.") inside real
  documents (``filler_text`` may be a list of documents), asked for at the end. With ``n_per_cell``
  samples per cell, each sample reads a different stretch of the documents (paper Fig. 6: 10
  documents per cell).

Every sample has exactly ``length`` tokens: ``len(input_ids) + len(answer_ids) == length``, so a
training sequence (prompt + answer) fits a window of ``length`` and an evaluation at ``length`` needs
``g = ⌈length / L⌉`` (:func:`e2llm_lite.hf.scale_for_length`, paper §4.2.3). Tokens are assembled from
separately encoded pieces (``input_ids`` is a concatenation, never re-tokenised), which keeps the
length exact with any tokenizer.

:func:`greedy_generate` is our own greedy loop (KV cache or full recomputation — the tests check
that both agree under :func:`e2llm_lite.hf.rope_scale`); :func:`retrieval_accuracy` scores samples;
:func:`retrieval_grid` fills the (depth × length) grid of Fig. 6 and :func:`plot_heatmap` draws it.
"""
from __future__ import annotations

import contextlib
import csv
import inspect
import io
import json
import os
import re
from dataclasses import dataclass
from typing import Sequence

import torch

from e2llm_lite import data as D
from e2llm_lite import hf
from e2llm_lite.data import ByteTokenizer  # re-exported: the byte-level tiny models' tokenizer
from e2llm_lite.eval.perplexity import GRule, _device_of, resolve_g
from e2llm_lite.atomic_files import atomic_write
from e2llm_lite.figure_files import save_figure
from e2llm_lite.validation import check_int

__all__ = [
    "STYLES",
    "MARKER",
    "ByteTokenizer",
    "PasskeySample",
    "encode",
    "passkey_sample",
    "passkey_batch",
    "passkey_mix",
    "greedy_generate",
    "auto_generate",
    "retrieval_accuracy",
    "retrieval_grid",
    "save_retrieval",
    "plot_heatmap",
]

STYLES = ("miniature", "longlora", "needle")
MARKER = "PASSKEY"  # the miniature's key marker

# LongLoRA's passkey prompt (passkey_retrivial.py), word for word
LONGLORA_TASK = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there."
)
LONGLORA_GARBAGE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
LONGLORA_QUESTION = "What is the pass key? The pass key is"

# the needle style's fabricated fact (the "magic number" needle of needle-in-a-haystack / RULER)
NEEDLE_CITIES = ("Vienna", "Lisbon", "Nairobi", "Osaka", "Lima", "Oslo", "Hanoi", "Quito", "Dakar", "Perth")


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens, from an HF tokenizer, a ``tokenizers.Tokenizer``
    (whose ``encode`` returns an ``Encoding``) or any object with ``encode(text) -> list[int]``."""
    try:
        out = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:
        out = tokenizer.encode(text)
    return [int(i) for i in getattr(out, "ids", out)]


@dataclass
class PasskeySample:
    """One retrieval prompt; ``input_ids`` followed by ``answer_ids`` is exactly ``length`` tokens."""

    input_ids: torch.Tensor  # (P,) int64: haystack with the needle, then the question
    answer_ids: torch.Tensor  # (A,) int64: the key's tokens, to be generated greedily
    depth: float  # relative depth of the needle in the filler, in [0, 1]
    length: int  # P + A
    key: str  # the key as text
    needle_start: int = 0  # index in input_ids where the needle's tokens begin

    @property
    def full_ids(self) -> torch.Tensor:
        """(length,) prompt followed by the answer — a training sequence."""
        return torch.cat([self.input_ids, self.answer_ids])


# --- 1) sampling ---------------------------------------------------------------------------------

_FILLER_CACHE: dict = {}


def _filler_ids(tokenizer, filler_text, style: str) -> torch.Tensor:
    """Token ids of the haystack text for ``style`` (cached: long fillers are slow to tokenise)."""
    if style == "longlora":
        text = " ".join([LONGLORA_GARBAGE] * 64)
    else:
        text = filler_text if isinstance(filler_text, str) else "\n\n".join(filler_text)
        if style == "miniature":
            text = re.sub(r"\d", "", text)  # no digit may compete with the key
    key = (id(tokenizer), style, len(text), hash(text))
    hit = _FILLER_CACHE.get(key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    ids = torch.tensor(encode(tokenizer, text), dtype=torch.long)
    if ids.numel() == 0:
        raise ValueError("filler_text tokenises to nothing (after removing digits); pass some text")
    if len(_FILLER_CACHE) >= 16:
        _FILLER_CACHE.pop(next(iter(_FILLER_CACHE)))
    _FILLER_CACHE[key] = (tokenizer, ids)
    return ids


def _generator(generator) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
    raise ValueError(f"generator must be a torch.Generator or an int seed, got {generator!r}")


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _span(ids: torch.Tensor, n: int, gen: torch.Generator, random_start: bool = True) -> torch.Tensor:
    """``n`` consecutive tokens of ``ids`` (repeated as needed), from a random start."""
    if n == 0:
        return ids[:0]
    start = _randint(gen, 0, ids.numel() - 1) if random_start else 0
    if start + n <= ids.numel():
        return ids[start : start + n]
    reps = -(-(start + n) // ids.numel())  # wrap around as often as needed
    return ids.repeat(reps)[start : start + n]


def passkey_sample(
    tokenizer,
    filler_text: str | Sequence[str],
    length: int,
    depth: float,
    generator,
    style: str = "miniature",
    key: str | int | None = None,
) -> PasskeySample:
    """A retrieval prompt of exactly ``length`` tokens (prompt + answer) with the needle at ``depth``.

    ``generator`` (a ``torch.Generator`` or an int seed) draws the key (unless ``key`` is given) and
    where the filler is read from. ``depth`` 0 puts the needle right after the task description (or
    at the very start), 1 right before the question. See the module docstring for the styles.
    """
    # 1) validate
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; valid: {', '.join(map(repr, STYLES))}")
    if isinstance(depth, bool) or not isinstance(depth, (int, float)) or not 0.0 <= float(depth) <= 1.0:
        raise ValueError(f"depth must be a number in [0, 1], got depth={depth!r}")
    length = check_int("length", length, 1)
    gen = _generator(generator)

    # 2) the key and the pieces of the prompt (each encoded separately)
    enc = lambda s: encode(tokenizer, s)  # noqa: E731
    if style == "miniature":
        key = str(key) if key is not None else str(_randint(gen, 10000, 99999))
        query = enc(f"\n{MARKER}=")
        answer = enc(key)
        head, needle, tail = [], query + answer + enc("\n"), query
    elif style == "longlora":
        key = str(key) if key is not None else str(_randint(gen, 1, 50000))
        question = enc(LONGLORA_QUESTION)
        full = enc(f"{LONGLORA_QUESTION} {key}")
        answer = full[len(question) :] if full[: len(question)] == question else enc(f" {key}")
        nl = enc("\n")
        head = enc(LONGLORA_TASK) + nl
        needle = nl + enc(f"The pass key is {key}. Remember it. {key} is the pass key.") + nl
        tail = nl + question
    else:  # needle
        key = str(key) if key is not None else str(_randint(gen, 10000, 99999))
        city = NEEDLE_CITIES[_randint(gen, 0, len(NEEDLE_CITIES) - 1)]
        ask = f"What is the special magic number for {city}? The special magic number for {city} is:"
        question = enc(ask)
        full = enc(f"{ask} {key}")
        answer = full[len(question) :] if full[: len(question)] == question else enc(f" {key}")
        head = []
        needle = enc(f" The special magic number for {city} is: {key}. ")
        tail = enc("\n\n") + question

    # 3) fill the rest with haystack tokens, needle at depth
    n_fill = length - len(head) - len(needle) - len(tail) - len(answer)
    if n_fill < 0:
        need = length - n_fill
        raise ValueError(
            f"length={length} is shorter than the {style!r} prompt needs without any filler "
            f"({need} tokens); use length >= {need}"
        )
    filler = _filler_ids(tokenizer, filler_text, style)
    pos = int(round(float(depth) * n_fill))
    if style == "longlora":  # LongLoRA reads prefix and suffix from the start of the garbage
        pre, post = _span(filler, pos, gen, False), _span(filler, n_fill - pos, gen, False)
    else:
        stretch = _span(filler, n_fill, gen)
        pre, post = stretch[:pos], stretch[pos:]
    t = lambda ids: torch.as_tensor(ids, dtype=torch.long)  # noqa: E731
    input_ids = torch.cat([t(head), pre, t(needle), post, t(tail)])
    answer_ids = t(answer)
    assert input_ids.numel() + answer_ids.numel() == length
    return PasskeySample(input_ids, answer_ids, float(depth), length, key, needle_start=len(head) + pos)


def passkey_batch(
    tokenizer, filler_text, length: int, batch_size: int, generator, style: str = "miniature",
    depths: Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch: ``(input_ids (B, length), answer_mask (B, length) bool)``.

    Row ``b`` is a full sample (prompt + answer); ``answer_mask`` marks the answer tokens (add their
    cross-entropy to the LM loss, as :func:`passkey_mix` does). Depths are uniform in [0, 1] unless given.
    """
    gen = _generator(generator)
    ids, masks = [], []
    for b in range(batch_size):
        d = float(torch.rand((), generator=gen)) if depths is None else depths[b % len(depths)]
        s = passkey_sample(tokenizer, filler_text, length, d, gen, style)
        ids.append(s.full_ids)
        m = torch.zeros(length, dtype=torch.bool)
        m[s.input_ids.numel() :] = True
        masks.append(m)
    return torch.stack(ids), torch.stack(masks)


def passkey_mix(tok, corpus, stream, seq_len, batch_size, n_passkey, seed, filler_chars=200_000, every=1) -> "D.PasskeyMix":
    """Training data that teaches the task: packed LM windows of ``seq_len`` from the token ``stream`` of
    ``corpus`` with ``n_passkey`` "miniature" passkey rows (:func:`passkey_batch`; filler from ``corpus``, digits
    removed) in every ``every``-th batch; :class:`e2llm_lite.data.PasskeyMix` adds the answers' cross-entropy to the
    loss. The studies pre-train and fine-tune their small bases on it (:mod:`e2llm_lite.train.pretrain`)."""
    filler = D.filler_text(corpus, filler_chars)
    windows = D.PackedWindows(stream, seq_len, batch_size, seed=seed)
    sampler = lambda gen, n: passkey_batch(tok, filler, seq_len, n, gen, style="miniature")  # noqa: E731
    return D.PasskeyMix(windows, sampler, n_passkey, seed=seed, every=every)


# --- 2) greedy generation ------------------------------------------------------------------------


def _cache_kwarg(model) -> str:
    """transformers >= 5.2x names the KV cache argument ``cache``; earlier versions ``past_key_values``."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft: (*args, **kwargs)
    try:
        params = inspect.signature(target.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def greedy_generate(model, input_ids: torch.Tensor, max_new_tokens: int, use_cache: bool = True) -> torch.Tensor:
    """Greedy continuation ``(B, max_new_tokens)`` of ``input_ids (B, P)``.

    ``use_cache=True`` feeds one token per step with the KV cache; ``False`` recomputes the whole
    sequence every step (the reference). An explicit all-ones attention mask is always passed. Call
    inside :func:`e2llm_lite.hf.rope_scale` to generate at a scale: the cached keys keep the
    rotation they were computed with, so the scale must not change during a generation.
    """
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    device = _device_of(model)
    ids = input_ids.to(device)
    cache_kw = _cache_kwarg(model)
    out_tokens = []
    past = None
    with torch.inference_mode():
        for step in range(max_new_tokens):
            mask = torch.ones(ids.shape[0], ids.shape[1] + len(out_tokens), dtype=torch.long, device=device)
            if use_cache and past is not None:
                feed = out_tokens[-1][:, None]
            else:
                feed = torch.cat([ids, *[t[:, None] for t in out_tokens]], dim=1)
            kw = {cache_kw: past} if past is not None else {}
            out = model(input_ids=feed, attention_mask=mask, use_cache=use_cache, **kw)
            past = _cache_of(out) if use_cache else None
            out_tokens.append(out.logits[:, -1].argmax(-1))
    if not out_tokens:
        return ids[:, :0]
    return torch.stack(out_tokens, dim=1)


def auto_generate(model, input_ids: torch.Tensor, max_new_tokens: int, base_window: int | None = None,
                  g: GRule = "auto") -> tuple[torch.Tensor, float]:
    """Greedy generation at the scale the input needs (paper §4.2.3): ``g = ⌈(P + new) / L⌉``.

    One deployed E² model serves every length: the scale is picked from the prompt length plus the
    tokens to generate, so that every position stays inside ``g·L``. Returns ``(tokens (B, new), g)``.
    """
    n = (input_ids.shape[-1]) + max_new_tokens
    g_val = resolve_g(model, g, n, base_window)
    scaled = hf.rope_scale(model, g_val) if g_val != 1.0 else contextlib.nullcontext()
    with scaled:
        return greedy_generate(model, input_ids, max_new_tokens), g_val


# --- 3) scoring ----------------------------------------------------------------------------------


def retrieval_accuracy(
    model, samples: Sequence[PasskeySample], g: GRule = "auto", base_window: int | None = None,
    batch_size: int = 8, return_hits: bool = False,
):
    """Fraction of ``samples`` whose greedy answer equals ``answer_ids`` exactly (every token).

    ``g="auto"`` scales each sample by ``⌈length / L⌉`` (§4.2.3); see :func:`e2llm_lite.eval.perplexity.resolve_g`.
    Samples with equal prompt and answer lengths are generated together in batches of ``batch_size``.
    With ``return_hits`` returns ``(accuracy, hits)`` with one bool per sample, in order.
    """
    if not samples:
        raise ValueError("samples is empty; pass at least one PasskeySample")
    groups: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault((s.input_ids.numel(), s.answer_ids.numel()), []).append(i)
    hits = [False] * len(samples)
    was_training = model.training
    model.eval()
    try:
        for (p, a), idx in groups.items():
            g_val = resolve_g(model, g, p + a, base_window)
            scaled = hf.rope_scale(model, g_val) if g_val != 1.0 else contextlib.nullcontext()
            with scaled:
                for k in range(0, len(idx), batch_size):
                    chunk = idx[k : k + batch_size]
                    prompts = torch.stack([samples[i].input_ids for i in chunk])  # (B, P)
                    answers = torch.stack([samples[i].answer_ids for i in chunk])  # (B, A)
                    gen = greedy_generate(model, prompts, a).cpu()  # (B, A)
                    for i, ok in zip(chunk, (gen == answers).all(-1).tolist()):
                        hits[i] = bool(ok)
    finally:
        model.train(was_training)
    acc = sum(hits) / len(hits)
    return (acc, hits) if return_hits else acc


def _cell_seed(seed: int, length: int, depth: float) -> int:
    """A seed per grid cell that does not depend on which other cells the grid has."""
    return (int(seed) * 1_000_003 + int(length) * 1_009 + int(round(depth * 10_000))) % (2**63)


def retrieval_grid(
    model,
    tokenizer,
    filler_text,
    lengths: Sequence[int],
    depths: Sequence[float],
    n_per_cell: int = 10,
    seed: int = 0,
    g: GRule = "auto",
    style: str = "miniature",
    base_window: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
    out_dir: str | os.PathLike | None = None,
    stem: str = "retrieval",
) -> dict:
    """Exact-match accuracy per (depth, length): the grid of paper Fig. 6.

    Returns ``{"style", "lengths", "depths", "accuracy": [depth][length], "g": [per length],
    "n_per_cell", "seed"}``; with ``out_dir`` also writes JSON, CSV and a heatmap PNG
    (:func:`save_retrieval`).
    """
    n_per_cell = check_int("n_per_cell", n_per_cell, 1)
    lengths, depths = [int(n) for n in lengths], [float(d) for d in depths]
    if not lengths or not depths:
        raise ValueError(f"lengths and depths must be non-empty, got lengths={lengths!r}, depths={depths!r}")
    cells = [(di, li) for di in range(len(depths)) for li in range(len(lengths))]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells), desc=f"{style} retrieval", unit="cell")
    acc = [[0.0] * len(lengths) for _ in depths]
    for di, li in cells:
        gen = torch.Generator().manual_seed(_cell_seed(seed, lengths[li], depths[di]))
        samples = [passkey_sample(tokenizer, filler_text, lengths[li], depths[di], gen, style) for _ in range(n_per_cell)]
        acc[di][li] = retrieval_accuracy(model, samples, g=g, base_window=base_window, batch_size=batch_size)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    grid = {
        "style": style,
        "lengths": lengths,
        "depths": depths,
        "accuracy": acc,
        "g": [resolve_g(model, g, n, base_window) for n in lengths],
        "n_per_cell": n_per_cell,
        "seed": seed,
    }
    if out_dir is not None:
        save_retrieval(grid, out_dir, stem)
    return grid


# --- 4) saving and plotting ------------------------------------------------------------------------


def save_retrieval(grid: dict, out_dir: str | os.PathLike, stem: str = "retrieval") -> dict[str, str]:
    """Write ``<stem>.json``, ``<stem>.csv`` (depth, length, g, accuracy) and ``<stem>.png``."""
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f"{stem}.{k}") for k in ("json", "csv", "png")}
    atomic_write(paths["json"], json.dumps(grid, indent=2) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["depth", "length", "g", "accuracy", "n"])
    for di, d in enumerate(grid["depths"]):
        for li, n in enumerate(grid["lengths"]):
            w.writerow([d, n, grid["g"][li], grid["accuracy"][di][li], grid["n_per_cell"]])
    atomic_write(paths["csv"], buf.getvalue())
    fig, _ = plot_heatmap(grid, paths["png"])
    plt.close(fig)
    return paths


def plot_heatmap(grid: dict, path: str | os.PathLike | None = None, ax=None, title: str | None = None):
    """Fig. 6-style heatmap: depth (rows, %) × context length (columns), red = miss, green = hit."""
    import matplotlib.pyplot as plt

    acc = torch.tensor(grid["accuracy"], dtype=torch.float64).numpy()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4))
    im = ax.imshow(acc, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(grid["lengths"])), [str(n) for n in grid["lengths"]])
    ax.set_yticks(range(len(grid["depths"])), [f"{round(100 * d)}%" for d in grid["depths"]])
    for di in range(acc.shape[0]):
        for li in range(acc.shape[1]):
            ax.text(li, di, f"{100 * acc[di, li]:.0f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("needle depth")
    ax.set_title(title or f"{grid['style']} retrieval, exact match (n={grid['n_per_cell']} per cell)")
    fig.colorbar(im, ax=ax, label="accuracy")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig, ax

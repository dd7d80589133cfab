r"""Sliding-window perplexity over long documents — the paper's Table 3 and Fig. 5, made explicit.

Reproductions of long-context papers disagree most often about *how* perplexity was measured. This
module names every choice.

**Perplexity.** For the scored target tokens :math:`x_i` (each predicted from the tokens before it
*inside its window*),

.. math:: \mathrm{PPL} = \exp\Big(\frac{1}{N}\sum_i -\log p(x_i \mid x_{s(i)}, \dots, x_{i-1})\Big),

where :math:`s(i)` is the first token of the window that scores :math:`x_i` and :math:`N` counts the
scored targets (over all documents, token-weighted).

**Windows.** Each document is cut separately — a window never crosses a document boundary. Window
``k`` covers tokens ``[k·stride, min(k·stride + window, n))`` and the last window is the first that
reaches the document's end, so ``stride = window`` gives disjoint windows and a smaller stride gives
overlapping ones. The paper's "sliding window 256" (Table 3, after LongLoRA) is the **stride**; the
**window** is the evaluation context length (a column of Table 3: 4K … 64K). Every window starts at
RoPE position 0.

**Two scoring conventions** (:data:`CONVENTIONS`):

* ``"new"`` — score only the tokens new to each window (the first window scores all of its tokens).
  With ``stride < window`` every token of a document but the first is scored exactly once, each with
  ``window − stride`` tokens of context or more once the first window is passed. With disjoint
  windows (``stride = window``) the first token of every window has no context inside its window
  and is not scored; ``stride = window − 1`` scores every token once with windows of full length. This is the Hugging Face perplexity guide's
  sliding window (Press et al. 2021, "Shortformer"), used by PoSE and YaRN.
* ``"all"`` — score every token of every window, as LongLoRA's ``eval.py`` does (its windows are
  ``seq_length`` long and move by ``sliding_window = 256``). Overlapping windows then score a token
  several times, often with little context. The two differ whenever ``stride < window``, usually with
  ``"all"`` higher (less context per scored token) — but not always: a model that is worse at the far
  end of its window than it gains from context (e.g. near the edge of its trained range) reads lower
  under ``"all"``. With ``stride = window`` the two agree.

**RoPE scale g** (paper §4.2.3): ``g="auto"`` picks :math:`g = \lceil \text{window} / L \rceil`
(:func:`e2llm_lite.hf.scale_for_length`), the smallest scale whose interpolated window
:math:`g \cdot L` holds the evaluation window; a number fixes ``g`` as in Table 3's rows ("E²-LLM-32K,
g = 8"); ``None`` (or 1) evaluates without scaling. ``g`` is applied with
:func:`e2llm_lite.hf.rope_scale`, i.e. positions ``m / g`` (Eq. 4–5, no offset at inference).

**Speed.** Windows of equal length are stacked into batches, an explicit all-ones attention mask is
always passed (the packed-sequence trap of :mod:`e2llm_lite.hf`: without one, transformers 5.x starts a
new sequence at every jump in ``position_ids``), only the logits of scored positions are
projected onto the vocabulary (``logits_to_keep``), and everything runs under
``torch.inference_mode``. ``benchmarks/bench_eval.py`` compares this with a naive per-window loop.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Mapping, Sequence, Union

import torch

from e2llm_lite import hf
from e2llm_lite.atomic_files import atomic_write
from e2llm_lite.figure_files import save_figure
from e2llm_lite.validation import check_int

__all__ = [
    "CONVENTIONS",
    "PerplexityResult",
    "PplGrid",
    "plan_windows",
    "resolve_g",
    "perplexity",
    "ppl_grid",
    "window_nll",
]

#: scoring convention -> what it scores (see module docstring)
CONVENTIONS = {
    "new": "only the tokens new to each window; the first window scores all (Press et al., PoSE, YaRN)",
    "all": "every token of every window (LongLoRA eval.py)",
}

#: positions whose log-softmax is computed at once (bounds the float32 memory of long windows)
_SCORE_CHUNK = 2048

#: what ``g`` may be: a number >= 1, "auto", None (= 1), or a rule ``window -> g``
GRule = Union[float, int, str, None, Callable[[int], float]]


@dataclass
class PerplexityResult:
    """One perplexity measurement (one model, one window, one set of documents)."""

    ppl: float  # exp(nll)
    nll: float  # mean negative log-likelihood per scored token, in nats
    n_tokens: int  # scored target tokens (counted once per window that scores them)
    window: int  # tokens per window = the evaluation context length
    stride: int  # tokens between the starts of consecutive windows
    g: float  # RoPE scale used (positions / g)
    convention: str  # "new" or "all" (see CONVENTIONS)
    n_docs: int = 0  # documents that contributed at least one scored token
    n_windows: int = 0  # forward windows evaluated

    def to_dict(self) -> dict:
        return asdict(self)


# --- 1) argument checks and g --------------------------------------------------------------------


def _check_window_stride(window: int, stride: int | None) -> tuple[int, int]:
    window = check_int("window", window, 2)
    stride = window if stride is None else stride
    stride = check_int("stride", stride, 1, window, note="at most the window")
    return window, stride


def _check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; valid: {', '.join(map(repr, CONVENTIONS))}")
    return convention


def resolve_g(model, g: GRule, n_tokens: int, base_window: int | None = None) -> float:
    """The RoPE scale for an input of ``n_tokens``: a number, ``"auto"`` (§4.2.3), ``None`` (1) or a rule.

    ``"auto"`` is :func:`hf.scale_for_length` ``(n_tokens, L)`` with ``L = base_window`` or, when that
    is None, :func:`hf.base_window_of` ``(model)``.
    """
    if callable(g):
        g = g(n_tokens)
    if g is None:
        return 1.0
    if isinstance(g, str):
        if g != "auto":
            try:
                g = float(g)
            except ValueError:
                raise ValueError(f"g must be 'auto', None or a number >= 1, got g={g!r}") from None
        else:
            L = base_window if base_window is not None else hf.base_window_of(model)
            return float(hf.scale_for_length(int(n_tokens), int(L)))
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 1:
        raise ValueError(f"g must be 'auto', None or a finite number >= 1, got g={g!r}")
    return float(g)


def _as_docs(docs) -> list[torch.Tensor]:
    if isinstance(docs, torch.Tensor):
        docs = [docs] if docs.dim() == 1 else list(docs)
    out = []
    for i, d in enumerate(docs):
        t = torch.as_tensor(d)
        if t.dim() != 1 or t.is_floating_point():
            raise ValueError(
                f"document {i} must be a 1-D tensor of token ids, got shape {tuple(t.shape)} and dtype {t.dtype}"
            )
        out.append(t.long())
    if not out:
        raise ValueError("docs is empty; pass at least one document of >= 2 tokens")
    return out


# --- 2) windows ---------------------------------------------------------------------------------


def plan_windows(n_tokens: int, window: int, stride: int | None = None, convention: str = "new") -> list[tuple[int, int, int]]:
    """Windows over one document of ``n_tokens``: a list of ``(start, end, first_target)``.

    The window feeds tokens ``[start, end)`` and scores targets ``first_target .. end-1`` (each
    predicted from the tokens of the window before it). Windows start at ``k·stride``; the last one
    is the first to reach the end of the document. ``"new"``: ``first_target`` = the previous
    window's end (1 for the first window), ``"all"``: ``start + 1``.
    """
    window, stride = _check_window_stride(window, stride)
    _check_convention(convention)
    out: list[tuple[int, int, int]] = []
    if n_tokens < 2:
        return out
    start, prev_end = 0, 1  # token 0 is never a target (nothing precedes it)
    while True:
        end = min(start + window, n_tokens)
        first = max(prev_end, start + 1) if convention == "new" else start + 1
        out.append((start, end, first))
        if end == n_tokens:
            return out
        prev_end, start = end, start + stride


# --- 3) scoring ---------------------------------------------------------------------------------


def _device_of(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        return torch.device("cpu")


def _accepts_logits_to_keep(model) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def window_nll(model, input_ids: torch.Tensor, n_score: torch.Tensor) -> torch.Tensor:
    """Per-row summed NLL of the last ``n_score[b]`` targets of each row of ``input_ids`` (B, T).

    One forward with an all-ones attention mask; logits are computed only for the positions needed
    (``logits_to_keep``) and in float32 for the log-softmax. Call inside :func:`hf.rope_scale` to
    evaluate at a scale.
    """
    B, T = input_ids.shape
    k = int(n_score.max())  # targets T-k .. T-1 are predicted by logits at T-k-1 .. T-2
    kwargs = dict(attention_mask=torch.ones_like(input_ids), use_cache=False)
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = k + 1
    logits = model(input_ids=input_ids, **kwargs).logits[:, -(k + 1) : -1]  # (B, k, V), model dtype
    targets = input_ids[:, T - k :]  # (B, k)
    # float32 log-softmax in chunks of positions: a 64K window of a 32K vocabulary would otherwise
    # need two extra (k, V) float32 tensors (8 GB each) next to the logits
    nll = torch.empty(B, k, dtype=torch.float32, device=logits.device)  # (B, k)
    for i in range(0, k, _SCORE_CHUNK):
        logp = torch.log_softmax(logits[:, i : i + _SCORE_CHUNK].float(), dim=-1)  # (B, c, V)
        nll[:, i : i + _SCORE_CHUNK] = -logp.gather(-1, targets[:, i : i + _SCORE_CHUNK, None]).squeeze(-1)
    keep = torch.arange(k, device=nll.device)[None, :] >= (k - n_score.to(nll.device))[:, None]  # (B, k)
    return (nll * keep).sum(-1).double()


def perplexity(
    model,
    docs: Sequence[torch.Tensor],
    window: int,
    stride: int | None = None,
    *,
    g: GRule = "auto",
    base_window: int | None = None,
    convention: str = "new",
    batch_size: int = 1,
    progress: bool = False,
) -> PerplexityResult:
    """Sliding-window perplexity of ``model`` over ``docs`` (each a 1-D LongTensor of token ids).

    ``window`` = context length evaluated, ``stride`` = shift between windows (None = ``window``:
    disjoint windows); ``convention`` in :data:`CONVENTIONS`; ``g`` see :func:`resolve_g`;
    ``batch_size`` windows per forward. Documents are never crossed; documents of < 2 tokens are
    skipped.
    """
    # 1) validate and resolve the scale
    window, stride = _check_window_stride(window, stride)
    _check_convention(convention)
    batch_size = check_int("batch_size", batch_size, 1)
    docs = _as_docs(docs)
    g_val = resolve_g(model, g, window, base_window)

    # 2) plan every window of every document, then group windows of equal length into batches
    plan = [(d, s, e, f) for d, doc in enumerate(docs) for (s, e, f) in plan_windows(len(doc), window, stride, convention)]
    if not plan:
        raise ValueError("no document has >= 2 tokens; nothing to score")
    by_len: dict[int, list] = {}
    for w in plan:
        by_len.setdefault(w[2] - w[1], []).append(w)
    batches = [ws[i : i + batch_size] for n in sorted(by_len, reverse=True) for ws in [by_len[n]] for i in range(0, len(ws), batch_size)]

    # 3) score
    device = _device_of(model)
    total, count, scored_docs = 0.0, 0, set()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), desc=f"ppl window={window}", unit="win")
    was_training = model.training
    model.eval()
    try:
        scaled = hf.rope_scale(model, g_val) if g_val != 1.0 else contextlib.nullcontext()
        with torch.inference_mode(), scaled:
            for batch in batches:
                ids = torch.stack([docs[d][s:e] for d, s, e, _ in batch]).to(device)  # (B, T)
                n_score = torch.tensor([e - f for _, _, e, f in batch])  # (B,)
                total += float(window_nll(model, ids, n_score).sum())
                count += int(n_score.sum())
                scored_docs.update(d for d, *_ in batch)
                if bar is not None:
                    bar.update(len(batch))
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    nll = total / count
    return PerplexityResult(
        ppl=math.exp(nll), nll=nll, n_tokens=count, window=window, stride=stride, g=g_val,
        convention=convention, n_docs=len(scored_docs), n_windows=len(plan),
    )


# --- 4) the Table-3 grid ------------------------------------------------------------------------


@dataclass
class PplGrid:
    """Perplexity per (row = model/scheme, column = evaluation length): the shape of Table 3."""

    rows: list[str]  # model / scheme names, in order
    lengths: list[int]  # evaluation windows (columns)
    ppl: list[list[float | None]]  # [row][col]; None where the row does not reach that length ("–")
    g: list[list[float | None]]  # RoPE scale used per cell
    n_tokens: list[list[int | None]]  # scored tokens per cell
    stride: int | None  # None = window (disjoint windows)
    convention: str  # "new" or "all"
    meta: dict = field(default_factory=dict)  # free-form provenance (data, seed, …)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self, digits: int = 2) -> str:
        head = "| model | " + " | ".join(_fmt_len(n) for n in self.lengths) + " |"
        sep = "|---|" + "---|" * len(self.lengths)
        lines = [head, sep]
        for name, vals, gs in zip(self.rows, self.ppl, self.g):
            cells = ["–" if v is None else f"{v:.{digits}f}" for v in vals]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        stride = "window" if self.stride is None else str(self.stride)
        lines.append("")
        lines.append(f"Perplexity; stride {stride}, convention {self.convention!r} ({CONVENTIONS[self.convention]}).")
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike | None = None, ax=None, title: str | None = None):
        """PPL vs evaluation length, one line per row (log-2 x axis); returns ``(fig, ax)``."""
        import matplotlib.pyplot as plt

        fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4))
        for name, vals in zip(self.rows, self.ppl):
            xs = [n for n, v in zip(self.lengths, vals) if v is not None]
            ys = [v for v in vals if v is not None]
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(self.lengths, [_fmt_len(n) for n in self.lengths])
        ax.set_xlabel("evaluation window (tokens)")
        ax.set_ylabel("perplexity")
        ax.set_title(title or f"sliding-window perplexity ({self.convention!r})")
        ax.grid(alpha=0.3)
        from e2llm_lite.pictures import distinguish_lines

        distinguish_lines(ax)  # a marker per row; rows drawn on top of each other are marked "≈" in the key
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=7.5, frameon=False)
        fig.tight_layout()
        if path is not None:
            save_figure(fig, path)
        return fig, ax

    def save(self, out_dir: str | os.PathLike, stem: str = "ppl_grid") -> dict[str, str]:
        """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` to ``out_dir``; return their paths."""
        import matplotlib.pyplot as plt

        os.makedirs(out_dir, exist_ok=True)
        paths = {k: os.path.join(out_dir, f"{stem}.{k}") for k in ("json", "md", "png")}
        atomic_write(paths["json"], json.dumps(self.to_dict(), indent=2) + "\n")
        atomic_write(paths["md"], self.to_markdown() + "\n")
        fig, _ = self.plot(paths["png"])
        plt.close(fig)
        return paths


def _fmt_len(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def ppl_grid(
    models: Mapping[str, tuple],
    docs: Sequence[torch.Tensor],
    lengths: Iterable[int],
    stride: int | None = None,
    *,
    convention: str = "new",
    base_window: int | None = None,
    batch_size: int = 1,
    progress: bool = False,
    out_dir: str | os.PathLike | None = None,
    stem: str = "ppl_grid",
    meta: dict | None = None,
) -> PplGrid:
    """Table 3: perplexity of every ``models`` row at every length in ``lengths``.

    ``models`` maps a row name to ``(model, g_rule)`` or ``(model, g_rule, max_length)``: ``g_rule``
    is anything :func:`resolve_g` takes (a fixed g as in "E²-LLM-32K (g = 8)", ``"auto"`` for
    g = ⌈length / L⌉, ``None`` for no scaling), and lengths above ``max_length`` are left empty
    ("–" in the paper). ``stride`` None = each length's window (disjoint windows). With ``out_dir``
    the grid is also saved as JSON, markdown and PNG (:meth:`PplGrid.save`).
    """
    lengths = [check_int("length", int(n) if not isinstance(n, bool) else n, 2) for n in lengths]
    if not lengths:
        raise ValueError("lengths is empty; pass at least one evaluation length >= 2")
    if stride is not None:
        stride = check_int("stride", stride, 1, min(lengths), note="at most min(lengths)")
    _check_convention(convention)
    docs = _as_docs(docs)
    rows, ppl, gs, ns = [], [], [], []
    for name, spec in models.items():
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise ValueError(f"models[{name!r}] must be (model, g_rule) or (model, g_rule, max_length), got {spec!r}")
        model, rule = spec[0], spec[1]
        max_len = spec[2] if len(spec) == 3 else None
        row_p, row_g, row_n = [], [], []
        for n in lengths:
            if max_len is not None and n > max_len:
                row_p.append(None), row_g.append(None), row_n.append(None)
                continue
            r = perplexity(model, docs, n, stride, g=rule, base_window=base_window, convention=convention,
                           batch_size=batch_size, progress=progress)
            row_p.append(r.ppl), row_g.append(r.g), row_n.append(r.n_tokens)
        rows.append(name), ppl.append(row_p), gs.append(row_g), ns.append(row_n)
    grid = PplGrid(rows, lengths, ppl, gs, ns, stride, convention, dict(meta or {}))
    if out_dir is not None:
        grid.save(out_dir, stem)
    return grid

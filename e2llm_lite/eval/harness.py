r"""E² checkpoints in EleutherAI's lm-evaluation-harness: the model type ``e2llm`` with a per-request RoPE scale.

The paper's deployment claim (arXiv 2401.06951, §4.2.3): one set of weights serves every context length,
the RoPE scale ``g`` being chosen at inference from the input length. This module makes that claim
measurable on the benchmarks the field uses, through ``lm-eval``'s own tasks, prompts and metrics:

* :class:`E2LLM` subclasses lm-eval's :class:`~lm_eval.models.huggingface.HFLM` and is registered as
  ``--model e2llm``. Its ``model_args``:

  - ``base_window=L`` — the pre-training window (default: the config's ``max_position_embeddings``);
  - ``g=auto`` — per request :math:`g = \lceil n / L \rceil` (:func:`e2llm_lite.scale_for_length`) from
    that request's token length ``n``; ``g=8`` — one fixed scale (Table 3's rows); ``g=config`` — no
    extra scaling, use the checkpoint's own ``rope_scaling`` (e.g. a folder written by
    :func:`e2llm_lite.save_for_scale`);
  - ``family=linear|ntk|yarn`` — the scale family that applies each request's ``g``
    (:mod:`e2llm_lite.scaling`): ``linear`` (default, the paper) = positions ``m / g`` (Eq. 4–5 with
    ``t = 0``); ``ntk`` and ``yarn`` install the frequencies (and YaRN's cos/sin factor) that stock
    transformers builds for ``rope_type`` ``default`` with an NTK base / ``yarn`` with ``factor = g`` and
    ``original_max_position_embeddings = base_window`` — every forward runs inside
    ``rope_scale(model, g, family, base_window)``. ``ntk`` / ``yarn`` need a base saved with
    ``rope_type='default'`` (checked when the model loads);
  - ``truncation=middle|left`` — how inputs longer than ``max_length`` are cut (below);
  - ``max_length`` — the truncation length, the model's context size "indicated by the suffix of its
    name" (§5.2). Default: ``L·g`` for a fixed g, ``8·L`` for ``g=auto`` (E²-LLM-32K from a 4K base),
    lm-eval's own rule for ``g=config``.

  The scale is applied with :func:`e2llm_lite.rope_scale` (of the chosen family) around the forward pass (loglikelihood,
  rolling loglikelihood) and around ``generate()`` — the KV cache is filled and read under the same
  scale, which ``tests/core/test_hf.py`` checks equals recomputation.

* **What "request length" means.** Loglikelihood: the tokens fed to the model,
  ``len(context + continuation) − 1`` after truncation. Generation: the context tokens after truncation
  plus ``max_gen_toks`` — every position the request can reach, so that all of them stay inside
  ``g·L``; a request exactly at ``max_length`` gets ``g = max_length / L``.

* **Batching.** lm-eval batches requests of similar length; a batch must share one ``g`` because
  :func:`~e2llm_lite.rope_scale` rescales the model's rotary buffers. :class:`E2LLM` therefore splits
  each call into groups of equal ``g`` (in increasing ``g``) and hands each group to HFLM's own
  batched code inside ``rope_scale(model, g)``; results are put back in request order. Batch sizes
  are unchanged inside a group; with ``g=auto`` a batch never mixes scales.

* **Truncation.** HFLM cuts from the **left**: ``(context_enc + continuation_enc)[-(self.max_length +
  1):][:-1]`` in ``_loglikelihood_tokens`` and ``encoding["input_ids"][:, -left_truncate_len:]`` in
  ``tok_batch_encode`` for generation (lm-eval 0.4.13, ``lm_eval/models/huggingface.py``). LongBench,
  which the paper follows (§5.2, "we truncate the input sequence from the middle"), keeps the first
  and last ``max_length / 2`` tokens of the prompt (THUDM/LongBench ``LongBench/pred.py``:
  ``half = int(max_length/2)``; ``tokenized_prompt[:half]`` + ``tokenized_prompt[-half:]``) because
  instructions sit at both ends. ``truncation=middle`` (the default) does that on token ids;
  ``truncation=left`` keeps HFLM's behaviour. LongBench decodes the two halves and re-tokenises them;
  we keep the ids, which avoids a token-count drift at the seam.

Every applied ``(kind, n_tokens, g)`` is appended to :attr:`E2LLM.applied` and can be written with
:meth:`E2LLM.save_applied`; the model arg ``g_log=PATH`` keeps that JSON file up to date during a run.

Command line (lm-eval has no plug-in entry point for models, so this module registers the model and
then runs lm-eval's own CLI)::

    accelerate launch -m e2llm_lite.eval.harness --model e2llm \
        --model_args pretrained=./e2-7b,base_window=4096,g=auto,max_length=32768,g_log=g.json --tasks longbench
"""
from __future__ import annotations

import contextlib
import copy
import os
from collections import defaultdict
from pathlib import Path

import torch
import transformers
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import normalize_gen_kwargs

from e2llm_lite.atomic_files import save_json
from e2llm_lite.hf import base_window_of, rope_base, rope_scale, rotary_modules, scale_for_length
from e2llm_lite.scaling import FAMILIES, get_family  # the registry: scale families a request's g can be applied with
from e2llm_lite.validation import check_int

__all__ = ["E2LLM", "FAMILIES", "TRUNCATIONS", "middle_truncate", "hf_tokenizer", "parse_g", "AUTO_WINDOWS"]

#: how an over-long input is cut: LongBench's middle rule (the paper, §5.2) or lm-eval's left rule
TRUNCATIONS = ("middle", "left")
#: with ``g=auto`` and no ``max_length``: max_length = AUTO_WINDOWS · L (E²-LLM-32K from a 4K base)
AUTO_WINDOWS = 8


def middle_truncate(ids, max_len: int):
    """Keep the first and the last ``max_len // 2`` tokens when ``len(ids) > max_len`` (LongBench's rule).

    Mirrors THUDM/LongBench ``LongBench/pred.py`` (``half = int(max_length/2)``), so an odd ``max_len``
    keeps ``max_len - 1`` tokens. Works on lists and 1-D tensors; shorter inputs come back unchanged.
    """
    max_len = check_int("max_len", max_len, 2)
    if len(ids) <= max_len:
        return ids
    half = max_len // 2
    if isinstance(ids, torch.Tensor):
        return torch.cat([ids[:half], ids[-half:]])
    return list(ids[:half]) + list(ids[-half:])


def parse_g(g) -> int | str:
    """``"auto"``, ``"config"`` or an integer >= 1 (model_args arrive as strings or ints)."""
    if isinstance(g, str) and g.strip().lower() in ("auto", "config"):
        return g.strip().lower()
    try:
        gi = int(g) if not isinstance(g, bool) else None
    except (TypeError, ValueError):
        gi = None
    if gi is None or gi < 1 or (isinstance(g, float) and g != gi):
        raise ValueError(f"g must be 'auto', 'config' or an integer >= 1, got g={g!r}")
    return gi


def _as_int(name: str, value, lo: int) -> int:
    try:
        v = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        v = None
    if v is None or v < lo or (isinstance(value, float) and value != v):
        raise ValueError(f"{name} must be an integer >= {lo}, got {name}={value!r}")
    return v


def hf_tokenizer(path: str | os.PathLike):
    """A ``transformers`` tokenizer for a model folder.

    Folders with ``tokenizer_config.json`` load through ``AutoTokenizer``; a folder with only a
    ``tokenizers`` file ``tokenizer.json`` (the shipped miniature base) is wrapped in
    ``PreTrainedTokenizerFast`` with ``<|endoftext|>`` as end-of-text and padding token.
    """
    path = Path(path)
    if (path / "tokenizer_config.json").is_file():
        return transformers.AutoTokenizer.from_pretrained(str(path))
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer in {path} (tokenizer_config.json or tokenizer.json)")
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    eos = "<|endoftext|>"
    if tok.convert_tokens_to_ids(eos) is not None and eos in tok.get_vocab():
        tok.eos_token = eos
        tok.pad_token = eos
    return tok


@register_model("e2llm")
class E2LLM(HFLM):
    """HFLM with the E² RoPE scale chosen per request (see the module docstring)."""

    def __init__(self, pretrained, base_window=None, g="auto", family: str = "linear", truncation: str = "middle",
                 max_length=None, tokenizer=None, g_log=None, **kwargs):
        self.g_rule = parse_g(g)
        if not isinstance(family, str) or family not in FAMILIES:
            raise ValueError(f"family={family!r} is not a RoPE scale family; valid: {', '.join(FAMILIES)}")
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation={truncation!r}; valid: {', '.join(TRUNCATIONS)}")
        self.family = family
        self.truncation_side = truncation
        if tokenizer is None and isinstance(pretrained, (str, os.PathLike)) and Path(pretrained).is_dir():
            tokenizer = hf_tokenizer(pretrained)
        if isinstance(pretrained, os.PathLike):
            pretrained = str(pretrained)
        # HFLM's own `truncation` is a tokenizer flag; ours replaces its left cut, so keep it off.
        super().__init__(pretrained=pretrained, tokenizer=tokenizer, truncation=False, max_length=None, **kwargs)
        self.base_window = (_as_int("base_window", base_window, 1) if base_window is not None
                            else base_window_of(self.model))
        if get_family(self.family).needs_default_rope and self.g_rule != "config":
            for m in rotary_modules(self.model):  # ntk / yarn need rope_type='default': fail now, not mid-run
                rope_base(m, self.base_window)
        if max_length is not None:
            self._max_length = _as_int("max_length", max_length, 2)
        elif self.g_rule == "auto":
            self._max_length = AUTO_WINDOWS * self.base_window
        elif isinstance(self.g_rule, int):
            self._max_length = self.g_rule * self.base_window
        #: every applied scale: {"kind": "loglikelihood" | "generate_until", "n_tokens": n, "g": g}
        self.applied: list[dict] = []
        #: where to keep :attr:`applied` on disk (rewritten after every call; ``.rank<N>`` added per process)
        self.g_log = None if g_log is None else (str(g_log) if self.world_size == 1 else f"{g_log}.rank{self.rank}")

    # --- the scale ------------------------------------------------------------------------------

    def scale_for(self, n_tokens: int) -> int:
        """The g applied on top of the checkpoint for a request of ``n_tokens`` (1 for ``g=config``)."""
        if self.g_rule == "auto":
            return scale_for_length(int(n_tokens), self.base_window)
        return 1 if self.g_rule == "config" else self.g_rule

    def _scaled(self, g: int):
        """``rope_scale(model, g, family, base_window)``; nothing at ``g = 1`` (the identity in every family)."""
        if g == 1:
            return contextlib.nullcontext()
        return rope_scale(self.model, g, family=self.family, base_window=self.base_window)

    def save_applied(self, path: str | os.PathLike) -> str:
        """Write :attr:`applied` (and the rule that produced it) as JSON, atomically."""
        return save_json({"g": self.g_rule, "base_window": self.base_window, "max_length": self.max_length,
                          "truncation": self.truncation_side, "family": self.family, "applied": self.applied}, path)

    # --- truncation -----------------------------------------------------------------------------

    def tok_batch_encode(self, strings, padding_side: str = "left", left_truncate_len=None, truncation: bool = False):
        if self.truncation_side == "left" or not left_truncate_len:
            return super().tok_batch_encode(strings, padding_side, left_truncate_len, truncation)
        ids, mask = super().tok_batch_encode(strings, padding_side, None, truncation)
        if ids.shape[1] <= left_truncate_len:
            return ids, mask
        rows = [middle_truncate(r[m.bool()], int(left_truncate_len)) for r, m in zip(ids, mask)]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        new_ids = torch.full((len(rows), width), pad, dtype=ids.dtype)
        new_mask = torch.zeros((len(rows), width), dtype=mask.dtype)
        for i, r in enumerate(rows):
            sl = slice(width - len(r), width) if padding_side == "left" else slice(0, len(r))
            new_ids[i, sl], new_mask[i, sl] = r, 1
        return new_ids, new_mask

    def _fit(self, context_enc: list[int], continuation_enc: list[int]) -> list[int]:
        """Middle-truncate the context so that context + continuation fits HFLM's ``max_length + 1``."""
        over = len(context_enc) + len(continuation_enc) - (self.max_length + 1)
        if self.truncation_side == "left" or over <= 0:
            return context_enc
        keep = self.max_length + 1 - len(continuation_enc)
        if keep < 2:  # nothing sensible to keep from the middle rule; HFLM's left cut applies
            return context_enc
        return middle_truncate(list(context_enc), keep)

    # --- requests, grouped by g -----------------------------------------------------------------

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        groups: dict[int, list[int]] = defaultdict(list)
        fitted = []
        for i, (key, ctx, cont) in enumerate(requests):
            ctx = self._fit(ctx, cont)
            fitted.append((key, ctx, cont))
            n = min(len(ctx) + len(cont) - 1, self.max_length)  # tokens the model is fed
            g = self.scale_for(n)
            self.applied.append({"kind": "loglikelihood", "n_tokens": int(n), "g": int(g)})
            groups[g].append(i)
        out: list = [None] * len(requests)
        for g in sorted(groups):
            idx = groups[g]
            with self._scaled(g):
                res = super()._loglikelihood_tokens([fitted[i] for i in idx], disable_tqdm, override_bs)
            for i, r in zip(idx, res):
                out[i] = r
        if self.g_log:
            self.save_applied(self.g_log)
        return out

    def _generation_length(self, context: str, gen_kwargs: dict) -> int:
        max_gen = normalize_gen_kwargs(copy.deepcopy(gen_kwargs), self.max_gen_toks)["max_gen_toks"]
        ids, _ = self.tok_batch_encode([context], left_truncate_len=self.max_length - max_gen)
        return int(ids.shape[1]) + int(max_gen)

    def generate_until(self, requests, disable_tqdm: bool = False):
        groups: dict[int, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            context, gen_kwargs = req.args
            n = self._generation_length(context, gen_kwargs)
            g = self.scale_for(n)
            self.applied.append({"kind": "generate_until", "n_tokens": n, "g": int(g)})
            groups[g].append(i)
        out: list = [None] * len(requests)
        for g in sorted(groups):
            idx = groups[g]
            with self._scaled(g):
                res = super().generate_until([requests[i] for i in idx], disable_tqdm)
            for i, r in zip(idx, res):
                out[i] = r
        if self.g_log:
            self.save_applied(self.g_log)
        return out


def main() -> None:
    """``python -m e2llm_lite.eval.harness …``: lm-eval's CLI with ``--model e2llm`` registered."""
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()

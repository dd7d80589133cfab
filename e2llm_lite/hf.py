r"""Apply E² to any RoPE causal LM from Hugging Face ``transformers`` — without forking model code.

How (checked against transformers 5.x, see ``../shared/FACTS.md`` and ``tests/core/test_hf.py``):

* Llama-family models (Llama, Mistral, Qwen2, …) own rotary modules with a non-persistent buffer
  ``inv_freq`` (:math:`\theta_j`, Eq. 1) and compute ``cos/sin`` afresh from
  ``position_ids.float() * inv_freq`` on every forward. Hence

  - dividing ``inv_freq`` by ``g`` equals feeding positions ``m/g`` (PI, Eq. 3–4) — exactly what
    ``rope_type="linear"`` with factor ``g`` does at load time — and works with the KV cache;
  - integer position ids ``m + t`` (sinks keep ``m``) give the offset of Eq. (7).

  :func:`rope_scale` does the first as a context manager that restores the buffers bit-for-bit on
  exit, also when the body raises; :func:`e2_forward` does both for one training batch.

Traps guarded here (each has a test):

1. **Packed-sequence inference.** With no ``attention_mask`` and no cache, transformers reads every
   jump in ``position_ids`` other than +1 as the start of a new packed sequence and blocks attention
   across it — E²'s ``0,1,2,3,4+t,…`` would cut the sinks off. :func:`rope_scale` installs a forward
   pre-hook that adds an all-ones mask when position ids are given without one, and
   :func:`e2_forward` always passes a mask.
2. **FlashAttention-2 and position 0.** FA2's varlen path splits sequences where ``position_ids == 0``;
   a window with no position 0 (offset without sinks) breaks it. Without sinks the offset is a pure
   shift, which RoPE cannot see (Eq. 2), so :func:`fa2_safe_position_ids` rebases such rows to 0.
3. **Zero-padded position ids** (``…, 97, 98, 0, 0``) also read as new sequences:
   :func:`check_position_ids` rejects position ids that decrease inside a row.
4. **Models without RoPE** (GPT-2, BERT) or with a rotary variant whose frequencies are not static
   (dynamic NTK, YaRN, LongRoPE) raise :class:`ValueError` instead of silently training garbage.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator

import torch

from e2llm_lite.augment import Draw
from e2llm_lite.validation import check_int

__all__ = [
    "SUPPORTED_ROPE_TYPES",
    "rotary_modules",
    "rope_scale",
    "current_scale",
    "e2_context",
    "e2_forward",
    "check_position_ids",
    "fa2_safe_position_ids",
    "scale_for_length",
    "save_for_scale",
    "base_window_of",
]

#: rotary types whose ``inv_freq`` is static, so that ``inv_freq / g`` is exactly positions / g.
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


def _rope_types(module: torch.nn.Module) -> list[str]:
    rt = getattr(module, "rope_type", "default")
    return list(rt.values()) if isinstance(rt, dict) else [rt]


def rotary_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's rotary-embedding modules; ValueError for a model without (supported) RoPE."""
    mods = [
        m
        for m in model.modules()
        if "rotary" in type(m).__name__.lower() and isinstance(getattr(m, "inv_freq", None), torch.Tensor)
    ]
    name = type(model).__name__
    if not mods:
        raise ValueError(
            f"{name} has no rotary position embedding (no module with an `inv_freq` buffer); E² needs a "
            f"RoPE model such as Llama, Mistral or Qwen2 — absolute or learned position embeddings "
            f"(GPT-2, BERT) cannot be rescaled"
        )
    for m in mods:
        bad = [t for t in _rope_types(m) if t not in SUPPORTED_ROPE_TYPES]
        if bad:
            raise ValueError(
                f"{name} uses rope_type={bad[0]!r}, whose frequencies change at run time; supported "
                f"rope types are {', '.join(SUPPORTED_ROPE_TYPES)}"
            )
    return mods


def _check_scale(g: float) -> float:
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 1:
        raise ValueError(f"scale g must be a finite number >= 1, got g={g!r}")
    return float(g)


_SCALE_ATTR = "_e2_scale"


def current_scale(model: torch.nn.Module) -> float:
    """The g that :func:`rope_scale` currently applies to ``model`` (1.0 outside it)."""
    return float(getattr(model, _SCALE_ATTR, 1.0))


def _mask_guard(module, args, kwargs):
    """Forward pre-hook: add an all-ones attention mask when position ids come without one (trap 1)."""
    if kwargs.get("position_ids") is None or kwargs.get("attention_mask") is not None:
        return None
    # With a KV cache (``past_key_values``, or ``cache`` as generate() passes it in transformers 5.x)
    # transformers does not infer packed sequences, and a mask of the new tokens alone would be wrong.
    if kwargs.get("past_key_values") is not None or kwargs.get("cache") is not None:
        return None
    ref = kwargs.get("input_ids")
    if ref is None and args:
        ref = args[0]
    if ref is None:
        ref = kwargs.get("inputs_embeds")
    if ref is None:
        return None
    kwargs["attention_mask"] = torch.ones(ref.shape[:2], dtype=torch.long, device=ref.device)
    return args, kwargs


@contextlib.contextmanager
def rope_scale(model: torch.nn.Module, g: float = 1.0) -> Iterator[torch.nn.Module]:
    """Run ``model`` with RoPE positions divided by ``g`` (Eq. 3–5); restore it exactly on exit.

    Works for training and for generation with a KV cache. Nested uses compose (g multiplies).
    Inside, a forward pre-hook adds an all-ones attention mask whenever ``position_ids`` arrive
    without one (packed-sequence trap, see module docstring).
    """
    g = _check_scale(g)
    mods = rotary_modules(model)
    saved = [m.inv_freq.detach().clone() for m in mods]
    outer = current_scale(model)
    handle = model.register_forward_pre_hook(_mask_guard, with_kwargs=True)
    try:
        with torch.no_grad():
            for m, f in zip(mods, saved):
                # \theta_j / g  ==  positions / g   (linear interpolation, Eq. 4)
                m.inv_freq.copy_(f / g)
        setattr(model, _SCALE_ATTR, outer * g)
        yield model
    finally:
        handle.remove()
        with torch.no_grad():
            for m, f in zip(mods, saved):
                m.inv_freq.copy_(f)
        if outer == 1.0:
            if hasattr(model, _SCALE_ATTR):
                delattr(model, _SCALE_ATTR)
        else:
            setattr(model, _SCALE_ATTR, outer)


def check_position_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """ValueError when position ids decrease inside a row (zero padding, packed rows) — trap 3."""
    if position_ids.dim() != 2:
        raise ValueError(f"position_ids must have shape (batch, seq), got shape {tuple(position_ids.shape)}")
    if position_ids.shape[1] > 1:
        d = torch.diff(position_ids, dim=-1)
        if bool((d < 0).any()):
            row, col = (d < 0).nonzero()[0].tolist()
            raise ValueError(
                f"position_ids decrease in row {row} at index {col + 1} "
                f"({position_ids[row, col].item()} -> {position_ids[row, col + 1].item()}); position ids must be "
                f"non-decreasing in each row (zero-padded or packed ids make transformers split the sequence)"
            )
    if bool((position_ids < 0).any()):
        raise ValueError(f"position_ids must be >= 0, got min {position_ids.min().item()}")
    return position_ids


def fa2_safe_position_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """Rebase each row so that it starts at 0 (trap 2). Exact for RoPE: a common shift is invisible."""
    return position_ids - position_ids[:, :1]


def _uses_flash(model: torch.nn.Module) -> bool:
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None) or ""
    return "flash" in str(impl)


@contextlib.contextmanager
def e2_context(model: torch.nn.Module, draw: Draw, input_ids: torch.Tensor) -> Iterator[dict]:
    """Set up one step of Algorithm 1 and yield the forward kwargs (``position_ids``, ``attention_mask``).

    Keep the backward pass *inside* the block: a model that recomputes rotary embeddings under
    gradient checkpointing then sees the same scale in the recomputation::

        with e2_context(model, draw, input_ids) as kw:
            loss = model(input_ids=input_ids, labels=input_ids, **kw).loss
            loss.backward()

    One g per batch (per-iteration draws, Eq. 6) scales ``inv_freq`` and passes integer ids
    ``m + t``; different g per row (per-sample draws) pass float positions ``(m + t)/g`` instead.
    """
    bsz, seq = input_ids.shape
    pos = draw.position_ids
    if pos.shape[0] == 1 and bsz > 1:
        pos = pos.expand(bsz, -1)
    if tuple(pos.shape) != (bsz, seq):
        raise ValueError(
            f"draw has position ids of shape {tuple(pos.shape)} but input_ids has shape {(bsz, seq)}; "
            f"draw with batch_size={bsz} and seq_len={seq}"
        )
    check_position_ids(pos)
    if _uses_flash(model):
        pos = fa2_safe_position_ids(pos)
    pos = pos.to(input_ids.device)
    mask = torch.ones_like(input_ids)
    g = draw.uniform_scale
    if g is not None:
        with rope_scale(model, g):
            yield {"position_ids": pos, "attention_mask": mask}
        return
    rotary_modules(model)  # same validation as the uniform path
    scale = draw.scale.to(device=input_ids.device, dtype=torch.float32)[:, None]
    yield {"position_ids": pos.to(torch.float32) / scale, "attention_mask": mask}


def e2_forward(model: torch.nn.Module, input_ids: torch.Tensor, draw: Draw, **kwargs):
    """One forward pass of Algorithm 1 (see :func:`e2_context`); extra ``kwargs`` (``labels`` …) go to the model."""
    with e2_context(model, draw, input_ids) as kw:
        kw["attention_mask"] = kwargs.pop("attention_mask", kw["attention_mask"])
        return model(input_ids=input_ids, **kw, **kwargs)


# --- inference and export ---------------------------------------------------------------------


def scale_for_length(n_tokens: int, base_window: int, g_max: int | None = None, allow_unseen: bool = True) -> int:
    """Paper §4.2.3: the scale for an input of ``n_tokens``, ``g = ceil(n / L)`` (1 inside the window).

    With ``g_max`` and ``allow_unseen=False``, a length past ``L·G_max`` raises instead of picking a
    scale never seen in training (Fig. 5 studies those unseen scales).
    """
    n_tokens = check_int("n_tokens", n_tokens, 1)
    base_window = check_int("base_window L", base_window, 1)
    g = max(1, -(-n_tokens // base_window))
    if g_max is not None and g > g_max and not allow_unseen:
        raise ValueError(
            f"{n_tokens} tokens need g={g}, outside the trained scales G = {{1..{g_max}}}; inputs up to "
            f"L*G_max = {base_window * g_max} tokens are covered"
        )
    return g


def base_window_of(model_or_config) -> int:
    """The pre-training window L recorded in a model's config (``max_position_embeddings``)."""
    cfg = getattr(model_or_config, "config", model_or_config)
    return int(cfg.max_position_embeddings)


def save_for_scale(model, path: str | os.PathLike, g: float, tokenizer=None) -> str:
    """Save ``model`` to serve inputs up to ``g·L`` with stock ``transformers``.

    Writes safetensors weights and a config with ``rope_parameters`` =
    ``{"rope_type": "linear", "factor": f·g, "rope_theta": …}`` (``f`` = any factor the model already
    had), so ``AutoModelForCausalLM.from_pretrained(path)`` reproduces the logits of the model under
    ``rope_scale(model, g)``. The in-memory model's config is left unchanged.
    """
    g = _check_scale(g)
    mods = rotary_modules(model)
    kinds = {t for m in mods for t in _rope_types(m)}
    if not kinds <= {"default", "linear"}:
        raise ValueError(
            f"cannot express rope_type={sorted(kinds)} with an extra linear factor in one config; "
            f"save_for_scale supports rope types 'default' and 'linear'"
        )
    cfg = model.config
    old_params = dict(cfg.rope_parameters)
    old_max = cfg.max_position_embeddings
    factor = float(old_params.get("factor", 1.0)) if old_params.get("rope_type") == "linear" else 1.0
    new_params = {k: v for k, v in old_params.items() if k not in ("rope_type", "factor")}
    new_params.update(rope_type="linear", factor=factor * g)
    try:
        cfg.rope_parameters = new_params
        cfg.max_position_embeddings = int(round(old_max * g))
        model.save_pretrained(path, safe_serialization=True)
    finally:
        cfg.rope_parameters = old_params
        cfg.max_position_embeddings = old_max
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return str(path)

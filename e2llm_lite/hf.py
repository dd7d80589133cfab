r"""Apply E² to any RoPE causal LM from Hugging Face ``transformers`` — without forking model code.

How (checked against transformers 5.x, see ``tests/core/test_hf.py`` and ``tests/core/test_scaling.py``):

* Llama-family models (Llama, Mistral, Qwen2, …) own rotary modules with a non-persistent buffer
  ``inv_freq`` (:math:`\theta_j`, Eq. 1) and compute ``cos/sin`` afresh from
  ``position_ids.float() * inv_freq`` on every forward. Hence

  - dividing ``inv_freq`` by ``g`` equals feeding positions ``m/g`` (PI, Eq. 3–4) — exactly what
    ``rope_type="linear"`` with factor ``g`` does at load time — and works with the KV cache;
  - integer position ids ``m + t`` (sinks keep ``m``) give the offset of Eq. (7).

  :func:`rope_scale` does the first as a context manager that restores the buffers bit-for-bit on
  exit, also when the body raises; :func:`e2_forward` does both for one training batch.

* **Scale families** (:mod:`e2llm_lite.scaling`). ``family="linear"`` is the paper's PI (above);
  ``"ntk"`` and ``"yarn"`` install the frequencies (and, for YaRN, the cos/sin factor
  ``attention_scaling`` that the rotary module's forward multiplies in) that stock transformers
  builds for those scalings, so the same draws of ``(g, t)`` (Eq. 6–7) can train any family.
  Both attributes are restored bit-for-bit on exit.

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
   (dynamic NTK, LongRoPE) raise :class:`ValueError` instead of silently training garbage, as does a
   model already saved with ``rope_type="yarn"`` (scaling it again would not be YaRN at a larger g); the
   ``ntk`` and ``yarn`` families also need a base with ``rope_type="default"`` (they are defined
   from the unscaled frequencies).
5. **Per-sample draws with a non-linear family.** Rows with different ``g`` are applied as float
   positions ``(m + t)/g``, which only the linear family equals; :func:`e2_context` raises for
   ``ntk``/``yarn`` with per-sample draws instead of training the wrong frequencies.
"""
from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
from pathlib import Path
from typing import Iterator

import torch

from e2llm_lite.augment import Draw
from e2llm_lite.scaling import RopeBase, check_family, hf_rope_parameters, scale_frequencies
from e2llm_lite.validation import ArgumentTypeError, check_int, describe

__all__ = [
    "SUPPORTED_ROPE_TYPES",
    "rotary_modules",
    "rope_scale",
    "current_scale",
    "current_family",
    "rope_base",
    "e2_context",
    "e2_forward",
    "check_position_ids",
    "fa2_safe_position_ids",
    "scale_for_length",
    "save_for_scale",
    "add_engine_keys",
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
    """``float(g)`` for a real number >= 1: a Python, NumPy or one-element torch number (type errors name the type)."""
    if isinstance(g, torch.Tensor) and g.numel() == 1 and g.dtype != torch.bool and not g.dtype.is_complex:
        g = g.item()
    if isinstance(g, bool) or not isinstance(g, numbers.Real):
        raise ArgumentTypeError(f"scale g must be a real number (int, float, NumPy scalar or one-element tensor), "
                                f"got g={describe(g)}")
    if not math.isfinite(float(g)) or float(g) < 1:
        raise ValueError(f"scale g must be a finite number >= 1, got g={float(g)!r}")
    return float(g)


_SCALE_ATTR = "_e2_scale"
_FAMILY_ATTR = "_e2_family"


def current_scale(model: torch.nn.Module) -> float:
    """The g that :func:`rope_scale` currently applies to ``model`` (1.0 outside it)."""
    return float(getattr(model, _SCALE_ATTR, 1.0))


def current_family(model: torch.nn.Module) -> str:
    """The scale family :func:`rope_scale` currently applies to ``model`` ("linear" outside it)."""
    return str(getattr(model, _FAMILY_ATTR, "linear"))


def rope_base(module: torch.nn.Module, base_window: int) -> RopeBase:
    """The unscaled RoPE of one rotary module as :class:`~e2llm_lite.scaling.RopeBase`.

    ``ntk`` and ``yarn`` are defined from the default frequencies :math:`b^{-2j/d}` (Eq. 1), so the
    module must have ``rope_type="default"``; ``d`` is the rotary dimension (``2 × len(inv_freq)``,
    which covers ``partial_rotary_factor``) and ``b`` the config's ``rope_theta``.
    """
    kinds = _rope_types(module)
    if kinds != ["default"]:
        raise ValueError(
            f"the ntk and yarn scale families need a base model with rope_type='default', got rope_type="
            f"{kinds[0] if len(kinds) == 1 else kinds!r}; use family='linear' (it composes with an existing factor)"
        )
    params = module.config.rope_parameters
    if not isinstance(getattr(module, "attention_scaling", None), (int, float)):
        raise ValueError(f"{type(module).__name__} has no `attention_scaling`; the ntk/yarn families need "
                         f"a transformers 5.x rotary module")
    return RopeBase(rope_theta=float(params["rope_theta"]), rotary_dim=2 * module.inv_freq.numel(),
                    base_window=int(base_window))


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
def rope_scale(
    model: torch.nn.Module, g: float = 1.0, family: str = "linear", base_window: int | None = None
) -> Iterator[torch.nn.Module]:
    """Run ``model`` with RoPE scale ``g`` of scale family ``family``; restore it exactly on exit.

    ``family="linear"`` (the paper, Eq. 3–5) divides ``inv_freq`` by ``g``: positions ``m/g``.
    ``"ntk"`` and ``"yarn"`` install the frequencies and attention scaling of
    :mod:`e2llm_lite.scaling` (equal to stock transformers' ``rope_type`` of that scaling with
    ``factor = g`` and ``original_max_position_embeddings = base_window``; default
    ``base_window`` = :func:`base_window_of` ``(model)``). On exit ``inv_freq`` *and*
    ``attention_scaling`` are restored bit for bit, also when the body raises.

    Works for training and for generation with a KV cache. Nested uses compose (g multiplies) within
    one family; ``g = 1`` nests inside any family as a no-op; nesting two different families with
    ``g > 1`` raises. Inside, a forward pre-hook adds an all-ones attention mask whenever
    ``position_ids`` arrive without one (packed-sequence trap, see module docstring).
    """
    g = _check_scale(g)
    check_family(family)
    mods = rotary_modules(model)
    outer, outer_family = current_scale(model), current_family(model)
    if g != 1.0 and outer != 1.0 and family != outer_family:
        raise ValueError(
            f"cannot nest rope_scale(family={family!r}) inside rope_scale(family={outer_family!r}) at g={outer:g}; "
            f"scales compose only within one family"
        )
    new_family = family if g != 1.0 else outer_family
    total = outer * g
    targets = None  # (inv_freq, attention_scaling) per module for ntk / yarn
    if g != 1.0 and family != "linear":
        L = base_window_of(model) if base_window is None else int(base_window)
        # ntk / yarn at the total scale, from the *unscaled* frequencies (not the outer scope's)
        targets = [scale_frequencies(rope_base(m, L), total, family) for m in mods]
    saved = [(m.inv_freq.detach().clone(), getattr(m, "attention_scaling", None)) for m in mods]
    handle = model.register_forward_pre_hook(_mask_guard, with_kwargs=True)
    try:
        with torch.no_grad():
            for i, (m, (f, _)) in enumerate(zip(mods, saved)):
                if targets is None:
                    # \theta_j / g  ==  positions / g   (linear interpolation, Eq. 4)
                    m.inv_freq.copy_(f / g)
                else:
                    m.inv_freq.copy_(targets[i].inv_freq.to(device=f.device, dtype=f.dtype))
                    m.attention_scaling = targets[i].attention_scaling  # cos, sin x this (YaRN)
        setattr(model, _SCALE_ATTR, total)
        setattr(model, _FAMILY_ATTR, new_family)
        yield model
    finally:
        handle.remove()
        with torch.no_grad():
            for m, (f, a) in zip(mods, saved):
                m.inv_freq.copy_(f)
                if a is not None:
                    m.attention_scaling = a
        if outer == 1.0:
            for attr in (_SCALE_ATTR, _FAMILY_ATTR):
                if hasattr(model, attr):
                    delattr(model, attr)
        else:
            setattr(model, _SCALE_ATTR, outer)
            setattr(model, _FAMILY_ATTR, outer_family)


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
def e2_context(
    model: torch.nn.Module, draw: Draw, input_ids: torch.Tensor, family: str | None = None
) -> Iterator[dict]:
    """Set up one step of Algorithm 1 and yield the forward kwargs (``position_ids``, ``attention_mask``).

    Keep the backward pass *inside* the block: a model that recomputes rotary embeddings under
    gradient checkpointing then sees the same scale in the recomputation::

        with e2_context(model, draw, input_ids) as kw:
            loss = model(input_ids=input_ids, labels=input_ids, **kw).loss
            loss.backward()

    One g per batch (per-iteration draws, Eq. 6) scales ``inv_freq`` and passes integer ids
    ``m + t``; different g per row (per-sample draws) pass float positions ``(m + t)/g`` instead.

    ``family`` (default: ``draw.family``, set by :func:`e2llm_lite.augment.sample`) picks how each g
    moves the frequencies (:mod:`e2llm_lite.scaling`); YaRN's window ``L`` is ``draw.base_window``.
    Per-sample draws exist only for ``"linear"``: float positions cannot express ntk/yarn (trap 5).
    """
    family = check_family(family if family is not None else getattr(draw, "family", "linear"))
    bsz, seq = input_ids.shape
    draw.check()  # a hand-built or edited draw: integer g >= 1, t >= 0 (Eq. 6-7)
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
        with rope_scale(model, g, family=family, base_window=getattr(draw, "base_window", None)):
            yield {"position_ids": pos, "attention_mask": mask}
        return
    if family != "linear":
        raise ValueError(
            f"per-sample draws (g = {draw.scale.tolist()} differ across rows) can be applied exactly only by the "
            f"linear family (float positions (m + t)/g); family {family!r} changes the frequencies themselves — "
            f"draw one (g, t) per iteration (AugmentConfig(per_sample=False))"
        )
    rotary_modules(model)  # same validation as the uniform path
    scale = draw.scale.to(device=input_ids.device, dtype=torch.float32)[:, None]
    yield {"position_ids": pos.to(torch.float32) / scale, "attention_mask": mask}


def e2_forward(model: torch.nn.Module, input_ids: torch.Tensor, draw: Draw, family: str | None = None, **kwargs):
    """One forward pass of Algorithm 1 (see :func:`e2_context`); extra ``kwargs`` (``labels`` …) go to the model."""
    with e2_context(model, draw, input_ids, family=family) as kw:
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


def save_for_scale(
    model, path: str | os.PathLike, g: float, tokenizer=None, family: str = "linear", base_window: int | None = None
) -> str:
    """Save ``model`` to serve inputs up to ``g·L`` with stock ``transformers``.

    Writes safetensors weights and a config whose ``rope_parameters`` make
    ``AutoModelForCausalLM.from_pretrained(path)`` reproduce the logits of the model under
    ``rope_scale(model, g, family)``:

    * ``linear``: ``{"rope_type": "linear", "factor": f·g}`` (``f`` = a linear factor the model had);
    * ``yarn``: ``{"rope_type": "yarn", "factor": g, "original_max_position_embeddings": L, …}``;
    * ``ntk``: ``{"rope_type": "default", "rope_theta": b·g^{d/(d−2)}}`` — transformers has no static
      NTK type (``"dynamic"`` changes with the input length), and this is the same RoPE.

    ``max_position_embeddings`` becomes ``g·L``; ``L`` = ``base_window`` or the config's
    ``max_position_embeddings``. The in-memory model's config is left unchanged. The folder also
    carries the keys serving engines read (:func:`add_engine_keys`; ``e2llm-lite check-export``).
    """
    g = _check_scale(g)
    check_family(family)
    mods = rotary_modules(model)
    kinds = {t for m in mods for t in _rope_types(m)}
    cfg = model.config
    old_params = dict(cfg.rope_parameters)
    old_max = cfg.max_position_embeddings
    L = int(old_max if base_window is None else base_window)
    if family == "linear":
        if not kinds <= {"default", "linear"}:
            raise ValueError(
                f"cannot express rope_type={sorted(kinds)} with an extra linear factor in one config; "
                f"save_for_scale supports rope types 'default' and 'linear'"
            )
        factor = float(old_params.get("factor", 1.0)) if old_params.get("rope_type") == "linear" else 1.0
        scaled = {"rope_type": "linear", "factor": factor * g}
    else:
        scaled = hf_rope_parameters(rope_base(mods[0], L), g, family)  # validates rope_type == "default"
    drop = ("rope_type", "factor", "original_max_position_embeddings", "beta_fast", "beta_slow")
    new_params = {k: v for k, v in old_params.items() if k not in drop}
    new_params.update(scaled)
    try:
        cfg.rope_parameters = new_params
        cfg.max_position_embeddings = int(round(L * g))
        model.save_pretrained(path, safe_serialization=True)
    finally:
        cfg.rope_parameters = old_params
        cfg.max_position_embeddings = old_max
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    add_engine_keys(path)
    return str(path)


def add_engine_keys(path: str | os.PathLike) -> dict:
    """Add to an export's ``config.json`` (and ``tokenizer_config.json``) what serving engines read.

    transformers 5 writes the RoPE only as ``rope_parameters``; engines on the transformers 4 config
    (vLLM 0.11, older llama.cpp converters) read ``rope_scaling`` and a top-level ``rope_theta``, and
    would run such a folder unscaled with base 10000. vLLM multiplies the smallest length key of the
    config by a linear ``factor`` (``max_position_embeddings × factor`` would serve ``g²·L``), so a
    linear export also states the window before scaling as ``max_seq_len = max_position_embeddings /
    factor``; and vLLM caps the length at the tokenizer's ``model_max_length``, raised here to
    ``max_position_embeddings`` when it is smaller. stock transformers reloads the folder exactly as
    before (``rope_parameters`` wins; the extra keys are inert there). See :mod:`e2llm_lite.engines`
    for each engine's rules. Returns the keys added to ``config.json``.
    """
    from e2llm_lite.atomic_files import save_json

    folder = Path(path)
    cfg = json.loads((folder / "config.json").read_text())
    params = cfg.get("rope_parameters")
    if not isinstance(params, dict) or "rope_theta" not in params:  # per-layer-type parameters: left as written
        return {}
    added: dict = {"rope_theta": params["rope_theta"]}
    if "partial_rotary_factor" in params:
        added["partial_rotary_factor"] = params["partial_rotary_factor"]
    if params.get("rope_type", "default") != "default":
        added["rope_scaling"] = {k: v for k, v in params.items() if k not in ("rope_theta", "partial_rotary_factor")}
    if params.get("rope_type") == "linear":
        added["max_seq_len"] = int(round(cfg["max_position_embeddings"] / float(params["factor"])))
    cfg.update(added)
    save_json(cfg, folder / "config.json")
    tok_file = folder / "tokenizer_config.json"
    if tok_file.is_file():
        tok_cfg = json.loads(tok_file.read_text())
        limit = tok_cfg.get("model_max_length")
        if isinstance(limit, (int, float)) and limit < cfg["max_position_embeddings"]:
            tok_cfg["model_max_length"] = int(cfg["max_position_embeddings"])
            save_json(tok_cfg, tok_file)
    return added

r"""Load a Hugging Face causal LM for E² fine-tuning in one of three modes, and export the result.

E²-LLM (arXiv 2401.06951, §4.1) fine-tunes *all* weights of Llama-2 7B/13B on 16 A100s. On one GPU
there are three ways to fit that job; this module sets each one up, and ``planner.py`` says what it
costs:

========  ===========================================================  ============================
mode      what trains                                                   7B on one 80 GB card
========  ===========================================================  ============================
``full``  every weight (bf16), AdamW with 8-bit (paged) states from     ~41 GiB at R = 4K
          bitsandbytes (Dettmers et al. 2022), 2 bytes/param instead
          of 4 (bf16 m, v) or 8 (fp32)
``lora``  low-rank adapters on the attention projections q, k, v, o     ~16 GiB
          (Hu et al. 2021); optionally also embeddings and norms, as
          LongLoRA found necessary for long context (Chen et al. 2023,
          ``--trainable_params embed,norm``)
``qlora`` the same adapters on a 4-bit NF4, double-quantised base        ~7 GiB
          (Dettmers et al. 2023)
========  ===========================================================  ============================

Every model is loaded from safetensors (``use_safetensors=True``), never with remote code unless
``trust_remote_code=True`` is asked for, with ``attn_implementation="flash_attention_2"`` when the
``flash_attn`` package imports and the GPU has compute capability ≥ 8 (Ampere+), else PyTorch's SDPA
(also fused and memory-efficient; FlashAttention-2 needs the position-0 care of ``hf.py`` trap 2).

**Export** (:func:`export`): the adapters (peft's safetensors, plus any embedding/norm weights trained
outside peft), and a merged model saved by :func:`e2llm_lite.hf.save_for_scale` with
``rope_type="linear", factor=g`` — so stock ``AutoModelForCausalLM.from_pretrained`` serves ``g·L``
tokens with the same logits as ``rope_scale(model, g)``.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from e2llm_lite import hf, pretrained
from e2llm_lite.optional import require
from e2llm_lite.validation import check_int

__all__ = [
    "MODES",
    "OPTIMIZERS",
    "ModeConfig",
    "pick_device",
    "pick_attn_implementation",
    "load_model",
    "apply_mode",
    "trainable_summary",
    "optimizer_factory",
    "export",
    "load_adapter",
    "peft_without_bitsandbytes",
]

MODES = ("full", "lora", "qlora")
OPTIMIZERS = ("adamw", "adamw8bit", "paged_adamw8bit")
#: attention projections of Llama-family models (the paper's and LongLoRA's LoRA targets)
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
#: substrings of parameter names that LongLoRA's "embed,norm" also trains
EMBED_NORM = ("embed", "norm")
#: file (inside the adapter folder) for weights trained outside peft (embeddings, norms)
EXTRA_TRAINABLE = "extra_trainable.safetensors"


@dataclass
class ModeConfig:
    """How to load and what to train (defaults: the single-GPU 7B recipe; CPU falls back to float32)."""

    mode: str = "lora"  # full | lora | qlora
    dtype: str | None = None  # weights' dtype; None = bfloat16 on a GPU, float32 on a CPU
    attn_implementation: str | None = None  # None = flash_attention_2 if usable, else sdpa
    device: str | None = None  # None = "cuda" when available, else "cpu"
    lora_r: int = 8  # adapter rank (LongLoRA: 8)
    lora_alpha: int = 16  # adapter scale alpha / r
    lora_dropout: float = 0.0  # 0 keeps activations small (planner) and runs deterministic
    lora_targets: tuple[str, ...] = ATTENTION_PROJECTIONS  # modules that get adapters
    train_embed_norm: bool = False  # LongLoRA: also train embeddings and RMSNorm weights
    double_quant: bool = True  # QLoRA: quantise the 4-bit blocks' absmax constants too
    trust_remote_code: bool = False  # run code shipped with a Hub model (off unless you opt in)
    extra: dict = field(default_factory=dict)  # more from_pretrained kwargs (e.g. revision)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; valid modes: {', '.join(MODES)}")
        if self.dtype is not None and self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be 'float32', 'bfloat16' or 'float16', got {self.dtype!r}")
        if self.attn_implementation not in (None, "sdpa", "eager", "flash_attention_2"):
            raise ValueError(
                f"attn_implementation must be 'sdpa', 'eager' or 'flash_attention_2', got {self.attn_implementation!r}"
            )
        object.__setattr__(self, "lora_r", check_int("lora_r", self.lora_r, 1))
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        self.lora_targets = tuple(self.lora_targets)


# --- environment ---------------------------------------------------------------------------------


def pick_device(device: str | None = None) -> torch.device:
    """``device`` or the first CUDA GPU, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def flash_attn_available(device: torch.device | str | None = None) -> bool:
    """True when ``flash_attn`` imports and ``device`` is a CUDA GPU of compute capability ≥ 8."""
    device = pick_device(None if device is None else str(device))
    if device.type != "cuda" or importlib.util.find_spec("flash_attn") is None:
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def pick_attn_implementation(device: torch.device | str | None = None) -> str:
    """``"flash_attention_2"`` where :func:`flash_attn_available`, else ``"sdpa"``."""
    return "flash_attention_2" if flash_attn_available(device) else "sdpa"


def _dtype(cfg: ModeConfig, device: torch.device) -> torch.dtype:
    if cfg.dtype is not None:
        return getattr(torch, cfg.dtype)
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _require_bitsandbytes(what: str) -> None:
    # MissingPackage: a ModuleNotFoundError and a ValueError, one line naming the `gpu` extra
    require("bitsandbytes", extra="gpu", purpose=what, load=False,
            hint="or pick mode 'full'/'lora' with optimizer 'adamw'")


# --- loading -------------------------------------------------------------------------------------


def load_model(model_id_or_path: str | os.PathLike, cfg: ModeConfig | None = None):
    """Load a causal LM by Hub id or local folder and prepare it for ``cfg.mode`` (:func:`apply_mode`).

    Steps: 1) pick device, dtype and attention kernel; 2) ``from_pretrained`` with safetensors only
    (and NF4 quantisation for QLoRA); 3) freeze / add adapters. Returns the model in train-ready state
    (``requires_grad`` set) on its device.
    """
    import transformers

    given = model_id_or_path
    # the resolution every command shares: a registered name (smollm2-135m) -> its converted plain Llama folder;
    # a local path that does not exist, or a Hub id offline and not cached: one line, before the Hub
    model_id_or_path = pretrained.resolve_model(model_id_or_path)
    cfg = cfg or ModeConfig()
    # 1) where and how
    device = pick_device(cfg.device)
    dtype = _dtype(cfg, device)
    attn = cfg.attn_implementation or pick_attn_implementation(device)
    if attn == "flash_attention_2" and not flash_attn_available(device):
        raise ValueError(
            "attn_implementation='flash_attention_2' needs the flash_attn package and a CUDA GPU of compute "
            f"capability >= 8; on device {device} use 'sdpa'"
        )
    kw = dict(dtype=dtype, attn_implementation=attn, use_safetensors=True, trust_remote_code=cfg.trust_remote_code)
    kw.update(cfg.extra)
    # 2) load (QLoRA: decoder projections quantised to 4-bit NF4 while loading)
    if cfg.mode == "qlora":
        _require_bitsandbytes("mode 'qlora' (4-bit NF4 weights)")
        kw["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=cfg.double_quant,
            bnb_4bit_compute_dtype=dtype,
        )
    if device.type == "cuda":  # load straight onto the GPU (accelerate), no CPU copy of 7B
        kw["device_map"] = {"": device.index or 0}
    with pretrained.model_load_errors(given):
        model = transformers.AutoModelForCausalLM.from_pretrained(str(model_id_or_path), **kw)
    if device.type != "cuda":
        model.to(device)
    hf.rotary_modules(model)  # ValueError now, not mid-run, for a model E² cannot rescale
    # 3) what trains
    return apply_mode(model, cfg)


def _has_bitsandbytes_layers(model) -> bool:
    """Whether any module of ``model`` is a bitsandbytes layer (8-bit or 4-bit linear, or its parameters)."""
    return any(type(m).__module__.startswith("bitsandbytes") for m in model.modules()) or any(
        type(p).__module__.startswith("bitsandbytes") for p in model.parameters())


@contextlib.contextmanager
def peft_without_bitsandbytes(model):
    """Within the block, peft builds LoRA layers for ``model`` without importing bitsandbytes — when
    ``model`` has no bitsandbytes layer, so that import can only cost.

    Why: peft's LoRA dispatcher (``peft/tuners/lora/model.py``, ``_create_new_module``, peft 0.22) imports
    bitsandbytes whenever it is *installed*, to ask whether a target is an 8-/4-bit layer; and bitsandbytes
    ≥ 0.50, imported on a CPU with AVX512-BF16, fetches an optional 4-bit GEMM kernel from the Hugging Face
    Hub through the ``kernels`` package (``bitsandbytes/backends/cpu/ops.py``) — offline, that prints two
    warnings on every first LoRA load of a process (into a notebook cell, too). A float model's answer to
    peft's question is "no" without asking bitsandbytes, which is what this tells peft. A quantised model,
    or a process that has already imported bitsandbytes, goes through peft unchanged; so does a peft that
    no longer has these names (``tests/train/test_loading.py`` then fails on the import it checks).
    """
    lora_model = None
    if "bitsandbytes" not in sys.modules and not _has_bitsandbytes_layers(model):
        with contextlib.suppress(ImportError):
            lora_model = importlib.import_module("peft.tuners.lora.model")
    names = [n for n in ("is_bnb_available", "is_bnb_4bit_available") if hasattr(lora_model, n)]
    if lora_model is None or len(names) < 2:
        yield
        return
    saved = {n: getattr(lora_model, n) for n in names}
    try:
        for n in names:
            setattr(lora_model, n, lambda: False)
        yield
    finally:
        for n, f in saved.items():
            setattr(lora_model, n, f)


def apply_mode(model, cfg: ModeConfig | None = None):
    """Set ``requires_grad`` for ``cfg.mode``: all weights (full) or peft LoRA adapters (lora, qlora).

    With ``train_embed_norm`` the embedding and RMSNorm weights train too (LongLoRA). Returns the model
    to train (a ``peft.PeftModel`` for lora/qlora).
    """
    cfg = cfg or ModeConfig()
    if cfg.mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    peft = require("peft", extra="train", purpose=f"mode {cfg.mode!r} (LoRA adapters)")

    if cfg.mode == "qlora" and not any("4bit" in type(m).__name__ for m in model.modules()):
        raise ValueError("mode 'qlora' needs a model loaded in 4 bits (load_model(..., ModeConfig(mode='qlora')))")
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in cfg.lora_targets if t not in names]
    if missing:
        raise ValueError(
            f"LoRA target {missing[0]!r} is not a module of {type(model).__name__}; "
            f"attention projections here: {sorted(n for n in names if n.endswith('proj'))}"
        )
    lcfg = peft.LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_targets), bias="none", task_type="CAUSAL_LM",
    )
    with peft_without_bitsandbytes(model):
        model = peft.get_peft_model(model, lcfg)
    if cfg.train_embed_norm:  # LongLoRA: embed_tokens and every *norm weight train as well
        for n, p in model.named_parameters():
            if any(k in n for k in EMBED_NORM) and "lora_" not in n and p.is_floating_point():
                p.requires_grad_(True)
    return model


def trainable_summary(model) -> dict:
    """Counts of trainable and total parameters (4-bit weights counted as stored elements × 2)."""
    total = trainable = 0
    for p in model.parameters():
        n = p.numel() * (2 if p.dtype == torch.uint8 else 1)
        total += n
        trainable += n if p.requires_grad else 0
    return {"trainable": trainable, "total": total, "fraction": trainable / max(total, 1)}


# --- optimizers ------------------------------------------------------------------------------------


def optimizer_factory(
    name: str = "adamw", lr: float = 1e-5, betas=(0.9, 0.95), weight_decay: float = 0.0
) -> Callable:
    """``params -> Optimizer`` for :func:`e2llm_lite.train.loop.train` (paper §4.1: AdamW, β = 0.9/0.95).

    ``adamw`` (torch; fused kernel on CUDA), ``adamw8bit`` / ``paged_adamw8bit`` (bitsandbytes: m and
    v as 8-bit blockwise-quantised tensors, 2 bytes per parameter; *paged* lets them spill to CPU RAM
    under memory pressure — what makes full fine-tuning of 7B fit one 80 GB card).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    betas = tuple(betas)
    if name == "adamw":

        def make(params):
            params = list(params)
            fused = bool(params) and params[0].is_cuda
            return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused or None)

        return make
    _require_bitsandbytes(f"optimizer {name!r}")

    def make8(params):
        bnb = require("bitsandbytes", extra="gpu", purpose=f"optimizer {name!r}")

        cls = bnb.optim.PagedAdamW8bit if name == "paged_adamw8bit" else bnb.optim.AdamW8bit
        return cls(list(params), lr=lr, betas=betas, weight_decay=weight_decay)

    return make8


# --- export --------------------------------------------------------------------------------------------


def _is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def _save_tokenizer(tokenizer, path: Path) -> None:
    """HF tokenizers save themselves; the project's tokenizers (``data.py``) leave a small JSON note."""
    if tokenizer is None:
        return
    if hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(path)
        return
    from e2llm_lite.atomic_files import save_json

    if hasattr(tokenizer, "save"):  # BPETokenizer
        tokenizer.save(path / "e2llm_tokenizer.json")
    save_json(tokenizer.to_dict(), path / "e2llm_tokenizer_kind.json")


def save_adapter(model, path: str | os.PathLike, tokenizer=None) -> str:
    """peft adapters (safetensors) + weights trained outside peft (``EXTRA_TRAINABLE``)."""
    from safetensors.torch import save_file

    if not _is_peft(model):
        raise ValueError(f"{type(model).__name__} has no LoRA adapters to save (mode 'full' exports only merged)")
    path = Path(path)
    model.save_pretrained(path, safe_serialization=True)
    extra = {
        n: p.detach().to("cpu").contiguous()
        for n, p in model.named_parameters()
        if p.requires_grad and "lora_" not in n
    }
    if extra:
        tmp = path / (EXTRA_TRAINABLE + ".tmp")
        save_file(extra, str(tmp))
        os.replace(tmp, path / EXTRA_TRAINABLE)
    _save_tokenizer(tokenizer, path)
    return str(path)


def load_adapter(base_model, path: str | os.PathLike, adapter_name: str = "default"):
    """Re-attach adapters saved by :func:`save_adapter` (and extra embedding/norm weights) to ``base_model``
    under ``adapter_name`` (peft's name; more adapters can join with ``model.load_adapter(path, name)``)."""
    peft = require("peft", extra="train", purpose="loading LoRA adapters")
    from safetensors.torch import load_file

    path = Path(path)
    with warnings.catch_warnings():  # peft asks transformers 5 a deprecated question; the notice is not the user's
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        with peft_without_bitsandbytes(base_model):
            model = peft.PeftModel.from_pretrained(base_model, str(path), adapter_name=adapter_name)
    if (path / EXTRA_TRAINABLE).is_file():
        extra = load_file(str(path / EXTRA_TRAINABLE))
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, t in extra.items():
                if n not in params:
                    raise ValueError(f"{path / EXTRA_TRAINABLE} holds {n!r}, which the model lacks")
                params[n].copy_(t.to(params[n].device, params[n].dtype))
    return model


def export(
    model,
    out_dir: str | os.PathLike,
    g: int = 4,
    tokenizer=None,
    base_model_path: str | os.PathLike | None = None,
    cfg: ModeConfig | None = None,
    family: str = "linear",
    base_window: int | None = None,
) -> dict:
    """Write ``out_dir/adapter`` (LoRA/QLoRA) and ``out_dir/merged-g{g}`` (serves ``g·L`` tokens).

    The merged folder has safetensors weights and the ``rope_parameters`` of scale ``family`` at
    factor ``g`` (linear: ``rope_type="linear", factor=g``; ntk / yarn with
    ``original_max_position_embeddings = base_window``; :func:`e2llm_lite.hf.save_for_scale`). LoRA merges in place: afterwards use the returned
    ``"model"``, a plain ``transformers`` model. QLoRA merges into the 16-bit base re-loaded from
    ``base_model_path`` (merging into 4-bit weights would round the update away).
    Returns ``{"adapter": path | None, "merged": path, "model": merged model, "g": g}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = cfg or ModeConfig(mode="lora" if _is_peft(model) else "full")
    adapter = None
    if _is_peft(model):
        adapter = save_adapter(model, out / "adapter", tokenizer)
        if cfg.mode == "qlora":
            if base_model_path is None:
                raise ValueError("exporting a QLoRA model needs base_model_path (the 16-bit base to merge into)")
            dtype = cfg.dtype or ("bfloat16" if torch.cuda.is_available() else None)  # 7B: 13.5 GB of RAM in bf16
            base = load_model(base_model_path, ModeConfig(mode="full", dtype=dtype, device="cpu",
                                                          trust_remote_code=cfg.trust_remote_code))
            merged = load_adapter(base, adapter).merge_and_unload()
        else:
            merged = model.merge_and_unload()
    else:
        merged = model
    merged_dir = out / f"merged-g{g}"
    merged_dir.mkdir(parents=True, exist_ok=True)
    _save_tokenizer(tokenizer, merged_dir)  # first: save_for_scale's engine keys raise its model_max_length
    hf.save_for_scale(merged, merged_dir, g, family=family, base_window=base_window)
    for p in merged.parameters():
        p.requires_grad_(False)
    return {"adapter": adapter, "merged": str(merged_dir), "model": merged.eval(), "g": g, "family": family}

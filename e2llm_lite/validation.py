"""Argument checks shared by every module: one message format that names the bad value and the valid range.

``check_int`` accepts anything integer-like — a Python ``int``, a NumPy integer, a 0-d integer
``torch.Tensor`` (anything with ``__index__``) — and returns a plain ``int``; it rejects ``bool`` and
floats (``2.5`` would otherwise be silently truncated) with a message about the *type*, and an integer
out of range with a message about the *value*.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["ArgumentTypeError", "check_int", "describe", "local_path"]


class ArgumentTypeError(TypeError, ValueError):
    """A value of the wrong type: a ``TypeError``, and a ``ValueError`` so callers (and the CLI) that catch
    bad user input catch it too."""


def describe(value) -> str:
    """``"<type> <repr>"`` for error messages, e.g. ``"float 2.5"``, ``"torch.Tensor tensor(2.)"``."""
    t = type(value)
    name = t.__name__ if t.__module__ == "builtins" else f"{t.__module__.split('.')[0]}.{t.__name__}"
    return f"{name} {value!r}"


def _range(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]"
    if lo is not None:
        return f">= {lo}"
    if hi is not None:
        return f"<= {hi}"
    return ""


def check_int(name: str, value, lo: int | None = None, hi: int | None = None, note: str = "") -> int:
    """``int(value)`` if ``value`` is integer-like and ``lo <= value <= hi``; otherwise a ``ValueError``
    (wrong value) or ``TypeError`` (wrong type) naming ``name``, the value and the valid range;
    ``note`` explains where the range comes from, e.g. ``"R = train_len = 4096"``."""
    rng = _range(lo, hi) + (f" ({note})" if note else "")
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ArgumentTypeError(f"{name} must be an integer{(' ' + rng) if rng else ''} (int, NumPy or torch integer), "
                        f"got {name}={describe(value)}")
    try:
        v = value.__index__()
    except (TypeError, RuntimeError, ValueError):  # e.g. a torch tensor with more than one element
        raise ArgumentTypeError(f"{name} must be a single integer (int, NumPy or torch integer; not a float "
                                f"tensor), got {name}={describe(value)}") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be an integer {rng}, got {name}={v!r}")
    return int(v)


#: a Hugging Face Hub repo id (model or dataset): ``name`` or ``owner/name`` (huggingface_hub's rule)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
_FILE_SUFFIXES = (".safetensors", ".json", ".txt", ".md", ".py", ".bin", ".pt", ".jsonl", ".csv", ".parquet")


def local_path(name: str, value: str | os.PathLike) -> Path | None:
    """``Path(value)`` when ``value`` is an existing local file or folder; ``None`` when it reads as a Hub
    (model or ``datasets``) id, ``name`` or ``owner/name``; ``FileNotFoundError`` when it is written as a
    path (absolute, ``./``, ``~``, more than one ``/``, a file suffix) that does not exist — so a typo in a
    path is reported as such before anything is handed to the Hub or to ``datasets``."""
    text = os.fspath(value)
    path = Path(text).expanduser()
    if path.exists():
        return path
    hub_like = (_HUB_ID.fullmatch(text) is not None and ".." not in text and "--" not in text
                and not text.endswith((".", "-")) and not text.lower().endswith(_FILE_SUFFIXES))
    if hub_like and not isinstance(value, os.PathLike):
        return None
    raise FileNotFoundError(f"{name} {text!r}: no such file or folder" + ("" if hub_like else
                            " (it is written as a local path, so it was not looked up on the Hub)"))

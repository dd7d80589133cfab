"""Argument checks shared by every module: one message format that names the bad value and the valid range.

``check_int`` accepts anything integer-like — a Python ``int``, a NumPy integer, a 0-d integer
``torch.Tensor`` (anything with ``__index__``) — and returns a plain ``int``; it rejects ``bool`` and
floats (``2.5`` would otherwise be silently truncated) with a message about the *type*, and an integer
out of range with a message about the *value*.

The ``*_arg`` functions (``int_arg``, ``float_arg``, ``out_folder_arg``, …) are argparse ``type=``
validators built on the same checks: every ``e2llm-lite`` option is checked while the command line is
parsed, so a bad value is one line naming the flag and the valid range before any work starts.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["ArgumentTypeError", "check_int", "describe", "local_path", "int_arg", "float_arg", "int_list_arg",
           "path_arg", "folder_arg", "out_folder_arg", "out_file_arg", "device_arg", "tokenizer_arg"]


class ArgumentTypeError(TypeError, ValueError):
    """A value of the wrong type: a ``TypeError``, and a ``ValueError`` so callers (and the CLI) that catch
    bad user input catch it too."""


def describe(value) -> str:
    """``"<type> <repr>"`` for error messages, e.g. ``"float 2.5"``, ``"torch.Tensor tensor(2.)"``."""
    t = type(value)
    name = t.__name__ if t.__module__ == "builtins" else f"{t.__module__.split('.')[0]}.{t.__name__}"
    return f"{name} {value!r}"


def _range(lo, hi, lo_open: bool = False, hi_open: bool = False, fmt=str) -> str:
    """``"in [lo, hi]"``, ``">= lo"``, ``"<= hi"`` or ``""`` (``lo_open`` / ``hi_open``: the bound is excluded:
    ``(`` / ``>``); ``fmt`` writes a bound."""
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{fmt(lo)}, {fmt(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {fmt(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {fmt(hi)}"
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


def local_path(name: str, value: str | os.PathLike, valid: str = "") -> Path | None:
    """``Path(value)`` when ``value`` is an existing local file or folder; ``None`` when it reads as a Hub
    (model or ``datasets``) id, ``name`` or ``owner/name``; ``FileNotFoundError`` when it is written as a
    path (absolute, ``./``, ``~``, more than one ``/``, a file suffix) that does not exist — so a typo in a
    path is reported as such before anything is handed to the Hub or to ``datasets``. ``valid`` (what the
    option accepts) turns the message into ``"<name> '<value>' does not exist (…); valid: <valid>"``."""
    text = os.fspath(value)
    path = Path(text).expanduser()
    if path.exists():
        return path
    hub_like = (_HUB_ID.fullmatch(text) is not None and ".." not in text and "--" not in text
                and not text.endswith((".", "-")) and not text.lower().endswith(_FILE_SUFFIXES))
    if hub_like and not isinstance(value, os.PathLike):
        return None
    why = "" if hub_like else " (it is written as a local path, so it was not looked up on the Hub)"
    if valid:
        raise FileNotFoundError(f"{name} {text!r} does not exist{why}; valid: {valid}")
    raise FileNotFoundError(f"{name} {text!r}: no such file or folder{why}")


# --- command-line options: argparse ``type=`` validators ------------------------------------------------
#
# Each returns a function for ``parser.add_argument(..., type=...)`` that turns the option's text into its
# value or raises ``argparse.ArgumentTypeError`` with one line that starts with the flag, names the bad value
# and says what is valid; ``e2llm-lite`` prints that line as ``e2llm-lite <command>: error: <line>`` (exit
# code 2) while parsing, before any model is loaded or any folder is written.


def _arg_error(message: str):
    import argparse

    return argparse.ArgumentTypeError(" ".join(message.split()))


def int_arg(flag: str, lo: int | None = None, hi: int | None = None, note: str = ""):
    """An integer in ``[lo, hi]`` (:func:`check_int`'s message), e.g. ``int_arg("--threads", 1)``."""
    rng = _range(lo, hi)

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise _arg_error(f"{flag} must be an integer{' ' + rng if rng else ''}"
                             f"{f' ({note})' if note else ''}, got {flag}={text!r}") from None
        try:
            return check_int(flag, value, lo, hi, note)
        except ValueError as e:
            raise _arg_error(str(e)) from None

    parse.__name__ = "integer"
    return parse


def float_arg(flag: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
              hi_open: bool = False):
    """A finite number in the range (``lo_open`` / ``hi_open``: the bound itself is excluded), e.g.
    ``float_arg("--lr", 0, lo_open=True)`` (> 0) or ``float_arg("--utilization", 0, 1, lo_open=True)`` (in (0, 1])."""
    import math

    rng = _range(lo, hi, lo_open, hi_open, fmt=lambda x: f"{x:g}")

    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            value = math.nan
        bad = (not math.isfinite(value)
               or (lo is not None and (value <= lo if lo_open else value < lo))
               or (hi is not None and (value >= hi if hi_open else value > hi)))
        if bad:
            raise _arg_error(f"{flag} must be a finite number{' ' + rng if rng else ''}, got {flag}={text!r}")
        return value

    parse.__name__ = "number"
    return parse


def int_list_arg(flag: str, lo: int | None = None, hi: int | None = None):
    """Comma-separated integers, each in ``[lo, hi]`` (at least one), e.g. ``--lengths 256,512``."""
    rng = _range(lo, hi)

    def parse(text: str) -> list[int]:
        try:
            out = [int(x) for x in str(text).split(",") if x.strip()]
        except ValueError:
            out = []
        if not out or any((lo is not None and v < lo) or (hi is not None and v > hi) for v in out):
            raise _arg_error(f"{flag} must be comma-separated integers{' ' + rng if rng else ''}, got {flag}={text!r}")
        return out

    parse.__name__ = "integer list"
    return parse


def path_arg(flag: str):
    """An existing local file or folder, or a name (a Hub or ``datasets`` id, or a word such as ``stdlib``);
    text written as a path that does not exist is rejected (:func:`local_path`). Returns the text."""

    def parse(text: str) -> str:
        try:
            local_path(flag, text)
        except FileNotFoundError as e:
            raise _arg_error(str(e)) from None
        return text

    parse.__name__ = "path"
    return parse


def _file_above(path: Path) -> Path | None:
    """The first ancestor of ``path`` (or ``path`` itself) that exists as something other than a folder."""
    for p in [path, *path.parents]:
        if p.exists():
            return None if p.is_dir() else p
    return None


def folder_arg(flag: str):
    """An existing folder (an input, e.g. a base model): ``"<flag> 'x': no such folder"`` otherwise."""

    def parse(text: str) -> str:
        path = Path(text).expanduser()
        if not path.exists():
            raise _arg_error(f"{flag} {text!r}: no such folder")
        if not path.is_dir():
            raise _arg_error(f"{flag} {text!r} is a file; give a folder")
        return text

    parse.__name__ = "folder"
    return parse


def out_folder_arg(flag: str):
    """A folder to write into (created if missing): rejected when it, or a folder above it, is a file."""

    def parse(text: str) -> str:
        if not str(text).strip():
            raise _arg_error(f"{flag} must be a folder path, got {flag}={text!r}")
        path = Path(text).expanduser()
        blocker = _file_above(path)
        if blocker == path:
            raise _arg_error(f"{flag} {text!r} is a file, not a folder; give a folder (created if missing)")
        if blocker is not None:
            raise _arg_error(f"{flag} {text!r}: {str(blocker)!r} is a file, not a folder")
        return text

    parse.__name__ = "folder"
    return parse


def out_file_arg(flag: str, folder_must_exist: bool = False):
    """A file to write: rejected when it is a folder, or a folder above it is a file; with
    ``folder_must_exist`` its folder must exist too (else it is created when the file is written)."""

    def parse(text: str) -> str:
        if not str(text).strip():
            raise _arg_error(f"{flag} must be a file path, got {flag}={text!r}")
        path = Path(text).expanduser()
        if path.is_dir():
            raise _arg_error(f"{flag} {text!r} is a folder; give a file path")
        blocker = _file_above(path.parent)
        if blocker is not None:
            raise _arg_error(f"{flag} {text!r}: {str(blocker)!r} is a file, not a folder")
        if folder_must_exist and not path.parent.is_dir():
            raise _arg_error(f"{flag} {text!r}: no such folder {str(path.parent)!r}; create it first")
        return text

    parse.__name__ = "file"
    return parse


def device_arg(flag: str, auto: bool = True):
    """A torch device this machine has (``cpu``, ``cuda``, ``cuda:N``, …; ``auto`` when ``auto``)."""
    valid = ("auto, " if auto else "") + "cpu, cuda, cuda:N"

    def parse(text: str) -> str:
        if auto and text == "auto":
            return text
        import torch

        try:
            dev = torch.device(text)
        except (RuntimeError, ValueError, TypeError):
            raise _arg_error(f"{flag} {text!r} is not a device; valid: {valid}") from None
        if dev.type == "cuda":
            n = torch.cuda.device_count()
            if n == 0:
                raise _arg_error(f"{flag} {text!r}: no CUDA GPU is visible on this machine; valid here: "
                                 f"{'auto, ' if auto else ''}cpu")
            if dev.index is not None and dev.index >= n:
                raise _arg_error(f"{flag} {text!r}: this machine has {n} CUDA GPU(s), cuda:0 to cuda:{n - 1}")
        elif dev.type == "mps" and not torch.backends.mps.is_available():
            raise _arg_error(f"{flag} {text!r}: MPS is not available on this machine; valid here: "
                             f"{'auto, ' if auto else ''}cpu")
        return text

    parse.__name__ = "device"
    return parse


def tokenizer_arg(flag: str):
    """``bytes``, ``bpe`` (the shipped tokenizer) or an existing tokenizer file or folder."""

    def parse(text: str) -> str:
        if text in ("bytes", "bpe") or Path(text).expanduser().exists():
            return text
        raise _arg_error(f"{flag} {text!r}: no such file or folder; valid: bytes, bpe, a tokenizer.json path or a "
                         f"tokenizer folder")

    parse.__name__ = "tokenizer"
    return parse
